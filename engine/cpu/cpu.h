/* The fp32 reference backend (vp_backend_cpu in engine/backend.h), plus entry points
 * for tests and tools that build a model in memory or want the image features alone.
 *
 * At init every weight it multiplies with is converted once to fp32 in its own buffers
 * (4 bytes per parameter: about 30 GiB at 8B). It is the ground truth for tests on
 * tiny and test-sized models, not a production path for the 8B model. The token
 * embedding and LM head rows are read from the model's tensors as needed, so the
 * model (its weights) must outlive the backend. One forward at a time per backend
 * (it owns one thread pool); results do not depend on the thread count.
 *
 * Prefix sharing and dynamic NTK: a prefix's keys are rotated once, with the RoPE base
 * of the prefix sequence's rope_len, so forward refuses (VP_ERR_BAD_REQUEST) a sequence
 * whose rope_len gives a different base than its prefix's (only possible when some
 * rope_len exceeds max_position_embeddings); the caller must not share such a prefix. */
#ifndef VP_CPU_H
#define VP_CPU_H

#include <stddef.h>

#include "engine/backend.h"
#include "engine/model/config.h"
#include "engine/model/weights.h"
#include "engine/util/err.h"

/* Like vp_backend_cpu.init, from a config and weights built by hand (no vp_model).
 * cfg is copied (except system_message); w and its tensors must outlive the backend. */
int vp_cpu_init_weights(vp_backend **out, const vp_model_config *cfg, const vp_weights *w,
                        const vp_backend_options *opt, vp_error *err);

/* Vision encoder + projector alone: tiles[n_tiles][channels][S][S] ->
 * features[n_tiles * num_image_token][llm hidden]. */
int vp_cpu_vision(vp_backend *b, const float *tiles, size_t n_tiles, float *features,
                  vp_error *err);

/* Number of threads of the backend's pool. */
int vp_cpu_threads(const vp_backend *b);

#endif
