#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into tests/fuzz/corpus/<target>/ (run from anywhere:
`python3 tests/fuzz/seeds.py`). Seeds are small, readable where the format allows, and come
from the project's own data: the policies of tests/data/ and tests/fuzz/policies/, every bad
policy of tests/data/bad-policies.json, realistic header maps, cookies and override values.

A finding is added as a file of its own next to these (named for what it found), so that
tests/fuzz_corpus.rs replays it on stable from then on; this script never deletes files."""

import json
import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
DATA = FUZZ.parent / "data"
CORPUS = FUZZ / "corpus"

# The order of tests/fuzz/src/fixtures.rs's POLICIES.
POLICIES = ["checkout", "bench", "progressive", "open", "schemes"]

# The order of tests/fuzz/src/decide.rs's NAMES.
NAMES = [":authority", ":path", ":method", "x-user-id", "cookie", "x-beta", "x-group",
         "x-dial-subset", "x-dial-version", "x-dial-mirror", "x-dial-override", "x-route-subset",
         "x-route-version", "x-shadow", "x-assign", "x-tenant", "x-debug", "x-qa", "x-force",
         "x-dial-assignment", "host", "user-agent", ":scheme", "x-request-id", "baggage"]


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def pointer_set(doc, pointer, value):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    node = doc
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    last = parts[-1]
    if isinstance(node, list):
        i = len(node) if last == "-" else int(last)
        if i == len(node):
            node.append(value)
        else:
            node[i] = value
    else:
        node[last] = value


def policies():
    good = [DATA / "checkout.json", DATA / "bench.json"] + sorted((FUZZ / "policies").glob("*.json"))
    for path in good:
        write("policy", "good-" + path.stem, path.read_bytes())
    bad = json.loads((DATA / "bad-policies.json").read_text())
    for i, case in enumerate(bad["cases"]):
        if "raw" in case:
            text = case["raw"]
        else:
            doc = json.loads(json.dumps(bad["base"]))
            pointer_set(doc, case["set"], case["value"])
            text = json.dumps(doc)
        write("policy", "bad-%02d" % i, text)
    # Secrets written wrong: the rejection must not repeat them.
    base = json.loads((DATA / "checkout.json").read_text())
    for name, token in [("short", "tok-12345"), ("number", 12345678901234567), ("spaces", "qa token 0123456789 x")]:
        doc = json.loads(json.dumps(base))
        doc["releases"][0]["override"]["token"] = token
        write("policy", "secret-token-" + name, json.dumps(doc))
    doc = json.loads(json.dumps(base))
    doc["releases"][0]["whenNoKey"]["stickyCookie"]["secret"] = "short-secret"
    write("policy", "secret-sticky-short", json.dumps(doc))


def serialize(pairs):
    out = struct.pack("<I", len(pairs))
    for n, v in pairs:
        out += struct.pack("<II", len(n), len(v))
    for n, v in pairs:
        out += n + b"\0" + v + b"\0"
    return out


def headers():
    checkout = [(b":authority", b"shop.example.com"), (b":path", b"/checkout/pay?x=1"),
                (b":method", b"GET"), (b"cookie", b"session=abc; uid=u-42"),
                (b"x-user-id", b"alice"), (b"cookie", b"beta=1"), (b"x-dial-subset", b"canary")]
    write("headers", "checkout", serialize(checkout))
    write("headers", "empty", b"")
    write("headers", "none", serialize([]))
    write("headers", "empty-values", serialize([(b"", b""), (b"x", b"")]))
    write("headers", "binary", serialize([(b"x-user-id", b"\xff\x00bin"), (b"\xc3\x28", b"v")]))
    full = serialize(checkout[:3])
    write("headers", "truncated", full[:-1])
    write("headers", "trailing", full + b"junk")
    write("headers", "huge-count", struct.pack("<I", 0xFFFFFFFF) + full[4:])
    write("headers", "huge-length", full[:4] + struct.pack("<II", 0xFFFFFFFF, 1) + full[12:])


def cookies():
    cases = {
        "several": "uid\0session=abc; beta=1; uid=u-42",
        "spacing": "beta\0  a=1 ;\tbeta = 1 ;; ",
        "quoted": "beta\0beta=\"1\"; q=\"",
        "equals-in-value": "tok\0tok=a=b==",
        "no-equals": "uid\0beta; uid=7",
        "prefix-names": "beta\0xbeta=1; betax=2; beta=3",
        "headers": "beta\0a=1\0beta=first\0beta=second; c=3",
        "sticky-bare": "dial-checkout\0dial-checkout=0123456789abcdef",
        "sticky-signed": "dial-checkout\0dial-checkout=0123456789abcdef.0011223344556677",
        "empty-name": "\0=1; a=2",
    }
    for name, text in cases.items():
        write("cookie", name, text)


def cookies_rfc6265():
    # Whitespace RFC 6265 does not call OWS, which the cookie crate trims and Dial does not.
    cases = {
        "not-ows-cr": b"uid\0uid=7\r; beta=1",
        "not-ows-nbsp": b"beta\0\xa0beta=1; beta=2",
        "not-ows-newline": b"beta\0beta\n=1; beta=2\0beta=3",
    }
    for name, data in cases.items():
        write("cookie", name, data)


def instants():
    cases = {
        "utc": "2026-12-01T09:00:00Z",
        "offset": "2026-12-01T10:00:00+01:00",
        "negative-offset": "2026-12-01T04:30:00-04:30",
        "lowercase": "2026-12-01t09:00:00z",
        "space": "2026-12-01 09:00:00Z",
        "other-separator": "2026-12-01x09:00:00Z",
        "fraction": "2024-02-29T23:59:59.5Z",
        "nanoseconds": "2000-03-01T00:00:00.000000001Z",
        "ten-digit-fraction": "2000-03-01T00:00:00.0000000001Z",
        "leap-second": "2016-12-31T23:59:60Z",
        "second-60-any-minute": "2026-12-01T09:00:60.25+01:00",
        "epoch": "1970-01-01T00:00:00Z",
        "before-epoch": "1969-12-31T23:59:59Z",
        "epoch-by-offset": "1970-01-01T01:00:00+01:00",
        "past-u64": "2554-07-21T23:34:34Z",
        "last-u64": "2554-07-21T23:34:33.709551615Z",
        "not-leap-year": "2100-02-29T00:00:00Z",
        "offset-24": "2026-12-01T09:00:00+24:00",
        "unknown-offset": "2026-12-01T09:00:00-00:00",
        "trailing": "2026-12-01T09:00:00Zjunk",
    }
    for name, text in cases.items():
        write("instant", name, text)


def overrides():
    cases = {
        "token": b"canary; token=qa-token-0123456789\x0010.0.0.0/8\x00\x01\x03\x02\x01\x0a",
        "bare": b"canary\x00fd00::/8\x00\x02" + bytes(8) + bytes([0, 0, 0, 0, 0, 0, 0x12, 0xfd]),
        "mapped": b"stable\x00::ffff:10.0.0.0/104\x00\x03\x01\x00\x00\x0a",
        "spaces": b" canary ; token=qa-token-0123456789 \x0010.0.0.0/33\x00\x00",
        "wrong-token": b"canary; tok=x\x000.0.0.0/0\x00\x01\x08\x08\x08\x08",
        "empty": b"\x00\x00",
        "prefix-zeros": b"next\x00127.0.0.1/0008\x00\x01\x01\x00\x00\x7f",
    }
    for name, data in cases.items():
        write("override_header", name, data)


def value(v):
    if isinstance(v, str):
        v = v.encode()
    if len(v) < 255:
        return bytes([len(v)]) + v
    return bytes([255, len(v) & 0xFF, len(v) >> 8]) + v


def request(headers, entropy=0x1234, now=None, tripped=None, ip=None):
    mode, clock = 0, b""
    if now is not None:
        kind, n = now
        mode = {"raw": 1, "after": 2, "before": 3}[kind]
        clock = struct.pack("<Q", n) if kind == "raw" else struct.pack("<I", n)
    flags = mode << 2 | (0x10 if tripped is not None else 0)
    out = bytes([flags]) + struct.pack("<Q", entropy) + clock
    if tripped is not None:
        out += bytes([tripped])
    if ip is None:
        out += b"\x00"
    elif len(ip) == 4:
        out += b"\x01" + bytes(reversed(ip))
    else:
        hi, lo = int.from_bytes(ip[:8], "big"), int.from_bytes(ip[8:], "big")
        out += b"\x02" + struct.pack("<QQ", hi, lo)
    for name, v in headers:
        if name in NAMES:
            out += bytes([NAMES.index(name)])
        else:
            out += b"\xff" + value(name)
        out += value(v)
    return out


def decisions():
    shop = [(":authority", "shop.example.com"), (":path", "/checkout/pay"), (":method", "GET")]
    cases = {
        "checkout-user": shop + [("x-user-id", "alice")],
        "checkout-spoofed": shop + [("x-user-id", "u-1"), ("x-dial-subset", "canary"),
                                    ("x-dial-version", "v2"), ("x-dial-mirror", "v3")],
        "checkout-override": shop + [("x-dial-override", "canary; token=qa-token-0123456789")],
        "checkout-cookies": shop + [("cookie", "session=abc; uid=u-42"), ("cookie", "beta=1")],
        "checkout-sticky": shop + [("cookie", "dial-checkout=0000000000000001")],
        "checkout-anonymous": shop,
        "checkout-long-key": shop + [("x-user-id", "k" * 1025), ("cookie", "uid=" + "k" * 1024)],
        "checkout-rule": shop + [("x-beta", "true"), ("x-group", "qa")],
        "checkout-host-case": [(":authority", "SHOP.example.com.:8443"), (":path", "/checkout")],
        "search": [(":path", "/search?q=x"), (":method", "GET"), ("x-user-id", "bob")],
        "progressive-ramp": [(":authority", "a.example.com"), (":path", "/app/home"), (":method", "POST"),
                             ("x-user-id", "carol"), ("x-route-subset", "c")],
        "progressive-tripped": [(":authority", "api.example.org:443"), (":path", "/api/v1"),
                                ("x-user-id", "dave"), ("x-tenant", "beta-7")],
        "progressive-rules": [(":authority", "b.example.com"), (":path", "/app"), ("x-group", "staff"),
                              ("x-debug", ""), ("x-shadow", "v9")],
        "rest-override-range": [(":authority", "other.example.net"), (":path", "/"), ("x-qa", "canary")],
        "rest-sticky": [(":authority", "other.example.net"), (":path", "/"),
                        ("cookie", "dial-rest=0123456789abcdef.0011223344556677")],
        "rest-allowlist": [(":authority", "x"), ("cookie", "sid=alice")],
        "open-force": [("x-force", "next"), (":method", "HEAD")],
        "open-beta": [("cookie", "beta=yes"), ("x-user-id", "")],
        "baggage": [(":path", "/u/1"), ("baggage", "user.id=alice,tenant=acme;prop=1")],
        "baggage-variants": [(":path", "/v"), ("baggage", "user.id=b%C3%B6b")],
        "flagd": [(":path", "/f1"), ("x-user-id", "erin"), (":path", "/f"), ("cookie", "uid=erin")],
        "custom-name": [(":path", "/checkout"), ("x-other", "1")],
    }
    options = {
        "progressive-ramp": dict(now=("after", 1800)),
        "progressive-tripped": dict(now=("after", 700), tripped=1),
        "rest-override-range": dict(ip=bytes([10, 1, 2, 3])),
        "rest-sticky": dict(ip=bytes([0xfd] + [0] * 14 + [1])),
        "open-force": dict(now=("raw", 1_800_000_000_000_000_000)),
        "baggage": dict(now=("before", 60)),
        "flagd": dict(now=("after", 601)),
    }
    for name, hs in cases.items():
        for i, policy in enumerate(POLICIES):
            write("decide", "%s-%s" % (policy, name), bytes([i]) + request(hs, **options.get(name, {})))


if __name__ == "__main__":
    policies()
    headers()
    cookies()
    cookies_rfc6265()
    instants()
    overrides()
    decisions()
    for d in sorted(CORPUS.iterdir()):
        files = list(d.iterdir())
        print("%-16s %3d files, %6d bytes" % (d.name, len(files), sum(f.stat().st_size for f in files)))
