#!/usr/bin/env python3
"""Writes the Istio manifests under istio/ with your image filled in, ready to apply.

The shipped WasmPlugins name an example image and an all-zero sha256, which no image has: applied
unchanged, the fetch fails (and `dial validate` says so). This copies istio/ to <out>, and in
every WasmPlugin that names the example image, writes <image> as its `url` and the manifest
digest `make oci` computed for this build (<oci dir>/digest) as its `sha256`. Everything else,
comments included, is copied byte for byte. Push the image under <image> with your own tool
(crane, oras, skopeo: the OCI layout is <oci dir>/layout), then apply <out>.

Usage: render_manifests.py <istio dir> <oci dir> <out dir> [image]
  image  oci://<registry>/<repository>:<tag>; default: the example's, which you must change
         before applying (the render says so).
"""

import re
import shutil
import sys
from pathlib import Path

EXAMPLE_IMAGE = "oci://registry.example.com/platform/dial:0.1.0"
PLACEHOLDER_DIGEST = "0" * 64
URL = re.compile(r'^(\s*url:\s*)"?' + re.escape(EXAMPLE_IMAGE) + r'"?\s*$', re.M)
SHA = re.compile(r'^(\s*sha256:\s*)"' + PLACEHOLDER_DIGEST + r'"\s*$', re.M)
IMAGE = re.compile(r"^oci://[^\s/]+/[^\s:@]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    src, oci, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    image = sys.argv[4] if len(sys.argv) == 5 and sys.argv[4] else EXAMPLE_IMAGE
    if not IMAGE.match(image):
        sys.exit(f"not an OCI image reference: {image!r} (want oci://<registry>/<repository>:<tag>)")
    digest_file = oci / "digest"
    if not digest_file.exists():
        sys.exit(f"{digest_file} not found: run make oci")
    digest = digest_file.read_text().strip().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        sys.exit(f"{digest_file}: not a sha256 digest: {digest!r}")

    if out.exists():
        shutil.rmtree(out)
    rendered = 0
    for path in sorted(src.rglob("*")):
        target = out / path.relative_to(src)
        if path.is_dir():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix != ".yaml":
            shutil.copyfile(path, target)
            continue
        text = path.read_text()
        urls, shas = len(URL.findall(text)), len(SHA.findall(text))
        if urls != shas:
            sys.exit(f"{path}: {urls} example image url(s) but {shas} placeholder sha256(s)")
        text = URL.sub(lambda m: m.group(1) + image, text)
        text = SHA.sub(lambda m: f'{m.group(1)}"{digest}"', text)
        target.write_text(text)
        rendered += urls
    if not rendered:
        sys.exit(f"no WasmPlugin under {src} names {EXAMPLE_IMAGE}")
    print(f"{out}: {rendered} WasmPlugin(s) with url {image} and sha256 {digest}")
    if image == EXAMPLE_IMAGE:
        print(f"note: {EXAMPLE_IMAGE} is the example's image: set DIAL_IMAGE to where you push it")


if __name__ == "__main__":
    main()
