/* Reader for a SentencePiece tokenizer.model (the ModelProto protobuf message of
 * sentencepiece_model.proto). Only what encoding needs is kept; every other field is
 * skipped. The reader is defensive: truncated varints, lengths past the end, wrong wire
 * types and unknown piece types are refused with the byte offset, never a crash. */
#ifndef VP_SPM_PROTO_H
#define VP_SPM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/util/err.h"

/* ModelProto.SentencePiece.Type */
enum {
    VP_PIECE_NORMAL = 1,
    VP_PIECE_UNKNOWN = 2,
    VP_PIECE_CONTROL = 3,
    VP_PIECE_USER_DEFINED = 4,
    VP_PIECE_UNUSED = 5,
    VP_PIECE_BYTE = 6
};

/* TrainerSpec.ModelType */
enum { VP_SPM_UNIGRAM = 1, VP_SPM_BPE = 2, VP_SPM_WORD = 3, VP_SPM_CHAR = 4 };

typedef struct vp_spm_model {
    size_t n_pieces;
    const char **text; /* [n_pieces] piece strings, NUL-terminated, into arena */
    uint32_t *len;     /* [n_pieces] byte length of each piece */
    float *score;      /* [n_pieces] */
    uint8_t *type;     /* [n_pieces] VP_PIECE_* */
    char *arena;       /* [sum(len + 1)] backing store of text */

    /* trainer_spec (proto2 defaults when absent) */
    int32_t model_type;   /* VP_SPM_* */
    bool byte_fallback;
    bool treat_whitespace_as_suffix;
    int32_t unk_id, bos_id, eos_id, pad_id;
    char bos_piece[64], eos_piece[64]; /* names of the BOS/EOS control pieces */

    /* normalizer_spec */
    char normalizer_name[64];
    size_t charsmap_len;  /* length of precompiled_charsmap (0 = none) */
    bool add_dummy_prefix;
    bool remove_extra_whitespaces;
    bool escape_whitespaces;
} vp_spm_model;

/* Parses a serialized ModelProto. `what` names the source in messages (a path).
 * Checks only the wire format and piece types; settings are judged by the caller. */
int vp_spm_parse(const uint8_t *data, size_t len, const char *what, vp_spm_model *out,
                 vp_error *err);
void vp_spm_model_free(vp_spm_model *m);

#endif
