#include "engine/util/json_alloc.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local unsigned long g_failures;
static _Atomic(void *) g_reserve;
static bool g_installed; /* set once, before threads start */

static void *watched_malloc(size_t n)
{
    void *p = malloc(n);
    if (p)
        return p;
    g_failures++;
    void *reserve = atomic_exchange(&g_reserve, NULL);
    if (!reserve)
        return NULL;
    free(reserve);
    return malloc(n);
}

static void watched_free(void *p) { free(p); }

/* Before a parse or a dump: a reserve used (by any jansson call) is allocated again,
 * when memory allows. */
static void rearm(void)
{
    if (!g_installed || atomic_load(&g_reserve))
        return;
    void *block = malloc(VP_JSON_RESERVE_BYTES);
    void *none = NULL;
    if (block && !atomic_compare_exchange_strong(&g_reserve, &none, block))
        free(block);
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
