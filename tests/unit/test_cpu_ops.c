/* Each CPU op against a textbook double-precision implementation written here, on
 * seeded random data; plus: threads and packing never change a bit. */
#include <math.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "tests/unit/cpu_test_util.h"

static double *dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    if (!p)
        exit(2);
    return p;
}

/* ---------------- matmul ---------------- */

static void naive_matmul(double *y, const float *x, const float *w, const float *b, size_t n,
                         size_t in, size_t out)
{
    for (size_t i = 0; i < n; i++)
        for (size_t o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (size_t k = 0; k < in; k++)
                s += (double)x[i * in + k] * w[o * in + k];
            y[i * out + o] = s;
        }
}

static void test_matmul_case(vp_pool *pool, size_t n, size_t in, size_t out, int bias)
{
    float *x = test_random(n * in, 1.0f, 0.1f), *w = test_random(out * in, 1.0f, 0.0f);
    float *b = bias ? test_random(out, 1.0f, 0.0f) : NULL;
    float *y1 = malloc(n * out * sizeof *y1), *yt = malloc(n * out * sizeof *yt);
    double *want = dalloc(n * out);
    naive_matmul(want, x, w, b, n, in, out);
    vp_cpu_matmul(NULL, y1, x, w, b, n, in, out);
    char what[96];
    snprintf(what, sizeof what, "matmul %zux%zu . %zux%zu%s", n, in, out, in, bias ? " + b" : "");
    test_close(what, y1, want, n * out, 1e-5, 1e-5 * sqrt((double)in));
    /* threads give the same bits */
    vp_cpu_matmul(pool, yt, x, w, b, n, in, out);
    CHECK_MSG(!memcmp(y1, yt, n * out * sizeof *y1), "%s: threaded result differs", what);
    /* every element is exactly the dot product (+ bias): blocking changes nothing */
    int exact = 1;
    for (size_t i = 0; i < n; i++)
        for (size_t o = 0; o < out; o++) {
            float d = vp_cpu_dot(x + i * in, w + o * in, in) + (b ? b[o] : 0.0f);
            if (d != y1[i * out + o])
                exact = 0;
        }
    CHECK_MSG(exact, "%s: an element differs from vp_cpu_dot", what);
    /* one row alone (as if packed elsewhere in a batch) gives the same bits */
    if (n > 2) {
        size_t r = n / 2;
        vp_cpu_matmul(pool, yt, x + r * in, w, b, 1, in, out);
        CHECK_MSG(!memcmp(yt, y1 + r * out, out * sizeof *yt), "%s: row %zu alone differs", what, r);
    }
    free(x);
    free(w);
    free(b);
    free(y1);
    free(yt);
    free(want);
}

static void test_matmul(vp_pool *pool)
{
    test_matmul_case(pool, 37, 75, 70, 1);   /* tails everywhere: in % 8, out % 4, blocks */
    test_matmul_case(pool, 20, 300, 130, 0);
    test_matmul_case(pool, 1, 8, 3, 1);
    test_matmul_case(pool, 3, 5, 1, 1);      /* in < 8: tail loop only */
    float a[19], bb[19];
    test_fill(a, 19, 1.0f, 0.0f);
    test_fill(bb, 19, 1.0f, 0.0f);
    double want = 0;
    for (int i = 0; i < 19; i++)
        want += (double)a[i] * bb[i];
    float got = vp_cpu_dot(a, bb, 19);
    test_close("dot n=19", &got, &want, 1, 1e-6, 1e-6);
}

/* ---------------- norms ---------------- */

static void test_norms(void)
{
    size_t n = 5, dim = 67;
    float *x = test_random(n * dim, 2.0f, 3.0f); /* mean far from 0: needs two-pass variance */
    float *w = test_random(dim, 0.5f, 1.0f), *b = test_random(dim, 0.5f, 0.0f);
    float *y = malloc(n * dim * sizeof *y);
    double *want = dalloc(n * dim);
    float eps = 1e-6f;
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        for (size_t i = 0; i < n; i++) {
            double mean = 0, var = 0;
            for (size_t d = 0; d < dim; d++)
                mean += x[i * dim + d];
            mean /= (double)dim;
            for (size_t d = 0; d < dim; d++)
                var += (x[i * dim + d] - mean) * (x[i * dim + d] - mean);
            var /= (double)dim;
            for (size_t d = 0; d < dim; d++)
                want[i * dim + d] = (x[i * dim + d] - mean) / sqrt(var + eps) * w[d] +
                                    (with_bias ? b[d] : 0.0);
        }
        vp_cpu_layer_norm(y, x, w, with_bias ? b : NULL, n, dim, eps);
        test_close(with_bias ? "layer_norm (bias)" : "layer_norm (no bias)", y, want, n * dim,
                   1e-5, 1e-5);
    }
    for (size_t i = 0; i < n; i++) {
        double ms = 0;
        for (size_t d = 0; d < dim; d++)
            ms += (double)x[i * dim + d] * x[i * dim + d];
        ms /= (double)dim;
        for (size_t d = 0; d < dim; d++)
            want[i * dim + d] = w[d] * x[i * dim + d] / sqrt(ms + 1e-5);
    }
    vp_cpu_rms_norm(y, x, w, n, dim, 1e-5f);
    test_close("rms_norm", y, want, n * dim, 1e-5, 1e-6);
    /* in place gives the same */
    float *z = malloc(n * dim * sizeof *z);
    memcpy(z, x, n * dim * sizeof *z);
    vp_cpu_rms_norm(z, z, w, n, dim, 1e-5f);
    CHECK(!memcmp(z, y, n * dim * sizeof *z));
    free(x);
    free(w);
    free(b);
    free(y);
    free(z);
    free(want);
}

/* ---------------- activations ---------------- */

static void test_activations(void)
{
    /* textbook values: GELU(x) = x * Phi(x) */
    float g[4] = {1.0f, -1.0f, 2.0f, 0.5f};
    double gw[4] = {0.8413447460685429, -0.15865525393145707, 1.9544997361036416,
                    0.34573123063700656};
    vp_cpu_gelu(g, 4);
    test_close("gelu known values", g, gw, 4, 1e-6, 1e-7);
    size_t n = 1000;
    float *x = test_random(n, 6.0f, 0.0f), *u = test_random(n, 2.0f, 0.0f);
    double *want = dalloc(n);
    for (size_t i = 0; i < n; i++)
        want[i] = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
    float *y = malloc(n * sizeof *y);
    memcpy(y, x, n * sizeof *y);
    vp_cpu_gelu(y, n);
    test_close("gelu random", y, want, n, 1e-6, 1e-7);
    /* silu(1) = 1 / (1 + e^-1) */
    float s1 = 1.0f, one = 1.0f;
    double s1w = 0.7310585786300049;
    vp_cpu_silu_gate(&s1, &one, 1);
    test_close("silu(1) * 1", &s1, &s1w, 1, 1e-6, 1e-7);
    for (size_t i = 0; i < n; i++)
        want[i] = x[i] / (1.0 + exp(-(double)x[i])) * u[i];
    memcpy(y, x, n * sizeof *y);
    vp_cpu_silu_gate(y, u, n);
    test_close("silu gate random", y, want, n, 1e-6, 1e-7);
    free(x);
    free(u);
    free(y);
    free(want);
}

/* ---------------- RoPE ---------------- */

static void naive_rope(double *out, const float *x, int head_dim, double pos, double base)
{
    int half = head_dim / 2;
    for (int d = 0; d < half; d++) {
        double ang = pos * pow(base, -2.0 * d / head_dim);
        out[d] = x[d] * cos(ang) - x[d + half] * sin(ang);
        out[d + half] = x[d + half] * cos(ang) + x[d] * sin(ang);
    }
}

static void test_rope(void)
{
    /* base: unchanged up to max_pos, NTK-scaled beyond */
    double base = vp_cpu_rope_base(1e6, true, 2.0, 32768, 32768, 128);
    CHECK_MSG(base == 1e6, "rope base at L = max_pos: %.17g", base);
    base = vp_cpu_rope_base(1e6, false, 2.0, 32768, 65536, 128);
    CHECK_MSG(base == 1e6, "rope base without dynamic scaling: %.17g", base);
    base = vp_cpu_rope_base(1e6, true, 2.0, 32768, 65536, 128);
    double want = 1e6 * pow(2.0 * 65536 / 32768 - 1.0, 128.0 / 126.0); /* 3^(64/63) * 1e6 */
    CHECK_MSG(fabs(base - want) <= 1e-9 * want, "NTK base %.17g want %.17g", base, want);
    CHECK(base > 3e6 && base < 3.1e6);

    int hd = 16, heads = 3;
    float *x = test_random((size_t)heads * hd, 1.0f, 0.0f);
    float c[8], s[8];
    double theta = 10000.0;
    int32_t positions[3] = {0, 7, 3001};
    for (int pi = 0; pi < 3; pi++) {
        float y[48];
        double wy[48];
        memcpy(y, x, sizeof y);
        vp_cpu_rope_table(c, s, positions[pi], theta, hd);
        vp_cpu_rope_apply(y, (size_t)heads, hd, c, s);
        for (int h = 0; h < heads; h++)
            naive_rope(wy + h * hd, x + h * hd, hd, positions[pi], theta);
        char what[64];
        snprintf(what, sizeof what, "rope position %d", positions[pi]);
        test_close(what, y, wy, 48, 1e-5, 1e-5);
    }
    /* relative-position property: <R(p) q, R(p') k> depends only on p - p' */
    float q[16], k[16], a[16], b2[16];
    test_fill(q, 16, 1.0f, 0.0f);
    test_fill(k, 16, 1.0f, 0.0f);
    double dots[2];
    int32_t pairs[2][2] = {{10, 4}, {110, 104}};
    for (int i = 0; i < 2; i++) {
        memcpy(a, q, sizeof a);
        memcpy(b2, k, sizeof b2);
        vp_cpu_rope_table(c, s, pairs[i][0], theta, hd);
        vp_cpu_rope_apply(a, 1, hd, c, s);
        vp_cpu_rope_table(c, s, pairs[i][1], theta, hd);
        vp_cpu_rope_apply(b2, 1, hd, c, s);
        dots[i] = 0;
        for (int d = 0; d < 16; d++)
            dots[i] += (double)a[d] * b2[d];
    }
    float d0 = (float)dots[0];
    test_close("rope relative position", &d0, &dots[1], 1, 1e-5, 1e-5);
    free(x);
}

/* ---------------- attention ---------------- */

/* out[hd] = softmax(q.k_j / sqrt(hd)) v_j over the listed key tokens, in double. */
static void naive_attend(double *out, const float *q, const float *k, const float *v,
                         const size_t *keys, size_t nk, size_t kv_stride, size_t off, int hd)
{
    double *sc = dalloc(nk), mx = -INFINITY, sum = 0;
    for (size_t j = 0; j < nk; j++) {
        double s = 0;
        for (int d = 0; d < hd; d++)
            s += (double)q[d] * k[keys[j] * kv_stride + off + (size_t)d];
        sc[j] = s / sqrt((double)hd);
        if (sc[j] > mx)
            mx = sc[j];
    }
    for (size_t j = 0; j < nk; j++)
        sum += (sc[j] = exp(sc[j] - mx));
    for (int d = 0; d < hd; d++) {
        out[d] = 0;
        for (size_t j = 0; j < nk; j++)
            out[d] += sc[j] / sum * v[keys[j] * kv_stride + off + (size_t)d];
    }
    free(sc);
}

static void test_attention_causal(vp_pool *pool)
{
    enum { HEADS = 4, KV = 2, HD = 8 };
    /* seq0: prefix of 5; seq1, seq2 use it; seq3 stands alone; seq4 uses seq3 */
    vp_seq seqs[5] = {{0, 5, -1, 5}, {5, 3, 0, 8}, {8, 4, 0, 9}, {12, 6, -1, 6}, {18, 2, 3, 8}};
    size_t n = 20, qs = HEADS * HD, ks = KV * HD;
    float *q = test_random(n * qs, 2.0f, 0.0f), *k = test_random(n * ks, 2.0f, 0.0f),
          *v = test_random(n * ks, 1.0f, 0.0f);
    float *out = malloc(n * qs * sizeof *out), *out1 = malloc(n * qs * sizeof *out1);
    double *want = dalloc(n * qs);
    for (size_t s = 0; s < 5; s++)
        for (size_t t = seqs[s].start; t < seqs[s].start + seqs[s].len; t++) {
            size_t keys[32], nk = 0;
            if (seqs[s].prefix_seq >= 0) /* all of the prefix, then own tokens up to t */
                for (size_t j = 0; j < seqs[seqs[s].prefix_seq].len; j++)
                    keys[nk++] = seqs[seqs[s].prefix_seq].start + j;
            for (size_t j = seqs[s].start; j <= t; j++)
                keys[nk++] = j;
            for (int h = 0; h < HEADS; h++)
                naive_attend(want + t * qs + (size_t)h * HD, q + t * qs + (size_t)h * HD, k, v,
                             keys, nk, ks, (size_t)(h / (HEADS / KV)) * HD, HD);
        }
    vp_error err;
    CHECK(vp_cpu_attention_causal(NULL, out1, q, k, v, n, HEADS, KV, HD, seqs, 5, &err) == 0);
    test_close("attention causal, prefixes, GQA 4/2", out1, want, n * qs, 1e-5, 1e-6);
    CHECK(vp_cpu_attention_causal(pool, out, q, k, v, n, HEADS, KV, HD, seqs, 5, &err) == 0);
    CHECK_MSG(!memcmp(out, out1, n * qs * sizeof *out), "threaded attention differs");
    /* selected query rows (the last layer's form), out of order, one twice: each the
     * all-token row of its token; a row past the tokens is refused */
    {
        int32_t rows[4] = {(int32_t)n - 1, 2, 9, (int32_t)n - 1};
        float *orow = malloc(4 * qs * sizeof *orow);
        CHECK(vp_cpu_attention_causal_rows(pool, orow, q, k, v, n, rows, 4, HEADS, KV, HD, seqs,
                                           5, &err) == 0);
        for (int i = 0; i < 4; i++)
            CHECK_MSG(!memcmp(orow + (size_t)i * qs, out + (size_t)rows[i] * qs, qs * sizeof *orow),
                      "attention row %d (token %d) differs from the all-token result", i, rows[i]);
        rows[1] = (int32_t)n;
        CHECK(vp_cpu_attention_causal_rows(pool, orow, q, k, v, n, rows, 4, HEADS, KV, HD, seqs,
                                           5, &err) == -1 && strstr(err.message, "outside"));
        free(orow);
    }

    /* prefix + suffix packed == the concatenated sequence computed alone (same bits) */
    float *q2 = malloc(9 * qs * sizeof *q2), *k2 = malloc(9 * ks * sizeof *k2),
          *v2 = malloc(9 * ks * sizeof *v2), *o2 = malloc(9 * qs * sizeof *o2);
    memcpy(q2, q, 5 * qs * sizeof *q2);
    memcpy(q2 + 5 * qs, q + 8 * qs, 4 * qs * sizeof *q2);
    memcpy(k2, k, 5 * ks * sizeof *k2);
    memcpy(k2 + 5 * ks, k + 8 * ks, 4 * ks * sizeof *k2);
    memcpy(v2, v, 5 * ks * sizeof *v2);
    memcpy(v2 + 5 * ks, v + 8 * ks, 4 * ks * sizeof *v2);
    vp_seq alone = {0, 9, -1, 9};
    CHECK(vp_cpu_attention_causal(pool, o2, q2, k2, v2, 9, HEADS, KV, HD, &alone, 1, &err) == 0);
    CHECK_MSG(!memcmp(o2 + 5 * qs, out + 8 * qs, 4 * qs * sizeof *o2),
              "suffix with shared prefix differs from the whole sequence");
    free(q2);
    free(k2);
    free(v2);
    free(o2);
    free(q);
    free(k);
    free(v);
    free(out);
    free(out1);
    free(want);
}

static void test_attention_tiles(vp_pool *pool)
{
    enum { HEADS = 2, HD = 16 };
    size_t tiles = 3, tt = 7, n = tiles * tt, qs = HEADS * HD;
    float *q = test_random(n * qs, 2.0f, 0.0f), *k = test_random(n * qs, 2.0f, 0.0f),
          *v = test_random(n * qs, 1.0f, 0.0f);
    float *out = malloc(n * qs * sizeof *out), *out1 = malloc(n * qs * sizeof *out1);
    double *want = dalloc(n * qs);
    for (size_t t = 0; t < n; t++) {
        size_t keys[16], nk = 0;
        for (size_t j = t / tt * tt; j < t / tt * tt + tt; j++)
            keys[nk++] = j;
        for (int h = 0; h < HEADS; h++)
            naive_attend(want + t * qs + (size_t)h * HD, q + t * qs + (size_t)h * HD, k, v, keys,
                         nk, qs, (size_t)h * HD, HD);
    }
    vp_error err;
    CHECK(vp_cpu_attention_tiles(NULL, out1, q, k, v, tiles, tt, HEADS, HD, &err) == 0);
    test_close("attention bidirectional tiles", out1, want, n * qs, 1e-5, 1e-6);
    CHECK(vp_cpu_attention_tiles(pool, out, q, k, v, tiles, tt, HEADS, HD, &err) == 0);
    CHECK_MSG(!memcmp(out, out1, n * qs * sizeof *out), "threaded tile attention differs");
    free(q);
    free(k);
    free(v);
    free(out);
    free(out1);
    free(want);
}

/* ---------------- pixel shuffle ---------------- */

/* The reference's tensor operations, followed literally on flat indices:
 * x.view(G, G/2, 2C).permute(1,0,2).contiguous().view(G/2, G/2, 4C).permute(1,0,2). */
static void torch_pixel_shuffle(double *out, const float *x, size_t g, size_t c)
{
    size_t h = g / 2;
    /* y = x.view(g, h, 2c).permute(1, 0, 2): y[a][b][e] = x_view[b][a][e], shape [h][g][2c] */
    double *y = dalloc(g * g * c);
    for (size_t a = 0; a < h; a++)
        for (size_t b = 0; b < g; b++)
            for (size_t e = 0; e < 2 * c; e++)
                y[(a * g + b) * 2 * c + e] = x[(b * h + a) * 2 * c + e];
    /* z = y.view(h, h, 4c).permute(1, 0, 2): z[i][j][e] = y_view[j][i][e] */
    for (size_t i = 0; i < h; i++)
        for (size_t j = 0; j < h; j++)
            for (size_t e = 0; e < 4 * c; e++)
                out[(i * h + j) * 4 * c + e] = y[(j * h + i) * 4 * c + e];
    free(y);
}

static void test_pixel_shuffle(void)
{
    size_t g = 6, c = 5, n = g * g * c;
    float *x = test_random(n, 1.0f, 0.0f), *y = malloc(n * sizeof *y);
    double *want = dalloc(n);
    torch_pixel_shuffle(want, x, g, c);
    vp_cpu_pixel_shuffle(y, x, g, c);
    test_close("pixel shuffle v2 (torch view/permute)", y, want, n, 0, 0);
    /* and the spec's description: out (0,1) = cells (0,2), (0,3), (1,2), (1,3) */
    size_t cells[4][2] = {{0, 2}, {0, 3}, {1, 2}, {1, 3}};
    int ok = 1;
    for (int q = 0; q < 4; q++)
        for (size_t e = 0; e < c; e++)
            if (y[(0 * 3 + 1) * 4 * c + q * c + e] != x[(cells[q][0] * g + cells[q][1]) * c + e])
                ok = 0;
    CHECK_MSG(ok, "pixel shuffle cell order");
    free(x);
    free(y);
    free(want);
}

/* ---------------- patch embedding ---------------- */

static void test_patch_embed(vp_pool *pool)
{
    int ch = 3, size = 12, p = 4, hidden = 10, g = size / p;
    float *tile = test_random((size_t)ch * size * size, 1.0f, 0.0f);
    float *w = test_random((size_t)hidden * ch * p * p, 0.3f, 0.0f);
    float *b = test_random((size_t)hidden, 0.5f, 0.0f);
    size_t n = (size_t)g * g * hidden;
    float *out = malloc(n * sizeof *out), *scratch = malloc((size_t)g * g * ch * p * p * 4);
    double *want = dalloc(n);
    for (int gy = 0; gy < g; gy++)
        for (int gx = 0; gx < g; gx++)
            for (int o = 0; o < hidden; o++) {
                double s = b[o];
                for (int c = 0; c < ch; c++)
                    for (int ky = 0; ky < p; ky++)
                        for (int kx = 0; kx < p; kx++)
                            s += (double)w[((o * ch + c) * p + ky) * p + kx] *
                                 tile[(c * size + gy * p + ky) * size + gx * p + kx];
                want[(size_t)(gy * g + gx) * hidden + o] = s;
            }
    vp_cpu_patch_embed(pool, out, scratch, tile, w, b, ch, size, p, hidden);
    test_close("patch embedding (stride-P conv)", out, want, n, 1e-5, 1e-5);
    free(tile);
    free(w);
    free(b);
    free(out);
    free(scratch);
    free(want);
}

int main(void)
{
    test_seed(20241126);
    vp_pool *pool = NULL;
    vp_error err;
    CHECK(vp_pool_create(&pool, 3, &err) == 0);
    CHECK(vp_pool_threads(pool) == 3);
    test_matmul(pool);
    test_norms();
    test_activations();
    test_rope();
    test_attention_causal(pool);
    test_attention_tiles(pool);
    test_pixel_shuffle();
    test_patch_embed(pool);
    vp_pool_free(pool);
    return check_summary("test_cpu_ops");
}
