/* safetensors files: vp_st_parse over the input bytes.
 * Promises: a failure carries a kind (VP_ERR_MODEL, or NOMEM) and a message and leaves
 * no table behind; a success has, for every tensor, a 1..1024-byte NUL-terminated name
 * (sorted, unique, found again by vp_st_find), at most VP_MAX_DIMS non-negative dims
 * whose product times the dtype size fits size_t and equals nbytes, and a data range
 * inside the input after the header; the ranges tile the data exactly (no gap, no
 * overlap, nothing left over); reading the first and last element (and converting
 * small tensors whole) stays inside the input.
 *
 * Two framings, so that mutations of the JSON are not all lost to a stale length:
 * - the input as it is: [u64 LE header length][header JSON][data];
 * - when the input starts with '{': the bytes up to the first NUL (or the end) are the
 *   header and the bytes after that NUL the data; the target adds the length prefix.
 * Seeds (corpus/fuzz_safetensors/seed_*) come from this python3 snippet, plus the real
 * header of `bin/vprm mkmodel --scale tiny --seed 1` (seed_tiny_model_header, header
 * only, so its data_offsets run past the end):
 *   import json, struct
 *   def st(ts, meta=None):  # ts: [(name, dtype, shape)]
 *       size = {'F32': 4, 'F16': 2, 'BF16': 2}; h = {}; off = 0
 *       if meta is not None: h['__metadata__'] = meta
 *       for n, dt, sh in ts:
 *           nb = size[dt]
 *           for d in sh: nb *= d
 *           h[n] = {'dtype': dt, 'shape': sh, 'data_offsets': [off, off + nb]}; off += nb
 *       j = json.dumps(h).encode(); j += b' ' * (-len(j) % 8)
 *       return struct.pack('<Q', len(j)) + j + bytes(i % 251 for i in range(off))
 *   (seed_framed_* are the same without the 8-byte prefix, header then NUL then data) */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/safetensors.h"
#include "tests/fuzz/fuzz.h"

typedef struct span {
    size_t begin, end;
} span;

static int by_begin(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static void check_tensor(const vp_tensor *t, const uint8_t *bytes, size_t len, size_t data_offset,
                         span *s)
{
    size_t nlen = strnlen(t->name, 1025);
    FUZZ_REQUIRE(nlen >= 1 && nlen <= 1024, "tensor name of %zu bytes", nlen);
    FUZZ_REQUIRE(strcmp(t->name, "__metadata__") != 0, "__metadata__ listed as a tensor");
    FUZZ_REQUIRE(t->ndim >= 0 && t->ndim <= VP_MAX_DIMS, "'%s': ndim %d", t->name, t->ndim);
    FUZZ_REQUIRE(t->dtype == VP_DT_F32 || t->dtype == VP_DT_F16 || t->dtype == VP_DT_BF16,
                 "'%s': dtype %d", t->name, (int)t->dtype);
    /* the product in the order vp_tensor_numel takes it must not wrap */
    size_t numel = 1, nbytes;
    for (int d = 0; d < t->ndim; d++) {
        FUZZ_REQUIRE(t->shape[d] >= 0, "'%s': shape[%d] = %lld", t->name, d,
                     (long long)t->shape[d]);
        FUZZ_REQUIRE(!__builtin_mul_overflow(numel, (size_t)t->shape[d], &numel),
                     "'%s': element count overflows size_t", t->name);
    }
    FUZZ_REQUIRE(!__builtin_mul_overflow(numel, vp_dtype_size(t->dtype), &nbytes),
                 "'%s': byte count overflows size_t", t->name);
    FUZZ_REQUIRE(vp_tensor_numel(t) == numel, "'%s': numel %zu, expected %zu", t->name,
                 vp_tensor_numel(t), numel);
    FUZZ_REQUIRE(t->nbytes == nbytes, "'%s': nbytes %zu for %zu elements of %s", t->name,
                 t->nbytes, numel, vp_dtype_name(t->dtype));
    /* compare as integers: the data pointer must lie in [bytes + data_offset, bytes + len] */
    uintptr_t p = (uintptr_t)t->data, base = (uintptr_t)bytes;
    FUZZ_REQUIRE(t->data && p >= base + data_offset && p <= base + len,
                 "'%s': data pointer outside the data section", t->name);
    size_t off = (size_t)(p - base);
    FUZZ_REQUIRE(t->nbytes <= len - off, "'%s': bytes %zu..%zu run past the input (%zu bytes)",
                 t->name, off, off + t->nbytes, len);
    s->begin = off;
    s->end = off + t->nbytes;

    /* touch the ends (ASan reports any read outside the input's exact-size buffer) */
    volatile float sink = 0.0f;
    if (numel) {
        sink += vp_tensor_get(t, 0);
        sink += vp_tensor_get(t, numel - 1);
    }
    if (numel && numel <= 4096) {
        float *tmp = malloc(numel * sizeof *tmp);
        if (tmp) {
            vp_tensor_to_f32(t, tmp);
            sink += tmp[numel - 1];
            free(tmp);
        }
    }
    (void)sink;
}

static void check_parse(const uint8_t *bytes, size_t len)
{
    vp_st_file f;
    vp_error err = {0};
    if (vp_st_parse(bytes, len, "fuzz.safetensors", &f, &err)) {
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(err.kind == VP_ERR_MODEL || err.kind == VP_ERR_NOMEM,
                     "unexpected error kind %d: %s", (int)err.kind, err.message);
        FUZZ_REQUIRE(f.tensors == NULL && f.n == 0, "a failed parse left %zu tensors", f.n);
        return;
    }
    FUZZ_REQUIRE(f.data_offset >= 10 && f.data_offset <= len, "data offset %zu of %zu bytes",
                 f.data_offset, len);
    span *spans = calloc(f.n ? f.n : 1, sizeof *spans);
    FUZZ_REQUIRE(spans != NULL, "out of memory");
    for (size_t i = 0; i < f.n; i++) {
        const vp_tensor *t = &f.tensors[i];
        FUZZ_REQUIRE(t->name != NULL, "tensor %zu has no name", i);
        check_tensor(t, bytes, len, f.data_offset, &spans[i]);
        FUZZ_REQUIRE(i == 0 || strcmp(f.tensors[i - 1].name, t->name) < 0,
                     "names not sorted and unique at %zu ('%s')", i, t->name);
        FUZZ_REQUIRE(vp_st_find(&f, t->name) == t, "vp_st_find('%s') misses it", t->name);
    }
    FUZZ_REQUIRE(vp_st_find(&f, "") == NULL, "an empty name was found");
    /* the ranges tile [data_offset, len) exactly, as vp_st_parse promises */
    qsort(spans, f.n, sizeof *spans, by_begin);
    size_t at = f.data_offset;
    for (size_t i = 0; i < f.n; i++) {
        FUZZ_REQUIRE(spans[i].begin == at, "range %zu..%zu, expected to start at %zu",
                     spans[i].begin, spans[i].end, at);
        at = spans[i].end;
    }
    FUZZ_REQUIRE(at == len, "the tensors cover up to byte %zu of %zu", at, len);
    free(spans);
    vp_st_close(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_parse(data, size);
    if (size == 0 || data[0] != '{')
        return 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t hlen = nul ? (size_t)(nul - data) : size;
    size_t rest = nul ? size - hlen - 1 : 0;
    /* exact size, so ASan sees a read one past the end */
    uint8_t *framed = malloc(8 + hlen + rest);
    FUZZ_REQUIRE(framed != NULL, "out of memory");
    for (int i = 0; i < 8; i++)
        framed[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(framed + 8, data, hlen);
    if (rest)
        memcpy(framed + 8 + hlen, nul + 1, rest);
    check_parse(framed, 8 + hlen + rest);
    free(framed);
    return 0;
}
