/* vp_engine_run: packs many prepared jobs into one backend pass and turns the two
 * logits at each score position into step scores, aggregates and rankings. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/image/image.h"
#include "engine/job.h"
#include "engine/pack_groups.h"
#include "engine/prefix_cache.h"
#include "engine/util/log.h"

typedef struct packed {
    vp_batch b;
    int32_t *tokens, *positions, *image_row, *out_index;
    vp_seq *seqs;
    const uint8_t **tiles_u8; /* [n_tiles] into the jobs' 8-bit tiles (the backend normalises) */
    size_t *tile_base;     /* [n_jobs] first tile of each job's images in tiles_u8 */
    size_t *group_of;      /* [n_jobs] its prefix group */
    struct prefix_group *groups; /* [n_groups <= n_jobs] */
    size_t *job_out;       /* [n_jobs] first logits row of each job */
    vp_kv_copy *kv_loads;  /* [n_groups][VP_PREFIX_CACHE_MAX_RUNS]: a hit's runs */
    vp_kv_copy *kv_stores; /* [n_groups] at most one per group */
    size_t *tile_remap;    /* [tiles before the cache] -> tile of the pass, or SIZE_MAX */
} packed;

static void packed_free(packed *p)
{
    free(p->tokens);
    free(p->positions);
    free(p->image_row);
    free(p->out_index);
    free(p->seqs);
    free(p->tiles_u8);
    free(p->tile_base);
    free(p->group_of);
    free(p->groups);
    free(p->job_out);
    free(p->kv_loads);
    free(p->kv_stores);
    free(p->tile_remap);
}

/* Tile base of job i: an earlier job of the pass with the very same tiles (an RL group
 * re-scoring one image, W4) shares its vision features, so the encoder runs once;
 * otherwise the next *n_tiles. */
static size_t same_images_as(vp_job *const *jobs, size_t i, const size_t *bases,
                             size_t *n_tiles)
{
    const vp_job *j = jobs[i];
    for (size_t k = 0; k < i && j->n_tiles; k++)
        if (vp_job_same_tiles(jobs[k], j))
            return bases[k];
    size_t base = *n_tiles;
    *n_tiles += j->n_tiles;
    return base;
}

/* Appends tokens [from, to) of response r of job j as one sequence. */
static void add_sequence(packed *p, const vp_job *j, size_t r, size_t from, size_t to,
                         int32_t prefix_seq, size_t feature_base, int32_t img_context)
{
    const vp_ids *ids = &j->ids[r];
    vp_seq *s = &p->seqs[p->b.n_seqs++];
    s->start = p->b.n_tokens;
    s->len = to - from;
    s->prefix_seq = prefix_seq;
    s->rope_len = ids->n;
    size_t image_k = 0;
    for (size_t t = 0; t < to; t++) {
        int is_image = ids->v[t] == img_context;
        if (t >= from) {
            size_t o = p->b.n_tokens++;
            p->tokens[o] = ids->v[t];
            p->positions[o] = (int32_t)t;
            p->image_row[o] = is_image ? (int32_t)(feature_base + image_k) : -1;
        }
        image_k += (size_t)is_image;
    }
}


/* Computed tokens of group G: its prefix once (or none when the cache gives its first
 * rows), then every member response's own tokens. */
static size_t group_tokens(const prefix_group *G)
{
    if (G->cached)
        return G->total_len - G->n_responses * G->cached;
    return vp_group_cost(G->n_responses, G->total_len, G->prefix);
}


/* A warm-up pass's terms (warm_up): its jobs each in a group of their own, no widening
 * (an overflow ends it, the pass proper widens if it must), and the entries that the pass
 * proper's jobs would load kept from its stores' evictions. NULL: a pass proper. */
typedef struct warm_pass {
    vp_job *const *keep; /* the pass proper's jobs */
    size_t n_keep;
} warm_pass;

/* The rows of the cache that a prompt's first cap ids may load: the longest entry's, or
 * none when they stop before the last image token among those ids (another image after
 * the same system prompt): loading would leave the vision encoder and the image rows to
 * compute and would store nothing, so one response at a time would take that partial hit
 * forever. Computing the prefix stores it. *slot: the entry. */
static size_t usable_hit(vp_prefix_cache *c, const vp_engine *e, const vp_job *j, size_t cap,
                         size_t *slot)
{
    vp_prefix_images img = vp_job_prefix_images(e, j);
    size_t k = vp_prefix_cache_find(c, j->ids[0].v, cap, &img, slot);
    for (size_t t = k; k && t < cap; t++)
        if (j->ids[0].v[t] == img.img_context)
            k = 0;
    return k;
}

/* Group G's lookup: loads the cached start of its prefix (G->cached) when that computes
 * fewer tokens than the prefix once, N * k > (N - 1) * prefix, and the pass's rows (other
 * groups' other_rows, then G's computed and loaded ones) stay within the budget. Sets
 * G->slot and G->store_from (rows [0, store_from) held at slot); returns what G computes. */
static size_t decide_load(vp_prefix_cache *c, const vp_engine *e, vp_job *const *jobs,
                          prefix_group *G, size_t budget, size_t other_rows)
{
    size_t slot = 0, k = usable_hit(c, e, jobs[G->first_job], G->prefix, &slot);
    size_t before = vp_group_cost(G->n_responses, G->total_len, G->prefix);
    size_t after = G->total_len - G->n_responses * k;
    G->slot = slot;
    G->store_from = k;
    G->cached = k && after < before && (!budget || other_rows + after + k <= budget) ? k : 0;
    return G->cached ? after : before;
}

/* Records G's lookup (its find the cache's last): a hit pins the entry; a group that will
 * store after an entry's rows pins that entry. */
static void record_lookup(vp_prefix_cache *c, const prefix_group *G)
{
    vp_prefix_cache_use(c, G->cached ? G->slot : 0, G->cached);
    if (!G->cached && G->store_from && G->store_from < G->prefix)
        vp_prefix_cache_pin(c, G->slot);
}

/* Room for the parts of a pass's groups (look_up_group): [n_jobs] each. */
typedef struct part_scratch {
    prefix_group *parts;
    size_t *part_of;
} part_scratch;

/* The parts of group g into sc: its members with the same own prefix (one question, its
 * responses' common start), as groups of their own; false when it has one part (a group
 * of one job has one, found without a walk over the pass's jobs). part_of[i]: member i's
 * part. */
static bool group_parts(vp_job *const *jobs, size_t n_jobs, const packed *p, size_t g,
                        const part_scratch *sc, size_t *n_parts)
{
    const prefix_group *G = &p->groups[g];
    prefix_group *parts = sc->parts;
    size_t *part_of = sc->part_of;
    *n_parts = 0;
    if (!parts || G->n_responses == jobs[G->first_job]->n_responses) /* one member */
        return false;
    for (size_t i = 0; i < n_jobs; i++) {
        if (p->group_of[i] != g)
            continue;
        const vp_job *j = jobs[i];
        size_t own = vp_job_own_prefix(j), s = 0;
        while (s < *n_parts && (parts[s].prefix != own ||
                                memcmp(jobs[parts[s].first_job]->ids[0].v, j->ids[0].v,
                                       own * sizeof *j->ids[0].v)))
            s++;
        part_of[i] = vp_group_join(jobs, i, p->groups[g].tile_base, s, own, parts, n_parts);
    }
    return *n_parts >= 2;
}

/* The lookups of group g. A group whose members ask different questions of one image
 * shares only the rows up to where the questions part; with the cache holding more of a
 * member's own prefix (its question asked before), each response would still compute
 * its question. Split into its parts (group_parts), each group loads all the cache holds
 * of its own prefix: the shared rows are loaded once per part instead of computed or
 * loaded once. Split when that computes fewer tokens, or as many and a part of several
 * responses then stores the rest of its prefix (the next pass loads it whole), with the
 * pass's rows within the budget. Returns what g (all its parts) computes, *g_rows its rows
 * in the pass; the parts after the first become groups n_groups on. */
static size_t look_up_group(vp_engine *e, vp_job *const *jobs, size_t n_jobs, packed *p,
                            size_t g, size_t *n_groups, size_t other_rows, size_t *g_rows,
                            const part_scratch *sc)
{
    vp_prefix_cache *c = vp_engine_prefix_cache(e);
    size_t budget = vp_engine_opts(e)->max_batch_tokens, n_parts = 0;
    prefix_group *parts = group_parts(jobs, n_jobs, p, g, sc, &n_parts) ? sc->parts : NULL;
    size_t *part_of = sc->part_of;
    size_t split = 0, split_rows = 0;
    bool stores = false, part_tiles = false;
    for (size_t s = 0; parts && s < n_parts; s++) {
        prefix_group *P = &parts[s];
        vp_prefix_run runs[VP_PREFIX_CACHE_MAX_RUNS];
        size_t computed = decide_load(c, e, jobs, P, budget, other_rows + split_rows);
        split += computed;
        split_rows += computed + P->cached;
        stores |= P->n_responses >= 2 && P->cached && P->cached < P->prefix &&
                  vp_prefix_cache_runs(c, P->slot, P->cached, runs) < VP_PREFIX_CACHE_MAX_RUNS;
        part_tiles |= P->n_tiles && !P->cached; /* it computes its image */
    }
    prefix_group *G = &p->groups[g];
    size_t computed = decide_load(c, e, jobs, G, budget, other_rows); /* the last find */
    *g_rows = computed + G->cached;
    /* the tokens decide, but a part that would run the vision encoder where the group
     * loads its image (a loaded hit covers the prefix's image tokens: usable_hit) costs
     * more than they say */
    if (!parts || split > computed || (split == computed && !stores) ||
        (part_tiles && G->cached) || (budget && other_rows + split_rows > budget)) {
        record_lookup(c, G);
        return computed;
    }
    size_t first_new = *n_groups;
    for (size_t s = 0; s < n_parts; s++) {
        prefix_group *P = &parts[s];
        if (!P->cached) /* found again: its find the last, for the miss it counts */
            usable_hit(c, e, jobs[P->first_job], P->prefix, &P->slot);
        record_lookup(c, P);
        p->groups[s ? (*n_groups)++ : g] = *P;
    }
    for (size_t i = 0; i < n_jobs; i++)
        if (p->group_of[i] == g && part_of[i])
            p->group_of[i] = first_new + part_of[i] - 1;
    *g_rows = split_rows;
    return split;
}

/* The prefix KV cache's part of a pass: each group with a prefix loads the longest cached
 * start of it when that computes fewer tokens (and the pass's rows stay within the
 * budget), or else asks to store its computed prefix for later passes; a group of several
 * questions may split (look_up_group). When an entry holds only the start of the prefix
 * (the same image, another question), the rest is stored as an extension of that entry:
 * from the first response's rows when the start is loaded (they compute those tokens at
 * the same positions over the same rows), from the computed prefix's otherwise; the next
 * request with that question loads it all, and the image's rows are held once. Every
 * group's lookup comes before any store: a store makes room by evicting entries the pass
 * has not pinned, which would otherwise include those that later groups load. */
static void plan_cache(vp_engine *e, vp_job *const *jobs, size_t n_jobs, packed *p,
                       size_t *n_groups, size_t *n_tok, const warm_pass *warm)
{
    vp_prefix_cache *c = vp_engine_prefix_cache(e);
    size_t rows = *n_tok, nj = n_jobs ? n_jobs : 1;
    /* no room: no group splits (it only saves work) */
    part_scratch sc = {malloc(nj * sizeof *sc.parts), malloc(nj * sizeof *sc.part_of)};
    if (!sc.parts || !sc.part_of) {
        free(sc.parts);
        sc.parts = NULL;
    }
    vp_prefix_cache_begin(c);
    for (size_t i = 0; warm && i < warm->n_keep; i++) {
        size_t slot = 0;
        if (usable_hit(c, e, warm->keep[i], vp_job_own_prefix(warm->keep[i]), &slot))
            vp_prefix_cache_pin(c, slot);
    }
    /* the lookups (G->store_from: rows [0, store_from) held, G->slot: where) */
    for (size_t g = 0, n = *n_groups; g < n; g++) {
        prefix_group *G = &p->groups[g];
        if (!G->prefix)
            continue;
        size_t before = group_tokens(G), g_rows = 0;
        size_t computed =
            look_up_group(e, jobs, n_jobs, p, g, n_groups, rows - before, &g_rows, &sc);
        rows = rows - before + g_rows;
        *n_tok = *n_tok - before + computed;
    }
    free(sc.parts);
    free(sc.part_of);
    /* the stores */
    for (size_t g = 0; g < *n_groups; g++) {
        prefix_group *G = &p->groups[g];
        if (!G->prefix || G->store_from == G->prefix) /* none, or held whole already */
            continue;
        const vp_job *rep = jobs[G->first_job];
        vp_prefix_images img = vp_job_prefix_images(e, rep);
        if (G->store_from) { /* after the entry found above (found again: extend's rule) */
            size_t slot = 0, k = vp_prefix_cache_find(c, rep->ids[0].v, G->prefix, &img, &slot);
            G->store = k >= G->store_from && slot == G->slot &&
                       vp_prefix_cache_extend(c, rep->ids[0].v, G->prefix, G->store_from,
                                              img.img_context, slot, &G->store_slot);
            if (G->store || G->cached)
                continue;
            G->store_from = 0; /* the entry could not take an extension: a whole prefix */
        }
        G->store = vp_prefix_cache_reserve(c, rep->ids[0].v, G->prefix, &img, &G->store_slot);
    }
}

/* Whether any member of group g has an image token at or past `from`. */
static bool group_needs_tiles(vp_job *const *jobs, size_t n_jobs, const packed *p, size_t g,
                              size_t from, int32_t img_context)
{
    for (size_t i = 0; i < n_jobs; i++) {
        if (p->group_of[i] != g || !jobs[i]->n_tiles)
            continue;
        for (size_t r = 0; r < jobs[i]->n_responses; r++)
            for (size_t t = from; t < jobs[i]->ids[r].n; t++)
                if (jobs[i]->ids[r].v[t] == img_context)
                    return true;
    }
    return false;
}

/* Tiles of the pass: only groups with image tokens left to compute need theirs; jobs with
 * the same images still share one copy. Renumbers tile_base. */
static size_t plan_tiles(vp_job *const *jobs, size_t n_jobs, packed *p, size_t n_groups,
                         size_t n_tiles_before, int32_t img_context)
{
    for (size_t g = 0; g < n_groups; g++) {
        prefix_group *G = &p->groups[g];
        G->needs_tiles = G->n_tiles &&
                         (!G->cached || group_needs_tiles(jobs, n_jobs, p, g, G->cached, img_context));
    }
    for (size_t t = 0; t < n_tiles_before; t++)
        p->tile_remap[t] = SIZE_MAX;
    size_t n_tiles = 0;
    for (size_t i = 0; i < n_jobs; i++) {
        const prefix_group *G = &p->groups[p->group_of[i]];
        if (!jobs[i]->n_tiles || !G->needs_tiles)
            continue;
        size_t old = p->tile_base[i];
        if (p->tile_remap[old] == SIZE_MAX) {
            p->tile_remap[old] = n_tiles;
            n_tiles += jobs[i]->n_tiles;
        }
        p->tile_base[i] = p->tile_remap[old];
    }
    for (size_t g = 0; g < n_groups; g++) {
        prefix_group *G = &p->groups[g];
        G->tile_base = G->needs_tiles ? p->tile_remap[G->tile_base] : 0;
    }
    return n_tiles;
}

/* The longest response of group g (the RoPE length of its prefix). */
static size_t group_longest(vp_job *const *jobs, size_t n_jobs, const packed *p, size_t g)
{
    size_t longest = 0;
    for (size_t i = 0; i < n_jobs; i++)
        for (size_t r = 0; p->group_of[i] == g && r < jobs[i]->n_responses; r++)
            longest = jobs[i]->ids[r].n > longest ? jobs[i]->ids[r].n : longest;
    return longest;
}

/* The pass's first step: each job's tiles (shared with an earlier job's identical ones)
 * and prefix group, or with `alone` a group of its own. *n_tiles: the tiles so far;
 * *n_out: the score positions. */
static int group_jobs(const vp_engine *e, vp_job *const *jobs, size_t n_jobs, bool alone,
                      packed *p, size_t *n_groups, size_t *n_tiles, size_t *n_out,
                      vp_error *err)
{
    size_t nj = n_jobs ? n_jobs : 1;
    p->tile_base = malloc(nj * sizeof *p->tile_base);
    p->group_of = malloc(nj * sizeof *p->group_of);
    p->groups = malloc(nj * sizeof *p->groups);
    if (!p->tile_base || !p->group_of || !p->groups)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory packing a batch");
    *n_groups = *n_tiles = *n_out = 0;
    for (size_t i = 0; i < n_jobs; i++) {
        p->tile_base[i] = same_images_as(jobs, i, p->tile_base, n_tiles);
        size_t prefix, g = vp_group_choose(jobs, jobs[i], p->tile_base[i], p->groups,
                                           alone ? 0 : *n_groups, &prefix);
        p->group_of[i] = vp_group_join(jobs, i, p->tile_base[i], alone ? *n_groups : g, prefix,
                                       p->groups, n_groups);
        for (size_t r = 0; r < jobs[i]->n_responses; r++)
            *n_out += jobs[i]->score_pos[r].n;
    }
    return 0;
}

static int pack_jobs(vp_engine *e, vp_job *const *jobs, size_t n_jobs, const warm_pass *warm,
                     packed *p, vp_error *err)
{
    const vp_model_config *cfg = vp_engine_config(e);
    const vp_prompt_ctx *pr = vp_engine_prompt(e);
    size_t S = (size_t)cfg->vision.image_size;
    size_t tile_bytes = 3 * S * S;
    size_t nj = n_jobs ? n_jobs : 1;
    size_t n_tiles, n_groups, n_out;
    if (group_jobs(e, jobs, n_jobs, warm != NULL, p, &n_groups, &n_tiles, &n_out, err))
        return -1;
    p->kv_loads = malloc(nj * VP_PREFIX_CACHE_MAX_RUNS * sizeof *p->kv_loads);
    p->kv_stores = malloc(nj * sizeof *p->kv_stores);
    if (!p->kv_loads || !p->kv_stores)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory packing a batch");
    bool cache = vp_engine_prefix_cache(e) != NULL;
    size_t n_tok = 0;
    for (size_t g = 0; g < n_groups; g++) {
        prefix_group *G = &p->groups[g];
        G->cached = G->slot = G->store_slot = G->store_from = 0;
        G->store = false;
        /* one response: its prefix (up to the first score) is split off only to be cached;
         * that computes the same tokens */
        if (G->n_responses < 2)
            G->prefix = cache ? jobs[G->first_job]->share_cap : 0;
        n_tok += group_tokens(G);
    }
    if (cache)
        plan_cache(e, jobs, n_jobs, p, &n_groups, &n_tok, warm);
    /* a warm-up job exists to store its prefix's rest: one that cannot (no room for its
     * ids on the host, say) would compute for nothing; the caller drops it (G->store) */
    for (size_t g = 0; warm && g < n_groups; g++)
        if (!p->groups[g].store)
            return 1;
    p->tile_remap = malloc((n_tiles ? n_tiles : 1) * sizeof *p->tile_remap);
    if (!p->tile_remap)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory packing a batch");
    n_tiles = plan_tiles(jobs, n_jobs, p, n_groups, n_tiles, pr->img_context);
    size_t n_seq = 0, n_cached = 0;
    for (size_t g = 0; g < n_groups; g++) {
        const prefix_group *G = &p->groups[g];
        n_seq += G->n_responses + (G->prefix || G->cached ? 1 : 0);
        n_cached += G->cached;
    }
    p->tokens = malloc((n_tok ? n_tok : 1) * sizeof *p->tokens);
    p->positions = malloc((n_tok ? n_tok : 1) * sizeof *p->positions);
    p->image_row = malloc((n_tok ? n_tok : 1) * sizeof *p->image_row);
    p->out_index = malloc((n_out ? n_out : 1) * sizeof *p->out_index);
    p->seqs = malloc((n_seq ? n_seq : 1) * sizeof *p->seqs);
    p->job_out = malloc(nj * sizeof *p->job_out);
    p->tiles_u8 = n_tiles ? malloc(n_tiles * sizeof *p->tiles_u8) : NULL;
    if (!p->tokens || !p->positions || !p->image_row || !p->out_index || !p->seqs ||
        !p->job_out || (n_tiles && !p->tiles_u8))
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory packing a batch of %zu tokens", n_tok);
    /* a job with the same images as an earlier one points at its own identical copy */
    for (size_t i = 0; i < n_jobs; i++)
        for (size_t t = 0; p->groups[p->group_of[i]].needs_tiles && t < jobs[i]->n_tiles; t++)
            p->tiles_u8[p->tile_base[i] + t] = jobs[i]->tiles + t * tile_bytes;
    /* cached prefixes first: key rows after the n_tok tokens, loaded from the cache */
    size_t cached_row = n_tok;
    for (size_t g = 0; g < n_groups; g++) {
        prefix_group *G = &p->groups[g];
        G->cached_seq = -1;
        if (!G->cached)
            continue;
        G->cached_seq = (int32_t)p->b.n_seqs;
        p->seqs[p->b.n_seqs++] = (vp_seq){.start = cached_row, .len = G->cached, .prefix_seq = -1,
                                          .rope_len = group_longest(jobs, n_jobs, p, g)};
        vp_prefix_run runs[VP_PREFIX_CACHE_MAX_RUNS];
        size_t n_runs = vp_prefix_cache_runs(vp_engine_prefix_cache(e), G->slot, G->cached, runs);
        if (n_runs == 0) /* the entry was found and pinned by this packing */
            return vp_fail(err, VP_ERR_INTERNAL, NULL, "prefix cache entry at row %zu lost",
                           G->slot);
        for (size_t k = 0; k < n_runs; k++) {
            p->kv_loads[p->b.n_kv_loads++] = (vp_kv_copy){.row = cached_row, .slot = runs[k].slot,
                                                          .len = runs[k].len};
            cached_row += runs[k].len;
        }
    }
    p->b.n_cached_seqs = p->b.n_seqs;
    p->b.n_cached_tokens = n_cached;
    /* then group by group: the computed prefix, then every member response's suffix */
    for (size_t g = 0; g < n_groups; g++) {
        prefix_group *G = &p->groups[g];
        size_t feature_base = G->tile_base * (size_t)cfg->num_image_token;
        int32_t prefix_seq = G->cached_seq;
        size_t from = G->cached ? G->cached : G->prefix;
        if (!G->cached && G->prefix) {
            prefix_seq = (int32_t)p->b.n_seqs;
            if (G->store)
                p->kv_stores[p->b.n_kv_stores++] = (vp_kv_copy){
                    .row = p->b.n_tokens + G->store_from, .slot = G->store_slot,
                    .len = G->prefix - G->store_from};
            add_sequence(p, jobs[G->first_job], 0, 0, G->prefix, -1, feature_base, pr->img_context);
            p->seqs[prefix_seq].rope_len = group_longest(jobs, n_jobs, p, g);
        }
        for (size_t i = 0; i < n_jobs; i++) {
            if (p->group_of[i] != g)
                continue;
            const vp_job *j = jobs[i];
            p->job_out[i] = p->b.n_out;
            for (size_t r = 0; r < j->n_responses; r++) {
                size_t seq_start = p->b.n_tokens;
                if (G->cached && G->store && i == G->first_job && r == 0) /* an extension */
                    p->kv_stores[p->b.n_kv_stores++] = (vp_kv_copy){
                        .row = seq_start, .slot = G->store_slot, .len = G->prefix - G->store_from};
                add_sequence(p, j, r, from, j->ids[r].n, prefix_seq, feature_base,
                             pr->img_context);
                for (size_t k = 0; k < j->score_pos[r].n; k++)
                    p->out_index[p->b.n_out++] =
                        (int32_t)(seq_start + (size_t)j->score_pos[r].v[k] - from);
            }
        }
    }
    p->b.n_tiles = n_tiles;
    p->b.tiles_u8 = p->tiles_u8;
    p->b.tokens = p->tokens;
    p->b.positions = p->positions;
    p->b.image_row = p->image_row;
    p->b.seqs = p->seqs;
    p->b.kv_loads = p->kv_loads;
    p->b.kv_stores = p->kv_stores;
    p->b.out_index = p->out_index;
    p->b.plus_id = pr->plus;
    p->b.minus_id = pr->minus;
    return vp_batch_validate(&p->b, n_tiles * (size_t)cfg->num_image_token, (size_t)cfg->llm.vocab,
                             err);
}

static double aggregate(const float *s, size_t n, vp_aggregation a)
{
    double acc = a == VP_AGG_PRODUCT ? 1.0 : a == VP_AGG_MIN ? INFINITY : a == VP_AGG_MAX ? -INFINITY : 0.0;
    for (size_t k = 0; k < n; k++) {
        switch (a) {
        case VP_AGG_MEAN: acc += s[k]; break;
        case VP_AGG_MIN: acc = s[k] < acc ? s[k] : acc; break;
        case VP_AGG_MAX: acc = s[k] > acc ? s[k] : acc; break;
        case VP_AGG_LAST: acc = s[k]; break;
        case VP_AGG_PRODUCT: acc *= s[k]; break;
        }
    }
    return a == VP_AGG_MEAN ? acc / (double)n : acc;
}

/* Stable ranking by descending score (insertion sort: N is small). */
static void rank(const vp_response_result *res, size_t n, size_t *order)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = i;
        while (k > 0 && res[order[k - 1]].score < res[i].score) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
}

static int fill_results(vp_job *j, const float *logits, const vp_forward_stats *st,
                        size_t tokens_per_tile, size_t shared, size_t computed, vp_error *err)
{
    vp_score_result *res = &j->result;
    /* a job retried after a failed pass (in halves, engine/sched) is filled again: drop the
     * old results */
    for (size_t r = 0; res->responses && r < res->n_responses; r++) {
        free(res->responses[r].step_scores);
        free(res->responses[r].step_logits);
    }
    free(res->responses);
    free(res->ranking);
    res->responses = calloc(j->n_responses, sizeof *res->responses);
    res->ranking = calloc(j->n_responses, sizeof *res->ranking);
    if (!res->responses || !res->ranking)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    res->n_responses = j->n_responses;
    for (size_t r = 0; r < j->n_responses; r++) {
        vp_response_result *rr = &res->responses[r];
        size_t n = j->score_pos[r].n;
        rr->n_steps = n;
        rr->step_scores = malloc(n * sizeof *rr->step_scores);
        rr->step_logits = malloc(2 * n * sizeof *rr->step_logits);
        if (!rr->step_scores || !rr->step_logits)
            return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
        for (size_t k = 0; k < n; k++) {
            float lp = logits[2 * k], lm = logits[2 * k + 1];
            rr->step_logits[2 * k] = lp;
            rr->step_logits[2 * k + 1] = lm;
            /* softmax over [+, -], probability of + */
            rr->step_scores[k] = (float)(1.0 / (1.0 + exp((double)lm - (double)lp)));
        }
        rr->score = aggregate(rr->step_scores, n, j->aggregation);
        logits += 2 * n;
    }
    if (vp_job_expand_results(j, err)) /* a request's repeats get their copies */
        return -1;
    rank(res->responses, res->n_responses, res->ranking);
    res->usage.prompt_tokens = j->prompt_tokens;
    res->usage.image_tiles = j->n_tiles;
    res->usage.image_tokens = j->n_tiles * tokens_per_tile;
    res->usage.shared_prefix_tokens = shared;
    res->usage.computed_tokens = computed;
    res->timing.vision = st->vision_ms;
    res->timing.language = st->language_ms;
    return 0;
}

/* Widenings one pass may go through (fp16 -> bf16 is one). */
#define VP_WIDEN_ATTEMPTS 2

/* Packs jobs into one pass and runs it, again from a fresh packing in a wider number
 * format after an overflow (the prefix cache it consulted holds rows in the old format).
 * On success the cache entries it wrote are valid and *logits holds its outputs; on
 * failure the caller ends the cache's pass (vp_prefix_cache_end, not ok). 1: a warm-up
 * pass with a job that would store nothing, not run (p says which: its group's store). */
static int run_pass(vp_engine *e, vp_job *const *jobs, size_t n_jobs, const warm_pass *warm,
                    packed *p, float **logits, vp_forward_stats *st, vp_error *err)
{
    for (int attempt = 0;; attempt++) {
        int packed_rc = pack_jobs(e, jobs, n_jobs, warm, p, err);
        if (packed_rc)
            return packed_rc;
        *logits = malloc((p->b.n_out ? p->b.n_out : 1) * 2 * sizeof **logits);
        if (!*logits)
            return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
        bool overflow = false;
        vp_error pass_err = {0}; /* err only for the attempt that ends the run */
        if (!vp_engine_run_backend(e, &p->b, *logits, st, &overflow, &pass_err)) {
            if (warm)
                vp_prefix_cache_end_warm_up(vp_engine_prefix_cache(e));
            else
                vp_prefix_cache_end(vp_engine_prefix_cache(e), true);
            return 0;
        }
        if (!overflow || warm || attempt == VP_WIDEN_ATTEMPTS ||
            vp_engine_widen(e, &pass_err) != 1) {
            if (err)
                *err = pass_err;
            return -1;
        }
        vp_prefix_cache_end(vp_engine_prefix_cache(e), false);
        vp_prefix_cache_clear(vp_engine_prefix_cache(e));
        free(*logits);
        *logits = NULL;
        packed_free(p);
        memset(p, 0, sizeof *p);
        *st = (vp_forward_stats){0};
    }
}

/* The warm-up pass's synthetic jobs: [n] of them, rows in all. */
typedef struct warm_set {
    vp_job *jobs, **list; /* [n_jobs] */
    vp_ids *ids, *pos;    /* [n_jobs] their one response and score position */
    int32_t *at;
    size_t *group, *tokens; /* [n_jobs] the group each serves, the tokens it computes */
    size_t n, rows, budget;
} warm_set;

/* Adds a synthetic job for group g when its cached start does not pay to load and the
 * rest can be stored. */
static bool add_warm_up(vp_engine *e, vp_job *const *jobs, const prefix_group *G, size_t g,
                        warm_set *w)
{
    vp_prefix_cache *c = vp_engine_prefix_cache(e);
    const vp_job *rep = jobs[G->first_job];
    size_t P = G->prefix, N = G->n_responses, slot = 0;
    if (N < 2 || !P)
        return false;
    size_t k = usable_hit(c, e, rep, P, &slot); /* none when the rest needs tiles */
    vp_prefix_run runs[VP_PREFIX_CACHE_MAX_RUNS];
    if (!k || k >= P || N * k > (N - 1) * P || (w->budget && w->rows + P + 1 > w->budget) ||
        vp_prefix_cache_runs(c, slot, k, runs) >= VP_PREFIX_CACHE_MAX_RUNS)
        return false; /* nothing cached, all of it, loading pays (the pass does it), or the
                       * rest could not be stored (no room in the pass, a chain too long) */
    size_t n = w->n++;
    w->rows += P + 1;
    w->group[n] = g;
    w->tokens[n] = P + 1 - k;
    w->ids[n] = (vp_ids){.v = rep->ids[0].v, .n = P + 1};
    w->at[n] = (int32_t)P;
    w->pos[n] = (vp_ids){.v = &w->at[n], .n = 1};
    vp_job *j = &w->jobs[n];
    *j = *rep; /* its tiles and images, borrowed: never freed as a job */
    j->n_responses = j->n_requested = 1;
    j->ids = &w->ids[n];
    j->score_pos = &w->pos[n];
    j->prefix_len = 0;
    j->share_cap = P;
    memset(&j->result, 0, sizeof j->result);
    w->list[n] = j;
    return true;
}

/* The warm-up pass. A group whose prefix starts with cached rows (its image, asked another
 * question before) loads them only when that computes fewer tokens than the prefix once:
 * with one level of prefix in the backend interface, each response would compute the
 * rest of the prefix itself. Past that point (many responses, a long question) the pass
 * would compute the whole prefix, its image and vision encoder included. Such groups get
 * a pass of their own first: the prefix and one more token of their first response,
 * which loads the cached start, computes the rest once and stores it as an extension (a
 * job of one response always loads); the pass proper then loads the whole prefix. A job
 * whose rest could not be stored (no room for its ids on the host) is dropped before the
 * pass runs. Groups of several questions are warmed as one group (the rows their
 * questions share); look_up_group may split them in the pass proper. It costs a small
 * pass and saves the image's rows and tiles. It only saves work: when it fails (out of
 * memory, an overflow), the pass proper computes those prefixes as before, unless the
 * device failed. warmed[i]: job i's group had one; tokens[first job]: what it computed
 * for that group; *st: its time. */
static int warm_up(vp_engine *e, vp_job *const *jobs, size_t n_jobs, bool *warmed,
                   size_t *tokens, vp_forward_stats *st, vp_error *err)
{
    vp_prefix_cache *c = vp_engine_prefix_cache(e);
    vp_prefix_cache_stats held;
    vp_prefix_cache_stats_get(c, &held);
    if (!c || !n_jobs || !held.entries) /* nothing cached: nothing to warm */
        return 0;
    packed groups = {0};
    size_t n_groups, n_tiles, n_out;
    warm_set w = {.jobs = calloc(n_jobs, sizeof *w.jobs), .list = calloc(n_jobs, sizeof *w.list),
                  .ids = calloc(n_jobs, sizeof *w.ids), .pos = calloc(n_jobs, sizeof *w.pos),
                  .at = calloc(n_jobs, sizeof *w.at), .group = calloc(n_jobs, sizeof *w.group),
                  .tokens = calloc(n_jobs, sizeof *w.tokens),
                  .budget = vp_engine_opts(e)->max_batch_tokens};
    vp_error why = {0};
    int rc = !w.jobs || !w.list || !w.ids || !w.pos || !w.at || !w.group || !w.tokens
                 ? vp_fail(&why, VP_ERR_NOMEM, NULL, "out of memory")
                 : group_jobs(e, jobs, n_jobs, false, &groups, &n_groups, &n_tiles, &n_out, &why);
    for (size_t g = 0; rc == 0 && g < n_groups; g++)
        add_warm_up(e, jobs, &groups.groups[g], g, &w);
    /* each alone: grouped, jobs asking other questions of one image would share only the
     * image, and store nothing. Jobs that could store nothing are dropped, then again */
    warm_pass terms = {.keep = jobs, .n_keep = n_jobs};
    while (rc == 0 && w.n) {
        packed p = {0};
        float *logits = NULL;
        rc = run_pass(e, w.list, w.n, &terms, &p, &logits, st, &why);
        vp_prefix_cache_end(c, false); /* no-op after success */
        size_t kept = 0;
        for (size_t x = 0; rc == 1 && x < w.n; x++)
            if (p.groups[p.group_of[x]].store) {
                w.list[kept] = w.list[x];
                w.group[kept] = w.group[x];
                w.tokens[kept++] = w.tokens[x];
            }
        free(logits);
        packed_free(&p);
        if (rc != 1)
            break;
        w.n = kept;
        rc = 0;
    }
    /* its time counts for the jobs of the groups it served, its tokens for their first */
    for (size_t x = 0; rc == 0 && x < w.n; x++) {
        tokens[groups.groups[w.group[x]].first_job] += w.tokens[x];
        for (size_t i = 0; i < n_jobs; i++)
            warmed[i] |= groups.group_of[i] == w.group[x];
    }
    packed_free(&groups);
    free(w.jobs);
    free(w.list);
    free(w.ids);
    free(w.pos);
    free(w.at);
    free(w.group);
    free(w.tokens);
    if (rc == 0)
        return 0;
    if (why.kind == VP_ERR_DEVICE) { /* the pass proper would meet it too */
        if (err)
            *err = why;
        return -1;
    }
    VP_LOGW(NULL, "a prefix cache warm-up pass failed (%s): the pass computes those prefixes",
            why.message);
    memset(warmed, 0, n_jobs * sizeof *warmed);
    memset(tokens, 0, n_jobs * sizeof *tokens);
    *st = (vp_forward_stats){0};
    return 0;
}

int vp_engine_run(vp_engine *e, vp_job *const *jobs, size_t n_jobs, vp_error *err)
{
    packed p = {0};
    float *logits = NULL;
    vp_forward_stats st = {0}, warm_st = {0};
    int rc = -1;
    size_t nj = n_jobs ? n_jobs : 1;
    bool *warmed = calloc(nj, sizeof *warmed);
    size_t *warm_tokens = calloc(nj, sizeof *warm_tokens);
    if (!warmed || !warm_tokens) {
        vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    if (warm_up(e, jobs, n_jobs, warmed, warm_tokens, &warm_st, err) ||
        run_pass(e, jobs, n_jobs, NULL, &p, &logits, &st, err))
        goto out;
    /* a warm-up's time counts for the jobs of the groups it served, its tokens for each
     * group's first job */
    vp_forward_stats with_warm = {.vision_ms = st.vision_ms + warm_st.vision_ms,
                                  .language_ms = st.language_ms + warm_st.language_ms};
    for (size_t i = 0; i < n_jobs; i++) {
        /* the group's first job is charged for computing the shared prefix */
        const prefix_group *G = &p.groups[p.group_of[i]];
        size_t from = G->cached ? G->cached : G->prefix;
        size_t shared = G->cached || G->n_responses > 1 ? from : 0;
        size_t computed = (G->first_job == i && !G->cached ? from : 0) + warm_tokens[i];
        for (size_t r = 0; r < jobs[i]->n_responses; r++)
            computed += jobs[i]->ids[r].n - from;
        jobs[i]->result.usage.cached_prefix_tokens = G->cached;
        if (fill_results(jobs[i], logits + 2 * p.job_out[i], warmed[i] ? &with_warm : &st,
                         (size_t)vp_engine_config(e)->num_image_token, shared, computed, err))
            goto out;
    }
    rc = 0;
out:
    vp_prefix_cache_end(vp_engine_prefix_cache(e), false); /* no-op after success */
    free(logits);
    free(warmed);
    free(warm_tokens);
    packed_free(&p);
    return rc;
}
