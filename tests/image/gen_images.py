"""Seeded generator of the oracle suite's images: PNG in every Pillow mode and PNG
layout (PIL-written and written by pngraw), JPEG (PIL, several qualities and chroma
subsamplings), GIF and BMP (PIL-written and byte-patched variants). Content is smooth
patterns + noise + rectangles, never flat. Writes DIR/manifest.json:
[{"file", "format", "kind", "size", "args": [extra vprm preprocess options]}]."""
import json
import os
import struct
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pngraw  # noqa: E402


def content(rng, h, w, c, maxval=255):
    """[h, w, c] float pattern in 0..maxval: waves + gradient + rectangles + noise."""
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    out = np.empty((h, w, c), dtype=np.float32)
    for k in range(c):
        fx, fy = rng.uniform(0.001, 0.3, 2).astype(np.float32)
        px, py = rng.uniform(0, 6.3, 2).astype(np.float32)
        v = 0.35 * np.sin(x * fx + px) + 0.35 * np.cos(y * fy + py) + 0.3 * (x / max(w, 1) - y / max(h, 1))
        out[:, :, k] = (v + 1.0) * 0.5
    for _ in range(int(rng.integers(0, 6))):
        x0, x1 = sorted(rng.integers(0, w + 1, 2))
        y0, y1 = sorted(rng.integers(0, h + 1, 2))
        out[y0:y1, x0:x1, :] = rng.uniform(0, 1, c).astype(np.float32)
    amp = np.float32(rng.choice([0.0, 0.02, 0.08, 0.25]))
    if amp > 0:
        out += amp * (rng.random((h, w, c), dtype=np.float32) - np.float32(0.5))
    out = np.clip(out, 0, 1) * maxval
    return np.rint(out)


def u8(a):
    return a.astype(np.uint8)


def palette_image(rng, w, h, colors):
    """A P-mode image: smooth index pattern over a random palette of `colors` entries."""
    idx = content(rng, h, w, 1, colors - 1)[..., 0].astype(np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette(rng.integers(0, 256, 3 * colors).astype(np.uint8).tobytes())
    return im


def pick_size(rng, i):
    r = rng.random()
    if r < 0.6:
        w, h = np.exp(rng.uniform(0, np.log(260), 2)).astype(int) + 1
    elif r < 0.92:
        w, h = rng.integers(200, 1300, 2)
    else:
        w, h = rng.integers(1200, 2100, 2)
    return int(w), int(h)


def tiling_args(rng):
    """Mostly the model's defaults; sometimes other tile counts or no thumbnail."""
    r = rng.random()
    if r < 0.8:
        return []
    args = []
    mx = int(rng.choice([1, 2, 4, 6, 9, 16, 24]))
    mn = int(rng.integers(1, min(mx, 3) + 1))
    args += ["--max-tiles", str(mx), "--min-tiles", str(mn)]
    if rng.random() < 0.4:
        args.append("--no-thumbnail")
    return args


FIXED_SIZES = [(1, 1), (1, 2), (2, 1), (3, 7), (1, 2000), (2000, 1), (3000, 2), (2, 3000),
               (13, 1000), (1000, 13), (448, 448), (449, 447), (896, 672), (896, 448),
               (1792, 1344), (447, 1), (5, 4), (640, 480)]

PIL_MODES = ["RGB", "RGBA", "L", "LA", "P", "P-trns-index", "P-trns-bytes", "1", "I;16", "I;16-low"]
RAW_KINDS = ["rgb16", "rgba16", "la16", "grey2", "grey4", "grey1", "pal1", "pal2", "pal4",
             "pal8-short", "grey8-trns", "rgb8-trns", "grey16-trns", "rgb8-interlaced",
             "rgba8-interlaced", "pal4-interlaced", "grey16-interlaced", "split-idat-ancillary"]


def save_pil_png(path, rng, mode, w, h):
    if mode in ("RGB", "RGBA", "L", "LA"):
        c = len(mode)
        a = u8(content(rng, h, w, c))
        if mode == "RGBA":
            a[..., 3] = u8(rng.choice([0, 7, 128, 255], size=(h, w)))
        im = Image.fromarray(a[..., 0] if c == 1 else a, mode)
        im.save(path, compress_level=1)
    elif mode.startswith("P"):
        im = palette_image(rng, w, h, int(rng.choice([2, 3, 16, 50, 256])))
        if mode == "P-trns-index":
            im.info["transparency"] = int(rng.integers(0, 2))
            im.save(path, transparency=im.info["transparency"], compress_level=1)
        elif mode == "P-trns-bytes":
            n = len(im.getpalette()) // 3
            im.save(path, transparency=bytes(rng.integers(0, 256, min(n, 40)).astype(np.uint8)),
                    compress_level=1)
        else:
            im.save(path, compress_level=1)
    elif mode == "1":
        a = content(rng, h, w, 1)[..., 0] > 127
        Image.fromarray(a).convert("1").save(path, compress_level=1)
    elif mode.startswith("I;16"):
        top = 400 if mode == "I;16-low" else 65535   # values around 255 exercise the clamp
        a = content(rng, h, w, 1, top)[..., 0].astype(np.uint16)
        Image.fromarray(a, "I;16").save(path, compress_level=1)


def save_raw_png(path, rng, kind, w, h):
    W = pngraw.write_png
    if kind == "rgb16":
        W(path, content(rng, h, w, 3, 65535).astype(np.int64), 16, 2, rng=rng)
    elif kind == "rgba16":
        W(path, content(rng, h, w, 4, 65535).astype(np.int64), 16, 6, rng=rng)
    elif kind == "la16":
        W(path, content(rng, h, w, 2, 65535).astype(np.int64), 16, 4, rng=rng)
    elif kind in ("grey1", "grey2", "grey4"):
        d = int(kind[-1])
        W(path, content(rng, h, w, 1, 2 ** d - 1).astype(np.int64), d, 0, rng=rng)
    elif kind in ("pal1", "pal2", "pal4", "pal4-interlaced"):
        d = int(kind[3])
        n = 2 ** d
        idx = content(rng, h, w, 1, n - 1).astype(np.int64)
        pal = rng.integers(0, 256, 3 * n).astype(np.uint8)
        W(path, idx, d, 3, palette=pal, trns=rng.integers(0, 256, n // 2 + 1).astype(np.uint8),
          interlace=kind.endswith("interlaced"), rng=rng)
    elif kind == "pal8-short":
        # indices past the end of the palette: Pillow shows them as grey i,i,i
        idx = content(rng, h, w, 1, 255).astype(np.int64)
        n = int(rng.integers(1, 60))
        W(path, idx, 8, 3, palette=rng.integers(0, 256, 3 * n).astype(np.uint8), rng=rng)
    elif kind == "grey8-trns":
        W(path, content(rng, h, w, 1).astype(np.int64), 8, 0, trns=b"\x00\x80", rng=rng)
    elif kind == "rgb8-trns":
        W(path, content(rng, h, w, 3).astype(np.int64), 8, 2, trns=b"\x00\x10\x00\x20\x00\x30", rng=rng)
    elif kind == "grey16-trns":
        W(path, content(rng, h, w, 1, 700).astype(np.int64), 16, 0, trns=b"\x01\x00", rng=rng)
    elif kind == "rgb8-interlaced":
        W(path, content(rng, h, w, 3).astype(np.int64), 8, 2, interlace=True, rng=rng)
    elif kind == "rgba8-interlaced":
        W(path, content(rng, h, w, 4).astype(np.int64), 8, 6, interlace=True, rng=rng)
    elif kind == "grey16-interlaced":
        W(path, content(rng, h, w, 1, 65535).astype(np.int64), 16, 0, interlace=True, rng=rng)
    elif kind == "split-idat-ancillary":
        W(path, content(rng, h, w, 3).astype(np.int64), 8, 2, rng=rng, idat_parts=5,
          extra_chunks=[(b"gAMA", struct.pack(">I", 45455)), (b"tEXt", b"Comment\x00vprm test"),
                        (b"prVt", b"private chunk data")])


def save_jpeg(path, rng, w, h, i):
    quality = [30, 60, 75, 85, 95, 100][i % 6]
    subsampling = [0, 1, 2][(i // 6) % 3]
    mode = "L" if i % 10 == 9 else "CMYK" if i % 12 == 5 else "RGB"
    a = u8(content(rng, h, w, 1 if mode == "L" else 3))
    im = Image.fromarray(a[..., 0], "L") if mode == "L" else Image.fromarray(a, "RGB").convert(mode)
    kw = dict(quality=quality, progressive=(i % 4 == 3))
    if mode == "RGB":
        kw["subsampling"] = subsampling
    im.save(path, "JPEG", **kw)
    sub = {"RGB": f" sub{subsampling}", "L": " grey", "CMYK": " cmyk"}[mode]
    return f"q{quality}{sub}{' progressive' if kw['progressive'] else ''}"


def gif_descriptor_pos(data):
    """Offset of the first image descriptor's ',' (extensions skipped block by block)."""
    pos = 13 + ((3 << ((data[10] & 7) + 1)) if data[10] & 0x80 else 0)
    while data[pos] == 0x21:
        pos += 2
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    assert data[pos] == 0x2C
    return pos


def save_gif(path, rng, w, h, i):
    kind = ["P", "P-trns", "L", "offset-frame", "offset-frame-trns", "local-palette", "grown-frame",
            "interlaced"][i % 8]
    if kind == "L":
        Image.fromarray(u8(content(rng, h, w, 1))[..., 0], "L").save(path, "GIF")
        return kind
    im = palette_image(rng, w, h, int(rng.choice([4, 64, 256])))
    kw = {"interlace": kind == "interlaced"}
    if "trns" in kind:
        kw["transparency"] = int(rng.integers(0, 4))
    im.save(path, "GIF", **kw)
    data = bytearray(open(path, "rb").read())
    if kind.startswith("offset-frame") or kind == "grown-frame":
        # Move the frame inside (or past) a logical screen of another size.
        sw, sh = data[6] | data[7] << 8, data[8] | data[9] << 8
        pos = gif_descriptor_pos(data)
        dx, dy = int(rng.integers(0, 9)), int(rng.integers(0, 9))
        if kind == "grown-frame":
            nw, nh = sw, sh          # the frame reaches past the screen: Pillow grows the image
        else:
            nw, nh = sw + dx + int(rng.integers(0, 9)), sh + dy + int(rng.integers(0, 9))
        data[6:10] = struct.pack("<HH", nw, nh)
        data[pos + 1:pos + 5] = struct.pack("<HH", dx, dy)
    if kind == "local-palette" and data[10] & 0x80:
        # Move the global palette into the image descriptor as a local one.
        bits = data[10] & 7
        n = 3 << (bits + 1)
        pal = bytes(data[13:13 + n])
        del data[13:13 + n]
        data[10] &= 0x7F
        pos = gif_descriptor_pos(data)
        data[pos + 9] = (data[pos + 9] & 0x40) | 0x80 | bits
        data[pos + 10:pos + 10] = pal
    open(path, "wb").write(bytes(data))
    return kind


def save_bmp(path, rng, w, h, i):
    kind = ["1", "L", "P", "RGB", "RGBA", "555", "565", "topdown24", "bgra-bitfields"][i % 9]
    if kind in ("1", "L", "P", "RGB", "RGBA"):
        if kind == "1":
            im = Image.fromarray(content(rng, h, w, 1)[..., 0] > 127).convert("1")
        elif kind == "P":
            im = palette_image(rng, w, h, int(rng.choice([2, 16, 200])))
        else:
            c = len(kind)
            a = u8(content(rng, h, w, c))
            im = Image.fromarray(a[..., 0] if c == 1 else a, kind)
        im.save(path, "BMP")
        return kind
    # Hand-written: 16-bit 5-5-5 (BI_RGB) and 5-6-5 (BI_BITFIELDS), top-down 24-bit,
    # 32-bit BGRA with bit fields.
    if kind in ("555", "565"):
        bpp, comp = 16, 0 if kind == "555" else 3
        px = rng.integers(0, 65536, (h, w)).astype("<u2")
        masks = [] if kind == "555" else [0xF800, 0x7E0, 0x1F]
        rows = [px[y].tobytes() for y in range(h)]
    elif kind == "topdown24":
        bpp, comp, masks = 24, 0, []
        a = u8(content(rng, h, w, 3))[..., ::-1]
        rows = [a[y].tobytes() for y in range(h)]
    else:
        bpp, comp, masks = 32, 3, [0xFF0000, 0xFF00, 0xFF]
        a = u8(content(rng, h, w, 4))
        rows = [a[y].tobytes() for y in range(h)]
    stride = ((w * bpp + 31) >> 3) & ~3
    pix = b"".join(r.ljust(stride, b"\0") for r in (rows if kind == "topdown24" else rows[::-1]))
    extra = b"".join(struct.pack("<I", m) for m in masks)
    off = 14 + 40 + len(extra)
    height = -h if kind == "topdown24" else h
    dib = struct.pack("<IiiHHIIiiII", 40, w, height, 1, bpp, comp, len(pix), 2835, 2835, 0, 0)
    open(path, "wb").write(b"BM" + struct.pack("<IHHI", off + len(pix), 0, 0, off) + dib + extra + pix)
    return kind


def main():
    main_into(sys.argv[1])


def main_into(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20240611)
    entries = []

    def add(name, fmt, kind, size, args):
        entries.append({"file": name, "format": fmt, "kind": kind, "size": list(size), "args": args})

    n = 0
    # PNG: the big one, the fixed sizes, then random sizes over every mode and layout.
    big = (4000, 3000)
    save_pil_png(os.path.join(out_dir, "png_big.png"), rng, "RGB", *big)
    add("png_big.png", "png", "RGB", big, [])
    all_kinds = [("pil", m) for m in PIL_MODES] + [("raw", k) for k in RAW_KINDS]
    for i, size in enumerate(FIXED_SIZES):
        src, kind = all_kinds[i % len(all_kinds)]
        name = f"png_fixed{i:02d}.png"
        (save_pil_png if src == "pil" else save_raw_png)(os.path.join(out_dir, name), rng, kind, *size)
        add(name, "png", kind, size, [])
    for i in range(200):
        src, kind = all_kinds[i % len(all_kinds)]
        size = pick_size(rng, i)
        name = f"png_{i:03d}.png"
        (save_pil_png if src == "pil" else save_raw_png)(os.path.join(out_dir, name), rng, kind, *size)
        add(name, "png", kind, size, tiling_args(rng))
        n += 1
    for i in range(36):
        size = pick_size(rng, i) if i % 3 else (int(rng.integers(9, 700)), int(rng.integers(9, 700)))
        name = f"jpeg_{i:02d}.jpg"
        kind = save_jpeg(os.path.join(out_dir, name), rng, *size, i)
        add(name, "jpeg", kind, size, [])
    for i in range(24):
        size = pick_size(rng, i)
        name = f"gif_{i:02d}.gif"
        kind = save_gif(os.path.join(out_dir, name), rng, *size, i)
        add(name, "gif", kind, size, tiling_args(rng))
    for i in range(18):
        size = pick_size(rng, i)
        name = f"bmp_{i:02d}.bmp"
        kind = save_bmp(os.path.join(out_dir, name), rng, *size, i)
        add(name, "bmp", kind, size, [])
    # EXIF orientation 6 (rotate 90 degrees) that must not be applied (MODEL.md 2); drawn
    # last so the files above keep their seeded content
    for i, fmt in enumerate(("jpeg", "png")):
        size = (300 + 37 * i, 200)
        name = f"exif_rot6_{i}.{'jpg' if fmt == 'jpeg' else 'png'}"
        exif = Image.Exif()
        exif[0x0112] = 6
        im = Image.fromarray(u8(content(rng, size[1], size[0], 3)), "RGB")
        im.save(os.path.join(out_dir, name), fmt.upper(), exif=exif.tobytes())
        add(name, fmt, "RGB EXIF orientation 6", size, [])
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(entries, f, indent=0)


if __name__ == "__main__":
    main()
