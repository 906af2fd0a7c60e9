/* SPDX-License-Identifier: Apache-2.0 */
/* The broker module: its thread, its writer thread and the fsync rounds (see
 * broker.h). Request semantics live in ops.c. */
#include "broker/broker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/mem.h"

#define TICK_MS 20
#define HOUSEKEEPING_MS 1000

/* A file rewritten atomically by the writer (group offsets). */
struct file_job {
    char *path; /* owned */
    struct tr_buf data;
};

/* One fsync round, handed to the writer and back. */
struct round_job {
    struct tr_msg msg;
    struct tr_list link; /* in the writer's queue */
    struct tr_broker *bk;
    uint64_t round;
    int *fds; /* owned dups: fdatasync'd then closed by the writer */
    size_t nfds;
    struct file_job *files; /* owned */
    size_t nfiles;
    int status; /* 0 or the first error */
};

struct cancel_msg {
    struct tr_msg msg;
    struct tr_broker *bk;
    struct tr_bk_req *req; /* compared, never dereferenced unless still parked */
};

uint64_t tr_broker__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ config */

static int env_u64(const char *name, bool duration, uint64_t *out)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        return 0;
    }
    if (duration) {
        return tr_parse_duration_ms(v, out) == 0 ? 0 : -EINVAL;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0') {
        TR_LOG_ERROR("broker", NULL, "%s=\"%s\": expected an unsigned integer", name, v);
        return -EINVAL;
    }
    *out = n;
    return 0;
}

int tr_bk_config_from_env(struct tr_bk_config *cfg)
{
    uint64_t seg = 64u << 20;
    uint64_t ret_bytes = 0;
    uint64_t ret_age = 0;
    uint64_t payload = 1u << 20;
    uint64_t batch = 10000;
    uint64_t window = 8192;
    uint64_t ack = 30000;
    int rc = 0;
    rc = rc ? rc : env_u64("TRELLIS_BROKER_SEGMENT_BYTES", false, &seg);
    rc = rc ? rc : env_u64("TRELLIS_BROKER_RETENTION_BYTES", false, &ret_bytes);
    rc = rc ? rc : env_u64("TRELLIS_BROKER_RETENTION_AGE", true, &ret_age);
    rc = rc ? rc : env_u64("TRELLIS_BROKER_MAX_PAYLOAD", false, &payload);
    rc = rc ? rc : env_u64("TRELLIS_BROKER_MAX_BATCH", false, &batch);
    rc = rc ? rc : env_u64("TRELLIS_BROKER_MAX_INFLIGHT", false, &window);
    rc = rc ? rc : env_u64("TRELLIS_BROKER_ACK_TIMEOUT", true, &ack);
    if (rc != 0) {
        return rc;
    }
    if (seg < 4096 || payload == 0 || payload > (64u << 20) - 4096 || batch == 0 || window == 0 ||
        window > (1u << 24) || ack == 0) {
        return -EINVAL;
    }
    *cfg = (struct tr_bk_config){
        .segment_bytes = seg,
        .retention = {.max_bytes = ret_bytes, .max_age_ms = ret_age},
        .max_payload = (size_t)payload,
        .max_batch = (size_t)batch,
        .window = (size_t)window,
        .ack_timeout_ms = ack,
    };
    return 0;
}

/* ------------------------------------------------------------ topics */

struct tr_bk_topic *tr_broker__topic(struct tr_broker *bk, const char *name, bool create, int *err)
{
    *err = 0;
    struct tr_bk_topic *t = tr_map_get(&bk->topics, tr_slice_cstr(name));
    if (t != NULL || !create) {
        return t;
    }
    bool created = false;
    *err = tr_bk_topic_open(&t, bk->root, name, bk->cfg.segment_bytes, bk->cfg.window, &created);
    if (*err != 0) {
        TR_LOG_ERROR("broker", NULL, "cannot open topic %s: %s", name, tr_strerror(*err));
        return NULL;
    }
    bk->root_dirty = bk->root_dirty || created;
    tr_map_put(&bk->topics, tr_slice_cstr(name), t);
    return t;
}

static int load_topics(struct tr_broker *bk)
{
    DIR *d = opendir(bk->root);
    if (d == NULL) {
        return -errno;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !tr_bk_name_valid(e->d_name, strlen(e->d_name))) {
            continue;
        }
        if (tr_broker__topic(bk, e->d_name, true, &rc) == NULL) {
            break;
        }
    }
    closedir(d);
    return rc;
}

int tr_broker_open(struct tr_broker *bk, const char *data_dir, const struct tr_bk_config *cfg)
{
    memset(bk, 0, sizeof(*bk));
    bk->cfg = *cfg;
    bk->root_fd = -1;
    tr_map_init(&bk->topics);
    tr_list_init(&bk->commit_waiters);
    tr_list_init(&bk->writer.jobs);
    tr_buf_init(&bk->scratch);
    size_t n = strlen(data_dir) + sizeof("/broker");
    bk->root = tr_xmalloc(n);
    snprintf(bk->root, n, "%s/broker", data_dir);
    if (mkdir(data_dir, 0755) == -1 && errno != EEXIST) {
        return -errno;
    }
    if (mkdir(bk->root, 0755) == -1 && errno != EEXIST) {
        return -errno;
    }
    bk->root_fd = open(bk->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (bk->root_fd == -1) {
        return -errno;
    }
    int rc = load_topics(bk);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_init(&bk->writer.lock, NULL);
    pthread_cond_init(&bk->writer.cond, NULL);
    rc = uv_loop_init(&bk->loop);
    if (rc != 0) {
        return rc;
    }
    bk->started = true; /* loop initialised: close must run it */
    TR_ASSERT(tr_mailbox_init(&bk->inbox, &bk->loop) == 0);
    bk->inbox.data = bk;
    TR_ASSERT(uv_timer_init(&bk->loop, &bk->tick) == 0);
    bk->tick.data = bk;
    return 0;
}

/* ------------------------------------------------------------ writer thread */

static int sync_file(const struct file_job *f)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        return -errno;
    }
    struct tr_slice s = tr_buf_slice(&f->data);
    int rc = 0;
    if (write(fd, s.ptr, s.len) != (ssize_t)s.len || fdatasync(fd) == -1) {
        rc = errno ? -errno : -EIO;
    }
    close(fd);
    if (rc == 0 && rename(tmp, f->path) == -1) {
        rc = -errno;
    }
    return rc;
}

static void run_job(struct round_job *job)
{
    for (size_t i = 0; i < job->nfds; i++) {
        /* fdatasync on a directory is fsync on Linux: both persist the entries. */
        if (fdatasync(job->fds[i]) == -1 && job->status == 0) {
            job->status = -errno;
        }
        close(job->fds[i]);
    }
    for (size_t i = 0; i < job->nfiles; i++) {
        int rc = sync_file(&job->files[i]);
        if (rc != 0) {
            TR_LOG_WARN("broker", NULL, "cannot save %s: %s", job->files[i].path, tr_strerror(rc));
        }
    }
    if (job->nfiles > 0) {
        /* The renames: the topic directories' entries. Lazy by design (offsets only lag). */
        if (fsync(job->bk->root_fd) == -1) {
            TR_LOG_WARN("broker", NULL, "fsync %s: %s", job->bk->root, tr_strerror(-errno));
        }
    }
}

static void *writer_main(void *arg)
{
    struct tr_broker *bk = arg;
    struct tr_bk_writer *wr = &bk->writer;
    pthread_mutex_lock(&wr->lock);
    for (;;) {
        while (tr_list_empty(&wr->jobs) && !wr->stop) {
            pthread_cond_wait(&wr->cond, &wr->lock);
        }
        struct tr_list *l = tr_list_first(&wr->jobs);
        if (l == NULL) {
            break;
        }
        tr_list_remove(l);
        pthread_mutex_unlock(&wr->lock);
        struct round_job *job = tr_container_of(l, struct round_job, link);
        run_job(job);
        if (!tr_mailbox_post(&bk->inbox, &job->msg)) {
            TR_ASSERT(0 && "broker inbox closed with a round in flight");
        }
        pthread_mutex_lock(&wr->lock);
    }
    pthread_mutex_unlock(&wr->lock);
    return NULL;
}

/* ------------------------------------------------------------ rounds */

static void job_free(struct round_job *job)
{
    for (size_t i = 0; i < job->nfiles; i++) {
        tr_free_null(&job->files[i].path);
        tr_buf_dispose(&job->files[i].data);
    }
    tr_free_null(&job->files);
    tr_free_null(&job->fds);
    tr_free_null(&job);
}

static bool offsets_dirty(struct tr_bk_topic *t)
{
    if (t->offsets_dirty) {
        return true;
    }
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&t->groups, &i, &slot)) {
        const struct tr_bk_group *g = slot->value;
        if (g->committed != g->persisted) {
            return true;
        }
    }
    return false;
}

static void add_offsets(struct round_job *job, struct tr_bk_topic *t, size_t *cap)
{
    if (job->nfiles == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        job->files = tr_xrealloc(job->files, *cap * sizeof(*job->files));
    }
    struct file_job *f = &job->files[job->nfiles++];
    char path[4096];
    tr_bk_topic_offsets_path(t, path, sizeof(path));
    f->path = tr_xstrdup(path);
    tr_buf_init(&f->data);
    tr_bk_topic_offsets_text(t, &f->data);
}

static void on_round_done(struct tr_msg *m);

static void start_round(struct tr_broker *bk, bool with_offsets)
{
    struct round_job *job = tr_xcalloc(1, sizeof(*job));
    job->msg.run = on_round_done;
    job->bk = bk;
    job->round = ++bk->round_started;
    size_t fd_cap = 1;
    size_t file_cap = 0;
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&bk->topics, &i, &slot)) {
        fd_cap += ((struct tr_bk_topic *)slot->value)->log.nsegs + 1;
    }
    job->fds = tr_xmalloc(fd_cap * sizeof(*job->fds));
    i = 0;
    while (tr_map_next(&bk->topics, &i, &slot)) {
        struct tr_bk_topic *t = slot->value;
        t->sync_end = t->log.next_offset;
        job->nfds += tr_bk_log_take_sync(&t->log, job->fds + job->nfds, fd_cap - job->nfds);
        if (with_offsets && offsets_dirty(t)) {
            add_offsets(job, t, &file_cap);
        }
    }
    if (bk->root_dirty && job->nfds < fd_cap) {
        int fd = dup(bk->root_fd);
        if (fd != -1) {
            bk->root_dirty = false;
            job->fds[job->nfds++] = fd;
        }
    }
    bk->round_running = true;
    bk->round_wanted = false;
    struct tr_bk_writer *wr = &bk->writer;
    pthread_mutex_lock(&wr->lock);
    tr_list_insert_tail(&wr->jobs, &job->link);
    pthread_cond_signal(&wr->cond);
    pthread_mutex_unlock(&wr->lock);
}

static void close_handles(struct tr_broker *bk)
{
    if (uv_is_closing((uv_handle_t *)&bk->tick)) {
        return;
    }
    uv_timer_stop(&bk->tick);
    uv_close((uv_handle_t *)&bk->tick, NULL);
    tr_mailbox_close(&bk->inbox);
}

static bool any_offsets_dirty(struct tr_broker *bk)
{
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&bk->topics, &i, &slot)) {
        if (offsets_dirty(slot->value)) {
            return true;
        }
    }
    return false;
}

static void wake_topic(struct tr_broker *bk, struct tr_bk_topic *t, bool timed_out_only)
{
    uint64_t now = uv_now(&bk->loop);
    struct tr_list *it;
    struct tr_list *tmp;
    tr_list_foreach_safe(it, tmp, &t->waiters)
    {
        struct tr_bk_req *r = tr_container_of(it, struct tr_bk_req, link);
        bool expired = r->deadline_ms <= now || bk->stopping || bk->draining;
        if (timed_out_only && !expired) {
            struct tr_bk_group *g = tr_bk_topic_group(t, r->group, false);
            if (g == NULL || !tr_bk_group_has_work(g, tr_broker__wall_ms(), t->durable_end)) {
                continue;
            }
        }
        tr_list_remove(&r->link);
        if (!tr_bk_ops_fetch_retry(bk, r, expired)) {
            tr_list_insert_tail(&t->waiters, &r->link);
        }
    }
}

static void on_round_done(struct tr_msg *m)
{
    struct round_job *job = tr_container_of(m, struct round_job, msg);
    struct tr_broker *bk = job->bk;
    int status = job->status;
    bk->round_running = false;
    bk->round_done = job->round;
    job_free(job);
    if (status != 0) {
        TR_LOG_ERROR("broker", NULL, "fsync failed: %s; refusing publishes", tr_strerror(status));
        bk->round_error = status;
    }
    struct tr_list *l;
    while ((l = tr_list_first(&bk->commit_waiters)) != NULL) {
        struct tr_bk_req *r = tr_container_of(l, struct tr_bk_req, link);
        if (r->round > bk->round_done) {
            break;
        }
        tr_list_remove(l);
        if (status != 0) {
            tr_buf_reset(&r->out);
            r->status = 500;
            tr_err_json(&r->out, TR_E_INTERNAL, "the events could not be made durable");
        }
        tr_broker__answer(r);
    }
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (status == 0 && tr_map_next(&bk->topics, &i, &slot)) {
        struct tr_bk_topic *t = slot->value;
        if (t->sync_end > t->durable_end) {
            t->durable_end = t->sync_end;
            wake_topic(bk, t, false);
        }
    }
    if (bk->round_wanted || (bk->stopping && status == 0 && any_offsets_dirty(bk))) {
        /* Stopping: the last round also saves the group offsets. */
        start_round(bk, bk->stopping);
    } else if (bk->stopping) {
        close_handles(bk);
    }
}

static void on_tick(uv_timer_t *h);

void tr_broker__wait_round(struct tr_broker *bk, struct tr_bk_req *r)
{
    r->round = bk->round_started + 1;
    tr_list_insert_tail(&bk->commit_waiters, &r->link);
    bk->round_wanted = true;
    /* Not started here: the rest of this mailbox batch joins the same round, and the
     * tick starts it at the latest (kick below makes that immediate). */
    if (!bk->round_running && !bk->stopping) {
        uv_timer_start(&bk->tick, on_tick, 0, 0);
    }
}

void tr_broker__answer(struct tr_bk_req *r)
{
    r->done(r);
}

/* ------------------------------------------------------------ broker thread */

static void schedule_tick(struct tr_broker *bk, uint64_t ms)
{
    if (!bk->stopping) {
        uv_timer_start(&bk->tick, on_tick, ms, 0);
    }
}

static void housekeeping(struct tr_broker *bk)
{
    size_t i = 0;
    const struct tr_map_slot *slot;
    uint64_t wall = tr_broker__wall_ms();
    while (tr_map_next(&bk->topics, &i, &slot)) {
        struct tr_bk_topic *t = slot->value;
        int rc = tr_bk_retention_apply(&t->log, &bk->cfg.retention, wall);
        if (rc < 0) {
            TR_LOG_WARN("broker", NULL, "topic %s: retention: %s", t->name, tr_strerror(rc));
        } else if (rc > 0) {
            TR_LOG_INFO("broker", NULL, "topic %s: retention deleted %d segment(s)", t->name, rc);
            tr_bk_topic_after_retention(t);
        }
    }
    if (!bk->round_running && any_offsets_dirty(bk)) {
        start_round(bk, true);
    }
}

static void on_tick(uv_timer_t *h)
{
    struct tr_broker *bk = h->data;
    if (bk->round_wanted && !bk->round_running) {
        start_round(bk, false);
    }
    uint64_t now = uv_now(&bk->loop);
    if (now - bk->last_housekeeping >= HOUSEKEEPING_MS) {
        bk->last_housekeeping = now;
        housekeeping(bk);
    }
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&bk->topics, &i, &slot)) {
        wake_topic(bk, slot->value, true);
    }
    schedule_tick(bk, TICK_MS);
}

static void on_submit(struct tr_msg *m)
{
    struct tr_bk_req *r = tr_container_of(m, struct tr_bk_req, msg);
    tr_bk_ops_run(r->bk, r);
}

bool tr_broker_submit(struct tr_broker *bk, struct tr_bk_req *r)
{
    r->bk = bk;
    r->msg.run = on_submit;
    tr_list_init(&r->link);
    return tr_mailbox_post(&bk->inbox, &r->msg);
}

static void on_cancel(struct tr_msg *m)
{
    struct cancel_msg *cm = tr_container_of(m, struct cancel_msg, msg);
    struct tr_broker *bk = cm->bk;
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&bk->topics, &i, &slot)) {
        struct tr_bk_topic *t = slot->value;
        struct tr_list *it;
        struct tr_list *tmp;
        tr_list_foreach_safe(it, tmp, &t->waiters)
        {
            if (it == &cm->req->link) {
                tr_list_remove(it);
                TR_ASSERT(tr_bk_ops_fetch_retry(bk, cm->req, true));
                tr_free_null(&cm);
                return;
            }
        }
    }
    tr_free_null(&cm);
}

void tr_broker_cancel(struct tr_broker *bk, struct tr_bk_req *r)
{
    struct cancel_msg *cm = tr_xcalloc(1, sizeof(*cm));
    cm->msg.run = on_cancel;
    cm->bk = bk;
    cm->req = r;
    if (!tr_mailbox_post(&bk->inbox, &cm->msg)) {
        tr_free_null(&cm);
    }
}

struct drain_msg {
    struct tr_msg msg;
    struct tr_broker *bk;
};

static void on_drain(struct tr_msg *m)
{
    struct drain_msg *dm = tr_container_of(m, struct drain_msg, msg);
    struct tr_broker *bk = dm->bk;
    tr_free_null(&dm);
    bk->draining = true;
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&bk->topics, &i, &slot)) {
        wake_topic(bk, slot->value, false);
    }
}

void tr_broker_drain(struct tr_broker *bk)
{
    struct drain_msg *dm = tr_xcalloc(1, sizeof(*dm));
    dm->msg.run = on_drain;
    dm->bk = bk;
    if (!tr_mailbox_post(&bk->inbox, &dm->msg)) {
        tr_free_null(&dm);
    }
}

static void broker_main(void *arg)
{
    struct tr_broker *bk = arg;
    schedule_tick(bk, TICK_MS);
    uv_run(&bk->loop, UV_RUN_DEFAULT);
}

int tr_broker_start(struct tr_broker *bk)
{
    struct tr_bk_writer *wr = &bk->writer;
    if (pthread_create(&wr->thread, NULL, writer_main, bk) != 0) {
        return -errno;
    }
    wr->running = true;
    bk->last_housekeeping = uv_now(&bk->loop);
    return uv_thread_create(&bk->thread, broker_main, bk);
}

struct stop_msg {
    struct tr_msg msg;
    struct tr_broker *bk;
};

static void on_stop(struct tr_msg *m)
{
    struct stop_msg *sm = tr_container_of(m, struct stop_msg, msg);
    struct tr_broker *bk = sm->bk;
    tr_free_null(&sm);
    bk->stopping = true;
    uv_timer_stop(&bk->tick);
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&bk->topics, &i, &slot)) {
        wake_topic(bk, slot->value, false);
    }
    /* A last round saves the group offsets; publishes still waiting ride on it. */
    if (bk->round_running) {
        return; /* on_round_done starts what is wanted, then closes */
    }
    if (bk->round_wanted || any_offsets_dirty(bk)) {
        start_round(bk, true);
        return;
    }
    close_handles(bk);
}

void tr_broker_stop(struct tr_broker *bk)
{
    struct stop_msg *sm = tr_xcalloc(1, sizeof(*sm));
    sm->msg.run = on_stop;
    sm->bk = bk;
    if (!tr_mailbox_post(&bk->inbox, &sm->msg)) {
        tr_free_null(&sm);
    }
    uv_thread_join(&bk->thread);
    struct tr_bk_writer *wr = &bk->writer;
    if (wr->running) {
        pthread_mutex_lock(&wr->lock);
        wr->stop = true;
        pthread_cond_signal(&wr->cond);
        pthread_mutex_unlock(&wr->lock);
        pthread_join(wr->thread, NULL);
        wr->running = false;
    }
}

void tr_broker_close(struct tr_broker *bk)
{
    if (bk->started) {
        /* Never started (tests, a failed start): the handles are still open. */
        close_handles(bk);
        uv_run(&bk->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&bk->loop) != 0) {
            TR_LOG_WARN("broker", NULL, "broker loop still had open handles");
        }
        pthread_mutex_destroy(&bk->writer.lock);
        pthread_cond_destroy(&bk->writer.cond);
    }
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&bk->topics, &i, &slot)) {
        tr_bk_topic_free(slot->value);
    }
    tr_map_dispose(&bk->topics);
    if (bk->root_fd >= 0) {
        close(bk->root_fd);
    }
    tr_buf_dispose(&bk->scratch);
    tr_free_null(&bk->root);
}
