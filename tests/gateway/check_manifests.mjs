#!/usr/bin/env node
// Validates every manifest under envoy-config/gateway/ strictly (unknown fields fail), with no
// files from outside the repository:
//   - gateway.networking.k8s.io kinds (GatewayClass, Gateway, HTTPRoute) against the Gateway
//     API's schemas, from @kubernetes-models/gateway-api;
//   - gateway.envoyproxy.io kinds (EnvoyProxy, EnvoyExtensionPolicy) against Envoy Gateway's,
//     from @kubernetes-models/envoy-gateway. Its one release (2.0.0) was generated from an
//     Envoy Gateway that predates dynamic modules (v1.8): the two fields Dial needs,
//     EnvoyProxy.spec.dynamicModules and EnvoyExtensionPolicy.spec.dynamicModule, are declared
//     in dynamic_modules.d.ts beside this file, written from Envoy Gateway's Go types, and
//     their kubebuilder constraints are checked here (DYNAMIC_MODULE_RULES).
// Both packages (pinned in package.json / package-lock.json beside this file, installed by
// `make gateway-tools`) ship a compiled validator per kind (types, enums, patterns, required
// fields) that lets unknown fields through, and TypeScript declarations of every field. This
// walks each manifest along its kind's declared type with TypeScript's checker: a field the
// type does not declare, a required one missing, a value of the wrong JSON type or outside a
// string enum is refused, as `kubectl apply --validate=strict` refuses it; maps take any key,
// free-form values (`{}`, `unknown`) anything. CEL rules are not evaluated, except the dynamic
// module source's.
//
// And across the manifests, what Envoy Gateway would otherwise refuse at run time: each
// EnvoyExtensionPolicy's dynamicModule names a module an EnvoyProxy here registers, each
// targetRef and parentRef names a Gateway here, each GatewayClass's parametersRef an EnvoyProxy.
// (Dial's own check of the dynamicModule's `config` is `dial validate envoy-config`.)
//
// The Gateway API objects of the Istio examples (istio/, e.g. the Gateway Dial's edge
// WasmPlugin attaches to) are checked here too, against the same Gateway API schemas, as a set
// of their own; tests/istio/check_manifests.mjs checks the Istio kinds.
//
// Usage: check_manifests.mjs [--self-test]
//   --self-test   also checks that broken manifests are rejected, at the right path.
// Ends with `N passed, N failed`; exits 1 on any failure, 2 if it cannot run at all.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { child, describe, die, isObject } from "../support/manifest_problems.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const DIR = path.join(ROOT, "envoy-config", "gateway");
const PACKAGES = {
  "gateway.envoyproxy.io": "@kubernetes-models/envoy-gateway",
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
};
// Kinds whose package type gains Envoy Gateway v1.8's dynamic-module fields.
const SUPPLEMENT = {
  EnvoyProxy: "EnvoyProxyDynamicModules",
  EnvoyExtensionPolicy: "EnvoyExtensionPolicyDynamicModules",
};


let yaml, ts;
const versions = {};
try {
  yaml = await import("js-yaml");
  ts = (await import("typescript")).default;
  const require = createRequire(import.meta.url);
  for (const pkg of Object.values(PACKAGES)) {
    versions[pkg] = JSON.parse(fs.readFileSync(require.resolve(`${pkg}/package.json`), "utf8")).version;
  }
} catch (e) {
  die(`${path.relative(ROOT, HERE)}/node_modules is missing or incomplete (${e.code ?? e.message}): run \`make gateway-tools\``);
}

const split = (api) => {
  const slash = (api ?? "").lastIndexOf("/");
  return slash < 0 ? ["", api ?? ""] : [api.slice(0, slash), api.slice(slash + 1)];
};
const kindFile = (pkg, group, version, kind) => path.join(HERE, "node_modules", pkg, group, version, `${kind}.d.ts`);

// --- The declared types, through TypeScript's checker ------------------------------------------

/** One program over every kind the manifests use: `K<i>` is kind i's type, supplement added.
 * Built again only when a kind it lacks turns up (the self-test's broken copies use the same). */
let program = { keys: new Map(), checker: null, types: new Map() };
function typesOf(wanted) {
  if (wanted.every((k) => program.keys.has(k.key))) return program;
  const keys = [...new Map([...program.keys, ...wanted.map((k) => [k.key, k])]).values()];
  program = { ...build(keys), keys: new Map(keys.map((k) => [k.key, k])) };
  return program;
}

function build(keys) {
  const entry = path.join(HERE, "__kinds.ts");
  const lines = [`import type { EnvoyProxyDynamicModules, EnvoyExtensionPolicyDynamicModules } from "./dynamic_modules.js";`];
  keys.forEach(({ group, version, kind }, i) => {
    const pkg = PACKAGES[group];
    lines.push(`import type { I${kind} as I${i} } from "${pkg}/${group}/${version}/${kind}";`);
    lines.push(`export type K${i} = I${i}${SUPPLEMENT[kind] && group === "gateway.envoyproxy.io" ? ` & ${SUPPLEMENT[kind]}` : ""};`);
  });
  const source = lines.join("\n");
  const options = { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, types: [] };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile;
  host.getSourceFile = (name, lang, ...rest) => (path.resolve(name) === entry ? ts.createSourceFile(name, source, lang, true) : getSourceFile(name, lang, ...rest));
  const fileExists = host.fileExists;
  host.fileExists = (name) => path.resolve(name) === entry || fileExists(name);
  const tsProgram = ts.createProgram([entry], options, host);
  const errors = ts.getPreEmitDiagnostics(tsProgram).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length) die(`cannot read the packages' declarations:\n${ts.formatDiagnostics(errors, host)}`);
  const checker = tsProgram.getTypeChecker();
  const file = tsProgram.getSourceFile(entry);
  const types = new Map();
  keys.forEach((k, i) => {
    const alias = file.statements.find((s) => ts.isTypeAliasDeclaration(s) && s.name.text === `K${i}`);
    types.set(k.key, checker.getTypeAtLocation(alias.name));
  });
  return { checker, types };
}

/** What a type accepts, member by member of a union. */
function shapes(checker, type) {
  const F = ts.TypeFlags;
  const members = (type.isUnion() ? type.types : [type]).filter((t) => !(t.flags & (F.Undefined | F.Null | F.Void)));
  const out = { any: false, string: false, literals: [], number: false, boolean: false, arrays: [], objects: [] };
  for (const t of members) {
    if (t.flags & (F.Any | F.Unknown)) out.any = true;
    else if (t.flags & F.StringLiteral) out.literals.push(t.value);
    else if (t.flags & F.StringLike) out.string = true;
    else if (t.flags & (F.NumberLike | F.BigIntLike)) out.number = true;
    else if (t.flags & F.BooleanLike) out.boolean = true;
    else if (checker.isArrayType(t)) out.arrays.push(checker.getTypeArguments(t)[0]);
    else if (t.flags & F.Object || t.isIntersection()) {
      const props = checker.getPropertiesOfType(t);
      const index = checker.getIndexTypeOfType(t, ts.IndexKind.String);
      if (!props.length && !index) out.any = true; // `{}`: free-form
      else out.objects.push({ props, index });
    } else out.any = true;
  }
  return out;
}

/** Problems of `value` against `type`, each "path: message". */
function walk(checker, value, type, at, out) {
  const s = shapes(checker, type);
  if (s.any) return;
  const typeName = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v === "object" ? "object" : typeof v);
  if (isObject(value) && s.objects.length) {
    const fields = new Map();
    const index = [];
    const required = new Set();
    for (const o of s.objects) {
      for (const p of o.props) {
        (fields.get(p.name) ?? fields.set(p.name, []).get(p.name)).push(checker.getTypeOfSymbol(p));
        if (!(p.flags & ts.SymbolFlags.Optional) && s.objects.length === 1) required.add(p.name);
      }
      if (o.index) index.push(o.index);
    }
    for (const name of required) if (!(name in value)) out.push(`${child(at, name)}: required`);
    for (const [key, v] of Object.entries(value)) {
      const declared = fields.get(key) ?? index;
      if (!declared.length) {
        out.push(`${child(at, key)}: unknown field (known here: ${[...fields.keys()].sort().join(", ")})`);
        continue;
      }
      // A field declared by several intersected types (spec) must satisfy all of them.
      for (const t of declared) walk(checker, v, t, child(at, key), out);
    }
    return;
  }
  if (Array.isArray(value) && s.arrays.length) {
    value.forEach((v, i) => s.arrays.forEach((t) => walk(checker, v, t, child(at, i), out)));
    return;
  }
  if (typeof value === "string" && (s.string || s.literals.includes(value))) return;
  if (typeof value === "number" && s.number) return;
  if (typeof value === "boolean" && s.boolean) return;
  if (typeof value === "string" && s.literals.length) {
    out.push(`${at}: ${JSON.stringify(value)} is not one of ${s.literals.join(", ")}`);
    return;
  }
  const want = [s.objects.length && "object", s.arrays.length && "array", (s.string || s.literals.length) && "string", s.number && "number", s.boolean && "boolean"].filter(Boolean);
  out.push(`${at}: ${JSON.stringify(value)} is ${typeName(value)}, not ${want.join(" or ")}`);
}

// --- Envoy Gateway's constraints on the dynamic-module fields (kubebuilder markers) -----------

const NAME = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;
const text = (v, at, min, max, pattern, out) => {
  if (typeof v !== "string") return; // the type walk reports it
  if (v.length < min || v.length > max) out.push(`${at}: ${v.length} characters, not ${min} to ${max}`);
  if (pattern && !pattern.test(v)) out.push(`${at}: ${JSON.stringify(v)} does not match ${pattern.source}`);
};
const DYNAMIC_MODULE_RULES = {
  EnvoyProxy(spec, out) {
    const modules = spec?.dynamicModules;
    if (!Array.isArray(modules)) return;
    modules.forEach((m, i) => {
      const at = `$.spec.dynamicModules[${i}]`;
      text(m?.name, `${at}.name`, 1, 253, NAME, out);
      const src = m?.source;
      if (!isObject(src)) return;
      const type = src.type ?? "Local";
      if (type === "Remote" && !src.remote) out.push(`${at}.source: If type is Remote, remote field needs to be set.`);
      if (type !== "Remote" && src.remote) out.push(`${at}.source: If type is Remote, remote field needs to be set.`);
      if (type === "Local" && !src.local) out.push(`${at}.source: If type is Local, local field needs to be set.`);
      if (type === "Remote" && src.local) out.push(`${at}.source: If type is Remote, local field must not be set.`);
      if (isObject(src.local)) {
        text(src.local.path, `${at}.source.local.path`, 1, 4096, null, out);
        if (typeof src.local.path === "string" && !src.local.path.startsWith("/")) out.push(`${at}.source.local.path: not an absolute path`);
      }
      if (isObject(src.remote)) {
        text(src.remote.url, `${at}.source.remote.url`, 1, 4096, /^https?:\/\/[^/?#]+(?:[/?#].*)?$/, out);
        text(src.remote.sha256, `${at}.source.remote.sha256`, 0, 64, /^[a-f0-9]{64}$/, out);
      }
    });
    const names = modules.map((m) => m?.name);
    names.forEach((n, i) => names.indexOf(n) !== i && out.push(`$.spec.dynamicModules[${i}].name: ${JSON.stringify(n)} twice`));
  },
  EnvoyExtensionPolicy(spec, out) {
    const filters = spec?.dynamicModule;
    if (!Array.isArray(filters)) return;
    if (filters.length > 16) out.push(`$.spec.dynamicModule: ${filters.length} items, at most 16`);
    filters.forEach((f, i) => {
      text(f?.name, `$.spec.dynamicModule[${i}].name`, 1, 253, NAME, out);
      if (f?.filterName !== undefined) text(f.filterName, `$.spec.dynamicModule[${i}].filterName`, 0, 253, null, out);
    });
  },
};

// --- Checking the manifests --------------------------------------------------------------------

function manifests() {
  const docs = [];
  for (const name of fs.readdirSync(DIR).filter((n) => n.endsWith(".yaml")).sort()) {
    const rel = path.relative(ROOT, path.join(DIR, name));
    yaml.loadAll(fs.readFileSync(path.join(DIR, name), "utf8"), null, { filename: rel }).forEach((doc, i) => {
      if (doc != null) docs.push({ file: rel, index: i, doc });
    });
  }
  return docs;
}

/** The Gateway API documents under istio/ (any depth). */
function istioGatewayApiManifests() {
  const walk = (dir) =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const p = path.join(dir, e.name);
      return e.isDirectory() ? walk(p) : e.name.endsWith(".yaml") ? [p] : [];
    });
  const docs = [];
  for (const file of walk(path.join(ROOT, "istio")).sort()) {
    const rel = path.relative(ROOT, file);
    yaml.loadAll(fs.readFileSync(file, "utf8"), null, { filename: rel }).forEach((doc, i) => {
      if (doc != null && split(doc.apiVersion)[0] === "gateway.networking.k8s.io") docs.push({ file: rel, index: i, doc });
    });
  }
  return docs;
}

/** Problems of each document (by position in `docs`), each "path: message". */
async function check(docs) {
  const keys = new Map();
  const problems = docs.map(() => []);
  docs.forEach(({ doc }, i) => {
    if (!isObject(doc)) return problems[i].push("$: not a mapping");
    for (const field of ["apiVersion", "kind"]) if (typeof doc[field] !== "string") problems[i].push(`$.${field}: required`);
    if (!doc.metadata?.name) problems[i].push("$.metadata.name: required");
    const [group, version] = split(doc.apiVersion);
    const pkg = PACKAGES[group];
    if (!pkg) return problems[i].push(`$.apiVersion: ${JSON.stringify(doc.apiVersion)} is neither Envoy Gateway's nor the Gateway API's`);
    if (!/^[A-Za-z]+$/.test(doc.kind ?? "") || !/^v[0-9a-z]+$/.test(version) || !fs.existsSync(kindFile(pkg, group, version, doc.kind))) {
      return problems[i].push(`$.apiVersion: no kind ${doc.kind} in ${doc.apiVersion} in ${pkg} ${versions[pkg]}`);
    }
    const key = `${group}/${version} ${doc.kind}`;
    keys.set(key, { key, group, version, kind: doc.kind });
  });
  const { checker, types } = typesOf([...keys.values()]);
  for (const [i, { doc }] of docs.entries()) {
    if (problems[i].length) continue;
    const [group, version] = split(doc.apiVersion);
    const pkg = PACKAGES[group];
    const model = (await import(`${pkg}/${group}/${version}/${doc.kind}`))[doc.kind];
    try {
      new model(doc).validate();
    } catch (e) {
      if (!Array.isArray(e.errors)) throw e;
      for (const err of e.errors) problems[i].push(describe(doc, err));
    }
    walk(checker, doc, types.get(`${group}/${version} ${doc.kind}`), "$", problems[i]);
    if (group === "gateway.envoyproxy.io") DYNAMIC_MODULE_RULES[doc.kind]?.(doc.spec, problems[i]);
  }
  crossReferences(docs, problems);
  return problems.map((p) => [...new Set(p)].sort());
}

/** What Envoy Gateway checks between objects: the names each one refers to exist here. */
function crossReferences(docs, problems) {
  const ns = (doc) => doc.metadata?.namespace ?? "default";
  const all = (kind) => docs.filter(({ doc }) => doc?.kind === kind).map(({ doc }) => doc);
  const modules = new Set(all("EnvoyProxy").flatMap((p) => (p.spec?.dynamicModules ?? []).map((m) => m?.name)));
  const gateways = new Set(all("Gateway").map((g) => `${ns(g)}/${g.metadata?.name}`));
  const proxies = new Set(all("EnvoyProxy").map((p) => `${ns(p)}/${p.metadata?.name}`));
  const hasGateways = all("Gateway").length > 0;
  docs.forEach(({ doc }, i) => {
    if (!isObject(doc)) return;
    const out = problems[i];
    if (doc.kind === "EnvoyExtensionPolicy") {
      (doc.spec?.dynamicModule ?? []).forEach((m, j) => {
        if (!modules.has(m?.name)) out.push(`$.spec.dynamicModule[${j}].name: ${JSON.stringify(m?.name)} is registered by no EnvoyProxy here (registered: ${[...modules].join(", ") || "none"})`);
      });
    }
    const refs = doc.kind === "HTTPRoute" ? ["parentRefs", doc.spec?.parentRefs] : ["targetRefs", doc.spec?.targetRefs];
    if (hasGateways && Array.isArray(refs[1])) {
      refs[1].forEach((r, j) => {
        const name = `${r?.namespace ?? ns(doc)}/${r?.name}`;
        if ((r?.kind ?? "Gateway") === "Gateway" && !gateways.has(name)) out.push(`$.spec.${refs[0]}[${j}]: no Gateway ${name} here`);
      });
    }
    const params = doc.kind === "GatewayClass" ? doc.spec?.parametersRef : null;
    if (params?.kind === "EnvoyProxy" && !proxies.has(`${params.namespace ?? "default"}/${params.name}`)) {
      out.push(`$.spec.parametersRef: no EnvoyProxy ${params.namespace}/${params.name} here`);
    }
  });
}

// --- Self-test: broken manifests must be rejected, at the right path ---------------------------

async function selfTest(docs) {
  const find = (kind) => docs.findIndex(({ doc }) => doc?.kind === kind);
  const cases = [
    ["unknown field in dynamicModules", "EnvoyProxy", (d) => (d.spec.dynamicModules[0].doNotClos = true), "$.spec.dynamicModules[0].doNotClos: unknown field"],
    ["misspelt dynamicModules", "EnvoyProxy", (d) => ((d.spec.dynamicModule = d.spec.dynamicModules), delete d.spec.dynamicModules), "$.spec.dynamicModule: unknown field"],
    ["package field, unknown", "EnvoyProxy", (d) => (d.spec.provider.kubernetes.envoyDeployment.container.volumeMount = []), "$.spec.provider.kubernetes.envoyDeployment.container.volumeMount: unknown field"],
    ["Kubernetes core field, unknown", "EnvoyProxy", (d) => (d.spec.provider.kubernetes.envoyDeployment.pod.volumes[0].image.pullpolicy = "Always"), "$.spec.provider.kubernetes.envoyDeployment.pod.volumes[0].image.pullpolicy: unknown field"],
    ["bad enum", "EnvoyProxy", (d) => (d.spec.dynamicModules[0].source.type = "Image"), '$.spec.dynamicModules[0].source.type: "Image" is not one of'],
    ["missing required", "EnvoyProxy", (d) => delete d.spec.dynamicModules[0].source.local.path, "$.spec.dynamicModules[0].source.local.path: required"],
    ["union rule", "EnvoyProxy", (d) => delete d.spec.dynamicModules[0].source.local, "$.spec.dynamicModules[0].source: If type is Local"],
    ["wrong type", "EnvoyProxy", (d) => (d.spec.dynamicModules[0].doNotClose = "yes"), '$.spec.dynamicModules[0].doNotClose: "yes" is string, not boolean'],
    ["package enum", "EnvoyProxy", (d) => (d.spec.bootstrap.type = "Patch"), '$.spec.bootstrap.type: "Patch" is not one of'],
    ["bad name", "EnvoyExtensionPolicy", (d) => (d.spec.dynamicModule[0].name = "Dial"), '$.spec.dynamicModule[0].name: "Dial" does not match'],
    ["unknown field in dynamicModule", "EnvoyExtensionPolicy", (d) => (d.spec.dynamicModule[0].filter_name = "dial"), "$.spec.dynamicModule[0].filter_name: unknown field"],
    ["unregistered module", "EnvoyExtensionPolicy", (d) => (d.spec.dynamicModule[0].name = "dial2"), '$.spec.dynamicModule[0].name: "dial2" is registered by no EnvoyProxy'],
    ["Gateway API, unknown field", "HTTPRoute", (d) => (d.spec.rules[0].matches[0].header = []), "$.spec.rules[0].matches[0].header: unknown field"],
    ["Gateway API, bad enum", "HTTPRoute", (d) => (d.spec.rules[0].matches[0].headers[0].type = "Prefix"), '$.spec.rules[0].matches[0].headers[0].type: "Prefix" is not one of'],
    ["Gateway API, missing required", "Gateway", (d) => delete d.spec.gatewayClassName, "$.spec.gatewayClassName: required"],
    ["dangling parentRef", "HTTPRoute", (d) => (d.spec.parentRefs[0].name = "nowhere"), "$.spec.parentRefs[0]: no Gateway"],
    ["unknown version", "Gateway", (d) => (d.apiVersion = "gateway.networking.k8s.io/v9"), "$.apiVersion: no kind Gateway in gateway.networking.k8s.io/v9"],
  ];
  let passed = 0;
  let failed = 0;
  for (const [name, kind, edit, want] of cases) {
    const i = find(kind);
    if (i < 0) {
      failed++;
      console.log(`FAIL self-test ${name}: no ${kind} under ${path.relative(ROOT, DIR)}`);
      continue;
    }
    const broken = docs.map((d) => ({ ...d, doc: structuredClone(d.doc) }));
    edit(broken[i].doc);
    const got = (await check(broken))[i];
    const hit = got.find((p) => p.startsWith(want));
    if (hit) {
      passed++;
      console.log(`ok   self-test ${name}: ${hit}`);
    } else {
      failed++;
      console.log(`FAIL self-test ${name}: want a problem starting ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
    }
  }
  return { passed, failed };
}

// --- Main ----------------------------------------------------------------------------------------

const args = process.argv.slice(2);
for (const a of args) if (a !== "--self-test") die(`unknown argument ${a}\nusage: check_manifests.mjs [--self-test]`);

console.log(
  `schemas: ${Object.values(PACKAGES).map((p) => `${p} ${versions[p]}`).join(", ")}; ` +
    "Envoy Gateway v1.8's dynamic-module fields from dynamic_modules.d.ts; strict: unknown fields fail",
);
const docs = manifests();
let passed = 0;
let failed = 0;
for (const set of [docs, istioGatewayApiManifests()]) {
  const results = await check(set);
  for (const [i, { file, index, doc }] of set.entries()) {
    const where = file + (index ? ` (document ${index + 1})` : "");
    if (results[i].length) {
      failed++;
      for (const p of results[i]) console.log(`FAIL ${where}: ${p}`);
    } else {
      passed++;
      console.log(`ok   ${where}: ${doc.kind} ${doc.metadata.namespace ? `${doc.metadata.namespace}/` : ""}${doc.metadata.name}`);
    }
  }
}
if (!docs.some(({ doc }) => doc?.kind === "EnvoyProxy") || !docs.some(({ doc }) => doc?.kind === "EnvoyExtensionPolicy")) {
  failed++;
  console.log(`FAIL ${path.relative(ROOT, DIR)}: no EnvoyProxy or no EnvoyExtensionPolicy`);
}
if (args.includes("--self-test")) {
  const r = await selfTest(docs);
  passed += r.passed;
  failed += r.failed;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
