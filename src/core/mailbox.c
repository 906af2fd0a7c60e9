/* SPDX-License-Identifier: Apache-2.0 */
/* Cross-thread mailboxes (see mailbox.h). */
#include "core/mailbox.h"

#include "core/mem.h"

static void drain(struct tr_mailbox *mb)
{
    struct tr_list batch;
    tr_list_init(&batch);
    pthread_mutex_lock(&mb->lock);
    if (!tr_list_empty(&mb->queue)) {
        /* Move the whole queue to a local list in O(1). */
        batch.next = mb->queue.next;
        batch.prev = mb->queue.prev;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        tr_list_init(&mb->queue);
    }
    pthread_mutex_unlock(&mb->lock);
    struct tr_list *l;
    while ((l = tr_list_first(&batch)) != NULL) {
        tr_list_remove(l);
        struct tr_msg *msg = tr_container_of(l, struct tr_msg, link);
        msg->run(msg);
    }
}

static void on_async(uv_async_t *h)
{
    drain(h->data);
}

int tr_mailbox_init(struct tr_mailbox *mb, uv_loop_t *loop)
{
    tr_list_init(&mb->queue);
    mb->closed = false;
    mb->on_closed = NULL;
    pthread_mutex_init(&mb->lock, NULL);
    int err = uv_async_init(loop, &mb->async, on_async);
    mb->async.data = mb;
    return err;
}

bool tr_mailbox_post(struct tr_mailbox *mb, struct tr_msg *msg)
{
    pthread_mutex_lock(&mb->lock);
    if (mb->closed) {
        pthread_mutex_unlock(&mb->lock);
        return false;
    }
    bool was_empty = tr_list_empty(&mb->queue);
    tr_list_insert_tail(&mb->queue, &msg->link);
    if (was_empty) {
        /* Under the lock so the handle cannot be closed between check and send. */
        uv_async_send(&mb->async);
    }
    pthread_mutex_unlock(&mb->lock);
    return true;
}

static void on_close(uv_handle_t *h)
{
    struct tr_mailbox *mb = h->data;
    pthread_mutex_destroy(&mb->lock);
    if (mb->on_closed != NULL) {
        mb->on_closed(mb);
    }
}

void tr_mailbox_close(struct tr_mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    mb->closed = true;
    pthread_mutex_unlock(&mb->lock);
    drain(mb);
    uv_close((uv_handle_t *)&mb->async, on_close);
}
