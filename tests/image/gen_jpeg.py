"""Seeded generator of JPEGs that exercise libjpeg's decoding rules beyond what Pillow
writes: every chroma sampling cjpeg (libjpeg-turbo-progs) can write (4:4:0, 4:1:1, 4:1:0,
mixed and whole-number ratios, restart intervals, RGB-coded, grey, progressive), and
byte-edited streams: Motion-JPEG frames without Huffman tables, and the JFIF / Adobe
APP14 / component-id combinations that pick the colour space (Adobe CMYK and YCCK
included), plus fractional sampling, which libjpeg refuses. vprm must decode each one
to exactly Pillow's RGB, or refuse it when Pillow does.
main_into(dir) -> [{"file", "kind"}]."""
import io
import os
import struct
import subprocess

import numpy as np
from PIL import Image


def content(rng, h, w):
    """Gradients + a sharp colour edge + noise: chroma that changes at every scale."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.stack([x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1), (x * 3 + y * 5) % 256], -1)
    a += rng.normal(0, float(rng.choice([4, 20, 40])), a.shape)
    a[:, w // 3: w // 3 + 1] = [255, 0, 40]
    a[h // 2: h // 2 + 1, :] = [10, 240, 200]
    return np.clip(a, 0, 255).astype(np.uint8)


def segments(data):
    """[(marker, bytes of the whole segment)] up to the first SOS, and the rest."""
    assert data[:2] == b"\xff\xd8"
    segs, p = [], 2
    while data[p + 1] != 0xDA:
        n = struct.unpack(">H", data[p + 2:p + 4])[0]
        segs.append((data[p + 1], data[p:p + 2 + n]))
        p += 2 + n
    return segs, data[p:]


def join(segs, rest):
    return b"\xff\xd8" + b"".join(s for _, s in segs) + rest


def seg(marker, payload):
    return (marker, bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload)


JFIF = seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
JFIF_SHORT = seg(0xE0, b"JFIF\x00\x01\x01")  # too short for libjpeg to count it


def adobe(transform):
    return seg(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00" + bytes([transform]))


def strip(data, markers):
    segs, rest = segments(data)
    return join([s for s in segs if s[0] not in markers], rest)


def insert_after_soi(data, new):
    segs, rest = segments(data)
    return join(new + segs, rest)


def set_ids(data, ids):
    """Component ids rewritten in the frame header and in every scan header."""
    out = bytearray(data)
    segs, _ = segments(data)
    old = []
    p = 2
    for m, s in segs:
        if m in (0xC0, 0xC1, 0xC2):
            for i in range(s[9]):
                old.append(s[10 + 3 * i])
                out[p + 10 + 3 * i] = ids[i]
        p += len(s)
    remap = dict(zip(old, ids))
    # scan headers: FF DA, length, Ns, (id, tables) * Ns; scans are found by their markers
    q = p
    while True:
        q = out.find(b"\xff\xda", q)
        if q < 0:
            break
        for i in range(out[q + 4]):
            out[q + 5 + 2 * i] = remap[out[q + 5 + 2 * i]]
        q += 2
    return bytes(out)


def set_adobe_transform(data, t):
    segs, rest = segments(data)
    return join([adobe(t) if m == 0xEE else (m, s) for m, s in segs], rest)


def pil_jpeg(a, mode="RGB", **kw):
    b = io.BytesIO()
    Image.fromarray(a).convert(mode).save(b, "JPEG", **kw)
    return b.getvalue()


def main_into(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20261127)
    entries = []

    def add(name, kind, data):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        entries.append({"file": name, "kind": kind})

    sizes = [(1, 1), (2, 3), (3, 2), (5, 7), (8, 8), (9, 17), (17, 9), (31, 33), (64, 40), (129, 67)]
    sizes += [(int(rng.integers(1, 300)), int(rng.integers(1, 300))) for _ in range(6)]
    cjpeg = [["-sample", "1x2"], ["-sample", "4x1"], ["-sample", "4x2"], ["-sample", "2x4"],
             ["-sample", "2x2,1x1,2x1"], ["-sample", "1x1,2x2,1x1"], ["-sample", "3x1"],
             ["-sample", "1x3"], ["-sample", "2x1", "-progressive"], ["-sample", "1x2", "-progressive"],
             ["-rgb"], ["-rgb", "-sample", "2x2"], ["-restart", "1", "-sample", "2x2"], ["-grayscale"],
             ["-quality", "100", "-sample", "2x2"], ["-quality", "20", "-sample", "2x1"]]
    for si, (w, h) in enumerate(sizes):
        a = content(rng, h, w)
        ppm = os.path.join(out_dir, "src.ppm")
        Image.fromarray(a).save(ppm)
        for k, args in enumerate(cjpeg):
            if (si + k) % 2:  # half the combinations: enough sizes per sampling
                continue
            p = subprocess.run(["cjpeg"] + args + [ppm], capture_output=True)
            if p.returncode != 0:
                raise RuntimeError(f"cjpeg {args}: {p.stderr.decode()}")
            add(f"cj_{si:02d}_{k:02d}.jpg", "cjpeg " + " ".join(args), p.stdout)
        os.remove(ppm)

        sub = si % 3
        base = pil_jpeg(a, quality=int(rng.integers(30, 96)), subsampling=sub)
        # Motion-JPEG: no Huffman tables (libjpeg installs the standard ones), or only the
        # AC ones missing; a progressive stream without tables is refused by both
        add(f"mjpeg_{si:02d}.jpg", f"no DHT sub{sub}", strip(base, {0xC4}))
        if si % 4 == 0:
            add(f"mjpeg_grey_{si:02d}.jpg", "no DHT grey", strip(pil_jpeg(a, "L"), {0xC4}))
            prog = pil_jpeg(a, progressive=True)
            add(f"mjpeg_prog_{si:02d}.jpg", "no DHT progressive (refused)", strip(prog, {0xC4}))
        # colour space by libjpeg's rules
        nojfif = strip(base, {0xE0})
        rgb_ids = set_ids(nojfif, [ord("R"), ord("G"), ord("B")])
        variants = [
            ("ids RGB, no JFIF: RGB", rgb_ids),
            ("ids RGB + JFIF: YCbCr", insert_after_soi(rgb_ids, [JFIF])),
            ("ids RGB + short JFIF: RGB", insert_after_soi(rgb_ids, [JFIF_SHORT])),
            ("ids RGB + Adobe 1: YCbCr", insert_after_soi(rgb_ids, [adobe(1)])),
            ("ids 5,6,7: YCbCr", set_ids(nojfif, [5, 6, 7])),
            ("Adobe 0, no JFIF: RGB", insert_after_soi(nojfif, [adobe(0)])),
            ("Adobe 0 + JFIF: YCbCr", insert_after_soi(base, [adobe(0)])),
            ("Adobe 7: YCbCr", insert_after_soi(nojfif, [adobe(7)])),
        ]
        for vi, (kind, data) in enumerate(variants):
            if (si + vi) % 2 == 0:
                add(f"cs_{si:02d}_{vi}.jpg", kind, data)
        cmyk = pil_jpeg(a, "CMYK", quality=90)
        add(f"cmyk_{si:02d}.jpg", "Adobe CMYK", cmyk)
        add(f"ycck_{si:02d}.jpg", "Adobe 2: YCCK", set_adobe_transform(cmyk, 2))
        if si % 3 == 0:
            add(f"cmyk_noadobe_{si:02d}.jpg", "4 components, no Adobe: CMYK", strip(cmyk, {0xEE}))
            add(f"ycck1_{si:02d}.jpg", "4 components, Adobe 1: YCCK", set_adobe_transform(cmyk, 1))
    # fractional sampling: a 3x1 luma / 1x1 chroma stream whose Cb factor is edited to
    # 2x1 (cjpeg refuses to write one; libjpeg cannot upsample it: Pillow refuses it)
    a = content(rng, 24, 40)
    ppm = os.path.join(out_dir, "src.ppm")
    Image.fromarray(a).save(ppm)
    data = bytearray(subprocess.run(["cjpeg", "-sample", "3x1", ppm], capture_output=True,
                                    check=True).stdout)
    os.remove(ppm)
    sof = data.find(b"\xff\xc0")
    assert data[sof + 9] == 3 and data[sof + 11] == 0x31 and data[sof + 14] == 0x11
    data[sof + 14] = 0x21
    add("frac.jpg", "fractional sampling (refused)", bytes(data))
    return entries
