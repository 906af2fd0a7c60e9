/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis logs [SERVICE...] [-f]`: prints (and follows) the aggregated log of a trellis
 * up run, .trellis/logs/up.log, where every line is prefixed with the name of the
 * process that printed it ("order-2 | ...", "order-2.sidecar | ..."). It reads the file,
 * so it works after the run has ended too. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/slice.h"
#include "up/logs.h"
#include "up/up.h"

#define FOLLOW_POLL_US (100 * 1000)
#define MAX_FILTERS 64

struct filter {
    const char *names[MAX_FILTERS];
    size_t n;
};

static bool takes_value(const char *name)
{
    return strcmp(name, "file") == 0 || strcmp(name, "n") == 0 || strcmp(name, "tail") == 0;
}

/* The process name a line starts with: everything before " | ", without padding. */
static struct tr_slice line_name(struct tr_slice line)
{
    for (size_t i = 0; i + 2 < line.len; i++) {
        if (line.ptr[i] == ' ' && line.ptr[i + 1] == '|' && line.ptr[i + 2] == ' ') {
            size_t end = i;
            while (end > 0 && line.ptr[end - 1] == ' ') {
                end--;
            }
            return tr_slice(line.ptr, end);
        }
    }
    return TR_SLICE_NULL;
}

/* Does process `name` belong to `want`? "order" matches order-1, order-12.sidecar; a
 * replica name "order-2" matches itself and its sidecar; "server", "gateway", "up" match
 * themselves. */
static bool name_matches(struct tr_slice name, const char *want)
{
    size_t wl = strlen(want);
    if (name.len < wl || memcmp(name.ptr, want, wl) != 0) {
        return false;
    }
    struct tr_slice rest = tr_slice(name.ptr + wl, name.len - wl);
    if (rest.len == 0 || tr_slice_eq(rest, TR_SLICE_LIT(".sidecar"))) {
        return true;
    }
    if (rest.ptr[0] != '-') {
        return false;
    }
    size_t i = 1;
    while (i < rest.len && rest.ptr[i] >= '0' && rest.ptr[i] <= '9') {
        i++;
    }
    if (i == 1) {
        return false;
    }
    struct tr_slice tail = tr_slice(rest.ptr + i, rest.len - i);
    return tail.len == 0 || tr_slice_eq(tail, TR_SLICE_LIT(".sidecar"));
}

static bool wanted(const struct filter *f, struct tr_slice line)
{
    if (f->n == 0) {
        return true;
    }
    struct tr_slice name = line_name(line);
    for (size_t i = 0; i < f->n; i++) {
        if (name_matches(name, f->names[i])) {
            return true;
        }
    }
    return false;
}

/* Ring of the last `cap` matching lines, for --tail. */
struct tail {
    char **lines;
    size_t cap;
    size_t n;
    size_t next;
};

static void tail_add(struct tail *t, struct tr_slice line)
{
    if (t->cap == 0) {
        fwrite(line.ptr, 1, line.len, stdout);
        fputc('\n', stdout);
        return;
    }
    tr_free_null(&t->lines[t->next]);
    t->lines[t->next] = tr_xstrndup(line.ptr, line.len);
    t->next = (t->next + 1) % t->cap;
    if (t->n < t->cap) {
        t->n++;
    }
}

static void tail_flush(struct tail *t)
{
    for (size_t i = 0; i < t->n; i++) {
        size_t k = (t->next + t->cap - t->n + i) % t->cap;
        puts(t->lines[k]);
        tr_free_null(&t->lines[k]);
    }
    t->n = 0;
    t->cap = 0;
    tr_free_null(&t->lines);
}

/* Reads what `fp` has from its position on; complete lines go through the filter,
 * a trailing partial line stays in `partial`. */
static void pump(FILE *fp, struct tr_buf *partial, const struct filter *f, struct tail *t)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
        tr_buf_append(partial, chunk, n);
        struct tr_slice rest = tr_buf_slice(partial);
        size_t used = 0;
        for (;;) {
            const char *nl = memchr(rest.ptr + used, '\n', rest.len - used);
            if (nl == NULL) {
                break;
            }
            struct tr_slice line = tr_slice(rest.ptr + used, (size_t)(nl - rest.ptr) - used);
            if (wanted(f, line)) {
                tail_add(t, line);
            }
            used = (size_t)(nl - rest.ptr) + 1;
        }
        tr_buf_consume(partial, used);
    }
    clearerr(fp);
}

static int run_logs(int argc, char **argv)
{
    const char *file = NULL;
    bool follow = false;
    uint64_t tail_n = 0;
    struct filter f = {.n = 0};
    for (int i = 1; i < argc;) {
        const char *value;
        const char *name = tr_cli_next_opt(argc, argv, &i, &value, takes_value);
        if (name == NULL) {
            if (f.n == MAX_FILTERS) {
                return tr_cli_usage_error("logs", "too many service names");
            }
            f.names[f.n++] = argv[i - 1];
            continue;
        }
        if (takes_value(name) && value == NULL) {
            return tr_cli_usage_error("logs", "--%s needs a value", name);
        }
        if (strcmp(name, "f") == 0 || strcmp(name, "follow") == 0) {
            follow = true;
        } else if (strcmp(name, "file") == 0) {
            file = value;
        } else if (strcmp(name, "n") == 0 || strcmp(name, "tail") == 0) {
            if (tr_slice_to_u64(tr_slice_cstr(value), &tail_n) != 0 || tail_n > 1000000) {
                return tr_cli_usage_error("logs",
                                          "--tail: expected a number of lines, got "
                                          "\"%s\"",
                                          value);
            }
        } else {
            return tr_cli_usage_error("logs", "unknown option --%s", name);
        }
    }
    char dir[PATH_MAX];
    const char *slash = file != NULL ? strrchr(file, '/') : NULL;
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash == file ? 1 : slash - file), file);
    }
    char path[PATH_MAX + 64];
    char rel[64];
    snprintf(rel, sizeof(rel), "%s/%s", TR_UP_LOG_DIR, TR_UP_LOG_ALL);
    if (tr_up_state_path(dir, rel, path, sizeof(path)) != 0) {
        fprintf(stderr, "trellis logs: %s: path too long\n", dir);
        return 1;
    }
    FILE *fp = fopen(path, "r");
    if (fp == NULL && !follow) {
        fprintf(stderr, "trellis logs: %s: %s (has trellis up run here?)\n", path, strerror(errno));
        return 1;
    }
    struct tail t = {.cap = (size_t)tail_n};
    if (t.cap > 0) {
        t.lines = tr_xcalloc(t.cap, sizeof(char *));
    }
    struct tr_buf partial;
    tr_buf_init(&partial);
    if (fp != NULL) {
        pump(fp, &partial, &f, &t);
    }
    tail_flush(&t);
    fflush(stdout);
    if (!follow) {
        fclose(fp);
        tr_buf_dispose(&partial);
        return 0;
    }
    /* Follow until interrupted; a new trellis up run replaces the file: start over. */
    ino_t ino = 0;
    struct stat st;
    if (fp != NULL && fstat(fileno(fp), &st) == 0) {
        ino = st.st_ino;
    }
    for (;;) {
        usleep(FOLLOW_POLL_US);
        if (stat(path, &st) == 0 && (fp == NULL || st.st_ino != ino)) {
            FILE *next = fopen(path, "r");
            if (next != NULL) {
                if (fp != NULL) {
                    pump(fp, &partial, &f, &t);
                    fclose(fp);
                }
                fp = next;
                ino = st.st_ino;
                tr_buf_reset(&partial);
            }
        }
        if (fp != NULL) {
            pump(fp, &partial, &f, &t);
            fflush(stdout);
        }
    }
}

const struct tr_cli_cmd tr_cli_cmd_logs = {
    .name = "logs",
    .summary = "print or follow the logs of a trellis up run, per service or all",
    .usage = "Usage: trellis logs [SERVICE|REPLICA...] [-f] [-n N] [--file trellis.yaml]\n\n"
             "Prints .trellis/logs/up.log: every line any process of the run printed,\n"
             "prefixed with its name (server, gateway, order-1, order-1.sidecar, up).\n"
             "SERVICE keeps the lines of its replicas and their sidecars, a replica name\n"
             "(order-2) those of one replica. Each process's own output is also in\n"
             ".trellis/logs/<name>.log.\n\n"
             "  -f, --follow      keep printing new lines until interrupted\n"
             "  -n, --tail N      start with the last N matching lines\n"
             "  --file FILE       the manifest of the run (default ./trellis.yaml)\n",
    .run = run_logs,
};
