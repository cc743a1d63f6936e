#include "engine/tokenizer/prefix_trie.h"

#include <stdlib.h>

void vp_trie_init(vp_prefix_trie *t)
{
    for (int i = 0; i < 256; i++)
        t->root[i] = -1;
    t->nodes = NULL;
    t->n = t->cap = 0;
}

void vp_trie_free(vp_prefix_trie *t)
{
    free(t->nodes);
    vp_trie_init(t);
}

static int32_t new_node(vp_prefix_trie *t, uint8_t byte)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        if (cap > INT32_MAX)
            return -1;
        vp_trie_node *nodes = realloc(t->nodes, cap * sizeof *nodes);
        if (!nodes)
            return -1;
        t->nodes = nodes;
        t->cap = cap;
    }
    vp_trie_node *nd = &t->nodes[t->n];
    nd->child = nd->sibling = nd->id = -1;
    nd->byte = byte;
    return (int32_t)t->n++;
}

int vp_trie_insert(vp_prefix_trie *t, const char *s, size_t len, int32_t id)
{
    const uint8_t *k = (const uint8_t *)s;
    int32_t cur = t->root[k[0]];
    if (cur < 0) {
        if ((cur = new_node(t, k[0])) < 0)
            return -1;
        t->root[k[0]] = cur;
    }
    for (size_t i = 1; i < len; i++) {
        int32_t c = t->nodes[cur].child;
        while (c >= 0 && t->nodes[c].byte != k[i])
            c = t->nodes[c].sibling;
        if (c < 0) {
            if ((c = new_node(t, k[i])) < 0)
                return -1;
            t->nodes[c].sibling = t->nodes[cur].child;
            t->nodes[cur].child = c;
        }
        cur = c;
    }
    if (t->nodes[cur].id < 0)
        t->nodes[cur].id = id;
    return 0;
}

size_t vp_trie_longest(const vp_prefix_trie *t, const char *s, size_t len, int32_t *id)
{
    const uint8_t *k = (const uint8_t *)s;
    size_t best = 0;
    if (len == 0)
        return 0;
    int32_t cur = t->root[k[0]];
    for (size_t i = 1; cur >= 0; i++) {
        if (t->nodes[cur].id >= 0) {
            best = i;
            *id = t->nodes[cur].id;
        }
        if (i == len)
            break;
        int32_t c = t->nodes[cur].child;
        while (c >= 0 && t->nodes[c].byte != k[i])
            c = t->nodes[c].sibling;
        cur = c;
    }
    return best;
}
