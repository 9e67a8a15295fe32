/* tools/commands.h — the table of `flashmask` subcommands (layer: tools CLI, on top of
 * io/, oracle/ and the implementations).
 *
 * Each subcommand lives in its own file tools/cmd_<name>.c that defines
 *     int cmd_<name>(int argc, char **argv);   (argv[0] is the subcommand's name)
 * returning a process exit code: 0 ok, 2 invalid input, 3 implementation unavailable
 * (fm_status_exit_code), printing errors as "flashmask <name>: <status>: <message>".
 *
 * TO ADD A SUBCOMMAND: write tools/cmd_<name>.c and add ONE line to FM_COMMANDS below.
 * That is the only edit: tools/meson.build reads this list and compiles cmd_<name>.c for
 * every line that starts with "FM_COMMAND(" (keep one entry per line, in that exact form).
 */
#ifndef FM_TOOLS_COMMANDS_H
#define FM_TOOLS_COMMANDS_H

/* FM_COMMAND(name, one-line help), in the order `flashmask help` lists them. */
#define FM_COMMANDS \
FM_COMMAND(masks, "list the mask families and their parameters") \
FM_COMMAND(gen, "write a case directory: inputs, mask and the reference's expected outputs") \
FM_COMMAND(run, "run one implementation on a case directory and write its results") \
FM_COMMAND(check, "judge a candidate's results on a case by the FlashAttention pass rule") \
FM_COMMAND(gen_suite, "write the standard suite of cases (every family, dtype, GQA, Sq != Sk)") \
FM_COMMAND(check_suite, "judge a directory of candidate results against a suite") \
FM_COMMAND(demo, "every mask family: the reference against every available implementation") \
FM_COMMAND(version, "print the version and which implementations are available here") \
FM_COMMAND(bench, "CPU benchmark: GFLOP/s from allowed pairs vs OpenBLAS sgemm, per mask family") \
FM_COMMAND(show, "draw a mask as an SVG picture: tiles coloured by classification, densities") \
FM_COMMAND(gen_dense, "write a dense-mask case (random, scrambled band, QK-/Hash-sparse)") \
FM_COMMAND(run_dense, "run a dense-mask case: column form or BBM, RCM, QK-/Hash-sparse") \
FM_COMMAND(show_dense, "a dense-mask case's form, BBM tile counts, RCM effect, tile picture") \
/* end of FM_COMMANDS: every entry above ends with a backslash */

typedef struct fm_command {
    const char *name;
    const char *help;                 /* one line, shown by `flashmask help` */
    int (*fn)(int argc, char **argv); /* returns the exit code */
} fm_command;

/* One declaration per table line. */
#define FM_COMMAND(name, help) int cmd_##name(int argc, char **argv);
FM_COMMANDS
#undef FM_COMMAND

#endif
