"""Seeded generator of PNGs whose image data Pillow 9.4 (zlib's inflate, fed a row of room
and one read of at most 65536 bytes of one IDAT chunk at a time) reads in its own ways:
an Adler-32 that does not match (checked only when inflate reaches it in the call that
completed the last row), a stream that ends right after a row (the other rows zero) or
inside one, data after the stream's end, the trailer or the end-of-block code in an IDAT
chunk of their own or cut off, a copy still pending when the data ends, IDAT chunks of one
byte, images over several 64 KB reads, bytes flipped in the compressed data, and zlib's
refusals (header check, window size, preset dictionary, block type 3, stored lengths,
code 286, distances too far back). vprm must decode each to exactly Pillow's RGB, or
refuse it (422) when Pillow fails; kinds marked "(refused)" are ones Pillow fails on,
"(as Pillow)" ones either way.
main_into(dir) -> [{"file", "kind"}]."""
import struct
import zlib

import numpy as np

from gen_jpeg import writer

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png(w, h, depth, color, zdata, plte=None, idat_sizes=None, interlace=0, tail=b""):
    """A PNG of the given header and zlib data, cut into IDAT chunks of idat_sizes
    (default one chunk); tail goes after the last IDAT (default IEND)."""
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    if plte is not None:
        out += chunk(b"PLTE", plte)
    at = 0
    for n in idat_sizes or [len(zdata)]:
        out += chunk(b"IDAT", zdata[at:at + n])
        at += n
    if at < len(zdata):
        out += chunk(b"IDAT", zdata[at:])
    return out + (tail if tail else chunk(b"IEND", b""))


def row_list(rng, w, h, depth, color):
    """Filtered rows (random filter types 0..4 over random samples), one bytes each."""
    row_bytes = (w * depth * CHANNELS[color] + 7) // 8
    return [bytes([int(rng.integers(0, 5))]) + bytes(rng.integers(0, 256, row_bytes, dtype=np.uint8))
            for _ in range(h)]


def rows(rng, w, h, depth, color):
    """The raw image data of row_list."""
    return b"".join(row_list(rng, w, h, depth, color))


def fixed_block(codes):
    """A final fixed-Huffman block starting with the given (code, length) pairs, each code
    written most significant bit first as deflate does, then zero bits."""
    bits = [1, 1, 0]  # BFINAL, then BTYPE 01 least significant bit first
    for code, n in codes:
        bits += [(code >> (n - 1 - i)) & 1 for i in range(n)]
    bits += [0] * (-len(bits) % 8)
    return bytes(sum(bits[i + k] << k for k in range(8)) for i in range(0, len(bits), 8))


def deflate(raw, level=6, strategy=zlib.Z_DEFAULT_STRATEGY, wbits=15):
    c = zlib.compressobj(level, zlib.DEFLATED, wbits, 9, strategy)
    return c.compress(raw) + c.flush()


def main_into(out_dir):
    entries, add = writer(out_dir)
    rng = np.random.default_rng(20261202)
    w, h = 23, 9
    raw = rows(rng, w, h, 8, 2)
    z = deflate(raw)
    add("plain.png", "RGB, one IDAT", png(w, h, 8, 2, z))
    bad_adler = z[:-4] + bytes(b ^ 0x5A for b in z[-4:])
    add("adler_bad.png", "Adler-32 wrong (refused)", png(w, h, 8, 2, bad_adler))
    add("adler_own_idat.png", "Adler-32 wrong, in an IDAT of its own (not read)",
        png(w, h, 8, 2, bad_adler, idat_sizes=[len(z) - 4]))
    add("adler_cut.png", "the file cut inside the Adler-32", png(w, h, 8, 2, z[:-2], tail=b"\0"))
    add("trailer_missing.png", "the stream without its Adler-32, then IEND", png(w, h, 8, 2, z[:-4]))
    add("garbage_after.png", "data after the stream's end", png(w, h, 8, 2, z + b"\x13\x37" * 20))
    # the stream ends after k rows: Pillow leaves the others zero; inside a row it is truncated
    for k in (1, 4):
        part = deflate(raw[:k * (3 * w + 1)])
        add(f"ends_after_row{k}.png", f"the stream ends after row {k} of {h}", png(w, h, 8, 2, part))
    add("ends_inside_row.png", "the stream ends inside a row (refused)",
        png(w, h, 8, 2, deflate(raw[:2 * (3 * w + 1) + 5])))
    add("ends_after_row_own_idat.png", "the stream ends after a row, its end in another IDAT (refused)",
        png(w, h, 8, 2, deflate(raw[:3 * (3 * w + 1)]), idat_sizes=[len(deflate(raw[:3 * (3 * w + 1)])) - 3]))
    # a run that spans rows when the data ends: Pillow calls inflate only while input is left
    flat = b"".join(b"\x00" + bytes([7]) * (3 * w) for _ in range(h))
    zf = deflate(flat, 9)
    add("flat.png", "one colour: long copies across rows", png(w, h, 8, 2, zf))
    add("flat_cut.png", "one colour, the stream cut after its copies began (refused)",
        png(w, h, 8, 2, zf[:len(zf) // 2 + 1]))
    add("idat_bytes.png", "IDAT chunks of one byte", png(w, h, 8, 2, z, idat_sizes=[1] * len(z)))
    for i in range(4):
        flipped = bytearray(z)
        at = int(rng.integers(2, len(z) - 4))
        flipped[at] ^= 1 << int(rng.integers(8))
        add(f"flip_{i}.png", "a bit flipped in the compressed data (as Pillow)", png(w, h, 8, 2, bytes(flipped)))
    # several 64 KB reads: a large noisy image, also cut short and with a wrong check
    bw, bh = 300, 120
    big_raw = rows(rng, bw, bh, 8, 6)
    bz = deflate(big_raw, 1)
    add("big_rgba.png", f"{bw}x{bh} RGBA over {len(bz) // 65536 + 1} reads", png(bw, bh, 8, 6, bz))
    add("big_split.png", "the same in IDATs of 70000 bytes", png(bw, bh, 8, 6, bz, idat_sizes=[70000] * 5))
    add("big_adler.png", "the same, Adler-32 wrong (refused)",
        png(bw, bh, 8, 6, bz[:-4] + bytes(b ^ 1 for b in bz[-4:])))
    add("big_cut.png", "the same, cut in the middle (refused)", png(bw, bh, 8, 6, bz[:len(bz) // 2], tail=b"\0"))
    # interlaced, palette, low depths, 16 bits
    for name, (iw, ih, depth, color, inter) in {"adam7_rgb": (13, 11, 8, 2, 1), "adam7_grey2": (5, 3, 2, 0, 1),
                                                 "palette4": (17, 6, 4, 3, 0), "grey16": (9, 7, 16, 0, 0),
                                                 "adam7_1x1": (1, 1, 8, 6, 1)}.items():
        rl = []
        if inter:  # Adam7 sub-images, pass by pass
            for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                                   (1, 0, 2, 2), (0, 1, 1, 2)]:
                pw, ph = len(range(x0, iw, dx)), len(range(y0, ih, dy))
                if pw and ph:
                    rl += row_list(rng, pw, ph, depth, color)
        else:
            rl = row_list(rng, iw, ih, depth, color)
        r = b"".join(rl)
        plte = bytes(rng.integers(0, 256, 48, dtype=np.uint8)) if color == 3 else None
        zz = deflate(r)
        add(f"{name}.png", name, png(iw, ih, depth, color, zz, plte=plte, interlace=inter))
        add(f"{name}_adler.png", f"{name}, Adler-32 wrong (refused)",
            png(iw, ih, depth, color, zz[:-4] + b"\0\0\0\0", plte=plte, interlace=inter))
        if len(rl) > 1:
            add(f"{name}_short.png", f"{name}, the stream ends after {len(rl) // 2} of {len(rl)} rows",
                png(iw, ih, depth, color, deflate(b"".join(rl[:len(rl) // 2])), plte=plte, interlace=inter))
    # 8-bit rows without interlacing, which vprm unfilters itself (png_unfilter.c): every
    # colour type, all five filters (row_list draws one a row), widths of 1 pixel and over
    # 16 bytes, a palette shorter than the indices; an unknown filter type is refused
    for color in (0, 2, 3, 4, 6):
        for iw, ih in ((1, 1), (1, 6), (2, 3), (7, 5), (33, 12)):
            plte = bytes(rng.integers(0, 256, 3 * 40, dtype=np.uint8)) if color == 3 else None
            add(f"filters_c{color}_{iw}x{ih}.png", f"8 bits, colour type {color}, row filters 0-4",
                png(iw, ih, 8, color, deflate(rows(rng, iw, ih, 8, color)), plte=plte))
    for ftype in (5, 255):
        rl = row_list(rng, 7, 5, 8, 2)
        rl[3] = bytes([ftype]) + rl[3][1:]
        add(f"filter_type_{ftype}.png", f"a row with filter type {ftype} (refused)",
            png(7, 5, 8, 2, deflate(b"".join(rl))))
    # Pillow takes any interlace byte other than 0 for Adam7
    rl = []
    for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                           (1, 0, 2, 2), (0, 1, 1, 2)]:
        pw, ph = len(range(x0, 6, dx)), len(range(y0, 5, dy))
        if pw and ph:
            rl += row_list(rng, pw, ph, 8, 2)
    for byte in (1, 2, 255):
        add(f"interlace_byte_{byte}.png", f"interlace byte {byte}: Adam7",
            png(6, 5, 8, 2, deflate(b"".join(rl)), interlace=byte))
    # zlib's own refusals
    small = deflate(raw, 6)
    add("stored.png", "stored blocks", png(w, h, 8, 2, deflate(raw, 0)))
    add("fixed.png", "fixed Huffman codes", png(w, h, 8, 2, deflate(raw, 6, zlib.Z_FIXED)))
    add("window_9bits.png", "a 512-byte window (header says so)", png(w, h, 8, 2, deflate(raw, 6, wbits=9)))
    add("header_check.png", "FCHECK wrong (refused)", png(w, h, 8, 2, small[:1] + bytes([small[1] ^ 1]) + small[2:]))
    add("window_64k.png", "window of 64 KB (refused)",
        png(w, h, 8, 2, bytes([0x88, (31 - (0x88 * 256) % 31) % 31]) + small[2:]))
    fdict = (0x78 << 8) | 0x20
    fdict |= (31 - fdict % 31) % 31
    add("preset_dict.png", "a preset dictionary (refused)", png(w, h, 8, 2, struct.pack(">H", fdict) + b"\0\0\0\1" + small[2:]))
    add("block_type3.png", "block type 3 (refused)", png(w, h, 8, 2, small[:2] + b"\x07" + small[3:]))
    stored = deflate(raw, 0)
    add("stored_nlen.png", "stored block lengths that do not match (refused)",
        png(w, h, 8, 2, stored[:5] + bytes([stored[5] ^ 0xFF]) + stored[6:]))
    # fixed blocks written bit by bit: a code 286 first, and a copy (length 3, distance 1)
    # before any byte is out
    add("code286.png", "literal/length code 286 (refused)",
        png(w, h, 8, 2, b"\x78\x01" + fixed_block([(0b11000110, 8)]) + b"\0" * 8))
    add("too_far.png", "a copy before the first byte (refused)",
        png(w, h, 8, 2, b"\x78\x01" + fixed_block([(0b0000001, 7), (0, 5)]) + b"\0" * 8))
    return entries
