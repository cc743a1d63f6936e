#include "engine/tokenizer/str_map.h"

#include <stdlib.h>
#include <string.h>

/* Multiplicative hash over 8-byte words; keys are short pieces (mostly < 16 bytes). */
uint32_t vp_str_hash(const char *s, size_t len)
{
    const uint64_t k = 0x9E3779B97F4A7C15ull;
    uint64_t h = (uint64_t)len * k;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
        s += 8;
        len -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < len; i++)
        w |= (uint64_t)(uint8_t)s[i] << (8 * i);
    h = (h ^ w) * k;
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

int vp_str_map_init(vp_str_map *m, size_t max_entries, const char *const *keys,
                    const uint32_t *key_len)
{
    size_t cap = 16;
    while (cap < max_entries * 2)
        cap *= 2;
    m->slot_id = malloc(cap * sizeof *m->slot_id);
    m->slot_hash = malloc(cap * sizeof *m->slot_hash);
    if (!m->slot_id || !m->slot_hash) {
        vp_str_map_free(m);
        return -1;
    }
    memset(m->slot_id, 0xff, cap * sizeof *m->slot_id); /* all -1 */
    m->mask = cap - 1;
    m->count = 0;
    m->keys = keys;
    m->key_len = key_len;
    return 0;
}

void vp_str_map_free(vp_str_map *m)
{
    free(m->slot_id);
    free(m->slot_hash);
    m->slot_id = NULL;
    m->slot_hash = NULL;
    m->count = 0;
}

int32_t vp_str_map_find_hashed(const vp_str_map *m, const char *s, size_t len, uint32_t hash)
{
    for (size_t i = hash & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slot_id[i];
        if (id < 0)
            return -1;
        if (m->slot_hash[i] == hash && m->key_len[id] == len && memcmp(m->keys[id], s, len) == 0)
            return id;
    }
}

int32_t vp_str_map_find(const vp_str_map *m, const char *s, size_t len)
{
    return vp_str_map_find_hashed(m, s, len, vp_str_hash(s, len));
}

int32_t vp_str_map_insert(vp_str_map *m, int32_t id)
{
    const char *s = m->keys[id];
    size_t len = m->key_len[id];
    uint32_t hash = vp_str_hash(s, len);
    size_t i = hash & m->mask;
    for (;; i = (i + 1) & m->mask) {
        int32_t old = m->slot_id[i];
        if (old < 0)
            break;
        if (m->slot_hash[i] == hash && m->key_len[old] == len && memcmp(m->keys[old], s, len) == 0)
            return old;
    }
    m->slot_id[i] = id;
    m->slot_hash[i] = hash;
    m->count++;
    return -1;
}
