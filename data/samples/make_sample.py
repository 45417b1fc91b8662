"""Recreate the bundled sample: scikit-image's "astronaut" photograph and a rough mask of the person.

The photograph is NASA's portrait of Eileen Collins (public domain), shipped offline with
scikit-image as ``skimage.data.astronaut()``. The rough mask is GrabCut initialised from the box
in ``astronaut.json`` with the space-shuttle model marked as background; it is deliberately
rough (the trimap's unknown band and the matting fix the edges).

    .venv/bin/python data/samples/make_sample.py
"""

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data

HERE = Path(__file__).resolve().parent


def main() -> None:
    info = json.loads((HERE / "astronaut.json").read_text())
    rgb = data.astronaut()
    x0, y0, x1, y1 = info["box"]
    init = np.full(rgb.shape[:2], cv2.GC_BGD, np.uint8)
    init[y0:y1, x0:x1] = cv2.GC_PR_FGD
    sx0, sy0, sx1, sy1 = info["background_box"]
    init[sy0:sy1, sx0:sx1] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    cv2.grabCut(rgb[:, :, ::-1].copy(), init, None, bgd, fgd, 8, cv2.GC_INIT_WITH_MASK)
    mask = np.where((init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    Image.fromarray(rgb).save(HERE / "astronaut.png")
    Image.fromarray(mask, "L").save(HERE / "astronaut_mask.png")


if __name__ == "__main__":
    main()
