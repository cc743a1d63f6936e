/* Added tokens of a Hugging Face tokenizer folder:
 *   tokenizer_config.json  "added_tokens_decoder": {"92542": {"content": "<|im_end|>",
 *                          "special": true, ...}, ...}   (and "bos_token")
 *   added_tokens.json      {"<|im_end|>": 92542, ...}    (optional)
 * An added token replaces the text of its id when the id is a piece, and extends the
 * id space when it is not. Both files must agree where they overlap. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/tokenizer/tok_internal.h"
#include "engine/util/file.h"
#include "engine/util/json_alloc.h"

#define MAX_CONFIG_BYTES ((size_t)64 << 20)
#define MAX_ADDED_ID (1 << 24) /* far above any real vocabulary; bounds the id tables */

typedef struct added_token {
    int32_t id;
    const char *content; /* borrowed from the JSON document */
    size_t len;
    bool special;
} added_token;

typedef struct added_list {
    added_token *v; /* [n] */
    size_t n, cap;
} added_list;

static int list_push(added_list *l, const added_token *t)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        added_token *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *t;
    return 0;
}

static int load_json(const char *path, json_t **out, vp_error *err)
{
    uint8_t *data;
    size_t len;
    if (vp_read_file(path, MAX_CONFIG_BYTES, &data, &len, err) != 0)
        return -1;
    json_error_t jerr;
    *out = vp_json_parse((const char *)data, len, 0, &jerr);
    free(data);
    if (!*out && vp_json_oom(&jerr))
        return vp_fail(err, VP_ERR_NOMEM, NULL, "%s: out of memory parsing it", path);
    if (!*out)
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: invalid JSON at line %d: %s", path, jerr.line,
                       jerr.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: top level is not a JSON object", path);
    }
    return 0;
}

/* Decimal id without sign, spaces or leading zeros, below MAX_ADDED_ID; else -1. */
static int32_t parse_id_key(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 8 || (n > 1 && key[0] == '0'))
        return -1;
    int32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (key[i] < '0' || key[i] > '9')
            return -1;
        v = v * 10 + (key[i] - '0');
    }
    return v < MAX_ADDED_ID ? v : -1;
}

static int read_decoder(json_t *dec, const char *path, added_list *list, vp_error *err)
{
    if (!json_is_object(dec))
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: added_tokens_decoder is not an object", path);
    const char *key;
    json_t *val;
    json_object_foreach(dec, key, val) {
        added_token t = {.special = true};
        t.id = parse_id_key(key);
        if (t.id < 0)
            return vp_fail(err, VP_ERR_MODEL, NULL,
                           "%s: added_tokens_decoder key '%s' is not an id below %d", path, key,
                           MAX_ADDED_ID);
        json_t *content = json_object_get(val, "content");
        if (!json_is_string(content) || json_string_length(content) == 0)
            return vp_fail(err, VP_ERR_MODEL, NULL,
                           "%s: added_tokens_decoder[%s].content is not a non-empty string", path,
                           key);
        t.content = json_string_value(content);
        t.len = json_string_length(content);
        json_t *special = json_object_get(val, "special");
        if (special && json_is_false(special))
            t.special = false;
        if (list_push(list, &t) != 0)
            return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory reading %s", path);
    }
    return 0;
}

static int read_added_tokens_json(json_t *root, const char *path, added_list *list,
                                  vp_error *err)
{
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= MAX_ADDED_ID)
            return vp_fail(err, VP_ERR_MODEL, NULL, "%s: id of '%s' is not an integer in [0, %d)",
                           path, key, MAX_ADDED_ID);
        added_token t = {(int32_t)json_integer_value(val), key, strlen(key), true};
        if (t.len == 0)
            return vp_fail(err, VP_ERR_MODEL, NULL, "%s: empty added token", path);
        if (list_push(list, &t) != 0)
            return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory reading %s", path);
    }
    return 0;
}

/* Grows the id tables to n ids (new ids are gaps until an added token fills them). */
static int grow_ids(vp_tokenizer *tok, size_t n)
{
    if (n <= tok->n_ids)
        return 0;
    const char **text = realloc(tok->id_text, n * sizeof *text);
    if (!text)
        return -1;
    tok->id_text = text;
    uint32_t *len = realloc(tok->id_len, n * sizeof *len);
    if (!len)
        return -1;
    tok->id_len = len;
    uint8_t *added = realloc(tok->id_added, n);
    if (!added)
        return -1;
    tok->id_added = added;
    for (size_t i = tok->n_ids; i < n; i++) {
        text[i] = NULL;
        len[i] = 0;
        added[i] = VP_NOT_ADDED;
    }
    tok->n_ids = n;
    return 0;
}

static int apply(vp_tokenizer *tok, const added_list *list, const char *dir, vp_error *err)
{
    size_t n_ids = tok->n_ids;
    for (size_t i = 0; i < list->n; i++)
        if ((size_t)list->v[i].id + 1 > n_ids)
            n_ids = (size_t)list->v[i].id + 1;
    tok->added_owned = calloc(list->n ? list->n : 1, sizeof *tok->added_owned);
    if (!tok->added_owned || grow_ids(tok, n_ids) != 0)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory for added tokens of %s", dir);
    const vp_spm_model *m = &tok->model;
    for (size_t i = 0; i < list->n; i++) {
        const added_token *t = &list->v[i];
        if (t->len > UINT32_MAX / 2)
            return vp_fail(err, VP_ERR_MODEL, NULL, "%s: added token %d is too long", dir,
                           (int)t->id);
        if (tok->id_added[t->id]) {
            /* Declared twice (both files): the same content is fine. */
            if (tok->id_len[t->id] != t->len || memcmp(tok->id_text[t->id], t->content, t->len))
                return vp_fail(err, VP_ERR_MODEL, NULL,
                               "%s: id %d is added as '%s' and as '%s'", dir, (int)t->id,
                               tok->id_text[t->id], t->content);
            if (t->special)
                tok->id_added[t->id] = VP_ADDED_SPECIAL;
            continue;
        }
        char *copy = malloc(t->len + 1);
        if (!copy)
            return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory for added tokens of %s", dir);
        memcpy(copy, t->content, t->len);
        copy[t->len] = 0;
        tok->added_owned[tok->n_added_owned++] = copy;
        bool own_piece = (size_t)t->id < m->n_pieces && m->len[t->id] == t->len &&
                         memcmp(m->text[t->id], t->content, t->len) == 0;
        if ((size_t)t->id < m->n_pieces && !own_piece &&
            (m->type[t->id] == VP_PIECE_BYTE || m->type[t->id] == VP_PIECE_UNKNOWN))
            /* Text can produce these ids (byte fallback, unk), so they cannot mean
             * anything else. */
            return vp_fail(err, VP_ERR_MODEL, NULL,
                           "%s: added token '%s' at id %d would replace the %s piece '%s'", dir,
                           copy, (int)t->id,
                           m->type[t->id] == VP_PIECE_BYTE ? "byte" : "unknown", m->text[t->id]);
        tok->id_text[t->id] = copy;
        tok->id_len[t->id] = (uint32_t)t->len;
        tok->id_added[t->id] = !t->special && own_piece ? VP_ADDED_PLAIN : VP_ADDED_SPECIAL;
    }
    return 0;
}

static int read_bos(json_t *cfg, const char *path, vp_tokenizer *tok, vp_error *err)
{
    json_t *bos = json_object_get(cfg, "bos_token");
    if (json_is_object(bos)) { /* the AddedToken form */
        bos = json_object_get(bos, "content");
        /* without its content the object names no token: not "no bos_token", which
         * would fall back to trainer_spec's BOS without a word */
        if (!json_is_string(bos))
            return vp_fail(err, VP_ERR_MODEL, NULL,
                           "%s: bos_token is an object without a string \"content\"", path);
    }
    if (!bos || json_is_null(bos))
        return 0;
    if (!json_is_string(bos))
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: bos_token is not a string", path);
    tok->config_bos = strdup(json_string_value(bos));
    if (!tok->config_bos)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory reading %s", path);
    return 0;
}

/* MODEL.md's prompt begins with BOS, which vprm always adds; a tokenizer_config.json
 * whose add_bos_token is false would have Hugging Face's tokenizer leave it out, and every
 * score would differ: refused rather than silently scored otherwise. (add_eos_token true
 * appends EOS after the last step's score position: no score depends on it.) */
static int check_add_bos(json_t *cfg, const char *path, vp_error *err)
{
    json_t *v = json_object_get(cfg, "add_bos_token");
    if (!v || json_is_null(v) || json_is_true(v))
        return 0;
    if (!json_is_boolean(v))
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: add_bos_token is not a boolean", path);
    return vp_fail(err, VP_ERR_MODEL, NULL,
                   "%s: add_bos_token is false, but the model's prompt begins with the BOS token "
                   "(MODEL.md), which vprm always adds", path);
}

int vp_tok_load_added_tokens(vp_tokenizer *tok, const char *dir, vp_error *err)
{
    char cfg_path[4096], extra_path[4096];
    if (vp_path_join(cfg_path, sizeof cfg_path, dir, "tokenizer_config.json") != 0 ||
        vp_path_join(extra_path, sizeof extra_path, dir, "added_tokens.json") != 0)
        return vp_fail(err, VP_ERR_IO, NULL, "tokenizer folder path too long: %s", dir);
    json_t *cfg = NULL, *extra = NULL;
    added_list list = {0};
    int rc = load_json(cfg_path, &cfg, err);
    if (rc == 0) {
        json_t *dec = json_object_get(cfg, "added_tokens_decoder");
        if (dec)
            rc = read_decoder(dec, cfg_path, &list, err);
    }
    if (rc == 0)
        rc = read_bos(cfg, cfg_path, tok, err);
    if (rc == 0)
        rc = check_add_bos(cfg, cfg_path, err);
    /* absent is fine; a symlink to nothing is not (a download cut short, as a shard's) */
    struct stat st;
    if (rc == 0 && lstat(extra_path, &st) == 0) {
        if (access(extra_path, R_OK) != 0)
            rc = vp_fail(err, VP_ERR_IO, NULL, "cannot read %s: %s%s", extra_path,
                         strerror(errno), S_ISLNK(st.st_mode) ? " (a symlink to nothing)" : "");
        if (rc == 0)
            rc = load_json(extra_path, &extra, err);
        if (rc == 0)
            rc = read_added_tokens_json(extra, extra_path, &list, err);
    } else if (rc == 0 && errno != ENOENT) {
        rc = vp_fail(err, VP_ERR_IO, NULL, "cannot access %s: %s", extra_path, strerror(errno));
    }
    if (rc == 0)
        rc = apply(tok, &list, dir, err);
    free(list.v);
    if (cfg)
        json_decref(cfg);
    if (extra)
        json_decref(extra);
    return rc;
}
