#!/usr/bin/python3
"""Independent checks of generated model folders (tests/model/suite_safetensors.sh).

Reads safetensors with its own numpy reader (bf16 as uint16 << 16), derives the expected
tensor names and shapes from config.json and MODEL.md (not from the C layout code),
compares values with what the engine reads (tests/tools/model_tensor_values), and
compares the engine's float32 -> bf16 / f16 rounding with torch's.

  st_check.py --tools DIR --work DIR
"""

import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np
import sentencepiece as spm
import torch

PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL:", what)


# ------------------------------------------------------------------ safetensors reading

DTYPES = {"BF16": (2, None), "F16": (2, np.float16), "F32": (4, np.float32)}


def read_safetensors(path):
    """name -> (dtype, shape, float32 array, absolute byte offset); checks the layout."""
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    check(8 + hlen <= len(raw), f"{path}: header inside the file")
    check((8 + hlen) % 8 == 0, f"{path}: data starts at a multiple of 8 (header {hlen})")
    text = raw[8:8 + hlen].decode("utf-8")
    header = json.loads(text)
    keys = list(json.loads(text, object_pairs_hook=lambda kv: [k for k, _ in kv]))
    check(keys == sorted(keys), f"{path}: header keys sorted")
    check(header.get("__metadata__") == {"format": "pt"}, f"{path}: __metadata__ format pt")
    data = raw[8 + hlen:]
    out = {}
    spans = []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        size, npt = DTYPES[e["dtype"]]
        begin, end = e["data_offsets"]
        n = int(np.prod(e["shape"], dtype=np.int64))
        check(end - begin == n * size, f"{path}: {name} byte range matches its shape")
        check((8 + hlen + begin) % size == 0, f"{path}: {name} aligned to its element size")
        buf = data[begin:end]
        if e["dtype"] == "BF16":
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(buf, dtype=np.dtype(npt).newbyteorder("<")).astype(np.float32)
        out[name] = (e["dtype"], tuple(e["shape"]), arr.reshape(e["shape"]), begin, buf)
        spans.append((begin, end))
    spans.sort()
    at = 0
    for b, e in spans:
        check(b == at, f"{path}: tensors back to back (gap or overlap at {b})")
        at = e
    check(at == len(data), f"{path}: tensors cover the data exactly")
    return out


def read_checkpoint(folder):
    single = os.path.join(folder, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single), {}
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        index = json.load(f)
    wmap = index["weight_map"]
    tensors = {}
    for shard in sorted(set(wmap.values())):
        part = read_safetensors(os.path.join(folder, shard))
        for name in part:
            check(wmap.get(name) == shard, f"{folder}: {name} is in {shard} as the index says")
        tensors.update(part)
    check(set(tensors) == set(wmap), f"{folder}: index lists exactly the tensors of the shards")
    total = sum(len(t[4]) for t in tensors.values())
    check(index["metadata"]["total_size"] == total, f"{folder}: index total_size")
    return tensors, wmap


# ------------------------------------------------------------------ expected layout

def expected_layout(cfg):
    """Names and shapes from MODEL.md sections 4-6, written here independently."""
    v, l = cfg["vision_config"], cfg["llm_config"]
    Hv, Iv, P = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    grid = v["image_size"] // P
    H, I, V = l["hidden_size"], l["intermediate_size"], l["vocab_size"]
    heads, kv = l["num_attention_heads"], l["num_key_value_heads"]
    hd = H // heads
    e = {
        "vision_model.embeddings.class_embedding": (1, 1, Hv),
        "vision_model.embeddings.patch_embedding.weight": (Hv, 3, P, P),
        "vision_model.embeddings.patch_embedding.bias": (Hv,),
        "vision_model.embeddings.position_embedding": (1, grid * grid + 1, Hv),
        "mlp1.0.weight": (4 * Hv,), "mlp1.0.bias": (4 * Hv,),
        "mlp1.1.weight": (H, 4 * Hv), "mlp1.1.bias": (H,),
        "mlp1.3.weight": (H, H), "mlp1.3.bias": (H,),
        "language_model.model.tok_embeddings.weight": (V, H),
        "language_model.model.norm.weight": (H,),
        "language_model.output.weight": (V, H),
    }
    for i in range(v["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        e.update({p + "norm1.weight": (Hv,), p + "norm2.weight": (Hv,),
                  p + "attn.qkv.weight": (3 * Hv, Hv), p + "attn.proj.weight": (Hv, Hv),
                  p + "attn.proj.bias": (Hv,), p + "ls1": (Hv,), p + "ls2": (Hv,),
                  p + "mlp.fc1.weight": (Iv, Hv), p + "mlp.fc1.bias": (Iv,),
                  p + "mlp.fc2.weight": (Hv, Iv), p + "mlp.fc2.bias": (Hv,)})
        if v["norm_type"] == "layer_norm":
            e.update({p + "norm1.bias": (Hv,), p + "norm2.bias": (Hv,)})
        if v["qkv_bias"]:
            e[p + "attn.qkv.bias"] = (3 * Hv,)
        if v["qk_normalization"]:
            e.update({p + "attn.q_norm.weight": (Hv,), p + "attn.k_norm.weight": (Hv,)})
    for i in range(l["num_hidden_layers"]):
        p = f"language_model.model.layers.{i}."
        e.update({p + "attention_norm.weight": (H,), p + "ffn_norm.weight": (H,),
                  p + "attention.wqkv.weight": ((heads + 2 * kv) * hd, H),
                  p + "attention.wo.weight": (H, heads * hd),
                  p + "feed_forward.w1.weight": (I, H), p + "feed_forward.w3.weight": (I, H),
                  p + "feed_forward.w2.weight": (H, I)})
    return e


# keys the published InternVL2.5-8B config.json has and the engine reads
TOP_KEYS = {"architectures": list, "downsample_ratio": float, "dynamic_image_size": bool,
            "force_image_size": int, "llm_config": dict, "max_dynamic_patch": int,
            "min_dynamic_patch": int, "model_type": str, "ps_version": str, "select_layer": int,
            "template": str, "torch_dtype": str, "use_backbone_lora": int, "use_llm_lora": int,
            "use_thumbnail": bool, "vision_config": dict}
LLM_KEYS = {"architectures": list, "bias": bool, "hidden_act": str, "hidden_size": int,
            "intermediate_size": int, "max_position_embeddings": int, "model_type": str,
            "num_attention_heads": int, "num_hidden_layers": int, "num_key_value_heads": int,
            "rms_norm_eps": float, "rope_scaling": dict, "rope_theta": int,
            "tie_word_embeddings": bool, "torch_dtype": str, "vocab_size": int}
VISION_KEYS = {"architectures": list, "hidden_act": str, "hidden_size": int, "image_size": int,
               "intermediate_size": int, "layer_norm_eps": float, "model_type": str,
               "norm_type": str, "num_attention_heads": int, "num_channels": int,
               "num_hidden_layers": int, "patch_size": int, "qk_normalization": bool,
               "qkv_bias": bool, "torch_dtype": str}


def check_config(folder, cfg):
    for keys, obj, where in ((TOP_KEYS, cfg, ""), (LLM_KEYS, cfg["llm_config"], "llm_config."),
                             (VISION_KEYS, cfg["vision_config"], "vision_config.")):
        for k, t in keys.items():
            check(k in obj and type(obj[k]) is t,
                  f"{folder}: config {where}{k} present as {t.__name__} (got {obj.get(k)!r})")
    check(cfg["architectures"] == ["InternVLChatModel"], f"{folder}: architectures")
    check(cfg["llm_config"]["architectures"] == ["InternLM2ForCausalLM"], f"{folder}: llm arch")
    check(cfg["vision_config"]["architectures"] == ["InternVisionModel"], f"{folder}: vit arch")
    check(cfg["template"] == "internvl2_5" and cfg["ps_version"] == "v2", f"{folder}: template")
    check(cfg["llm_config"]["rope_scaling"] == {"factor": 2.0, "type": "dynamic"},
          f"{folder}: rope_scaling")


# ------------------------------------------------------------------ checks

def tool_values(tools, folder, name, indices):
    out = subprocess.run([os.path.join(tools, "model_tensor_values"), folder, name] +
                         [str(i) for i in indices], capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip()
    lines = out.stdout.strip().split("\n")
    head = lines[0].split()
    vals = {int(a): np.float32(float(b)) for a, b in (ln.split() for ln in lines[1:])}
    return (head[0], tuple(int(x) for x in head[2:]), vals), None


def check_folder(tools, folder, tok_ids, rng):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    check_config(folder, cfg)
    tensors, _ = read_checkpoint(folder)
    want = expected_layout(cfg)
    check(set(tensors) == set(want),
          f"{folder}: tensor names (missing {sorted(set(want) - set(tensors))[:3]}, "
          f"extra {sorted(set(tensors) - set(want))[:3]})")
    for name, shape in want.items():
        if name in tensors:
            check(tensors[name][1] == shape, f"{folder}: {name} shape {tensors[name][1]} != {shape}")
    check(cfg["llm_config"]["vocab_size"] == tok_ids, f"{folder}: vocab_size is the tokenizer's ids")
    # the engine reads the same values as this reader, on a sample of every tensor
    for name, (dt, shape, arr, _, _) in sorted(tensors.items()):
        flat = arr.reshape(-1)
        idx = sorted(set([0, flat.size - 1] + list(rng.integers(0, flat.size, 6))))
        got, err = tool_values(tools, folder, name, idx)
        if got is None:
            check(False, f"{folder}: model_tensor_values {name}: {err}")
            continue
        check(got[0] == dt and got[1] == shape, f"{folder}: {name} dtype/shape as the engine reads")
        check(all(got[2][i] == flat[i] for i in idx), f"{folder}: {name} values as the engine reads")
        check(np.all(np.isfinite(flat)) and np.any(flat != 0), f"{folder}: {name} finite, not all zero")
    return cfg, tensors


def check_dtypes(t_f32, t_bf16, t_f16):
    """One seed, three dtypes: bf16 / f16 files hold torch's rounding of the f32 values."""
    for name, (_, _, f32, _, _) in t_f32.items():
        want_bf = torch.from_numpy(f32.copy()).to(torch.bfloat16).view(torch.int16).numpy()
        got_bf = np.frombuffer(t_bf16[name][4], dtype="<i2").reshape(want_bf.shape)
        check(np.array_equal(want_bf, got_bf), f"bf16 file: {name} is torch's bf16 of the f32 file")
        want_h = torch.from_numpy(f32.copy()).half().view(torch.int16).numpy()
        got_h = np.frombuffer(t_f16[name][4], dtype="<i2").reshape(want_h.shape)
        check(np.array_equal(want_h, got_h), f"f16 file: {name} is torch's f16 of the f32 file")


def check_round_tool(tools, work):
    """The engine's f32 -> bf16 / f16 on random values and edge cases, against torch."""
    rng = np.random.default_rng(12345)
    with np.errstate(over="ignore"):  # the largest scale overflows to inf on purpose
        parts = [rng.standard_normal(20000).astype(np.float32) * np.float32(s)
                 for s in (1e-40, 1e-6, 0.02, 1, 3e4, 1e38)]
    bits = rng.integers(0, 2**32, 50000, dtype=np.uint64).astype(np.uint32)
    parts.append(bits.view(np.float32))                       # any bit pattern
    ties = (rng.integers(0, 2**16, 5000, dtype=np.uint64).astype(np.uint32) << 16) | 0x8000
    parts.append(ties.view(np.float32))                       # exact bf16 ties
    h_ties = (rng.integers(0x3000, 0x4f00, 5000, dtype=np.uint64).astype(np.uint32) << 13) | 0x1000
    parts.append(h_ties.view(np.float32))                     # exact f16 ties
    edges = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3.4028235e38, -3.4028235e38, 1e-45,
                      65504, 65519.99, 65520, 65536, 5.96e-8, 2.98e-8, 6.1e-5, 1.0039062,
                      1.0, -1.0], dtype=np.float32)
    parts.append(edges)
    x = np.concatenate(parts).astype(np.float32)
    src = os.path.join(work, "round_in.f32")
    x.astype("<f4").tofile(src)
    for kind, conv in (("bf16", lambda t: t.to(torch.bfloat16)), ("f16", lambda t: t.half())):
        with open(src, "rb") as f:
            out = subprocess.run([os.path.join(tools, "model_round"), kind], stdin=f,
                                 capture_output=True)
        check(out.returncode == 0, f"model_round {kind} ran")
        got = np.frombuffer(out.stdout, dtype="<u2")
        check(got.size == x.size, f"model_round {kind}: one output per input")
        if got.size != x.size:
            continue
        want = conv(torch.from_numpy(x.copy())).view(torch.int16).numpy().view(np.uint16)
        nan = np.isnan(x)
        same = got[~nan] == want[~nan]
        check(bool(np.all(same)), f"{kind}: engine rounding equals torch on {x.size - nan.sum()} "
              f"values ({np.count_nonzero(~same)} differ, e.g. "
              f"{[hex(v) for v in x[~nan][~same][:3].view(np.uint32)]})")
        if kind == "bf16":
            back = (got.astype(np.uint32) << 16).view(np.float32)
        else:
            back = got.view(np.float16).astype(np.float32)
        check(bool(np.all(np.isnan(back[nan]))), f"{kind}: NaN stays NaN ({nan.sum()} values)")


def check_head_rows(folder, tensors, cfg):
    """"+" and "-" ids from sentencepiece itself; their LM-head rows are the scaled ones."""
    sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
    plus, minus = sp.piece_to_id("+"), sp.piece_to_id("-")
    check(sp.id_to_piece(plus) == "+" and sp.id_to_piece(minus) == "-", "tokenizer has + and -")
    out = tensors["language_model.output.weight"][2]
    H = cfg["llm_config"]["hidden_size"]
    big = 2 / np.sqrt(2 * H)
    sp_std, sm_std = out[plus].std(), out[minus].std()
    rest = np.delete(out, [plus, minus], axis=0)
    check(abs(sp_std - big) < 0.2 * big and abs(sm_std - big) < 0.2 * big,
          f"+/- head rows std {sp_std:.4f} {sm_std:.4f}, want {big:.4f}")
    check(abs(rest.std() - 0.02) < 0.002, f"other head rows std {rest.std():.4f}, want 0.02")
    # margin statistics over random unit-RMS hidden states: std ~2, as designed
    h = np.random.default_rng(7).standard_normal((4000, H)).astype(np.float32)
    margin = h @ (out[plus] - out[minus])
    check(1.4 < margin.std() < 2.8, f"margin std over unit-RMS states {margin.std():.2f} (~2)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    rng = np.random.default_rng(3)
    w = a.work
    sp = spm.SentencePieceProcessor(model_file=os.path.join(w, "bf16", "tokenizer.model"))
    with open(os.path.join(w, "bf16", "tokenizer_config.json")) as f:
        added = [int(k) for k in json.load(f).get("added_tokens_decoder", {})]
    tok_ids = max([sp.get_piece_size() - 1] + added) + 1

    cfg, t_bf16 = check_folder(a.tools, os.path.join(w, "bf16"), tok_ids, rng)
    _, t_f32 = check_folder(a.tools, os.path.join(w, "f32"), tok_ids, rng)
    _, t_f16 = check_folder(a.tools, os.path.join(w, "f16"), tok_ids, rng)
    _, t_sh = check_folder(a.tools, os.path.join(w, "sharded"), tok_ids, rng)
    vcfg, t_var = check_folder(a.tools, os.path.join(w, "variant"), tok_ids, rng)
    check(all(t_f32[n][0] == "F32" for n in t_f32) and all(t_f16[n][0] == "F16" for n in t_f16),
          "--dtype sets every tensor's dtype")
    check(set(t_sh) == set(t_bf16) and all(t_sh[n][4] == t_bf16[n][4] for n in t_bf16),
          "sharded checkpoint holds the same bytes as the single file of the same seed")
    check_dtypes(t_f32, t_bf16, t_f16)
    check_round_tool(a.tools, w)
    check_head_rows(os.path.join(w, "bf16"), t_f32, cfg)
    v, l = vcfg["vision_config"], vcfg["llm_config"]
    check(v["norm_type"] == "rms_norm" and v["qk_normalization"] and not v["qkv_bias"],
          "variant: vision overrides written")
    check(l["num_hidden_layers"] == 3 and l["num_key_value_heads"] == 1 and
          vcfg.get("system_message") == "Judge strictly.", "variant: llm overrides written")
    check(l["num_attention_heads"] == 2, "variant: heads written")
    check(t_var["language_model.model.layers.2.attention.wqkv.weight"][1] == (256, 128),
          "variant: wqkv rows (2 + 2 * 1) * 64")
    print(f"st_check: {PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
