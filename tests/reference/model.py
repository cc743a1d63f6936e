"""VisualPRM / InternVL2.5 forward pass in float32 PyTorch, written from MODEL.md
sections 4-6: InternViT vision encoder, pixel shuffle + MLP projector, InternLM2
language model. Weights are the checkpoint's (bf16/f16/f32) converted to fp32.

This file is the oracle for the C engine: plain loops over layers, one operation per
line, no fusion, no caching tricks.
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from safetensors_io import Checkpoint


class ConfigError(ValueError):
    """config.json asks for something this reference does not implement."""


# ---------------------------------------------------------------------------------------
# config.json (InternVLChatConfig)
# ---------------------------------------------------------------------------------------

class VisionConfig:
    def __init__(self, c):
        self.hidden = int(c["hidden_size"])
        self.layers = int(c["num_hidden_layers"])
        self.heads = int(c["num_attention_heads"])
        self.head_dim = self.hidden // self.heads
        self.intermediate = int(c["intermediate_size"])
        self.patch = int(c["patch_size"])
        self.image_size = int(c["image_size"])
        self.channels = int(c.get("num_channels", 3))
        self.norm_type = c.get("norm_type", "rms_norm")
        self.eps = float(c.get("layer_norm_eps", 1e-6))
        self.qkv_bias = bool(c.get("qkv_bias", False))
        self.qk_norm = bool(c.get("qk_normalization", False))
        act = c.get("hidden_act", "gelu")
        if self.norm_type not in ("layer_norm", "rms_norm"):
            raise ConfigError(f"vision_config.norm_type {self.norm_type!r} is not supported")
        if act != "gelu":
            raise ConfigError(f"vision_config.hidden_act {act!r} is not supported (only gelu)")
        if self.hidden % self.heads:
            raise ConfigError("vision_config.hidden_size is not a multiple of num_attention_heads")


class LLMConfig:
    def __init__(self, c):
        self.hidden = int(c["hidden_size"])
        self.layers = int(c["num_hidden_layers"])
        self.heads = int(c["num_attention_heads"])
        self.kv_heads = int(c.get("num_key_value_heads", self.heads))
        self.head_dim = self.hidden // self.heads
        self.intermediate = int(c["intermediate_size"])
        self.vocab = int(c["vocab_size"])
        self.rms_eps = float(c.get("rms_norm_eps", 1e-6))
        self.rope_theta = float(c.get("rope_theta", 10000.0))
        self.max_pos = int(c.get("max_position_embeddings", 2048))
        self.bias = bool(c.get("bias", False))
        self.tie = bool(c.get("tie_word_embeddings", False))
        scaling = c.get("rope_scaling")
        self.rope_dynamic = False
        self.rope_factor = 1.0
        if scaling:
            kind = scaling.get("type", scaling.get("rope_type"))
            if kind != "dynamic":
                raise ConfigError(f"llm_config.rope_scaling type {kind!r} is not supported "
                                  "(only dynamic)")
            self.rope_dynamic = True
            self.rope_factor = float(scaling["factor"])
        act = c.get("hidden_act", "silu")
        if act != "silu":
            raise ConfigError(f"llm_config.hidden_act {act!r} is not supported (only silu)")
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise ConfigError("llm_config heads do not divide hidden_size / each other")


class ModelConfig:
    def __init__(self, folder):
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            c = json.load(f)
        self.vision = VisionConfig(c["vision_config"])
        self.llm = LLMConfig(c["llm_config"])
        self.downsample_ratio = float(c.get("downsample_ratio", 0.5))
        self.ps_version = c.get("ps_version", "v1")
        self.select_layer = int(c.get("select_layer", -1))
        self.template = c.get("template")
        self.min_dynamic_patch = int(c.get("min_dynamic_patch", 1))
        self.max_dynamic_patch = int(c.get("max_dynamic_patch", 12))
        self.use_thumbnail = bool(c.get("use_thumbnail", False))
        self.system_message = c.get("system_message")
        self.image_size = int(c.get("force_image_size") or self.vision.image_size)
        self.name = os.path.basename(os.path.normpath(folder))
        self.shuffle = int(round(1.0 / self.downsample_ratio))  # 2: 2x2 cells per token
        grid = self.image_size // self.vision.patch
        self.grid = grid
        self.num_image_token = (grid // self.shuffle) ** 2  # 256
        if self.template != "internvl2_5":
            raise ConfigError(f"template {self.template!r} is not supported (only internvl2_5)")
        if self.ps_version != "v2":
            raise ConfigError(f"ps_version {self.ps_version!r} is not supported (only v2)")
        if grid * self.vision.patch != self.image_size or grid % self.shuffle:
            raise ConfigError(f"image size {self.image_size} / patch {self.vision.patch} "
                              f"does not give a grid divisible by {self.shuffle}")
        n = self.vision.layers
        if not -(n + 1) <= self.select_layer <= n:
            raise ConfigError(f"select_layer {self.select_layer} is outside the {n} layers")

    def vision_layers_to_run(self):
        """select_layer indexes the hidden-states list [embeddings, layer 1, ..., layer n]."""
        n = self.vision.layers
        return n + 1 + self.select_layer if self.select_layer < 0 else self.select_layer


# ---------------------------------------------------------------------------------------
# Weights: fp32 torch tensors by Hugging Face name
# ---------------------------------------------------------------------------------------

class Weights:
    """Checkpoint tensors as fp32 torch tensors. Small models are converted once and
    kept; big ones (the real 8B) are converted at each use to keep memory at ~16 GB."""

    CACHE_LIMIT_BYTES = 4 << 30

    def __init__(self, folder):
        self.ckpt = Checkpoint(folder)
        total = sum(4 * int(np.prod(self.ckpt.shape(n), dtype=np.int64)) for n in self.ckpt.names())
        self.keep = total <= self.CACHE_LIMIT_BYTES
        self.cache = {}

    def __contains__(self, name):
        return name in self.ckpt

    def __call__(self, name):
        if name in self.cache:
            return self.cache[name]
        t = torch.from_numpy(np.ascontiguousarray(self.ckpt.f32(name)))
        if self.keep:
            self.cache[name] = t
        return t

    def rows(self, name, rows):
        """Only the given rows of a [rows, cols] tensor (embedding gather, LM head rows)."""
        return torch.from_numpy(np.ascontiguousarray(self.ckpt.f32(name, rows)))


def check_shapes(cfg, w):
    """Every tensor the forward uses exists with the shape the config implies."""
    v, l = cfg.vision, cfg.llm
    cp = v.hidden * cfg.shuffle ** 2
    want = {
        "vision_model.embeddings.class_embedding": (1, 1, v.hidden),
        "vision_model.embeddings.patch_embedding.weight": (v.hidden, v.channels, v.patch, v.patch),
        "vision_model.embeddings.patch_embedding.bias": (v.hidden,),
        "vision_model.embeddings.position_embedding": (1, 1 + cfg.grid ** 2, v.hidden),
        "mlp1.0.weight": (cp,), "mlp1.0.bias": (cp,),
        "mlp1.1.weight": (l.hidden, cp), "mlp1.1.bias": (l.hidden,),
        "mlp1.3.weight": (l.hidden, l.hidden), "mlp1.3.bias": (l.hidden,),
        "language_model.model.tok_embeddings.weight": (l.vocab, l.hidden),
        "language_model.model.norm.weight": (l.hidden,),
    }
    if not l.tie:
        want["language_model.output.weight"] = (l.vocab, l.hidden)
    for i in range(v.layers):
        p = f"vision_model.encoder.layers.{i}."
        want.update({p + "attn.qkv.weight": (3 * v.hidden, v.hidden),
                     p + "attn.proj.weight": (v.hidden, v.hidden), p + "attn.proj.bias": (v.hidden,),
                     p + "mlp.fc1.weight": (v.intermediate, v.hidden), p + "mlp.fc1.bias": (v.intermediate,),
                     p + "mlp.fc2.weight": (v.hidden, v.intermediate), p + "mlp.fc2.bias": (v.hidden,),
                     p + "ls1": (v.hidden,), p + "ls2": (v.hidden,),
                     p + "norm1.weight": (v.hidden,), p + "norm2.weight": (v.hidden,)})
        if v.qkv_bias:
            want[p + "attn.qkv.bias"] = (3 * v.hidden,)
        if v.norm_type == "layer_norm":
            want[p + "norm1.bias"] = (v.hidden,)
            want[p + "norm2.bias"] = (v.hidden,)
        if v.qk_norm:
            want[p + "attn.q_norm.weight"] = (v.hidden,)
            want[p + "attn.k_norm.weight"] = (v.hidden,)
    qkv_rows = (l.heads + 2 * l.kv_heads) * l.head_dim
    for i in range(l.layers):
        p = f"language_model.model.layers.{i}."
        want.update({p + "attention_norm.weight": (l.hidden,), p + "ffn_norm.weight": (l.hidden,),
                     p + "attention.wqkv.weight": (qkv_rows, l.hidden),
                     p + "attention.wo.weight": (l.hidden, l.heads * l.head_dim),
                     p + "feed_forward.w1.weight": (l.intermediate, l.hidden),
                     p + "feed_forward.w3.weight": (l.intermediate, l.hidden),
                     p + "feed_forward.w2.weight": (l.hidden, l.intermediate)})
        if l.bias:
            want[p + "attention.wqkv.bias"] = (qkv_rows,)
            want[p + "attention.wo.bias"] = (l.hidden,)
    for name, shape in want.items():
        if name not in w.ckpt:
            raise ConfigError(f"checkpoint lacks tensor {name}")
        if tuple(w.ckpt.shape(name)) != shape:
            raise ConfigError(f"tensor {name} has shape {list(w.ckpt.shape(name))}, "
                              f"config implies {list(shape)}")


# ---------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------

def rms_norm(x, weight, eps):
    """weight * x / sqrt(mean(x^2) + eps), statistics in fp32."""
    x32 = x.float()
    return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps))


def linear(x, weight, bias=None):
    """x @ weight^T (+ bias); weight is [out, in] as in the checkpoint."""
    return F.linear(x, weight, bias)


def pixel_shuffle_v2(x, r):
    """[tiles, G, G, C] patch grid -> [tiles, (G/r)^2, r*r*C].

    Output token (i, j) (row-major) is the concatenation of the r x r cells
    (r*i + a, r*j + b) for a (row offset) outer, b (column offset) inner:
    for r = 2: (2i,2j), (2i,2j+1), (2i+1,2j), (2i+1,2j+1) (MODEL.md section 5)."""
    t, g, g2, c = x.shape
    assert g == g2 and g % r == 0
    x = x.reshape(t, g // r, r, g // r, r, c)      # [t, i, a, j, b, c]
    x = x.permute(0, 1, 3, 2, 4, 5)                  # [t, i, j, a, b, c]
    return x.reshape(t, (g // r) ** 2, r * r * c)


# ---------------------------------------------------------------------------------------
# InternViT
# ---------------------------------------------------------------------------------------

def vit_norm(cfg, w, prefix, x):
    v = cfg.vision
    if v.norm_type == "layer_norm":
        return F.layer_norm(x, (v.hidden,), w(prefix + ".weight"), w(prefix + ".bias"), v.eps)
    return rms_norm(x, w(prefix + ".weight"), v.eps)


def vit_attention(cfg, w, p, x):
    """Bidirectional multi-head attention inside each tile. x: [tiles, N, C]."""
    v = cfg.vision
    t, n, c = x.shape
    qkv = linear(x, w(p + "attn.qkv.weight"), w(p + "attn.qkv.bias") if v.qkv_bias else None)
    qkv = qkv.reshape(t, n, 3, c)                     # q block, k block, v block
    q, k, val = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if v.qk_norm:
        # InternViT normalises q and k over the full hidden width, before splitting heads
        q = rms_norm(q, w(p + "attn.q_norm.weight"), v.eps)
        k = rms_norm(k, w(p + "attn.k_norm.weight"), v.eps)
    q = q.reshape(t, n, v.heads, v.head_dim).transpose(1, 2)      # [t, heads, n, d]
    k = k.reshape(t, n, v.heads, v.head_dim).transpose(1, 2)
    val = val.reshape(t, n, v.heads, v.head_dim).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(v.head_dim)
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs, val).transpose(1, 2).reshape(t, n, c)
    return linear(out, w(p + "attn.proj.weight"), w(p + "attn.proj.bias"))


def vit_mlp(w, p, x):
    h = linear(x, w(p + "mlp.fc1.weight"), w(p + "mlp.fc1.bias"))
    h = F.gelu(h)  # exact (erf) GELU
    return linear(h, w(p + "mlp.fc2.weight"), w(p + "mlp.fc2.bias"))


def vision_encoder(cfg, w, pixels):
    """pixels [tiles, 3, S, S] -> patch tokens [tiles, G*G, Hv] (class token dropped)."""
    v = cfg.vision
    x = F.conv2d(pixels, w("vision_model.embeddings.patch_embedding.weight"),
                 w("vision_model.embeddings.patch_embedding.bias"), stride=v.patch)  # [t, Hv, G, G]
    x = x.flatten(2).transpose(1, 2)                                                 # [t, G*G, Hv] row-major
    cls = w("vision_model.embeddings.class_embedding").expand(x.shape[0], 1, v.hidden)
    x = torch.cat([cls, x], dim=1) + w("vision_model.embeddings.position_embedding")
    for i in range(cfg.vision_layers_to_run()):
        p = f"vision_model.encoder.layers.{i}."
        x = x + w(p + "ls1") * vit_attention(cfg, w, p, vit_norm(cfg, w, p + "norm1", x))
        x = x + w(p + "ls2") * vit_mlp(w, p, vit_norm(cfg, w, p + "norm2", x))
    return x[:, 1:]


def image_features(cfg, w, pixels):
    """pixels [tiles, 3, S, S] -> [tiles * num_image_token, H] LLM-space features."""
    t = pixels.shape[0]
    x = vision_encoder(cfg, w, pixels)
    x = pixel_shuffle_v2(x.reshape(t, cfg.grid, cfg.grid, cfg.vision.hidden), cfg.shuffle)
    x = F.layer_norm(x, (x.shape[-1],), w("mlp1.0.weight"), w("mlp1.0.bias"), 1e-5)
    x = linear(x, w("mlp1.1.weight"), w("mlp1.1.bias"))
    x = F.gelu(x)
    x = linear(x, w("mlp1.3.weight"), w("mlp1.3.bias"))
    return x.reshape(t * cfg.num_image_token, cfg.llm.hidden)


# ---------------------------------------------------------------------------------------
# InternLM2
# ---------------------------------------------------------------------------------------

def rope_theta_for_length(llm, seq_len):
    """Dynamic NTK: theta grows only when the sequence is longer than max_position_embeddings."""
    theta = llm.rope_theta
    if llm.rope_dynamic and seq_len > llm.max_pos:
        d = llm.head_dim
        theta = theta * (llm.rope_factor * seq_len / llm.max_pos - (llm.rope_factor - 1)) ** (d / (d - 2))
    return theta


def rope_tables(llm, seq_len):
    """cos, sin [L, head_dim] (fp32) for positions 0..L-1; angles computed in float64."""
    d = llm.head_dim
    theta = rope_theta_for_length(llm, seq_len)
    inv_freq = theta ** (-(2.0 * torch.arange(d // 2, dtype=torch.float64)) / d)   # [d/2]
    angles = torch.arange(seq_len, dtype=torch.float64)[:, None] * inv_freq[None]  # [L, d/2]
    angles = torch.cat([angles, angles], dim=-1)                                   # dim d pairs with d + d/2
    return angles.cos().float(), angles.sin().float()


def apply_rope(x, cos, sin):
    """x [heads, L, d]: rotate-half layout, x' = x*cos + rotate_half(x)*sin."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def split_wqkv(qkv, heads, kv_heads, head_dim):
    """Packed wqkv output [L, kv_heads * (G + 2) * d] -> q [heads, L, d], k, v [kv_heads, L, d].
    Per KV group g: slots 0..G-1 are query heads g*G..g*G+G-1, slot G key g, slot G+1 value g."""
    L = qkv.shape[0]
    group = heads // kv_heads
    qkv = qkv.reshape(L, kv_heads, group + 2, head_dim)
    q = qkv[:, :, :group].reshape(L, heads, head_dim)
    k = qkv[:, :, group]
    v = qkv[:, :, group + 1]
    return q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)


def llm_attention(llm, w, p, y, cos, sin):
    L = y.shape[0]
    qkv = linear(y, w(p + "attention.wqkv.weight"), w(p + "attention.wqkv.bias") if llm.bias else None)
    q, k, v = split_wqkv(qkv, llm.heads, llm.kv_heads, llm.head_dim)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    group = llm.heads // llm.kv_heads
    causal = torch.ones(L, L, dtype=torch.bool).triu(1)  # True above the diagonal: future
    out = torch.empty(L, llm.heads, llm.head_dim)
    for h in range(llm.heads):  # one head at a time keeps memory at L*L floats
        kv = h // group
        scores = torch.matmul(q[h], k[kv].transpose(0, 1)) / math.sqrt(llm.head_dim)
        scores = scores.masked_fill(causal, float("-inf"))
        out[:, h] = torch.matmul(torch.softmax(scores, dim=-1), v[kv])
    out = out.reshape(L, llm.heads * llm.head_dim)
    return linear(out, w(p + "attention.wo.weight"), w(p + "attention.wo.bias") if llm.bias else None)


def llm_ffn(w, p, y):
    gate = F.silu(linear(y, w(p + "feed_forward.w1.weight")))
    up = linear(y, w(p + "feed_forward.w3.weight"))
    return linear(gate * up, w(p + "feed_forward.w2.weight"))


def input_embeddings(cfg, w, ids, img_context_id, features):
    """Token embeddings, <IMG_CONTEXT> rows replaced by image features in order."""
    emb = w.rows("language_model.model.tok_embeddings.weight", ids)    # [L, H]
    slots = [i for i, t in enumerate(ids) if t == img_context_id]
    n_feat = 0 if features is None else features.shape[0]
    if len(slots) != n_feat:
        raise ValueError(f"{len(slots)} <IMG_CONTEXT> tokens but {n_feat} image feature rows")
    if slots:
        emb[torch.tensor(slots)] = features
    return emb


def language_model(cfg, w, emb):
    """Input embeddings [L, H] -> final-norm hidden states [L, H]."""
    llm = cfg.llm
    cos, sin = rope_tables(llm, emb.shape[0])
    x = emb
    for i in range(llm.layers):
        p = f"language_model.model.layers.{i}."
        x = x + llm_attention(llm, w, p, rms_norm(x, w(p + "attention_norm.weight"), llm.rms_eps), cos, sin)
        x = x + llm_ffn(w, p, rms_norm(x, w(p + "ffn_norm.weight"), llm.rms_eps))
    return rms_norm(x, w("language_model.model.norm.weight"), llm.rms_eps)


def lm_head_name(cfg):
    return "language_model.model.tok_embeddings.weight" if cfg.llm.tie else "language_model.output.weight"


class VisualPRM:
    """Config + weights + the forward; see score_positions_logits."""

    def __init__(self, folder):
        self.folder = folder
        self.cfg = ModelConfig(folder)
        self.w = Weights(folder)
        check_shapes(self.cfg, self.w)

    @torch.no_grad()
    def image_features(self, pixels):
        return image_features(self.cfg, self.w, torch.as_tensor(pixels, dtype=torch.float32))

    @torch.no_grad()
    def hidden_states(self, ids, img_context_id, features=None):
        """Final-norm hidden states [L, H] of one sequence; features: image_features() rows
        for its <IMG_CONTEXT> tokens (None without images)."""
        emb = input_embeddings(self.cfg, self.w, list(ids), img_context_id, features)
        return language_model(self.cfg, self.w, emb)

    @torch.no_grad()
    def logits_at(self, hidden, positions, token_ids):
        """Logits of the given vocabulary rows only: [len(positions), len(token_ids)]."""
        head = self.w.rows(lm_head_name(self.cfg), token_ids)   # [len(token_ids), H]
        return linear(hidden[torch.tensor(positions, dtype=torch.long)], head)

    @torch.no_grad()
    def full_logits(self, hidden):
        """[L, vocab]: the whole LM head (for self-checks only)."""
        return linear(hidden, self.w(lm_head_name(self.cfg)))
