"""Seeded generator of GIFs whose first frame Pillow 9.4 (GifImagePlugin, decode.c) shows in
its own ways: a frame of width 0 at x 0 (decode.c's _setimage takes a tile from x 0 to x 0
for the whole image: the data fills the screen from its corner), the same at another x
(refused: the tile is outside the image); graphic control extensions of every length
(Pillow reads the flags and the delay, so 3 bytes, 4 with the transparency flag; empty or
shorter is refused) and two of them (a later one without the flag keeps the earlier
transparent index); a local palette that is the grey ramp (Pillow's "no palette needed":
the frame opens as L and the global palette then applies to its indices). The LZW data
comes from Pillow's own GIF writer. vprm must decode each to exactly Pillow's RGB, or
refuse it (422) where Pillow fails ("(refused)").
main_into(dir) -> [{"file", "kind"}]."""
import io
import struct

import numpy as np
from PIL import Image

from gen_jpeg import writer


def lzw_data(indices, interlace=False):
    """The code size byte and data sub-blocks Pillow writes for a palette image of these
    indices."""
    im = Image.fromarray(indices.astype(np.uint8), "P")
    im.putpalette(bytes(range(256)) * 3)
    buf = io.BytesIO()
    im.save(buf, "GIF", interlace=interlace, optimize=False)
    d = buf.getvalue()
    pos = 13 + (3 << ((d[10] & 7) + 1) if d[10] & 0x80 else 0)
    while d[pos] == 0x21:  # extensions before the image descriptor
        pos += 2
        while d[pos]:
            pos += d[pos] + 1
        pos += 1
    flags = d[pos + 9]
    pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    start = pos
    pos += 1
    while d[pos]:
        pos += d[pos] + 1
    return d[start:pos + 1]


def table(entries, n_bits):
    """A colour table of 2 << n_bits entries: the given ones, then black."""
    return bytes(entries) + b"\0" * (3 * (2 << n_bits) - len(entries))


def gif(screen, frame, data, at=(0, 0), global_pal=None, local_pal=None, interlace=False, exts=()):
    """GIF89a: screen (w, h), one frame (w, h) at `at` with the given LZW data; palettes as
    (entries, n_bits)."""
    flags = (0x80 | global_pal[1]) if global_pal else 0
    out = b"GIF89a" + struct.pack("<HHBBB", screen[0], screen[1], flags, 0, 0)
    if global_pal:
        out += table(*global_pal)
    out += b"".join(exts)
    fflags = (0x40 if interlace else 0) | ((0x80 | local_pal[1]) if local_pal else 0)
    out += b"," + struct.pack("<HHHHB", at[0], at[1], frame[0], frame[1], fflags)
    if local_pal:
        out += table(*local_pal)
    return out + data + b";"


def graphic_control(flags, transparent, size=4):
    body = struct.pack("<BHB", flags, 0, transparent)[:size] + b"\0" * max(0, size - 4)
    return b"!\xf9" + bytes([size]) + body + b"\0"


def main_into(out_dir):
    entries, add = writer(out_dir)
    rng = np.random.default_rng(20261128)
    colours = (bytes(rng.integers(0, 256, 12, dtype=np.uint8)), 1)  # 4 entries
    ramp = bytes(i for i in range(4) for _ in range(3))
    # zero-width frames: (screen, frame height, at, interlace, transparent index)
    for screen, fh, at, inter, trans in [((7, 5), 5, (0, 0), False, None), ((7, 5), 3, (0, 1), False, None),
                                         ((7, 5), 9, (0, 2), False, 1), ((7, 5), 0, (0, 0), False, None),
                                         ((6, 4), 4, (0, 0), True, None), ((9, 3), 2, (0, 1), True, 3)]:
        h = max(screen[1], at[1] + fh)
        data = lzw_data(rng.integers(0, 4, (h, screen[0])), inter)
        exts = (graphic_control(1, trans),) if trans is not None else ()
        add(f"width0_{screen[0]}x{screen[1]}_h{fh}_y{at[1]}_i{int(inter)}.gif",
            "a frame of width 0 at x 0: the whole screen",
            gif(screen, (0, fh), data, at, colours, interlace=inter, exts=exts))
    add("width0_at_x2.gif", "a frame of width 0 at x 2 (refused)",
        gif((7, 5), (0, 5), lzw_data(rng.integers(0, 4, (5, 7))), (2, 0), colours))
    data = lzw_data(rng.integers(0, 4, (4, 5)))
    # graphic control extensions: one of each length, with and without the flag
    for size in (0, 1, 2, 3, 4, 5):
        for flag in (0, 1):
            refused = size < 3 or (flag and size < 4)
            add(f"gce_{size}_bytes_flag{flag}.gif",
                f"a graphic control of {size} bytes" + (" (refused)" if refused else ""),
                gif((8, 6), (5, 4), data, (1, 1), colours, exts=(graphic_control(flag, 2, size),)))
    for name, exts in {"flag_then_none": (graphic_control(1, 2), graphic_control(0, 3)),
                       "none_then_flag": (graphic_control(0, 2), graphic_control(1, 3)),
                       "flag_then_flag": (graphic_control(1, 2), graphic_control(1, 3))}.items():
        add(f"two_gce_{name}.gif", "two graphic controls before the frame",
            gif((8, 6), (5, 4), data, (1, 1), colours, exts=exts))
    # local palettes: the grey ramp (the global one applies), its first entries, not a ramp
    not_ramp = bytearray(ramp)
    not_ramp[4] = 9
    for name, glob, local, exts in [
            ("ramp_local", colours, (ramp, 1), ()),
            ("ramp_local_transparent", colours, (ramp, 1), (graphic_control(1, 3),)),
            ("ramp_local_no_global", None, (ramp, 1), ()),
            ("ramp_local_ramp_global", (ramp, 1), (ramp, 1), ()),
            ("ramp_local_two_entries", colours, (ramp[:6], 1), ()),
            ("ramp_local_256", colours, (bytes(i for i in range(256) for _ in range(3)), 7), ()),
            ("almost_ramp_local", colours, (bytes(not_ramp), 1), ())]:
        add(f"{name}.gif", "a local palette that is or is not the grey ramp",
            gif((8, 6), (5, 4), data, (1, 1), glob, local, exts=exts))
    return entries
