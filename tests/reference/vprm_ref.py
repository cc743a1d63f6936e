#!/usr/bin/python3
"""VisualPRM reference scorer: the oracle the C engine is tested against.

  vprm_ref.py score      --model DIR REQUEST.json [--image FILE]... [--check-full-logits]
  vprm_ref.py tokenize   --model DIR REQUEST.json [--image FILE]...
  vprm_ref.py preprocess --image FILE [--max-tiles N] [--bf16] --out TILES.npy
  vprm_ref.py vision     --model DIR --image FILE [--max-tiles N] --out FEATURES.npy

REQUEST.json is an API.md score request ("-" reads stdin). Everything is computed in
float32 over the checkpoint's weights converted to float32, one full forward per
response (no prefix sharing). See README.md.
"""

import argparse
import base64
import binascii
import json
import math
import sys

import numpy as np
import torch
from PIL import UnidentifiedImageError

import prompt as P
from model import ConfigError, ModelConfig, VisualPRM
from preprocess import image_tiles, round_to_bf16

AGGREGATIONS = {
    "mean": lambda s: sum(s) / len(s),
    "min": min,
    "max": max,
    "last": lambda s: s[-1],
    "product": lambda s: math.prod(s),
}


class RequestError(ValueError):
    def __init__(self, message, param=None, kind="invalid_request"):
        super().__init__(message)
        self.param = param
        self.kind = kind


# ---------------------------------------------------------------------------------------
# Request
# ---------------------------------------------------------------------------------------

def image_bytes(source, param):
    """data: URL, bare base64, or "file:PATH" -> bytes."""
    if not isinstance(source, str):
        raise RequestError("an image must be a string", param)
    if source.startswith("file:"):
        with open(source[5:], "rb") as f:
            return f.read()
    if source.startswith(("http://", "https://")):
        raise RequestError("the reference does not fetch URLs", param)
    if source.startswith("data:"):
        head, sep, source = source.partition(",")
        if not sep or not head.endswith(";base64"):
            raise RequestError("a data URL must be data:<type>;base64,<data>", param)
    try:
        return base64.b64decode(source, validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestError(f"bad base64: {e}", param) from None


class Request:
    """An API.md score request, validated."""

    def __init__(self, body, extra_images=(), default_max_tiles=12):
        if not isinstance(body, dict):
            raise RequestError("the request must be a JSON object")
        self.question = body.get("question")
        if not isinstance(self.question, str):
            raise RequestError("question must be a string", "question")
        images = []
        if "image" in body and body["image"] is not None:
            images.append(image_bytes(body["image"], "image"))
        for k, src in enumerate(body.get("images") or []):
            images.append(image_bytes(src, f"images[{k}]"))
        for path in extra_images:
            with open(path, "rb") as f:
                images.append(f.read())
        self.images = images
        if self.question == "" and not images:
            raise RequestError("question may be empty only when images are given", "question")
        sep = body.get("step_separator", "\n\n")
        if not isinstance(sep, str) or sep == "":
            raise RequestError("step_separator must be a non-empty string", "step_separator")
        self.max_steps = body.get("max_steps")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise RequestError("max_steps must be a positive integer", "max_steps")
        self.aggregation = body.get("aggregation", "mean")
        if self.aggregation not in AGGREGATIONS:
            raise RequestError(f"unknown aggregation {self.aggregation!r}", "aggregation")
        self.max_tiles = body.get("max_tiles", default_max_tiles)
        if self.max_tiles is None:
            self.max_tiles = default_max_tiles
        if not isinstance(self.max_tiles, int) or self.max_tiles < 1:
            raise RequestError("max_tiles must be a positive integer", "max_tiles")
        self.return_logits = bool(body.get("return_logits", False))
        responses = body.get("responses")
        if not isinstance(responses, list) or not responses:
            raise RequestError("responses must be a non-empty array", "responses")
        self.steps = []
        for k, r in enumerate(responses):
            try:
                steps = P.split_steps(r, sep, f"responses[{k}]")
            except P.PromptError as e:
                raise RequestError(str(e), e.param) from None
            self.steps.append(P.merge_steps(steps, self.max_steps))


def load_request(path, extra_images, default_max_tiles):
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        raise RequestError(f"malformed JSON: {e}") from None
    bodies = body["requests"] if isinstance(body, dict) and "requests" in body else [body]
    return [Request(b, extra_images, default_max_tiles) for b in bodies], "requests" in body


# ---------------------------------------------------------------------------------------
# Prompt + scoring
# ---------------------------------------------------------------------------------------

class Prepared:
    """Pixels and token ids of one request (what the engine's prepare stage makes)."""

    def __init__(self, cfg, tok, req, system):
        tiles = []
        for k, data in enumerate(req.images):
            try:
                tiles.append(image_tiles(data, cfg.min_dynamic_patch, req.max_tiles, cfg.image_size,
                                         cfg.use_thumbnail))
            except UnidentifiedImageError:
                raise RequestError(f"image {k}: not an image format Pillow knows", f"images[{k}]",
                                   "unsupported_image") from None
            except OSError as e:
                raise RequestError(f"image {k} does not decode: {e}", f"images[{k}]", "image_decode") from None
        self.tiles_per_image = [t.shape[0] for t in tiles]
        self.pixels = round_to_bf16(np.concatenate(tiles)) if tiles else None  # the model sees bf16 pixels
        image_tokens = [cfg.num_image_token * n for n in self.tiles_per_image]
        self.prompts = []  # (ids, score_positions) per response
        for k, steps in enumerate(req.steps):
            try:
                self.prompts.append(P.build_prompt(tok, system, req.question, steps, image_tokens))
            except P.PromptError as e:
                raise RequestError(str(e), e.param or f"responses[{k}]") from None


def system_prompt(cfg, override):
    if override is not None:
        return override
    return cfg.system_message if cfg.system_message is not None else P.PRM_SYSTEM_PROMPT


def score(model, tok, req, system, check_full_logits=False):
    cfg = model.cfg
    prep = Prepared(cfg, tok, req, system)
    plus, minus = tok.vocab_id(P.PLUS), tok.vocab_id(P.MINUS)
    ctx = tok.special_id(P.IMG_CONTEXT)
    feats = model.image_features(prep.pixels) if prep.pixels is not None else None
    results = []
    worst_head_diff = 0.0
    for k, (ids, positions) in enumerate(prep.prompts):
        hidden = model.hidden_states(ids, ctx, feats)                      # one full forward
        logits = model.logits_at(hidden, positions, [plus, minus])        # [steps, 2]
        if check_full_logits:
            full = model.full_logits(hidden)[torch.tensor(positions)][:, [plus, minus]]
            worst_head_diff = max(worst_head_diff, float((full - logits).abs().max()))
        pairs = [[float(a), float(b)] for a, b in logits.tolist()]
        step_scores = [1.0 / (1.0 + math.exp(lm - lp)) for lp, lm in pairs]  # softmax([l+, l-])[0]
        results.append({"index": k, "score": AGGREGATIONS[req.aggregation](step_scores),
                        "step_scores": step_scores, "steps": len(step_scores),
                        "step_logits": pairs, "input_ids": ids, "score_positions": positions})
    ranking = sorted(range(len(results)), key=lambda i: -results[i]["score"])  # stable
    tiles = sum(prep.tiles_per_image)
    out = {"model": cfg.name, "results": results, "ranking": ranking, "best_index": ranking[0],
           "usage": {"prompt_tokens": sum(len(r["input_ids"]) for r in results),
                     "image_tiles": tiles, "image_tokens": tiles * cfg.num_image_token}}
    if check_full_logits:
        out["full_head_max_abs_diff"] = worst_head_diff
    return out


def tokenize(cfg, tok, req, system):
    prep = Prepared(cfg, tok, req, system)
    return {"responses": [{"input_ids": ids, "score_positions": pos, "pieces": [tok.piece(t) for t in ids]}
                          for ids, pos in prep.prompts]}


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------

def cmd_score_or_tokenize(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = ModelConfig(args.model)
    tok = P.Tokenizer(args.model)
    system = system_prompt(cfg, args.system_prompt)
    reqs, batch = load_request(args.request, args.image, cfg.max_dynamic_patch)
    if args.command == "tokenize":
        outs = [tokenize(cfg, tok, r, system) for r in reqs]
    else:
        model = VisualPRM(args.model)
        outs = [score(model, tok, r, system, args.check_full_logits) for r in reqs]
    print(json.dumps({"results": outs} if batch else outs[0], ensure_ascii=False))


def cmd_preprocess(args):
    with open(args.image, "rb") as f:
        tiles = image_tiles(f.read(), args.min_tiles, args.max_tiles, args.image_size, not args.no_thumbnail)
    if args.bf16:
        tiles = round_to_bf16(tiles)
    np.save(args.out, tiles.astype(np.float32))
    print(json.dumps({"tiles": int(tiles.shape[0]), "shape": list(tiles.shape), "out": args.out}))


def cmd_vision(args):
    model = VisualPRM(args.model)
    cfg = model.cfg
    with open(args.image, "rb") as f:
        tiles = image_tiles(f.read(), cfg.min_dynamic_patch, args.max_tiles or cfg.max_dynamic_patch,
                            cfg.image_size, cfg.use_thumbnail)
    feats = model.image_features(round_to_bf16(tiles)).numpy()
    np.save(args.out, feats)
    print(json.dumps({"tiles": int(tiles.shape[0]), "shape": list(feats.shape), "out": args.out}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("score", "tokenize"):
        p = sub.add_parser(name)
        p.add_argument("--model", required=True, help="Hugging Face model folder")
        p.add_argument("request", help="score request JSON file, or - for stdin")
        p.add_argument("--image", action="append", default=[], help="image file, appended to the request's")
        p.add_argument("--system-prompt", default=None, help="override the system prompt")
        p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
        if name == "score":
            p.add_argument("--check-full-logits", action="store_true",
                           help="also compute the full LM head and report its largest difference "
                                "from the two-row logits")
    p = sub.add_parser("preprocess")
    p.add_argument("--image", required=True)
    p.add_argument("--max-tiles", type=int, default=12)
    p.add_argument("--min-tiles", type=int, default=1)
    p.add_argument("--image-size", type=int, default=448)
    p.add_argument("--no-thumbnail", action="store_true")
    p.add_argument("--bf16", action="store_true", help="round to bf16 (what the encoder sees)")
    p.add_argument("--out", required=True)
    p = sub.add_parser("vision")
    p.add_argument("--model", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--max-tiles", type=int, default=0)
    p.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        if args.command in ("score", "tokenize"):
            cmd_score_or_tokenize(args)
        elif args.command == "preprocess":
            cmd_preprocess(args)
        else:
            cmd_vision(args)
    except BrokenPipeError:  # stdout closed early (| head)
        return 1
    except (RequestError, P.PromptError, ConfigError, OSError) as e:
        kind = "config_error" if isinstance(e, ConfigError) else "io_error" if isinstance(e, OSError) \
            else "invalid_request"
        err = {"type": getattr(e, "kind", kind),
               "message": str(e), "param": getattr(e, "param", None)}
        print(json.dumps({"error": err}))
        print(f"vprm_ref: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
