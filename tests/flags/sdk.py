"""The Python flag SDKs, driven offline for tests/flags.rs: JSON cases on stdin, every key's
answer from the SDK itself on stdout. Nothing here computes a bucket: each answer is what the
installed SDK returns through its public evaluation API.

Input:  {"keys": [..], "cases": [{"id", "sdk", ...}]}
Output: {"versions": {package: version}, "answers": {id: [answer per key]}}

sdks:
- "unleash": UnleashClient (its Unleash engine, yggdrasil-engine), bootstrapped from the case's
  `features` (the client API's format), no server: `is_enabled` ("kind": "enabled") or
  `get_variant` ("kind": "variant") of `toggle` with context {"userId": key}.
- "flagd-v2": openfeature-flagd-core 1.x (the in-process evaluator of openfeature-provider-flagd
  0.4 and 0.5): `FlagdCore.set_flags(flags)`, `resolve_string_value(flag, ...)` with
  targetingKey = key. Answers are the resolved values.
- "flagd-v3": the same with openfeature-flagd-core 2.x (the CBOR-encoded `fractional`), which
  conflicts with 1.x: run this script with .venv/flagd-v3's Python for it.
- "flagd-v1": openfeature-provider-flagd 0.3 (the last release with its own, float, evaluator),
  in file mode through the OpenFeature API, with targetingKey = key.
"""

import json
import os
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version

PACKAGES = [
    "UnleashClient",
    "yggdrasil-engine",
    "openfeature-flagd-core",
    "openfeature-provider-flagd",
    "openfeature-sdk",
    "mmh3",
    "cbor2",
]


def installed():
    """The versions of PACKAGES in this Python (each venv has some of them)."""
    out = {}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            pass
    return out


def flagd_core(major):
    """openfeature-flagd-core's FlagdCore, refusing any other major version than `major`."""
    got = installed().get("openfeature-flagd-core", "none")
    if got.split(".")[0] != major:
        raise SystemExit(f"openfeature-flagd-core {major}.x wanted, {got} installed")
    from openfeature.contrib.tools.flagd.core import FlagdCore

    return FlagdCore


def unleash(cases, keys, scratch):
    from UnleashClient import UnleashClient
    from UnleashClient.cache import FileCache

    features = [f for case in cases for f in case["features"]]
    cache = FileCache("dial-flags", directory=scratch)
    cache.bootstrap_from_dict({"version": 1, "features": features})
    # Bootstrapped, never initialised: no registration, metrics or polling; the URL (loopback) is
    # never contacted.
    client = UnleashClient(
        url="http://127.0.0.1:9",
        app_name="dial-flags",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
    )
    out = {}
    for case in cases:
        toggle = case["toggle"]
        if case["kind"] == "enabled":
            out[case["id"]] = [client.is_enabled(toggle, {"userId": k}) for k in keys]
        else:
            out[case["id"]] = [
                client.get_variant(toggle, {"userId": k})["name"] for k in keys
            ]
    # No destroy(): nothing was started (it would log that the scheduler is not running).
    return out


def flagd_in_process(FlagdCore, cases, keys):
    from openfeature.evaluation_context import EvaluationContext

    out = {}
    for case in cases:
        core = FlagdCore()
        core.set_flags({"flags": case["flags"]})
        out[case["id"]] = [
            core.resolve_string_value(
                case["flag"], "fallback", EvaluationContext(targeting_key=k)
            ).value
            for k in keys
        ]
    return out


def flagd_v1(cases, keys, scratch):
    from openfeature import api
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType
    from openfeature.evaluation_context import EvaluationContext

    flags = {}
    for case in cases:
        flags.update(case["flags"])
    path = os.path.join(scratch, "flags.json")
    with open(path, "w", encoding="utf8") as f:
        json.dump({"flags": flags}, f)
    provider = FlagdProvider(
        resolver_type=ResolverType.FILE, offline_flag_source_path=path
    )
    # The file is read on a thread of its own: wait until the provider says it is ready.
    api.set_provider_and_wait(provider)
    client = api.get_client()
    first = client.get_string_details(cases[0]["flag"], "fallback", EvaluationContext(targeting_key="x"))
    if first.error_code is not None:
        raise SystemExit(f"flagd provider not usable: {first}")
    out = {}
    for case in cases:
        out[case["id"]] = [
            client.get_string_value(
                case["flag"], "fallback", EvaluationContext(targeting_key=k)
            )
            for k in keys
        ]
    api.shutdown()
    return out


def main():
    request = json.load(sys.stdin)
    keys = request["keys"]
    by_sdk = {}
    for case in request["cases"]:
        by_sdk.setdefault(case["sdk"], []).append(case)
    answers = {}
    with tempfile.TemporaryDirectory(prefix="dial-flags-") as scratch:
        for sdk, cases in by_sdk.items():
            if sdk == "unleash":
                answers.update(unleash(cases, keys, scratch))
            elif sdk == "flagd-v2":
                answers.update(flagd_in_process(flagd_core("1"), cases, keys))
            elif sdk == "flagd-v3":
                answers.update(flagd_in_process(flagd_core("2"), cases, keys))
            elif sdk == "flagd-v1":
                answers.update(flagd_v1(cases, keys, scratch))
            else:
                raise SystemExit(f"unknown sdk {sdk!r}")
    json.dump(
        {"versions": installed(), "answers": answers},
        sys.stdout,
        ensure_ascii=False,
    )


if __name__ == "__main__":
    main()
