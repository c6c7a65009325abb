#!/usr/bin/env python3
"""Checks the OCI image `make oci` built, as Istio's fetcher will read it.

Unpacks the archive (dial-oci.tar), then follows index.json -> manifest -> config and layers,
checking every descriptor's media type, sha256 digest and size against the blob it names; the
config's diff_id against the uncompressed layer; and that the last layer is a tar.gz whose
plugin.wasm is byte-identical to the built module. Also checks the build is reproducible and
that a corrupted blob is caught. Then an independent reader: skopeo (`make oci-tools` installs
it) must accept the layout and the archive and report the digest `make oci` printed (and wrote
to <oci out dir>/digest).

Usage: check_oci_image.py <oci out dir> <plugin.wasm>
"""

import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
BUILD = HERE.parents[2] / "istio" / "oci" / "build_image.py"


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(root, descriptor, media_type):
    """The blob a descriptor names, after checking its media type, digest and size."""
    assert descriptor["mediaType"] == media_type, f"media type {descriptor['mediaType']} != {media_type}"
    algo, hexdigest = descriptor["digest"].split(":", 1)
    assert algo == "sha256", descriptor["digest"]
    data = (root / "blobs" / "sha256" / hexdigest).read_bytes()
    assert sha(data) == descriptor["digest"], f"blob {hexdigest[:12]} does not match its digest"
    assert len(data) == descriptor["size"], f"blob {hexdigest[:12]}: size {len(data)} != {descriptor['size']}"
    return data


def check_layout(root, wasm):
    """Returns the manifest digest; raises AssertionError on any defect."""
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    assert index["schemaVersion"] == 2
    assert len(index["manifests"]) == 1
    top = index["manifests"][0]
    manifest = json.loads(blob(root, top, "application/vnd.oci.image.manifest.v1+json"))
    assert manifest["schemaVersion"] == 2
    config = json.loads(blob(root, manifest["config"], "application/vnd.oci.image.config.v1+json"))
    layers = manifest["layers"]
    assert layers, "no layers"
    last = blob(root, layers[-1], "application/vnd.oci.image.layer.v1.tar+gzip")
    tar_bytes = gzip.decompress(last)
    assert config["rootfs"]["diff_ids"][-1] == sha(tar_bytes), "diff_id does not match the layer"
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        names = tar.getnames()
        assert names == ["plugin.wasm"], names
        extracted = tar.extractfile("plugin.wasm").read()
    assert extracted == wasm, "plugin.wasm differs from the built module"
    return top["digest"]


def main():
    out, wasm_path = Path(sys.argv[1]), Path(sys.argv[2])
    wasm = wasm_path.read_bytes()
    passed = failed = 0

    def case(name, fn):
        nonlocal passed, failed
        try:
            fn()
            passed += 1
            print(f"ok   {name}")
        except AssertionError as e:
            failed += 1
            print(f"FAIL {name}: {e}")

    with tempfile.TemporaryDirectory() as tmp:
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(out / "dial-oci.tar") as t:
            t.extractall(unpacked, filter="data")
        digest = {}

        def archive_is_valid():
            digest["archive"] = check_layout(unpacked, wasm)

        def layout_dir_matches_archive():
            assert check_layout(out / "layout", wasm) == digest["archive"]

        def build_is_reproducible():
            again = Path(tmp) / "again"
            index = json.loads((out / "layout" / "index.json").read_text())
            tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
            run = subprocess.run([sys.executable, str(BUILD), str(wasm_path), str(again), tag], check=True,
                                 capture_output=True, text=True)
            assert check_layout(again / "layout", wasm) == digest["archive"], "a rebuild changed the digest"
            printed = re.search(r"^manifest digest \(WasmPlugin sha256\): ([0-9a-f]{64})$", run.stdout, re.M)
            assert printed, f"build_image.py printed no manifest digest: {run.stdout!r}"
            assert "sha256:" + printed[1] == digest["archive"], f"printed {printed[1]}, built {digest['archive']}"
            assert (again / "digest").read_text().strip() == digest["archive"], "digest file != the image's"

        def skopeo_reads_the_digest_make_oci_printed():
            printed = (out / "digest").read_text().strip()
            assert printed == digest["archive"], f"{out / 'digest'} says {printed}, the image is {digest['archive']}"
            index = json.loads((out / "layout" / "index.json").read_text())
            tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
            manifest = json.loads((out / "layout/blobs/sha256" / printed[7:]).read_text())
            for ref in (f"oci:{out / 'layout'}:{tag}", f"oci-archive:{out / 'dial-oci.tar'}:{tag}"):
                for raw in (False, True):
                    cmd = ["skopeo", "inspect"] + (["--raw"] if raw else []) + [ref]
                    try:
                        run = subprocess.run(cmd, capture_output=True)
                    except FileNotFoundError:
                        raise AssertionError("skopeo not found: run make oci-tools (make oci-test does)")
                    assert run.returncode == 0, f"{' '.join(cmd)} failed: {run.stderr.decode().strip()}"
                    if raw:
                        assert sha(run.stdout) == printed, f"{ref}: the manifest skopeo reads hashes to {sha(run.stdout)}"
                        continue
                    info = json.loads(run.stdout)
                    assert info["Digest"] == printed, f"skopeo reports {info['Digest']} for {ref}, make oci printed {printed}"
                    assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]], info["Layers"]
                    assert (info["Architecture"], info["Os"]) == ("wasm", "wasip1"), info

        def corrupted_blob_is_caught():
            index = json.loads((unpacked / "index.json").read_text())
            manifest = json.loads((unpacked / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
            layer = unpacked / "blobs/sha256" / manifest["layers"][-1]["digest"][7:]
            data = bytearray(layer.read_bytes())
            data[len(data) // 2] ^= 0xFF
            layer.write_bytes(bytes(data))
            try:
                check_layout(unpacked, wasm)
            except AssertionError as e:
                assert "does not match its digest" in str(e), e
                return
            raise AssertionError("a corrupted layer passed the check")

        case("the archive unpacks to a valid layout holding the module", archive_is_valid)
        case("the layout directory is the same image", layout_dir_matches_archive)
        case("the build is reproducible", build_is_reproducible)
        case("skopeo reads the layout and the archive, with the digest make oci printed",
             skopeo_reads_the_digest_make_oci_printed)
        case("a corrupted blob is caught", corrupted_blob_is_caught)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
