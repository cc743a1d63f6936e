/* Shared by `vprm score` and `vprm tokenize`: options, the request file, images from
 * the command line, and opening the engine. */
#ifndef VP_CLI_REQUEST_H
#define VP_CLI_REQUEST_H

#include "engine/engine.h"
#include "proto/request.h"

typedef struct cli_request_args {
    const char *model_dir;
    const char *request_path;  /* "-" = stdin */
    const char *images[16];    /* --image FILE (replace the request's images) */
    int n_images;
    const char *backend;
    int threads;
    long long random_weights;  /* --random-weights SEED; -1 = load the checkpoint */
} cli_request_args;

/* An integer option's value v in lo..hi into *out; otherwise prints "vprm CMD: OPT wants an
 * integer in LO..HI, not 'V'" and returns -1. */
int cli_int_option(const char *cmd, const char *opt, const char *v, long long lo, long long hi,
                   long long *out);

/* Writes text and a newline to stdout: 0, or 1 and err when it could not be written (a
 * full disk, a closed pipe), so the command does not exit 0 having printed nothing. */
int cli_write_answer(const char *text, vp_error *err);

/* Parses argv; prints usage to stdout for --help (returns 1) or an error (returns -1). */
int cli_request_parse_args(int argc, char **argv, const char *cmd, const char *summary,
                           cli_request_args *a);
/* Reads and parses the request, then replaces its images by the --image files. */
int cli_request_load(const cli_request_args *a, vp_score_request *req, vp_error *err);

/* A request loaded, an engine opened and the request prepared: what score and tokenize
 * share. backend "none" opens no compute backend (tokenizing needs none). */
typedef struct cli_session {
    vp_score_request req;
    vp_engine *engine;
    vp_job *job;
    vp_error err;
    int have_req;
} cli_session;

int cli_session_open(const cli_request_args *a, const char *backend, cli_session *s);
/* Frees everything; when failed, prints "vprm CMD: param: message" on stderr. */
void cli_session_close(cli_session *s, const char *cmd, int failed);

#endif
