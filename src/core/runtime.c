/* SPDX-License-Identifier: Apache-2.0 */
/* Worker threads and signal handling (see runtime.h). Shutdown: SIGTERM -> DRAIN to
 * every worker and a deadline timer on the main loop; each worker finishes when its
 * component says it is idle; at the deadline the stragglers get STOP. */
#include "core/runtime.h"

#include <signal.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

static void on_wakeup(uv_async_t *h)
{
    struct tr_worker *w = h->data;
    unsigned cmds = atomic_exchange(&w->commands, 0);
    if (w->finished) {
        return;
    }
    if ((cmds & TR_WORKER_CMD_RELOAD) && w->rt->ops->worker_reload != NULL) {
        w->rt->ops->worker_reload(w);
    }
    if (cmds & TR_WORKER_CMD_STOP) {
        w->rt->ops->worker_stop(w);
    } else if (cmds & TR_WORKER_CMD_DRAIN) {
        w->rt->ops->worker_drain(w);
    }
}

void tr_worker_finish(struct tr_worker *w)
{
    if (w->finished) {
        return;
    }
    w->finished = true;
    uv_close((uv_handle_t *)&w->wakeup, NULL);
}

static void worker_main(void *arg)
{
    struct tr_worker *w = arg;
    if (w->rt->ops->worker_start(w) != 0) {
        tr_runtime_request_stop(w->rt);
        w->rt->exit_code = 1;
        tr_worker_finish(w);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    atomic_fetch_add(&w->rt->exited, 1);
    uv_async_send(&w->rt->worker_exit);
}

static void send_all(struct tr_runtime *rt, unsigned cmd)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        atomic_fetch_or(&rt->workers[i].commands, cmd);
        uv_async_send(&rt->workers[i].wakeup);
    }
}

static void close_main_handles(struct tr_runtime *rt)
{
    uv_close((uv_handle_t *)&rt->sig_term, NULL);
    uv_close((uv_handle_t *)&rt->sig_int, NULL);
    uv_close((uv_handle_t *)&rt->sig_hup, NULL);
    uv_close((uv_handle_t *)&rt->worker_exit, NULL);
    uv_close((uv_handle_t *)&rt->drain_timer, NULL);
}

static void on_worker_exit(uv_async_t *h)
{
    struct tr_runtime *rt = h->data;
    if (atomic_load(&rt->exited) == rt->nworkers && !uv_is_closing((uv_handle_t *)h)) {
        close_main_handles(rt);
    }
}

static void on_drain_deadline(uv_timer_t *t)
{
    struct tr_runtime *rt = t->data;
    TR_LOG_WARN(rt->name, NULL, "drain deadline of %llu ms passed, closing remaining connections",
                (unsigned long long)rt->drain_ms);
    send_all(rt, TR_WORKER_CMD_STOP);
}

static void start_drain(struct tr_runtime *rt, const char *why)
{
    if (rt->draining) {
        return;
    }
    rt->draining = true;
    TR_LOG_INFO(rt->name, NULL, "%s: draining (deadline %llu ms)", why,
                (unsigned long long)rt->drain_ms);
    if (rt->ops->drain != NULL) {
        rt->ops->drain(rt);
    }
    send_all(rt, TR_WORKER_CMD_DRAIN);
    uv_timer_start(&rt->drain_timer, on_drain_deadline, rt->drain_ms, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct tr_runtime *rt = s->data;
    if (signum == SIGHUP) {
        if (rt->ops->reload == NULL) {
            TR_LOG_INFO(rt->name, NULL, "SIGHUP: nothing to reload");
            return;
        }
        if (rt->ops->reload(rt) == 0) {
            TR_LOG_INFO(rt->name, NULL, "SIGHUP: configuration reloaded");
            send_all(rt, TR_WORKER_CMD_RELOAD);
        }
        return;
    }
    if (rt->draining && signum == SIGINT) {
        /* A second Ctrl-C means "now". */
        send_all(rt, TR_WORKER_CMD_STOP);
        return;
    }
    start_drain(rt, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

unsigned tr_runtime_default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

void tr_runtime_request_stop(struct tr_runtime *rt)
{
    kill(getpid(), SIGTERM);
    (void)rt;
}

static void init_main_loop(struct tr_runtime *rt)
{
    uv_loop_init(&rt->main_loop);
    uv_signal_t *sigs[] = {&rt->sig_term, &rt->sig_int, &rt->sig_hup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&rt->main_loop, sigs[i]);
        sigs[i]->data = rt;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    uv_async_init(&rt->main_loop, &rt->worker_exit, on_worker_exit);
    rt->worker_exit.data = rt;
    uv_timer_init(&rt->main_loop, &rt->drain_timer);
    rt->drain_timer.data = rt;
}

int tr_runtime_run(struct tr_runtime *rt)
{
    signal(SIGPIPE, SIG_IGN);
    if (rt->nworkers == 0) {
        rt->nworkers = tr_runtime_default_workers();
    }
    if (rt->drain_ms == 0) {
        rt->drain_ms = 10000;
    }
    rt->exit_code = 0;
    atomic_store(&rt->exited, 0);
    if (rt->ops->prepare != NULL && rt->ops->prepare(rt) != 0) {
        return 1;
    }
    init_main_loop(rt);
    rt->workers = tr_xcalloc(rt->nworkers, sizeof(*rt->workers));
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct tr_worker *w = &rt->workers[i];
        w->id = i;
        w->rt = rt;
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->wakeup, on_wakeup);
        w->wakeup.data = w;
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct tr_worker *w = &rt->workers[i];
        TR_ASSERT(uv_thread_create(&w->thread, worker_main, w) == 0);
        w->started = true;
    }
    uv_run(&rt->main_loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct tr_worker *w = &rt->workers[i];
        uv_thread_join(&w->thread);
        /* Drain whatever the component closed last, then the loop must be empty. */
        uv_run(&w->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&w->loop) != 0) {
            TR_LOG_WARN(rt->name, NULL, "worker %u loop still had open handles", i);
        }
    }
    uv_loop_close(&rt->main_loop);
    if (rt->ops->cleanup != NULL) {
        rt->ops->cleanup(rt);
    }
    tr_free_null(&rt->workers);
    TR_LOG_INFO(rt->name, NULL, "stopped");
    return rt->exit_code;
}
