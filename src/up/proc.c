/* SPDX-License-Identifier: Apache-2.0 */
/* Supervised processes (see proc.h). A `struct tr_up_proc` lives as long as its owner
 * wants it; each spawn creates a `struct tr_up_run` holding the uv_process_t and the two
 * output pipes. A run outlives its process's exit until both pipes are closed, so it
 * keeps its own copy of what it needs to log (name, color, a dup of the file fd) and
 * never touches the proc again after the exit callback. */
#include "up/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"

struct stream {
    uv_pipe_t pipe;
    struct tr_buf line; /* a partial line waiting for its newline */
    struct tr_up_run *run;
};

struct tr_up_run {
    uv_process_t process;
    struct stream out;
    struct stream err;
    struct tr_up_proc *proc; /* NULL after the exit callback */
    struct tr_up_logs *logs;
    char *name; /* owned copy */
    unsigned color;
    int file_fd; /* owned dup, or -1 */
    int pending; /* handles not closed yet */
};

static void on_backoff(uv_timer_t *t);

/* ---- environment ---- */

static size_t env_name_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq != NULL ? (size_t)(eq - kv) : strlen(kv);
}

static char **build_env(const char *const *base, const char *const *extra)
{
    size_t nb = 0;
    size_t ne = 0;
    while (base != NULL && base[nb] != NULL) {
        nb++;
    }
    while (extra != NULL && extra[ne] != NULL) {
        ne++;
    }
    char **env = tr_xcalloc(nb + ne + 1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < nb; i++) {
        size_t len = env_name_len(base[i]);
        bool replaced = false;
        for (size_t j = 0; j < ne && !replaced; j++) {
            replaced = env_name_len(extra[j]) == len && strncmp(base[i], extra[j], len) == 0;
        }
        if (!replaced) {
            env[n++] = tr_xstrdup(base[i]);
        }
    }
    for (size_t j = 0; j < ne; j++) {
        env[n++] = tr_xstrdup(extra[j]);
    }
    env[n] = NULL;
    return env;
}

static char **copy_strv(const char *const *v)
{
    size_t n = 0;
    while (v[n] != NULL) {
        n++;
    }
    char **out = tr_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        out[i] = tr_xstrdup(v[i]);
    }
    return out;
}

static void free_strv(char ***pv)
{
    char **v = *pv;
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        tr_free_null(&v[i]);
    }
    tr_free_null(pv);
}

void tr_up_proc_init(struct tr_up_proc *p, const struct tr_up_env *upenv, const char *name,
                     const char *const *argv, const char *const *extra, const char *cwd)
{
    memset(p, 0, sizeof(*p));
    p->upenv = upenv;
    p->name = tr_xstrdup(name);
    p->argv = copy_strv(argv);
    p->env = build_env(upenv->base_env, extra);
    p->cwd = tr_xstrdup(cwd);
    p->color = tr_up_logs_color(name);
    p->log_fd = tr_up_logs_file(upenv->logs, name);
    uv_timer_init(upenv->loop, &p->timer);
    p->timer.data = p;
}

/* ---- output ---- */

static void emit(struct tr_up_run *r, struct tr_slice line)
{
    tr_up_logs_line(r->logs, r->name, r->color, r->file_fd, line);
}

static void feed(struct stream *s, const char *data, size_t n)
{
    struct tr_up_run *r = s->run;
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        if (nl == NULL) {
            tr_buf_append(&s->line, data, n);
            if (s->line.len >= TR_UP_LOG_MAX_LINE) {
                emit(r, tr_buf_slice(&s->line));
                tr_buf_reset(&s->line);
            }
            return;
        }
        size_t len = (size_t)(nl - data);
        if (s->line.len > 0) {
            tr_buf_append(&s->line, data, len);
            emit(r, tr_buf_slice(&s->line));
            tr_buf_reset(&s->line);
        } else {
            emit(r, tr_slice(data, len));
        }
        data = nl + 1;
        n -= len + 1;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* alloc and read callbacks of one stream run back to back on the one loop thread,
     * so every pipe can share this buffer. */
    static char shared[64 * 1024];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(shared, sizeof(shared));
}

static void run_release(struct tr_up_run *r)
{
    if (--r->pending > 0) {
        return;
    }
    tr_buf_dispose(&r->out.line);
    tr_buf_dispose(&r->err.line);
    if (r->file_fd >= 0) {
        close(r->file_fd);
    }
    tr_free_null(&r->name);
    tr_free_null(&r);
}

static void on_process_closed(uv_handle_t *h)
{
    run_release(h->data);
}

static void on_pipe_closed(uv_handle_t *h)
{
    struct stream *s = h->data;
    run_release(s->run);
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    struct stream *s = h->data;
    if (nread > 0) {
        feed(s, buf->base, (size_t)nread);
        return;
    }
    if (nread == 0) {
        return;
    }
    if (s->line.len > 0) {
        emit(s->run, tr_buf_slice(&s->line));
        tr_buf_reset(&s->line);
    }
    uv_read_stop(h);
    uv_close((uv_handle_t *)h, on_pipe_closed);
}

/* ---- signals ---- */

/* Signals the process group led by `pid` (every child setsid()s), or the process alone
 * if the group is gone. */
static void signal_group(pid_t pid, int sig)
{
    if (pid <= 0) {
        return;
    }
    if (kill(-pid, sig) != 0 && errno == ESRCH) {
        kill(pid, sig);
    }
}

/* ---- exit and restart ---- */

static uint64_t backoff_for(unsigned crashes)
{
    uint64_t ms = TR_UP_BACKOFF_MIN_MS;
    for (unsigned i = 1; i < crashes && ms < TR_UP_BACKOFF_MAX_MS; i++) {
        ms *= 2;
    }
    return ms < TR_UP_BACKOFF_MAX_MS ? ms : TR_UP_BACKOFF_MAX_MS;
}

static void schedule_restart(struct tr_up_proc *p, uint64_t ran_ms)
{
    if (ran_ms >= TR_UP_BACKOFF_RESET_MS) {
        p->crashes = 0;
    }
    p->crashes++;
    p->backoff_ms = backoff_for(p->crashes);
    p->state = TR_UP_PROC_BACKOFF;
    uv_timer_start(&p->timer, on_backoff, p->backoff_ms, 0);
}

static void proc_exited(struct tr_up_proc *p, int64_t status, int sig)
{
    uint64_t ran = uv_now(p->upenv->loop) - p->started_ms;
    p->run = NULL;
    p->has_exited = true;
    p->exit_status = status;
    p->term_signal = sig;
    char what[64];
    tr_up_proc_last_exit(p, what, sizeof(what));
    if (p->state == TR_UP_PROC_STOPPING || !p->supervise) {
        uv_timer_stop(&p->timer);
        p->state = TR_UP_PROC_EXITED;
    } else {
        schedule_restart(p, ran);
        tr_up_logs_note(
            p->upenv->logs, "%s exited (%s) after %" PRIu64 " ms; restarting in %" PRIu64 " ms%s",
            p->name, what, ran, p->backoff_ms, tr_up_proc_crashlooping(p) ? " (crash loop)" : "");
    }
    if (p->on_exit != NULL) {
        p->on_exit(p);
    }
}

static void on_process_exit(uv_process_t *h, int64_t status, int sig)
{
    struct tr_up_run *r = h->data;
    /* Whatever the leader left behind in its group goes with it. */
    signal_group(h->pid, SIGKILL);
    uv_close((uv_handle_t *)h, on_process_closed);
    struct tr_up_proc *p = r->proc;
    r->proc = NULL;
    if (p != NULL) {
        proc_exited(p, status, sig);
    }
}

static int spawn(struct tr_up_proc *p)
{
    const struct tr_up_env *ue = p->upenv;
    struct tr_up_run *r = tr_xcalloc(1, sizeof(*r));
    r->proc = p;
    r->logs = ue->logs;
    r->name = tr_xstrdup(p->name);
    r->color = p->color;
    r->file_fd = p->log_fd >= 0 ? fcntl(p->log_fd, F_DUPFD_CLOEXEC, 3) : -1;
    struct stream *streams[2] = {&r->out, &r->err};
    for (int i = 0; i < 2; i++) {
        uv_pipe_init(ue->loop, &streams[i]->pipe, 0);
        streams[i]->pipe.data = streams[i];
        streams[i]->run = r;
        tr_buf_init(&streams[i]->line);
    }
    r->process.data = r;
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&r->out.pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&r->err.pipe;
    size_t argc = 0;
    while (p->argv[argc] != NULL) {
        argc++;
    }
    char ppid[24];
    snprintf(ppid, sizeof(ppid), "%ld", (long)ue->self);
    char **args = tr_xcalloc(argc + 4, sizeof(char *));
    args[0] = (char *)ue->exe;
    args[1] = "__child";
    args[2] = ppid;
    memcpy(args + 3, p->argv, argc * sizeof(char *));
    uv_process_options_t o = {
        .exit_cb = on_process_exit,
        .file = ue->exe,
        .args = args,
        .env = p->env,
        .cwd = p->cwd,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(ue->loop, &r->process, &o);
    tr_free_null(&args);
    r->pending = 3;
    if (rc != 0) {
        r->proc = NULL;
        for (int i = 0; i < 2; i++) {
            uv_close((uv_handle_t *)&streams[i]->pipe, on_pipe_closed);
        }
        uv_close((uv_handle_t *)&r->process, on_process_closed);
        return rc;
    }
    uv_read_start((uv_stream_t *)&r->out.pipe, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&r->err.pipe, on_alloc, on_read);
    p->run = r;
    p->pid = r->process.pid;
    p->started_ms = uv_now(ue->loop);
    p->spawns++;
    p->restarts = p->spawns - 1;
    p->state = TR_UP_PROC_RUNNING;
    return 0;
}

static void start_or_backoff(struct tr_up_proc *p)
{
    int rc = spawn(p);
    if (rc == 0) {
        return;
    }
    p->has_exited = true;
    p->exit_status = 127;
    p->term_signal = 0;
    p->spawns++;
    p->restarts = p->spawns - 1;
    p->started_ms = uv_now(p->upenv->loop);
    schedule_restart(p, 0);
    tr_up_logs_note(p->upenv->logs, "cannot start %s: %s; retrying in %" PRIu64 " ms", p->name,
                    uv_strerror(rc), p->backoff_ms);
}

static void on_backoff(uv_timer_t *t)
{
    struct tr_up_proc *p = t->data;
    if (p->state != TR_UP_PROC_BACKOFF || !p->supervise) {
        return;
    }
    start_or_backoff(p);
    if (p->state == TR_UP_PROC_RUNNING && p->on_start != NULL) {
        p->on_start(p);
    }
}

void tr_up_proc_start(struct tr_up_proc *p)
{
    TR_ASSERT(p->run == NULL && !p->closing);
    p->supervise = true;
    start_or_backoff(p);
}

static void on_stop_deadline(uv_timer_t *t)
{
    struct tr_up_proc *p = t->data;
    if (p->state != TR_UP_PROC_STOPPING) {
        return;
    }
    tr_up_logs_note(p->upenv->logs, "%s did not stop in time after SIGTERM: sending SIGKILL",
                    p->name);
    signal_group(p->pid, SIGKILL);
}

bool tr_up_proc_stop(struct tr_up_proc *p, uint64_t timeout_ms)
{
    p->supervise = false;
    switch (p->state) {
    case TR_UP_PROC_IDLE:
    case TR_UP_PROC_EXITED:
        p->state = TR_UP_PROC_EXITED;
        return true;
    case TR_UP_PROC_BACKOFF:
        uv_timer_stop(&p->timer);
        p->state = TR_UP_PROC_EXITED;
        return true;
    case TR_UP_PROC_STOPPING:
        return false;
    case TR_UP_PROC_RUNNING:
        p->state = TR_UP_PROC_STOPPING;
        signal_group(p->pid, SIGTERM);
        uv_timer_start(&p->timer, on_stop_deadline, timeout_ms, 0);
        return false;
    default:
        TR_ASSERT(!"bad proc state");
        return true;
    }
}

void tr_up_proc_kill(struct tr_up_proc *p)
{
    if (p->run != NULL) {
        signal_group(p->pid, SIGKILL);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    struct tr_up_proc *p = h->data;
    free_strv(&p->argv);
    free_strv(&p->env);
    tr_free_null(&p->name);
    tr_free_null(&p->cwd);
    if (p->log_fd >= 0) {
        close(p->log_fd);
        p->log_fd = -1;
    }
    if (p->on_close != NULL) {
        p->on_close(p);
    }
}

void tr_up_proc_close(struct tr_up_proc *p, tr_up_proc_close_cb *cb)
{
    TR_ASSERT(p->run == NULL && !p->closing);
    p->closing = true;
    p->supervise = false;
    p->on_close = cb;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

/* ---- status ---- */

bool tr_up_proc_crashlooping(const struct tr_up_proc *p)
{
    if (p->crashes < TR_UP_CRASHLOOP) {
        return false;
    }
    if (p->state == TR_UP_PROC_BACKOFF) {
        return true;
    }
    return p->state == TR_UP_PROC_RUNNING &&
           uv_now(p->upenv->loop) - p->started_ms < TR_UP_BACKOFF_RESET_MS;
}

const char *tr_up_proc_state_name(const struct tr_up_proc *p)
{
    switch (p->state) {
    case TR_UP_PROC_IDLE:
        return "starting";
    case TR_UP_PROC_RUNNING:
        return tr_up_proc_crashlooping(p) ? "crashloop" : "running";
    case TR_UP_PROC_BACKOFF:
        return tr_up_proc_crashlooping(p) ? "crashloop" : "backoff";
    case TR_UP_PROC_STOPPING:
        return "stopping";
    case TR_UP_PROC_EXITED:
        return "exited";
    default:
        TR_ASSERT(!"bad proc state");
        return "?";
    }
}

const char *tr_up_proc_last_exit(const struct tr_up_proc *p, char *buf, size_t size)
{
    if (!p->has_exited) {
        snprintf(buf, size, "%s", "");
    } else if (p->term_signal != 0) {
        snprintf(buf, size, "signal %d (%s)", p->term_signal, strsignal(p->term_signal));
    } else {
        snprintf(buf, size, "exit %" PRId64, p->exit_status);
    }
    return buf;
}

uint64_t tr_up_rss_kib(pid_t pid)
{
    if (pid <= 0) {
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    char line[256];
    uint64_t kib = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtoull(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}
