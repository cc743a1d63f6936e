#!/usr/bin/python3
"""Seeds of tests/fuzz/fuzz_image.c: tiny PNG, JPEG, GIF and BMP files of every kind the
decoder handles (each under ~2 KB), written with Pillow where it can and by hand
(zlib + struct) where it cannot: 16-bit RGB(A), 2/4-bit grey, Adam7 interlacing, split
IDAT, every PNG row filter, GIF frames off the screen's corner, 4/16-bit and bit-field
BMPs, OS/2 and V4/V5 BMP headers.
    python3 tests/fuzz/gen_image_seeds.py [OUT_DIR]   (default tests/fuzz/corpus/fuzz_image)
Deterministic: the same files on every run."""
import io
import os
import struct
import sys
import zlib

from PIL import Image

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus",
                                                         "fuzz_image")


def pattern(w, h, channels, maxv=255):
    """A smooth deterministic image as rows of channel tuples."""
    return [[tuple((x * 37 + y * 71 + c * 101 + x * y * 13) % (maxv + 1) for c in range(channels))
             for x in range(w)] for y in range(h)]


def pil_image(mode, w, h):
    bands = {"1": 1, "L": 1, "P": 1, "RGB": 3, "RGBA": 4, "LA": 2, "CMYK": 4, "I;16": 1}[mode]
    if mode == "I;16":
        im = Image.new("I;16", (w, h))
        im.putdata([(x * 4099 + y * 7919) % 65536 for y in range(h) for x in range(w)])
        return im
    base = Image.new("RGBA" if bands == 4 else "RGB", (w, h))
    base.putdata([px + (0,) * (4 - len(px)) if bands == 4 else px[:3]
                  for row in pattern(w, h, 4 if bands == 4 else 3) for px in row])
    if mode == "P":
        return base.convert("RGB").quantize(16)
    if mode in ("1", "L", "LA"):
        return base.convert(mode)
    return base.convert(mode)


def save_pil(name, im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    write(name, buf.getvalue())


def write(name, data):
    assert len(data) <= 2200, (name, len(data))
    with open(os.path.join(OUT, "seed_" + name), "wb") as f:
        f.write(data)


# ---- PNG by hand ----
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def chunk(ctype, data):
    body = ctype + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_row(samples, depth):
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if depth == 8:
        return bytes(samples)
    per = 8 // depth
    out = bytearray()
    for i in range(0, len(samples), per):
        b = 0
        for k, s in enumerate(samples[i:i + per]):
            b |= s << (8 - depth * (k + 1))
        out.append(b)
    return bytes(out)


def filter_row(raw, prev, bpp, ftype):
    out = bytearray([ftype])
    for i, x in enumerate(raw):
        a = raw[i - bpp] if i >= bpp else 0
        b = prev[i] if prev else 0
        c = prev[i - bpp] if prev and i >= bpp else 0
        if ftype == 0:
            p = 0
        elif ftype == 1:
            p = a
        elif ftype == 2:
            p = b
        elif ftype == 3:
            p = (a + b) // 2
        else:
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out.append((x - p) & 255)
    return bytes(out)


def png(w, h, depth, color, interlace=0, plte=None, trns=None, extra=b"", idat_parts=1):
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    maxv = (1 << depth) - 1 if color != 3 else min((1 << depth) - 1, 255)
    img = pattern(w, h, channels, maxv)
    bpp = max(1, channels * depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = bytearray()
    ftype = 0
    for x0, y0, dx, dy in passes:
        prev = None
        for y in range(y0, h, dy):
            row = [s for x in range(x0, w, dx) for s in img[y][x]]
            if not row:
                continue
            packed = pack_row(row, depth)
            raw += filter_row(packed, prev, bpp, ftype % 5)
            ftype += 1
            prev = packed
    z = zlib.compress(bytes(raw), 9)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0,
                                                              interlace))
    out += extra
    if plte is not None:
        out += chunk(b"PLTE", plte)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    step = (len(z) + idat_parts - 1) // idat_parts
    for i in range(0, len(z), step):
        out += chunk(b"IDAT", z[i:i + step])
    return out + chunk(b"IEND", b"")


def pngs():
    for mode, name in [("L", "grey8"), ("RGB", "rgb8"), ("RGBA", "rgba8"), ("LA", "la8"),
                       ("1", "bw1"), ("I;16", "grey16")]:
        save_pil(f"png_{name}.png", pil_image(mode, 7, 5), "PNG")
    pal = pil_image("P", 9, 6)
    save_pil("png_pal_trns.png", pal, "PNG", transparency=3)
    save_pil("png_pal.png", pal, "PNG", optimize=True)
    write("png_rgb16.png", png(5, 4, 16, 2))
    write("png_rgba16.png", png(4, 3, 16, 6))
    write("png_la16.png", png(4, 3, 16, 4))
    write("png_grey2.png", png(9, 5, 2, 0))
    write("png_grey4.png", png(7, 3, 4, 0))
    write("png_grey1_wide.png", png(40, 2, 1, 0))
    write("png_pal2_short.png", png(6, 4, 2, 3, plte=bytes([10, 20, 30, 200, 100, 50])))
    write("png_pal4_trns.png", png(5, 5, 4, 3, plte=bytes(range(48)), trns=bytes([0, 128])))
    write("png_rgb8_trns.png", png(4, 4, 8, 2, trns=struct.pack(">HHH", 1, 2, 3)))
    write("png_grey8_trns.png", png(4, 4, 8, 0, trns=struct.pack(">H", 7)))
    write("png_interlaced_rgb8.png", png(11, 9, 8, 2, interlace=1))
    write("png_interlaced_pal.png", png(10, 7, 8, 3, interlace=1, plte=bytes(range(256)) * 3))
    write("png_interlaced_grey16.png", png(3, 9, 16, 0, interlace=1))
    write("png_interlaced_1x1.png", png(1, 1, 8, 6, interlace=1))
    write("png_split_idat.png", png(8, 8, 8, 2, idat_parts=4))
    write("png_ancillary.png", png(6, 3, 8, 2, extra=chunk(b"gAMA", struct.pack(">I", 45455)) +
                                     chunk(b"tEXt", b"Comment\0fuzz") + chunk(b"pHYs", bytes(9))))
    write("png_1x1.png", png(1, 1, 8, 0))
    write("png_tall.png", png(1, 60, 8, 2))


# ---- JPEG (Pillow / libjpeg) ----
def jpegs():
    rgb = pil_image("RGB", 16, 12)
    save_pil("jpg_420.jpg", rgb, "JPEG", quality=50)
    save_pil("jpg_444.jpg", rgb, "JPEG", quality=50, subsampling=0)
    save_pil("jpg_422.jpg", rgb, "JPEG", quality=50, subsampling=1)
    save_pil("jpg_odd_size.jpg", pil_image("RGB", 13, 7), "JPEG", quality=40)
    save_pil("jpg_grey.jpg", pil_image("L", 9, 9), "JPEG", quality=50)
    save_pil("jpg_progressive.jpg", rgb, "JPEG", quality=50, progressive=True)
    save_pil("jpg_progressive_grey.jpg", pil_image("L", 10, 6), "JPEG", progressive=True)
    save_pil("jpg_optimized.jpg", rgb, "JPEG", quality=30, optimize=True)
    save_pil("jpg_cmyk.jpg", pil_image("CMYK", 8, 8), "JPEG", quality=50)
    save_pil("jpg_exif_icc.jpg", pil_image("RGB", 8, 8), "JPEG", quality=30,
             exif=b"Exif\0\0MM\0*\0\0\0\x08\0\0", icc_profile=b"\0" * 40)
    # quantisation values over 255: libjpeg writes 16-bit tables (DQT Pq=1)
    save_pil("jpg_dqt16.jpg", pil_image("RGB", 8, 8), "JPEG", qtables=[[300 + i for i in range(64)]],
             subsampling=0)
    save_pil("jpg_1x1.jpg", pil_image("RGB", 1, 1), "JPEG")


# ---- GIF ----
def gif_by_hand(version, screen, frame, local, interlace=False, transparent=None):
    sw, sh = screen
    x, y, w, h = frame
    pal = b"".join(bytes([i * 40 % 256, i * 90 % 256, i * 150 % 256]) for i in range(8))
    out = b"GIF" + version + struct.pack("<HH", sw, sh) + bytes([0xF2, 0, 0]) + pal
    if transparent is not None:
        out += b"!\xf9\x04" + bytes([1, 0, 0, transparent, 0])
    out += b"!\xfe\x04fuzz\x00"  # comment extension
    out += b"," + struct.pack("<HHHH", x, y, w, h)
    out += bytes([(0x80 | 1 if local else 0) | (0x40 if interlace else 0)])
    if local:
        out += bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])
    # LZW: minimum code size 2 (3 with 8 colours); clear, literals, end, all 3-bit codes
    # with the table never growing past 8 entries (a clear after every 2 codes).
    cs = 3
    bits, nbits, codes = 0, 0, []
    clear, end = 1 << cs, (1 << cs) + 1
    for i in range(w * h):
        if i % 2 == 0:
            codes.append(clear)
        codes.append((i * 3 + i // w) % (4 if local else 8))
    codes.append(end)
    data = bytearray()
    for c in codes:
        bits |= c << nbits
        nbits += cs + 1
        while nbits >= 8:
            data.append(bits & 255)
            bits >>= 8
            nbits -= 8
    if nbits:
        data.append(bits & 255)
    out += bytes([cs])
    for i in range(0, len(data), 255):
        part = data[i:i + 255]
        out += bytes([len(part)]) + part
    return out + b"\x00;"


def gifs():
    p = pil_image("P", 10, 8)
    save_pil("gif_static.gif", p, "GIF", interlace=False)
    save_pil("gif_interlaced.gif", p, "GIF", interlace=True)
    save_pil("gif_grey.gif", pil_image("L", 6, 6), "GIF")
    save_pil("gif_transparent.gif", p, "GIF", transparency=2)
    frames = [pil_image("P", 8, 6), pil_image("P", 8, 6).rotate(180), pil_image("P", 8, 6).transpose(0)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    write("gif_animated.gif", buf.getvalue())
    write("gif87a_offset_frame.gif", gif_by_hand(b"87a", (9, 7), (2, 1, 5, 4), False))
    write("gif_local_palette.gif", gif_by_hand(b"89a", (6, 6), (0, 0, 6, 6), True, interlace=True))
    write("gif_frame_past_screen.gif", gif_by_hand(b"89a", (4, 4), (2, 2, 5, 3), False,
                                                   transparent=1))
    write("gif_zero_screen.gif", gif_by_hand(b"89a", (0, 0), (0, 0, 3, 2), False))


# ---- BMP ----
def bmp(w, h, bpp, rows_bytes, palette=b"", hsz=40, compression=0, masks=b"", top_down=False):
    if hsz == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bpp)
    else:
        info = struct.pack("<IiiHHIIiiII", hsz, w, -h if top_down else h, 1, bpp, compression,
                           len(rows_bytes), 2835, 2835, len(palette) // (3 if hsz == 12 else 4), 0)
        if hsz == 40:
            info += masks
        else:
            m = masks + bytes(16 - len(masks)) if masks else bytes(16)
            info += m + b"BGRs" + bytes(36 + 12) + (bytes(16) if hsz == 124 else b"")
    offset = 14 + len(info) + len(palette)
    data = info + palette + rows_bytes
    return b"BM" + struct.pack("<IHHI", 14 + len(data), 0, 0, offset) + data


def bmp_rows(w, h, bpp, sample):
    out = bytearray()
    for y in range(h):
        bits = []
        for x in range(w):
            bits.append(sample(x, y))
        if bpp >= 8:
            row = b"".join(v.to_bytes(bpp // 8, "little") for v in bits)
        else:
            row = pack_row(bits, bpp)
        out += row + bytes((-len(row)) % 4)
    return bytes(out)


def bmps():
    for mode, name in [("1", "1bit"), ("L", "grey8"), ("P", "pal8"), ("RGB", "rgb24"),
                       ("RGBA", "rgba32")]:
        save_pil(f"bmp_{name}.bmp", pil_image(mode, 7, 5), "BMP")
    pal16 = b"".join(bytes([i * 16, 255 - i * 16, i * 5, 0]) for i in range(16))
    write("bmp_4bit.bmp", bmp(9, 5, 4, bmp_rows(9, 5, 4, lambda x, y: (x + y) % 16), pal16))
    write("bmp_8bit_short_palette.bmp",
          bmp(5, 4, 8, bmp_rows(5, 4, 8, lambda x, y: (x * y) % 4), pal16[:16]))
    write("bmp_16_555.bmp", bmp(6, 4, 16, bmp_rows(6, 4, 16, lambda x, y: x * 1000 + y * 77)))
    write("bmp_16_565.bmp", bmp(5, 3, 16, bmp_rows(5, 3, 16, lambda x, y: x * 2000 + y * 33),
                                compression=3, masks=struct.pack("<III", 0xF800, 0x7E0, 0x1F)))
    write("bmp_32_bitfields.bmp",
          bmp(4, 3, 32, bmp_rows(4, 3, 32, lambda x, y: x * 0x10203 + y * 0x3050700),
              compression=3, masks=struct.pack("<III", 0xFF0000, 0xFF00, 0xFF)))
    write("bmp_os2_24.bmp", bmp(5, 3, 24, bmp_rows(5, 3, 24, lambda x, y: x * 0x50403 + y),
                                hsz=12))
    write("bmp_os2_8.bmp", bmp(5, 3, 8, bmp_rows(5, 3, 8, lambda x, y: x + y),
                               palette=b"".join(bytes([i, i * 2, i * 3]) for i in range(8)),
                               hsz=12))
    write("bmp_v4_24.bmp", bmp(4, 4, 24, bmp_rows(4, 4, 24, lambda x, y: x * 0x70503 + y * 9),
                               hsz=108))
    write("bmp_v5_32.bmp", bmp(3, 3, 32, bmp_rows(3, 3, 32, lambda x, y: x * 0x1020304 + y),
                               hsz=124, compression=3,
                               masks=struct.pack("<IIII", 0xFF0000, 0xFF00, 0xFF, 0xFF000000)))
    write("bmp_top_down.bmp", bmp(4, 3, 24, bmp_rows(4, 3, 24, lambda x, y: x * 0x30201 + y * 5),
                                  top_down=True))


def main():
    os.makedirs(OUT, exist_ok=True)
    pngs()
    jpegs()
    gifs()
    bmps()


if __name__ == "__main__":
    main()
