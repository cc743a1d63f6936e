"""Image preprocessing oracle suite: vprm preprocess against Pillow 9.4 + the model
card's dynamic_preprocess + float32 normalisation (tests/image/reference.py).

  oracle_suite.py VPRM TOOLS_DIR TOOLS_ASAN_DIR WORKDIR
  (TOOLS_DIR holds img_grid and img_decode, TOOLS_ASAN_DIR the sanitizer build of img_fuzz)

Checks, with counts printed:
  - tiling: the candidate grid order (sorted set, CPython's iteration order inside equal
    products) for many (min, max) pairs, and the chosen grid on exact aspect-ratio ties on
    both sides of the area rule, plus random sizes, against the reference's Python code;
  - PNG, GIF, BMP: 8-bit tiles bit-identical to Pillow's, float tiles bit-equal to numpy
    float32 ((x / 255) - mean) / std, which is itself checked bit-equal to torch's
    ToTensor + Normalize arithmetic;
  - JPEG (Pillow-written): the same, and the full-resolution RGB equal to Pillow's;
  - JPEG variety (tests/image/gen_jpeg.py: cjpeg's samplings, restart intervals,
    Motion-JPEG without Huffman tables, JFIF/Adobe/component-id colour spaces, CMYK and
    YCCK, fractional sampling; damaged files; progressive files left unrefined, which
    libjpeg's block smoothing fills in): full-resolution RGB equal to Pillow's, or
    refused (422) exactly when Pillow refuses; damaged files with bytes edited may be
    refused instead (at most a third of them);
  - BMP variety (tests/image/gen_bmp.py: run-length encoding, grey-ramp palettes,
    64-byte headers, pixel offsets stb_image refuses, bit-field layouts): full-resolution
    RGB equal to Pillow's, or refused (422) exactly when Pillow refuses;
  - PNG variety (tests/image/gen_png.py: zlib streams as Pillow feeds them to zlib;
    every 8-bit colour type with all five row filters, which vprm undoes itself):
    the same;
  - GIF variety (tests/image/gen_gif.py: frames of width 0, graphic control extensions
    of every length and two of them, grey-ramp local palettes): the same;
  - differential: 1200 mutated small files (300 of each format) through vprm and Pillow
    (run_differential);
  - error kinds through the CLI: unknown format (415), corrupt/truncated/empty/zero-size
    data (422), decompression-bomb headers and byte limits (413), exit status 1;
  - fuzzing: 4000 mutated copies of small generated images decoded by the ASan/UBSan
    build, every failure one of the three image error kinds.
Exits 1 on any failure."""
import json
import os
import random
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_bmp  # noqa: E402
import gen_gif  # noqa: E402
import gen_png  # noqa: E402
import gen_images  # noqa: E402
import gen_jpeg  # noqa: E402
import reference as R  # noqa: E402

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def check_grids(tool):
    queries, expect = [], []
    for mn in range(1, 9):
        for mx in range(max(1, mn - 2), 41):  # max under min: no candidates
            queries.append(f"cand {mn} {mx}")
            expect.append(" ".join(f"{i},{j}" for i, j in R.candidate_order(mn, mx)))
    n_order = len(queries)
    # Exact ties: the midpoint aspect ratio of two candidates, at several scales so that the
    # area rule (area > 0.5 * S * S * i * j) goes both ways; kept only when Python's floats
    # really tie. Configs where all candidates share one product make the set order decide.
    configs = [(1, 12), (1, 6), (2, 2), (3, 3), (4, 4), (6, 6), (8, 8), (12, 12), (2, 6), (4, 9),
               (1, 24), (16, 16), (24, 24), (5, 10)]
    ties = order_sensitive = 0
    for mn, mx in configs:
        cands = R.candidate_order(mn, mx)
        ratios = sorted({(i, j) for i, j in cands})
        for a in range(len(ratios)):
            for b in range(a + 1, len(ratios)):
                (i1, j1), (i2, j2) = ratios[a], ratios[b]
                num, den = i1 * j2 + i2 * j1, 2 * j1 * j2
                if num == 0:
                    continue
                for k in (1, 7, 40, 300):
                    w, h = num * k, den * k
                    if w > 60000 or h > 60000:
                        continue
                    ar = w / h
                    if abs(ar - i1 / j1) != abs(ar - i2 / j2):
                        continue
                    for size in (448, 16):
                        ties += 1
                        queries.append(f"grid {w} {h} {mn} {mx} {size}")
                        g = R.choose_grid(w, h, mn, mx, size)
                        expect.append(f"{g[0]} {g[1]}")
                        # Would another order inside equal products change the answer?
                        for alt in (sorted(cands), sorted(cands, reverse=True)):
                            alt = sorted(alt, key=lambda x: x[0] * x[1])
                            if R.find_closest_aspect_ratio(w / h, alt, w, h, size) != g:
                                order_sensitive += 1
                                break
    rnd = random.Random(7)
    for _ in range(3000):
        w, h = rnd.randint(1, 5000), rnd.randint(1, 5000)
        if rnd.random() < 0.3:
            w = rnd.randint(1, 40)
        mn = rnd.randint(1, 4)
        mx = rnd.randint(mn, 30) if rnd.random() < 0.95 else rnd.randint(1, mn)  # max < min: (1, 1)
        queries.append(f"grid {w} {h} {mn} {mx} 448")
        g = R.choose_grid(w, h, mn, mx, 448)
        expect.append(f"{g[0]} {g[1]}")
    out = subprocess.run([tool], input="\n".join(queries) + "\n", capture_output=True, text=True,
                         check=True).stdout.splitlines()
    bad = [(q, o, e) for q, o, e in zip(queries, out, expect) if o != e]
    if len(out) != len(queries):
        fail(f"img_grid answered {len(out)} of {len(queries)} queries")
    for q, o, e in bad[:5]:
        fail(f"tiling {q}: vprm '{o}', reference '{e}'")
    print(f"tiling: {n_order} candidate orders, {ties} exact ties ({order_sensitive} of them decided by "
          f"the set order), 3000 random sizes; {len(queries) - len(bad)}/{len(queries)} agree")
    # The tie checks must exercise the set order, not only the sort by product.
    if ties < 50 or order_sensitive < 10:
        fail(f"only {ties} exact ties, {order_sensitive} order-sensitive")


def float_reference(u8):
    return R.normalize_numpy(u8)


def decode_vs_pillow(decode_tool, path, work, expect="equal", refusals=None):
    """None when vprm's full-resolution RGB equals Pillow's convert("RGB"); expect
    "refused": both refuse the file (422); "vprm refuses": vprm refuses it (422), whatever
    Pillow does; "damaged": equal or refused by vprm, never other pixels; "as Pillow": equal,
    or both refuse; "whole file": an arithmetic-coded JPEG over Pillow's 64 KB read block,
    which Pillow refuses as it reads it (checked) and decodes given the whole file in one
    block (reference.load_rgb): equal to that. Otherwise what differs."""
    out = os.path.join(work, "decoded.npy")
    p = subprocess.run([decode_tool, path, out], capture_output=True, text=True)
    if expect == "whole file":
        try:
            R.load_rgb(path)
            return "Pillow decodes it in 64 KB blocks: the generator's premise is wrong"
        except Exception:  # noqa: BLE001 - the refusal this case is about
            pass
    try:
        ref = np.asarray(R.load_rgb(path, whole_file=expect == "whole file"))
        ref_err = None
    except Exception as ex:  # noqa: BLE001 - Pillow's refusals come in several types
        ref, ref_err = None, str(ex)
    refused = p.returncode != 0 and p.stdout.startswith("error 422 ")
    if refused and refusals is not None:
        refusals.append(path)
    if refused and (expect in ("vprm refuses", "damaged") or
                    (expect in ("refused", "as Pillow") and ref_err)):
        return None
    if p.returncode != 0:
        return f"vprm: {p.stdout.strip()} {p.stderr.strip()}; Pillow: {ref_err or 'decodes it'}"
    if ref_err is not None:
        return f"vprm decodes it, Pillow refuses: {ref_err}"
    if expect in ("refused", "vprm refuses"):
        return "vprm decodes a file the generator meant to be refused"
    mine = np.load(out)
    if mine.shape != ref.shape:
        return f"decoded shape {mine.shape} vs Pillow {ref.shape}"
    d = np.abs(mine.astype(np.int16) - ref.astype(np.int16)).max(axis=2)
    if d.any():
        ys, xs = np.nonzero(d)
        return f"{len(ys)} pixels differ, max {d.max()}, first at x={xs[0]} y={ys[0]}"
    return None


def expectation(kind):
    for mark in ("refused", "vprm refuses", "damaged", "as Pillow", "whole file"):
        if f"({mark})" in kind:
            return mark
    return "equal"


def run_variety(fmt, generator, decode_tool, work, at_least):
    """Every file of a generator (gen_jpeg, gen_bmp) against Pillow, counted by kind."""
    jdir = os.path.join(work, fmt + "s")  # run_fuzz takes seeds from there
    entries = generator.main_into(jdir)
    kinds = {}
    refused = []
    for e in entries:
        why = decode_vs_pillow(decode_tool, os.path.join(jdir, e["file"]), work,
                               expectation(e["kind"]), refused)
        k = kinds.setdefault(e["kind"], [0, 0])
        k[1] += 1
        if why:
            fail(f"{e['file']} ({e['kind']}): {why}")
        else:
            k[0] += 1
    for kind in sorted(kinds):
        print(f"  {fmt} {kind}: {kinds[kind][0]}/{kinds[kind][1]} as Pillow")
    damaged = [e for e in entries if expectation(e["kind"]) == "damaged"]
    if damaged:
        damaged_refused = sum(os.path.join(jdir, e["file"]) in refused for e in damaged)
        print(f"{fmt} damaged (bytes flipped, inserted, deleted): {len(damaged) - damaged_refused} decoded "
              f"exactly as Pillow, {damaged_refused} refused")
        # refusing is allowed where libjpeg's recovery differs; most must still decode
        if damaged_refused * 3 > len(damaged):
            fail(f"{damaged_refused} of {len(damaged)} damaged {fmt} files refused")
    good = sum(k[0] for k in kinds.values())
    print(f"{fmt} variety: {good}/{len(entries)} files decode to Pillow's RGB exactly, or both refuse those meant to be refused")
    if len(entries) < at_least:
        fail(f"too few {fmt} variety files generated ({len(entries)})")


def run_differential(decode_tool, work, n=1200):
    """Mutated copies (bits flipped, bytes set, inserted, deleted, the file cut) of the small
    generated files, as many of each format, decoded by vprm and by Pillow: vprm must never
    decode a file Pillow refuses nor show other pixels; for PNG, BMP and GIF it must not
    refuse what Pillow decodes either (but for its own size limits, 413). JPEG may be
    refused where libjpeg's read-ahead happened to have every bit of a cut file."""
    rng = random.Random(20261203)
    magic = {b"\x89P": "png", b"GI": "gif", b"BM": "bmp", b"\xff\xd8": "jpeg"}
    seeds = {}
    for sub in ("imgs", "bmps", "pngs", "jpegs"):
        d = os.path.join(work, sub)
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                p = os.path.join(d, f)
                if f.endswith(".json") or os.path.getsize(p) >= 30000:
                    continue
                with open(p, "rb") as fh:
                    seeds.setdefault(magic.get(fh.read(2), "other"), []).append(p)
    seeds.pop("other", None)
    if len(seeds) < 4:
        fail(f"differential: seed files of {sorted(seeds)} only")
        return
    formats = sorted(seeds)
    counts = {}
    path = os.path.join(work, "mutated")
    for i in range(n):
        d = bytearray(open(rng.choice(seeds[formats[i % len(formats)]]), "rb").read())
        for _ in range(rng.randint(1, 3)):
            if len(d) < 16:
                break
            at, op = rng.randrange(len(d)), rng.randrange(5)
            if op == 0:
                d[at] ^= 1 << rng.randrange(8)
            elif op == 1:
                d[at] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
            elif op == 2:
                d[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            elif op == 3:
                del d[at:at + rng.randint(1, 8)]
            else:
                d = d[:max(8, at)]
        fmt = magic.get(bytes(d[:2]), "other")
        with open(path, "wb") as f:
            f.write(d)
        why = decode_vs_pillow(decode_tool, path, work, "as Pillow")
        cls = "same"
        if why and why.startswith("vprm:") and not why.endswith("Pillow: decodes it"):
            cls = "same"  # both refuse (vprm with any image status: 413, 415 or 422)
        elif why and why.startswith("vprm: error 413"):
            cls = "vprm's size limit"
        elif why and why.startswith("vprm:"):
            cls = "vprm refuses, Pillow decodes"
        elif why:
            cls = "vprm decodes, Pillow refuses" if "Pillow refuses" in why else "other pixels"
        counts[(fmt, cls)] = counts.get((fmt, cls), 0) + 1
        strict = fmt != "jpeg" or cls != "vprm refuses, Pillow decodes"
        if cls not in ("same", "vprm's size limit") and strict:
            keep = os.path.join(work, f"differential_{i}.{fmt}")
            os.replace(path, keep)
            fail(f"differential {fmt} mutation {i} ({keep}): {why}")
    print("differential: " + ", ".join(f"{f} {c}: {k}" for (f, c), k in sorted(counts.items())))


def run_images(vprm, decode_tool, work):
    img_dir = os.path.join(work, "imgs")
    gen_images.main_into(img_dir)
    entries = json.load(open(os.path.join(img_dir, "manifest.json")))
    counts = {"png": [0, 0], "gif": [0, 0], "bmp": [0, 0], "jpeg": [0, 0]}
    torch_checked = 0
    out_f = os.path.join(work, "tiles.npy")
    out_u = os.path.join(work, "tiles_u8.npy")
    for k, e in enumerate(entries):
        path = os.path.join(img_dir, e["file"])
        fmt = e["format"]
        counts[fmt][1] += 1
        cmd = [vprm, "preprocess", "--image", path, "--out", out_f, "--out-u8", out_u] + e["args"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The oracle runs while vprm works.
        mn, mx, thumb = 1, 12, True
        a = e["args"]
        if "--max-tiles" in a:
            mx = int(a[a.index("--max-tiles") + 1])
        if "--min-tiles" in a:
            mn = int(a[a.index("--min-tiles") + 1])
        if "--no-thumbnail" in a:
            thumb = False
        try:
            ref = R.tiles_u8(R.load_rgb(path), min_num=mn, max_num=mx, use_thumbnail=thumb)
        except Exception as ex:  # the oracle must open every generated image
            proc.communicate()
            fail(f"{e['file']} ({e['kind']}): Pillow cannot open it: {ex}")
            continue
        if "EXIF" in e["kind"]:
            # the file must really carry the tag, or its equality to Pillow proves nothing
            with Image.open(path) as im:
                if ImageOps.exif_transpose(im).size == im.size:
                    fail(f"{e['file']}: EXIF orientation tag not read back (generator problem)")
        _, err = proc.communicate()
        if proc.returncode != 0:
            fail(f"{e['file']} ({e['kind']} {e['size']}): vprm exit {proc.returncode}: {err.decode().strip()}")
            continue
        got_u = np.load(out_u)
        got_f = np.load(out_f)
        if got_u.shape != ref.shape:
            fail(f"{e['file']} ({e['kind']} {e['size']}): tiles {got_u.shape} vs reference {ref.shape}")
            continue
        ok = np.array_equal(got_u, ref)
        if not ok:
            d = np.abs(got_u.astype(np.int16) - ref.astype(np.int16))
            fail(f"{e['file']} ({e['kind']} {e['size']} {e['args']}): 8-bit tiles differ at "
                 f"{int((d > 0).sum())} values, max {int(d.max())}")
        if fmt == "jpeg":
            why = decode_vs_pillow(decode_tool, path, work)
            if why:
                ok = False
                fail(f"{e['file']} ({e['kind']} {e['size']}): full resolution: {why}")
        want_f = float_reference(ref)
        if not np.array_equal(got_f.view(np.uint32), want_f.view(np.uint32)):
            ok = False
            fail(f"{e['file']}: float tiles are not bit-equal to numpy float32 normalisation")
        if k % 15 == 0:
            torch_checked += 1
            if not np.array_equal(R.normalize_torch(ref).view(np.uint32), float_reference(ref).view(np.uint32)):
                fail(f"{e['file']}: torch and numpy float32 normalisations differ (oracle problem)")
        if ok:
            counts[fmt][0] += 1
    for f in (out_f, out_u):
        if os.path.exists(f):
            os.remove(f)
    for fmt in ("png", "jpeg", "gif", "bmp"):
        print(f"{fmt}: {counts[fmt][0]}/{counts[fmt][1]} images with bit-identical 8-bit tiles and float tiles"
              + (" and full-resolution RGB" if fmt == "jpeg" else ""))
    print(f"normalisation: torch ToTensor+Normalize arithmetic == numpy float32 on {torch_checked} images")
    total = sum(c[1] for c in counts.values())
    if total < 250 or counts["png"][1] < 200:
        fail(f"too few images generated ({total}, png {counts['png'][1]})")


def png_bytes(w, h, depth=8, ctype=2, idat=None, raw=None):
    if idat is None:
        if raw is None:
            ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
            raw = b"".join(b"\x00" + bytes((x * 7 + y * 13 + c) & 255 for x in range(w) for c in range(ch))
                           for y in range(h))
        idat = zlib.compress(raw)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def run_errors(vprm, work):
    """Each case: (name, bytes, extra args, expected HTTP status in the message)."""
    good = png_bytes(20, 10)
    bad_crc = bytearray(good)
    bad_crc[29] ^= 0xFF  # inside IHDR's CRC
    jpeg = open(os.path.join(work, "imgs", "jpeg_00.jpg"), "rb").read()
    gif = open(os.path.join(work, "imgs", "gif_00.gif"), "rb").read()
    bmp = open(os.path.join(work, "imgs", "bmp_03.bmp"), "rb").read()
    cases = [
        ("empty file", b"", [], 422),
        ("unknown bytes", b"hello, this is not an image", [], 415),
        ("WebP header", b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(20), [], 415),
        ("TIFF header", b"II*\x00" + bytes(40), [], 415),
        ("PNG signature only", good[:8], [], 422),
        ("PNG bad IHDR CRC", bytes(bad_crc), [], 422),
        ("PNG truncated in IDAT", good[:len(good) - 30], [], 422),
        ("PNG garbage IDAT", png_bytes(20, 10, idat=b"\x78\x9c" + bytes(range(200))), [], 422),
        ("PNG zero width", png_bytes(0, 10, raw=b""), [], 422),
        ("PNG bomb 100000x100000", png_bytes(100000, 100000, idat=zlib.compress(b"\x00" * 1000)), [], 413),
        ("PNG over --max-pixels", good, ["--max-pixels", "199"], 413),
        ("PNG over --max-bytes", good, ["--max-bytes", str(len(good) - 1)], 413),
        ("JPEG truncated", jpeg[:len(jpeg) // 2], [], 422),
        ("JPEG bomb SOF 65000x65000", b"\xff\xd8\xff\xc0\x00\x11\x08" + struct.pack(">HH", 65000, 65000)
         + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xd9", [], 413),
        ("GIF truncated", gif[:len(gif) // 2], [], 422),
        ("GIF bomb 65535x65535", b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00;", [], 413),
        ("BMP truncated", bmp[:len(bmp) // 2], [], 422),
        ("BMP bomb", b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 200000, 200000, 1, 24, 0, 0, 0, 0, 0, 0), [], 413),
    ]
    ok = 0
    path = os.path.join(work, "bad.bin")
    for name, data, args, status in cases:
        with open(path, "wb") as f:
            f.write(data)
        p = subprocess.run([vprm, "preprocess", "--image", path, "--out", os.path.join(work, "bad.npy")] + args,
                           capture_output=True, text=True)
        msg = p.stderr.strip()
        if p.returncode == 1 and f"({status} " in msg:
            ok += 1
        else:
            fail(f"error case '{name}': exit {p.returncode}, wanted 1 with HTTP {status}: {msg}")
    print(f"errors: {ok}/{len(cases)} bad inputs refused with the right kind (CLI exit 1)")


def run_fuzz(fuzz_tool, work):
    """Mutated copies of the small generated images through the sanitizer build."""
    img_dir = os.path.join(work, "imgs")
    files = sorted(f for f in os.listdir(img_dir) if not f.endswith(".json")
                   and os.path.getsize(os.path.join(img_dir, f)) < 120_000)
    files = [os.path.join(img_dir, f) for f in files[::2]]
    for fmt in ("jpegs", "bmps", "pngs"):
        jdir = os.path.join(work, fmt)
        if not os.path.isdir(jdir):
            fail(f"fuzz seeds: {jdir} is missing")
            continue
        files += [os.path.join(jdir, f) for f in sorted(os.listdir(jdir))[::6]]
    p = subprocess.run([fuzz_tool, "20240611", "4000"] + files, capture_output=True, text=True)
    out = (p.stdout + p.stderr).strip()
    print(f"fuzz ({len(files)} seed images, sanitizer build): {out.splitlines()[-1] if out else ''}")
    if p.returncode != 0:
        fail(f"img_fuzz exit {p.returncode}: {out[-2000:]}")


def main():
    vprm, tools, tools_asan, work = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    check_grids(os.path.join(tools, "img_grid"))
    run_images(vprm, os.path.join(tools, "img_decode"), work)
    run_variety("jpeg", gen_jpeg, os.path.join(tools, "img_decode"), work, 200)
    run_variety("bmp", gen_bmp, os.path.join(tools, "img_decode"), work, 100)
    run_variety("png", gen_png, os.path.join(tools, "img_decode"), work, 60)
    run_variety("gif", gen_gif, os.path.join(tools, "img_decode"), work, 25)
    run_differential(os.path.join(tools, "img_decode"), work)
    run_errors(vprm, work)
    run_fuzz(os.path.join(tools_asan, "img_fuzz"), work)
    print(f"image oracle suite: {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
