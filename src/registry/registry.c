/* SPDX-License-Identifier: Apache-2.0 */
/* The registry thread, the writer thread and the topic/commit machinery (see
 * registry.h). */
#include "registry/registry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "registry/catalog.h"
#include "state/embedded.h"

struct topic {
    struct tr_list waiters;
};

struct notify {
    struct tr_list link;
    uint64_t seq;
    char topic[];
};

struct committed_msg {
    struct tr_msg msg;
    struct tr_reg *reg;
    uint64_t seq;
    uint64_t index;
    int status;
};

/* ------------------------------------------------------------ load */

static void on_loaded(void *ctx, const struct tr_reg_record *r)
{
    struct tr_reg *reg = ctx;
    if (r->kind == TR_REC_KV) {
        tr_kv_restore(&reg->kv, tr_slice(r->key, r->key_len), tr_slice(r->data, r->data_len),
                      r->flags, r->create_index, r->modify_index, r->lock_index, r->deleted);
        return;
    }
    if (r->kind == TR_REC_STATE) {
        tr_state_embedded_restore(reg->state, r);
        return;
    }
    tr_catalog_restore(reg, r);
}

static void default_identity(struct tr_reg *reg)
{
    if (reg->node_name[0] == '\0') {
        char host[100] = "trellis";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(reg->node_name, sizeof(reg->node_name), "%s", host);
    }
    if (reg->datacenter[0] == '\0') {
        snprintf(reg->datacenter, sizeof(reg->datacenter), "dc1");
    }
    if (reg->address[0] == '\0') {
        snprintf(reg->address, sizeof(reg->address), "127.0.0.1");
    }
    /* A stable node id derived from the node name, in UUID shape. */
    uint64_t a = tr_hash(reg->node_name, strlen(reg->node_name));
    uint64_t b = tr_hash(reg->datacenter, strlen(reg->datacenter)) ^ a;
    snprintf(reg->node_id, sizeof(reg->node_id), "%08x-%04x-%04x-%04x-%012llx",
             (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff,
             (unsigned)(b >> 48), (unsigned long long)(b & 0xffffffffffffull));
}

int tr_reg_open(struct tr_reg *reg, const char *data_dir, char *err, size_t errlen)
{
    tr_kv_init(&reg->kv);
    tr_map_init(&reg->topics);
    tr_heap_init(&reg->deadlines);
    tr_list_init(&reg->commit_waiters);
    tr_list_init(&reg->pending_notify);
    tr_list_init(&reg->writer.pending);
    pthread_mutex_init(&reg->writer.lock, NULL);
    pthread_cond_init(&reg->writer.cond, NULL);
    default_identity(reg);
    reg->catalog = tr_catalog_new(reg);
    reg->state = tr_state_embedded_new(reg);
    reg->persist_ops = &tr_persist_sqlite;
    int rc = reg->persist_ops->open(&reg->persist, data_dir, err, errlen);
    if (rc != 0) {
        return rc;
    }
    struct tr_persist_loader loader = {.ctx = reg, .on_record = on_loaded};
    uint64_t max_index = 0;
    rc = reg->persist_ops->load(reg->persist, &loader, &max_index);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read registry data in %s", data_dir);
        return rc;
    }
    /* Indexes start at 1 (Consul clients treat 0 as "no index") and never go back. */
    reg->index = max_index > 0 ? max_index : 1;
    reg->committed_index = reg->index;
    tr_catalog_loaded(reg);
    uv_loop_init(&reg->loop);
    reg->loop_ready = true;
    rc = tr_mailbox_init(&reg->inbox, &reg->loop);
    reg->inbox.data = reg;
    uv_timer_init(&reg->loop, &reg->deadline_timer);
    reg->deadline_timer.data = reg;
    return rc;
}

/* ------------------------------------------------------------ writer thread */

static void on_committed(struct tr_msg *m);

static void *writer_main(void *arg)
{
    struct tr_reg *reg = arg;
    struct tr_reg_writer *wr = &reg->writer;
    for (;;) {
        pthread_mutex_lock(&wr->lock);
        while (tr_list_empty(&wr->pending) && !wr->stop) {
            pthread_cond_wait(&wr->cond, &wr->lock);
        }
        if (tr_list_empty(&wr->pending) && wr->stop) {
            pthread_mutex_unlock(&wr->lock);
            break;
        }
        struct tr_list batch;
        batch.next = wr->pending.next;
        batch.prev = wr->pending.prev;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        tr_list_init(&wr->pending);
        uint64_t seq = wr->pending_seq;
        uint64_t index = wr->pending_index;
        pthread_mutex_unlock(&wr->lock);

        int status = reg->persist_ops->commit(reg->persist, &batch, index);
        struct tr_list *l;
        while ((l = tr_list_first(&batch)) != NULL) {
            tr_list_remove(l);
            tr_reg_record_free(tr_container_of(l, struct tr_reg_record, link));
        }
        struct committed_msg *cm = tr_xcalloc(1, sizeof(*cm));
        cm->msg.run = on_committed;
        cm->reg = reg;
        cm->seq = seq;
        cm->index = index;
        cm->status = status;
        if (!tr_reg_post(reg, &cm->msg)) {
            tr_free_null(&cm);
        }
    }
    return NULL;
}

void tr_reg_persist(struct tr_reg *reg, struct tr_reg_record *r)
{
    struct tr_reg_writer *wr = &reg->writer;
    reg->seq++;
    pthread_mutex_lock(&wr->lock);
    tr_list_insert_tail(&wr->pending, &r->link);
    wr->pending_seq = reg->seq;
    wr->pending_index = reg->index;
    pthread_cond_signal(&wr->cond);
    pthread_mutex_unlock(&wr->lock);
}

void tr_reg_persist_batch(struct tr_reg *reg, struct tr_list *records)
{
    struct tr_reg_writer *wr = &reg->writer;
    /* One lock hold: the writer takes the pending list whole, so it sees all of these
     * records or none of them. */
    pthread_mutex_lock(&wr->lock);
    struct tr_list *l;
    while ((l = tr_list_first(records)) != NULL) {
        tr_list_remove(l);
        tr_list_insert_tail(&wr->pending, l);
        reg->seq++;
    }
    wr->pending_seq = reg->seq;
    wr->pending_index = reg->index;
    pthread_cond_signal(&wr->cond);
    pthread_mutex_unlock(&wr->lock);
}

/* ------------------------------------------------------------ topics */

void tr_reg_topic_service(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "svc:%s", name);
}

static void wake_topic(struct tr_reg *reg, struct tr_slice name)
{
    struct topic *t = tr_map_get(&reg->topics, name);
    if (t == NULL) {
        return;
    }
    /* Detach the whole list first: a woken waiter may park again on this topic. */
    struct tr_list woken;
    tr_list_init(&woken);
    if (!tr_list_empty(&t->waiters)) {
        woken.next = t->waiters.next;
        woken.prev = t->waiters.prev;
        woken.next->prev = &woken;
        woken.prev->next = &woken;
        tr_list_init(&t->waiters);
    }
    tr_free_null(&t);
    tr_map_del(&reg->topics, name);
    struct tr_list *l;
    while ((l = tr_list_first(&woken)) != NULL) {
        tr_list_remove(l);
        struct tr_reg_waiter *w = tr_container_of(l, struct tr_reg_waiter, link);
        tr_heap_remove(&reg->deadlines, &w->timer);
        w->wake(w, false);
    }
}

static void flush_notifications(struct tr_reg *reg)
{
    struct tr_list *l;
    while ((l = tr_list_first(&reg->pending_notify)) != NULL) {
        struct notify *n = tr_container_of(l, struct notify, link);
        if (n->seq > reg->committed_seq) {
            break;
        }
        tr_list_remove(l);
        wake_topic(reg, tr_slice_cstr(n->topic));
        tr_free_null(&n);
    }
}

void tr_reg_changed(struct tr_reg *reg, const char *topic)
{
    size_t len = strlen(topic);
    struct notify *n = tr_xmalloc(sizeof(*n) + len + 1);
    n->seq = reg->seq;
    memcpy(n->topic, topic, len + 1);
    tr_list_init(&n->link);
    tr_list_insert_tail(&reg->pending_notify, &n->link);
    if (n->seq <= reg->committed_seq) {
        flush_notifications(reg);
    }
}

void tr_reg_kv_changed(struct tr_reg *reg, struct tr_slice key)
{
    char *buf = tr_xmalloc(key.len + 8);
    snprintf(buf, key.len + 8, "kv:%.*s", TR_SLICE_FMT(key));
    tr_reg_changed(reg, buf);
    /* Every prefix of the key, from "" to the key itself, for recursive watchers. */
    for (size_t i = 0; i <= key.len; i++) {
        snprintf(buf, key.len + 8, "kvp:%.*s", (int)i, key.ptr);
        if (tr_map_get(&reg->topics, tr_slice_cstr(buf)) != NULL) {
            tr_reg_changed(reg, buf);
        }
    }
    tr_free_null(&buf);
}

static void arm_deadline_timer(struct tr_reg *reg);

static void on_deadline(uv_timer_t *t)
{
    struct tr_reg *reg = t->data;
    uint64_t now = uv_now(&reg->loop);
    reg->timer_due = 0;
    struct tr_heap_node *n;
    while ((n = tr_heap_min(&reg->deadlines)) != NULL && n->key <= now) {
        struct tr_reg_waiter *w = tr_container_of(n, struct tr_reg_waiter, timer);
        tr_heap_remove(&reg->deadlines, n);
        tr_list_remove(&w->link);
        w->wake(w, true);
    }
    arm_deadline_timer(reg);
}

static void arm_deadline_timer(struct tr_reg *reg)
{
    struct tr_heap_node *n = tr_heap_min(&reg->deadlines);
    if (n == NULL) {
        uv_timer_stop(&reg->deadline_timer);
        reg->timer_due = 0;
        return;
    }
    if (reg->timer_due != 0 && reg->timer_due <= n->key) {
        return;
    }
    uint64_t now = uv_now(&reg->loop);
    reg->timer_due = n->key;
    uv_timer_start(&reg->deadline_timer, on_deadline, n->key > now ? n->key - now : 0, 0);
}

void tr_reg_wait(struct tr_reg *reg, struct tr_reg_waiter *w, const char *topic, uint64_t wait_ms)
{
    struct tr_slice name = tr_slice_cstr(topic);
    struct topic *t = tr_map_get(&reg->topics, name);
    if (t == NULL) {
        t = tr_xmalloc(sizeof(*t));
        tr_list_init(&t->waiters);
        tr_map_put(&reg->topics, name, t);
    }
    tr_list_insert_tail(&t->waiters, &w->link);
    tr_heap_push(&reg->deadlines, &w->timer, uv_now(&reg->loop) + wait_ms);
    arm_deadline_timer(reg);
}

void tr_reg_unwait(struct tr_reg *reg, struct tr_reg_waiter *w)
{
    if (!tr_reg_waiting(w)) {
        return;
    }
    tr_heap_remove(&reg->deadlines, &w->timer);
    tr_list_remove(&w->link);
}

bool tr_reg_waiting(const struct tr_reg_waiter *w)
{
    return w->timer.slot != 0;
}

/* ------------------------------------------------------------ commits */

static void finish_commits(struct tr_reg *reg, int status)
{
    struct tr_list *l;
    while ((l = tr_list_first(&reg->commit_waiters)) != NULL) {
        struct tr_reg_commit *c = tr_container_of(l, struct tr_reg_commit, link);
        if (status == 0 && c->seq > reg->committed_seq) {
            break;
        }
        tr_list_remove(l);
        c->done(c, status);
    }
}

static void on_committed(struct tr_msg *m)
{
    struct committed_msg *cm = tr_container_of(m, struct committed_msg, msg);
    struct tr_reg *reg = cm->reg;
    if (cm->status != 0 && !reg->persist_failed) {
        reg->persist_failed = true;
        TR_LOG_ERROR("registry", NULL,
                     "persisting to disk failed: refusing further writes until restart");
    }
    if (cm->seq > reg->committed_seq) {
        reg->committed_seq = cm->seq;
    }
    if (cm->status == 0 && cm->index > reg->committed_index) {
        reg->committed_index = cm->index;
    }
    finish_commits(reg, cm->status);
    flush_notifications(reg);
    tr_free_null(&cm);
}

void tr_reg_after_commit(struct tr_reg *reg, struct tr_reg_commit *c)
{
    c->seq = reg->seq;
    if (c->seq <= reg->committed_seq) {
        c->done(c, 0);
        return;
    }
    tr_list_init(&c->link);
    tr_list_insert_tail(&reg->commit_waiters, &c->link);
}

void tr_reg_settle(struct tr_reg *reg, bool commit)
{
    struct tr_list batch;
    tr_list_init(&batch);
    pthread_mutex_lock(&reg->writer.lock);
    while (!tr_list_empty(&reg->writer.pending)) {
        struct tr_list *l = tr_list_first(&reg->writer.pending);
        tr_list_remove(l);
        tr_list_insert_tail(&batch, l);
    }
    pthread_mutex_unlock(&reg->writer.lock);
    int status = 0;
    if (commit) {
        status = reg->persist_ops->commit(reg->persist, &batch, reg->index);
    }
    struct tr_list *l;
    while ((l = tr_list_first(&batch)) != NULL) {
        tr_list_remove(l);
        tr_reg_record_free(tr_container_of(l, struct tr_reg_record, link));
    }
    reg->committed_seq = reg->seq;
    reg->committed_index = reg->index;
    finish_commits(reg, status);
    flush_notifications(reg);
}

uint64_t tr_reg_next_index(struct tr_reg *reg)
{
    return ++reg->index;
}

/* ------------------------------------------------------------ threads */

bool tr_reg_post(struct tr_reg *reg, struct tr_msg *msg)
{
    return tr_mailbox_post(&reg->inbox, msg);
}

static void reg_thread_main(void *arg)
{
    struct tr_reg *reg = arg;
    tr_catalog_start(reg);
    uv_run(&reg->loop, UV_RUN_DEFAULT);
}

int tr_reg_start(struct tr_reg *reg)
{
    struct tr_reg_writer *wr = &reg->writer;
    if (pthread_create(&wr->thread, NULL, writer_main, reg) != 0) {
        return -errno;
    }
    wr->running = true;
    reg->start_ms = uv_now(&reg->loop);
    return uv_thread_create(&reg->thread, reg_thread_main, reg);
}

struct stop_msg {
    struct tr_msg msg;
    struct tr_reg *reg;
};

static void release_all_waiters(struct tr_reg *reg)
{
    struct tr_heap_node *n;
    while ((n = tr_heap_min(&reg->deadlines)) != NULL) {
        struct tr_reg_waiter *w = tr_container_of(n, struct tr_reg_waiter, timer);
        tr_heap_remove(&reg->deadlines, n);
        tr_list_remove(&w->link);
        w->wake(w, true);
    }
}

static void close_handles(struct tr_reg *reg)
{
    if (reg->handles_closed) {
        return;
    }
    reg->handles_closed = true;
    uv_timer_stop(&reg->deadline_timer);
    uv_close((uv_handle_t *)&reg->deadline_timer, NULL);
    tr_mailbox_close(&reg->inbox);
}

void tr_reg_drain(struct tr_reg *reg)
{
    reg->draining = true;
    release_all_waiters(reg);
}

static void on_stop(struct tr_msg *m)
{
    struct stop_msg *sm = tr_container_of(m, struct stop_msg, msg);
    struct tr_reg *reg = sm->reg;
    tr_free_null(&sm);
    reg->draining = true;
    reg->stopping = true;
    release_all_waiters(reg);
    tr_catalog_stop(reg);
    close_handles(reg);
}

void tr_reg_stop(struct tr_reg *reg)
{
    struct stop_msg *sm = tr_xcalloc(1, sizeof(*sm));
    sm->msg.run = on_stop;
    sm->reg = reg;
    /* Commits still in flight are waited for: the writer drains its queue before it
     * sees stop, and its last notifications land before the inbox closes only if
     * they are queued ahead of this message, so first stop the writer. */
    struct tr_reg_writer *wr = &reg->writer;
    if (wr->running) {
        pthread_mutex_lock(&wr->lock);
        wr->stop = true;
        pthread_cond_signal(&wr->cond);
        pthread_mutex_unlock(&wr->lock);
        pthread_join(wr->thread, NULL);
        wr->running = false;
    }
    if (!tr_reg_post(reg, &sm->msg)) {
        tr_free_null(&sm);
    }
    uv_thread_join(&reg->thread);
}

void tr_reg_close(struct tr_reg *reg)
{
    if (reg->loop_ready) {
        /* Never started (tests, a failed start): the handles are still open. */
        if (!reg->handles_closed) {
            release_all_waiters(reg);
            tr_catalog_stop(reg);
            close_handles(reg);
        }
        uv_run(&reg->loop, UV_RUN_DEFAULT);
    }
    if (reg->loop_ready && uv_loop_close(&reg->loop) != 0) {
        TR_LOG_WARN("registry", NULL, "registry loop still had open handles");
    }
    tr_catalog_free(reg);
    tr_state_embedded_free(reg->state);
    reg->state = NULL;
    tr_kv_dispose(&reg->kv);
    size_t i = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&reg->topics, &i, &slot)) {
        tr_free_null((void *)&slot->value);
    }
    tr_map_dispose(&reg->topics);
    tr_heap_dispose(&reg->deadlines);
    struct tr_list *l;
    while ((l = tr_list_first(&reg->pending_notify)) != NULL) {
        tr_list_remove(l);
        struct notify *n = tr_container_of(l, struct notify, link);
        tr_free_null(&n);
    }
    while ((l = tr_list_first(&reg->writer.pending)) != NULL) {
        tr_list_remove(l);
        tr_reg_record_free(tr_container_of(l, struct tr_reg_record, link));
    }
    if (reg->persist != NULL) {
        reg->persist_ops->close(reg->persist);
        reg->persist = NULL;
    }
}
