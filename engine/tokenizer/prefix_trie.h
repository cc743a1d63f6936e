/* Byte trie over SentencePiece's user-defined pieces, for the longest-match split
 * of the input into initial symbols. The first byte is a direct index (most input
 * positions fail there); deeper levels are sibling lists (user-defined sets are small). */
#ifndef VP_PREFIX_TRIE_H
#define VP_PREFIX_TRIE_H

#include <stddef.h>
#include <stdint.h>

typedef struct vp_trie_node {
    int32_t child;   /* first child node, -1 if none */
    int32_t sibling; /* next node with the same parent, -1 if none */
    int32_t id;      /* piece id of the key ending here, -1 if none */
    uint8_t byte;    /* edge label from the parent */
} vp_trie_node;

typedef struct vp_prefix_trie {
    int32_t root[256];    /* [256] node for each first byte, -1 if none */
    vp_trie_node *nodes;  /* [n] */
    size_t n, cap;
} vp_prefix_trie;

void vp_trie_init(vp_prefix_trie *t);
void vp_trie_free(vp_prefix_trie *t);
/* Adds key s[0..len) (len >= 1) with id; keeps the first id for duplicate keys.
 * Returns 0, or -1 when out of memory. */
int vp_trie_insert(vp_prefix_trie *t, const char *s, size_t len, int32_t id);
/* Length of the longest key that is a prefix of s[0..len) and its id; 0 if none. */
size_t vp_trie_longest(const vp_prefix_trie *t, const char *s, size_t len, int32_t *id);

#endif
