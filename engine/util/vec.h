/* Growable arrays of token ids and positions. */
#ifndef VP_VEC_H
#define VP_VEC_H

#include <stddef.h>
#include <stdint.h>

typedef struct vp_ids {
    int32_t *v;   /* [n] */
    size_t n, cap;
} vp_ids;

/* Each returns 0, or -1 when memory runs out (the array is left as it was). */
int vp_ids_push(vp_ids *a, int32_t x);
int vp_ids_append(vp_ids *a, const int32_t *xs, size_t n);
int vp_ids_reserve(vp_ids *a, size_t cap);
void vp_ids_free(vp_ids *a);

#endif
