/* SPDX-License-Identifier: Apache-2.0 */
/* Entry point of the `trellis` binary: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "trellis/trellis.h"

static const struct tr_cli_cmd *const commands[] = {
    &tr_cli_cmd_server,
    &tr_cli_cmd_echo,
    &tr_cli_cmd_services,
    &tr_cli_cmd_kv,
    &tr_cli_cmd_register,
    &tr_cli_cmd_deregister,
    &tr_cli_cmd_proxy,
    &tr_cli_cmd_sidecar,
    &tr_cli_cmd_up,
    &tr_cli_cmd_ps,
    &tr_cli_cmd_scale,
    &tr_cli_cmd_rollout,
    &tr_cli_cmd_logs,
    &tr_cli_cmd_down,
    &tr_cli_cmd_child,
};

static void print_help(FILE *f)
{
    fprintf(f, "trellis %s - a runtime for distributed microservices\n\n"
               "Usage: trellis <command> [options]\n\nCommands:\n",
            trellis_version());
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (!commands[i]->hidden) {
            fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
        }
    }
    fprintf(f, "  %-10s %s\n", "version", "print the version");
    fprintf(f, "  %-10s %s\n", "help", "show this help, or a command's: trellis help echo");
    fprintf(f, "\nRun 'trellis <command> --help' for a command's options.\n");
}

static void print_usage(const struct tr_cli_cmd *c)
{
    fputs(c->usage, stdout);
    if (c->serving) {
        fputs("\n", stdout);
        fputs(tr_serve_opts_usage, stdout);
    }
}

static const struct tr_cli_cmd *find(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i]->name, name) == 0) {
            return commands[i];
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 && argc > 2 &&
        (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
        printf("Usage: trellis version\n\nPrints the version (same as trellis --version).\n");
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
        printf("trellis %s\n", trellis_version());
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (argc > 2 && find(argv[2]) != NULL) {
            print_usage(find(argv[2]));
            return 0;
        }
        print_help(stdout);
        return 0;
    }
    const struct tr_cli_cmd *c = find(cmd);
    if (c == NULL) {
        fprintf(stderr, "trellis: unknown command \"%s\"\n\n", cmd);
        print_help(stderr);
        return 2;
    }
    /* Hidden commands take other programs' arguments (trellis __child runs a service). */
    for (int i = 2; i < argc && !c->hidden; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(c);
            return 0;
        }
    }
    return c->run(argc - 1, argv + 1);
}
