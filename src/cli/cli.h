/* SPDX-License-Identifier: Apache-2.0 */
/* The `trellis` command line: one binary, one subcommand per component. Each
 * subcommand is a `struct tr_cli_cmd` with its own --help text. */
#ifndef TR_CLI_CLI_H
#define TR_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"
#include "http/server.h"

struct tr_cli_cmd {
    const char *name;
    const char *summary; /* one line for `trellis help` */
    const char *usage;   /* full --help text */
    bool serving;        /* usage is followed by tr_serve_opts_usage */
    bool hidden;         /* internal: not listed by `trellis help` */
    int (*run)(int argc, char **argv);
};

extern const struct tr_cli_cmd tr_cli_cmd_echo;
extern const struct tr_cli_cmd tr_cli_cmd_server;
extern const struct tr_cli_cmd tr_cli_cmd_services;
extern const struct tr_cli_cmd tr_cli_cmd_kv;
extern const struct tr_cli_cmd tr_cli_cmd_register;
extern const struct tr_cli_cmd tr_cli_cmd_deregister;
extern const struct tr_cli_cmd tr_cli_cmd_proxy;
extern const struct tr_cli_cmd tr_cli_cmd_sidecar;
extern const struct tr_cli_cmd tr_cli_cmd_up;
extern const struct tr_cli_cmd tr_cli_cmd_ps;
extern const struct tr_cli_cmd tr_cli_cmd_scale;
extern const struct tr_cli_cmd tr_cli_cmd_rollout;
extern const struct tr_cli_cmd tr_cli_cmd_logs;
extern const struct tr_cli_cmd tr_cli_cmd_down;
extern const struct tr_cli_cmd tr_cli_cmd_child;

/* Options every serving subcommand accepts. */
struct tr_serve_opts {
    const char *listen;     /* "127.0.0.1:8080" */
    unsigned workers;       /* 0 = one per core */
    uint64_t drain_ms;      /* --drain-timeout */
    struct tr_http_limits limits;
};

/* Text for the common options, to append to a subcommand's usage. */
extern const char tr_serve_opts_usage[];

void tr_serve_opts_init(struct tr_serve_opts *o, const char *default_listen);
/* Tries to consume option `name` (without dashes) with `value`. Returns 1 if it was a
 * serving option, 0 if not, -1 (after printing why) if its value is invalid. */
int tr_serve_opts_parse(struct tr_serve_opts *o, const char *name, const char *value);

/* Is `name` one of the serving options (they all take a value)? */
bool tr_serve_opts_known(const char *name);

/* Splits "--name=value" / "--name value". Returns the option name (without dashes)
 * and sets *value (NULL for flags) and advances *i. NULL for a positional argument. */
const char *tr_cli_next_opt(int argc, char **argv, int *i, const char **value,
                            bool (*takes_value)(const char *name));

/* Prints "trellis <cmd>: <msg>" and the hint to use --help; returns 2. */
int tr_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
