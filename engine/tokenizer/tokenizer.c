/* Loading a SentencePiece BPE tokenizer and encoding plain text with it: the model's
 * settings are checked (only what is implemented is accepted), the piece tables are
 * built, and text is normalized (dummy prefix, spaces escaped to U+2581) before BPE. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tok_internal.h"
#include "engine/util/file.h"

#define MAX_MODEL_BYTES ((size_t)256 << 20)

static const char kSpaceSymbol[] = "\xe2\x96\x81"; /* U+2581, what spaces become */

int32_t vp_tok_piece_to_id(const vp_tokenizer *tok, const char *s, size_t len)
{
    uint32_t h = vp_str_hash(s, len);
    int32_t id = vp_str_map_find_hashed(&tok->reserved_map, s, len, h);
    if (id < 0)
        id = vp_str_map_find_hashed(&tok->text_map, s, len, h);
    return id < 0 ? tok->unk_id : id;
}

/* Refuses settings this implementation does not reproduce. */
static int check_settings(const vp_spm_model *m, const char *path, vp_error *err)
{
    static const char *const types[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
    if (m->model_type != VP_SPM_BPE)
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: model_type %s (%d) is not supported; only BPE tokenizers are",
                       path, m->model_type >= 1 && m->model_type <= 4 ? types[m->model_type] : "?",
                       (int)m->model_type);
    if (m->charsmap_len != 0)
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: normalizer '%s' has a precompiled_charsmap (%zu bytes); only the "
                       "identity normalizer is supported",
                       path, m->normalizer_name, m->charsmap_len);
    if (m->normalizer_name[0] && strcmp(m->normalizer_name, "identity") != 0)
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: normalization rule '%s' is not supported; only 'identity' is", path,
                       m->normalizer_name);
    if (m->remove_extra_whitespaces)
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: normalizer_spec.remove_extra_whitespaces=true is not supported", path);
    if (m->treat_whitespace_as_suffix)
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: trainer_spec.treat_whitespace_as_suffix=true is not supported", path);
    int32_t unk = -1;
    size_t n_bytes = 0;
    for (size_t i = 0; i < m->n_pieces; i++) {
        n_bytes += m->type[i] == VP_PIECE_BYTE;
        if (isnan(m->score[i]))
            return vp_fail(err, VP_ERR_MODEL, NULL, "%s: piece %zu has a NaN score", path, i);
        if (m->type[i] == VP_PIECE_UNKNOWN) {
            if (unk >= 0)
                return vp_fail(err, VP_ERR_MODEL, NULL,
                               "%s: pieces %d and %zu are both of type UNKNOWN", path, (int)unk, i);
            unk = (int32_t)i;
        }
        if (m->type[i] == VP_PIECE_BYTE && !m->byte_fallback)
            return vp_fail(err, VP_ERR_MODEL, NULL,
                           "%s: byte piece %zu '%s' while trainer_spec.byte_fallback is false",
                           path, i, m->text[i]);
    }
    if (unk < 0)
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: no piece of type UNKNOWN (unk)", path);
    /* As sentencepiece: byte fallback needs all 256 byte pieces, or a byte would be
     * output as whatever piece (control, unk) its <0xXX> name finds. */
    if (m->byte_fallback && n_bytes != 256)
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: trainer_spec.byte_fallback is true but the model has %zu byte "
                       "pieces, not 256",
                       path, n_bytes);
    return 0;
}

static int parse_model(const char *path, vp_tokenizer **out, vp_error *err)
{
    *out = NULL;
    uint8_t *data;
    size_t len;
    if (vp_read_file(path, MAX_MODEL_BYTES, &data, &len, err) != 0)
        return -1;
    vp_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        free(data);
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory loading %s", path);
    }
    vp_trie_init(&tok->user_defined);
    int rc = vp_spm_parse(data, len, path, &tok->model, err);
    free(data);
    if (rc == 0)
        rc = check_settings(&tok->model, path, err);
    if (rc == 0) {
        size_t n = tok->model.n_pieces;
        tok->n_ids = n;
        tok->id_text = malloc(n * sizeof *tok->id_text);
        tok->id_len = malloc(n * sizeof *tok->id_len);
        tok->id_added = calloc(n, 1);
        if (!tok->id_text || !tok->id_len || !tok->id_added) {
            rc = vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory loading %s", path);
        } else {
            memcpy(tok->id_text, tok->model.text, n * sizeof *tok->id_text);
            memcpy(tok->id_len, tok->model.len, n * sizeof *tok->id_len);
        }
    }
    if (rc != 0) {
        vp_tokenizer_free(tok);
        return -1;
    }
    *out = tok;
    return 0;
}

static bool producible_type(uint8_t type)
{
    return type == VP_PIECE_NORMAL || type == VP_PIECE_USER_DEFINED || type == VP_PIECE_UNUSED;
}

static int build_piece_tables(vp_tokenizer *tok, const char *what, vp_error *err)
{
    const vp_spm_model *m = &tok->model;
    size_t n = m->n_pieces;
    tok->emit_id = malloc(n * sizeof *tok->emit_id);
    if (!tok->emit_id || vp_str_map_init(&tok->text_map, n, m->text, m->len) != 0 ||
        vp_str_map_init(&tok->reserved_map, n, m->text, m->len) != 0)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory building tables of %s", what);
    for (size_t i = 0; i < n; i++) {
        tok->emit_id[i] = (int32_t)i;
        if (m->type[i] == VP_PIECE_UNKNOWN)
            tok->unk_id = (int32_t)i;
        bool text = producible_type(m->type[i]);
        if (text && tok->id_added[i] == VP_ADDED_SPECIAL)
            continue; /* its id now means an added token: never produce it from text */
        int32_t dup = vp_str_map_insert(text ? &tok->text_map : &tok->reserved_map, (int32_t)i);
        if (dup >= 0)
            return vp_fail(err, VP_ERR_MODEL, NULL, "%s: piece %zu '%s' is already defined as piece %d",
                           what, i, m->text[i], (int)dup);
        if (!text)
            continue;
        if (m->len[i] > tok->max_piece_len)
            tok->max_piece_len = m->len[i];
        const uint8_t *t = (const uint8_t *)m->text[i];
        for (uint32_t k = 1; k < m->len[i]; k++) {
            unsigned pair = (unsigned)t[k - 1] << 8 | t[k];
            tok->pair_in_piece[pair >> 6] |= 1ull << (pair & 63);
        }
        if (m->type[i] == VP_PIECE_UNUSED)
            tok->has_unused = true;
        if (m->type[i] == VP_PIECE_USER_DEFINED &&
            vp_trie_insert(&tok->user_defined, m->text[i], m->len[i], (int32_t)i) != 0)
            return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory building tables of %s", what);
    }
    /* sentencepiece looks reserved pieces up first: a text piece that shares its text
     * with a reserved one is output as the reserved id. */
    for (size_t i = 0; i < n; i++) {
        if (!producible_type(m->type[i]))
            continue;
        int32_t r = vp_str_map_find(&tok->reserved_map, m->text[i], m->len[i]);
        if (r >= 0)
            tok->emit_id[i] = r;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->byte_id[b] = vp_tok_piece_to_id(tok, name, 6);
        if (b < 128) {
            char c = (char)b;
            tok->ascii_id[b] = vp_tok_piece_to_id(tok, &c, 1);
        }
    }
    return 0;
}

/* Added tokens and control/unknown pieces by their (possibly overridden) text. */
static int build_special_table(vp_tokenizer *tok, const char *what, vp_error *err)
{
    const vp_spm_model *m = &tok->model;
    if (vp_str_map_init(&tok->special_map, tok->n_ids, tok->id_text, tok->id_len) != 0)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory building tables of %s", what);
    for (size_t i = 0; i < tok->n_ids; i++) {
        if (!tok->id_added[i] || !tok->id_text[i])
            continue;
        int32_t dup = vp_str_map_insert(&tok->special_map, (int32_t)i);
        if (dup >= 0)
            return vp_fail(err, VP_ERR_MODEL, NULL, "%s: added tokens %d and %zu are both '%s'",
                           what, (int)dup, i, tok->id_text[i]);
    }
    for (size_t i = 0; i < m->n_pieces; i++) {
        if (tok->id_added[i] ||
            (m->type[i] != VP_PIECE_CONTROL && m->type[i] != VP_PIECE_UNKNOWN))
            continue;
        (void)vp_str_map_insert(&tok->special_map, (int32_t)i); /* an added token wins */
    }
    return 0;
}

/* BOS/EOS as sentencepiece defines them: the control piece named by trainer_spec;
 * a bos_token in tokenizer_config.json takes precedence (as in Hugging Face). */
static int resolve_bos_eos(vp_tokenizer *tok, const char *what, vp_error *err)
{
    const vp_spm_model *m = &tok->model;
    int32_t id = vp_str_map_find(&tok->reserved_map, m->bos_piece, strlen(m->bos_piece));
    tok->bos_id = id >= 0 && m->type[id] == VP_PIECE_CONTROL ? id : -1;
    id = vp_str_map_find(&tok->reserved_map, m->eos_piece, strlen(m->eos_piece));
    tok->eos_id = id >= 0 && m->type[id] == VP_PIECE_CONTROL ? id : -1;
    if (tok->config_bos) {
        id = vp_tokenizer_special_id(tok, tok->config_bos);
        if (id < 0)
            return vp_fail(err, VP_ERR_MODEL, NULL,
                           "%s: bos_token '%s' is neither an added token nor a control piece",
                           what, tok->config_bos);
        tok->bos_id = id;
    }
    return 0;
}

static int finish(vp_tokenizer *tok, const char *what, vp_tokenizer **out, vp_error *err)
{
    if (build_piece_tables(tok, what, err) != 0 || build_special_table(tok, what, err) != 0 ||
        resolve_bos_eos(tok, what, err) != 0) {
        vp_tokenizer_free(tok);
        return -1;
    }
    *out = tok;
    return 0;
}

int vp_tokenizer_load_model_file(const char *path, vp_tokenizer **out, vp_error *err)
{
    vp_tokenizer *tok;
    *out = NULL;
    if (parse_model(path, &tok, err) != 0)
        return -1;
    return finish(tok, path, out, err);
}

int vp_tokenizer_load(const char *dir, vp_tokenizer **out, vp_error *err)
{
    char path[4096];
    vp_tokenizer *tok;
    *out = NULL;
    if (vp_path_join(path, sizeof path, dir, "tokenizer.model") != 0)
        return vp_fail(err, VP_ERR_IO, NULL, "tokenizer folder path too long: %s", dir);
    if (parse_model(path, &tok, err) != 0)
        return -1;
    if (vp_tok_load_added_tokens(tok, dir, err) != 0) {
        vp_tokenizer_free(tok);
        return -1;
    }
    return finish(tok, dir, out, err);
}

void vp_tokenizer_free(vp_tokenizer *tok)
{
    if (!tok)
        return;
    for (size_t i = 0; i < tok->n_added_owned; i++)
        free(tok->added_owned[i]);
    free(tok->added_owned);
    free(tok->config_bos);
    free(tok->id_text);
    free(tok->id_len);
    free(tok->id_added);
    free(tok->emit_id);
    vp_str_map_free(&tok->text_map);
    vp_str_map_free(&tok->reserved_map);
    vp_str_map_free(&tok->special_map);
    vp_trie_free(&tok->user_defined);
    vp_spm_model_free(&tok->model);
    free(tok);
}

int vp_tokenizer_encode(const vp_tokenizer *tok, const char *text, size_t len, vp_ids *out,
                        vp_error *err)
{
    size_t bad;
    if (len == 0)
        return 0;
    if (!vp_utf8_valid(text, len, &bad))
        return vp_fail(err, VP_ERR_BAD_REQUEST, NULL,
                       "text is not valid UTF-8 (bad byte 0x%02x at byte offset %zu)",
                       (unsigned)(uint8_t)text[bad], bad);
    const vp_spm_model *m = &tok->model;
    size_t spaces = 0;
    if (m->escape_whitespaces)
        for (size_t i = 0; i < len; i++)
            spaces += text[i] == ' ';
    bool prefix = m->add_dummy_prefix;
    size_t n0 = out->n;
    int rc;
    if (!spaces && !prefix) {
        rc = vp_bpe_encode(tok, text, len, out, err);
    } else {
        /* Each space becomes the 3 bytes of U+2581. */
        if (spaces > (SIZE_MAX - len - 3) / 2)
            return vp_fail(err, VP_ERR_TOO_LARGE, NULL, "text of %zu bytes is too long", len);
        size_t cap = len + 2 * spaces + 3;
        char *norm = malloc(cap);
        if (!norm)
            return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory tokenizing %zu bytes", len);
        size_t n = 0;
        if (prefix) {
            if (m->escape_whitespaces) {
                memcpy(norm, kSpaceSymbol, 3);
                n = 3;
            } else {
                norm[n++] = ' ';
            }
        }
        for (size_t i = 0; i < len; i++) {
            if (text[i] == ' ' && m->escape_whitespaces) {
                memcpy(norm + n, kSpaceSymbol, 3);
                n += 3;
            } else {
                norm[n++] = text[i];
            }
        }
        rc = vp_bpe_encode(tok, norm, n, out, err);
        free(norm);
    }
    if (rc != 0)
        out->n = n0; /* nothing half-appended */
    return rc;
}

int32_t vp_tokenizer_special_id(const vp_tokenizer *tok, const char *content)
{
    return vp_str_map_find(&tok->special_map, content, strlen(content));
}

int32_t vp_tokenizer_piece_id(const vp_tokenizer *tok, const char *piece)
{
    size_t len = strlen(piece);
    int32_t id = vp_str_map_find(&tok->reserved_map, piece, len);
    return id >= 0 ? id : vp_str_map_find(&tok->text_map, piece, len);
}

const char *vp_tokenizer_id_to_piece(const vp_tokenizer *tok, int32_t id)
{
    if (id < 0 || (size_t)id >= tok->n_ids)
        return NULL;
    return tok->id_text[id];
}

size_t vp_tokenizer_n_ids(const vp_tokenizer *tok) { return tok->n_ids; }

int32_t vp_tokenizer_bos_id(const vp_tokenizer *tok) { return tok->bos_id; }

int32_t vp_tokenizer_eos_id(const vp_tokenizer *tok) { return tok->eos_id; }

int32_t vp_tokenizer_unk_id(const vp_tokenizer *tok) { return tok->unk_id; }
