/* SPDX-License-Identifier: Apache-2.0 */
/* One supervised OS process of trellis up: the server, the gateway, a sidecar or a
 * service replica. It is spawned through `trellis __child` (which arranges for it to be
 * killed if trellis up dies, then execs the real program) as the leader of its own
 * process group, so that signals reach everything it started. Its stdout and stderr are
 * read line by line into the logs. When it exits unexpectedly it is started again after
 * an exponential backoff: 100 ms, doubling up to 10 s, back to 100 ms once a run lasted
 * 10 s. Everything happens on the loop thread. */
#ifndef TR_UP_PROC_H
#define TR_UP_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "core/mem.h"
#include "up/logs.h"

#define TR_UP_BACKOFF_MIN_MS 100
#define TR_UP_BACKOFF_MAX_MS 10000
#define TR_UP_BACKOFF_RESET_MS 10000 /* a run this long resets the backoff */
#define TR_UP_CRASHLOOP 3            /* consecutive quick exits that make a crash loop */

/* What a supervised process shares with its siblings. */
struct tr_up_env {
    uv_loop_t *loop;
    const char *exe; /* the trellis binary, absolute */
    struct tr_up_logs *logs;
    const char *const *base_env; /* trellis up's own environment, NULL-terminated */
    pid_t self;
};

enum tr_up_proc_state {
    TR_UP_PROC_IDLE = 0, /* never started */
    TR_UP_PROC_RUNNING,
    TR_UP_PROC_BACKOFF,  /* exited; restarts when the timer fires */
    TR_UP_PROC_STOPPING, /* SIGTERM sent; SIGKILL at the deadline */
    TR_UP_PROC_EXITED,   /* exited and will not be restarted */
};

struct tr_up_proc;
struct tr_up_run;

/* The process exited (whether or not a restart follows: look at p->state). */
typedef void tr_up_proc_exit_cb(struct tr_up_proc *p);
/* A restart after backoff just spawned the process again. */
typedef void tr_up_proc_start_cb(struct tr_up_proc *p);
typedef void tr_up_proc_close_cb(struct tr_up_proc *p);

struct tr_up_proc {
    char *name;  /* owned: "order-1", "order-1.sidecar", "server" */
    char **argv; /* owned, NULL-terminated: the program and its arguments */
    char **env;  /* owned, NULL-terminated: the complete environment */
    char *cwd;   /* owned */
    const struct tr_up_env *upenv;
    int log_fd; /* its own log file, or -1 */
    unsigned color;
    enum tr_up_proc_state state;
    bool supervise;      /* restart after an exit */
    pid_t pid;           /* of the current or last run; 0 before the first */
    uint64_t started_ms; /* loop time of the last spawn */
    unsigned spawns;
    unsigned restarts; /* spawns after the first */
    unsigned crashes;  /* consecutive exits of runs shorter than TR_UP_BACKOFF_RESET_MS */
    bool has_exited;
    int64_t exit_status;   /* of the last exit */
    int term_signal;       /* of the last exit, 0 if none */
    uint64_t backoff_ms;   /* delay of the pending or last restart */
    uv_timer_t timer;      /* backoff, or the stop deadline */
    struct tr_up_run *run; /* the current child, NULL when none runs */
    tr_up_proc_exit_cb *on_exit;
    tr_up_proc_start_cb *on_start;
    tr_up_proc_close_cb *on_close;
    void *data; /* the owner's */
    bool closing;
};

/* Sets up a process that is not started yet. `argv` is copied; its environment is
 * `upenv->base_env` with the "NAME=value" strings of `extra` added or replacing. `name`
 * prefixes its log lines and names its log file, <logs dir>/<name>.log. */
void tr_up_proc_init(struct tr_up_proc *p, const struct tr_up_env *upenv, const char *name,
                     const char *const *argv, const char *const *extra, const char *cwd);

/* Starts it (supervise = true). A failure to spawn counts as a crash: it is logged and
 * retried after the backoff. */
void tr_up_proc_start(struct tr_up_proc *p);

/* Stops it: no more restarts; SIGTERM to its process group, SIGKILL after `timeout_ms`.
 * Returns true when nothing was running (no exit callback will follow), false when
 * on_exit will run once it is gone. */
bool tr_up_proc_stop(struct tr_up_proc *p, uint64_t timeout_ms);

/* SIGKILL to its process group now (stop() first so it is not restarted). */
void tr_up_proc_kill(struct tr_up_proc *p);

/* Closes its handles; `cb` runs (from the loop) once it may be freed. The process must
 * not be running. A child whose pipes are still open is detached and cleans up alone. */
void tr_up_proc_close(struct tr_up_proc *p, tr_up_proc_close_cb *cb);

/* "running", "backoff", "crashloop", "stopping", "exited", "starting" (never run). */
const char *tr_up_proc_state_name(const struct tr_up_proc *p);

/* True while the process crash-loops: TR_UP_CRASHLOOP quick exits in a row. */
bool tr_up_proc_crashlooping(const struct tr_up_proc *p);

/* "exit 1", "signal 9 (Killed)" or "" for the last exit; `buf` at least 48 bytes. */
const char *tr_up_proc_last_exit(const struct tr_up_proc *p, char *buf, size_t size);

/* VmRSS of `pid` in KiB from /proc, or 0 when unknown. */
uint64_t tr_up_rss_kib(pid_t pid);

#endif
