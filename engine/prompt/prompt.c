#include "engine/prompt/prompt.h"

#include "engine/image/image.h" /* VP_TILING_MAX_NUM */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char VP_PRM_SYSTEM_PROMPT[] =
    "You are an advanced AI assistant, designed to serve as a process supervision model. "
    "In this task, I will provide a problem statement followed by the first step of the "
    "solution process. For each subsequent turn, I will give you a new step in the solution. "
    "Your role is to assess whether the solution process is correct up to the current step.\n"
    "\n"
    "- In the **first round**, I will input the problem and the first step of the solution "
    "process.\n"
    "- In **each subsequent round**, I will provide the next step in the solution.\n"
    "\n"
    "For each step, you should:\n"
    "\n"
    "- Respond with **\"+\"** if you believe the solution process is correct up to this step.\n"
    "- Respond with **\"-\"** if you detect any issues or errors in the process up to this step.\n"
    "\n"
    "Please note:\n"
    "- Only respond with **\"+\"** or **\"-\"**. Do not provide any additional explanations, "
    "comments, or justifications.\n"
    "\n"
    "Your task is to verify the accuracy and correctness of each step in the given solution "
    "process.";

static const char IMAGE_PLACEHOLDER[] = "<image>";

/* A growable byte buffer for composing one text chunk. */
typedef struct text_buf {
    char *s;
    size_t n, cap;
} text_buf;

static int buf_add(text_buf *b, const char *s, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns)
            return -1;
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = 0;
    return 0;
}

static int buf_adds(text_buf *b, const char *s) { return buf_add(b, s, strlen(s)); }

static int32_t need_special(const vp_tokenizer *tok, const char *name, vp_error *err)
{
    int32_t id = vp_tokenizer_special_id(tok, name);
    if (id < 0)
        vp_fail(err, VP_ERR_MODEL, NULL, "the tokenizer has no special token %s", name);
    return id;
}

int vp_prompt_init(vp_prompt_ctx *p, const vp_tokenizer *tok, const char *system_message,
                   int num_image_token, vp_error *err)
{
    memset(p, 0, sizeof *p);
    p->tok = tok;
    p->num_image_token = num_image_token;
    p->bos = vp_tokenizer_bos_id(tok);
    if (p->bos < 0)
        return vp_fail(err, VP_ERR_MODEL, NULL, "the tokenizer has no BOS token");
    if ((p->im_start = need_special(tok, "<|im_start|>", err)) < 0 ||
        (p->im_end = need_special(tok, "<|im_end|>", err)) < 0 ||
        (p->img_start = need_special(tok, "<img>", err)) < 0 ||
        (p->img_end = need_special(tok, "</img>", err)) < 0 ||
        (p->img_context = need_special(tok, "<IMG_CONTEXT>", err)) < 0)
        return -1;
    p->plus = vp_tokenizer_piece_id(tok, "+");
    p->minus = vp_tokenizer_piece_id(tok, "-");
    if (p->plus < 0 || p->minus < 0)
        return vp_fail(err, VP_ERR_MODEL, NULL, "the tokenizer has no single '+' or '-' piece");

    const char *sys = system_message ? system_message : VP_PRM_SYSTEM_PROMPT;
    text_buf b = {0};
    if (buf_adds(&b, "system\n") || buf_adds(&b, sys)) {
        free(b.s);
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    }
    int rc = vp_tokenizer_encode(tok, b.s, b.n, &p->system_chunk, err);
    free(b.s);
    if (rc || vp_tokenizer_encode(tok, "\n", 1, &p->newline_chunk, err) ||
        vp_tokenizer_encode(tok, "assistant\n+", 11, &p->assistant_chunk, err)) {
        vp_prompt_free(p);
        return -1;
    }
    /* The score position is the token before "+" in "assistant\n+"; the tokenizer must
     * give "+" its own token there, or no position predicts it. */
    if (p->assistant_chunk.n < 2 || p->assistant_chunk.v[p->assistant_chunk.n - 1] != p->plus) {
        vp_prompt_free(p);
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "the tokenizer does not encode \"assistant\\n+\" with a separate '+' token");
    }
    return 0;
}

void vp_prompt_free(vp_prompt_ctx *p)
{
    vp_ids_free(&p->system_chunk);
    vp_ids_free(&p->newline_chunk);
    vp_ids_free(&p->assistant_chunk);
}

size_t vp_prompt_count_placeholders(const vp_text *q)
{
    size_t n = 0, plen = sizeof IMAGE_PLACEHOLDER - 1;
    for (size_t i = 0; i + plen <= q->len; i++)
        if (!memcmp(q->s + i, IMAGE_PLACEHOLDER, plen)) {
            n++;
            i += plen - 1;
        }
    return n;
}

/* Encodes the pending text of b (if any) and empties it. */
static int flush_text(const vp_prompt_ctx *p, text_buf *b, vp_ids *ids, vp_error *err)
{
    if (b->n == 0)
        return 0;
    int rc = vp_tokenizer_encode(p->tok, b->s, b->n, ids, err);
    b->n = 0;
    return rc;
}

static int push_image(const vp_prompt_ctx *p, int tiles, vp_ids *ids)
{
    size_t n = (size_t)tiles * (size_t)p->num_image_token;
    if (vp_ids_push(ids, p->img_start) || vp_ids_reserve(ids, ids->n + n + 1))
        return -1;
    for (size_t i = 0; i < n; i++)
        ids->v[ids->n++] = p->img_context;
    return vp_ids_push(ids, p->img_end);
}

/* The first user turn: "user\n### Question:\n" + question (with its images) +
 * "\n\n### Solution Process:\n" + first step. */
static int build_first_turn(const vp_prompt_ctx *p, const vp_text *q, const int *tiles,
                            size_t n_images, const vp_text *step0, text_buf *b, vp_ids *ids,
                            vp_error *err)
{
    size_t placeholders = vp_prompt_count_placeholders(q);
    if (placeholders && placeholders != n_images)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "question",
                       "the question has %zu <image> placeholders but %zu images were given",
                       placeholders, n_images);
    if (buf_adds(b, "user\n### Question:\n"))
        return -1;
    size_t img = 0;
    if (!placeholders && n_images) {
        /* no placeholder: one "<image>\n" line, or "Image-k: <image>\n" per image */
        for (; img < n_images; img++) {
            if (n_images > 1) {
                char label[32];
                snprintf(label, sizeof label, "Image-%zu: ", img + 1);
                if (buf_adds(b, label))
                    return -1;
            }
            if (flush_text(p, b, ids, err) || push_image(p, tiles[img], ids) || buf_adds(b, "\n"))
                return -1;
        }
    }
    size_t plen = sizeof IMAGE_PLACEHOLDER - 1, start = 0;
    for (size_t i = 0; placeholders && i + plen <= q->len; i++) {
        if (memcmp(q->s + i, IMAGE_PLACEHOLDER, plen))
            continue;
        if (buf_add(b, q->s + start, i - start) || flush_text(p, b, ids, err) ||
            push_image(p, tiles[img++], ids))
            return -1;
        i += plen - 1;
        start = i + 1;
    }
    if (buf_add(b, q->s + start, q->len - start) || buf_adds(b, "\n\n### Solution Process:\n") ||
        buf_add(b, step0->s, step0->len))
        return -1;
    return flush_text(p, b, ids, err);
}

int vp_prompt_build(const vp_prompt_ctx *p, const vp_text *question, const int *tiles_per_image,
                    size_t n_images, const vp_text *steps, size_t n_steps, vp_ids *ids,
                    vp_ids *score_positions, vp_error *err)
{
    if (n_steps == 0)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "responses", "a response has no steps");
    for (size_t i = 0; i < n_images; i++) /* the tiler's counts; anything else is a bug */
        if (tiles_per_image[i] < 1 || tiles_per_image[i] > VP_TILING_MAX_NUM + 1)
            return vp_fail(err, VP_ERR_INTERNAL, "images", "image %zu has %d tiles, outside 1..%d",
                           i, tiles_per_image[i], VP_TILING_MAX_NUM + 1);
    text_buf b = {0};
    int rc = -1;
    vp_error local_err;
    if (!err)
        err = &local_err;
    err->kind = VP_ERR_NONE;
    if (vp_ids_push(ids, p->bos) || vp_ids_push(ids, p->im_start) ||
        vp_ids_append(ids, p->system_chunk.v, p->system_chunk.n) || vp_ids_push(ids, p->im_end) ||
        vp_ids_append(ids, p->newline_chunk.v, p->newline_chunk.n))
        goto out;
    for (size_t k = 0; k < n_steps; k++) {
        if (vp_ids_push(ids, p->im_start))
            goto out;
        if (k == 0) {
            if (build_first_turn(p, question, tiles_per_image, n_images, &steps[0], &b, ids, err))
                goto out;
        } else if (buf_adds(&b, "user\n") || buf_add(&b, steps[k].s, steps[k].len) ||
                   flush_text(p, &b, ids, err)) {
            goto out;
        }
        if (vp_ids_push(ids, p->im_end) ||
            vp_ids_append(ids, p->newline_chunk.v, p->newline_chunk.n) ||
            vp_ids_push(ids, p->im_start) ||
            vp_ids_append(ids, p->assistant_chunk.v, p->assistant_chunk.n) ||
            vp_ids_push(score_positions, (int32_t)(ids->n - 2)) || vp_ids_push(ids, p->im_end) ||
            vp_ids_append(ids, p->newline_chunk.v, p->newline_chunk.n))
            goto out;
    }
    rc = 0;
out:
    free(b.s);
    if (rc && err->kind == VP_ERR_NONE)
        vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory building the prompt");
    return rc;
}
