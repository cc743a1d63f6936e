"""Writes the tiny tokenizer's tokenizer_config.json to stdout, in the format of
InternVL2.5's (InternLM2Tokenizer): <unk> <s> </s> at 0 1 2 and the 15 added tokens
from the vocabulary size upward, in InternVL's order.

  make_config.py tokenizer.model"""
import json
import sys

import sentencepiece as spm

ADDED = ["<|plugin|>", "<|interpreter|>", "<|action_end|>", "<|action_start|>", "<|im_end|>",
         "<|im_start|>", "<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>",
         "</ref>", "<box>", "</box>"]


def entry(content):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True}


def main():
    sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
    vocab = sp.get_piece_size()
    decoder = {}
    for piece in ("<unk>", "<s>", "</s>"):
        decoder[str(sp.piece_to_id(piece))] = entry(piece)
    for i, content in enumerate(ADDED):
        decoder[str(vocab + i)] = entry(content)
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|action_start|>",
                                      "<|action_end|>", "<|interpreter|>", "<|plugin|>",
                                      "<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>",
                                      "<ref>", "</ref>", "<box>", "</box>"],
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "</s>",
        "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False,
        "tokenizer_class": "InternLM2Tokenizer",
    }
    json.dump(config, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
