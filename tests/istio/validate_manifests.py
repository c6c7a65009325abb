#!/usr/bin/env python3
"""An extra check, where Istio's CRDs are at hand: every manifest under istio/ against the CRD
schemas in ../shared/istio/crd-all.gen.yaml (or $DIAL_ISTIO_CRDS).

Optional: CI has that file, a fresh clone does not. Without it this prints that it is skipped and
exits 0. The required check is tests/istio/check_manifests.mjs (`make istio-test` runs both), on
schemas from a pinned npm package; this one adds Istio's CRDs as published, whatever their version.

Istio kinds (networking, extensions, security, telemetry) are checked against the OpenAPI v3
schema of the served version their apiVersion names, strictly: an unknown field is an error, as
`kubectl apply --validate=strict` would make it. Errors name the file and the field path.
Kinds that are not Istio CRDs (Flagger, Argo Rollouts, IstioOperator) are listed and checked for
shape only. CEL rules (x-kubernetes-validations) are not evaluated.

Usage: validate_manifests.py [--self-test] [--dir DIR]
  --self-test  also checks that broken manifests are rejected with the right path.
  --dir DIR    the manifests under DIR instead of istio/ (the rendered copy, image and digest
               filled in: `make istio-quickstart-test`).
"""

import copy
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CRDS = Path(os.environ.get("DIAL_ISTIO_CRDS", ROOT.parent / "shared" / "istio" / "crd-all.gen.yaml"))
ISTIO_GROUPS = {"networking.istio.io", "extensions.istio.io", "security.istio.io", "telemetry.istio.io"}
# Not Istio CRDs: no schema in crd-all.gen.yaml. The core group ("": the ConfigMap that hands
# the gateway's proxy its secrets) and the Deployment patches are Kubernetes' own; the Gateway
# API's kinds are checked by tests/gateway/check_manifests.mjs.
EXTERNAL_GROUPS = {"install.istio.io", "flagger.app", "argoproj.io", "apps", "", "gateway.networking.k8s.io"}


def strict(schema):
    """Kubernetes structural schema -> JSON Schema that refuses unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-validations")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def load_schemas():
    schemas = {}
    for crd in yaml.safe_load_all(CRDS.read_text()):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        for v in spec["versions"]:
            if v.get("served"):
                root = copy.deepcopy(v["schema"]["openAPIV3Schema"])
                # Object metadata is Kubernetes', not in Istio's schema.
                root.setdefault("properties", {}).update(
                    apiVersion={"type": "string"},
                    kind={"type": "string"},
                    metadata={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                )
                schema = strict(root)
                schemas[(spec["group"], spec["names"]["kind"], v["name"])] = schema
    return schemas


def path_of(error):
    out = "$"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check(doc, schemas):
    """Problems of one manifest, each 'path: message'."""
    if not isinstance(doc, dict):
        return ["$: not a mapping"]
    problems = []
    api = doc.get("apiVersion", "")
    kind = doc.get("kind", "")
    group, _, version = api.rpartition("/")
    for field in ("apiVersion", "kind"):
        if not doc.get(field):
            problems.append(f"$.{field}: required")
    if not (doc.get("metadata") or {}).get("name"):
        problems.append("$.metadata.name: required")
    if group in ISTIO_GROUPS:
        schema = schemas.get((group, kind, version))
        if schema is None:
            problems.append(f"$.apiVersion: no served version {api} of kind {kind} in the Istio CRDs")
        else:
            validator = jsonschema.Draft7Validator(schema)
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
                problems.append(f"{path_of(e)}: {e.message}")
    elif group not in EXTERNAL_GROUPS:
        problems.append(f"$.apiVersion: {api!r} is neither an Istio CRD nor a known external kind")
    return problems


def manifest_dir():
    if "--dir" not in sys.argv:
        return ROOT / "istio"
    at = sys.argv.index("--dir") + 1
    if at >= len(sys.argv) or not Path(sys.argv[at]).is_dir():
        sys.exit("--dir needs a directory")
    return Path(sys.argv[at]).resolve()


def manifests():
    base = manifest_dir()
    for path in sorted(base.rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                yield rel, i, doc


def self_test(schemas):
    """Broken manifests must be rejected, at the right path."""
    by_kind = {}
    for _, _, doc in manifests():
        by_kind.setdefault(doc["kind"], doc)
    plugin, vs, dr = by_kind["WasmPlugin"], by_kind["VirtualService"], by_kind["DestinationRule"]

    def broken(doc, edit):
        d = copy.deepcopy(doc)
        edit(d)
        return d

    cases = [
        ("unknown field", broken(plugin, lambda d: d["spec"].update(phse="AUTHZ")),
         "$.spec: Additional properties are not allowed ('phse' was unexpected)"),
        ("bad enum", broken(plugin, lambda d: d["spec"].update(phase="LATE")),
         "$.spec.phase: 'LATE' is not one of"),
        ("bad sha256", broken(plugin, lambda d: d["spec"].update(sha256="xyz")),
         "$.spec.sha256: 'xyz' does not match"),
        ("wrong type", broken(plugin, lambda d: d["spec"].update(priority="high")),
         "$.spec.priority: 'high' is not of type 'integer'"),
        ("nested unknown field", broken(vs, lambda d: d["spec"]["http"][0]["route"][0]["destination"].update(subst="v2")),
         "$.spec.http[0].route[0].destination: Additional properties are not allowed ('subst' was unexpected)"),
        ("missing required", broken(dr, lambda d: d["spec"].pop("host")),
         "$.spec: 'host' is a required property"),
        ("unknown version", broken(vs, lambda d: d.update(apiVersion="networking.istio.io/v9")),
         "$.apiVersion: no served version networking.istio.io/v9 of kind VirtualService"),
    ]
    passed = failed = 0
    for name, doc, want in cases:
        got = check(doc, schemas)
        if any(p.startswith(want) for p in got):
            passed += 1
        else:
            failed += 1
            print(f"self-test {name}: want a problem starting {want!r}, got {got}")
    return passed, failed


def main():
    if not CRDS.is_file():
        print(f"skipped: the extra check against Istio's CRDs, as {CRDS} is absent"
              " (optional, CI has it; tests/istio/check_manifests.mjs is the required check)")
        return
    # Imported here: without the CRDs, nothing else is needed.
    global jsonschema, yaml
    import jsonschema
    import yaml

    print(f"schemas: {CRDS}")
    schemas = load_schemas()
    passed = failed = 0
    for path, i, doc in manifests():
        where = f"{path}" + (f" (document {i + 1})" if i else "")
        problems = check(doc, schemas)
        group = doc.get("apiVersion", "").rpartition("/")[0] if isinstance(doc, dict) else ""
        if problems:
            failed += 1
            for p in problems:
                print(f"FAIL {where}: {p}")
        else:
            passed += 1
            how = "schema" if group in ISTIO_GROUPS else "shape only (not an Istio CRD)"
            print(f"ok   {where}: {doc['kind']} {doc['metadata']['name']} [{how}]")
    if "--self-test" in sys.argv:
        p, f = self_test(schemas)
        passed, failed = passed + p, failed + f
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
