/* Subcommands of the single vprm binary; each lives in its own cmd_*.c file and
 * returns the process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef VP_COMMANDS_H
#define VP_COMMANDS_H

int cmd_serve(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_openapi(int argc, char **argv);

#endif
