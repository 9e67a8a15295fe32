/* bench/bench_main.c — the meson benchmark executable `fm_bench`: the same code as
 * `flashmask bench` (tools/cmd_bench.c), runnable through `meson test --benchmark`.
 * Layer: bench, on top of the tools CLI helpers and the library. */
/* Declared here as well as in tools/commands.h, so the benchmark does not depend on the
 * subcommand table. */
int cmd_bench(int argc, char **argv);

int main(int argc, char **argv)
{
    return cmd_bench(argc, argv);
}
