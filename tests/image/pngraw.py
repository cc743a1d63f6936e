"""A small PNG writer (zlib + struct) for what Pillow cannot write: 16-bit RGB(A) and
grey+alpha, 2/4-bit grey, low-bit palettes with short palettes, Adam7 interlacing,
every row filter type, IDAT split over several chunks, ancillary and private chunks."""
import struct
import zlib

import numpy as np

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(ctype, data):
    body = ctype + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_rows(samples, depth):
    """samples [h, w, c] ints -> list of packed row bytes."""
    h, w, c = samples.shape
    rows = []
    for y in range(h):
        r = samples[y].reshape(-1)
        if depth == 16:
            rows.append(r.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(r.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            n = len(r)
            padded = np.zeros(((n + per - 1) // per) * per, dtype=np.uint16)
            padded[:n] = r
            padded = padded.reshape(-1, per)
            shifts = np.array([8 - depth * (k + 1) for k in range(per)], dtype=np.uint16)
            rows.append((padded << shifts).sum(axis=1).astype(np.uint8).tobytes())
    return rows


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filter_rows(rows, bpp, rng):
    """Filters each row with a random filter type (0..4) against the previous row."""
    out = []
    prior = None
    for row in rows:
        raw = np.frombuffer(row, dtype=np.uint8).astype(np.int32)
        up = np.zeros_like(raw) if prior is None else prior
        left = np.zeros_like(raw)
        left[bpp:] = raw[:-bpp] if len(raw) > bpp else left[bpp:]
        upleft = np.zeros_like(raw)
        upleft[bpp:] = up[:-bpp] if len(raw) > bpp else upleft[bpp:]
        ftype = int(rng.integers(0, 5)) if rng is not None else 0
        if ftype == 0:
            f = raw
        elif ftype == 1:
            f = raw - left
        elif ftype == 2:
            f = raw - up
        elif ftype == 3:
            f = raw - (left + up) // 2
        else:
            f = raw - paeth(left, up, upleft)
        out.append(bytes([ftype]) + (f & 0xFF).astype(np.uint8).tobytes())
        prior = raw
    return out


def write_png(path, samples, depth, ctype, palette=None, trns=None, interlace=False, rng=None,
              idat_parts=1, extra_chunks=(), compress_level=1):
    """samples: [h, w] or [h, w, c] ints (palette indices for ctype 3)."""
    samples = np.asarray(samples)
    if samples.ndim == 2:
        samples = samples[:, :, None]
    h, w, c = samples.shape
    assert c == CHANNELS[ctype]
    bpp = max(1, c * depth // 8)
    if interlace:
        data = []
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            data += filter_rows(pack_rows(sub, depth), bpp, rng)
    else:
        data = filter_rows(pack_rows(samples, depth), bpp, rng)
    z = zlib.compress(b"".join(data), compress_level)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    for ct, d in extra_chunks:
        out += chunk(ct, d)
    if palette is not None:
        out += chunk(b"PLTE", bytes(palette))
    if trns is not None:
        out += chunk(b"tRNS", bytes(trns))
    step = max(1, (len(z) + idat_parts - 1) // idat_parts)
    for i in range(0, max(len(z), 1), step):
        out += chunk(b"IDAT", z[i:i + step])
    out += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)
