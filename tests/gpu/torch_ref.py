#!/usr/bin/env python3
"""PyTorch side of the GPU checks (tests/gpu/run.sh), on the GPU machine (torch 2.x, CUDA).

Written from shared/spec/MODEL.md (not from the C code). The weights are `vprm mkmodel
--seed N` values at the full 8B shape, generated on the GPU through libvprm_randw.so (the
CUDA backend's own generator), so both sides hold bit-identical bf16 tensors. The
workload is the batch file mkbatch wrote (W1: 13 tiles, 8 responses sharing a prefix);
the tiles are the ones gpu_8b used (DIR/tiles.f32).

Three implementations, same weights, same inputs:
  fp32-ref  the oracle: fp32 math on the bf16 weights (TF32 off), vision once, prefix
            once with its keys/values kept, suffixes batched, two head rows;
  refway    the reference way: one full bf16 forward per response (vision recomputed),
            PyTorch SDPA attention, the whole LM head, bf16 RoPE tables as Hugging Face;
  careful   bf16, vision once, prefix once, suffixes batched, two head rows only.
Prints margin errors of each (and of the CUDA backend's DIR/ours_logits.f32) against the
oracle, and median times; writes DIR/torch.json.

  torch_ref.py --dir DIR --batch FILE --lib libvprm_randw.so [--seed 1] [--reps 3]
               [--device cuda|cpu] [--compute bf16|fp32]
--device cpu --compute fp32 is the CPU-machine self-check (tests/gpu/check_cpu.sh, tiny
shape, Debian's torch 1.13): there every implementation must agree with the oracle and
with the C CPU backend to fp32 rounding.
"""

import argparse
import ctypes
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

PEAK_TFLOPS = 790.0  # PERF.md: bf16 dense rate measured on the test H100
DEV = "cuda"


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def sdpa(q, k, v, attn_mask=None, is_causal=False):
    """F.scaled_dot_product_attention (torch >= 2.0), or the same math one head at a time
    (Debian's torch 1.13, CPU self-check)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
    out = torch.empty(q.shape[:-1] + (v.shape[-1],), dtype=q.dtype, device=q.device)
    lq, lk = q.shape[-2], k.shape[-2]
    for h in range(q.shape[1]):
        s = torch.matmul(q[:, h], k[:, h].transpose(-1, -2)) / math.sqrt(q.shape[-1])
        if is_causal:
            s = s.masked_fill(torch.ones(lq, lk, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
        if attn_mask is not None:
            s = s.masked_fill(~attn_mask[:, 0], float("-inf"))
        out[:, h] = torch.matmul(torch.softmax(s.float(), -1).to(v.dtype), v[:, h])
    return out


# ----------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------

def read_batch(path):
    w = np.fromfile(path, dtype="<i4")
    if len(w) < 10 or w[0] != 0x31425056 or w[1] != 1:
        raise SystemExit(f"{path} is not a version-1 batch file")
    keys = ["vocab", "plus", "minus", "img_context", "n_tiles", "num_image_token", "n_responses",
            "prefix_len"]
    b = {k: int(v) for k, v in zip(keys, w[2:10])}
    at, b["responses"] = 10, []
    for _ in range(b["n_responses"]):
        n = int(w[at]); ids = w[at + 1:at + 1 + n].astype(np.int64); at += 1 + n
        k = int(w[at]); score = w[at + 1:at + 1 + k].astype(np.int64); at += 1 + k
        b["responses"].append((ids, score))
    return b


class Config:
    def __init__(self, path):
        with open(path) as f:
            c = json.load(f)
        v, l = c["vision_config"], c["llm_config"]
        self.v_hidden, self.v_layers, self.v_heads = v["hidden_size"], v["num_hidden_layers"], v["num_attention_heads"]
        self.v_inter, self.patch, self.image = v["intermediate_size"], v["patch_size"], v["image_size"]
        self.channels, self.v_eps = v.get("num_channels", 3), v["layer_norm_eps"]
        self.v_rms, self.qkv_bias, self.qk_norm = v["norm_type"] == "rms_norm", v["qkv_bias"], v["qk_normalization"]
        if self.v_rms or self.qk_norm:
            raise SystemExit("torch_ref.py implements the layer_norm InternViT only")
        self.hidden, self.layers, self.heads = l["hidden_size"], l["num_hidden_layers"], l["num_attention_heads"]
        self.kv_heads, self.inter, self.vocab = l["num_key_value_heads"], l["intermediate_size"], l["vocab_size"]
        self.head_dim = self.hidden // self.heads
        self.rms_eps, self.theta, self.max_pos = l["rms_norm_eps"], l["rope_theta"], l["max_position_embeddings"]
        rs = l.get("rope_scaling") or {}
        self.rope_dynamic, self.rope_factor = rs.get("type") == "dynamic", float(rs.get("factor", 1.0))
        self.grid = self.image // self.patch
        self.tokens_per_tile = (self.grid // 2) ** 2

    def dims(self):
        return [self.v_hidden, self.v_layers, self.v_heads, self.v_inter, self.patch, self.image,
                self.channels, int(self.v_rms), int(self.qkv_bias), int(self.qk_norm), self.hidden,
                self.layers, self.heads, self.kv_heads, self.head_dim, self.inter, self.vocab]


def random_weights(lib_path, cfg, seed, plus, minus, rule=0):
    """name -> bf16 CUDA tensor, filled by the CUDA backend's generator (rule: 0 spread, 1
    plain, engine/model/config.h's vp_init_rule)."""
    lib = ctypes.CDLL(os.path.abspath(lib_path))
    lib.vp_randw_open.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_uint64,
                                  ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.c_char_p, ctypes.c_size_t]
    lib.vp_randw_count.argtypes = [ctypes.c_void_p]
    lib.vp_randw_count.restype = ctypes.c_size_t
    lib.vp_randw_name.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.vp_randw_name.restype = ctypes.c_char_p
    lib.vp_randw_shape.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int64)]
    lib.vp_randw_fill.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int,
                                  ctypes.c_void_p]
    lib.vp_randw_fill_host.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    lib.vp_randw_close.argtypes = [ctypes.c_void_p]
    dims = (ctypes.c_int64 * 18)(*cfg.dims(), rule)
    h, err = ctypes.c_void_p(), ctypes.create_string_buffer(256)
    if lib.vp_randw_open(dims, 18, seed, plus, minus, ctypes.byref(h), err, 256):
        raise SystemExit(f"vp_randw_open: {err.value.decode()}")
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream) if DEV == "cuda" else None
    w = {}
    for i in range(lib.vp_randw_count(h)):
        shape = (ctypes.c_int64 * 4)()
        nd = lib.vp_randw_shape(h, i, shape)
        dims = [shape[d] for d in range(nd)]
        name = lib.vp_randw_name(h, i).decode()
        if DEV == "cuda":
            t = torch.empty(dims, dtype=torch.bfloat16, device=DEV)
            rc = lib.vp_randw_fill(h, i, ctypes.c_void_p(t.data_ptr()), 0, stream)
        else:  # bf16 values computed on the host, exact in bf16
            host = np.empty(int(np.prod(dims)), dtype=np.float32)
            rc = lib.vp_randw_fill_host(h, i, host.ctypes.data_as(ctypes.c_void_p))
            t = torch.from_numpy(host).reshape(dims).to(torch.bfloat16)
        if rc:
            raise SystemExit(f"vp_randw_fill {name}: error {rc}")
        w[name] = t
    lib.vp_randw_close(h)
    sync()
    return w


# ----------------------------------------------------------------------------------------
# the model (MODEL.md 4-6); dt = compute dtype, weights cast at use (fp32 oracle upcasts)
# ----------------------------------------------------------------------------------------

class Model:
    def __init__(self, cfg, w, dt):
        self.cfg, self.w, self.dt = cfg, w, dt

    def P(self, name):
        t = self.w[name]
        return t if t.dtype == self.dt else t.to(self.dt)

    def rms(self, x, name):
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.cfg.rms_eps)
        return self.P(name) * y.to(self.dt)

    # ---- vision ----
    def vision(self, tiles):
        c, P = self.cfg, self.P
        t = tiles.shape[0]
        x = tiles.to(torch.bfloat16).to(self.dt)  # the reference casts pixel values to bf16
        pre = "vision_model.embeddings."
        x = F.conv2d(x, P(pre + "patch_embedding.weight"), P(pre + "patch_embedding.bias"), stride=c.patch)
        x = x.flatten(2).transpose(1, 2)
        cls = P(pre + "class_embedding").expand(t, 1, c.v_hidden)
        x = torch.cat([cls, x], 1) + P(pre + "position_embedding")
        n, hd = x.shape[1], c.v_hidden // c.v_heads
        for i in range(c.v_layers):
            p = f"vision_model.encoder.layers.{i}."
            h = F.layer_norm(x, (c.v_hidden,), P(p + "norm1.weight"), P(p + "norm1.bias"), c.v_eps)
            qkv = F.linear(h, P(p + "attn.qkv.weight"), P(p + "attn.qkv.bias") if c.qkv_bias else None)
            q, k, v = qkv.view(t, n, 3, c.v_heads, hd).permute(2, 0, 3, 1, 4)
            a = sdpa(q, k, v).transpose(1, 2).reshape(t, n, c.v_hidden)
            x = x + P(p + "ls1") * F.linear(a, P(p + "attn.proj.weight"), P(p + "attn.proj.bias"))
            h = F.layer_norm(x, (c.v_hidden,), P(p + "norm2.weight"), P(p + "norm2.bias"), c.v_eps)
            h = F.gelu(F.linear(h, P(p + "mlp.fc1.weight"), P(p + "mlp.fc1.bias")))
            x = x + P(p + "ls2") * F.linear(h, P(p + "mlp.fc2.weight"), P(p + "mlp.fc2.bias"))
        g = c.grid
        x = x[:, 1:].reshape(t, g // 2, 2, g // 2, 2, c.v_hidden).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(t, (g // 2) ** 2, 4 * c.v_hidden)  # cells (2i,2j) (2i,2j+1) (2i+1,2j) (2i+1,2j+1)
        x = F.layer_norm(x, (4 * c.v_hidden,), P("mlp1.0.weight"), P("mlp1.0.bias"), 1e-5)
        x = F.gelu(F.linear(x, P("mlp1.1.weight"), P("mlp1.1.bias")))
        x = F.linear(x, P("mlp1.3.weight"), P("mlp1.3.bias"))
        return x.reshape(t * (g // 2) ** 2, c.hidden)

    # ---- language ----
    def rope(self, positions, seq_len, bf16_tables):
        c = self.cfg
        theta = c.theta
        if c.rope_dynamic and seq_len > c.max_pos:
            d = c.head_dim
            theta = theta * (c.rope_factor * seq_len / c.max_pos - (c.rope_factor - 1)) ** (d / (d - 2))
        inv = theta ** (-(2.0 * torch.arange(c.head_dim // 2, dtype=torch.float64, device=DEV)) / c.head_dim)
        ang = positions.to(torch.float64)[:, None] * inv[None]
        ang = torch.cat([ang, ang], -1)
        cos, sin = ang.cos().float(), ang.sin().float()
        if bf16_tables:  # Hugging Face builds the tables in the model dtype
            cos, sin = cos.to(torch.bfloat16), sin.to(torch.bfloat16)
        return cos.to(self.dt), sin.to(self.dt)

    @staticmethod
    def rotate(x, cos, sin):
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin

    def embed(self, ids, features):
        c = self.cfg
        ids_t = torch.as_tensor(ids, device=DEV)
        x = self.w["language_model.model.tok_embeddings.weight"][ids_t].to(self.dt)
        img = (ids_t == self.img_context).nonzero().flatten()
        if len(img):
            x[img] = features[:len(img)].to(self.dt)
        return x

    def layer(self, i, x, cos, sin, prefix_kv=None, mask=None, keep=False):
        """x [B, L, H]; cos/sin [B or 1, L, d]; prefix_kv: (k, v) [1, kv, Lp, d] seen in full."""
        c, P = self.cfg, self.P
        p = f"language_model.model.layers.{i}."
        b, n = x.shape[0], x.shape[1]
        qpk, d = c.heads // c.kv_heads, c.head_dim
        qkv = F.linear(self.rms(x, p + "attention_norm.weight"), P(p + "attention.wqkv.weight"))
        qkv = qkv.view(b, n, c.kv_heads, qpk + 2, d)  # per KV group: qpk queries, key, value
        q = qkv[:, :, :, :qpk].reshape(b, n, c.heads, d).transpose(1, 2)
        k = qkv[:, :, :, qpk].transpose(1, 2)
        v = qkv[:, :, :, qpk + 1].transpose(1, 2)
        q = self.rotate(q, cos[:, None], sin[:, None])
        k = self.rotate(k, cos[:, None], sin[:, None])
        own = (k, v) if keep else None
        if prefix_kv is not None:
            k = torch.cat([prefix_kv[0].expand(b, -1, -1, -1), k], 2)
            v = torch.cat([prefix_kv[1].expand(b, -1, -1, -1), v], 2)
        k, v = k.repeat_interleave(qpk, 1), v.repeat_interleave(qpk, 1)
        if mask is None:
            a = sdpa(q, k, v, is_causal=True)
        else:
            a = sdpa(q, k, v, attn_mask=mask)
        x = x + F.linear(a.transpose(1, 2).reshape(b, n, c.hidden), P(p + "attention.wo.weight"))
        h = self.rms(x, p + "ffn_norm.weight")
        g = F.silu(F.linear(h, P(p + "feed_forward.w1.weight"))) * F.linear(h, P(p + "feed_forward.w3.weight"))
        return x + F.linear(g, P(p + "feed_forward.w2.weight")), own

    def head2(self, h, plus, minus):
        rows = self.w["language_model.output.weight"][[plus, minus]].to(self.dt)
        return F.linear(self.rms(h, "language_model.model.norm.weight"), rows).float()


def reference_way(m, batch, tiles, bf16_tables=True):
    """One full forward per response, vision recomputed, SDPA, the whole LM head."""
    out = []
    for ids, score in batch["responses"]:
        feats = m.vision(tiles)
        x = m.embed(ids, feats)[None]
        cos, sin = m.rope(torch.arange(len(ids), device=DEV), len(ids), bf16_tables)
        for i in range(m.cfg.layers):
            x, _ = m.layer(i, x, cos[None], sin[None])
        h = m.rms(x[0], "language_model.model.norm.weight")
        logits = F.linear(h, m.P("language_model.output.weight"))  # [L, vocab]: what HF computes
        out.append(logits[torch.as_tensor(score, device=DEV)][:, [batch["plus"], batch["minus"]]].float())
    return torch.cat(out)


def careful_way(m, batch, tiles, bf16_tables):
    """Vision once, the shared prefix once (its keys/values kept per layer), the suffixes
    batched (padded, masked), the two head rows at the score positions only."""
    c, pre = m.cfg, batch["prefix_len"]
    feats = m.vision(tiles)
    ids0 = batch["responses"][0][0]
    longest = max(len(ids) for ids, _ in batch["responses"])
    n_img_prefix = int((ids0[:pre] == batch["img_context"]).sum())
    x = m.embed(ids0[:pre], feats)[None]
    cos, sin = m.rope(torch.arange(pre, device=DEV), longest, bf16_tables)
    kv = []
    for i in range(c.layers):
        x, own = m.layer(i, x, cos[None], sin[None], keep=True)
        kv.append(own)
    suffixes = [ids[pre:] for ids, _ in batch["responses"]]
    ls = max(len(s) for s in suffixes)
    b = len(suffixes)
    xs = torch.zeros(b, ls, c.hidden, dtype=m.dt, device=DEV)
    for r, s in enumerate(suffixes):  # suffix image tokens continue the prefix's feature rows
        xs[r, :len(s)] = m.embed(s, feats[n_img_prefix:])
    cs = torch.zeros(b, ls, c.head_dim, dtype=m.dt, device=DEV)
    sn = torch.zeros_like(cs)
    mask = torch.zeros(b, 1, ls, pre + ls, dtype=torch.bool, device=DEV)
    mask[:, :, :, :pre] = True
    causal = torch.ones(ls, ls, dtype=torch.bool, device=DEV).tril()
    for r, (ids, _) in enumerate(batch["responses"]):
        n = len(ids) - pre
        cr, sr = m.rope(torch.arange(pre, len(ids), device=DEV), len(ids), bf16_tables)
        cs[r, :n], sn[r, :n] = cr, sr
        mask[r, 0, :n, pre:pre + n] = causal[:n, :n]
    for i in range(c.layers):
        xs, _ = m.layer(i, xs, cs, sn, prefix_kv=kv[i], mask=mask)
    out = []
    for r, (ids, score) in enumerate(batch["responses"]):
        rows = torch.as_tensor(score - pre, device=DEV)
        out.append(m.head2(xs[r, rows], batch["plus"], batch["minus"]))
    return torch.cat(out)


# ----------------------------------------------------------------------------------------

def margins(logits):
    l = np.asarray(logits, dtype=np.float64).reshape(-1, 2)
    return l[:, 0] - l[:, 1]


def compare(got, ref):
    g, r = margins(got), margins(ref)
    d = np.abs(g - r)
    i = int(d.argmax())
    return {"rel_err": float(np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-30)),
            "worst_abs": float(d[i]), "worst_at": i, "worst_got": float(g[i]), "worst_ref": float(r[i])}


def timed(fn, reps):
    fn()  # warm-up
    sync()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ts)), ts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3, help="timed runs (0: logits only)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--compute", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--rule", choices=["spread", "plain"], default="spread",
                    help="random-weight rule: spread (default) or plain (PERF.md: all 0.02)")
    ap.add_argument("--tol", type=float, default=None,
                    help="exit 1 when a method's margin rel err vs the fp32 reference is above")
    a = ap.parse_args()
    global DEV
    DEV = a.device
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu"
    oom = getattr(torch.cuda, "OutOfMemoryError", RuntimeError)
    cfg = Config(os.path.join(a.dir, "config.json"))
    batch = read_batch(a.batch)
    tiles = torch.from_numpy(np.fromfile(os.path.join(a.dir, "tiles.f32"), dtype=np.float32))
    tiles = tiles.reshape(batch["n_tiles"], cfg.channels, cfg.image, cfg.image).to(DEV)
    t0 = time.perf_counter()
    w = random_weights(a.lib, cfg, a.seed, batch["plus"], batch["minus"], int(a.rule == "plain"))
    gen_s = time.perf_counter() - t0
    n_params = sum(t.numel() for t in w.values())
    print(f"torch_ref: {dev}, torch {torch.__version__}; {n_params / 1e9:.3f} G parameters generated "
          f"in {gen_s:.1f} s", flush=True)
    res = {"device": dev, "torch": torch.__version__, "n_params": n_params, "gen_s": gen_s,
           "rule": a.rule}
    ours_json = os.path.join(a.dir, "ours.json")
    useful = json.load(open(ours_json))["useful_tflop"] if os.path.exists(ours_json) else None

    with torch.no_grad():
        fp32 = Model(cfg, w, torch.float32)
        fp32.img_context = batch["img_context"]
        t = time.perf_counter()
        ref = careful_way(fp32, batch, tiles, bf16_tables=False).cpu().numpy()
        sync()
        res["fp32_ref_s"] = time.perf_counter() - t
        p = 1 / (1 + np.exp(-margins(ref)))
        res["ref_scores"] = {"min": float(p.min()), "max": float(p.max()),
                             "outside_0.3_0.7": float(np.mean((p < 0.3) | (p > 0.7))),
                             "margin_std": float(margins(ref).std()),
                             "margin_mean": float(margins(ref).mean())}
        print(f"fp32 reference: {len(p)} scores, P(+) {p.min():.3f}..{p.max():.3f}, "
              f"{100 * res['ref_scores']['outside_0.3_0.7']:.0f}% outside 0.3..0.7, "
              f"{res['fp32_ref_s']:.1f} s", flush=True)
        np.array(ref, dtype=np.float32).tofile(os.path.join(a.dir, "fp32_ref_logits.f32"))
        del fp32
        if DEV == "cuda":
            torch.cuda.empty_cache()

        low = a.compute == "bf16"
        bf = Model(cfg, w, torch.bfloat16 if low else torch.float32)
        bf.img_context = batch["img_context"]
        methods = {}
        for name, fn, reps in [("careful", lambda: careful_way(bf, batch, tiles, bf16_tables=low), 2 * a.reps + 1),
                               ("refway", lambda: reference_way(bf, batch, tiles, bf16_tables=low), a.reps)]:
            try:
                logits = fn().cpu().numpy()
                methods[name] = compare(logits, ref)
                timing = ""
                if a.reps > 0:
                    med, ts = timed(fn, reps)
                    methods[name].update({"median_ms": med, "all_ms": ts})
                    timing = f"median {med:.1f} ms over {reps} runs; "
                    if useful:
                        methods[name]["mfu"] = useful * 1e12 / (med / 1e3) / (PEAK_TFLOPS * 1e12)
                print(f"{name}: {timing}margin rel err vs fp32 {methods[name]['rel_err']:.2e} "
                      f"(worst |dm| {methods[name]['worst_abs']:.2e} at {methods[name]['worst_at']})",
                      flush=True)
            except oom as e:
                methods[name] = {"error": f"out of memory: {e}"}
                print(f"{name}: out of memory", flush=True)
                if DEV == "cuda":
                    torch.cuda.empty_cache()
        labels = sorted(f[:-len("_logits.f32")] for f in os.listdir(a.dir)
                        if f.startswith("ours") and f.endswith("_logits.f32"))
        for label in labels:  # ours, ours_simple, other attention kernels (run.sh)
            path = os.path.join(a.dir, f"{label}_logits.f32")
            if os.path.exists(path):
                got = np.fromfile(path, dtype=np.float32)
                if got.size != ref.size:
                    methods[label] = {"error": f"{got.size // 2} logits, reference has {ref.size // 2}"}
                else:
                    methods[label] = compare(got, ref)
                m = methods[label]
                print(f"{label}: margin rel err vs fp32 {m.get('rel_err', float('nan')):.2e} (worst |dm| "
                      f"{m.get('worst_abs', float('nan')):.2e} at {m.get('worst_at')}) {m.get('error', '')}",
                      flush=True)
        res["methods"] = methods
    res["compute"] = a.compute
    with open(os.path.join(a.dir, "torch.json"), "w") as f:
        json.dump(res, f, indent=1)
    if a.tol is not None:
        bad = [k for k, v in methods.items() if not v.get("rel_err", float("inf")) <= a.tol]
        if bad:
            print(f"torch_ref: margin error above {a.tol} (or failed) for: {', '.join(bad)}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
