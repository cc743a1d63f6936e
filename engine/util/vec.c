#include "engine/util/vec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int vp_ids_reserve(vp_ids *a, size_t cap)
{
    if (cap <= a->cap)
        return 0;
    if (cap > SIZE_MAX / 2 / sizeof *a->v) /* a wrapped size: doubling would never end */
        return -1;
    size_t ncap = a->cap ? a->cap : 16;
    while (ncap < cap)
        ncap *= 2;
    int32_t *nv = realloc(a->v, ncap * sizeof *nv);
    if (!nv)
        return -1;
    a->v = nv;
    a->cap = ncap;
    return 0;
}

int vp_ids_push(vp_ids *a, int32_t x)
{
    if (vp_ids_reserve(a, a->n + 1))
        return -1;
    a->v[a->n++] = x;
    return 0;
}

int vp_ids_append(vp_ids *a, const int32_t *xs, size_t n)
{
    if (n == 0)
        return 0;
    if (vp_ids_reserve(a, a->n + n))
        return -1;
    memcpy(a->v + a->n, xs, n * sizeof *xs);
    a->n += n;
    return 0;
}

void vp_ids_free(vp_ids *a)
{
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}
