#!/usr/bin/env python3
"""How well-conditioned is a random 8B-shape model? An experiment for choosing the random
weight rule (engine/cuda_plan/rand_rule.c, mkmodel.c), run on the GPU machine:

  init_sweep.py --dir DIR --batch FILE --lib libvprm_randw.so [--seed 1]

DIR holds gpu_w1's config.json and tiles.f32. Besides PyTorch's bf16 (bf16 residual
stream, bf16 RoPE tables), "mixed" mimics the CUDA backend's precision: bf16 matrix
inputs and bf16 q/k/v and MLP hidden values (the LLM's gate and up in fp32, rounded once as their product), fp32 residual stream, fp32 RoPE tables, fp32
outputs of the products that feed the residual. Starts from the current rule's weights and,
per candidate, rescales the query/key rows (LLM and ViT), the residual output products
(LLM wo and w2) and the token embeddings to the candidate's stds; then runs the careful PyTorch forward in fp32
and in bf16 on the same weights and prints the margin relative error (what PERF.md bounds
by 0.02) and the spread of the fp32 margins (std, mean). A chaotic rule makes bf16
rounding alone move the margins by tens of percent, whoever computes them.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref as tr  # noqa: E402


def attention_p(q, k, v, p_dtype, attn_mask=None, is_causal=False):
    """The tensor-core kernels' arithmetic on q, k, v as given: scores and softmax in fp32,
    the unnormalised probabilities rounded to p_dtype (bf16: the mma.sync kernel; fp16: the
    wgmma kernel) for P V, the sum and the division in fp32. One head at a time."""
    out = torch.empty(q.shape[:-1] + (v.shape[-1],), dtype=torch.float32, device=q.device)
    lq, lk = q.shape[-2], k.shape[-2]
    for h in range(q.shape[1]):
        s = torch.matmul(q[:, h].float(), k[:, h].float().transpose(-1, -2)) / q.shape[-1] ** 0.5
        if is_causal:
            s = s.masked_fill(torch.ones(lq, lk, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
        if attn_mask is not None:
            s = s.masked_fill(~attn_mask[:, 0], float("-inf"))
        p = torch.exp(s - s.amax(-1, keepdim=True))
        out[:, h] = torch.matmul(p.to(p_dtype).float(), v[:, h].float()) / p.sum(-1, keepdim=True)
    return out


class Mixed(tr.Model):
    """The CUDA backend's rounding points (engine/cuda/cuda_language.c, cuda_vision.c).
    p_dtype: the attention's P for P V (fp16: the wgmma kernel, Hopper's default; bf16:
    mma.sync). exact: rounding points left out, to see what each costs ("llm." or "vit." +
    in: the products' inputs; qkv: q, k, v (attention in fp32); p: the attention
    probabilities (attention in fp32 on rounded q, k, v); hid: the MLP hidden values (LLM:
    the SiLU-gated product at w2's input; ViT: fc1's output, then GELU's at fc2's input);
    out: the ViT's other bf16 outputs (the projector's hidden values)).
    fp16: rounding points in fp16 instead of bf16 (what fp16 activations, with the bf16
    weights converted to fp16 exactly, would give); FP16_ALL names every point."""

    def __init__(self, cfg, w, exact=(), p_dtype=torch.float16, fp16=()):
        super().__init__(cfg, w, torch.float32)
        self.exact = set(exact)
        self.p_dtype = p_dtype
        self.fp16 = set(fp16)

    def rnd(self, x, *points):
        """x at a rounding point of the backend, unless one is left out; the last point
        named (the most specific: a product's own input point) picks the type."""
        if any(p in self.exact for p in points):
            return x
        return x.to(torch.float16 if points[-1] in self.fp16 else torch.bfloat16).float()

    def attend(self, part, q, k, v, **kw):
        """q, k, v in fp32 after the qkv product; the backend's attention at its precision."""
        if part + ".qkv" in self.exact:
            return tr.sdpa(q, k, v, **kw).float()
        dt = torch.float16 if part + ".qkv" in self.fp16 else torch.bfloat16
        q, k, v = (t.to(dt).float() for t in (q, k, v))
        if part + ".p" in self.exact:
            return tr.sdpa(q, k, v, **kw).float()
        return attention_p(q, k, v, self.p_dtype, **kw)

    def W(self, name):  # bf16 weights, used exactly in fp32 products
        return self.w[name].float()

    def lin(self, x, name, bias=None, out_bf16=True, out_point=None, in_point=None):
        part = "vit" if name.startswith(("vision_model", "mlp1")) else "llm"
        x = self.rnd(x, part + ".in", *((in_point,) if in_point else ()))
        y = F.linear(x, self.W(name), None if bias is None else self.W(bias))
        return self.rnd(y, out_point or part + ".out") if out_bf16 else y

    def vision(self, tiles):
        c = self.cfg
        t = tiles.shape[0]
        x = tiles.to(torch.bfloat16).float()
        pre = "vision_model.embeddings."
        x = F.conv2d(x, self.W(pre + "patch_embedding.weight"), self.W(pre + "patch_embedding.bias"), stride=c.patch)
        x = x.flatten(2).transpose(1, 2)
        cls = self.W(pre + "class_embedding").expand(t, 1, c.v_hidden)
        x = torch.cat([cls, x], 1) + self.W(pre + "position_embedding")
        n, hd = x.shape[1], c.v_hidden // c.v_heads
        for i in range(c.v_layers):
            p = f"vision_model.encoder.layers.{i}."
            h = F.layer_norm(x, (c.v_hidden,), self.W(p + "norm1.weight"), self.W(p + "norm1.bias"), c.v_eps)
            qkv = self.lin(h, p + "attn.qkv.weight", p + "attn.qkv.bias" if c.qkv_bias else None,
                           out_point="vit.qkv")
            q, k, v = qkv.view(t, n, 3, c.v_heads, hd).permute(2, 0, 3, 1, 4)
            a = self.attend("vit", q, k, v).transpose(1, 2).reshape(t, n, c.v_hidden)
            x = x + self.W(p + "ls1") * self.lin(a, p + "attn.proj.weight", p + "attn.proj.bias", False)
            h = F.layer_norm(x, (c.v_hidden,), self.W(p + "norm2.weight"), self.W(p + "norm2.bias"), c.v_eps)
            h = self.rnd(F.gelu(self.lin(h, p + "mlp.fc1.weight", p + "mlp.fc1.bias", out_point="vit.hid")), "vit.hid")
            x = x + self.W(p + "ls2") * self.lin(h, p + "mlp.fc2.weight", p + "mlp.fc2.bias", False,
                                                 in_point="vit.hid")
        g = c.grid
        x = x[:, 1:].reshape(t, g // 2, 2, g // 2, 2, c.v_hidden).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(t, (g // 2) ** 2, 4 * c.v_hidden)
        x = F.layer_norm(x, (4 * c.v_hidden,), self.W("mlp1.0.weight"), self.W("mlp1.0.bias"), 1e-5)
        x = self.rnd(F.gelu(self.lin(x, "mlp1.1.weight", "mlp1.1.bias")), "vit.out")
        x = self.lin(x, "mlp1.3.weight", "mlp1.3.bias", False, in_point="vit.out")
        return x.reshape(t * (g // 2) ** 2, c.hidden)

    def layer(self, i, x, cos, sin, prefix_kv=None, mask=None, keep=False):
        c = self.cfg
        p = f"language_model.model.layers.{i}."
        b, n = x.shape[0], x.shape[1]
        qpk, d = c.heads // c.kv_heads, c.head_dim
        qkv = self.lin(self.rms(x, p + "attention_norm.weight"), p + "attention.wqkv.weight", out_point="llm.qkv")
        qkv = qkv.view(b, n, c.kv_heads, qpk + 2, d)
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
        a = self.attend("llm", q, k, v, is_causal=True) if mask is None else self.attend("llm", q, k, v, attn_mask=mask)
        x = x + self.lin(a.transpose(1, 2).reshape(b, n, c.hidden), p + "attention.wo.weight", out_bf16=False)
        h = self.rms(x, p + "ffn_norm.weight")
        gate = self.lin(h, p + "feed_forward.w1.weight", out_bf16=False)
        up = self.lin(h, p + "feed_forward.w3.weight", out_bf16=False)
        if "llm.gu" in self.fp16:  # fp16 activations: the product's output in fp16
            gate, up = gate.to(torch.float16).float(), up.to(torch.float16).float()
        g = F.silu(gate) * up  # else fp32 gate | up, rounded only as their product
        return x + self.lin(g, p + "feed_forward.w2.weight", out_bf16=False, in_point="llm.hid"), own

    def rms(self, x, name):  # its output is a product's input: rounded there
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.cfg.rms_eps)
        return self.W(name) * y

    def head2(self, h, plus, minus):
        rows = self.w["language_model.output.weight"][[plus, minus]].float()
        x32 = h.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.cfg.rms_eps)
        return F.linear(self.W("language_model.model.norm.weight") * y, rows)


# llm.gu: the gate | up product's output, fp16 with fp16 activations (fp32 with bf16)
FP16_ALL = ("llm.in", "llm.qkv", "llm.gu", "llm.hid", "vit.in", "vit.qkv", "vit.hid", "vit.out")


def ablate_fp16(margins, cfg, w, ref, exact_rows=False):
    """Which rounding points need fp16 to meet PERF.md's bound: all, or a subset."""
    qkv = ("llm.qkv", "vit.qkv")
    rows = [(FP16_ALL, (), "fp16 activations (products' inputs, q/k/v)"),
            (tuple(p for p in FP16_ALL if p not in qkv), (), "fp16 products' inputs, bf16 q/k/v"),
            (("llm.in", "llm.qkv", "llm.gu", "llm.hid"), (), "fp16 in the LLM only, vision bf16"),
            (tuple(p for p in FP16_ALL if p not in ("llm.hid", "vit.hid")), (),
             "fp16 except the MLP hidden values (bf16)"),
            (("llm.in", "llm.qkv", "llm.gu"), (), "fp16 in the LLM except its MLP hidden values")]
    if exact_rows:
        rows += [(FP16_ALL, ("vit.in", "vit.qkv", "vit.hid", "vit.out"), "fp16 activations, exact vision")]
    for fp16, ex, label in rows:
        got = margins(Mixed(cfg, w, ex, torch.float16, fp16))
        dm = got - ref
        print(f"  {label:46s} rel {np.linalg.norm(dm) / np.linalg.norm(ref):.4f}"
              f"{'' if np.isfinite(got).all() else ' (overflow: not finite)'}", flush=True)


def ablate(cfg, w, batch, tiles, fp16_only=False):
    """Margin error of the backend's rounding against fp32 with rounding points left out."""
    def margins(m):
        m.img_context = batch["img_context"]
        return tr.margins(tr.careful_way(m, batch, tiles, bf16_tables=False).cpu().numpy())

    with torch.no_grad():
        ref = margins(tr.Model(cfg, w, torch.float32))
        print(f"ablation: fp32 margins std {ref.std():.3f} mean {ref.mean():.3f}; rel = ||dm|| / ||m||",
              flush=True)
        if fp16_only:
            dm = margins(Mixed(cfg, w)) - ref
            print(f"  {'(the backend as is: bf16, P in fp16)':46s} rel {np.linalg.norm(dm) / np.linalg.norm(ref):.4f}",
                  flush=True)
            ablate_fp16(margins, cfg, w, ref)
            return 0
        sets = [(), ("llm.in",), ("llm.qkv",), ("llm.p",), ("llm.hid",), ("vit.in",), ("vit.qkv",),
                ("vit.p",), ("vit.hid",), ("vit.in", "vit.qkv", "vit.hid", "vit.out")]
        for ex in sets:
            dm = margins(Mixed(cfg, w, ex)) - ref
            label = "exact " + "+".join(ex) if ex else "(the backend as is: wgmma, P in fp16)"
            print(f"  {label:46s} rel {np.linalg.norm(dm) / np.linalg.norm(ref):.4f}", flush=True)
        dm = margins(Mixed(cfg, w, (), torch.bfloat16)) - ref
        print(f"  {'P in bf16 (the mma.sync kernel)':46s} rel {np.linalg.norm(dm) / np.linalg.norm(ref):.4f}",
              flush=True)
        ablate_fp16(margins, cfg, w, ref, exact_rows=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seeds", type=lambda t: [int(x) for x in t.split(",") if x], default=[],
                    help="also the rule's weights of these seeds (comma-separated)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: smoke test")
    ap.add_argument("--ablate-fp16", action="store_true",
                    help="the current rule only: the backend's bf16 rounding against fp16 at all "
                         "or some of its rounding points (a shorter --ablate)")
    ap.add_argument("--ablate", action="store_true",
                    help="the current rule only: the error of the backend's rounding with each "
                         "rounding point left out in turn (Mixed.exact), instead of the sweep")
    a = ap.parse_args()
    tr.DEV = a.device
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = tr.Config(os.path.join(a.dir, "config.json"))
    batch = tr.read_batch(a.batch)
    tiles = torch.from_numpy(np.fromfile(os.path.join(a.dir, "tiles.f32"), dtype=np.float32))
    tiles = tiles.reshape(batch["n_tiles"], cfg.channels, cfg.image, cfg.image).to(tr.DEV)
    w = tr.random_weights(a.lib, cfg, a.seed, batch["plus"], batch["minus"])
    h, hv, hd = cfg.hidden, cfg.v_hidden, cfg.head_dim
    qpk = cfg.heads // cfg.kv_heads
    # the current rule (engine/model/mkmodel_init.c): sharp q/k in shallow towers only
    deep_llm, deep_vit = cfg.layers >= 16, cfg.v_layers >= 16
    cur_llm_qk = 0.025 if deep_llm else (4.0 / h) ** 0.5
    cur_vit_qk = 0.02 if deep_vit else (4.0 / hv) ** 0.5
    cur_resid = 0.005 if deep_llm else 0.02
    # rows of wqkv that are queries or keys: per KV group qpk queries, a key, a value
    grp = torch.arange(cfg.heads * hd + 2 * cfg.kv_heads * hd, device=tr.DEV) // hd % (qpk + 2)
    llm_qk_rows = grp < qpk + 1
    base = {k: t.clone() for k, t in w.items()
            if k.endswith(("attention.wqkv.weight", "attention.wo.weight", "feed_forward.w2.weight",
                           "attn.qkv.weight", "tok_embeddings.weight"))}

    def apply(llm_qk, vit_qk, resid, emb):
        for k, t in base.items():
            x = t.float()
            if k.endswith("attention.wqkv.weight"):
                if isinstance(llm_qk, tuple):  # (std, sharp std, last k layers sharp)
                    layer = int(k.split(".")[3])
                    std = llm_qk[1] if layer >= cfg.layers - llm_qk[2] else llm_qk[0]
                else:
                    std = llm_qk
                x[llm_qk_rows] *= std / cur_llm_qk
            elif k.endswith("attn.qkv.weight"):
                x[:2 * hv] *= vit_qk / cur_vit_qk
            elif k.endswith(("attention.wo.weight", "feed_forward.w2.weight")):
                x *= resid / cur_resid
            elif k.endswith("tok_embeddings.weight"):
                x *= emb
            w[k] = x.to(torch.bfloat16)

    cands = [  # name, llm q/k std (or (std, sharp std, last k layers)), vit q/k std, wo/w2 std, emb
        ("rule", cur_llm_qk, cur_vit_qk, cur_resid, 1.0),
        ("llmqk.02 last1 .04", (0.02, 0.04, 1), 0.02, 0.005, 1.0),
        ("llmqk.02 last1 .05", (0.02, 0.05, 1), 0.02, 0.005, 1.0),
        ("llmqk.02 last2 .035", (0.02, 0.035, 2), 0.02, 0.005, 1.0),
        ("llmqk.02 last2 .04", (0.02, 0.04, 2), 0.02, 0.005, 1.0),
        ("llmqk.02 last4 .03", (0.02, 0.03, 4), 0.02, 0.005, 1.0),
        ("llmqk.02 last4 .035", (0.02, 0.035, 4), 0.02, 0.005, 1.0),
        ("llmqk.02 last2 .04 res.02", (0.02, 0.04, 2), 0.02, 0.02, 1.0),
        ("llmqk.02 last8 .03", (0.02, 0.03, 8), 0.02, 0.005, 1.0),
    ]
    if a.ablate or a.ablate_fp16:
        return ablate(cfg, w, batch, tiles, fp16_only=a.ablate_fp16 and not a.ablate)
    print("rel: ||dm|| / ||m|| (PERF.md's measure); cen: rms(dm) / std(m), the error against the "
          "spread; m: fp32 margins", flush=True)
    print(f"{'candidate':26s} {'bf16 rel':>8s} {'cen':>6s} {'mixed rel':>9s} {'cen':>6s} {'m32v rel':>9s} {'feat rel':>8s} "
          f"{'m std':>6s} {'m mean':>7s} {'P(+) range':>12s}", flush=True)

    def run(label):
        res, feats = [], []
        for kind in ("fp32", "bf16", "mixed", "mixed32v"):
            if kind.startswith("mixed"):
                m = Mixed(cfg, w)
                if kind == "mixed32v":  # fp32 vision: how much of the error the features bring
                    m.vision = tr.Model(cfg, w, torch.float32).vision
            else:
                m = tr.Model(cfg, w, torch.float32 if kind == "fp32" else torch.bfloat16)
            m.img_context = batch["img_context"]
            feats.append(m.vision(tiles[:1]).float())
            res.append(tr.careful_way(m, batch, tiles, bf16_tables=kind == "bf16").cpu().numpy())
            del m
            if tr.DEV == "cuda":
                torch.cuda.empty_cache()
        mr = tr.margins(res[0])
        p = 1 / (1 + np.exp(-mr))
        out = []
        for r in res[1:]:
            dm = tr.margins(r) - mr
            out += [np.linalg.norm(dm) / np.linalg.norm(mr), np.sqrt(np.mean(dm ** 2)) / mr.std()]
        fe = float((feats[2] - feats[0]).norm() / feats[0].norm())
        print(f"{label:26s} {out[0]:8.4f} {out[1]:6.3f} {out[2]:9.4f} {out[3]:6.3f} {out[4]:9.4f} {fe:8.2e} {mr.std():6.3f} "
              f"{mr.mean():7.3f} {p.min():5.3f}..{p.max():5.3f}", flush=True)

    with torch.no_grad():
        for name, lq, vq, br, em in cands:
            apply(lq, vq, br, em)
            run(name)
        for seed in a.seeds:  # the margins' common offset is a property of the draw
            w = tr.random_weights(a.lib, cfg, seed, batch["plus"], batch["minus"])
            run(f"rule, seed {seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
