/* The standard workloads of PERF.md as seeded request bodies:
 *   W1 BoN-8: one 896x672 PNG (12 tiles + thumbnail), ~40-token question, 8 responses
 *             of 6 steps of ~50 tokens
 *   W2 text-only: W1 without the image
 *   W3 RL load: one image of random size (1 to 13 tiles), 4..16 responses of 2..12 steps
 *   W4 repeat: W1's image and question every time, new responses per request */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/bench/bench.h"

uint64_t vp_rng_next(vp_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t vp_rng_range(vp_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + vp_rng_next(r) % (hi - lo + 1);
}

char *vp_data_url(const char *mime, const uint8_t *data, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t head = strlen(mime) + 13; /* "data:" mime ";base64," */
    char *s = malloc(head + (len + 2) / 3 * 4 + 1);
    if (!s)
        return NULL;
    size_t o = (size_t)sprintf(s, "data:%s;base64,", mime);
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        s[o++] = tbl[v >> 18];
        s[o++] = tbl[v >> 12 & 63];
        s[o++] = tbl[v >> 6 & 63];
        s[o++] = tbl[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
        s[o++] = tbl[v >> 18];
        s[o++] = tbl[v >> 12 & 63];
        s[o++] = i + 1 < len ? tbl[v >> 6 & 63] : '=';
        s[o++] = '=';
    }
    s[o] = 0;
    return s;
}

static const char *words[] = {
    "the",    "angle",   "triangle", "is",      "equal",  "to",      "sum",     "of",
    "side",   "length",  "area",     "we",      "find",   "so",      "then",    "therefore",
    "circle", "radius",  "degrees",  "measure", "line",   "parallel", "since",  "because",
    "value",  "x",       "y",        "plus",    "minus",  "times",   "divided", "by",
    "square", "root",    "point",    "graph",   "slope",  "answer",  "step",    "compute",
    "given",  "figure",  "shows",    "label",   "height", "width",   "number",  "total",
};
#define N_WORDS (sizeof words / sizeof words[0])

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->n + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static void put_words(sbuf *b, vp_rng *r, size_t n, int with_numbers)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            puts_(b, " ");
        if (with_numbers && vp_rng_range(r, 0, 5) == 0) {
            char num[24];
            snprintf(num, sizeof num, "%llu", (unsigned long long)vp_rng_range(r, 0, 360));
            puts_(b, num);
        } else {
            puts_(b, words[vp_rng_next(r) % N_WORDS]);
        }
    }
}

int vp_workload_parse(const char *name, vp_workload *out)
{
    static const char *names[] = {"W1", "W2", "W3", "W4"};
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(name, names[i])) {
            *out = (vp_workload)(i + 1);
            return 0;
        }
    return -1;
}

void vp_workload_request_free(vp_workload_request *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

int vp_workload_make(const vp_workload_opts *o, uint64_t index, vp_workload_request *out,
                     vp_error *err)
{
    memset(out, 0, sizeof *out);
    /* W4 keeps request 0's image and question; everything else varies with the index */
    uint64_t shared_index = o->kind == VP_W4 ? 0 : index;
    vp_rng head = {o->seed * 1000003ull + shared_index * 7919ull + (uint64_t)o->kind};
    vp_rng tail = {o->seed * 1000003ull + index * 7919ull + (uint64_t)o->kind + 0x5bd1e995ull};
    size_t wps = o->words_per_step ? o->words_per_step : 35;
    uint32_t cap = o->max_image_side ? o->max_image_side : 1792;

    uint32_t w = 0, h = 0;
    size_t n_resp = 8, n_steps_lo = 6, n_steps_hi = 6;
    if (o->kind == VP_W1 || o->kind == VP_W4) {
        w = 896;
        h = 672;
    } else if (o->kind == VP_W3) {
        /* 448..1792 per side: grids of 1 to 12 tiles (+ thumbnail when > 1) */
        w = (uint32_t)vp_rng_range(&head, 448, 1792);
        h = (uint32_t)vp_rng_range(&head, 448, 1792);
        n_resp = (size_t)vp_rng_range(&tail, 4, 16);
        n_steps_lo = 2;
        n_steps_hi = 12;
    }
    if (o->cap_responses && n_resp > o->cap_responses)
        n_resp = o->cap_responses;
    if (o->cap_steps && n_steps_hi > o->cap_steps)
        n_steps_hi = o->cap_steps;
    if (n_steps_lo > n_steps_hi)
        n_steps_lo = n_steps_hi;
    if (w > cap || h > cap) { /* keep the aspect ratio */
        double f = (double)cap / (double)(w > h ? w : h);
        w = (uint32_t)(w * f);
        h = (uint32_t)(h * f);
        if (w < 16)
            w = 16;
        if (h < 16)
            h = 16;
    }

    sbuf b = {0};
    puts_(&b, "{\"question\": \"");
    put_words(&b, &head, 28, 1);
    puts_(&b, "?\"");
    if (w) {
        uint8_t *png;
        size_t png_len;
        if (vp_png_random(w, h, head.s, &png, &png_len, err)) {
            free(b.p);
            return -1;
        }
        char *url = vp_data_url("image/png", png, png_len);
        free(png);
        if (!url) {
            free(b.p);
            return vp_fail(err, VP_ERR_NOMEM, "", "out of memory");
        }
        puts_(&b, ", \"image\": \"");
        puts_(&b, url);
        puts_(&b, "\"");
        free(url);
        out->width = w;
        out->height = h;
    }
    puts_(&b, ", \"responses\": [");
    /* each response's text in b and its steps, for the repeats */
    size_t *from = calloc(n_resp, sizeof *from), *to = calloc(n_resp, sizeof *to);
    size_t *steps_of = calloc(n_resp, sizeof *steps_of);
    if (!from || !to || !steps_of)
        b.oom = 1;
    for (size_t i = 0; i < n_resp && !b.oom; i++) {
        puts_(&b, i ? ", \"" : "\"");
        size_t copy = SIZE_MAX; /* the earlier response it repeats, if any */
        if (i && o->repeat_percent > 0 && (int)vp_rng_range(&tail, 0, 99) < o->repeat_percent)
            copy = (size_t)vp_rng_range(&tail, 0, i - 1);
        from[i] = b.n;
        if (copy != SIZE_MAX) { /* via a copy: put may move b.p */
            size_t len = to[copy] - from[copy];
            char *text = malloc(len ? len : 1);
            if (!text) {
                b.oom = 1;
                break;
            }
            memcpy(text, b.p + from[copy], len);
            put(&b, text, len);
            free(text);
            steps_of[i] = steps_of[copy];
        } else {
            steps_of[i] = (size_t)vp_rng_range(&tail, n_steps_lo, n_steps_hi);
            for (size_t k = 0; k < steps_of[i]; k++) {
                if (k)
                    puts_(&b, "\\n\\n");
                put_words(&b, &tail, wps, 1);
                puts_(&b, ".");
            }
        }
        to[i] = b.n;
        puts_(&b, "\"");
        out->n_steps += steps_of[i];
    }
    free(from);
    free(to);
    free(steps_of);
    puts_(&b, "]");
    if (o->max_tiles > 0) {
        char mt[48];
        snprintf(mt, sizeof mt, ", \"max_tiles\": %d", o->max_tiles);
        puts_(&b, mt);
    }
    if (o->priority) { /* a name the caller checked (vp_priority_parse) */
        puts_(&b, ", \"priority\": \"");
        puts_(&b, o->priority);
        puts_(&b, "\"");
    }
    puts_(&b, "}");
    if (b.oom) {
        free(b.p);
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory");
    }
    out->body = b.p;
    out->len = b.n;
    out->n_responses = n_resp;
    return 0;
}
