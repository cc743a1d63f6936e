#include "engine/util/json_alloc.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local unsigned long g_failures;
static _Atomic(void *) g_reserve[VP_JSON_RESERVE_BLOCKS];
static bool g_installed; /* set once, before threads start */

/* A failure is counted, then each reserve block still held is given back and the
 * allocation tried again: jansson meets NULL only when memory stays short after all of
 * them (its lexer can abort on a NULL followed by successes). */
static void *watched_malloc(size_t n)
{
    void *p = malloc(n);
    if (p)
        return p;
    g_failures++;
    for (size_t i = 0; i < VP_JSON_RESERVE_BLOCKS; i++) {
        void *block = atomic_exchange(&g_reserve[i], NULL);
        if (!block)
            continue;
        free(block);
        if ((p = malloc(n)))
            return p;
    }
    return NULL;
}

static void watched_free(void *p) { free(p); }

/* Before a parse or a dump: reserve blocks given back (by any jansson call) are allocated
 * again, when memory allows. */
static void rearm(void)
{
    for (size_t i = 0; g_installed && i < VP_JSON_RESERVE_BLOCKS; i++) {
        if (atomic_load(&g_reserve[i]))
            continue;
        void *block = malloc(VP_JSON_RESERVE_BYTES / VP_JSON_RESERVE_BLOCKS);
        void *none = NULL;
        if (block && !atomic_compare_exchange_strong(&g_reserve[i], &none, block))
            free(block);
    }
}

void vp_json_alloc_install(void)
{
    json_set_alloc_funcs(watched_malloc, watched_free);
    g_installed = true;
    rearm();
}

unsigned long vp_json_alloc_failures(void) { return g_failures; }

json_t *vp_json_parse(const char *text, size_t len, size_t flags, json_error_t *e)
{
    rearm();
    unsigned long before = g_failures;
    json_t *root = json_loadb(text, len, flags, e);
    if (g_failures == before)
        return root;
    json_decref(root);
    if (e) {
        snprintf(e->text, sizeof e->text, "out of memory");
        /* where jansson keeps the code json_error_code reads (jansson.h) */
        e->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_out_of_memory;
    }
    return NULL;
}

char *vp_json_dump(const json_t *v, size_t flags)
{
    rearm();
    unsigned long before = g_failures;
    char *text = json_dumps(v, flags);
    if (g_failures == before)
        return text;
    free(text);
    return NULL;
}
