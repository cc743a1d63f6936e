"""The oracle: the model card's image preprocessing (VisualPRM-8B-v1.1 model card,
/work/shared/seed/visualprm-8b-v1.1-model-card.ja.txt), run with Debian's Pillow 9.4,
numpy and torch. find_closest_aspect_ratio and dynamic_preprocess are the reference
code as published (the test's oracle); build_transform's ToTensor + Normalize is
reproduced with torch (torchvision is not installed) and with numpy float32."""
import io

import numpy as np
from PIL import Image, ImageFile

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---- verbatim from the model card ----
def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float('inf')
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def dynamic_preprocess(image, min_num=1, max_num=12, image_size=448, use_thumbnail=False):
    orig_width, orig_height = image.size
    aspect_ratio = orig_width / orig_height

    # calculate the existing image aspect ratio
    target_ratios = set(
        (i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1) if
        i * j <= max_num and i * j >= min_num)
    target_ratios = sorted(target_ratios, key=lambda x: x[0] * x[1])

    # find the closest aspect ratio to the target
    target_aspect_ratio = find_closest_aspect_ratio(
        aspect_ratio, target_ratios, orig_width, orig_height, image_size)

    # calculate the target width and height
    target_width = image_size * target_aspect_ratio[0]
    target_height = image_size * target_aspect_ratio[1]
    blocks = target_aspect_ratio[0] * target_aspect_ratio[1]

    # resize the image
    resized_img = image.resize((target_width, target_height))
    processed_images = []
    for i in range(blocks):
        box = (
            (i % (target_width // image_size)) * image_size,
            (i // (target_width // image_size)) * image_size,
            ((i % (target_width // image_size)) + 1) * image_size,
            ((i // (target_width // image_size)) + 1) * image_size
        )
        # split the image
        split_img = resized_img.crop(box)
        processed_images.append(split_img)
    assert len(processed_images) == blocks
    if use_thumbnail and len(processed_images) != 1:
        thumbnail_img = image.resize((image_size, image_size))
        processed_images.append(thumbnail_img)
    return processed_images
# ---- end of the model card's code ----


def candidate_order(min_num, max_num):
    """The reference's candidate list, exactly as dynamic_preprocess builds it."""
    target_ratios = set(
        (i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1) if
        i * j <= max_num and i * j >= min_num)
    return sorted(target_ratios, key=lambda x: x[0] * x[1])


def choose_grid(width, height, min_num=1, max_num=12, image_size=448):
    return find_closest_aspect_ratio(width / height, candidate_order(min_num, max_num),
                                     width, height, image_size)


def load_rgb(path, whole_file=False):
    """The model card's load_image first step: Image.open(...).convert('RGB'). whole_file:
    Pillow hands its decoder the whole file in one block instead of 64 KB at a time
    (ImageFile.MAXBLOCK raised): libjpeg's arithmetic decoder cannot suspend for more
    data, so Pillow fails on arithmetic-coded JPEGs larger than its first block ("broken
    data stream"), while vprm decodes them; their pixels are compared this way."""
    with open(path, "rb") as f:
        data = f.read()
    if not whole_file:
        return Image.open(io.BytesIO(data)).convert("RGB")
    block = ImageFile.MAXBLOCK
    ImageFile.MAXBLOCK = len(data) + 65536
    try:
        return Image.open(io.BytesIO(data)).convert("RGB")
    finally:
        ImageFile.MAXBLOCK = block


def tiles_u8(image, min_num=1, max_num=12, image_size=448, use_thumbnail=True):
    """8-bit tiles [n, S, S, 3]; the card's transform then resizes each tile to
    (S, S), which Pillow returns unchanged (a copy) for an S x S tile."""
    tiles = dynamic_preprocess(image, min_num=min_num, max_num=max_num,
                               image_size=image_size, use_thumbnail=use_thumbnail)
    out = []
    for t in tiles:
        t = t.resize((image_size, image_size), Image.BICUBIC)
        out.append(np.asarray(t, dtype=np.uint8))
    return np.stack(out)


def normalize_numpy(u8):
    """ToTensor + Normalize in numpy float32: ((x / 255) - mean) / std, CHW."""
    x = u8.astype(np.float32).transpose(0, 3, 1, 2)
    x = x / np.float32(255)
    mean = np.array(IMAGENET_MEAN, dtype=np.float32)[None, :, None, None]
    std = np.array(IMAGENET_STD, dtype=np.float32)[None, :, None, None]
    return (x - mean) / std


def normalize_torch(u8):
    """torchvision's ToTensor + Normalize steps, written out in torch (no torchvision):
    img.permute(2, 0, 1).to(float32).div(255), then sub_(mean[:, None, None]).div_(std[...])."""
    import torch
    out = []
    for tile in u8:
        t = torch.from_numpy(np.ascontiguousarray(tile)).permute(2, 0, 1).contiguous()
        t = t.to(dtype=torch.get_default_dtype()).div(255)
        mean = torch.as_tensor(IMAGENET_MEAN, dtype=t.dtype)
        std = torch.as_tensor(IMAGENET_STD, dtype=t.dtype)
        t.sub_(mean[:, None, None]).div_(std[:, None, None])
        out.append(t.numpy())
    return np.stack(out)
