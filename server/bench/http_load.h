/* vprm bench --url URL ...: the HTTP load benchmark (see http_load.c). */
#ifndef VP_HTTP_LOAD_H
#define VP_HTTP_LOAD_H

int vp_bench_http_main(int argc, char **argv);

#endif
