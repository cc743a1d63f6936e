/* vprm tokenize: the prompt ids, pieces and score positions of every response (the
 * body of POST /v1/tokenize). */
#include <stdio.h>
#include <stdlib.h>

#include "proto/response.h"
#include "server/cli/cli_request.h"
#include "server/cli/commands.h"

int cmd_tokenize(int argc, char **argv)
{
    cli_request_args a;
    int prc = cli_request_parse_args(argc, argv, "tokenize",
                                     "Prints, for every response of the request, the prompt's token "
                                     "ids (BOS first), their pieces and the score positions.",
                                     &a);
    if (prc)
        return prc > 0 ? 0 : 2;
    cli_session s;
    int failed = 1;
    if (cli_session_open(&a, "none", &s) == 0) {
        json_t *root = vp_response_tokenize_json("cli", vp_engine_config(s.engine)->name,
                                                 vp_engine_tokenizer(s.engine), s.job, &s.err);
        size_t len = 0;
        char *text = root ? vp_response_dump(root, &len, &s.err) : NULL;
        if (text) {
            failed = cli_write_answer(text, &s.err);
            free(text);
        }
    }
    cli_session_close(&s, "tokenize", failed);
    return failed;
}
