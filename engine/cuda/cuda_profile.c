/* Phase timing of a forward with CUDA events (cuda_profile.h). */
#include "engine/cuda/cuda_profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/log.h"

#define PROFILE_MARKS 8192
#define PROFILE_PHASES 48

int cuda_prof_init(cuda_profile *p)
{
    memset(p, 0, sizeof *p);
    const char *env = getenv("VPRM_CUDA_PROFILE");
    if (!env || !strcmp(env, "") || !strcmp(env, "0"))
        return 0;
    if (strcmp(env, "1")) /* "off", "false"...: refused, not taken for on */
        return -2;
    p->ev = calloc(PROFILE_MARKS, sizeof *p->ev);
    p->label = calloc(PROFILE_MARKS, sizeof *p->label);
    p->flops = calloc(PROFILE_MARKS, sizeof *p->flops);
    if (!p->ev || !p->label || !p->flops)
        return -1;
    for (; p->cap < PROFILE_MARKS; p->cap++)
        if (cudaEventCreate(&p->ev[p->cap]) != cudaSuccess)
            return -1;
    p->on = true;
    return 0;
}

void cuda_prof_free(cuda_profile *p)
{
    for (size_t i = 0; i < p->cap; i++)
        cudaEventDestroy(p->ev[i]);
    free(p->ev), free(p->label), free(p->flops);
    memset(p, 0, sizeof *p);
}

void cuda_prof_reset(cuda_profile *p)
{
    p->n = 0;
    p->truncated = false;
}

void cuda_prof_mark(cuda_profile *p, cudaStream_t stream, const char *label, double flops)
{
    if (!p->on)
        return;
    bool end = !strcmp(label, "end");
    if (p->n + 1 >= p->cap && !end) { /* the last slot stays free for "end" */
        p->truncated = true;
        return;
    }
    if (p->n >= p->cap || cudaEventRecord(p->ev[p->n], stream) != cudaSuccess)
        return;
    p->label[p->n] = label;
    p->flops[p->n] = flops;
    p->n++;
}

typedef struct {
    const char *label;
    double ms, flops;
    size_t count;
} phase;

static int by_time(const void *a, const void *b)
{
    double x = ((const phase *)a)->ms, y = ((const phase *)b)->ms;
    return (x < y) - (x > y);
}

void cuda_prof_report(cuda_profile *p)
{
    if (!p->on || p->n < 2) {
        cuda_prof_reset(p);
        return;
    }
    phase ph[PROFILE_PHASES];
    size_t n_ph = 0;
    double total = 0;
    for (size_t i = 0; i + 1 < p->n; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, p->ev[i], p->ev[i + 1]) != cudaSuccess)
            continue;
        size_t k = 0;
        while (k < n_ph && strcmp(ph[k].label, p->label[i]))
            k++;
        if (k == n_ph) {
            if (n_ph == PROFILE_PHASES)
                continue;
            ph[n_ph++] = (phase){.label = p->label[i]};
        }
        ph[k].ms += ms, ph[k].flops += p->flops[i], ph[k].count++;
        total += ms;
    }
    qsort(ph, n_ph, sizeof *ph, by_time);
    char text[4096];
    size_t at = (size_t)snprintf(text, sizeof text, "cuda profile: %.2f ms in %zu marks%s;", total,
                                 p->n, p->truncated ? " (marks ran out: later phases counted "
                                                      "in the last one)" : "");
    for (size_t k = 0; k < n_ph && at < sizeof text; k++) {
        char rate[32] = "";
        if (ph[k].flops > 0 && ph[k].ms > 0)
            snprintf(rate, sizeof rate, " %.0f TF/s", ph[k].flops / (ph[k].ms * 1e-3) / 1e12);
        at += (size_t)snprintf(text + at, sizeof text - at, " %s %.2f ms x%zu%s;", ph[k].label,
                               ph[k].ms, ph[k].count, rate);
    }
    VP_LOGI("-", "%s", text);
    cuda_prof_reset(p);
}
