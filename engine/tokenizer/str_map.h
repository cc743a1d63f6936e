/* Open-addressing hash map from byte strings to ids. The map stores only ids and
 * hashes; the key text of id i is keys[i] / key_len[i], arrays owned by the caller
 * that must outlive the map. */
#ifndef VP_STR_MAP_H
#define VP_STR_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct vp_str_map {
    int32_t *slot_id;      /* [mask + 1] id, or -1 for an empty slot */
    uint32_t *slot_hash;   /* [mask + 1] hash of the key in the slot */
    size_t mask;           /* capacity - 1, capacity a power of two */
    size_t count;
    const char *const *keys; /* [n ids] key text by id */
    const uint32_t *key_len; /* [n ids] */
} vp_str_map;

uint32_t vp_str_hash(const char *s, size_t len);

/* Sizes the map for up to max_entries ids. Returns 0 or -1 (out of memory). */
int vp_str_map_init(vp_str_map *m, size_t max_entries, const char *const *keys,
                    const uint32_t *key_len);
void vp_str_map_free(vp_str_map *m);
/* Inserts id under its key; returns the id already there for an equal key, else -1. */
int32_t vp_str_map_insert(vp_str_map *m, int32_t id);
/* Id stored for s[0..len), or -1. */
int32_t vp_str_map_find(const vp_str_map *m, const char *s, size_t len);
int32_t vp_str_map_find_hashed(const vp_str_map *m, const char *s, size_t len, uint32_t hash);

#endif
