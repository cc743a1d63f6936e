#!/usr/bin/env python3
"""How well-conditioned is a random 8B-shape model? An experiment for choosing the random
weight rule (engine/cuda_plan/rand_rule.c, mkmodel.c), run on the GPU machine:

  init_sweep.py --dir DIR --batch FILE --lib libvprm_randw.so [--seed 1]

DIR holds gpu_w1's config.json and tiles.f32. Starts from the current rule's weights and,
per candidate, rescales the query/key rows (LLM and ViT), the residual output products
(LLM wo and w2) and the token embeddings; then runs the careful PyTorch forward in fp32
and in bf16 on the same weights and prints the margin relative error (what PERF.md bounds
by 0.02) and the spread of the fp32 margins (std, mean). A chaotic rule makes bf16
rounding alone move the margins by tens of percent, whoever computes them.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref as tr  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: smoke test")
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
    cur_llm_qk, cur_vit_qk = (4.0 / h) ** 0.5, (4.0 / hv) ** 0.5
    # rows of wqkv that are queries or keys: per KV group qpk queries, a key, a value
    grp = torch.arange(cfg.heads * hd + 2 * cfg.kv_heads * hd, device=tr.DEV) // hd % (qpk + 2)
    llm_qk_rows = grp < qpk + 1
    base = {k: t.clone() for k, t in w.items()
            if k.endswith(("attention.wqkv.weight", "attention.wo.weight", "feed_forward.w2.weight",
                           "attn.qkv.weight", "tok_embeddings.weight"))}

    def apply(llm_qk, vit_qk, branch, emb):
        for k, t in base.items():
            x = t.float()
            if k.endswith("attention.wqkv.weight"):
                x[llm_qk_rows] *= llm_qk / cur_llm_qk
            elif k.endswith("attn.qkv.weight"):
                x[:2 * hv] *= vit_qk / cur_vit_qk
            elif k.endswith(("attention.wo.weight", "feed_forward.w2.weight")):
                x *= branch
            elif k.endswith("tok_embeddings.weight"):
                x *= emb
            w[k] = x.to(torch.bfloat16)

    c_l, c_v = cur_llm_qk, cur_vit_qk
    cands = [  # name, llm q/k std, vit q/k std, wo/w2 scale, embedding scale
        ("current", c_l, c_v, 1.0, 1.0),
        ("vitqk.02", c_l, 0.02, 1.0, 1.0),
        ("llmqk.02", 0.02, c_v, 1.0, 1.0),
        ("qk.02", 0.02, 0.02, 1.0, 1.0),
        ("llmqk.015 vit.02", 0.015, 0.02, 1.0, 1.0),
        ("cur br.5", c_l, c_v, 0.5, 1.0),
        ("cur br.25", c_l, c_v, 0.25, 1.0),
        ("llmcur vit.02 br.5", c_l, 0.02, 0.5, 1.0),
        ("llmqk.025 vit.02 br.5", 0.025, 0.02, 0.5, 1.0),
        ("qk.02 br.5", 0.02, 0.02, 0.5, 1.0),
        ("qk.02 br.25", 0.02, 0.02, 0.25, 1.0),
        ("llmqk.015 vit.02 br.5", 0.015, 0.02, 0.5, 1.0),
        ("cur emb10", c_l, c_v, 1.0, 10.0),
        ("qk.02 emb10", 0.02, 0.02, 1.0, 10.0),
        ("qk.02 br.25 emb10", 0.02, 0.02, 0.25, 10.0),
    ]
    print(f"{'candidate':24s} {'rel err':>8s} {'worst':>7s} {'m std':>7s} {'m mean':>7s} "
          f"{'P(+) range':>13s}", flush=True)
    with torch.no_grad():
        for name, lq, vq, br, em in cands:
            apply(lq, vq, br, em)
            res = []
            for dt in (torch.float32, torch.bfloat16):
                m = tr.Model(cfg, w, dt)
                m.img_context = batch["img_context"]
                res.append(tr.careful_way(m, batch, tiles, bf16_tables=dt == torch.bfloat16).cpu().numpy())
                del m
                if tr.DEV == "cuda":
                    torch.cuda.empty_cache()
            c = tr.compare(res[1], res[0])
            mr = tr.margins(res[0])
            p = 1 / (1 + np.exp(-mr))
            print(f"{name:24s} {c['rel_err']:8.4f} {c['worst_abs']:7.3f} {mr.std():7.3f} "
                  f"{mr.mean():7.3f} {p.min():6.3f}..{p.max():5.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
