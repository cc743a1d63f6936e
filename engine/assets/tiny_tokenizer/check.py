"""Checks the properties the rest of vprm relies on, with python3-sentencepiece:
"assistant\n+" ends with the single pieces "\n" then "+" (likewise "-"), "+" and "-" are
single pieces, and the settings match InternLM2's (BPE, byte fallback, identity
normalizer, no dummy prefix, whitespace kept).

  check.py FOLDER"""
import json
import os
import sys

import sentencepiece as spm


def main():
    folder = sys.argv[1]
    sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
    errors = []
    for sign in "+-":
        ids = sp.encode("assistant\n" + sign)
        pieces = [sp.id_to_piece(i) for i in ids]
        if pieces[-2:] != ["\n", sign]:
            errors.append("'assistant\\n%s' encodes as %r" % (sign, pieces))
        if sp.encode(sign) != [sp.piece_to_id(sign)]:
            errors.append("'%s' is not a single piece" % sign)
    text = "  x  =\t1\n\n  "
    if "".join(sp.id_to_piece(i) for i in sp.encode(text)).replace("\u2581", " ") != text:
        errors.append("whitespace is not kept as it is")
    if sp.encode("\U0001F9EE") != [sp.piece_to_id("<0x%02X>" % b) for b in
                                   "\U0001F9EE".encode()]:
        errors.append("byte fallback is off")
    with open(os.path.join(folder, "tokenizer_config.json")) as f:
        config = json.load(f)
    dec = config["added_tokens_decoder"]
    if dec[str(sp.get_piece_size() + 4)]["content"] != "<|im_end|>":
        errors.append("<|im_end|> is not at vocabulary size + 4")
    for e in errors:
        print("tiny tokenizer: " + e)
    print("tiny tokenizer: %d pieces, %d added tokens, %s"
          % (sp.get_piece_size(), len(dec), "FAILED" if errors else "ok"))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
