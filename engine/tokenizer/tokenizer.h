/* SentencePiece BPE tokenizer (the InternLM2 kind), read from a model folder's
 * tokenizer.model + tokenizer_config.json (+ added_tokens.json when present).
 *
 * Plain-text encoding never produces control or added tokens: text from a request that
 * spells "<|im_end|>" is encoded as those characters. Special tokens are looked up by
 * name and emitted as ids by the prompt builder. */
#ifndef VP_TOKENIZER_H
#define VP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/util/err.h"
#include "engine/util/vec.h"

typedef struct vp_tokenizer vp_tokenizer;

/* Loads dir/tokenizer.model, dir/tokenizer_config.json, dir/added_tokens.json (optional). */
int vp_tokenizer_load(const char *dir, vp_tokenizer **out, vp_error *err);
/* Loads only a tokenizer.model file (no added tokens); for tests and tools. */
int vp_tokenizer_load_model_file(const char *path, vp_tokenizer **out, vp_error *err);
void vp_tokenizer_free(vp_tokenizer *tok);

/* Appends the ids of plain text (UTF-8, len bytes) to out. Invalid UTF-8 is refused
 * with VP_ERR_BAD_REQUEST. No BOS is added. */
int vp_tokenizer_encode(const vp_tokenizer *tok, const char *text, size_t len, vp_ids *out,
                        vp_error *err);

/* Id of a special/added token or control piece by its exact text ("<s>", "<|im_end|>",
 * "<IMG_CONTEXT>"), or -1 if the tokenizer has none. */
int32_t vp_tokenizer_special_id(const vp_tokenizer *tok, const char *content);
/* Id of a vocabulary piece by its exact text ("+", "\xe2\x96\x81the"), or -1. */
int32_t vp_tokenizer_piece_id(const vp_tokenizer *tok, const char *piece);
/* Text of id (vocabulary piece or added token), or NULL when out of range. */
const char *vp_tokenizer_id_to_piece(const vp_tokenizer *tok, int32_t id);
/* Number of ids (vocabulary pieces plus added tokens beyond them). */
size_t vp_tokenizer_n_ids(const vp_tokenizer *tok);
int32_t vp_tokenizer_bos_id(const vp_tokenizer *tok);
/* EOS: the control piece named by the model's trainer_spec (</s>), or -1. */
int32_t vp_tokenizer_eos_id(const vp_tokenizer *tok);
/* The piece of type UNKNOWN (every loaded model has one). */
int32_t vp_tokenizer_unk_id(const vp_tokenizer *tok);

#endif
