/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis ps`, `scale`, `rollout` and `down`: clients of a running trellis up's control
 * API. They find it through <dir>/.trellis/control, where <dir> is the directory of the
 * manifest given with -f (default: the current directory). */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "core/config.h"
#include "up/status.h"
#include "up/up.h"

#define OP_TIMEOUT_MS (30u * 60 * 1000) /* scale and rollout answer when done */

struct ctl {
    char dir[PATH_MAX];
    char addr[80];
    long pid;
    struct tr_cli_api api;
};

static bool takes_value(const char *name)
{
    return strcmp(name, "f") == 0 || strcmp(name, "file") == 0 || strcmp(name, "timeout") == 0;
}

static void dir_of(const char *file, char *out, size_t size)
{
    const char *slash = file != NULL ? strrchr(file, '/') : NULL;
    if (slash == NULL) {
        snprintf(out, size, ".");
    } else if (slash == file) {
        snprintf(out, size, "/");
    } else {
        snprintf(out, size, "%.*s", (int)(slash - file), file);
    }
}

/* Is `pid` a live process? A zombie (exited, not yet reaped by its parent) is not. */
static bool alive(long pid)
{
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM)) {
        return false;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    char buf[512];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren == NULL || paren[1] != ' ' || (paren[2] != 'Z' && paren[2] != 'X');
}

/* Reads .trellis/control. Returns 0; 1 after printing why when no trellis up runs there
 * (or -1 without printing when `none_ok`). */
static int ctl_find(const char *cmd, const char *file, struct ctl *c, bool none_ok)
{
    memset(c, 0, sizeof(*c));
    dir_of(file, c->dir, sizeof(c->dir));
    char path[PATH_MAX + 32];
    if (tr_up_state_path(c->dir, TR_UP_CONTROL_FILE, path, sizeof(path)) != 0) {
        fprintf(stderr, "trellis %s: %s: path too long\n", cmd, c->dir);
        return 1;
    }
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    long pid = doc != NULL ? (long)json_integer_value(json_object_get(doc, "pid")) : 0;
    const char *addr = doc != NULL ? json_string_value(json_object_get(doc, "addr")) : NULL;
    if (doc == NULL || addr == NULL || !alive(pid)) {
        json_decref(doc);
        if (none_ok) {
            return -1;
        }
        fprintf(stderr, "trellis %s: trellis up is not running in %s (%s)\n", cmd, c->dir,
                doc == NULL ? "no .trellis/control" : "stale .trellis/control");
        return 1;
    }
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    c->pid = pid;
    json_decref(doc);
    int rc = tr_cli_api_open(&c->api, cmd, c->addr);
    if (rc != 0) {
        return rc;
    }
    c->api.peer_name = "trellis up";
    c->api.response_timeout_ms = OP_TIMEOUT_MS;
    return 0;
}

/* Makes a call; prints the server's error and returns 1 unless the status is `want`. */
static int ctl_call(struct ctl *c, const char *what, const char *method, const char *target,
                    const char *body, int want, json_t **out)
{
    struct tr_cli_resp resp;
    int rc = tr_cli_api_call(&c->api, method, target,
                             body != NULL ? tr_slice_cstr(body) : TR_SLICE_NULL, &resp);
    if (rc != 0) {
        tr_cli_resp_dispose(&resp);
        return 1;
    }
    if (resp.status != want) {
        json_t *doc = json_loadb(tr_buf_data(&resp.body), resp.body.len, 0, NULL);
        const char *msg =
            json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
        if (msg != NULL) {
            fprintf(stderr, "trellis %s: %s\n", c->api.cmd, msg);
        } else {
            tr_cli_api_print_status(&c->api, what, &resp);
        }
        json_decref(doc);
        tr_cli_resp_dispose(&resp);
        return 1;
    }
    if (out != NULL) {
        *out = tr_cli_resp_json(&c->api, &resp);
        if (*out == NULL) {
            tr_cli_resp_dispose(&resp);
            return 1;
        }
    }
    tr_cli_resp_dispose(&resp);
    return 0;
}

/* Parses the options every command here takes; positional arguments are collected. */
static int parse(const char *cmd, int argc, char **argv, const char **file, bool *json,
                 uint64_t *timeout_ms, const char **pos, size_t max_pos, size_t *npos)
{
    *npos = 0;
    for (int i = 1; i < argc;) {
        const char *value;
        const char *name = tr_cli_next_opt(argc, argv, &i, &value, takes_value);
        if (name == NULL) {
            if (*npos == max_pos) {
                return tr_cli_usage_error(cmd, "unexpected argument \"%s\"", argv[i - 1]);
            }
            pos[(*npos)++] = argv[i - 1];
            continue;
        }
        if (takes_value(name) && value == NULL) {
            return tr_cli_usage_error(cmd, "--%s needs a value", name);
        }
        if (strcmp(name, "f") == 0 || strcmp(name, "file") == 0) {
            *file = value;
        } else if (strcmp(name, "json") == 0 && json != NULL) {
            *json = true;
        } else if (strcmp(name, "timeout") == 0 && timeout_ms != NULL) {
            if (tr_parse_duration_ms(value, timeout_ms) != 0) {
                return tr_cli_usage_error(cmd,
                                          "--timeout: expected a duration like 30s, got "
                                          "\"%s\"",
                                          value);
            }
        } else {
            return tr_cli_usage_error(cmd, "unknown option --%s", name);
        }
    }
    return 0;
}

/* ---- ps ---- */

static int run_ps(int argc, char **argv)
{
    const char *file = NULL;
    bool json = false;
    size_t npos;
    int rc = parse("ps", argc, argv, &file, &json, NULL, NULL, 0, &npos);
    if (rc != 0) {
        return rc;
    }
    struct ctl c;
    if ((rc = ctl_find("ps", file, &c, false)) != 0) {
        return rc;
    }
    json_t *st = NULL;
    rc = ctl_call(&c, "status", "GET", "/v1/status", NULL, 200, &st);
    tr_cli_api_close(&c.api);
    if (rc != 0) {
        return rc;
    }
    if (json) {
        tr_cli_print_json(st);
    } else {
        struct tr_buf out;
        tr_buf_init(&out);
        tr_up_status_format(st, &out);
        fwrite(tr_buf_data(&out), 1, out.len, stdout);
        tr_buf_dispose(&out);
    }
    json_decref(st);
    return 0;
}

const struct tr_cli_cmd tr_cli_cmd_ps = {
    .name = "ps",
    .summary = "show what trellis up runs: state, pid, ports, restarts, health, RSS",
    .usage = "Usage: trellis ps [-f trellis.yaml] [--json]\n\n"
             "One row for the server, the gateway and every replica: state (starting,\n"
             "running, unhealthy, backoff, crashloop, draining, stopping), pid, app port,\n"
             "sidecar port, restarts (app + sidecar), health (the app's health path), the\n"
             "registry's view, RSS and the last exit; then the total RSS of the Trellis\n"
             "processes (server, gateway, sidecars) and of the services.\n\n"
             "  -f, --file FILE   the manifest trellis up runs (default ./trellis.yaml)\n"
             "  --json            the full status document\n",
    .run = run_ps,
};

/* ---- scale ---- */

static int scale_one(struct ctl *c, const char *arg)
{
    const char *eq = strchr(arg, '=');
    uint64_t n = 0;
    if (eq == NULL || eq == arg || tr_slice_to_u64(tr_slice_cstr(eq + 1), &n) != 0 ||
        n > TR_UP_MAX_REPLICAS) {
        fprintf(stderr, "trellis scale: expected SERVICE=N with N from 0 to %d, got \"%s\"\n",
                TR_UP_MAX_REPLICAS, arg);
        return 2;
    }
    char svc[128];
    snprintf(svc, sizeof(svc), "%.*s", (int)(eq - arg), arg);
    struct tr_buf target;
    tr_cli_buf_init(&target);
    tr_buf_appendf(&target, "/v1/services/");
    tr_cli_url_escape(&target, tr_slice_cstr(svc), false);
    tr_buf_appendf(&target, "/scale");
    tr_buf_append(&target, "", 1);
    char body[64];
    snprintf(body, sizeof(body), "{\"replicas\": %llu}", (unsigned long long)n);
    json_t *res = NULL;
    int rc = ctl_call(c, "scale", "POST", tr_buf_data(&target), body, 200, &res);
    tr_buf_dispose(&target);
    if (rc != 0) {
        return rc;
    }
    printf("%s: %lld -> %lld replicas, %lld ready (%.1f s)\n", svc,
           (long long)json_integer_value(json_object_get(res, "from")),
           (long long)json_integer_value(json_object_get(res, "to")),
           (long long)json_integer_value(json_object_get(res, "ready")),
           (double)json_integer_value(json_object_get(res, "duration_ms")) / 1000.0);
    json_decref(res);
    return 0;
}

static int run_scale(int argc, char **argv)
{
    const char *file = NULL;
    const char *pos[TR_UP_MAX_SERVICES];
    size_t npos;
    int rc = parse("scale", argc, argv, &file, NULL, NULL, pos, TR_ARRAY_LEN(pos), &npos);
    if (rc != 0) {
        return rc;
    }
    if (npos == 0) {
        return tr_cli_usage_error("scale", "expected SERVICE=N, e.g. trellis scale order=4");
    }
    struct ctl c;
    if ((rc = ctl_find("scale", file, &c, false)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < npos && rc == 0; i++) {
        rc = scale_one(&c, pos[i]);
    }
    tr_cli_api_close(&c.api);
    return rc;
}

const struct tr_cli_cmd tr_cli_cmd_scale = {
    .name = "scale",
    .summary = "change a service's replica count in a running trellis up",
    .usage = "Usage: trellis scale SERVICE=N [SERVICE=N...] [-f trellis.yaml]\n\n"
             "Starts new replicas (each with its sidecar) or drains the highest-numbered ones\n"
             "(deregistered, dropped by the gateway, then stopped), and returns when every\n"
             "replica is ready or gone. Exit code 1 if that does not happen in time.\n",
    .run = run_scale,
};

/* ---- rollout ---- */

static int run_rollout(int argc, char **argv)
{
    const char *file = NULL;
    const char *pos[TR_UP_MAX_SERVICES];
    size_t npos;
    int rc = parse("rollout", argc, argv, &file, NULL, NULL, pos, TR_ARRAY_LEN(pos), &npos);
    if (rc != 0) {
        return rc;
    }
    if (npos == 0) {
        return tr_cli_usage_error("rollout", "expected a service name");
    }
    struct ctl c;
    if ((rc = ctl_find("rollout", file, &c, false)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < npos && rc == 0; i++) {
        struct tr_buf target;
        tr_cli_buf_init(&target);
        tr_buf_appendf(&target, "/v1/services/");
        tr_cli_url_escape(&target, tr_slice_cstr(pos[i]), false);
        tr_buf_appendf(&target, "/rollout");
        tr_buf_append(&target, "", 1);
        json_t *res = NULL;
        rc = ctl_call(&c, "rollout", "POST", tr_buf_data(&target), NULL, 200, &res);
        tr_buf_dispose(&target);
        if (rc == 0) {
            printf("%s: %lld replicas replaced (%.1f s)\n", pos[i],
                   (long long)json_integer_value(json_object_get(res, "replaced")),
                   (double)json_integer_value(json_object_get(res, "duration_ms")) / 1000.0);
        }
        json_decref(res);
    }
    tr_cli_api_close(&c.api);
    return rc;
}

const struct tr_cli_cmd tr_cli_cmd_rollout = {
    .name = "rollout",
    .summary = "rolling restart of a service in a running trellis up, without failed requests",
    .usage = "Usage: trellis rollout SERVICE [SERVICE...] [-f trellis.yaml]\n\n"
             "Replaces the service's replicas one at a time: starts the new one, waits until\n"
             "it is healthy, registered and listed by the gateway, then drains the old one\n"
             "(deregister, wait until the gateway dropped it, SIGTERM). Picks up a rebuilt\n"
             "binary. Returns when done; exit code 1 (old replicas kept) if a new replica\n"
             "does not become ready in time.\n",
    .run = run_rollout,
};

/* ---- down ---- */

static int run_down(int argc, char **argv)
{
    const char *file = NULL;
    uint64_t timeout_ms = 60000;
    size_t npos;
    int rc = parse("down", argc, argv, &file, NULL, &timeout_ms, NULL, 0, &npos);
    if (rc != 0) {
        return rc;
    }
    struct ctl c;
    rc = ctl_find("down", file, &c, true);
    if (rc == -1) {
        printf("nothing to stop in %s\n", c.dir);
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    rc = ctl_call(&c, "down", "POST", "/v1/down", NULL, 202, NULL);
    tr_cli_api_close(&c.api);
    if (rc != 0) {
        return rc;
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (!alive(c.pid)) {
            printf("stopped (trellis up pid %ld)\n", c.pid);
            return 0;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t ms = (uint64_t)(now.tv_sec - start.tv_sec) * 1000 +
                      (uint64_t)((now.tv_nsec - start.tv_nsec) / 1000000);
        if (ms >= timeout_ms) {
            fprintf(stderr, "trellis down: trellis up (pid %ld) still running after %llu ms\n",
                    c.pid, (unsigned long long)timeout_ms);
            return 1;
        }
        usleep(20 * 1000);
    }
}

const struct tr_cli_cmd tr_cli_cmd_down = {
    .name = "down",
    .summary = "stop everything a trellis up runs, gracefully",
    .usage = "Usage: trellis down [-f trellis.yaml] [--timeout DUR]\n\n"
             "Asks trellis up to stop (like Ctrl-C): the gateway first, then services and\n"
             "sidecars (SIGTERM, then SIGKILL after each one's stop_timeout), then the\n"
             "server; waits until trellis up has exited (default --timeout 60s).\n",
    .run = run_down,
};
