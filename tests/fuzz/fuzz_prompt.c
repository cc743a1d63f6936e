/* Question, steps and images -> vp_prompt_build with the real InternLM2 tokenizer
 * ($SHARED/tokenizer/internlm2, loaded once) and a custom system message.
 * Input: byte 0 picks the image count (bit 7 set: (b0 & 3) images, which may not match
 * the question's placeholders; clear: as many images as "<image>" placeholders, or
 * (b0 & 3) images when there are none), byte 1 seeds the tiles of each image (1..13,
 * the range max_tiles 12 plus a thumbnail gives), the rest is the question and then up
 * to MAX_STEPS steps, separated by 0x1e (the last step keeps any further 0x1e).
 * Promises:
 * - vp_prompt_count_placeholders agrees with a plain count of "<image>";
 * - the build fails exactly when there is no step, the question has placeholders but
 *   not as many as images, or the question or a step is not valid UTF-8 (own check);
 *   a failure is VP_ERR_BAD_REQUEST with a message;
 * - on success: ids in [0, n_ids), BOS first; the only special ids are the template's
 *   (one BOS, 1 + 2 * steps of <|im_start|> and of <|im_end|>) and the images': image k
 *   is <img>, exactly tiles[k] * num_image_token <IMG_CONTEXT>, </img>, in order, and no
 *   <IMG_CONTEXT> elsewhere, whatever special-token text the question or steps spell;
 * - one score position per step, strictly increasing, each inside the k-th assistant
 *   turn: the ids from its <|im_start|> to position + 1 spell "assistant\n+", the id
 *   after the position is '+' and the next one <|im_end|>;
 * - the pieces of all ids (special tokens as their text, byte pieces <0xXX> as that
 *   byte) spell the prompt MODEL.md section 1 defines, written out here from the spec
 *   (internvl2_5 template, "<image>\n" or "Image-k: <image>\n" lines when the question
 *   has no placeholder, each <image> of the question as <img><IMG_CONTEXT>x n</img>),
 *   with ' ' as U+2581 (the model's escape_whitespaces; the target requires
 *   add_dummy_prefix off, as InternLM2 has it, since each chunk is encoded alone).
 * Placeholders count only in the question (prompt.h): "<image>" in a step is text.
 * num_image_token is 3, not InternVL's 256, so that long runs stay cheap to check. */
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "engine/prompt/prompt.h"
#include "engine/tokenizer/spm_proto.h"
#include "engine/util/file.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_real_tokenizer.h"

#define NUM_IMAGE_TOKEN 3
#define MAX_STEPS 8

/* Spaces, a double space and newlines, which the template must keep as they are. */
static const char SYSTEM[] = "You check  solutions.\nAnswer + or - only. ";

static vp_tokenizer *g_tok;
static vp_spm_model g_m;
static vp_prompt_ctx g_p;
static size_t g_n_ids;
static uint8_t *g_special; /* [g_n_ids] control, unknown or added token */
static int16_t *g_byte_of; /* [g_n_ids] byte of a byte piece, else -1 */
static int32_t g_plus;

static void puts_(fuzz_buf *b, const char *s) { fuzz_put(b, s, strlen(s)); }

static void must_init(bool ok, const char *what, const char *detail)
{
    if (!ok) {
        fprintf(stderr, "fuzz_prompt: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    vp_error err = {0};
    fuzz_load_real_tokenizer(&g_tok, &g_m);
    must_init(!g_m.add_dummy_prefix,
              "the expected prompt assumes add_dummy_prefix=false (InternLM2's)", NULL);
    must_init(vp_prompt_init(&g_p, g_tok, SYSTEM, NUM_IMAGE_TOKEN, &err) == 0,
              "vp_prompt_init failed", err.message);
    g_plus = vp_tokenizer_piece_id(g_tok, "+");
    fuzz_id_tables(g_tok, &g_n_ids, &g_special, &g_byte_of);
    return 0;
}

/* The text of ids[from, to): byte pieces as their byte, special tokens as their text,
 * other pieces as tokenizer.model spells them (which may hold a NUL byte). */
static void decode(const int32_t *ids, size_t from, size_t to, fuzz_buf *out)
{
    for (size_t k = from; k < to; k++) {
        int32_t id = ids[k];
        if (g_byte_of[id] >= 0) {
            char c = (char)g_byte_of[id];
            fuzz_put(out, &c, 1);
        } else if (g_special[id] || (size_t)id >= g_m.n_pieces) {
            puts_(out, vp_tokenizer_id_to_piece(g_tok, id));
        } else {
            fuzz_put(out, g_m.text[id], g_m.len[id]);
        }
    }
}

static const char IMAGE[] = "<image>";
#define IMAGE_LEN (sizeof IMAGE - 1)

static size_t count_images(const char *s, size_t n)
{
    size_t c = 0;
    for (const char *p = s, *end = s + n;
         (p = memmem(p, (size_t)(end - p), IMAGE, IMAGE_LEN)) != NULL; p += IMAGE_LEN)
        c++;
    return c;
}

/* The prompt of MODEL.md section 1, with ' ' escaped as the model does. */
static void expected_prompt(const vp_text *q, size_t placeholders, const int *tiles,
                            size_t n_images, const vp_text *steps, size_t n_steps, fuzz_buf *out)
{
    fuzz_buf raw = {0}, question = {0};
    if (!placeholders && n_images == 1) {
        puts_(&question, "<image>\n");
    } else if (!placeholders) {
        for (size_t k = 0; k < n_images; k++) {
            char line[48];
            snprintf(line, sizeof line, "Image-%zu: <image>\n", k + 1);
            puts_(&question, line);
        }
    }
    fuzz_put(&question, q->s, q->len);

    puts_(&raw, "<s><|im_start|>system\n");
    puts_(&raw, SYSTEM);
    puts_(&raw, "<|im_end|>\n");
    for (size_t k = 0; k < n_steps; k++) {
        puts_(&raw, "<|im_start|>user\n");
        if (k == 0) {
            puts_(&raw, "### Question:\n");
            size_t img = 0;
            const char *p = (const char *)question.p, *end = p + question.n, *hit;
            while ((hit = memmem(p, (size_t)(end - p), IMAGE, IMAGE_LEN)) != NULL) {
                fuzz_put(&raw, p, (size_t)(hit - p));
                puts_(&raw, "<img>");
                for (int t = 0; t < tiles[img] * NUM_IMAGE_TOKEN; t++)
                    puts_(&raw, "<IMG_CONTEXT>");
                puts_(&raw, "</img>");
                img++;
                p = hit + IMAGE_LEN;
            }
            fuzz_put(&raw, p, (size_t)(end - p));
            puts_(&raw, "\n\n### Solution Process:\n");
        }
        fuzz_put(&raw, steps[k].s, steps[k].len);
        puts_(&raw, "<|im_end|>\n<|im_start|>assistant\n+<|im_end|>\n");
    }
    for (size_t i = 0; i < raw.n; i++) {
        if (raw.p[i] == ' ' && g_m.escape_whitespaces)
            puts_(out, "\xe2\x96\x81");
        else
            fuzz_put(out, &raw.p[i], 1);
    }
    free(raw.p);
    free(question.p);
}

static vp_text text_copy(const uint8_t *s, size_t n)
{
    vp_text t = {malloc(n + 1), n};
    FUZZ_REQUIRE(t.s, "out of memory");
    if (n)
        memcpy(t.s, s, n);
    t.s[n] = '\0'; /* vp_text is NUL-terminated (proto/request.h) */
    return t;
}

static void check_success(const vp_ids *ids, const vp_ids *pos, const vp_text *q,
                          size_t placeholders, const int *tiles, size_t n_images,
                          const vp_text *steps, size_t n_steps)
{
    const vp_prompt_ctx *p = &g_p;
    const int32_t *v = ids->v;
    size_t n = ids->n;
    FUZZ_REQUIRE(n >= 1 && v[0] == p->bos, "the prompt does not start with BOS");
    size_t *turn = malloc((2 * n_steps + 1) * sizeof *turn); /* <|im_start|> positions */
    size_t n_turn = 0, n_end = 0, img = 0;
    FUZZ_REQUIRE(turn, "out of memory");
    for (size_t k = 0; k < n; k++) {
        int32_t id = v[k];
        FUZZ_REQUIRE(id >= 0 && (size_t)id < g_n_ids, "id %d at %zu out of range", (int)id, k);
        if (!g_special[id])
            continue;
        if (id == p->bos) {
            FUZZ_REQUIRE(k == 0, "BOS at %zu", k);
        } else if (id == p->im_start) {
            FUZZ_REQUIRE(n_turn < 2 * n_steps + 1, "more than %zu <|im_start|>", 2 * n_steps + 1);
            turn[n_turn++] = k;
        } else if (id == p->im_end) {
            n_end++;
        } else if (id == p->img_start) {
            FUZZ_REQUIRE(img < n_images, "more than %zu images", n_images);
            size_t run = (size_t)tiles[img] * NUM_IMAGE_TOKEN, i = k + 1;
            while (i < n && v[i] == p->img_context)
                i++;
            FUZZ_REQUIRE(i - k - 1 == run && i < n && v[i] == p->img_end,
                         "image %zu: %zu <IMG_CONTEXT> for %d tiles, then id %d", img,
                         i - k - 1, tiles[img], i < n ? (int)v[i] : -1);
            img++;
            k = i; /* past </img> */
        } else {
            FUZZ_REQUIRE(false, "special id %d '%s' at %zu is not the template's", (int)id,
                         vp_tokenizer_id_to_piece(g_tok, id), k);
        }
    }
    FUZZ_REQUIRE(img == n_images, "%zu of %zu images", img, n_images);
    FUZZ_REQUIRE(n_turn == 2 * n_steps + 1 && n_end == n_turn, "%zu <|im_start|>, %zu <|im_end|>",
                 n_turn, n_end);

    FUZZ_REQUIRE(pos->n == n_steps, "%zu score positions for %zu steps", pos->n, n_steps);
    fuzz_buf t = {0};
    for (size_t k = 0; k < n_steps; k++) {
        int32_t at = pos->v[k];
        size_t start = turn[2 + 2 * k];
        FUZZ_REQUIRE(at > 0 && (k == 0 || at > pos->v[k - 1]) && (size_t)at + 2 < n,
                     "score position %d (step %zu)", (int)at, k);
        FUZZ_REQUIRE(v[at + 1] == g_plus && v[at + 2] == p->im_end && start < (size_t)at,
                     "score position %d (step %zu) is not before the turn's '+'", (int)at, k);
        t.n = 0;
        decode(v, start + 1, (size_t)at + 2, &t);
        FUZZ_REQUIRE(t.n == 11 && !memcmp(t.p, "assistant\n+", 11),
                     "score position %d (step %zu) is not in an assistant turn", (int)at, k);
    }
    free(t.p);
    free(turn);

    fuzz_buf want = {0}, got = {0};
    expected_prompt(q, placeholders, tiles, n_images, steps, n_steps, &want);
    decode(v, 0, n, &got);
    size_t i = 0;
    while (i < want.n && i < got.n && want.p[i] == got.p[i])
        i++;
    FUZZ_REQUIRE(i == want.n && i == got.n,
                 "the ids spell %zu bytes, MODEL.md's prompt is %zu; first difference at %zu",
                 got.n, want.n, i);
    free(want.p);
    free(got.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0], seed = data[1];
    const uint8_t *s = data + 2, *end = data + size;

    /* question, then steps, cut at 0x1e */
    vp_text q, steps[MAX_STEPS];
    size_t n_steps = 0;
    const uint8_t *cut = memchr(s, 0x1e, (size_t)(end - s));
    q = text_copy(s, cut ? (size_t)(cut - s) : (size_t)(end - s));
    while (cut) {
        s = cut + 1;
        cut = n_steps + 1 < MAX_STEPS ? memchr(s, 0x1e, (size_t)(end - s)) : NULL;
        steps[n_steps++] = text_copy(s, cut ? (size_t)(cut - s) : (size_t)(end - s));
    }

    size_t placeholders = vp_prompt_count_placeholders(&q);
    FUZZ_REQUIRE(placeholders == count_images(q.s, q.len), "%zu placeholders, counted %zu",
                 placeholders, count_images(q.s, q.len));
    size_t n_images = (mode & 0x80) || !placeholders ? (size_t)(mode & 3) : placeholders;
    int *tiles = malloc((n_images ? n_images : 1) * sizeof *tiles);
    FUZZ_REQUIRE(tiles, "out of memory");
    for (size_t k = 0; k < n_images; k++)
        tiles[k] = 1 + (int)((seed + 7 * k) % 13);

    bool ok = n_steps > 0 && (!placeholders || placeholders == n_images) &&
              fuzz_utf8_ok((const uint8_t *)q.s, q.len);
    for (size_t k = 0; k < n_steps; k++)
        ok = ok && fuzz_utf8_ok((const uint8_t *)steps[k].s, steps[k].len);

    vp_ids ids = {0}, pos = {0};
    vp_error err = {0};
    int rc = vp_prompt_build(&g_p, &q, tiles, n_images, steps, n_steps, &ids, &pos, &err);
    if (rc != 0) {
        FUZZ_REQUIRE(!ok, "a valid prompt was refused: %s", err.message);
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(err.kind == VP_ERR_BAD_REQUEST, "error kind %d: %s", (int)err.kind,
                     err.message);
    } else {
        FUZZ_REQUIRE(ok, "an invalid prompt was built (%zu steps, %zu placeholders, %zu images)",
                     n_steps, placeholders, n_images);
        check_success(&ids, &pos, &q, placeholders, tiles, n_images, steps, n_steps);
    }
    vp_ids_free(&ids);
    vp_ids_free(&pos);
    free(tiles);
    free(q.s);
    for (size_t k = 0; k < n_steps; k++)
        free(steps[k].s);
    return 0;
}
