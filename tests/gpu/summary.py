#!/usr/bin/env python3
"""The table at the end of tests/gpu/run.sh, from what the stages left in DIR (any of
them may be missing: a stage that failed shows as such, the rest still print).

  summary.py DIR      exit 1 when a stage failed or parity is over the PERF.md target
"""

import json
import os
import re
import sys

PARITY_TOL = 0.02    # PERF.md: ||m_gpu - m_ref|| / ||m_ref|| on the +/- margins
PEAK_TFLOPS = 790.0  # PERF.md: bf16 dense rate measured on the test H100


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def load(path):
    text = read(path)
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def stage_line(d, name):
    rc = (read(os.path.join(d, name + ".rc"), "") or "").strip()
    log = read(os.path.join(d, name + ".log"), "") or ""
    counts = re.findall(r"(\d+) passed, (\d+) failed", log)
    fails = [l.strip() for l in log.splitlines() if l.startswith("FAIL")]
    what = f"{counts[-1][0]} passed, {counts[-1][1]} failed" if counts else ""
    if rc == "":
        status = "not run"
    elif rc == "0":
        status = "ok"
    elif rc in ("124", "137"):
        status = "TIMEOUT"
    else:
        status = f"FAIL (exit {rc})"
    line = f"  {name:<10} {status:<16} {what}"
    for f in fails[:4]:
        line += "\n" + " " * 14 + f[:150]
    return line, rc == "0"


def busy_samples(d, name):
    """nvidia-smi's samples during a stage (run.sh: clocks_start) drawing at least half the
    power limit: (SM clock, max SM clock, power W, power limit W, clocks event reasons)."""
    rows = []
    for line in (read(os.path.join(d, name + ".clocks"), "") or "").splitlines():
        f = [x.strip() for x in line.split(",")]
        try:
            rows.append((float(f[0]), float(f[1]), float(f[2]), float(f[3]), int(f[4], 16)))
        except (IndexError, ValueError):
            continue
    return [r for r in rows if r[3] > 0 and r[2] >= 0.5 * r[3]]


def busy_power(d, name):
    busy = busy_samples(d, name)
    return sum(r[2] for r in busy) / len(busy) if busy else None


def clocks_line(d, name, label):
    """What nvidia-smi saw during a stage: the busy samples' SM clock and power, and how
    often the software power cap (clocks event reason bit 0x4) held the clock down."""
    busy = busy_samples(d, name)
    if not busy:
        return None
    clk = [r[0] for r in busy]
    capped = sum(1 for r in busy if r[4] & 0x4)
    return (f"{label}: SM clock {sum(clk) / len(clk):.0f} MHz mean ({min(clk):.0f}..{max(clk):.0f}; "
            f"top {busy[0][1]:.0f}), power {sum(r[2] for r in busy) / len(busy):.0f} W of "
            f"{busy[0][3]:.0f} W, power cap holding the clock in {100 * capped / len(busy):.0f}% "
            f"of {len(busy)} busy samples (50 ms)")


def main():
    d = sys.argv[1]
    ok = True
    dev = (read(os.path.join(d, "device.txt"), "unknown") or "unknown").strip()
    print(f"\n==== vprm GPU checks on {dev}")
    alts = sorted(f[:-3] for f in os.listdir(d) if f.startswith("w1_alt") and f.endswith(".rc"))
    extra = ["w1_profile"] if os.path.exists(os.path.join(d, "w1_profile.rc")) else []
    f16 = [s for s in ("w1_bf16", "w1_f16l", "w1_tune") if os.path.exists(os.path.join(d, s + ".rc"))]
    for name in ("ops", "e2e", "w1", "w1_simple", *f16, *(alts or ["w1_alt"]), "torch", "w1_plain",
                 "torch_plain", *extra):
        line, good = stage_line(d, name)
        print(line)
        ok &= good or name in ("w1_simple", "w1_bf16", "w1_f16l", "w1_tune", "w1_mlp", "w1_mlp2", "w1_mlp_profile", "w1_plain", "torch_plain",
                               "w1_profile") or name.startswith("w1_alt")
    ours = load(os.path.join(d, "w1", "ours.json"))
    simple = load(os.path.join(d, "w1", "ours_simple.json"))
    tr = load(os.path.join(d, "w1", "torch.json")) or {}
    methods = tr.get("methods", {})
    if ours:
        print(f"\nW1 on {ours['device']}: {ours['n_tiles']} tiles, {ours['n_tokens']} tokens computed "
              f"({ours['prefix_len']} shared prefix), {ours['n_out']} scores; "
              f"{ours['useful_tflop']:.1f} useful TFLOP; backend init {ours['init_s']:.1f} s, "
              f"weights {ours['weights_gib']:.2f} GiB, working memory {ours['workspace_gib']:.2f} GiB")
    if "ref_scores" in tr:
        s = tr["ref_scores"]
        print(f"fp32 reference step scores P(+) {s['min']:.3f}..{s['max']:.3f}, "
              f"{100 * s['outside_0.3_0.7']:.0f}% outside 0.3..0.7 (margin std {s['margin_std']:.2f})")
    base = ours["median_ms"] if ours else None
    rows = [("vprm CUDA backend (" + (ours or {}).get("attention", "?") + " attention)", ours, methods.get("ours")),
            ("vprm CUDA backend, simple attention (check)", None, methods.get("ours_simple")),
            ("vprm CUDA backend, VPRM_CUDA_ACTIVATIONS=bf16", load(os.path.join(d, "w1", "ours_bf16.json")),
             methods.get("ours_bf16")),
            ("vprm CUDA backend, VPRM_CUDA_ACTIVATIONS=fp16-llm", load(os.path.join(d, "w1", "ours_f16l.json")),
             methods.get("ours_f16l")),
            ("vprm CUDA backend, VPRM_CUDA_GEMM_TUNE=8", load(os.path.join(d, "w1", "ours_tune.json")),
             methods.get("ours_tune")),
            ("vprm CUDA backend, VPRM_CUDA_MLP=cublas", load(os.path.join(d, "w1", "ours_mlp.json")),
             methods.get("ours_mlp")),
            ("vprm CUDA backend, VPRM_CUDA_MLP=fused2", load(os.path.join(d, "w1", "ours_mlp2.json")),
             methods.get("ours_mlp2"))]
    # other kernels' runs (run.sh w1_alt): timing from their JSON even when torch failed
    w1dir = os.path.join(d, "w1")
    labels = {f[:-len(".json")] for f in (os.listdir(w1dir) if os.path.isdir(w1dir) else [])
              if f.startswith("ours_alt_") and f.endswith(".json")}
    labels |= {k for k in methods if k.startswith("ours_alt_")}
    for extra in sorted(labels):
        j = load(os.path.join(w1dir, extra + ".json")) or {}
        rows.append((f"vprm CUDA backend, VPRM_CUDA_ATTENTION={extra[len('ours_alt_'):]}", j,
                     methods.get(extra)))
    rows += [
            ("PyTorch careful: vision+prefix once, 2 head rows", methods.get("careful"), methods.get("careful")),
            ("PyTorch reference way: per response, SDPA, full head", methods.get("refway"), methods.get("refway"))]
    print(f"\n{'implementation':<54} {'median ms':>10} {'x ours':>7} {'MFU':>6}  margin rel err vs fp32 (worst |dm|)")
    for label, timing, parity in rows:
        med = timing.get("median_ms") if timing else None
        mfu = (timing.get("mfu") if timing else None)
        if med is not None and mfu is None and ours:
            mfu = ours["useful_tflop"] * 1e12 / (med / 1e3) / (PEAK_TFLOPS * 1e12)
        ms = f"{med:10.1f}" if med is not None else f"{'-':>10}"
        ratio = f"{med / base:7.2f}" if med is not None and base else f"{'-':>7}"
        mf = f"{100 * mfu:5.1f}%" if mfu is not None else f"{'-':>6}"
        if parity and "rel_err" in parity:
            par = f"{parity['rel_err']:.4f} ({parity['worst_abs']:.3f} at score {parity['worst_at']})"
        else:
            par = (parity or {}).get("error", "-")
        print(f"{label:<54} {ms} {ratio} {mf}  {par}")
    if ours:
        limit = ours["useful_tflop"] / PEAK_TFLOPS * 1e3
        print(f"{'FLOP limit at 790 TFLOP/s (PERF.md)':<54} {limit:10.1f} {limit / base:7.2f} {'100.0%':>6}")
        print(f"ours: vision {ours['vision_ms']:.1f} ms, language {ours['language_ms']:.1f} ms (medians), "
              f"first run {ours['first_ms']:.1f} ms; activations {ours.get('activations', '?')}")
        careful = (methods.get("careful") or {}).get("median_ms")
        if careful:
            print(f"against PyTorch careful: {careful / base:.2f}x faster (issue 5: at least 2x); "
                  f"{base / limit:.2f}x the FLOP limit (target 1.3x)")
    if simple:
        print(f"simple-attention run: {simple['median_ms']:.1f} ms")
    for name, label in (("w1", "clocks during ours (w1)"), ("torch", "clocks during PyTorch (torch)")):
        line = clocks_line(d, name, label)
        if line:
            print(line)
    # on a card held at its power cap, time follows energy: energy per W1 compares the
    # implementations at equal power. Approximate: busy samples' mean power x the median;
    # the torch stage's samples cover its oracle, reference-way and careful runs together,
    # and nvidia-smi's power.draw is itself an average over about a second
    p_ours, p_torch = busy_power(d, "w1"), busy_power(d, "torch")
    careful_ms = (methods.get("careful") or {}).get("median_ms")
    if ours and p_ours and p_torch and careful_ms:
        e_ours, e_torch = p_ours * base / 1e3, p_torch * careful_ms / 1e3
        print(f"energy per W1, approximate (mean busy power x median): ours {e_ours:.0f} J, PyTorch careful "
              f"{e_torch:.0f} J ({e_torch / e_ours:.2f}x ours)")
    o = methods.get("ours", {})
    if "rel_err" in o:
        good = o["rel_err"] <= PARITY_TOL
        print(f"\nparity (PERF.md target <= {PARITY_TOL}): {'PASS' if good else 'FAIL'}: "
              f"{o['rel_err']:.4f}, worst score {o['worst_at']}: {o['worst_got']:.4f} vs {o['worst_ref']:.4f}")
        ok &= good
    else:
        print("\nparity: not measured")
        ok = False
    plain = load(os.path.join(d, "w1_plain", "torch.json"))
    if plain and "ref_scores" in plain:
        s, pm = plain["ref_scores"], plain.get("methods", {})

        def err(k):
            return f"{pm[k]['rel_err']:.4f}" if "rel_err" in pm.get(k, {}) else "-"
        good = "rel_err" in pm.get("ours", {}) and pm["ours"]["rel_err"] <= PARITY_TOL
        print(f"PERF.md's plain weights (all normal(0, 0.02), head rows scaled): fp32 margins mean "
              f"{s.get('margin_mean', float('nan')):.2f}, std {s['margin_std']:.2f}, step scores "
              f"{s['min']:.3f}..{s['max']:.3f}; margin rel err vs fp32: ours {err('ours')} "
              f"({'PASS' if good else 'FAIL'}), PyTorch bf16 careful {err('careful')}, reference way {err('refway')}")
    seeds = sorted((n for n in os.listdir(d) if n.startswith("w1_seed") and os.path.isdir(os.path.join(d, n))),
                   key=lambda n: int(n[len("w1_seed"):]) if n[len("w1_seed"):].isdigit() else 0)
    decisions(rows, base, methods, [(n, (load(os.path.join(d, n, "torch.json")) or {}).get("methods", {}))
                                    for n in seeds])
    for n in seeds:  # reported, not judged: the verdict is the seed-1 draw's
        t = load(os.path.join(d, n, "torch.json")) or {}
        pm = t.get("methods", {})

        def err(k):
            return f"{pm[k]['rel_err']:.4f}" if "rel_err" in pm.get(k, {}) else "-"
        s = t.get("ref_scores")
        spread = f"step scores {s['min']:.3f}..{s['max']:.3f} (margin std {s['margin_std']:.2f})" if s else "no fp32 run"
        print(f"weights seed {n[len('w1_seed'):]} (same request): {spread}; margin rel err vs fp32: ours "
              f"{err('ours')} (bf16 activations {err('ours_bf16')}, fp16 language model "
              f"{err('ours_f16l')}), PyTorch bf16 careful {err('careful')}, "
              f"reference way {err('refway')}")
    return 0 if ok else 1


def decisions(rows, base, methods, seeds):
    """What the prepared options say (reported, not judged): the fastest kernel or option
    against the default, and each activation type's parity over every weight draw."""
    timed = [(t["median_ms"], label) for label, t, _ in rows[1:]
             if t and t.get("median_ms") is not None and label.startswith("vprm")]
    if base and timed:
        ms, label = min(timed)
        print(f"\nfastest option: {label[len('vprm CUDA backend, '):]} {ms:.1f} ms "
              f"({'faster' if ms < base else 'not faster'} than the default's {base:.1f} ms)")
    worst = {}
    for key, name in (("ours", "the default (auto: fp16)"), ("ours_bf16", "bf16"), ("ours_f16l", "fp16-llm")):
        errs = [methods.get(key, {}).get("rel_err")] + [m.get(key, {}).get("rel_err") for _, m in seeds]
        errs = [e for e in errs if e is not None]
        if errs:
            worst[key] = max(errs)
            verdict = "within" if max(errs) <= PARITY_TOL else "over"
            print(f"parity of {name} over {len(errs)} weight draws: worst {max(errs):.4f} "
                  f"({verdict} {PARITY_TOL}): " + ", ".join(f"{e:.4f}" for e in errs))
    # the default's activations (tests/gpu/README.md): fp16 with bf16 after an overflow
    # while it meets the bound on every draw (PERF.md's parity is a must; time is reported)
    bf = [t for label, t, _ in rows if label.endswith("VPRM_CUDA_ACTIVATIONS=bf16")]
    bf_ms = bf[0].get("median_ms") if bf and bf[0] else None
    if "ours" in worst and bf_ms is not None and base:
        meets = worst["ours"] <= PARITY_TOL
        print(f"decision: the default (fp16) {'meets' if meets else 'misses'} the bound on every "
              f"draw, {base:.1f} ms against bf16's {bf_ms:.1f} ms: "
              + ("keep VPRM_CUDA_ACTIVATIONS=auto the default" if meets
                 else "look again at the default activations (pick_activations)"))

if __name__ == "__main__":
    sys.exit(main())
