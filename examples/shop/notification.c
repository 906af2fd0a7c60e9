/* SPDX-License-Identifier: Apache-2.0 */
/* notification: subscribes to order.created and records one notification per event.
 *   GET /notifications[?order_id=ID]   {"notifications":[...],"count":N}
 * Pub/sub delivers at least once, so the same event (same CloudEvent id) may arrive
 * twice, on any replica. Notifications live in 16 bucket keys chosen by the event id;
 * recording one is an ETag-checked read-modify-write of its bucket that does nothing
 * when the id is already there, so each event is recorded exactly once. */
#include "shop.h"

#define BUCKETS 16

struct record {
    const struct trellis_event *ev;
    bool duplicate;
};

static int record_cb(struct trellis_json **bucket, void *data)
{
    struct record *r = data;
    const char *id = trellis_event_id(r->ev);
    r->duplicate = false;
    if (*bucket == NULL) {
        *bucket = trellis_json_object();
    }
    if (trellis_json_get(*bucket, id) != NULL) {
        r->duplicate = true;
        return TRELLIS_STATE_KEEP;
    }
    struct trellis_json *order = trellis_event_data(r->ev);
    const char *order_id = trellis_json_get_str(order, "order_id");
    int64_t total = 0;
    trellis_json_get_int(order, "total_cents", &total);
    char message[200];
    snprintf(message, sizeof(message), "Thank you! Order %s (%lld.%02lld) is confirmed.", order_id,
             (long long)(total / 100), (long long)(total % 100));
    trellis_json_set(*bucket, id,
                     trellis_json_pack("{s:s, s:s, s:s?, s:s, s:I}", "event_id", id, "order_id",
                                       order_id, "customer_id",
                                       trellis_json_get_str(order, "customer_id"), "message",
                                       message, "received_ms", shop_now_ms()));
    return TRELLIS_STATE_WRITE;
}

static enum trellis_event_status on_order_created(const struct trellis_event *ev, void *data)
{
    const char *id = trellis_event_id(ev);
    const char *order_id = trellis_json_get_str(trellis_event_data(ev), "order_id");
    if (id == NULL || id[0] == '\0' || order_id == NULL) {
        trellis_log(TRELLIS_LOG_WARN, "dropping an order.created event without id or order_id");
        return TRELLIS_EVENT_DROP;
    }
    char key[32];
    snprintf(key, sizeof(key), "notifications-%u", (unsigned)(shop_hash(id) % BUCKETS));
    struct record r = {.ev = ev};
    int rc = trellis_state_update(trellis_event_sidecar(ev), shop_store(), key, record_cb, &r);
    if (rc != 0) {
        trellis_log(TRELLIS_LOG_WARN, "event %s: %s; will retry", id, trellis_last_error());
        return TRELLIS_EVENT_RETRY;
    }
    trellis_log(TRELLIS_LOG_INFO, "order %s: %s", order_id,
                r.duplicate ? "duplicate event ignored" : "notification recorded");
    return TRELLIS_EVENT_SUCCESS;
}

static void list_notifications(struct trellis_req *req, void *data)
{
    const char *only = trellis_req_query(req, "order_id");
    char bufs[BUCKETS][32];
    const char *keys[BUCKETS];
    for (unsigned i = 0; i < BUCKETS; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "notifications-%u", i);
        keys[i] = bufs[i];
    }
    struct trellis_state_item *items = NULL;
    int rc = trellis_state_get_bulk(trellis_req_sidecar(req), shop_store(), keys, BUCKETS, &items);
    if (rc != 0) {
        shop_reply_call_failed(req, rc, "reading notifications");
        return;
    }
    struct trellis_json *list = trellis_json_array();
    for (unsigned i = 0; i < BUCKETS; i++) {
        for (void *it = trellis_json_iter(items[i].value); it != NULL;
             it = trellis_json_iter_next(items[i].value, it)) {
            struct trellis_json *n = trellis_json_iter_value(it);
            const char *order_id = trellis_json_get_str(n, "order_id");
            if (only == NULL || (order_id != NULL && strcmp(order_id, only) == 0)) {
                trellis_json_append(list, trellis_json_ref(n));
            }
        }
    }
    trellis_state_items_free(items, BUCKETS);
    size_t count = trellis_json_size(list);
    trellis_reply_json(
        req, 200, trellis_json_pack("{s:o, s:I}", "notifications", list, "count", (int64_t)count));
}

int main(void)
{
    struct trellis_app *app = trellis_app_new("notification");
    trellis_app_subscribe(app, shop_pubsub(), "order.created", NULL, on_order_created, NULL);
    trellis_app_route(app, "GET", "/notifications", list_notifications, NULL);
    int rc = trellis_app_run(app);
    trellis_app_free(app);
    return rc;
}
