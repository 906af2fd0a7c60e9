/* SPDX-License-Identifier: Apache-2.0 */
/* The process runtime: N worker threads, each running its own libuv loop, plus the
 * main thread, which owns signals. SIGTERM/SIGINT start a graceful drain with a
 * deadline; SIGHUP asks the component to reload. Workers never share handles: the
 * main thread reaches them only through a per-worker uv_async and a command mask. */
#ifndef TR_CORE_RUNTIME_H
#define TR_CORE_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct tr_runtime;

struct tr_worker {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wakeup;            /* main thread -> worker commands */
    _Atomic unsigned commands;    /* TR_WORKER_CMD_* bits, set by the main thread */
    unsigned id;                  /* 0 .. n-1 */
    struct tr_runtime *rt;
    void *data;                   /* the component's per-worker state */
    bool finished;
    bool started;
};

/* What a component plugs into the runtime. Every callback but prepare and reload runs
 * on the worker's own thread. */
struct tr_runtime_ops {
    /* Main thread, before workers start: bind sockets, load state. Non-zero aborts. */
    int (*prepare)(struct tr_runtime *rt);
    /* Main thread, when a drain starts (before workers are told). Optional. */
    void (*drain)(struct tr_runtime *rt);
    /* Worker thread: set up handles on w->loop. Non-zero stops the process. */
    int (*worker_start)(struct tr_worker *w);
    /* Stop accepting, close idle connections, and call tr_worker_finish() once the
     * last in-flight request is done. */
    void (*worker_drain)(struct tr_worker *w);
    /* Drain deadline passed: close everything now, then tr_worker_finish(). */
    void (*worker_stop)(struct tr_worker *w);
    /* Main thread, on SIGHUP. NULL = reload unsupported (logged). Returns 0 if the
     * new configuration was accepted; then worker_reload runs on every worker. */
    int (*reload)(struct tr_runtime *rt);
    void (*worker_reload)(struct tr_worker *w);
    /* Main thread, after all workers have exited. */
    void (*cleanup)(struct tr_runtime *rt);
};

struct tr_runtime {
    const struct tr_runtime_ops *ops;
    void *data;             /* the component's process-wide state */
    const char *name;       /* for logs: "echo", "server" */
    unsigned nworkers;
    uint64_t drain_ms;      /* deadline for graceful drain */
    struct tr_worker *workers;
    uv_loop_t main_loop;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_signal_t sig_hup;
    uv_async_t worker_exit; /* workers -> main: one of us exited */
    uv_timer_t drain_timer;
    _Atomic unsigned exited;
    bool draining;
    int exit_code;
};

enum {
    TR_WORKER_CMD_DRAIN = 1u << 0,
    TR_WORKER_CMD_STOP = 1u << 1,
    TR_WORKER_CMD_RELOAD = 1u << 2,
};

/* Number of online CPUs, at least 1: the default for --workers. */
unsigned tr_runtime_default_workers(void);

/* Runs the component until it drains after SIGTERM/SIGINT (or a worker fails to
 * start). Returns the process exit code. */
int tr_runtime_run(struct tr_runtime *rt);

/* Worker thread: the worker's work is done; its loop ends once the handles the
 * component still owns are closed. Idempotent. */
void tr_worker_finish(struct tr_worker *w);

/* Any thread: begin a graceful shutdown as if SIGTERM arrived. */
void tr_runtime_request_stop(struct tr_runtime *rt);

#endif
