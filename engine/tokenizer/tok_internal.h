/* The tokenizer's state, shared by the files of engine/tokenizer (not a public API). */
#ifndef VP_TOK_INTERNAL_H
#define VP_TOK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/tokenizer/prefix_trie.h"
#include "engine/tokenizer/spm_proto.h"
#include "engine/tokenizer/str_map.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/utf8.h"

/* id_added values. An added token is kept out of what text can produce unless it is
 * declared non-special and spells exactly its own vocabulary piece. */
enum { VP_NOT_ADDED = 0, VP_ADDED_SPECIAL = 1, VP_ADDED_PLAIN = 2 };

struct vp_tokenizer {
    vp_spm_model model; /* pieces and settings as read from tokenizer.model */

    /* Id space: pieces, then added tokens beyond them (gaps allowed). */
    size_t n_ids;
    const char **id_text; /* [n_ids] added-token content, else piece text; NULL in gaps */
    uint32_t *id_len;     /* [n_ids] */
    uint8_t *id_added;    /* [n_ids] VP_ADDED_* */
    char **added_owned;   /* [n_added_owned] heap copies of added-token contents */
    size_t n_added_owned;
    char *config_bos;     /* bos_token of tokenizer_config.json, NULL when absent */

    /* Sentencepiece's two piece tables, keyed by the piece text of the model:
     * text_map holds what text can produce (normal, user-defined, unused pieces),
     * reserved_map the rest (control, unknown, byte). Pieces whose id is an added
     * token are left out of text_map, so text never produces an added token. */
    vp_str_map text_map;
    vp_str_map reserved_map;
    vp_str_map special_map; /* added tokens and control/unknown pieces, by id_text */
    vp_prefix_trie user_defined; /* user-defined pieces in text_map, matched whole */
    int32_t *emit_id;       /* [n_pieces] id output for a symbol spelling piece i (for
                             * text_map pieces: the reserved id of the same text wins) */
    uint32_t max_piece_len; /* longest text_map key, in bytes */
    bool has_unused;        /* text_map holds unused pieces (re-segmented on output) */

    uint64_t pair_in_piece[1024]; /* [65536 bits] bit x*256+y: some text_map piece
                                   * holds byte x followed by byte y */

    int32_t unk_id;
    int32_t bos_id, eos_id; /* -1 when the model has none */
    int32_t byte_id[256];   /* id of piece <0xXX>, unk_id when missing */
    int32_t ascii_id[128];  /* id of each one-byte symbol (sentencepiece PieceToId) */
};

/* Sentencepiece's PieceToId: reserved pieces first, then text pieces, else unk. */
int32_t vp_tok_piece_to_id(const vp_tokenizer *tok, const char *s, size_t len);

static inline bool vp_tok_pair_in_piece(const vp_tokenizer *tok, uint8_t x, uint8_t y)
{
    unsigned k = (unsigned)x << 8 | y;
    return (tok->pair_in_piece[k >> 6] >> (k & 63)) & 1;
}

/* BPE over normalized text s[0..n) (spaces already escaped), ids appended to out. */
int vp_bpe_encode(const vp_tokenizer *tok, const char *s, size_t n, vp_ids *out, vp_error *err);

/* Reads added tokens of dir (tokenizer_config.json added_tokens_decoder, optional
 * added_tokens.json) into tok's id tables; called after the model is loaded. */
int vp_tok_load_added_tokens(vp_tokenizer *tok, const char *dir, vp_error *err);

#endif
