/* Encodes strings with the vprm tokenizer, for the oracle suite.
 *   tok_encode --dir DIR | --model FILE  IN OUT
 * IN: records of [u32 little-endian byte length][bytes]. OUT: one line per record,
 * the ids separated by spaces, or "ERR <kind> <message>" when encoding fails.
 *   tok_encode --dir DIR | --model FILE --info
 * prints n_ids, bos/eos/unk ids and a few lookups (for the suite's sanity checks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tokenizer.h"
#include "engine/util/file.h"

static int load(const char *flag, const char *arg, vp_tokenizer **tok, vp_error *err)
{
    if (strcmp(flag, "--dir") == 0)
        return vp_tokenizer_load(arg, tok, err);
    if (strcmp(flag, "--model") == 0)
        return vp_tokenizer_load_model_file(arg, tok, err);
    return vp_fail(err, VP_ERR_BAD_REQUEST, NULL, "unknown option %s", flag);
}

static int print_info(const vp_tokenizer *tok)
{
    static const char *const specials[] = {"<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>",
                                           "<img>", "</img>", "<IMG_CONTEXT>"};
    printf("n_ids %zu\nbos %d\neos %d\nunk %d\n", vp_tokenizer_n_ids(tok),
           (int)vp_tokenizer_bos_id(tok), (int)vp_tokenizer_eos_id(tok),
           (int)vp_tokenizer_unk_id(tok));
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++)
        printf("special %s %d\n", specials[i], (int)vp_tokenizer_special_id(tok, specials[i]));
    printf("piece + %d\npiece - %d\n", (int)vp_tokenizer_piece_id(tok, "+"),
           (int)vp_tokenizer_piece_id(tok, "-"));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5 && !(argc == 4 && strcmp(argv[3], "--info") == 0)) {
        fprintf(stderr, "usage: %s --dir DIR|--model FILE IN OUT | --info\n", argv[0]);
        return 2;
    }
    vp_error err = {0};
    vp_tokenizer *tok;
    if (load(argv[1], argv[2], &tok, &err) != 0) {
        fprintf(stderr, "tok_encode: %s\n", err.message);
        return 1;
    }
    if (argc == 4) {
        print_info(tok);
        vp_tokenizer_free(tok);
        return 0;
    }
    uint8_t *in;
    size_t in_len;
    if (vp_read_file(argv[3], 0, &in, &in_len, &err) != 0) {
        fprintf(stderr, "tok_encode: %s\n", err.message);
        vp_tokenizer_free(tok);
        return 1;
    }
    FILE *out = fopen(argv[4], "w");
    if (!out) {
        perror(argv[4]);
        free(in);
        vp_tokenizer_free(tok);
        return 1;
    }
    int rc = 0;
    vp_ids ids = {0};
    size_t pos = 0, records = 0;
    while (pos < in_len) {
        if (in_len - pos < 4) {
            fprintf(stderr, "tok_encode: truncated record header at byte %zu\n", pos);
            rc = 1;
            break;
        }
        size_t n = (size_t)in[pos] | (size_t)in[pos + 1] << 8 | (size_t)in[pos + 2] << 16 |
                   (size_t)in[pos + 3] << 24;
        pos += 4;
        if (n > in_len - pos) {
            fprintf(stderr, "tok_encode: record %zu runs past the end\n", records);
            rc = 1;
            break;
        }
        ids.n = 0;
        if (vp_tokenizer_encode(tok, (const char *)in + pos, n, &ids, &err) != 0) {
            fprintf(out, "ERR %s %s\n", vp_err_type(err.kind), err.message);
        } else {
            for (size_t i = 0; i < ids.n; i++)
                fprintf(out, i ? " %d" : "%d", (int)ids.v[i]);
            fputc('\n', out);
        }
        pos += n;
        records++;
    }
    if (fclose(out) != 0)
        rc = 1;
    vp_ids_free(&ids);
    free(in);
    vp_tokenizer_free(tok);
    return rc;
}
