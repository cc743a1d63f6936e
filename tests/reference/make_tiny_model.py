#!/usr/bin/python3
"""Write a small random VisualPRM model folder with the real checkpoint's layout:
config.json (InternVLChatConfig), model.safetensors (or shards + index), and a copy
of a tokenizer folder (tokenizer.model, tokenizer_config.json, added_tokens.json).

Tensor names and shapes are the Hugging Face ones; only the sizes are small. The
tile size (448), patch (14) and so the 256 tokens per tile are the real ones, so the
prompts have the real length. Weights are scaled so activations stay O(1) and the
"+"/"-" logits differ by O(1): a test on such a model can tell wrong from right.

  make_tiny_model.py --out DIR [--tokenizer DIR] [--seed N] [--dtype BF16|F16|F32] [--shards N] ...
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np

from safetensors_io import write_safetensors


def vocab_size(tokenizer_dir):
    """SentencePiece pieces + added tokens: one past the largest token id."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(tokenizer_dir, "tokenizer.model"))
    with open(os.path.join(tokenizer_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        added = [int(k) for k in json.load(f).get("added_tokens_decoder", {})]
    return max([sp.get_piece_size() - 1] + added) + 1


def make_config(a, vocab):
    return {
        "architectures": ["InternVLChatModel"],
        "model_type": "internvl_chat",
        "template": "internvl2_5",
        "downsample_ratio": 0.5,
        "ps_version": "v2",
        "select_layer": -1,
        "force_image_size": 448,
        "min_dynamic_patch": 1,
        "max_dynamic_patch": a.max_dynamic_patch,
        "use_thumbnail": True,
        "dynamic_image_size": True,
        "torch_dtype": "bfloat16",
        **({"system_message": a.system_message} if a.system_message is not None else {}),
        "vision_config": {
            "architectures": ["InternVisionModel"],
            "model_type": "intern_vit_6b",
            "hidden_size": a.vision_hidden,
            "num_hidden_layers": a.vision_layers,
            "num_attention_heads": a.vision_heads,
            "intermediate_size": a.vision_mlp,
            "patch_size": 14,
            "image_size": 448,
            "num_channels": 3,
            "norm_type": a.norm_type,
            "layer_norm_eps": 1e-6,
            "qkv_bias": True,
            "qk_normalization": a.qk_norm,
            "hidden_act": "gelu",
            "drop_path_rate": 0.0,
            "use_flash_attn": False,
        },
        "llm_config": {
            "architectures": ["InternLM2ForCausalLM"],
            "model_type": "internlm2",
            "hidden_size": a.llm_hidden,
            "num_hidden_layers": a.llm_layers,
            "num_attention_heads": a.heads,
            "num_key_value_heads": a.kv_heads,
            "intermediate_size": a.llm_mlp,
            "vocab_size": vocab,
            "rms_norm_eps": 1e-5,
            "rope_theta": a.rope_theta,
            "rope_scaling": {"type": "dynamic", "factor": 2.0},
            "max_position_embeddings": a.max_pos,
            "bias": False,
            "tie_word_embeddings": False,
            "hidden_act": "silu",
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 2,
            "torch_dtype": "bfloat16",
        },
    }


def make_weights(a, vocab, rng):
    def linear(out_dim, in_dim):
        return rng.standard_normal((out_dim, in_dim)) / np.sqrt(in_dim)

    def norm_weight(n):
        return 1.0 + 0.1 * rng.standard_normal(n)

    def small(*shape):
        return 0.1 * rng.standard_normal(shape)

    t = {}
    hv, iv, grid = a.vision_hidden, a.vision_mlp, 448 // 14
    t["vision_model.embeddings.class_embedding"] = rng.standard_normal((1, 1, hv))
    t["vision_model.embeddings.patch_embedding.weight"] = \
        rng.standard_normal((hv, 3, 14, 14)) / np.sqrt(3 * 14 * 14)
    t["vision_model.embeddings.patch_embedding.bias"] = small(hv)
    t["vision_model.embeddings.position_embedding"] = 0.5 * rng.standard_normal((1, 1 + grid * grid, hv))
    for i in range(a.vision_layers):
        p = f"vision_model.encoder.layers.{i}."
        for n in ("norm1", "norm2"):
            t[p + n + ".weight"] = norm_weight(hv)
            if a.norm_type == "layer_norm":
                t[p + n + ".bias"] = small(hv)
        t[p + "attn.qkv.weight"] = linear(3 * hv, hv)
        t[p + "attn.qkv.bias"] = small(3 * hv)
        if a.qk_norm:
            t[p + "attn.q_norm.weight"] = norm_weight(hv)
            t[p + "attn.k_norm.weight"] = norm_weight(hv)
        t[p + "attn.proj.weight"] = linear(hv, hv)
        t[p + "attn.proj.bias"] = small(hv)
        t[p + "mlp.fc1.weight"] = linear(iv, hv)
        t[p + "mlp.fc1.bias"] = small(iv)
        t[p + "mlp.fc2.weight"] = linear(hv, iv)
        t[p + "mlp.fc2.bias"] = small(hv)
        t[p + "ls1"] = rng.uniform(0.2, 1.0, hv)
        t[p + "ls2"] = rng.uniform(0.2, 1.0, hv)
    cp, h = 4 * hv, a.llm_hidden
    t["mlp1.0.weight"] = norm_weight(cp)
    t["mlp1.0.bias"] = small(cp)
    t["mlp1.1.weight"] = linear(h, cp)
    t["mlp1.1.bias"] = small(h)
    t["mlp1.3.weight"] = linear(h, h)
    t["mlp1.3.bias"] = small(h)
    d = h // a.heads
    t["language_model.model.tok_embeddings.weight"] = rng.standard_normal((vocab, h))
    for i in range(a.llm_layers):
        p = f"language_model.model.layers.{i}."
        t[p + "attention_norm.weight"] = norm_weight(h)
        # q and k rows x3 (packed [kv_heads][G + 2][d] rows, value slot last): sharper
        # attention, so a score position depends on its context, not only on its "\n"
        wqkv = linear((a.heads + 2 * a.kv_heads) * d, h).reshape(a.kv_heads, a.heads // a.kv_heads + 2, d, h)
        wqkv[:, :-1] *= 3.0
        t[p + "attention.wqkv.weight"] = wqkv.reshape(-1, h)
        t[p + "attention.wo.weight"] = linear(h, a.heads * d)
        t[p + "ffn_norm.weight"] = norm_weight(h)
        t[p + "feed_forward.w1.weight"] = linear(a.llm_mlp, h)
        t[p + "feed_forward.w3.weight"] = linear(a.llm_mlp, h)
        t[p + "feed_forward.w2.weight"] = linear(h, a.llm_mlp)
    t["language_model.model.norm.weight"] = norm_weight(h)
    t["language_model.output.weight"] = linear(vocab, h)
    return {k: np.asarray(v, dtype=np.float32) for k, v in sorted(t.items())}


def write_checkpoint(out, tensors, dtype, shards):
    if shards <= 1:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors, dtype)
        return
    names = list(tensors)
    weight_map = {}
    total = 0
    for s in range(shards):
        part = names[s::shards]  # interleaved, so every shard holds vision and LLM tensors
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(out, fname), {n: tensors[n] for n in part}, dtype)
        for n in part:
            weight_map[n] = fname
            total += tensors[n].size * {"BF16": 2, "F16": 2, "F32": 4}[dtype]
    with open(os.path.join(out, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)


def main(argv=None):
    default_tok = os.path.join(os.environ.get("SHARED", "/work/shared"), "tokenizer", "internlm2")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", default=default_tok, help="folder with tokenizer.model + tokenizer_config.json")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--dtype", default="BF16", choices=["BF16", "F16", "F32"])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--vision-hidden", type=int, default=64)
    ap.add_argument("--vision-layers", type=int, default=2)
    ap.add_argument("--vision-heads", type=int, default=4)
    ap.add_argument("--vision-mlp", type=int, default=128)
    ap.add_argument("--norm-type", default="layer_norm", choices=["layer_norm", "rms_norm"])
    ap.add_argument("--qk-norm", action="store_true")
    ap.add_argument("--llm-hidden", type=int, default=64)
    ap.add_argument("--llm-layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--llm-mlp", type=int, default=128)
    ap.add_argument("--rope-theta", type=float, default=1e6)
    ap.add_argument("--max-pos", type=int, default=32768)
    ap.add_argument("--max-dynamic-patch", type=int, default=12)
    ap.add_argument("--system-message", default=None)
    a = ap.parse_args(argv)
    for name in ("tokenizer.model", "tokenizer_config.json"):
        if not os.path.exists(os.path.join(a.tokenizer, name)):
            print(f"make_tiny_model: {a.tokenizer} has no {name}", file=sys.stderr)
            return 1
    os.makedirs(a.out, exist_ok=True)
    vocab = vocab_size(a.tokenizer)
    with open(os.path.join(a.out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(make_config(a, vocab), f, indent=2)
    tensors = make_weights(a, vocab, np.random.default_rng(a.seed))
    write_checkpoint(a.out, tensors, a.dtype, a.shards)
    for name in ("tokenizer.model", "tokenizer_config.json", "added_tokens.json"):
        if os.path.exists(os.path.join(a.tokenizer, name)):
            shutil.copyfile(os.path.join(a.tokenizer, name), os.path.join(a.out, name))
    print(json.dumps({"out": a.out, "tensors": len(tensors), "vocab": vocab, "dtype": a.dtype,
                      "params": int(sum(v.size for v in tensors.values()))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
