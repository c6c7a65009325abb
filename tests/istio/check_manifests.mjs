#!/usr/bin/env node
// Validates every manifest under istio/ against Istio's CRD schemas, strictly, with no files
// from outside the repository: the schemas come from @kubernetes-models/istio (pinned in
// package.json / package-lock.json beside this file, installed by `make istio-tools`), which
// is generated from Istio 1.29.2's manifests/charts/base/files/crd-all.gen.yaml.
//
// That package ships two things generated from the same CRD schemas, and this uses both:
//   - a compiled validator per kind and version (types, enums, patterns, required fields,
//     lengths, ...), which on its own lets unknown fields through;
//   - TypeScript declarations listing every field of every object. Fields they do not declare
//     are refused here, as `kubectl apply --validate=strict` refuses them: objects whose
//     declaration is a map (`[key: string]: T`) take any key, free-form objects (`{}`,
//     x-kubernetes-preserve-unknown-fields, e.g. WasmPlugin.spec.pluginConfig) take anything,
//     and so do metadata (Kubernetes' ObjectMeta) and status (preserve-unknown in the CRDs).
// Errors name the file and the field path. CEL rules (x-kubernetes-validations) are not
// evaluated.
//
// Kinds that are not Istio CRDs (Flagger, Argo Rollouts, IstioOperator, and the Kubernetes
// Deployment patches and ConfigMap that hand Dial's secrets to the proxies) are listed and
// checked for shape only (apiVersion, kind, metadata.name); the Gateway API's (the Gateway the
// edge WasmPlugin attaches to) strictly, by tests/gateway/check_manifests.mjs. Which secrets
// reach which proxy is tests/istio.rs's to check.
//
// Usage: check_manifests.mjs [--self-test] [--derive DIR] [--dir DIR]
//   --self-test   also checks that broken manifests are rejected, at the right path.
//   --dir DIR     the manifests under DIR instead of istio/ (`make istio-quickstart-test`: the
//                 rendered copy, image and digest filled in).
//   --derive DIR  writes, for each valid WasmPlugin, the Envoy plugin settings istiod derives
//                 from it (name, rootId, failurePolicy, pluginConfig as the JSON string
//                 Istio hands to the plugin, and hostEnvKeys from vmConfig.env) to DIR/<file>-<namespace>.<name>.json, which
//                 tests/istio.rs checks with Dial's own policy validator and loads into Envoy.
// Ends with `N passed, N failed`; exits 1 on any failure, 2 if it cannot run at all.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { child, describe, die, isObject } from "../support/manifest_problems.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const ISTIO_GROUPS = new Set(["networking.istio.io", "extensions.istio.io", "security.istio.io", "telemetry.istio.io"]);
// Not Istio CRDs (IstioOperator is istioctl's input, not a CRD istiod serves).
const EXTERNAL_GROUPS = new Set(["install.istio.io", "flagger.app", "argoproj.io", "apps", "", "gateway.networking.k8s.io"]);
const PACKAGE = "@kubernetes-models/istio";
// Open (any content) at the top level of every Istio kind.
const OPEN_TOP_LEVEL = new Set(["metadata", "status"]);


let yaml, ts, pkgDir, pkgVersion, istioVersion;
try {
  yaml = await import("js-yaml");
  ts = (await import("typescript")).default;
  const require = createRequire(import.meta.url);
  const pkgJson = require.resolve(`${PACKAGE}/package.json`);
  pkgDir = path.dirname(pkgJson);
  const meta = JSON.parse(fs.readFileSync(pkgJson, "utf8"));
  pkgVersion = meta.version;
  // The Istio release whose CRDs the package was generated from, as its package.json records.
  const input = (meta["crd-generate"]?.input ?? []).join(" ");
  istioVersion = /istio\/istio\/([^/]+)\/manifests\/charts\/base\/files\/crd-all\.gen\.yaml/.exec(input)?.[1] ?? "unknown";
} catch (e) {
  die(`${path.relative(ROOT, HERE)}/node_modules is missing or incomplete (${e.code ?? e.message}): run \`make istio-tools\``);
}

// --- The schemas: (group, version, kind) -> compiled validator and field tree -----------------

/** Every Istio kind the package has, by "group/version" and kind. */
function availableKinds() {
  const kinds = new Map();
  for (const group of ISTIO_GROUPS) {
    const groupDir = path.join(pkgDir, group);
    if (!fs.existsSync(groupDir)) continue;
    for (const version of fs.readdirSync(groupDir)) {
      const dir = path.join(groupDir, version);
      if (!fs.statSync(dir).isDirectory()) continue;
      for (const file of fs.readdirSync(dir)) {
        if (file.endsWith(".js") && file !== "index.js") {
          kinds.set(`${group}/${version} ${file.slice(0, -3)}`, { group, version, kind: file.slice(0, -3) });
        }
      }
    }
  }
  return kinds;
}
const KINDS = availableKinds();
if (!KINDS.has("extensions.istio.io/v1alpha1 WasmPlugin")) {
  die(`${PACKAGE} ${pkgVersion} in ${pkgDir} has no WasmPlugin: run \`make istio-tools\``);
}

/*
 * A field tree, read from the package's declaration of a kind:
 *   { kind: "object", fields: Map<name, tree>, values: tree | null }  (values: a map's values)
 *   { kind: "array", items: tree }
 *   { kind: "any" }                                                   (scalars, free-form)
 * The CRDs' oneOf/anyOf become unions, intersections and Exclude<> of object literals that
 * repeat the same fields; an object's fields are those of all of them.
 */
const ANY = { kind: "any" };

function merge(trees) {
  const objects = trees.filter((t) => t.kind === "object");
  const arrays = trees.filter((t) => t.kind === "array");
  if (objects.length) {
    const fields = new Map();
    const values = [];
    for (const o of objects) {
      for (const [name, t] of o.fields) fields.set(name, fields.has(name) ? merge([fields.get(name), t]) : t);
      if (o.values) values.push(o.values);
    }
    if (!fields.size && !values.length) return ANY; // `{}`: free-form
    return { kind: "object", fields, values: values.length ? merge(values) : null };
  }
  if (arrays.length) return { kind: "array", items: merge(arrays.map((a) => a.items)) };
  return ANY;
}

function treeOf(node) {
  const K = ts.SyntaxKind;
  switch (node.kind) {
    case K.TypeLiteral: {
      const fields = new Map();
      const values = [];
      for (const m of node.members) {
        if (m.kind === K.PropertySignature) {
          const name = m.name.text;
          fields.set(name, m.type ? treeOf(m.type) : ANY);
        } else if (m.kind === K.IndexSignature) {
          values.push(treeOf(m.type));
        } else {
          throw new Error(`unexpected member ${K[m.kind]} in a declaration`);
        }
      }
      return merge([{ kind: "object", fields, values: values.length ? merge(values) : null }]);
    }
    case K.ParenthesizedType:
      return treeOf(node.type);
    case K.UnionType:
    case K.IntersectionType:
      return merge(node.types.map(treeOf));
    case K.ArrayType:
      return { kind: "array", items: treeOf(node.elementType) };
    case K.TypeReference: {
      const name = node.typeName.getText();
      const args = node.typeArguments ?? [];
      if (name === "Array") return { kind: "array", items: treeOf(args[0]) };
      if (name === "Exclude") return merge(args.map(treeOf));
      return ANY; // IObjectMeta: Kubernetes' own, not Istio's schema
    }
    default:
      return ANY; // string, number, boolean, literal unions
  }
}

const schemas = new Map();
async function schemaOf(group, version, kind) {
  const key = `${group}/${version} ${kind}`;
  if (!KINDS.has(key)) return null;
  if (!schemas.has(key)) {
    const model = (await import(`${PACKAGE}/${group}/${version}/${kind}`))[kind];
    const dts = path.join(pkgDir, group, version, `${kind}.d.ts`);
    const source = ts.createSourceFile(dts, fs.readFileSync(dts, "utf8"), ts.ScriptTarget.Latest, true);
    const decl = source.statements.find((s) => ts.isInterfaceDeclaration(s) && s.name.text === `I${kind}`);
    if (!decl) throw new Error(`${dts}: no interface I${kind}`);
    const fields = new Map();
    for (const m of decl.members) fields.set(m.name.text, OPEN_TOP_LEVEL.has(m.name.text) ? ANY : treeOf(m.type));
    schemas.set(key, { model, tree: { kind: "object", fields, values: null } });
  }
  return schemas.get(key);
}

// --- Checking one manifest ---------------------------------------------------------------------


function unknownFields(value, tree, at, out) {
  if (tree.kind === "object" && isObject(value)) {
    for (const [key, v] of Object.entries(value)) {
      if (tree.fields.has(key)) unknownFields(v, tree.fields.get(key), child(at, key), out);
      else if (tree.values) unknownFields(v, tree.values, child(at, key), out);
      else out.push(`${child(at, key)}: unknown field (known here: ${[...tree.fields.keys()].sort().join(", ")})`);
    }
  } else if (tree.kind === "array" && Array.isArray(value)) {
    value.forEach((v, i) => unknownFields(v, tree.items, child(at, i), out));
  }
  // A value of the wrong type is the validator's to report.
}

/** Problems of one manifest, each "path: message". */
async function check(doc) {
  if (!isObject(doc)) return ["$: not a mapping"];
  const problems = [];
  const api = typeof doc.apiVersion === "string" ? doc.apiVersion : "";
  const kind = typeof doc.kind === "string" ? doc.kind : "";
  const slash = api.lastIndexOf("/");
  const group = slash < 0 ? "" : api.slice(0, slash);
  const version = api.slice(slash + 1);
  for (const field of ["apiVersion", "kind"]) if (!doc[field]) problems.push(`$.${field}: required`);
  if (!doc.metadata?.name) problems.push("$.metadata.name: required");
  if (ISTIO_GROUPS.has(group)) {
    const schema = await schemaOf(group, version, kind);
    if (!schema) {
      problems.push(`$.apiVersion: no served version ${api} of kind ${kind} in ${PACKAGE} ${pkgVersion}`);
    } else {
      try {
        new schema.model(doc).validate();
      } catch (e) {
        if (!Array.isArray(e.errors)) throw e;
        for (const err of e.errors) problems.push(describe(doc, err));
      }
      unknownFields(doc, schema.tree, "$", problems);
    }
  } else if (!EXTERNAL_GROUPS.has(group)) {
    problems.push(`$.apiVersion: ${JSON.stringify(api)} is neither an Istio CRD nor a known external kind`);
  }
  return [...new Set(problems)].sort();
}

function* manifests() {
  const walk = (dir) =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const p = path.join(dir, e.name);
      return e.isDirectory() ? walk(p) : e.name.endsWith(".yaml") ? [p] : [];
    });
  for (const file of walk(manifestDir).sort()) {
    const rel = path.relative(ROOT, file);
    const docs = yaml.loadAll(fs.readFileSync(file, "utf8"), null, { filename: rel });
    for (const [i, doc] of docs.entries()) if (doc != null) yield { file: rel, index: i, doc };
  }
}

// --- What istiod derives from a WasmPlugin -------------------------------------------------------

const FAILURE_POLICIES = { FAIL_OPEN: "FAIL_OPEN", FAIL_CLOSE: "FAIL_CLOSED", FAIL_RELOAD: "FAIL_RELOAD" };

/** JSON with every object's keys sorted, compact: how protojson renders a Struct. */
function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** What istiod puts in Envoy's PluginConfig for a WasmPlugin: name <namespace>.<name>, root_id
 * from pluginName, failure_policy from failStrategy, the pluginConfig as the JSON string
 * protojson renders from a Struct (compact, keys sorted), or nothing when empty, and the proxy
 * environment variables the VM may read. */
function envoyPlugin(doc) {
  const spec = doc.spec ?? {};
  const config = spec.pluginConfig;
  const empty = config == null || (isObject(config) && !Object.keys(config).length);
  return {
    name: `${doc.metadata.namespace ?? "default"}.${doc.metadata.name}`,
    rootId: spec.pluginName ?? "",
    failurePolicy: FAILURE_POLICIES[spec.failStrategy] ?? "UNSPECIFIED",
    configuration: empty ? null : canonicalJson(config),
    // vmConfig.env entries with valueFrom HOST: Envoy's vm_config.environment_variables.host_env_keys.
    hostEnvKeys: (spec.vmConfig?.env ?? []).filter((e) => e.valueFrom === "HOST").map((e) => e.name),
  };
}

// --- Self-test: broken manifests must be rejected, at the right path ---------------------------

async function selfTest() {
  const byKind = {};
  for (const { doc } of manifests()) byKind[doc.kind] ??= doc;
  const { WasmPlugin: plugin, VirtualService: vs, DestinationRule: dr } = byKind;
  const broken = (doc, edit) => {
    const d = structuredClone(doc);
    edit(d);
    return d;
  };
  const cases = [
    ["unknown field", broken(plugin, (d) => (d.spec.phse = "AUTHZ")), "$.spec.phse: unknown field"],
    ["bad enum", broken(plugin, (d) => (d.spec.phase = "LATE")), '$.spec.phase: "LATE" is not one of'],
    ["bad sha256", broken(plugin, (d) => (d.spec.sha256 = "xyz")), '$.spec.sha256: "xyz" does not match'],
    ["wrong type", broken(plugin, (d) => (d.spec.priority = "high")), '$.spec.priority: "high" is not of type integer'],
    ["nested unknown field", broken(vs, (d) => (d.spec.http[0].route[0].destination.subst = "v2")),
      "$.spec.http[0].route[0].destination.subst: unknown field"],
    ["missing required", broken(dr, (d) => delete d.spec.host), "$.spec.host: required"],
    ["unknown version", broken(vs, (d) => (d.apiVersion = "networking.istio.io/v9")),
      "$.apiVersion: no served version networking.istio.io/v9 of kind VirtualService"],
  ];
  let passed = 0;
  let failed = 0;
  for (const [name, doc, want] of cases) {
    const got = await check(doc);
    if (got.some((p) => p.startsWith(want))) {
      passed++;
      console.log(`ok   self-test ${name}: ${got.find((p) => p.startsWith(want))}`);
    } else {
      failed++;
      console.log(`FAIL self-test ${name}: want a problem starting ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
    }
  }
  return { passed, failed };
}

// --- Main ----------------------------------------------------------------------------------------

const args = process.argv.slice(2);
const deriveAt = args.indexOf("--derive");
const deriveDir = deriveAt < 0 ? null : args[deriveAt + 1];
if (deriveAt >= 0 && !deriveDir) die("--derive needs a directory");
const dirAt = args.indexOf("--dir");
if (dirAt >= 0 && !args[dirAt + 1]) die("--dir needs a directory");
const manifestDir = dirAt < 0 ? path.join(ROOT, "istio") : path.resolve(args[dirAt + 1]);
if (!fs.existsSync(manifestDir)) die(`${manifestDir}: no such directory`);
for (const [i, a] of args.entries()) {
  const value = (deriveAt >= 0 && i === deriveAt + 1) || (dirAt >= 0 && i === dirAt + 1);
  if (a !== "--self-test" && a !== "--derive" && a !== "--dir" && !value) die(`unknown argument ${a}\nusage: check_manifests.mjs [--self-test] [--derive DIR] [--dir DIR]`);
}
if (deriveDir) fs.mkdirSync(deriveDir, { recursive: true });

console.log(`schemas: ${PACKAGE} ${pkgVersion}, from Istio ${istioVersion}'s crd-all.gen.yaml; strict: unknown fields fail`);
let passed = 0;
let failed = 0;
for (const { file, index, doc } of manifests()) {
  const where = file + (index ? ` (document ${index + 1})` : "");
  const problems = await check(doc);
  if (problems.length) {
    failed++;
    for (const p of problems) console.log(`FAIL ${where}: ${p}`);
    continue;
  }
  passed++;
  const group = doc.apiVersion.slice(0, doc.apiVersion.lastIndexOf("/"));
  const how = ISTIO_GROUPS.has(group) ? "schema" : "shape only (not an Istio CRD)";
  console.log(`ok   ${where}: ${doc.kind} ${doc.metadata.name} [${how}]`);
  if (deriveDir && doc.kind === "WasmPlugin") {
    const plugin = envoyPlugin(doc);
    const out = path.join(deriveDir, `${path.basename(file, ".yaml")}-${plugin.name}.json`);
    fs.writeFileSync(out, JSON.stringify(plugin, null, 1));
  }
}
if (args.includes("--self-test")) {
  const r = await selfTest();
  passed += r.passed;
  failed += r.failed;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
