/* Identical responses of one request (an RL group's repeated completions, a Best-of-N
 * sample drawn twice) are computed once: the job keeps its distinct responses, and
 * source maps each requested response to its distinct one. Identical ids and score
 * positions make identical inputs to the model, so the copy is the score the reference
 * gives each one computed apart. */
#include <stdlib.h>
#include <string.h>

#include "engine/job.h"
#include "engine/util/hash64.h"

static bool same_ids(const vp_ids *a, const vp_ids *b)
{
    return a->n == b->n && !memcmp(a->v, b->v, a->n * sizeof *a->v);
}

int vp_job_dedup(vp_job *j, vp_error *err)
{
    size_t n = j->n_responses;
    j->n_requested = n;
    j->source = malloc((n ? n : 1) * sizeof *j->source);
    /* an open-addressing table of distinct responses by their ids' hash: a request of many
     * responses is not compared pair by pair */
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    size_t *slot = malloc(cap * sizeof *slot); /* distinct index + 1, 0 = empty */
    uint64_t *hash = malloc((n ? n : 1) * sizeof *hash);
    if (!j->source || !slot || !hash) {
        free(slot);
        free(hash);
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    }
    memset(slot, 0, cap * sizeof *slot);
    size_t distinct = 0;
    for (size_t r = 0; r < n; r++) {
        uint64_t h = vp_hash64(j->ids[r].v, j->ids[r].n * sizeof *j->ids[r].v);
        size_t s = (size_t)h & (cap - 1);
        for (; slot[s]; s = (s + 1) & (cap - 1)) {
            size_t u = slot[s] - 1;
            if (hash[u] == h && same_ids(&j->ids[u], &j->ids[r]) &&
                same_ids(&j->score_pos[u], &j->score_pos[r]))
                break;
        }
        if (slot[s]) { /* a repeat of distinct response slot[s] - 1 */
            j->source[r] = slot[s] - 1;
            vp_ids_free(&j->ids[r]);
            vp_ids_free(&j->score_pos[r]);
            continue;
        }
        j->ids[distinct] = j->ids[r];
        j->score_pos[distinct] = j->score_pos[r];
        hash[distinct] = h;
        j->source[r] = distinct;
        slot[s] = ++distinct;
    }
    for (size_t r = distinct; r < n; r++) { /* moved or freed: no double free */
        memset(&j->ids[r], 0, sizeof j->ids[r]);
        memset(&j->score_pos[r], 0, sizeof j->score_pos[r]);
    }
    j->n_responses = distinct;
    free(slot);
    free(hash);
    return 0;
}

/* A copy of n floats (NULL when n is 0 or memory is short: *ok false then). */
static float *copy_floats(const float *v, size_t n, bool *ok)
{
    float *c = n ? malloc(n * sizeof *c) : NULL;
    if (n && !c)
        *ok = false;
    else if (n)
        memcpy(c, v, n * sizeof *c);
    return c;
}

int vp_job_expand_results(vp_job *j, vp_error *err)
{
    vp_score_result *res = &j->result;
    size_t n = j->n_requested;
    if (n == j->n_responses) /* no repeats: source is the identity, nothing to copy */
        return 0;
    vp_response_result *all = calloc(n ? n : 1, sizeof *all);
    if (!all)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    bool ok = true;
    for (size_t r = 0; r < n; r++) {
        const vp_response_result *u = &res->responses[j->source[r]];
        all[r] = *u;
        all[r].step_scores = copy_floats(u->step_scores, u->n_steps, &ok);
        all[r].step_logits = copy_floats(u->step_logits, 2 * u->n_steps, &ok);
    }
    size_t *ranking = calloc(n ? n : 1, sizeof *ranking);
    if (!ok || !ranking) {
        for (size_t r = 0; r < n; r++) {
            free(all[r].step_scores);
            free(all[r].step_logits);
        }
        free(all);
        free(ranking);
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    }
    for (size_t u = 0; u < res->n_responses; u++) {
        free(res->responses[u].step_scores);
        free(res->responses[u].step_logits);
    }
    free(res->responses);
    free(res->ranking);
    res->responses = all;
    res->ranking = ranking;
    res->n_responses = n;
    return 0;
}
