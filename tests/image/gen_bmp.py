"""Seeded generator of BMPs that Pillow 9.4 reads in its own ways, written by hand
(Pillow writes none of them): run-length encoded ones (RLE8, RLE4: runs, end of line,
deltas, absolute runs odd and even, runs past the row's end, early end of bitmap,
data cut short, top-down rows, a pixel offset that moves the 16-bit alignment) and
palettes of grey ramps, for which Pillow picks mode "1" or "L" and reads the pixels as
1 or 8 bits whatever the file's depth. vprm must decode each to exactly Pillow's RGB,
or refuse it (422) when Pillow fails; kinds marked "(refused)" are ones Pillow fails on.
main_into(dir) -> [{"file", "kind"}]."""
import struct

import numpy as np

from gen_jpeg import writer


def bmp(w, h, bpp, comp, pal, pix, colors=None, gap=b"", header=40, masks=(), offset=None):
    """A BMP: the header (header bytes; masks after a 40-byte one, inside a longer one),
    the palette (entries R, G, B written as B, G, R, 0; OS/2: 3 bytes), gap bytes, then
    pix, at offset (default: where it is). h < 0 for top-down rows."""
    colors = len(pal) if colors is None else colors
    if header == 12:
        palb = b"".join(bytes([b, g, r]) for r, g, b in pal)
        dib = struct.pack("<IHHHH", 12, w, h, 1, bpp)
    else:
        palb = b"".join(bytes([b, g, r, 0]) for r, g, b in pal)
        dib = struct.pack("<IiiHHIIiiII", header, w, h, 1, bpp, comp, len(pix), 2835, 2835, colors, 0)
        dib += b"".join(struct.pack("<I", m) for m in masks)
        dib += b"\0" * max(0, header - len(dib))
    off = 14 + len(dib) + len(palb) + len(gap)
    off = off if offset is None else offset
    return b"BM" + struct.pack("<IHHI", off + len(pix), 0, 0, off) + dib + palb + gap + pix


def packed_rows(idx, bpp):
    """Uncompressed rows, bottom-up, each padded to 4 bytes."""
    out = b""
    for row in idx[::-1]:
        bits = "".join(format(int(v), f"0{bpp}b") for v in row)
        bits += "0" * (-len(bits) % 8)
        r = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
        out += r + b"\0" * (-len(r) % 4)
    return out


def rle_rows(rng, idx, rle4, absolute=True, at=0):
    """Rows bottom-up: runs of equal indices (RLE4: runs of two alternating nibbles),
    absolute runs where indices change (padded to an even file offset, the data starting
    at offset at), end of line, end of bitmap."""
    out = b""
    for row in idx[::-1]:
        x, w = 0, len(row)
        while x < w:
            run = 1
            while x + run < w and run < 255 and row[x + run] == row[x + (run % 2 if rle4 else 0)]:
                run += 1
            if absolute and run < 3 and w - x >= 3 and rng.random() < 0.7:
                n = int(min(w - x, rng.integers(3, 12)))
                vals = row[x:x + n]
                if rle4:
                    body = bytes((int(vals[i]) << 4) | (int(vals[i + 1]) if i + 1 < n else 0)
                                 for i in range(0, n, 2))
                else:
                    body = bytes(int(v) for v in vals)
                out += bytes([0, n]) + body
                out += b"\0" * ((at + len(out)) % 2)
                x += n
                continue
            b = (int(row[x]) << 4 | int(row[x + 1] if x + 1 < w else 0)) if rle4 else int(row[x])
            out += bytes([run, b])
            x += run
        out += b"\0\0"
    return out + b"\0\1"


def main_into(out_dir):
    entries, add = writer(out_dir)
    rng = np.random.default_rng(20261201)

    def palette(n):
        return [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(n)]

    for si, (w, h) in enumerate([(1, 1), (2, 3), (7, 5), (16, 9), (33, 20), (64, 17), (101, 43)]):
        for bpp, rle4 in ((8, False), (4, True)):
            colors = 1 << bpp if si % 2 else int(rng.integers(2, 1 << bpp))
            idx = rng.integers(0, colors, (h, w))
            idx[:, w // 3: w // 3 + max(1, w // 4)] = colors - 1  # long runs
            comp = 2 if rle4 else 1
            pal = palette(colors)
            tag = f"rle{bpp}_{si}"
            add(f"{tag}.bmp", f"RLE{bpp}", bmp(w, h, bpp, comp, pal, rle_rows(rng, idx, rle4)))
            add(f"{tag}_runs.bmp", f"RLE{bpp}, runs only", bmp(w, h, bpp, comp, pal, rle_rows(rng, idx, rle4, False)))
            add(f"{tag}_topdown.bmp", f"RLE{bpp}, top-down", bmp(w, -h, bpp, comp, pal, rle_rows(rng, idx, rle4)))
            odd = len(bmp(w, h, bpp, comp, pal, b"", gap=b"\0"))
            add(f"{tag}_odd_offset.bmp", f"RLE{bpp}, pixels at an odd offset (the alignment moves)",
                bmp(w, h, bpp, comp, pal, rle_rows(rng, idx, rle4, at=odd), gap=b"\0"))
            data = rle_rows(rng, idx, rle4)
            add(f"{tag}_no_eob.bmp", f"RLE{bpp}, no end of bitmap", bmp(w, h, bpp, comp, pal, data[:-2]))
            if h >= 5:
                add(f"{tag}_cut.bmp", f"RLE{bpp}, cut short (refused)",
                    bmp(w, h, bpp, comp, pal, data[:len(data) // 2]))
            grey = [(i, i, i) for i in range(colors)]
            add(f"{tag}_grey.bmp", f"RLE{bpp}, grey-ramp palette (mode L)", bmp(w, h, bpp, comp, grey, data))
    # hand-made streams: every command and Pillow's readings of them
    w, h = 12, 6
    pal = palette(16)
    for name, stream, kind in [
        ("delta", b"\x04\x11\0\2\x09\x09\x03\x01\x05\x22\0\0" * 3 + b"\0\1", "deltas (Pillow takes bytes 3 and 4)"),
        ("delta_cut", b"\x04\x11\0\2\x09\x09\x03", "a delta cut short (refused)"),
        ("delta_end", b"\x04\x11\0\2\x09", "the data ends inside a delta's first two bytes (refused)"),
        ("overrun", b"\x10\x23\x05\x45\0\0" * 6 + b"\0\1", "runs past the row's end, clipped"),
        ("abs_spill", b"\0\x0f" + bytes(range(16)) + b"\x0c\x11\0\0" * 6 + b"\0\1",
         "an absolute run past the row's end, then runs clipped to the row"),
        ("eob_early", b"\x0c\x33\0\0\x0c\x44\0\1", "end of bitmap after two rows (refused)"),
        ("eol_only", b"\0\0" * 6 + b"\0\1", "end-of-line commands only: no pixels (refused)"),
        ("eol_first", b"\x01\x21\0\0" * 6 + b"\0\1", "one pixel a row, end of line pads the rest"),
        ("odd_abs", b"\0\x05\x12\x34\x56\0\x0c\x77\0\0" * 6 + b"\0\1", "odd absolute runs"),
        ("big_index", b"\x0c\xf0\0\0\x0c\x0f\0\0" * 3 + b"\0\1", "indices past the palette (16 entries)"),
    ]:
        for bpp, comp in ((8, 1), (4, 2)):
            if name == "big_index" and bpp == 4:
                continue
            add(f"cmd_{name}_{bpp}.bmp", f"RLE{bpp} {kind}", bmp(w, h, bpp, comp, pal, stream))
    add("rle8_as_4bit.bmp", "RLE8 data in a 4-bit file", bmp(w, h, 4, 1, pal, b"\x0c\x3a\0\0" * 6 + b"\0\1"))
    add("rle4_as_8bit.bmp", "RLE4 data in an 8-bit file", bmp(w, h, 8, 2, palette(256), b"\x0c\x3a\0\0" * 6 + b"\0\1"))
    add("rle8_24bit.bmp", "RLE8 in a 24-bit file (refused)", bmp(w, h, 24, 1, [], b"\x0c\x3a\0\0" * 6 + b"\0\1"))
    add("rle8_bw.bmp", "RLE8 with a black-and-white palette (refused)",
        bmp(w, h, 8, 1, [(0, 0, 0), (255, 255, 255)], b"\x0c\x01\0\0" * 6 + b"\0\1"))
    # grey ramps: mode "1" reads any depth as 1 bit a pixel; mode "L" as 8 bits a pixel,
    # which fits the rows only when they are at least that long
    for w, h in [(3, 4), (4, 2), (9, 5), (40, 7)]:
        for bpp in (1, 4, 8):
            idx = rng.integers(0, 2, (h, w))
            add(f"bw_{bpp}_{w}.bmp", f"{bpp}-bit, black and white palette (mode 1)",
                bmp(w, h, bpp, 0, [(0, 0, 0), (255, 255, 255)], packed_rows(idx, bpp)))
            if bpp == 8:
                continue
            n = 1 if bpp == 1 else 16 if w % 2 else 3  # 1-bit: one entry, else it is "1"
            idx = rng.integers(0, n, (h, w))
            stride = (w * bpp + 31) // 32 * 4
            add(f"ramp_{bpp}_{w}.bmp", f"{bpp}-bit, grey-ramp palette (mode L)" + ("" if stride >= w else " (refused)"),
                bmp(w, h, bpp, 0, [(i, i, i) for i in range(n)], packed_rows(idx, bpp)))
    idx = rng.integers(0, 256, (5, 9))
    add("ramp_8.bmp", "8-bit, grey-ramp palette", bmp(9, 5, 8, 0, [(i, i, i) for i in range(256)], packed_rows(idx, 8)))
    add("bw_white_black.bmp", "1-bit, white then black (a palette)",
        bmp(9, 5, 1, 0, [(255, 255, 255), (0, 0, 0)], packed_rows(idx % 2, 1)))
    add("os2_bw_4bit.bmp", "OS/2 4-bit, black and white palette (mode 1)",
        bmp(9, 5, 4, 0, [(0, 0, 0), (255, 255, 255)] + palette(14), packed_rows(idx % 16, 4), header=12))
    add_headers(rng, add)
    return entries


def add_headers(rng, add):
    """What stb_image's header reader does not take and Pillow does: the OS/2 2.x header
    (64 bytes), a pixel offset of 0 (Pillow reads from where its header reading ended),
    pixels far after the header or inside it; and bit-field layouts Pillow reads as plain
    24- or 32-bit pixels."""
    w, h = 11, 7
    idx = rng.integers(0, 16, (h, w))
    pal = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(16)]
    rgb24 = bytes(rng.integers(0, 256, h * 36, dtype=np.uint8))  # rows of 33 bytes + 3 padding
    px16 = bytes(rng.integers(0, 256, h * 24, dtype=np.uint8))
    px32 = bytes(rng.integers(0, 256, h * 44, dtype=np.uint8))
    m565, m32 = (0xF800, 0x7E0, 0x1F), (0xFF0000, 0xFF00, 0xFF, 0xFF000000)
    files = [("8bit", lambda **k: bmp(w, h, 8, 0, pal, packed_rows(idx, 8), **k)),
             ("4bit", lambda **k: bmp(w, h, 4, 0, pal, packed_rows(idx, 4), **k)),
             ("rle8", lambda **k: bmp(w, h, 8, 1, pal, rle_rows(rng, idx, False, False), **k)),
             ("24bit", lambda **k: bmp(w, h, 24, 0, [], rgb24, **k)),
             ("16bit_565", lambda **k: bmp(w, h, 16, 3, [], px16, masks=m565, **k)),
             ("32bit_bgra", lambda **k: bmp(w, h, 32, 3, [], px32, masks=m32, **k))]
    for name, make in files:
        add(f"hdr64_{name}.bmp", f"{name}, OS/2 2.x header (64 bytes)", make(header=64))
        add(f"off0_{name}.bmp", f"{name}, pixel offset 0", make(offset=0))
        add(f"gap_{name}.bmp", f"{name}, 2000 bytes between the header and the pixels",
            make(gap=bytes(rng.integers(0, 256, 2000, dtype=np.uint8))))
    add("off_past_rle8.bmp", "RLE8, pixel offset past the end of the file (refused)",
        bmp(w, h, 8, 1, pal, rle_rows(rng, idx, False), offset=5000))
    # Pillow's raw decoder stops after the last row's pixels: its padding may be missing
    for name, bpp, pix, used in [("24bit", 24, rgb24, 33), ("4bit", 4, packed_rows(idx, 4), 6),
                                 ("16bit", 16, px16, 22)]:
        short = pix[:len(pix) - len(pix) // h + used]
        add(f"short_pad_{name}.bmp", f"{name}, the last row's padding missing",
            bmp(w, h, bpp, 0, pal if bpp <= 8 else [], short))
        add(f"short_px_{name}.bmp", f"{name}, the last row one byte short (refused)",
            bmp(w, h, bpp, 0, pal if bpp <= 8 else [], short[:-1]))
    bw = packed_rows(idx % 2, 8)  # 8-bit rows, read by Pillow as 1 bit a pixel: 2 bytes a row
    add("short_bw_8bit.bmp", "8-bit, black and white palette, the last row cut to its 2 bytes",
        bmp(w, h, 8, 0, [(0, 0, 0), (255, 255, 255)], bw[:len(bw) - 12 + 2]))
    add("off_inside_24bit.bmp", "24-bit, pixel offset inside the header", bmp(w, h, 24, 0, [], rgb24, offset=20))
    add("bitfields_24bit.bmp", "24-bit, bit fields of plain BGR", bmp(w, h, 24, 3, [], rgb24, masks=m32[:3]))
    add("bitfields_32bit_zero.bmp", "32-bit, all-zero bit fields (B, G, R, A bytes)",
        bmp(w, h, 32, 3, [], px32, header=108, masks=(0, 0, 0, 0)))
    add("bitfields_32bit_zero40.bmp", "32-bit, all-zero bit fields after a 40-byte header",
        bmp(w, h, 32, 3, [], px32, masks=(0, 0, 0)))
    for name, m in [("xbgr", (0xFF000000, 0xFF0000, 0xFF00, 0)), ("abgr", (0xFF000000, 0xFF0000, 0xFF00, 0xFF)),
                    ("rgba", (0xFF, 0xFF00, 0xFF0000, 0xFF000000)), ("bgrx", (0xFF0000, 0xFF00, 0xFF, 0))]:
        add(f"bitfields_32bit_{name}.bmp", f"32-bit, {name.upper()} bit fields", bmp(w, h, 32, 3, [], px32, header=124, masks=m))
        add(f"bitfields_32bit_{name}_64.bmp", f"32-bit, {name.upper()} bit fields, 64-byte header",
            bmp(w, h, 32, 3, [], px32, header=64, masks=m))
    add("bitfields_16bit_555_40.bmp", "16-bit 5-5-5 bit fields after a 40-byte header",
        bmp(w, h, 16, 3, [], px16, masks=(0x7C00, 0x3E0, 0x1F), offset=0))
    add("v4_16bit_565.bmp", "16-bit 5-6-5, V4 header", bmp(w, -h, 16, 3, [], px16, header=108, masks=m565 + (0,)))
