/* SPDX-License-Identifier: Apache-2.0 */
/* order: places orders as a saga over the other services, all through the sidecar.
 *   POST /orders        {"items":[{"product_id","quantity"}], "customer_id"?}
 *                       header Idempotency-Key (optional, [A-Za-z0-9._-]{1,100}): the
 *                       same key always means the same order; a retry returns its result
 *   GET  /orders/{id}
 * The flow: look up prices (product), reserve stock (inventory), charge (payment),
 * publish order.created, store the order: 201. When payment fails the reservation is
 * released (compensation) and the order is stored as failed with the reason.
 *
 * Crashes and retries. The order record is claimed first with a lease (an ETag-checked
 * write), so one process at a time drives an order; a retry of the same key waits for
 * that owner, or takes over once its lease expired (the owner died). Every step is
 * idempotent by order id (reserve, charge, the event's CloudEvent id), so a takeover
 * redoes them safely, and compensation leaves tombstones (a released reservation, a
 * voided payment) that make any late duplicate of a step fail rather than act.
 *
 * Payment calls go through a circuit breaker: after PAYMENT_BREAKER_FAILURES failed
 * calls in a row, orders fail fast with 503 payment_breaker_open for
 * PAYMENT_BREAKER_OPEN_MS, then one probe call decides. */
#include <pthread.h>

#include "shop.h"

#define SHOP_EBREAKER (-20001) /* the payment breaker refused the call */
#define SHOP_ELOST (-20002)    /* our lease was taken over: another process drives the order */

static struct {
    const char *product_app;
    const char *inventory_app;
    const char *payment_app;
    int64_t call_timeout_ms;
    int64_t call_attempts;
    int64_t payment_timeout_ms;
    int64_t payment_attempts;
    int64_t lease_ms;
    int64_t wait_ms;
} cfg;

/* ------------------------------------------------------------ circuit breaker */

struct breaker {
    pthread_mutex_t lock;
    int64_t threshold; /* failures in a row that open it */
    int64_t open_ms;
    int64_t failures;
    int64_t open_until; /* ms; 0 = closed */
    bool probing;       /* half-open: the probe is out */
};

static struct breaker payment_breaker = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool breaker_allow(struct breaker *b)
{
    pthread_mutex_lock(&b->lock);
    int64_t now = shop_now_ms();
    bool ok = b->open_until == 0 || (now >= b->open_until && !b->probing);
    if (ok && b->open_until != 0) {
        b->probing = true; /* half-open: this call is the probe */
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

static void breaker_report(struct breaker *b, bool ok)
{
    pthread_mutex_lock(&b->lock);
    if (ok) {
        if (b->open_until != 0) {
            trellis_log(TRELLIS_LOG_INFO, "payment breaker closed");
        }
        b->failures = 0;
        b->open_until = 0;
        b->probing = false;
    } else if (b->probing || ++b->failures >= b->threshold) {
        b->open_until = shop_now_ms() + b->open_ms;
        b->failures = 0;
        b->probing = false;
        trellis_log(TRELLIS_LOG_WARN, "payment breaker open for %lld ms", (long long)b->open_ms);
    }
    pthread_mutex_unlock(&b->lock);
}

/* ------------------------------------------------------------ one order */

struct order {
    struct trellis_req *req;
    struct trellis_sidecar *sc;
    char id[128];
    char key[140];
    char owner[40];
    const char *customer_id;    /* borrowed from the request body */
    struct trellis_json *lines; /* normalised items; prices added by lookup_prices */
    char *fingerprint;          /* what the request asked for: compared on retries */
    int64_t total;
    struct trellis_json *record; /* the record as we last wrote or read it */
    char *etag;                  /* its ETag */
    struct trellis_json *payment;
    bool reserved;        /* inventory said reserved */
    bool reserve_unknown; /* a reserve call got no answer: it may have reserved */
    bool pay_unknown;     /* a charge call got no answer: it may have charged */
};

static void order_dispose(struct order *o)
{
    trellis_json_free(o->lines);
    trellis_json_free(o->record);
    trellis_json_free(o->payment);
    trellis_free(o->fingerprint);
    trellis_free(o->etag);
}

/* The record without its bookkeeping fields, as clients see it. */
static struct trellis_json *public_view(const struct trellis_json *rec)
{
    struct trellis_json *v = trellis_json_copy(rec);
    trellis_json_del(v, "owner");
    trellis_json_del(v, "lease_until_ms");
    trellis_json_del(v, "fingerprint");
    return v;
}

/* ------------------------------------------------------------ the record and its lease */

/* Saves `rec` (a new reference, taken) with our ETag (or create-only) and reads it back:
 * the save answer carries no ETag, and the one we read is ours only if the value is
 * exactly what we wrote (it names our owner token and a fresh timestamp). Returns 0,
 * TRELLIS_ECONFLICT when someone else wrote first, or a call failure. */
static int write_record(struct order *o, struct trellis_json *rec, bool create)
{
    struct trellis_state_opts opts = {.etag = create ? NULL : o->etag, .first_write = true};
    int rc = trellis_state_save(o->sc, shop_store(), o->key, rec, &opts);
    if (rc == 0) {
        struct trellis_json *back = NULL;
        char *etag = NULL;
        rc = trellis_state_get(o->sc, shop_store(), o->key, &back, &etag);
        if (rc == 0 && !trellis_json_equal(back, rec)) {
            rc = TRELLIS_ECONFLICT;
        }
        if (rc == 0) {
            trellis_json_free(o->record);
            trellis_free(o->etag);
            o->record = back;
            o->etag = etag;
            back = NULL;
            etag = NULL;
        } else if (rc == TRELLIS_ENOTFOUND) {
            rc = TRELLIS_ECONFLICT;
        }
        trellis_json_free(back);
        trellis_free(etag);
    }
    trellis_json_free(rec);
    return rc;
}

static struct trellis_json *with_lease(const struct trellis_json *base, struct order *o,
                                       int64_t lease_ms)
{
    struct trellis_json *rec = trellis_json_copy(base);
    trellis_json_set_str(rec, "owner", o->owner);
    trellis_json_set_int(rec, "lease_until_ms", shop_now_ms() + lease_ms);
    trellis_json_set_int(rec, "updated_ms", shop_now_ms());
    return rec;
}

/* Makes sure our lease has `budget_ms` left, extending it if needed. false: we lost
 * the order to another process. */
static bool renew(struct order *o, int64_t budget_ms)
{
    int64_t until = 0;
    trellis_json_get_int(o->record, "lease_until_ms", &until);
    if (until - shop_now_ms() >= budget_ms + 500) {
        return true;
    }
    int64_t lease = cfg.lease_ms > budget_ms + 500 ? cfg.lease_ms : budget_ms + 500;
    return write_record(o, with_lease(o->record, o, lease), false) == 0;
}

/* Gives the lease up (best effort) so that a retry takes over at once. */
static void abandon(struct order *o)
{
    struct trellis_json *rec = trellis_json_copy(o->record);
    trellis_json_set_int(rec, "lease_until_ms", 0);
    if (write_record(o, rec, false) != 0) {
        trellis_log(TRELLIS_LOG_WARN, "order %s: could not give up the lease", o->id);
    }
}

static void reply_created(struct order *o, const struct trellis_json *rec, bool replayed)
{
    char location[160];
    snprintf(location, sizeof(location), "/orders/%s", o->id);
    trellis_reply_header(o->req, "Location", location);
    if (replayed) {
        trellis_reply_header(o->req, "Idempotent-Replayed", "true");
    }
    trellis_reply_json(o->req, 201, public_view(rec));
}

static void reply_failed(struct order *o, const struct trellis_json *rec)
{
    struct trellis_json *f = trellis_json_get(rec, "failure");
    int64_t status = 500;
    trellis_json_get_int(f, "status", &status);
    const char *code = trellis_json_get_str(f, "code");
    const char *message = trellis_json_get_str(f, "message");
    trellis_reply_header(o->req, "Idempotent-Replayed", "true");
    trellis_reply_error(o->req, (int)status, code != NULL ? code : "failed", "order %s: %s", o->id,
                        message != NULL ? message : "failed");
}

/* Takes the order: creates its pending record, takes over an expired lease, or answers
 * from the record when the order is already decided. Returns true when we own it. */
static bool claim(struct order *o)
{
    int64_t give_up = shop_now_ms() + cfg.wait_ms;
    for (int attempt = 0;; attempt++) {
        struct trellis_json *rec = NULL;
        char *etag = NULL;
        int rc = trellis_state_get(o->sc, shop_store(), o->key, &rec, &etag);
        if (rc == TRELLIS_ENOTFOUND) {
            struct trellis_json *base =
                trellis_json_pack("{s:s, s:s, s:s, s:I}", "order_id", o->id, "status", "pending",
                                  "fingerprint", o->fingerprint, "created_ms", shop_now_ms());
            if (o->customer_id != NULL) {
                trellis_json_set_str(base, "customer_id", o->customer_id);
            }
            rc = write_record(o, with_lease(base, o, cfg.lease_ms), true);
            trellis_json_free(base);
            if (rc == 0) {
                return true;
            }
        } else if (rc == 0) {
            const char *status = trellis_json_get_str(rec, "status");
            const char *fp = trellis_json_get_str(rec, "fingerprint");
            int64_t until = 0;
            trellis_json_get_int(rec, "lease_until_ms", &until);
            if (fp == NULL || strcmp(fp, o->fingerprint) != 0) {
                trellis_reply_error(o->req, 409, "idempotency_conflict",
                                    "Idempotency-Key already used for a different order");
            } else if (status != NULL && strcmp(status, "created") == 0) {
                reply_created(o, rec, true);
            } else if (status != NULL && strcmp(status, "failed") == 0) {
                reply_failed(o, rec);
            } else if (until > shop_now_ms()) {
                /* Another process drives it: wait for its outcome or its lease. */
                if (shop_now_ms() > give_up) {
                    trellis_reply_error(o->req, 503, "in_progress",
                                        "order %s is still being processed; retry", o->id);
                } else {
                    shop_sleep_ms(100);
                }
            } else {
                trellis_free(o->etag);
                o->etag = etag;
                etag = NULL;
                trellis_log(TRELLIS_LOG_INFO, "order %s: taking over an expired lease", o->id);
                rc = write_record(o, with_lease(rec, o, cfg.lease_ms), false);
                if (rc == 0) {
                    trellis_json_free(rec);
                    return true;
                }
            }
        }
        trellis_json_free(rec);
        trellis_free(etag);
        if (trellis_replied(o->req)) {
            return false;
        }
        if (rc != 0 && rc != TRELLIS_ECONFLICT) {
            shop_reply_call_failed(o->req, rc, "storing the order");
            return false;
        }
        if (rc == TRELLIS_ECONFLICT) {
            shop_backoff(attempt);
        }
    }
}

/* ------------------------------------------------------------ calls */

static bool transient(int rc, const struct trellis_response *resp)
{
    return rc != 0 || trellis_response_status(resp) >= 500;
}

/* Invokes `app` up to `attempts` times while the failure is transient (no answer or a
 * 5xx), with a jittered backoff, first making sure our lease outlasts each attempt.
 * Returns 0 with the last response in *out (whatever its status), SHOP_EBREAKER,
 * SHOP_ELOST, or the last call failure. Sets *no_answer when some attempt got no
 * response at all (its effect is unknown). */
static int invoke_retry(struct order *o, const char *app, const char *method, const char *path,
                        const struct trellis_json *body, int64_t timeout_ms, int64_t attempts,
                        struct breaker *br, bool *no_answer, struct trellis_response **out)
{
    int rc = 0;
    *out = NULL;
    for (int64_t i = 0; i < attempts; i++) {
        if (i > 0) {
            int64_t cap = 25ll << (i < 5 ? i : 5);
            shop_sleep_ms((int64_t)(shop_rand() % (uint64_t)cap));
        }
        if (!renew(o, timeout_ms)) {
            return SHOP_ELOST;
        }
        if (br != NULL && !breaker_allow(br)) {
            return SHOP_EBREAKER;
        }
        trellis_response_free(*out);
        *out = NULL;
        struct trellis_call_opts opts = {.timeout_ms = (uint64_t)timeout_ms};
        rc = trellis_invoke(o->sc, app, method, path, body, &opts, out);
        bool failed = transient(rc, *out);
        if (rc != 0 && no_answer != NULL) {
            *no_answer = true;
        }
        if (br != NULL) {
            breaker_report(br, !failed);
        }
        if (!failed) {
            return 0;
        }
        trellis_log(TRELLIS_LOG_WARN, "order %s: %s %s on %s failed (attempt %lld): %s", o->id,
                    method, path, app, (long long)i + 1,
                    rc != 0 ? trellis_last_error() : trellis_response_body(*out, NULL));
    }
    return rc;
}

/* The error code a service put in its {"error":{"code"}} body, or `def`. */
static const char *error_code(struct trellis_response *resp, const char *def)
{
    const char *code =
        trellis_json_get_str(trellis_json_get(trellis_response_json(resp), "error"), "code");
    return code != NULL ? code : def;
}

static const char *error_message(struct trellis_response *resp)
{
    const char *m =
        trellis_json_get_str(trellis_json_get(trellis_response_json(resp), "error"), "message");
    return m != NULL ? m : trellis_response_body(resp, NULL);
}

/* ------------------------------------------------------------ ending an order */

/* Undoes what may have happened, then stores the order as failed and replies. If an
 * undo call fails the order stays pending (lease given up) for a retry to finish. */
static void fail_order(struct order *o, int status, const char *code, const char *message)
{
    char path[200];
    struct trellis_response *resp = NULL;
    if (o->pay_unknown) {
        snprintf(path, sizeof(path), "/payments/%s/void", o->id);
        int rc = invoke_retry(o, cfg.payment_app, "POST", path, NULL, cfg.call_timeout_ms,
                              cfg.call_attempts, NULL, NULL, &resp);
        bool ok = rc == 0 && trellis_response_status(resp) == 200;
        trellis_response_free(resp);
        if (rc == SHOP_ELOST) {
            claim(o);
            return;
        }
        if (!ok) {
            abandon(o);
            trellis_reply_error(o->req, 503, "unavailable",
                                "order %s failed (%s) and its payment could not be voided yet; "
                                "retry with the same Idempotency-Key",
                                o->id, code);
            return;
        }
    }
    if (o->reserved || o->reserve_unknown) {
        struct trellis_json *body = trellis_json_pack("{s:s}", "order_id", o->id);
        int rc = invoke_retry(o, cfg.inventory_app, "POST", "/inventory/release", body,
                              cfg.call_timeout_ms, cfg.call_attempts, NULL, NULL, &resp);
        trellis_json_free(body);
        bool ok = rc == 0 && trellis_response_status(resp) == 200;
        trellis_response_free(resp);
        if (rc == SHOP_ELOST) {
            claim(o);
            return;
        }
        if (!ok) {
            abandon(o);
            trellis_reply_error(o->req, 503, "unavailable",
                                "order %s failed (%s) and its stock could not be released yet; "
                                "retry with the same Idempotency-Key",
                                o->id, code);
            return;
        }
        trellis_log(TRELLIS_LOG_INFO, "order %s: released its stock (%s)", o->id, code);
    }
    struct trellis_json *rec = trellis_json_copy(o->record);
    trellis_json_set_str(rec, "status", "failed");
    trellis_json_set(
        rec, "failure",
        trellis_json_pack("{s:i, s:s, s:s}", "status", status, "code", code, "message", message));
    trellis_json_set_int(rec, "lease_until_ms", 0);
    trellis_json_set_int(rec, "updated_ms", shop_now_ms());
    if (o->lines != NULL) {
        trellis_json_set(rec, "items", trellis_json_ref(o->lines));
    }
    int rc = write_record(o, rec, false);
    if (rc == TRELLIS_ECONFLICT) {
        claim(o); /* someone took over: answer with their outcome */
        return;
    }
    trellis_reply_error(o->req, status, code, "order %s: %s", o->id, message);
}

/* Fails the order after a failed call, naming the cause. */
static void fail_call(struct order *o, int rc, struct trellis_response *resp, const char *what,
                      const char *code)
{
    char message[400];
    if (rc == SHOP_ELOST) {
        claim(o); /* answer with the outcome of the process that took over */
        return;
    }
    if (rc == SHOP_EBREAKER) {
        fail_order(o, 503, "payment_breaker_open",
                   "payment is failing; the circuit breaker is open, try again shortly");
        return;
    }
    snprintf(message, sizeof(message), "%s: %s", what,
             rc != 0 ? trellis_last_error() : error_message(resp));
    fail_order(o, 503, code, message);
}

/* ------------------------------------------------------------ steps */

static bool lookup_prices(struct order *o)
{
    o->total = 0;
    for (size_t i = 0; i < trellis_json_size(o->lines); i++) {
        struct trellis_json *line = trellis_json_at(o->lines, i);
        const char *pid = trellis_json_get_str(line, "product_id");
        char path[120];
        snprintf(path, sizeof(path), "/products/%s", pid);
        struct trellis_response *resp = NULL;
        int rc = invoke_retry(o, cfg.product_app, "GET", path, NULL, cfg.call_timeout_ms,
                              cfg.call_attempts, NULL, NULL, &resp);
        int status = trellis_response_status(resp);
        int64_t price = 0;
        int64_t qty = 0;
        trellis_json_get_int(line, "quantity", &qty);
        if (rc == SHOP_ELOST) {
            claim(o);
            return false;
        }
        if (rc == 0 && status == 404) {
            char message[160];
            snprintf(message, sizeof(message), "unknown product \"%s\"", pid);
            trellis_response_free(resp);
            fail_order(o, 400, "unknown_product", message);
            return false;
        }
        if (rc != 0 || status != 200 ||
            !trellis_json_get_int(trellis_response_json(resp), "price_cents", &price)) {
            trellis_log(TRELLIS_LOG_WARN, "order %s: price of %s unavailable", o->id, pid);
            trellis_response_free(resp);
            abandon(o);
            trellis_reply_error(o->req, 503, "unavailable",
                                "the product service is unavailable; retry");
            return false;
        }
        trellis_response_free(resp);
        trellis_json_set_int(line, "unit_price_cents", price);
        o->total += price * qty;
    }
    return true;
}

static bool reserve(struct order *o)
{
    struct trellis_json *body =
        trellis_json_pack("{s:s, s:O}", "order_id", o->id, "items", o->lines);
    struct trellis_response *resp = NULL;
    int rc = invoke_retry(o, cfg.inventory_app, "POST", "/inventory/reserve", body,
                          cfg.call_timeout_ms, cfg.call_attempts, NULL, &o->reserve_unknown, &resp);
    trellis_json_free(body);
    int status = trellis_response_status(resp);
    bool ok = rc == 0 && (status == 200 || status == 201);
    if (ok) {
        o->reserved = true;
    } else if (rc == 0 && status == 409) {
        fail_order(o, 409, error_code(resp, "conflict"), error_message(resp));
    } else if (rc == 0 && status == 404) {
        fail_order(o, 400, "unknown_product", error_message(resp));
    } else if (rc == 0 && status < 500) {
        fail_order(o, 500, "internal", error_message(resp));
    } else {
        fail_call(o, rc, resp, "reserving stock", "inventory_unavailable");
    }
    trellis_response_free(resp);
    return ok;
}

static bool pay(struct order *o)
{
    struct trellis_json *body =
        trellis_json_pack("{s:s, s:I}", "order_id", o->id, "amount_cents", o->total);
    struct trellis_response *resp = NULL;
    int rc = invoke_retry(o, cfg.payment_app, "POST", "/payments", body, cfg.payment_timeout_ms,
                          cfg.payment_attempts, &payment_breaker, &o->pay_unknown, &resp);
    trellis_json_free(body);
    int status = trellis_response_status(resp);
    bool ok = rc == 0 && (status == 200 || status == 201);
    if (ok) {
        o->payment = trellis_json_ref(trellis_response_json(resp));
    } else if (rc == 0 && (status == 402 || status == 409)) {
        fail_order(o, status, error_code(resp, "payment_failed"), error_message(resp));
    } else if (rc == 0 && status < 500) {
        fail_order(o, 500, "internal", error_message(resp));
    } else {
        fail_call(o, rc, resp, "charging the payment", "payment_unavailable");
    }
    trellis_response_free(resp);
    return ok;
}

/* The created order: the record the client will see, published then stored. */
static struct trellis_json *created_record(struct order *o)
{
    struct trellis_json *rec = trellis_json_copy(o->record);
    trellis_json_set_str(rec, "status", "created");
    trellis_json_set(rec, "items", trellis_json_ref(o->lines));
    trellis_json_set_int(rec, "total_cents", o->total);
    const char *payment_id = trellis_json_get_str(o->payment, "payment_id");
    if (payment_id != NULL) {
        trellis_json_set_str(rec, "payment_id", payment_id);
    }
    trellis_json_set_int(rec, "lease_until_ms", 0);
    trellis_json_set_int(rec, "updated_ms", shop_now_ms());
    return rec;
}

static bool publish_created(struct order *o, const struct trellis_json *rec)
{
    char event_id[160];
    snprintf(event_id, sizeof(event_id), "order.created-%s", o->id);
    struct trellis_publish_opts opts = {.id = event_id, .type = "order.created"};
    struct trellis_json *data = public_view(rec);
    int rc = -1;
    for (int i = 0; i < 3 && rc != 0; i++) {
        if (i > 0) {
            shop_sleep_ms(50ll << i);
        }
        rc = trellis_publish(o->sc, shop_pubsub(), "order.created", data, &opts);
        if (rc != 0) {
            trellis_log(TRELLIS_LOG_WARN, "order %s: publish failed: %s", o->id,
                        trellis_last_error());
        }
    }
    trellis_json_free(data);
    return rc == 0;
}

/* Runs the saga for an order we own; always replies. Each call first extends our lease
 * past its own timeout (invoke_retry), so a crashed owner's lease runs out soon and a
 * retry can take over. */
static void run(struct order *o)
{
    if (!lookup_prices(o) || !reserve(o) || !pay(o)) {
        return;
    }
    if (!renew(o, 3 * (cfg.call_timeout_ms + 400))) {
        claim(o);
        return;
    }
    struct trellis_json *rec = created_record(o);
    /* Publish before storing "created": a crash in between leaves the order pending,
     * and the retry that completes it publishes again with the same event id, which
     * subscribers dedupe. The other order would leave a created order nobody heard of. */
    if (!publish_created(o, rec)) {
        trellis_json_free(rec);
        abandon(o);
        trellis_reply_error(o->req, 503, "unavailable",
                            "order %s is paid but its event could not be published yet; "
                            "retry with the same Idempotency-Key",
                            o->id);
        return;
    }
    int rc = write_record(o, trellis_json_ref(rec), false);
    if (rc == 0) {
        trellis_log(TRELLIS_LOG_INFO, "order %s: created (%lld cents)", o->id, (long long)o->total);
        reply_created(o, rec, false);
    } else if (rc == TRELLIS_ECONFLICT) {
        claim(o);
    } else {
        abandon(o);
        shop_reply_call_failed(o->req, rc, "storing the order");
    }
    trellis_json_free(rec);
}

static void create_order(struct trellis_req *req, void *data)
{
    struct trellis_json *body = trellis_req_json(req);
    if (body == NULL) {
        return;
    }
    struct order o = {.req = req, .sc = trellis_req_sidecar(req)};
    char err[200];
    o.customer_id = trellis_json_get_str(body, "customer_id");
    if (trellis_json_get(body, "customer_id") != NULL && !shop_valid_id(o.customer_id, 64)) {
        trellis_reply_error(req, 400, "bad_param", "customer_id must be 1-64 of [A-Za-z0-9._-]");
        return;
    }
    if ((o.lines = shop_parse_items(trellis_json_get(body, "items"), err, sizeof(err))) == NULL) {
        trellis_reply_error(req, 400, "bad_param", "%s", err);
        return;
    }
    const char *key = trellis_req_header(req, "Idempotency-Key");
    if (key != NULL && !shop_valid_id(key, 100)) {
        trellis_reply_error(req, 400, "bad_param",
                            "Idempotency-Key must be 1-100 of [A-Za-z0-9._-]");
        trellis_json_free(o.lines);
        return;
    }
    if (key != NULL) {
        snprintf(o.id, sizeof(o.id), "ord-%s", key);
    } else {
        snprintf(o.id, sizeof(o.id), "ord-%016llx", (unsigned long long)shop_rand());
    }
    snprintf(o.key, sizeof(o.key), "order-%s", o.id);
    snprintf(o.owner, sizeof(o.owner), "%s-%016llx", shop_env("APP_PORT", "0"),
             (unsigned long long)shop_rand());
    struct trellis_json *fp =
        trellis_json_pack("{s:O, s:s?}", "items", o.lines, "customer_id", o.customer_id);
    o.fingerprint = trellis_json_dump(fp);
    trellis_json_free(fp);
    if (claim(&o)) {
        run(&o);
    }
    order_dispose(&o);
}

static void get_order(struct trellis_req *req, void *data)
{
    const char *id = trellis_req_param(req, "id");
    if (!shop_valid_id(id, 127)) {
        trellis_reply_error(req, 400, "bad_param", "order id must be 1-127 of [A-Za-z0-9._-]");
        return;
    }
    char key[160];
    snprintf(key, sizeof(key), "order-%s", id);
    struct trellis_json *rec = NULL;
    int rc = trellis_state_get(trellis_req_sidecar(req), shop_store(), key, &rec, NULL);
    if (rc == TRELLIS_ENOTFOUND) {
        trellis_reply_error(req, 404, "not_found", "no order \"%s\"", id);
    } else if (rc != 0) {
        shop_reply_call_failed(req, rc, "reading the order");
    } else {
        trellis_reply_json(req, 200, public_view(rec));
        trellis_json_free(rec);
    }
}

int main(void)
{
    cfg.product_app = shop_env("PRODUCT_APP", "product");
    cfg.inventory_app = shop_env("INVENTORY_APP", "inventory");
    cfg.payment_app = shop_env("PAYMENT_APP", "payment");
    cfg.call_timeout_ms = shop_env_int("CALL_TIMEOUT_MS", 2000, 1, 600000);
    cfg.call_attempts = shop_env_int("CALL_ATTEMPTS", 3, 1, 20);
    cfg.payment_timeout_ms = shop_env_int("PAYMENT_TIMEOUT_MS", 800, 1, 600000);
    cfg.payment_attempts = shop_env_int("PAYMENT_ATTEMPTS", 6, 1, 50);
    cfg.lease_ms = shop_env_int("ORDER_LEASE_MS", 5000, 100, 3600000);
    cfg.wait_ms = shop_env_int("ORDER_WAIT_MS", 15000, 0, 3600000);
    payment_breaker.threshold = shop_env_int("PAYMENT_BREAKER_FAILURES", 5, 1, 1000);
    payment_breaker.open_ms = shop_env_int("PAYMENT_BREAKER_OPEN_MS", 2000, 1, 3600000);
    struct trellis_app *app = trellis_app_new("order");
    /* State reads and writes, and publishes, give up after the same time as calls. */
    trellis_sidecar_set_timeout(trellis_app_sidecar(app), (uint64_t)cfg.call_timeout_ms);
    trellis_app_route(app, "POST", "/orders", create_order, NULL);
    trellis_app_route(app, "GET", "/orders/{id}", get_order, NULL);
    int rc = trellis_app_run(app);
    trellis_app_free(app);
    return rc;
}
