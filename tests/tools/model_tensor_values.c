/* model_tensor_values DIR NAME [INDEX...]: loads the model folder DIR with vp_model_load
 * (full validation), then prints tensor NAME as
 *   dtype ndim d0 d1 ...
 *   index value        (one line per INDEX, value as vp_tensor_get gives it, %.9g)
 * Used by tests/model/suite_safetensors.sh to compare with an independent reader. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/model/safetensors.h"
#include "engine/model/weights.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: model_tensor_values DIR NAME [INDEX...]\n");
        return 2;
    }
    vp_error err = {0};
    vp_model *m;
    if (vp_model_load(argv[1], &m, &err)) {
        fprintf(stderr, "model_tensor_values: %s\n", err.message);
        return 1;
    }
    vp_checkpoint ck;
    if (vp_checkpoint_open(argv[1], &ck, &err)) {
        fprintf(stderr, "model_tensor_values: %s\n", err.message);
        vp_model_free(m);
        return 1;
    }
    long k = vp_checkpoint_find(&ck, argv[2]);
    int rc = 0;
    if (k < 0) {
        fprintf(stderr, "model_tensor_values: no tensor %s\n", argv[2]);
        rc = 1;
    } else {
        const vp_tensor *t = ck.tensors[k];
        printf("%s %d", vp_dtype_name(t->dtype), t->ndim);
        for (int d = 0; d < t->ndim; d++)
            printf(" %lld", (long long)t->shape[d]);
        printf("\n");
        size_t n = vp_tensor_numel(t);
        for (int i = 3; i < argc; i++) {
            char *end;
            unsigned long long idx = strtoull(argv[i], &end, 10);
            if (*end || idx >= n) {
                fprintf(stderr, "model_tensor_values: bad index %s (numel %zu)\n", argv[i], n);
                rc = 1;
                break;
            }
            printf("%llu %.9g\n", idx, vp_tensor_get(t, (size_t)idx));
        }
    }
    vp_checkpoint_close(&ck);
    vp_model_free(m);
    return rc;
}
