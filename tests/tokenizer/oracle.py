"""Oracle side of the tokenizer suite (python3-sentencepiece is the reference).

  oracle.py encode MODEL IN OUT      ids of every record of IN, one line each
  oracle.py variant KIND SRC OUT [TOKENIZER_CONFIG]
                                     writes a model variant (see VARIANTS)
  oracle.py info MODEL [TOKENIZER_CONFIG]
                                     what tok_encode --info prints, from the oracle
  oracle.py compare IN EXPECTED GOT LABEL
                                     compares id files; prints the count and the first
                                     mismatches; exit 1 on any mismatch"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_strings  # noqa: E402
import spm_model  # noqa: E402


def encode(model, inp, out):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model)
    strings = gen_strings.read_records(inp)
    with open(out, "w") as f:
        for ids in sp.encode(strings):
            f.write(" ".join(map(str, ids)) + "\n")


def added_special_ids(config_path):
    with open(config_path) as f:
        dec = json.load(f).get("added_tokens_decoder", {})
    return {int(k) for k in dec}


def variant(kind, src, out, config=None):
    """Model variants exercising settings and piece types the real model lacks."""
    m = spm_model.Model.load(src)
    pieces = m.pieces()
    if kind == "added":
        # What vprm's loader does with added tokens: an id that became an added token
        # is no longer produced from text (sentencepiece itself would still match
        # e.g. the user-defined piece [UNUSED_TOKEN_145] = <|im_end|>).
        ids = added_special_ids(config)
        pieces = [(t, s, spm_model.CONTROL if i in ids and ty in (1, 4, 5) else ty)
                  for i, (t, s, ty) in enumerate(pieces)]
        m.set_pieces(pieces)
    elif kind == "dummy_prefix":
        m.set_spec_varint(3, 3, 1)
    elif kind == "no_escape":
        m.set_spec_varint(3, 5, 0)
    elif kind == "unused_userdef":
        # Every 7th normal multi-character piece unused (re-segmented on output), and a
        # few pieces user-defined (matched whole, never merged).
        out_pieces = []
        for i, (t, s, ty) in enumerate(pieces):
            if ty == spm_model.NORMAL and len(t) > 1 and i % 7 == 3:
                ty = spm_model.UNUSED
            elif ty == spm_model.NORMAL and len(t) > 2 and i % 53 == 5:
                ty = spm_model.USER_DEFINED
            out_pieces.append((t, s, ty))
        m.set_pieces(out_pieces)
    elif kind == "no_byte_fallback":
        m.set_pieces([p for p in pieces if p[2] != spm_model.BYTE])
        m.set_spec_varint(2, 35, 0)
    else:
        raise SystemExit("unknown variant " + kind)
    m.save(out)


INFO_SPECIALS = ["<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>", "<img>", "</img>",
                 "<IMG_CONTEXT>"]


def info(model, config=None):
    """Ids the tokenizer must report: added tokens from the config, control and unknown
    pieces from the model, n_ids = max(pieces, highest added id + 1)."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model)
    added = {}
    if config:
        with open(config) as f:
            cfg = json.load(f)
        added = {v["content"]: int(k) for k, v in cfg.get("added_tokens_decoder", {}).items()}
    n_ids = max([sp.get_piece_size()] + [i + 1 for i in added.values()])
    lines = ["n_ids %d" % n_ids, "bos %d" % sp.bos_id(), "eos %d" % sp.eos_id(),
             "unk %d" % sp.unk_id()]
    for name in INFO_SPECIALS:
        i = added.get(name, -1)
        if i < 0:
            j = sp.piece_to_id(name)
            if sp.id_to_piece(j) == name and (sp.is_control(j) or sp.is_unknown(j)):
                i = j
        lines.append("special %s %d" % (name, i))
    for name in "+-":
        j = sp.piece_to_id(name)
        lines.append("piece %s %d" % (name, j if sp.id_to_piece(j) == name else -1))
    print("\n".join(lines))


def compare(inp, expected, got, label):
    strings = gen_strings.read_records(inp)
    with open(expected) as f:
        exp = f.read().split("\n")[:-1]
    with open(got) as f:
        gotl = f.read().split("\n")[:-1]
    if len(exp) != len(strings) or len(gotl) != len(strings):
        print("%s: FAIL: %d strings, %d expected lines, %d lines from vprm"
              % (label, len(strings), len(exp), len(gotl)))
        return 1
    bad = [i for i in range(len(strings)) if exp[i] != gotl[i]]
    n_tokens = sum(len(x.split()) for x in exp)
    n_bytes = sum(len(s.encode()) for s in strings)
    print("%s: %d strings (%d bytes, %d tokens): %d identical, %d mismatches"
          % (label, len(strings), n_bytes, n_tokens, len(strings) - len(bad), len(bad)))
    for i in bad[:5]:
        s = strings[i]
        print("  mismatch #%d: %r" % (i, s if len(s) < 200 else s[:200] + "..."))
        e, g = exp[i].split(), gotl[i].split()
        k = next((j for j in range(min(len(e), len(g))) if e[j] != g[j]), min(len(e), len(g)))
        print("    first difference at token %d: expected %s got %s"
              % (k, e[k:k + 8], g[k:k + 8]))
    return 1 if bad else 0


def main():
    cmd = sys.argv[1]
    if cmd == "encode":
        encode(*sys.argv[2:5])
    elif cmd == "variant":
        variant(*sys.argv[2:])
    elif cmd == "info":
        info(*sys.argv[2:4])
    elif cmd == "compare":
        sys.exit(compare(*sys.argv[2:6]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
