#!/usr/bin/env python3
"""Builds an OCI image of Dial that Istio's Wasm image fetcher accepts, without Docker or network.

Istio's "compat" format: an ordinary OCI image whose last layer is a gzipped tar holding
`plugin.wasm` (media type application/vnd.oci.image.layer.v1.tar+gzip). Writes:

  <out>/layout/      an OCI image layout (oci-layout, index.json, blobs/sha256/...)
  <out>/dial-oci.tar the same layout as one tarball (skopeo's oci-archive)
  <out>/digest       the manifest digest, sha256:<hex>

The build is reproducible (fixed timestamps and owners), so the same module gives the same
manifest digest: the `sha256` a WasmPlugin pins. Prints that digest.

Usage: build_image.py <plugin.wasm> <out dir> [tag]
"""

import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(wasm: bytes) -> bytes:
    """An uncompressed tar with one entry, plugin.wasm, owned by root, dated the epoch."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("plugin.wasm")
        info.size = len(wasm)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(wasm))
    return buf.getvalue()


def gzip_fixed(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def canonical(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def build(wasm_path: Path, out: Path, tag: str) -> str:
    wasm = wasm_path.read_bytes()
    tar = layer_tar(wasm)
    layer = gzip_fixed(tar)
    config = canonical({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest(tar)]},
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": LAYER, "digest": digest(layer), "size": len(layer)}],
        "annotations": {"org.opencontainers.image.title": "dial", "org.opencontainers.image.version": tag},
    })
    index = canonical({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{
            "mediaType": MANIFEST,
            "digest": digest(manifest),
            "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    })

    layout = out / "layout"
    shutil.rmtree(layout, ignore_errors=True)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (config, layer, manifest):
        (blobs / digest(blob).split(":", 1)[1]).write_bytes(blob)
    (layout / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_bytes(index)

    archive = out / "dial-oci.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as t:
        for path in sorted(p for p in layout.rglob("*") if p.is_file()):
            info = t.gettarinfo(str(path), arcname=str(path.relative_to(layout)))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as f:
                t.addfile(info, f)
    return digest(manifest)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    wasm, out = Path(sys.argv[1]), Path(sys.argv[2])
    tag = sys.argv[3] if len(sys.argv) > 3 else "latest"
    if not wasm.exists():
        sys.exit(f"{wasm} not found: run make build")
    manifest_digest = build(wasm, out, tag)
    (out / "digest").write_text(manifest_digest + "\n")
    print(f"OCI image layout: {out / 'layout'} (tag {tag}); archive: {out / 'dial-oci.tar'}")
    print(f"manifest digest (WasmPlugin sha256): {manifest_digest.split(':', 1)[1]}")


if __name__ == "__main__":
    main()
