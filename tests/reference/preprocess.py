"""Image preprocessing exactly as the VisualPRM / InternVL2.5 model card does it
(MODEL.md section 2): Pillow decode + convert("RGB"), dynamic tiling, BICUBIC resize,
/255, ImageNet mean/std normalisation in float32, CHW, then bf16 rounding before the
vision encoder.

The tiling follows the model card's published dynamic_preprocess, which is the
definition; torchvision's Resize((448, 448)) on a 448x448 tile is Pillow's no-op.
"""

import io

import numpy as np
from PIL import Image

from safetensors_io import bf16_bits_to_f32, f32_to_bf16_bits

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def open_rgb(data):
    """Image bytes -> RGB PIL image (alpha dropped, grey replicated, palette expanded;
    no EXIF rotation)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def candidate_grids(min_num, max_num):
    """(columns, rows) grids with min_num <= columns*rows <= max_num, sorted by tile
    count. Built as a Python set first, like the reference, so that the order inside
    equal products is the reference's."""
    grids = set((i, j) for n in range(min_num, max_num + 1)
                for i in range(1, n + 1) for j in range(1, n + 1)
                if min_num <= i * j <= max_num)
    return sorted(grids, key=lambda g: g[0] * g[1])


def closest_grid(aspect_ratio, grids, width, height, image_size):
    """The grid whose columns/rows ratio is closest to the image's; on an exact tie the
    later grid wins only if the image has more than half its pixel area."""
    best_diff = float("inf")
    best = (1, 1)
    area = width * height
    for cols, rows in grids:
        diff = abs(aspect_ratio - cols / rows)
        if diff < best_diff:
            best_diff, best = diff, (cols, rows)
        elif diff == best_diff and area > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def dynamic_tiles(image, min_num=1, max_num=12, image_size=448, use_thumbnail=True):
    """RGB image -> list of image_size x image_size PIL tiles (row-major), plus a
    thumbnail of the whole image when there is more than one tile."""
    width, height = image.size
    cols, rows = closest_grid(width / height, candidate_grids(min_num, max_num), width, height, image_size)
    resized = image.resize((image_size * cols, image_size * rows), Image.BICUBIC)
    tiles = []
    for k in range(cols * rows):
        x, y = (k % cols) * image_size, (k // cols) * image_size
        tiles.append(resized.crop((x, y, x + image_size, y + image_size)))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size), Image.BICUBIC))
    return tiles


def normalize(tile):
    """PIL RGB tile -> float32 [3, H, W]: ((x / 255) - mean) / std, each step in float32."""
    x = np.asarray(tile, dtype=np.uint8).astype(np.float32) / np.float32(255)
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def round_to_bf16(x):
    """float32 values rounded to the nearest bf16 (ties to even), returned as float32."""
    return bf16_bits_to_f32(f32_to_bf16_bits(x)).reshape(np.shape(x))


def image_tiles(data, min_num=1, max_num=12, image_size=448, use_thumbnail=True):
    """Image bytes -> float32 [tiles, 3, image_size, image_size] (not bf16-rounded)."""
    tiles = dynamic_tiles(open_rgb(data), min_num, max_num, image_size, use_thumbnail)
    return np.stack([normalize(t) for t in tiles])
