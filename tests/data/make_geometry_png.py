#!/usr/bin/python3
"""Draws tests/data/geometry.png: a small labelled angle diagram standing in for the model
card's examples/image.png (not redistributable here) in the README's example request.
Deterministic; run again to regenerate."""
import os

from PIL import Image, ImageDraw

img = Image.new("RGB", (640, 480), (250, 250, 245))
d = ImageDraw.Draw(img)
E, D, C, F = (120, 80), (120, 400), (560, 400), (420, 160)
d.line([E, D], fill=(20, 20, 20), width=4)
d.line([D, C], fill=(20, 20, 20), width=4)
d.line([D, F], fill=(30, 60, 160), width=4)
d.rectangle([120, 370, 150, 400], outline=(20, 20, 20), width=2)  # right angle at D
for p, name in ((E, "E"), (D, "D"), (C, "C"), (F, "F")):
    d.ellipse([p[0] - 6, p[1] - 6, p[0] + 6, p[1] + 6], fill=(200, 40, 40))
    d.text((p[0] + 10, p[1] - 22), name, fill=(0, 0, 0))
d.text((150, 300), "39°", fill=(160, 20, 20))
d.text((260, 360), "3", fill=(160, 20, 20))
d.arc([60, 340, 180, 460], start=-90, end=-40, fill=(160, 20, 20), width=2)
img.save(os.path.join(os.path.dirname(os.path.abspath(__file__)), "geometry.png"), optimize=True)
