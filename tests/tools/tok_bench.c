/* Tokenizer throughput on realistic text.
 *   tok_bench DIR [MB]
 * DIR: a tokenizer folder (tokenizer.model + tokenizer_config.json), e.g.
 * $SHARED/tokenizer/internlm2. Generates MB (default 4) of deterministic math-solution
 * text (English with LaTeX, numbers, some CJK), encodes it in request-sized pieces
 * (one solution step each, as the prompt builder does) and prints MB/s; then 1 MB of
 * one repeated character and 1 MB without spaces (the merge queue's worst cases).
 * Times are CPU time of this process (steady on a shared machine). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/tokenizer/tokenizer.h"

static unsigned rng_state = 20240611u;
static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 16) % n;
}

static const char *const kOpeners[] = {"First, we", "Next, we", "Then we", "Now we", "So we",
                                       "Therefore, we", "To solve this, we", "Let us", "We can"};
static const char *const kActions[] = {"compute", "substitute", "simplify", "note that",
                                       "apply the Pythagorean theorem to", "factor", "expand",
                                       "multiply both sides by", "use the formula for"};
static const char *const kSubjects[] = {"the area of the triangle", "the radius", "the slope",
                                        "the probability", "the sum of the series",
                                        "the angle $\\angle ABC$", "the perimeter", "the volume"};
static const char *const kLatex[] = {"$\\frac{%d}{%d}$", "$\\sqrt{%d}$", "$x^{%d} + %d$",
                                     "$\\pi r^2 = %d\\pi$", "$\\sin %d^\\circ$",
                                     "$\\sum_{i=1}^{%d} i = %d$", "$%d \\times %d$",
                                     "$\\boxed{%d}$", "\\[ \\int_0^{%d} x\\,dx = %d \\]",
                                     "$\\left( a + %d \\right)^2$"};
static const char *const kCjk[] = {"因此，三角形的面积是", "解：设未知数为", "所以答案为",
                                   "根据勾股定理，", "由题意可知，"};

/* Appends one solution step (a few sentences) to buf; returns its length. */
static size_t make_step(char *buf, size_t cap)
{
    size_t n = 0;
    int sentences = 1 + (int)rnd(5);
    n += (size_t)snprintf(buf + n, cap - n, "Step %u: ", 1 + rnd(12));
    for (int s = 0; s < sentences && n + 256 < cap; s++) {
        char math[128];
        snprintf(math, sizeof math, kLatex[rnd(10)], (int)rnd(1000), (int)rnd(1000) + 1);
        if (rnd(8) == 0)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s %u。", kCjk[rnd(5)], math, rnd(100));
        else
            n += (size_t)snprintf(buf + n, cap - n, "%s %s %s, which gives %s = %u.%s",
                                  kOpeners[rnd(9)], kActions[rnd(9)], kSubjects[rnd(8)], math,
                                  rnd(100000), rnd(3) ? " " : "\n");
    }
    return n;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: the machine is shared */
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench_one(const vp_tokenizer *tok, const char *label, const char *text, size_t len)
{
    vp_ids ids = {0};
    vp_error err;
    double t0 = now();
    if (vp_tokenizer_encode(tok, text, len, &ids, &err) != 0) {
        fprintf(stderr, "tok_bench: %s\n", err.message);
        return 1;
    }
    double dt = now() - t0;
    printf("%-28s %8.2f MB/s  (%zu bytes, %zu tokens, %.3f s)\n", label, len / dt / 1e6, len,
           ids.n, dt);
    vp_ids_free(&ids);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TOKENIZER_DIR [MB]\n", argv[0]);
        return 2;
    }
    double mb = argc > 2 ? atof(argv[2]) : 4.0;
    size_t total = (size_t)(mb * 1e6);
    vp_tokenizer *tok;
    vp_error err;
    double t0 = now();
    if (vp_tokenizer_load(argv[1], &tok, &err) != 0) {
        fprintf(stderr, "tok_bench: %s\n", err.message);
        return 1;
    }
    printf("load: %.3f s (%zu ids)\n", now() - t0, vp_tokenizer_n_ids(tok));

    /* Realistic text, encoded step by step. */
    char *text = malloc(total + 4096);
    size_t *starts = malloc((total / 16 + 2) * sizeof *starts);
    size_t len = 0, n_steps = 0;
    while (len < total) {
        starts[n_steps++] = len;
        len += make_step(text + len, total + 4096 - len);
    }
    starts[n_steps] = len;
    vp_ids ids = {0};
    size_t tokens = 0;
    t0 = now();
    for (size_t i = 0; i < n_steps; i++) {
        ids.n = 0;
        if (vp_tokenizer_encode(tok, text + starts[i], starts[i + 1] - starts[i], &ids, &err)) {
            fprintf(stderr, "tok_bench: %s\n", err.message);
            return 1;
        }
        tokens += ids.n;
    }
    double dt = now() - t0;
    printf("%-28s %8.2f MB/s  (%zu bytes in %zu steps, %zu tokens, %.3f s)\n",
           "math solutions (per step)", len / dt / 1e6, len, n_steps, tokens, dt);
    vp_ids_free(&ids);
    int rc = bench_one(tok, "math solutions (one string)", text, len);

    size_t big = 1 << 20;
    char *s = malloc(big);
    memset(s, 'a', big);
    rc |= bench_one(tok, "1 MB of 'a'", s, big);
    size_t k = 0, i = 0;
    for (; i < len && k + 4 < big; i++)
        if (text[i] != ' ')
            s[k++] = text[i];
    while (i < len && ((unsigned char)text[i] & 0xC0) == 0x80) /* end on a whole character */
        s[k++] = text[i++];
    rc |= bench_one(tok, "1 MB without spaces", s, k);
    free(s);
    free(text);
    free(starts);
    vp_tokenizer_free(tok);
    return rc;
}
