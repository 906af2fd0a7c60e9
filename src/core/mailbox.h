/* SPDX-License-Identifier: Apache-2.0 */
/* Mailboxes: how one thread hands work to another thread's loop. A message is any
 * struct that embeds struct tr_msg; posting it moves its ownership to the receiving
 * loop, which runs msg->run on its own thread (FIFO per mailbox). The only lock is
 * the queue's, held for a pointer swap. */
#ifndef TR_CORE_MAILBOX_H
#define TR_CORE_MAILBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

#include "core/list.h"

struct tr_msg;
typedef void tr_msg_cb(struct tr_msg *msg);

struct tr_msg {
    struct tr_list link;
    tr_msg_cb *run; /* runs on the receiving loop; owns the message from then on */
};

struct tr_mailbox {
    uv_async_t async;
    pthread_mutex_t lock;
    struct tr_list queue; /* guarded by lock */
    bool closed;          /* guarded by lock: posts after close are run by nobody */
    void (*on_closed)(struct tr_mailbox *mb);
    void *data;
};

/* Must be called on the receiving loop's thread (or before it starts). */
int tr_mailbox_init(struct tr_mailbox *mb, uv_loop_t *loop);
/* Any thread. Returns false (message not taken) if the mailbox is closed. */
bool tr_mailbox_post(struct tr_mailbox *mb, struct tr_msg *msg);
/* Receiving thread: refuses further posts, runs what is queued, closes the async
 * handle; on_closed fires from its close callback. */
void tr_mailbox_close(struct tr_mailbox *mb);

#endif
