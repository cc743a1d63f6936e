"""Seeded generator of JPEGs that exercise libjpeg's decoding rules beyond what Pillow
writes: every chroma sampling cjpeg (libjpeg-turbo-progs) can write (4:4:0, 4:1:1, 4:1:0,
mixed and whole-number ratios, restart intervals, RGB-coded, grey, progressive),
arithmetic coding (cjpeg -arithmetic, jpegtran's transcodes, DAC segments), and
byte-edited streams: Motion-JPEG frames without Huffman tables, and the JFIF / Adobe
APP14 / component-id combinations that pick the colour space (Adobe CMYK and YCCK
included), plus fractional sampling, which libjpeg refuses; and damaged streams:
truncated with the EOI put back (libjpeg decodes the MCU that runs out from zero bits and
greys the rest), scans missing, bytes flipped, inserted or deleted. vprm must decode each
one to exactly Pillow's RGB, or refuse it when Pillow does; kinds marked "(vprm refuses)"
vprm must refuse (422), and "(damaged)" ones it may refuse but never decode differently.
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


def writer(out_dir):
    """The entries list and add(name, kind, data), which writes a file into out_dir and
    lists it (gen_bmp.py writes its files the same way)."""
    os.makedirs(out_dir, exist_ok=True)
    entries = []

    def add(name, kind, data):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        entries.append({"file": name, "kind": kind})
    return entries, add


def main_into(out_dir):
    entries, add = writer(out_dir)
    rng = np.random.default_rng(20261127)

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
    # a DC Huffman table with a symbol above 15, and a refinement scan whose Al is not
    # Ah - 1: libjpeg refuses both before decoding the scan
    base = bytearray(pil_jpeg(a, quality=80))
    at = base.find(b"\xff\xc4")
    while base[at + 4] >> 4 != 0:
        at = base.find(b"\xff\xc4", at + 2)
    n = sum(base[at + 5:at + 21])
    base[at + 21 + n - 1] = 16
    add("dc_symbol16.jpg", "DC table symbol above 15 (refused)", bytes(base))
    prog = bytearray(pil_jpeg(a, quality=80, progressive=True))
    at = prog.find(b"\xff\xda")
    while prog[at + 4 + 1 + 2 * prog[at + 4] + 2] >> 4 == 0:
        at = prog.find(b"\xff\xda", at + 2)
    ahal = at + 4 + 1 + 2 * prog[at + 4] + 2
    prog[ahal] = (prog[ahal] & 0xF0) | (prog[ahal] >> 4)  # Al = Ah
    add("bad_progression.jpg", "refinement scan with Al = Ah (refused)", bytes(prog))
    # bytes between marker segments, before and after the frame header: libjpeg skips
    # stray bytes, fill and restart markers; Pillow's own marker reader refuses a TEM
    # before the first scan
    base = pil_jpeg(a, quality=80)
    junks = [("stray", b"\x12\x34", "stray bytes"), ("stuffed", b"\x12\xff\x00\x34", "stray bytes with 0xFF 0x00"),
             ("rst", b"\xff\xd3", "a restart marker"), ("fill", b"\xff\xff\xff", "0xFF fill bytes")]
    for where, at, label in [("between", base.find(b"\xff\xc4"), "between segments"),
                             ("before_sof", base.find(b"\xff\xc0"), "before the frame header")]:
        for name, junk, kind in junks:
            add(f"{where}_{name}.jpg", f"{kind} {label}", base[:at] + junk + base[at:])
    at = base.find(b"\xff\xc4")
    add("between_tem.jpg", "a TEM marker before the first scan (refused)", base[:at] + b"\xff\x01" + base[at:])
    # a DNL segment before the frame header or between tables: libjpeg skips it (stb_image
    # would refuse it as an unknown marker)
    dnl = b"\xff\xdc\x00\x04\x00\x10"
    for where, at in [("before_sof", base.find(b"\xff\xc0")), ("between", base.find(b"\xff\xc4"))]:
        add(f"dnl_{where}.jpg", "a DNL segment before the first scan", base[:at] + dnl + base[at:])
    # a sequential scan header naming a band or bit positions: libjpeg decodes it whole
    for name, fields in [("se0", (0, 0, 0)), ("ss1", (1, 63, 0)), ("al1", (0, 63, 1))]:
        seq = bytearray(pil_jpeg(a, quality=80))
        at = seq.find(b"\xff\xda")
        at += 5 + 2 * seq[at + 4]
        seq[at:at + 3] = bytes(fields)
        add(f"seq_band_{name}.jpg", f"sequential scan header with Ss,Se,AhAl = {fields}", bytes(seq))
    add_damaged(rng, out_dir, add)
    add_smoothing(out_dir, add)
    add_tails(out_dir, add)
    add_component_ids(out_dir, add)
    add_rescanned(out_dir, add)
    add_invalid_markers(out_dir, add)
    add_arithmetic(out_dir, add)
    return entries


def scan_data_start(data, nth=0):
    """Offset of the nth scan's entropy-coded data."""
    at = -1
    for _ in range(nth + 1):
        at = data.index(b"\xff\xda", at + 1)
    return at + 2 + struct.unpack(">H", data[at + 2:at + 4])[0]


def scan_data_ranges(data):
    """[(start, end)] of each scan's entropy-coded data (end at the marker after it)."""
    ranges, nth = [], 0
    while True:
        try:
            start = scan_data_start(data, nth)
        except ValueError:
            return ranges
        end = start
        while not (data[end] == 0xFF and data[end + 1] not in (0x00, 0xFF) and not 0xD0 <= data[end + 1] <= 0xD7):
            end += 1
        ranges.append((start, end))
        nth += 1


def data_edit(rng, data, at, how):
    """A bit flipped (how 0), 1-4 random bytes inserted (1) or 1-29 bytes deleted (2) at at."""
    if how == 0:
        return data[:at] + bytes([data[at] ^ (1 << int(rng.integers(8)))]) + data[at + 1:]
    if how == 1:
        return data[:at] + bytes(rng.integers(0, 256, int(rng.integers(1, 5)), dtype=np.uint8)) + data[at:]
    return data[:at] + data[at + int(rng.integers(1, 30)):]


def add_damaged(rng, out_dir, add):
    """Damaged streams: cut with the file's EOI put back (a truncated download with the
    end put back); bytes flipped, inserted or deleted; restart markers renumbered (each
    of libjpeg's resynchronisation actions), dropped or doubled."""
    ppm = os.path.join(out_dir, "src.ppm")
    scans = os.path.join(out_dir, "seq.scans")
    with open(scans, "w") as f:
        f.write("0;\n1;\n2;\n")  # sequential, one component per scan
    for di, (w, h) in enumerate([(64, 40), (129, 67), (203, 151), (300, 200)]):
        a = content(rng, h, w)
        Image.fromarray(a).save(ppm)
        def cj(*args):
            return subprocess.run(["cjpeg", *args, ppm], capture_output=True, check=True).stdout
        plain = {"sub0": pil_jpeg(a, quality=90, subsampling=0),
                 "sub2": pil_jpeg(a, quality=75, subsampling=2),
                 "sub1 optimized": pil_jpeg(a, quality=85, subsampling=1, optimize=True),
                 "grey": pil_jpeg(a, "L", quality=80),
                 "one scan per component": cj("-scans", scans)}
        restart = {"restart 2 rows": cj("-restart", "2"), "restart 3 MCUs 4:4:4": cj("-restart", "3B", "-sample", "1x1"),
                   "restart each MCU, scan per component": cj("-restart", "1B", "-scans", scans)}
        for name, data in {**plain, **restart}.items():
            ranges, end = scan_data_ranges(data), len(data) - 2
            for ci in range(3):  # inside some scan's data, not a header between scans
                lo, hi = ranges[int(rng.integers(len(ranges)))]
                at = int(rng.integers(lo, hi))
                add(f"cut_{di}_{name.replace(' ', '_').replace(',', '')}_{ci}.jpg", f"{name}, cut, EOI put back",
                    data[:at] + data[end:])
        seq = plain["one scan per component"]
        add(f"cut_scans_{di}.jpg", "one scan per component, last scan missing",
            seq[:seq.rindex(b"\xff\xda")] + b"\xff\xd9")
        # progressive: cut in the last scan, or earlier (coefficients left unrefined:
        # libjpeg's block smoothing estimates them)
        prog = pil_jpeg(a, quality=85, progressive=True)
        ranges = scan_data_ranges(prog)
        lo, hi = ranges[-1]
        at = int(rng.integers(lo, hi))
        add(f"cut_prog_last_{di}.jpg", "progressive, cut in its last scan, EOI put back",
            prog[:at] + prog[-2:])
        lo, hi = ranges[int(rng.integers(len(ranges) - 1))]
        at = int(rng.integers(lo, hi))
        add(f"cut_prog_{di}.jpg", "progressive, cut before its last scan, EOI put back",
            prog[:at] + prog[-2:])
        for ei in range(3):  # progressive data edited: libjpeg's refinement rules on garbage
            lo, hi = ranges[int(rng.integers(len(ranges)))]
            at = int(rng.integers(lo, hi))
            edited = data_edit(rng, prog, at, ei % 3)
            add(f"edit_prog_{di}_{ei}.jpg", f"progressive, bytes {['flipped', 'inserted', 'deleted'][ei % 3]} (damaged)", edited)
        for name, data in restart.items():
            rst = [i for i in range(scan_data_start(data), len(data) - 1)
                   if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]
            for ri, shift in enumerate([1, 2, 7, 6, 4]):  # next two, last two, far off
                at = rst[int(rng.integers(len(rst)))]
                edited = bytearray(data)
                edited[at + 1] = 0xD0 + (data[at + 1] - 0xD0 + shift) % 8
                add(f"rst_{di}_{name.replace(' ', '_').replace(',', '')}_{ri}.jpg",
                    f"{name}, a restart marker renumbered +{shift}", bytes(edited))
            at = rst[int(rng.integers(len(rst)))]
            add(f"rst_{di}_{name.replace(' ', '_').replace(',', '')}_drop.jpg",
                f"{name}, a restart marker dropped", data[:at] + data[at + 2:])
            add(f"rst_{di}_{name.replace(' ', '_').replace(',', '')}_double.jpg",
                f"{name}, a restart marker doubled", data[:at] + data[at:at + 2] + data[at:])
        for name, data in {**plain, **restart}.items():
            ranges = scan_data_ranges(data)
            for ei in range(4):
                lo, hi = ranges[int(rng.integers(len(ranges)))]
                at = int(rng.integers(lo, hi))
                how = ei % 3
                edited = data_edit(rng, data, at, how)
                add(f"edit_{di}_{name.replace(' ', '_').replace(',', '')}_{ei}.jpg",
                    f"{name}, bytes {['flipped', 'inserted', 'deleted'][how]} (damaged)", edited)
    os.remove(ppm)
    os.remove(scans)


def scan_starts(data):
    """Offsets of the SOS markers."""
    out, at = [], data.find(b"\xff\xda")
    while at >= 0:
        out.append(at)
        at = data.find(b"\xff\xda", at + 2)
    return out


def add_smoothing(out_dir, add):
    """Progressive files whose scans leave coefficients 1..9 unrefined, which libjpeg's
    block smoothing estimates from the neighbouring blocks' DC values: cut after a scan or
    inside one (the EOI put back), at every chroma sampling and greyscale ones of vertical
    sampling 2 (v = 2 takes libjpeg-turbo 2.1's own choice of neighbour rows), two blocks
    wide (its DC registers), with restart intervals, and a complete file whose scan script
    stops before the refinement scans."""
    rng = np.random.default_rng(20261128)  # its own draws: the other files stay the same
    ppm, pgm = os.path.join(out_dir, "smooth.ppm"), os.path.join(out_dir, "smooth.pgm")
    files = []
    for w, h in [(40, 40), (9, 23), (67, 45), (130, 90), (17, 130)]:
        a = content(rng, h, w)
        for sub in (0, 1, 2):
            files.append((f"{w}x{h} 4:{['4:4', '2:2', '2:0'][sub]}", pil_jpeg(a, quality=80, progressive=True,
                                                                         subsampling=sub)))
        Image.fromarray(a).convert("L").save(pgm)
        for samp in ("2x2", "1x2"):
            files.append((f"{w}x{h} grey {samp}", subprocess.run(
                ["cjpeg", "-grayscale", "-progressive", "-sample", samp, "-quality", "75", pgm],
                capture_output=True, check=True).stdout))
    a = content(rng, 90, 120)
    Image.fromarray(a).save(ppm)
    files.append(("120x90 restart every MCU", subprocess.run(
        ["cjpeg", "-progressive", "-restart", "1B", ppm], capture_output=True, check=True).stdout))
    for fi, (what, data) in enumerate(files):
        starts = scan_starts(data)
        for k in sorted({int(rng.integers(1, len(starts))) for _ in range(2)}):  # after scan k
            add(f"smooth_{fi:02d}_after{k}.jpg", f"progressive {what}, {k} of {len(starts)} scans",
                data[:starts[k]] + b"\xff\xd9")
        lo, hi = scan_data_ranges(data)[int(rng.integers(len(starts) - 1))]
        at = int(rng.integers(lo, hi))
        add(f"smooth_{fi:02d}_inside.jpg", f"progressive {what}, cut inside a scan's data", data[:at] + b"\xff\xd9")
    script = os.path.join(out_dir, "partial.scans")
    with open(script, "w") as f:  # DC, then the first AC bands, no refinement
        f.write("0,1,2: 0-0, 0, 1;\n0: 1-5, 0, 2;\n1: 1-63, 0, 1;\n2: 1-63, 0, 1;\n0: 6-63, 0, 2;\n")
    add("smooth_partial_script.jpg", "progressive scan script without its refinement scans",
        subprocess.run(["cjpeg", "-scans", script, ppm], capture_output=True, check=True).stdout)


def add_tails(out_dir, add):
    """What follows a sequential frame's scan of every component: libjpeg has output every
    row by then and Pillow reads the markers after it once, so data that ends there (inside
    a segment or before EOI) still decodes, while another scan, SOI or frame header, or a
    marker libjpeg does not know, is refused. A frame of one scan per component is read to
    EOI before any row comes out: the same broken tail is refused there."""
    rng = np.random.default_rng(20261129)
    a = content(rng, 37, 53)
    tails = [("broken_com", b"\xff\xfe\x00\x40abc\xff\xd9", "a COM segment cut short, then EOI"),
             ("broken_com_no_eoi", b"\xff\xfe\x00\x40abc", "a COM segment cut short, no EOI"),
             ("app_no_eoi", b"\xff\xe1\x00\x06Exif", "an APP1 segment, no EOI"),
             ("dqt", b"\xff\xdb\x00\x43\x00" + bytes(range(1, 65)) + b"\xff\xd9", "a DQT segment, then EOI"),
             ("tem", b"\xff\x01\xff\xd9", "a TEM marker, then EOI"),
             # the scan's data runs to the end of the file, where libjpeg's reading stops at
             # the marker: every row is out, Pillow shows it
             ("rst_end", b"\xff\xd3", "a restart marker, then the end of the data"),
             ("rst_stray_end", b"\xff\xd5\x12\x34", "a restart marker and stray bytes, no EOI"),
             ("soi", b"\xff\xd8\xff\xd9", "a second SOI (refused)"),
             ("sof", b"\xff\xc0\x00\x0b\x08\x00\x08\x00\x08\x01\x01\x11\x00\xff\xd9",
              "a second frame header (refused)"),
             ("jpg", b"\xff\xc8\x00", "a JPG marker, cut (refused)"),
             ("unknown", b"\xff\xf3\x00\x04ab\xff\xd9", "an unknown marker 0xF3 (refused)"),
             # tables libjpeg reads there, as it reads them
             ("dqt_index", b"\xff\xdb\x00\x43\x0e" + bytes(64) + b"\xff\xd9", "a DQT of table 14 (refused)"),
             ("dqt_16bit", b"\xff\xdb\x00\x83\x11" + bytes(range(128)) + b"\xff\xd9", "a 16-bit DQT, then EOI"),
             ("dqt_long", b"\xff\xdb\x00\x50\x01" + bytes(78) + b"\xff\xd9",
              "a DQT segment too long, the data ending in its second table"),
             ("dqt_long1", b"\xff\xdb\x00\x44\x01" + bytes(64) + b"\xff\xd9",
              "a DQT segment one byte too long: EOI read as a table index (refused)"),
             ("dqt_short", b"\xff\xdb\x00\x05\x01\x02\x03", "a DQT segment too short, the data ending in its entries"),
             ("dht_index", b"\xff\xc4\x00\x14\x24" + bytes([1] + [0] * 15) + b"\x05\xff\xd9", "a DHT of table 4 (refused)"),
             ("dht_count", b"\xff\xc4\x00\x14\x01" + bytes([5] + [0] * 15) + b"\x05\xff\xd9",
              "a DHT counting more symbols than it holds (refused)"),
             ("dht_ok", b"\xff\xc4\x00\x14\x11" + bytes([1] + [0] * 15) + b"\x05\xff\xd9", "a DHT, then EOI"),
             ("dri_len", b"\xff\xdd\x00\x05\x00\x01\x00\xff\xd9", "a DRI of 5 bytes (refused)"),
             ("dac_index", b"\xff\xcc\x00\x04\x40\x21\xff\xd9", "a DAC of table 64 (refused)"),
             ("dac_lu", b"\xff\xcc\x00\x04\x01\x1f\xff\xd9", "a DAC with L > U (refused)"),
             ("dac_ok", b"\xff\xcc\x00\x06\x01\xf1\x11\x05\xff\xd9", "a DAC, then EOI")]
    for name, data in [("444", pil_jpeg(a, quality=80, subsampling=0)), ("420", pil_jpeg(a, quality=80)),
                       ("grey", pil_jpeg(a, "L", quality=80))]:
        sos = data.index(b"\xff\xda")
        add(f"tail_{name}_second_scan.jpg", "sequential, its scan twice (refused)",
            data[:-2] + data[sos:-2] + b"\xff\xd9")
        for tname, tail, kind in tails:
            add(f"tail_{name}_{tname}.jpg", f"sequential, after the scan: {kind}", data[:-2] + tail)
    ppm, scans = os.path.join(out_dir, "tail.ppm"), os.path.join(out_dir, "tail.scans")
    Image.fromarray(a).save(ppm)
    with open(scans, "w") as f:
        f.write("0;\n1;\n2;\n")
    multi = subprocess.run(["cjpeg", "-scans", scans, ppm], capture_output=True, check=True).stdout
    add("tail_multi_broken_com.jpg", "one scan per component, then a COM segment cut short (refused)",
        multi[:-2] + tails[0][1])



def scan_ids(data, frame_ids, scans=None):
    """The frame's component ids set to frame_ids, and the nth scan header's ids to
    scans[n] (scans None: each renamed as its frame component was)."""
    out = bytearray(data)
    sof = next(out.find(m) for m in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2") if out.find(m) >= 0)
    old = [out[sof + 10 + 3 * i] for i in range(out[sof + 9])]
    for i, cid in enumerate(frame_ids):
        out[sof + 10 + 3 * i] = cid
    for n, at in enumerate(scan_starts(bytes(out))):
        for i in range(out[at + 4]):
            cur = out[at + 5 + 2 * i]
            out[at + 5 + 2 * i] = frame_ids[old.index(cur)] if scans is None else scans[n][i]
    return bytes(out)


def add_component_ids(out_dir, add):
    """Frames whose components share an id: libjpeg matches a scan's i-th id to the first
    frame component from position i on that has it, so a one-scan frame decodes as if the
    ids differed, a progressive one sends its later one-component scans to the first
    such component (garbage, but what Pillow shows), and a scan whose id has no match from
    its position on is refused."""
    rng = np.random.default_rng(20261130)
    a = content(rng, 37, 53)
    ppm, script = os.path.join(out_dir, "ids.ppm"), os.path.join(out_dir, "ids.scans")
    Image.fromarray(a).save(ppm)

    def cj(scans, *args):
        with open(script, "w") as f:
            f.write(scans)
        return subprocess.run(["cjpeg", *args, "-scans", script, ppm], capture_output=True, check=True).stdout
    files = {"4:2:0": pil_jpeg(a, quality=85), "4:4:4": pil_jpeg(a, quality=85, subsampling=0),
             "4:2:0 no JFIF": strip(pil_jpeg(a, quality=70), {0xE0}),
             "progressive": pil_jpeg(a, quality=85, progressive=True),
             "one scan per component": cj("0;\n1;\n2;\n", "-sample", "2x2"),
             "scans Y, CbCr": cj("0;\n1 2;\n", "-sample", "1x1"),
             "scans YCb, Cr": cj("0 1;\n2;\n", "-sample", "2x1")}
    for fi, (what, data) in enumerate(files.items()):
        for ids in ([1, 1, 1], [0, 0, 0], [1, 2, 1], [2, 2, 3], [7, 9, 9]):
            if (fi + ids[0] + ids[2]) % 2 == 0 or what == "one scan per component":
                continue
            # the scan of Cb and Cr finds the second component twice: refused
            refused = " (refused)" if what == "scans Y, CbCr" and ids == [7, 9, 9] else ""
            add(f"ids_{fi}_{''.join(map(str, ids))}.jpg", f"{what}, ids {ids}{refused}",
                scan_ids(data, ids))
    cmyk = pil_jpeg(a, "CMYK", quality=90)
    add("ids_cmyk_1111.jpg", "CMYK, ids [1, 1, 1, 1]", scan_ids(cmyk, [1, 1, 1, 1]))
    add("ids_cmyk_1213.jpg", "CMYK, ids [1, 2, 1, 3]", scan_ids(cmyk, [1, 2, 1, 3]))
    seq = files["4:4:4"]
    for frame, scan, what in [([1, 1, 2], [1, 1, 1], "a third id 1 with no match from its position"),
                              ([1, 1, 2], [1, 2, 1], "id 1 after id 2"),
                              ([1, 2, 3], [3, 2, 1], "ids in reverse order"),
                              ([1, 2, 3], [1, 3, 2], "ids 3 before 2"),
                              ([1, 2, 3], [1, 2, 4], "an id the frame lacks")]:
        add(f"ids_scan_{''.join(map(str, frame))}_{''.join(map(str, scan))}.jpg",
            f"frame ids {frame}, scan ids {scan}: {what} (refused)", scan_ids(seq, frame, [scan]))
    add("ids_scan_twice.jpg", "frame ids [1, 2, 3], scan ids [1, 2, 2] (refused)",
        scan_ids(files["scans Y, CbCr"], [1, 2, 3], [[1], [2, 2]]))
    os.remove(ppm)
    os.remove(script)


def add_rescanned(out_dir, add):
    """Sequential frames of several scans where a component comes again in a later scan
    (here a scan of another image with the same tables spliced in): libjpeg decodes every
    scan into the coefficients before any row comes out, the later scan writing its DC and
    its nonzero AC coefficients over the earlier ones; cut short, the MCUs it did not reach
    keep the earlier values."""
    rng = np.random.default_rng(20261131)
    ppm, script = os.path.join(out_dir, "again.ppm"), os.path.join(out_dir, "again.scans")
    for w, h, scans, args in [(53, 37, "0;\n1;\n2;\n", ["-sample", "2x2"]), (67, 45, "0 1;\n2;\n", ["-sample", "1x1"]),
                              (40, 24, "0;\n1 2;\n", ["-restart", "1B"])]:
        with open(script, "w") as f:
            f.write(scans)
        enc = []
        for _ in range(2):
            Image.fromarray(content(rng, h, w)).save(ppm)
            enc.append(subprocess.run(["cjpeg", "-quality", "80", *args, "-scans", script, ppm],
                                      capture_output=True, check=True).stdout)
        first, other = enc
        starts, ranges = scan_starts(other), scan_data_ranges(other)
        name = f"again_{w}x{h}"
        for n, at in enumerate(starts):
            again = other[at:ranges[n][1]]
            add(f"{name}_scan{n}.jpg", f"{w}x{h} scans {scans.strip()!r}, scan {n} of another image again",
                first[:-2] + again + b"\xff\xd9")
        again = other[starts[0]:ranges[0][1]]
        cut = int(rng.integers(ranges[0][0] - starts[0] + 1, len(again)))
        add(f"{name}_cut.jpg", f"{w}x{h}, its first scan again from another image, cut short",
            first[:-2] + again[:cut] + b"\xff\xd9")
        add(f"{name}_before.jpg", f"{w}x{h}, another image's first scan before its own",
            first[:scan_starts(first)[0]] + again + first[scan_starts(first)[0]:])
    os.remove(ppm)
    os.remove(script)


def add_invalid_markers(out_dir, add):
    """An invalid marker (below 0xC0) inside a scan's data: with restart intervals libjpeg's
    resynchronisation skips it at the next restart boundary and decodes on; in the last
    interval, or without restart intervals, libjpeg reads it after the scan and refuses it."""
    rng = np.random.default_rng(20261204)
    ppm = os.path.join(out_dir, "inv.ppm")
    Image.fromarray(content(rng, 48, 64)).save(ppm)
    for name, args in [("rows", ["-restart", "1"]), ("mcus", ["-restart", "5B", "-sample", "1x1"]),
                       ("prog", ["-restart", "1", "-progressive"])]:
        data = subprocess.run(["cjpeg", *args, ppm], capture_output=True, check=True).stdout
        rst = [i for i in range(scan_data_start(data), len(data) - 1)
               if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]
        mid, last = rst[len(rst) // 3], rst[-1]
        add(f"inv_{name}_before_rst.jpg", f"restart intervals ({name}), marker 0x4E before a restart marker",
            data[:mid] + b"\xff\x4e" + data[mid:])
        add(f"inv_{name}_in_interval.jpg", f"restart intervals ({name}), marker 0x05 inside an interval",
            data[:mid - 7] + b"\xff\x05" + data[mid - 7:])
        end = scan_data_ranges(data)[-1][1]
        add(f"inv_{name}_last.jpg", f"restart intervals ({name}), marker 0x4E in the last interval (refused)",
            data[:end - 3] + b"\xff\x4e" + data[end - 3:])
    plain = pil_jpeg(content(rng, 24, 40), quality=80)
    at = scan_data_start(plain) + 40
    add("inv_no_restart.jpg", "no restart intervals, marker 0x4E in the scan (refused)",
        plain[:at] + b"\xff\x4e" + plain[at:])
    os.remove(ppm)


def dac(pairs):
    """A DAC segment: (table index, value) pairs (DC 0..15: U << 4 | L; AC 16..31: Kx)."""
    payload = b"".join(bytes([i, v]) for i, v in pairs)
    return b"\xff\xcc" + struct.pack(">H", len(payload) + 2) + payload


def set_scan_tables(data, pick):
    """Every scan header's table byte (Td << 4 | Ta) of its i-th component to pick(i, byte)."""
    out = bytearray(data)
    for at in scan_starts(data):
        for i in range(out[at + 4]):
            out[at + 6 + 2 * i] = pick(i, out[at + 6 + 2 * i])
    return bytes(out)


def add_arithmetic(out_dir, add):
    """Arithmetic-coded frames (SOF9 sequential, SOF10 progressive), which libjpeg-turbo
    decodes for Pillow: cjpeg -arithmetic at several samplings, sizes, qualities and restart
    intervals; jpegtran's lossless transcodes of Pillow-written files; DAC segments that
    change the conditioning (before a scan, with the extreme values, and between a
    progressive file's scans: the data was coded with the defaults, so the pixels are
    garbage, but libjpeg's garbage; one before the frame, which the encoder's own DAC before
    each scan overrides), bad ones refused; scans on other statistics tables (0..15, shared or not);
    and damaged ones: cut inside any scan with the EOI put back (the decoder reads zeros
    past a marker; a cut progressive file is smoothed), bytes flipped, inserted or deleted,
    restart markers renumbered, dropped or doubled; and Huffman frames with a DAC segment.
    Equal to Pillow or refused by both."""
    rng = np.random.default_rng(20261206)
    ppm, script = os.path.join(out_dir, "arith.ppm"), os.path.join(out_dir, "arith.scans")
    files = []
    for w, h in [(1, 1), (9, 17), (53, 37), (130, 90), (211, 133)]:
        a = content(rng, h, w)
        Image.fromarray(a).save(ppm)
        for args in (["-sample", "2x2"], ["-sample", "1x1", "-quality", "95"], ["-sample", "2x1", "-restart", "1"],
                     ["-progressive"], ["-progressive", "-sample", "1x2", "-restart", "3B"], ["-grayscale"],
                     ["-grayscale", "-progressive"], ["-quality", "20", "-restart", "1B"]):
            data = subprocess.run(["cjpeg", "-arithmetic", *args, ppm], capture_output=True, check=True).stdout
            files.append((f"cjpeg -arithmetic {' '.join(args)}", data))
        for prog in ([], ["-progressive"]):
            data = subprocess.run(["jpegtran", "-arithmetic", *prog], input=pil_jpeg(a, quality=85),
                                  capture_output=True, check=True).stdout
            files.append((f"jpegtran -arithmetic {' '.join(prog)}", data))
        if w * h > 1000:  # sequential frames of several scans (coefficients kept until all are in)
            for scans, args in (("0;\n1;\n2;\n", []), ("0 1;\n2;\n", ["-sample", "2x1", "-restart", "1"])):
                with open(script, "w") as f:
                    f.write(scans)
                data = subprocess.run(["cjpeg", "-arithmetic", "-scans", script, *args, ppm],
                                      capture_output=True, check=True).stdout
                files.append((f"cjpeg -arithmetic, scans {scans.strip()!r} {' '.join(args)}", data))
    # over Pillow's 64 KB read block: Pillow fails on these (libjpeg's arithmetic decoder
    # cannot suspend), vprm decodes them as Pillow does given the whole file at once
    a = content(rng, 240, 320)
    Image.fromarray(a).save(ppm)
    for args in (["-quality", "98", "-sample", "1x1"], ["-quality", "98", "-progressive", "-restart", "2"]):
        data = subprocess.run(["cjpeg", "-arithmetic", *args, ppm], capture_output=True, check=True).stdout
        assert len(data) > 70000, len(data)
        add(f"arith_big_{args[-1]}.jpg", f"cjpeg -arithmetic {' '.join(args)}, over 64 KB (whole file)", data)
    os.remove(ppm)
    os.remove(script)
    # libjpeg reads a DAC segment in a Huffman frame too (and uses nothing of it); stb_image
    # refused it as an unknown marker
    for prog in (False, True):
        data = pil_jpeg(a, quality=80, progressive=prog)
        sos = data.index(b"\xff\xda")
        add(f"huffman_dac_{int(prog)}.jpg", f"Huffman{' progressive' if prog else ''}, a DAC segment",
            data[:sos] + dac([(0, 0x21), (16, 9)]) + data[sos:])
    for fi, (what, data) in enumerate(files):
        add(f"arith_{fi:02d}.jpg", what, data)
        if fi % 3:
            continue
        sof = next(m for m in (0xC9, 0xCA) if data.find(bytes([0xFF, m])) >= 0)
        before_sof, before_sos = data.index(bytes([0xFF, sof])), data.index(b"\xff\xda")
        variants = [("dac_dc", data[:before_sos] + dac([(0, 0x52), (1, 0x31)]) + data[before_sos:]),
                    ("dac_ac", data[:before_sos] + dac([(16, 10), (17, 1)]) + data[before_sos:]),
                    # cjpeg and jpegtran write a DAC of the defaults right before each scan, so a
                    # DAC before the frame is overridden (its values must not apply) and one
                    # just before the scan takes effect: L 0 U 15, Kx 63; L = U = 15, Kx 0
                    ("dac_before_frame", data[:before_sof] + dac([(0, 0xF0), (16, 63)]) + data[before_sof:]),
                    ("dac_extremes", data[:before_sos] + dac([(0, 0xF0), (16, 63), (1, 0xFF), (17, 0)]) + data[before_sos:]),
                    ("tables_5_9", set_scan_tables(data, lambda i, b: 0x59)),
                    ("tables_swapped", set_scan_tables(data, lambda i, b: (b & 15) << 4 | b >> 4)),
                    ("tables_per_component", set_scan_tables(data, lambda i, b: (0x23 * (i + 1)) & 0xFF))]
        starts = scan_starts(data)
        if len(starts) > 1:
            variants.append(("dac_between_scans", data[:starts[1]] + dac([(0, 0x33), (16, 2)]) + data[starts[1]:]))
        for vi, (name, v) in enumerate(variants):
            add(f"arith_{fi:02d}_{name}.jpg", f"arithmetic, {name.replace('_', ' ')}", v)
        for name, seg in [("index", dac([(32, 1)])), ("lu", dac([(0, 0x12)])),
                          ("length", b"\xff\xcc\x00\x05\x00\x11\x00")]:
            add(f"arith_{fi:02d}_bad_dac_{name}.jpg", f"arithmetic, a DAC segment's bad {name} (refused)",
                data[:before_sos] + seg + data[before_sos:])
        ranges = scan_data_ranges(data)
        for ci in range(2):
            lo, hi = ranges[int(rng.integers(len(ranges)))]
            if hi > lo:
                at = int(rng.integers(lo, hi))
                add(f"arith_{fi:02d}_cut{ci}.jpg", "arithmetic, cut, EOI put back", data[:at] + data[-2:])
        for ei in range(3):
            lo, hi = ranges[int(rng.integers(len(ranges)))]
            if hi > lo:
                edited = data_edit(rng, data, int(rng.integers(lo, hi)), ei)
                add(f"arith_{fi:02d}_edit{ei}.jpg",
                    f"arithmetic, bytes {['flipped', 'inserted', 'deleted'][ei]} (as Pillow)", edited)
        if sof == 0xC9 and len(starts) == 1 and ranges[0][1] - ranges[0][0] > 60:
            # cut inside the scan, no EOI: libjpeg's arithmetic decoder reads no byte before
            # it needs one, so Pillow shows the file when its decoder broke before the cut
            # (garbage at the start of the data) and refuses it otherwise
            lo, hi = ranges[0]
            broken = data[:lo] + b"\x5a" * 40 + data[lo + 40:]
            for ci in range(2):
                at = int(rng.integers(lo + 41, hi))
                add(f"arith_{fi:02d}_cut_no_eoi{ci}.jpg", "arithmetic, cut, no EOI (as Pillow)", data[:at])
                add(f"arith_{fi:02d}_broken_cut_no_eoi{ci}.jpg",
                    "arithmetic, damaged early, cut, no EOI (as Pillow)", broken[:at])
        rst = [i for i in range(scan_data_start(data), len(data) - 1)
               if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]
        if rst:
            at = rst[int(rng.integers(len(rst)))]
            for shift in (1, 2, 6, 4):
                edited = bytearray(data)
                edited[at + 1] = 0xD0 + (data[at + 1] - 0xD0 + shift) % 8
                add(f"arith_{fi:02d}_rst{shift}.jpg", f"arithmetic, a restart marker renumbered +{shift}",
                    bytes(edited))
            add(f"arith_{fi:02d}_rst_drop.jpg", "arithmetic, a restart marker dropped", data[:at] + data[at + 2:])
            add(f"arith_{fi:02d}_rst_double.jpg", "arithmetic, a restart marker doubled",
                data[:at] + data[at:at + 2] + data[at:])
