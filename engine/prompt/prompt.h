/* The scoring prompt (MODEL.md section 1): internvl2_5 template, one user/assistant
 * pair per step, image placeholders, token ids and score positions.
 *
 * Tokenization follows the reference: the prompt is split at the template's special
 * tokens and each text chunk is encoded on its own. Text from the request (question,
 * steps) is always plain text: "<|im_end|>" written in a step is encoded as characters,
 * never as the control token (Hugging Face's default would emit the token and let a
 * request break the prompt). */
#ifndef VP_PROMPT_H
#define VP_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer/tokenizer.h"
#include "engine/util/err.h"
#include "engine/util/vec.h"
#include "proto/request.h"

/* The system prompt VisualPRM was trained with (used when config.json has none). */
extern const char VP_PRM_SYSTEM_PROMPT[];

typedef struct vp_prompt_ctx {
    const vp_tokenizer *tok;
    int32_t bos, im_start, im_end, img_start, img_end, img_context;
    int32_t plus, minus;      /* vocabulary rows scored at each step */
    vp_ids system_chunk;      /* "system\n" + system prompt */
    vp_ids newline_chunk;     /* "\n" between turns */
    vp_ids assistant_chunk;   /* "assistant\n+": its last token is "+" */
    int num_image_token;      /* <IMG_CONTEXT> tokens per tile */
} vp_prompt_ctx;

int vp_prompt_init(vp_prompt_ctx *p, const vp_tokenizer *tok, const char *system_message,
                   int num_image_token, vp_error *err);
void vp_prompt_free(vp_prompt_ctx *p);

/* Number of "<image>" placeholders in a question. */
size_t vp_prompt_count_placeholders(const vp_text *question);

/* Builds ids (BOS first) and the score positions (one per step: the index of the token
 * whose next-token logits give the step score) for one response. image_rows[k] gets,
 * for the k-th token, -1 or the running index of that <IMG_CONTEXT> token (may be NULL). */
int vp_prompt_build(const vp_prompt_ctx *p, const vp_text *question, const int *tiles_per_image,
                    size_t n_images, const vp_text *steps, size_t n_steps, vp_ids *ids,
                    vp_ids *score_positions, vp_error *err);

#endif
