/* vprm bench --model DIR: the in-process benchmark of the engine on the standard
 * workloads (another issue). cmd_bench.c hands it the command line unchanged. */
#ifndef VP_BENCH_ENGINE_H
#define VP_BENCH_ENGINE_H

int bench_engine_main(int argc, char **argv);

#endif
