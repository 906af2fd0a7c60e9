/* SPDX-License-Identifier: Apache-2.0 */
/* payment: a simulated payment provider that never charges an order twice.
 *   POST /payments                 {"order_id","amount_cents","currency"?}
 *                                  201 charged, 200 the same charge again (a retry),
 *                                  402 payment_declined (amount above PAYMENT_LIMIT_CENTS),
 *                                  409 payment_voided / amount mismatch,
 *                                  503 payment_unavailable (simulated, PAYMENT_FAILURE_RATE)
 *   POST /payments/{order_id}/void  refund a charge, or block a late one; idempotent
 *   GET  /payments/{order_id}
 *   GET  /payments                  every payment, with totals (audits)
 * Settings: PAYMENT_FAILURE_RATE (0..1, failures happen before anything is recorded),
 * PAYMENT_LATENCY_MS (+ random 0..PAYMENT_LATENCY_JITTER_MS), PAYMENT_LIMIT_CENTS.
 *
 * Payments live in 16 bucket keys ("payments-<n>", by hash of the order id), each an
 * object keyed by order id. A charge is a read-modify-write of one bucket with its ETag
 * (trellis_state_update), so two replicas charging the same order race on the same key
 * and exactly one record wins: the order id is the idempotency key. */
#include "shop.h"

#define BUCKETS 16

static double failure_rate;
static int64_t latency_ms;
static int64_t jitter_ms;
static int64_t limit_cents;

static void bucket_key(const char *order_id, char *buf, size_t size)
{
    snprintf(buf, size, "payments-%u", (unsigned)(shop_hash(order_id) % BUCKETS));
}

/* ------------------------------------------------------------ charge */

struct charge {
    const char *order_id;
    int64_t amount;
    const char *currency;
    struct trellis_json *result; /* the record after the update (owned) */
    bool created;
};

static int charge_cb(struct trellis_json **bucket, void *data)
{
    struct charge *c = data;
    trellis_json_free(c->result);
    c->result = NULL;
    c->created = false;
    if (*bucket == NULL) {
        *bucket = trellis_json_object();
    }
    struct trellis_json *existing = trellis_json_get(*bucket, c->order_id);
    if (existing != NULL) {
        c->result = trellis_json_ref(existing);
        return TRELLIS_STATE_KEEP;
    }
    char payment_id[48];
    snprintf(payment_id, sizeof(payment_id), "pay-%016llx",
             (unsigned long long)(shop_rand() ^ (uint64_t)shop_now_ms()));
    bool declined = c->amount > limit_cents;
    c->result =
        trellis_json_pack("{s:s, s:s, s:I, s:s, s:s, s:I}", "payment_id", payment_id, "order_id",
                          c->order_id, "amount_cents", c->amount, "currency", c->currency, "status",
                          declined ? "declined" : "charged", "created_ms", shop_now_ms());
    trellis_json_set(*bucket, c->order_id, trellis_json_ref(c->result));
    c->created = true;
    return TRELLIS_STATE_WRITE;
}

static void reply_payment(struct trellis_req *req, struct charge *c)
{
    const char *status = trellis_json_get_str(c->result, "status");
    int64_t amount = 0;
    if (status == NULL) {
        status = "unknown";
    }
    trellis_json_get_int(c->result, "amount_cents", &amount);
    if (strcmp(status, "voided") == 0 || strcmp(status, "refunded") == 0) {
        trellis_reply_error(req, 409, "payment_voided", "payment for order %s was %s", c->order_id,
                            status);
    } else if (amount != c->amount) {
        trellis_reply_error(req, 409, "conflict",
                            "order %s was already paid with amount_cents %lld", c->order_id,
                            (long long)amount);
    } else if (strcmp(status, "declined") == 0) {
        trellis_reply_error(req, 402, "payment_declined",
                            "amount_cents %lld is above the limit of %lld", (long long)amount,
                            (long long)limit_cents);
    } else {
        if (!c->created) {
            trellis_reply_header(req, "Idempotent-Replayed", "true");
        }
        trellis_reply_json(req, c->created ? 201 : 200, trellis_json_ref(c->result));
    }
}

static void create_payment(struct trellis_req *req, void *data)
{
    struct trellis_json *body = trellis_req_json(req);
    if (body == NULL) {
        return;
    }
    struct charge c = {.order_id = trellis_json_get_str(body, "order_id"),
                       .currency = trellis_json_get_str(body, "currency")};
    if (!shop_valid_id(c.order_id, 128)) {
        trellis_reply_error(req, 400, "bad_param", "order_id must be 1-128 of [A-Za-z0-9._-]");
        return;
    }
    if (!trellis_json_get_int(body, "amount_cents", &c.amount) || c.amount <= 0) {
        trellis_reply_error(req, 400, "bad_param", "amount_cents must be a positive integer");
        return;
    }
    if (c.currency == NULL) {
        c.currency = "USD";
    } else if (strlen(c.currency) != 3) {
        trellis_reply_error(req, 400, "bad_param", "currency must be a 3-letter code");
        return;
    }
    shop_sleep_ms(latency_ms + (jitter_ms > 0 ? (int64_t)(shop_rand() % (uint64_t)jitter_ms) : 0));
    if (failure_rate > 0 && (double)(shop_rand() % 1000000) / 1e6 < failure_rate) {
        trellis_reply_error(req, 503, "payment_unavailable",
                            "payment provider unavailable (simulated failure)");
        return;
    }
    char key[32];
    bucket_key(c.order_id, key, sizeof(key));
    int rc = trellis_state_update(trellis_req_sidecar(req), shop_store(), key, charge_cb, &c);
    if (rc != 0) {
        shop_reply_call_failed(req, rc, "recording the payment");
    } else {
        if (c.created) {
            trellis_log(TRELLIS_LOG_INFO, "order %s: %s %lld %s", c.order_id,
                        trellis_json_get_str(c.result, "status"), (long long)c.amount, c.currency);
        }
        reply_payment(req, &c);
    }
    trellis_json_free(c.result);
}

/* ------------------------------------------------------------ void */

struct voiding {
    const char *order_id;
    struct trellis_json *result;
};

static int void_cb(struct trellis_json **bucket, void *data)
{
    struct voiding *v = data;
    trellis_json_free(v->result);
    if (*bucket == NULL) {
        *bucket = trellis_json_object();
    }
    struct trellis_json *rec = trellis_json_get(*bucket, v->order_id);
    const char *status = trellis_json_get_str(rec, "status");
    if (rec == NULL) {
        /* Nothing charged yet: a tombstone makes a charge still in flight fail. */
        rec = trellis_json_pack("{s:s, s:s, s:i, s:I}", "order_id", v->order_id, "status", "voided",
                                "amount_cents", 0, "created_ms", shop_now_ms());
        trellis_json_set(*bucket, v->order_id, rec);
    } else if (status != NULL && strcmp(status, "charged") == 0) {
        trellis_json_set_str(rec, "status", "refunded");
        trellis_json_set_int(rec, "refunded_ms", shop_now_ms());
    } else {
        v->result = trellis_json_ref(rec); /* voided, refunded or declined: nothing to do */
        return TRELLIS_STATE_KEEP;
    }
    v->result = trellis_json_ref(rec);
    return TRELLIS_STATE_WRITE;
}

static void void_payment(struct trellis_req *req, void *data)
{
    struct voiding v = {.order_id = trellis_req_param(req, "order_id")};
    if (!shop_valid_id(v.order_id, 128)) {
        trellis_reply_error(req, 400, "bad_param", "order_id must be 1-128 of [A-Za-z0-9._-]");
        return;
    }
    char key[32];
    bucket_key(v.order_id, key, sizeof(key));
    int rc = trellis_state_update(trellis_req_sidecar(req), shop_store(), key, void_cb, &v);
    if (rc != 0) {
        shop_reply_call_failed(req, rc, "voiding the payment");
        trellis_json_free(v.result);
        return;
    }
    trellis_reply_json(req, 200, v.result);
}

/* ------------------------------------------------------------ reads */

static void get_payment(struct trellis_req *req, void *data)
{
    const char *order_id = trellis_req_param(req, "order_id");
    if (!shop_valid_id(order_id, 128)) {
        trellis_reply_error(req, 400, "bad_param", "order_id must be 1-128 of [A-Za-z0-9._-]");
        return;
    }
    char key[32];
    bucket_key(order_id, key, sizeof(key));
    struct trellis_json *bucket = NULL;
    int rc = trellis_state_get(trellis_req_sidecar(req), shop_store(), key, &bucket, NULL);
    struct trellis_json *rec = trellis_json_get(bucket, order_id);
    if (rc != 0 && rc != TRELLIS_ENOTFOUND) {
        shop_reply_call_failed(req, rc, "reading payments");
    } else if (rec == NULL) {
        trellis_reply_error(req, 404, "not_found", "no payment for order \"%s\"", order_id);
    } else {
        trellis_reply_json(req, 200, trellis_json_ref(rec));
    }
    trellis_json_free(bucket);
}

static void list_payments(struct trellis_req *req, void *data)
{
    char bufs[BUCKETS][32];
    const char *keys[BUCKETS];
    for (unsigned i = 0; i < BUCKETS; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "payments-%u", i);
        keys[i] = bufs[i];
    }
    struct trellis_state_item *items = NULL;
    int rc = trellis_state_get_bulk(trellis_req_sidecar(req), shop_store(), keys, BUCKETS, &items);
    if (rc != 0) {
        shop_reply_call_failed(req, rc, "reading payments");
        return;
    }
    struct trellis_json *list = trellis_json_array();
    int64_t charged = 0;
    int64_t charged_cents = 0;
    for (unsigned i = 0; i < BUCKETS; i++) {
        for (void *it = trellis_json_iter(items[i].value); it != NULL;
             it = trellis_json_iter_next(items[i].value, it)) {
            struct trellis_json *rec = trellis_json_iter_value(it);
            int64_t amount = 0;
            const char *status = trellis_json_get_str(rec, "status");
            if (status != NULL && strcmp(status, "charged") == 0 &&
                trellis_json_get_int(rec, "amount_cents", &amount)) {
                charged++;
                charged_cents += amount;
            }
            trellis_json_append(list, trellis_json_ref(rec));
        }
    }
    trellis_state_items_free(items, BUCKETS);
    trellis_reply_json(req, 200,
                       trellis_json_pack("{s:o, s:I, s:I}", "payments", list, "charged", charged,
                                         "charged_cents", charged_cents));
}

int main(void)
{
    failure_rate = shop_env_real("PAYMENT_FAILURE_RATE", 0, 0, 1);
    latency_ms = shop_env_int("PAYMENT_LATENCY_MS", 0, 0, 60000);
    jitter_ms = shop_env_int("PAYMENT_LATENCY_JITTER_MS", 0, 0, 60000);
    limit_cents = shop_env_int("PAYMENT_LIMIT_CENTS", 1000000, 1, INT64_MAX);
    struct trellis_app *app = trellis_app_new("payment");
    trellis_app_route(app, "POST", "/payments", create_payment, NULL);
    trellis_app_route(app, "POST", "/payments/{order_id}/void", void_payment, NULL);
    trellis_app_route(app, "GET", "/payments", list_payments, NULL);
    trellis_app_route(app, "GET", "/payments/{order_id}", get_payment, NULL);
    int rc = trellis_app_run(app);
    trellis_app_free(app);
    return rc;
}
