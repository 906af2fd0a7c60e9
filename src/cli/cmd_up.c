/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis up [trellis.yaml]`: runs a whole application in the foreground (see
 * docs/up.md), and `trellis __child`, the small exec wrapper every process trellis up
 * starts goes through. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cli/cli.h"
#include "up/manifest.h"
#include "up/up.h"

/* Present when the binary has the sidecar command; trellis up refuses manifests that need
 * sidecars otherwise. */
#pragma weak tr_cli_cmd_sidecar

static bool up_takes_value(const char *name)
{
    return strcmp(name, "f") == 0 || strcmp(name, "file") == 0;
}

static int run_up(int argc, char **argv)
{
    const char *file = NULL;
    bool quiet = false;
    for (int i = 1; i < argc;) {
        const char *value;
        const char *name = tr_cli_next_opt(argc, argv, &i, &value, up_takes_value);
        if (name == NULL) {
            if (file != NULL) {
                return tr_cli_usage_error("up", "more than one manifest: \"%s\" and \"%s\"", file,
                                          argv[i - 1]);
            }
            file = argv[i - 1];
        } else if (up_takes_value(name)) {
            if (value == NULL) {
                return tr_cli_usage_error("up", "-%s needs a file", name);
            }
            file = value;
        } else if (strcmp(name, "quiet") == 0 || strcmp(name, "q") == 0) {
            quiet = true;
        } else {
            return tr_cli_usage_error("up", "unknown option --%s", name);
        }
    }
    if (file == NULL) {
        file = "trellis.yaml";
    }
    struct tr_up_manifest *m = NULL;
    struct tr_conf_err err = {""};
    int rc = tr_up_manifest_load(file, &m, &err);
    if (rc == 0) {
        rc = tr_up_manifest_check_files(m, &err);
    }
    if (rc != 0) {
        fprintf(stderr, "trellis up: %s\n", err.msg);
        if (rc == -ENOENT && strcmp(file, "trellis.yaml") == 0 && m == NULL) {
            fprintf(stderr, "Run it where a trellis.yaml is, or name one: trellis up "
                            "examples/shop/trellis.yaml (see docs/up.md)\n");
        }
        tr_up_manifest_free(m);
        return 2;
    }
    bool have_sidecar = &tr_cli_cmd_sidecar != NULL;
    for (size_t i = 0; i < m->nservices && !have_sidecar; i++) {
        if (m->services[i].sidecar) {
            fprintf(stderr,
                    "trellis up: %s:%u:%u: services.%s: this trellis has no sidecar "
                    "command; set \"sidecar: false\" for the service or at the top "
                    "level\n",
                    m->file, m->services[i].pos.line, m->services[i].pos.col, m->services[i].name);
            tr_up_manifest_free(m);
            return 2;
        }
    }
    char exe[PATH_MAX];
    if (realpath("/proc/self/exe", exe) == NULL) {
        fprintf(stderr, "trellis up: cannot find my own binary: %s\n", strerror(errno));
        tr_up_manifest_free(m);
        return 1;
    }
    struct tr_up_options opts = {
        .exe = exe,
        .out_fd = quiet ? -1 : STDOUT_FILENO,
    };
    rc = tr_up_run(m, &opts);
    tr_up_manifest_free(m);
    return rc;
}

const struct tr_cli_cmd tr_cli_cmd_up = {
    .name = "up",
    .summary = "run an application from trellis.yaml: server, gateway, services, sidecars",
    .usage = "Usage: trellis up [trellis.yaml] [--quiet]\n\n"
             "Starts the server, the gateway and every replica of every service (each with\n"
             "its sidecar) described by the manifest, waits until all are healthy, prints a\n"
             "status table, then supervises them in the foreground: crashed processes are\n"
             "restarted with backoff, and every line they print is shown prefixed with its\n"
             "name (and kept in .trellis/logs/). Ctrl-C, SIGTERM or `trellis down` stops\n"
             "everything in order: gateway, services and sidecars, server.\n\n"
             "  -f, --file FILE   the manifest (default ./trellis.yaml)\n"
             "  -q, --quiet       print nothing; logs go to .trellis/logs/ only\n\n"
             "Manage it from another terminal in the same directory (or with -f FILE):\n"
             "trellis ps, trellis scale SERVICE=N, trellis rollout SERVICE, trellis logs,\n"
             "trellis down. The manifest is described in docs/up.md.\n",
    .run = run_up,
};

/* trellis __child PPID PROGRAM [ARGS...]: what trellis up spawns. Asks the kernel to kill
 * this process when its parent dies (the request survives exec), makes sure the parent
 * did not die already, then becomes PROGRAM. */
static int run_child(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "trellis __child: usage: trellis __child PPID PROGRAM [ARGS...]\n");
        return 127;
    }
    long parent = strtol(argv[1], NULL, 10);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        fprintf(stderr, "trellis __child: prctl: %s\n", strerror(errno));
    }
    if (getppid() != (pid_t)parent) {
        return 127;
    }
    execvp(argv[2], argv + 2);
    fprintf(stderr, "trellis: cannot run %s: %s\n", argv[2], strerror(errno));
    return 127;
}

const struct tr_cli_cmd tr_cli_cmd_child = {
    .name = "__child",
    .summary = "internal: how trellis up starts its processes",
    .usage = "Usage: trellis __child PPID PROGRAM [ARGS...] (internal to trellis up)\n",
    .hidden = true,
    .run = run_child,
};
