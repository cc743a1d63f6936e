#!/usr/bin/python3
"""Writes tests/data/arith_*.jpg for test_image: a 45x29 4:2:0 JPEG (Huffman, written by
Pillow from a seeded gradient with noise) and jpegtran's lossless transcodes of it to
arithmetic coding, sequential (SOF9) and progressive with a restart interval per MCU row
(SOF10). The transcodes hold the same quantised coefficients, so all three must decode
to the same pixels. Deterministic; run again to regenerate (needs jpegtran, Debian
libjpeg-turbo-progs)."""
import io
import os
import subprocess

import numpy as np
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261128)
y, x = np.mgrid[0:29, 0:45].astype(np.float32)
a = np.stack([x * 255 / 44, y * 255 / 28, (x * 3 + y * 5) % 256], -1) + rng.normal(0, 12, (29, 45, 3))
buf = io.BytesIO()
Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
huffman = buf.getvalue()
outputs = {"arith_huffman.jpg": huffman}
for name, args in (("arith_sequential.jpg", ["-arithmetic"]),
                   ("arith_progressive.jpg", ["-arithmetic", "-progressive", "-restart", "1"])):
    outputs[name] = subprocess.run(["jpegtran", *args], input=huffman, capture_output=True,
                                   check=True).stdout
for name, data in outputs.items():
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
