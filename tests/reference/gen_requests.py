#!/usr/bin/python3
"""Deterministic score requests for the parity suites (seeded; images are generated PNGs).

  gen_requests.py --out DIR --seed N [--count K] [--small]

Writes DIR/req_000.json ... covering: no image, one image, several images, <image>
placeholders in the question, string / array / {"steps"} responses, max_steps merging,
empty steps, unicode and LaTeX, text that spells special tokens, long steps, custom
separators, every aggregation. Images are embedded as data URLs or bare base64."""

import argparse
import base64
import io
import json
import os
import random

import numpy as np
from PIL import Image

WORDS = ("the angle sum of a triangle is 180 degrees so we subtract both known angles "
         "x = 3 y + 2 substituting gives Therefore the answer is 42 hence area radius").split()
EXTRA = ["∠ABC = 39°", "\\frac{a}{b}", "$x^2 + y^2 = r^2$", "数学の問題", "🙂👍🏽", "naïve café",
         "<|im_end|>", "<IMG_CONTEXT>", "<image>", "<s>", "\t\tindent", "  two  spaces",
         "\\( m \\angle 3 \\)", "Σ_{i=1}^{n} i", "🧮", "\u200b", "x\u0301"]


def sentence(rng, n, question=False):
    out = []
    extra = [e for e in EXTRA if e != "<image>"] if question else EXTRA  # placeholders are counted
    for _ in range(n):
        out.append(rng.choice(extra) if rng.random() < 0.12 else rng.choice(WORDS))
    return " ".join(out)


def png_bytes(rng, w, h, mode):
    arr = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (h, w, 3), dtype=np.uint8)
    # smooth structure plus noise, never flat
    yy, xx = np.mgrid[0:h, 0:w]
    arr[..., 0] = ((xx * 7 + yy * 3) % 256).astype(np.uint8) ^ arr[..., 0] // 4
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def image_field(rng, small):
    sizes = [(60, 40), (448, 448), (300, 700), (900, 200)] if small else \
            [(60, 40), (448, 448), (896, 672), (300, 900), (1200, 300)]
    w, h = rng.choice(sizes)
    data = png_bytes(rng, w, h, rng.choice(["RGB", "RGB", "L", "RGBA"]))
    b64 = base64.b64encode(data).decode()
    return ("data:image/png;base64," + b64) if rng.random() < 0.5 else b64


def response(rng, n_steps, sep, long_steps):
    steps = []
    for k in range(n_steps):
        if rng.random() < 0.1:
            steps.append("")  # empty steps are kept
        else:
            steps.append(f"{k + 1}. " + sentence(rng, rng.randint(3, 60 if long_steps else 14)))
    kind = rng.random()
    if kind < 0.6:
        return sep.join(steps)
    if kind < 0.8:
        return steps
    return {"steps": steps}


def request(rng, i, small):
    n_images = [0, 1, 1, 2][i % 4]
    max_tiles = rng.choice([1, 2, 4]) if small else rng.choice([2, 6, 12])
    req = {"question": sentence(rng, rng.randint(3, 20), question=True),
           "return_logits": True,
           "max_tiles": max_tiles,
           "aggregation": rng.choice(["mean", "min", "max", "last", "product"])}
    if n_images == 1:
        req["image"] = image_field(rng, small)
    elif n_images == 2:
        req["images"] = [image_field(rng, small) for _ in range(2)]
        if rng.random() < 0.5:  # explicit placeholders
            req["question"] = "Compare <image> and <image>: " + req["question"]
    if n_images == 1 and rng.random() < 0.3:
        req["question"] = "Look: <image>\n" + req["question"]
    sep = "\n\n"
    if rng.random() < 0.15:
        sep = " || "
        req["step_separator"] = sep
    n_resp = rng.randint(1, 4)
    req["responses"] = [response(rng, rng.randint(1, 7), sep, i % 5 == 4) for _ in range(n_resp)]
    if rng.random() < 0.25:
        req["max_steps"] = rng.randint(1, 3)
    if n_resp >= 2 and rng.random() < 0.4:
        # responses that agree on the first step: the shared prefix goes past the question
        first = "1. " + sentence(rng, 8)
        req["responses"] = [first + sep + (r if isinstance(r, str) else sep.join(r if isinstance(r, list) else r["steps"]))
                            for r in req["responses"]]
    return req


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--small", action="store_true", help="small images and few tiles (fast)")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    for i in range(a.count):
        with open(os.path.join(a.out, f"req_{i:03d}.json"), "w", encoding="utf-8") as f:
            json.dump(request(rng, i, a.small), f, ensure_ascii=False)


if __name__ == "__main__":
    main()
