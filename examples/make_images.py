"""Write the example cast's reference images from pictures shipped inside pip packages.

Nothing is downloaded: scikit-image and matplotlib carry these sample images in their wheels.
Provenance and licences are written next to the images (PROVENANCE.md). Run:

    .venv/bin/python examples/make_images.py
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.cbook
import numpy as np
from PIL import Image
from skimage import data

OUT = Path(__file__).parent / "orbit" / "assets" / "images"

SOURCES = {
    "collins.png": (
        lambda: data.astronaut(),
        "scikit-image `skimage.data.astronaut()`: Eileen Collins, NASA portrait (public domain)",
    ),
    "chelsea.png": (
        lambda: data.chelsea(),
        "scikit-image `skimage.data.chelsea()`: Chelsea the cat, photo by Stefan van der Walt (CC0)",
    ),
    "hopper.png": (
        lambda: np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")),
        "matplotlib sample data `grace_hopper.jpg`: Rear Admiral Grace Hopper, US Navy photo (public domain)",
    ),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["# Reference image provenance", ""]
    for name, (load, note) in SOURCES.items():
        Image.fromarray(load()).save(OUT / name, optimize=True)
        lines.append(f"- `{name}`: {note}")
    (OUT / "PROVENANCE.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(SOURCES)} images to {OUT}")


if __name__ == "__main__":
    main()
