/* cpu_forward: runs the fp32 CPU backend on one packed batch read from JSON and prints
 * the logits as JSON, for parity checks against the PyTorch reference.
 *
 *   cpu_forward --model DIR --batch BATCH.json [--tiles TILES.npy] [--threads N]
 *               [--features OUT.npy] [--repeat N]
 *
 * BATCH.json (only "tokens", "plus_id" and "minus_id" are required):
 *   {"tokens": [1, 92543, ...],
 *    "image_row": [-1, -1, 0, 1, ...],      feature row per token, -1 = text (default all -1)
 *    "seqs": [{"start": 0, "len": 20, "prefix_seq": -1, "rope_len": 20}, ...]
 *                                          default: one sequence of every token;
 *                                          prefix_seq default -1, rope_len default prefix+len
 *    "positions": [0, 1, ...],             default: prefix length + index in the sequence
 *    "out_index": [5, 9, ...],             default: every token
 *    "plus_id": 342, "minus_id": 285,
 *    "tiles": "tiles.npy"}                 float32 [n_tiles, 3, S, S] (or use --tiles)
 * Output (stdout): {"device": ..., "n_tokens": N, "n_tiles": T, "vision_ms": ..,
 *   "language_ms": .., "tokens_per_s": .., "out_index": [...], "logits": [[plus, minus], ...]}
 * --features writes the image features [n_tiles * num_image_token, hidden] as .npy.
 * --repeat N runs the forward N times and reports the fastest. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/cpu/cpu.h"
#include "engine/util/npy.h"

typedef struct batch_file {
    vp_batch b;
    int32_t *tokens, *positions, *image_row, *out_index; /* [n_tokens] .. [n_out] */
    vp_seq *seqs;                                       /* [n_seqs] */
    char tiles_path[1024];
} batch_file;

static int die(const char *fmt, const char *a)
{
    fprintf(stderr, "cpu_forward: ");
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    return 1;
}

/* int array field -> heap int32[*n]; absent -> NULL, *n = 0. -1 on a bad value. */
static int int_array(json_t *root, const char *key, int32_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    json_t *a = json_object_get(root, key);
    if (!a)
        return 0;
    if (!json_is_array(a))
        return -1;
    *n = json_array_size(a);
    *out = calloc(*n ? *n : 1, sizeof **out);
    if (!*out)
        return -1;
    for (size_t i = 0; i < *n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v))
            return -1;
        (*out)[i] = (int32_t)json_integer_value(v);
    }
    return 0;
}

static int read_batch(const char *path, batch_file *f)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        fprintf(stderr, "cpu_forward: %s:%d: %s\n", path, jerr.line, jerr.text);
        return -1;
    }
    size_t n = 0, n_pos = 0, n_img = 0, n_out = 0;
    int rc = -1;
    if (int_array(root, "tokens", &f->tokens, &n) || !f->tokens || n == 0) {
        die("%s: \"tokens\" must be a non-empty integer array", path);
        goto done;
    }
    if (int_array(root, "positions", &f->positions, &n_pos) ||
        int_array(root, "image_row", &f->image_row, &n_img) ||
        int_array(root, "out_index", &f->out_index, &n_out)) {
        die("%s: positions, image_row and out_index must be integer arrays", path);
        goto done;
    }
    if ((f->positions && n_pos != n) || (f->image_row && n_img != n)) {
        die("%s: positions and image_row need one entry per token", path);
        goto done;
    }
    json_t *plus = json_object_get(root, "plus_id"), *minus = json_object_get(root, "minus_id");
    if (!json_is_integer(plus) || !json_is_integer(minus)) {
        die("%s: plus_id and minus_id (integers) are required", path);
        goto done;
    }
    json_t *seqs = json_object_get(root, "seqs");
    size_t n_seqs = seqs ? json_array_size(seqs) : 1;
    if (seqs && (!json_is_array(seqs) || n_seqs == 0)) {
        die("%s: \"seqs\" must be a non-empty array", path);
        goto done;
    }
    f->seqs = calloc(n_seqs, sizeof *f->seqs);
    if (!f->seqs)
        goto done;
    if (!seqs)
        f->seqs[0] = (vp_seq){0, n, -1, n};
    for (size_t s = 0; seqs && s < n_seqs; s++) {
        json_t *o = json_array_get(seqs, s);
        json_t *st = json_object_get(o, "start"), *ln = json_object_get(o, "len");
        json_t *pr = json_object_get(o, "prefix_seq"), *rl = json_object_get(o, "rope_len");
        if (!json_is_integer(st) || !json_is_integer(ln) || json_integer_value(st) < 0 ||
            json_integer_value(ln) < 0 || (pr && !json_is_integer(pr)) ||
            (rl && !json_is_integer(rl))) {
            die("%s: each seq needs integer start and len (prefix_seq, rope_len optional)", path);
            goto done;
        }
        vp_seq *q = &f->seqs[s];
        q->start = (size_t)json_integer_value(st);
        q->len = (size_t)json_integer_value(ln);
        q->prefix_seq = pr ? (int32_t)json_integer_value(pr) : -1;
        size_t pre = q->prefix_seq >= 0 && (size_t)q->prefix_seq < s ? f->seqs[q->prefix_seq].len : 0;
        q->rope_len = rl ? (size_t)json_integer_value(rl) : pre + q->len;
    }
    if (!f->positions) { /* prefix length + index within the sequence */
        f->positions = calloc(n, sizeof *f->positions);
        if (!f->positions)
            goto done;
        for (size_t s = 0; s < n_seqs; s++) {
            const vp_seq *q = &f->seqs[s];
            size_t pre = q->prefix_seq >= 0 && (size_t)q->prefix_seq < s ? f->seqs[q->prefix_seq].len : 0;
            for (size_t i = 0; i < q->len && q->start + i < n; i++)
                f->positions[q->start + i] = (int32_t)(pre + i);
        }
    }
    if (!f->out_index) {
        n_out = n;
        f->out_index = calloc(n, sizeof *f->out_index);
        if (!f->out_index)
            goto done;
        for (size_t i = 0; i < n; i++)
            f->out_index[i] = (int32_t)i;
    }
    json_t *tiles = json_object_get(root, "tiles");
    if (json_is_string(tiles))
        snprintf(f->tiles_path, sizeof f->tiles_path, "%s", json_string_value(tiles));
    f->b = (vp_batch){.n_tokens = n, .tokens = f->tokens, .positions = f->positions,
                      .image_row = f->image_row, .n_seqs = n_seqs, .seqs = f->seqs,
                      .n_out = n_out, .out_index = f->out_index,
                      .plus_id = (int32_t)json_integer_value(plus),
                      .minus_id = (int32_t)json_integer_value(minus)};
    rc = 0;
done:
    json_decref(root);
    return rc;
}

static void free_batch(batch_file *f)
{
    free(f->tokens);
    free(f->positions);
    free(f->image_row);
    free(f->out_index);
    free(f->seqs);
}

static int usage(void)
{
    fprintf(stderr, "usage: cpu_forward --model DIR --batch BATCH.json [--tiles TILES.npy] "
                    "[--threads N] [--features OUT.npy] [--repeat N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *model_dir = NULL, *batch_path = NULL, *tiles_path = NULL, *features_path = NULL;
    int threads = 0, repeat = 1;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        if (!strcmp(argv[i], "--model"))
            model_dir = v;
        else if (!strcmp(argv[i], "--batch"))
            batch_path = v;
        else if (!strcmp(argv[i], "--tiles"))
            tiles_path = v;
        else if (!strcmp(argv[i], "--features"))
            features_path = v;
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(v);
        else if (!strcmp(argv[i], "--repeat"))
            repeat = atoi(v) > 0 ? atoi(v) : 1;
        else
            return usage();
        i++;
    }
    if (!model_dir || !batch_path)
        return usage();

    batch_file f = {0};
    vp_model *model = NULL;
    vp_backend *be = NULL;
    vp_npy_array tiles = {0};
    float *logits = NULL, *features = NULL;
    vp_error err = {0};
    int rc = 1;
    if (read_batch(batch_path, &f) != 0)
        goto out;
    if (!tiles_path && f.tiles_path[0])
        tiles_path = f.tiles_path;
    if (vp_model_load(model_dir, &model, &err) != 0)
        goto fail;
    const vp_model_config *cfg = vp_model_cfg(model);
    size_t tile_floats = (size_t)cfg->vision.channels * (size_t)cfg->vision.image_size *
                         (size_t)cfg->vision.image_size;
    if (tiles_path) {
        if (vp_npy_read(tiles_path, &tiles, &err) != 0)
            goto fail;
        if (tiles.dtype != VP_NPY_F32 || tiles.count % tile_floats) {
            fprintf(stderr, "cpu_forward: %s must be float32 [n, %d, %d, %d]\n", tiles_path,
                    cfg->vision.channels, cfg->vision.image_size, cfg->vision.image_size);
            goto out;
        }
        f.b.n_tiles = tiles.count / tile_floats;
        f.b.tiles = tiles.data;
    }
    vp_backend_options opt = {.threads = threads};
    if (vp_backend_cpu.init(&be, model, &opt, &err) != 0)
        goto fail;
    logits = calloc(f.b.n_out ? 2 * f.b.n_out : 1, sizeof *logits);
    if (!logits)
        goto out;
    vp_forward_stats best = {0};
    for (int r = 0; r < repeat; r++) {
        vp_forward_stats st;
        if (vp_backend_cpu.forward(be, &f.b, logits, &st, &err) != 0)
            goto fail;
        if (r == 0 || st.vision_ms + st.language_ms < best.vision_ms + best.language_ms)
            best = st;
    }
    if (features_path && f.b.n_tiles) {
        size_t rows = f.b.n_tiles * (size_t)cfg->num_image_token, h = (size_t)cfg->llm.hidden;
        features = calloc(rows * h, sizeof *features);
        size_t shape[2] = {rows, h};
        if (!features || vp_cpu_vision(be, f.b.tiles, f.b.n_tiles, features, &err) != 0 ||
            vp_npy_write(features_path, VP_NPY_F32, shape, 2, features, &err) != 0)
            goto fail;
    }
    printf("{\"device\": \"%s\", \"n_tokens\": %zu, \"n_tiles\": %zu, \"vision_ms\": %.3f, "
           "\"language_ms\": %.3f, \"tokens_per_s\": %.1f,\n \"out_index\": [",
           vp_backend_cpu.device_name(be), f.b.n_tokens, f.b.n_tiles, best.vision_ms,
           best.language_ms,
           best.language_ms > 0 ? (double)f.b.n_tokens / (best.language_ms / 1e3) : 0.0);
    for (size_t i = 0; i < f.b.n_out; i++)
        printf("%s%d", i ? ", " : "", f.b.out_index[i]);
    printf("],\n \"logits\": [");
    for (size_t i = 0; i < f.b.n_out; i++)
        printf("%s[%.9g, %.9g]", i ? ",\n  " : "", logits[2 * i], logits[2 * i + 1]);
    printf("]}\n");
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "cpu_forward: %s%s%s\n", err.param[0] ? err.param : "",
            err.param[0] ? ": " : "", err.message);
out:
    free(logits);
    free(features);
    if (be)
        vp_backend_cpu.free(be);
    vp_npy_free(&tiles);
    vp_model_free(model);
    free_batch(&f);
    return rc;
}
