/* Where a forward's GPU time goes, by phase: with VPRM_CUDA_PROFILE=1 the backend records
 * an event before each phase (norm, a matrix product, attention, ...) and, after the
 * forward, logs the time and the TFLOP/s of each phase summed over the layers. Off by
 * default: the events cost little but the per-forward log line is for measurements. */
#ifndef VP_CUDA_PROFILE_H
#define VP_CUDA_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include <cuda_runtime_api.h>

typedef struct cuda_profile {
    bool on;
    size_t n, cap;       /* marks recorded in this forward */
    bool truncated;      /* marks ran out: phases after that were not timed */
    cudaEvent_t *ev;
    const char **label;  /* the phase that starts at mark i (static strings) */
    double *flops;       /* its useful FLOPs, 0 when not counted */
} cuda_profile;

/* Reads VPRM_CUDA_PROFILE; 0 on success (also when off), -1 when events cannot be made. */
/* VPRM_CUDA_PROFILE=1 turns it on ("", "0" or unset: off); -2 for another value, -1 when
 * the events cannot be made. */
int cuda_prof_init(cuda_profile *p);
void cuda_prof_free(cuda_profile *p);
/* Starts phase `label` here on `stream`; no-op when off or when the marks are used up. */
void cuda_prof_mark(cuda_profile *p, cudaStream_t stream, const char *label, double flops);
/* After the stream has finished: logs the phases (largest first) and starts over. */
void cuda_prof_report(cuda_profile *p);
/* Drops the marks recorded so far (a forward that failed before its report). */
void cuda_prof_reset(cuda_profile *p);

#endif
