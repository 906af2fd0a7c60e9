/* SPDX-License-Identifier: Apache-2.0 */
/* inventory: stock per product and reservations per order, in the state store.
 *   POST /inventory/reserve   {"order_id","items":[{"product_id","quantity"}]}
 *                             201 reserved, 200 already reserved (same items),
 *                             409 insufficient_stock / reservation_released
 *   POST /inventory/release   {"order_id"}  200, idempotent
 *   GET  /inventory            every product's stock (audits)
 *   GET  /inventory/{id}       {"product_id","available","reserved"}
 *   GET  /inventory/reservations/{order_id}
 * A reservation and the stock it takes change in one state transaction whose ETag
 * checks fail if another replica wrote in between; the loser reads again and retries,
 * so replicas never oversell. Reserving twice for an order is a no-op; releasing an
 * order that never reserved leaves a "released" record so a late reserve cannot take
 * stock for an order that was already given up. */
#include "shop.h"

#define ATTEMPTS 32

static void key_of(char *buf, size_t size, const char *prefix, const char *id)
{
    snprintf(buf, size, "%s-%s", prefix, id);
}

static int seed(struct trellis_app *app, void *data)
{
    if (shop_wait_sidecar(app) != 0) {
        return -1;
    }
    int64_t initial = shop_env_int("INVENTORY_INITIAL_STOCK", 5000, 0, 1000000000);
    for (size_t i = 0; i < SHOP_CATALOG_SIZE; i++) {
        char key[80];
        key_of(key, sizeof(key), "stock", shop_catalog[i].id);
        struct trellis_json *stock =
            trellis_json_pack("{s:s, s:I, s:i}", "product_id", shop_catalog[i].id, "available",
                              initial, "reserved", 0);
        struct trellis_state_opts create = {.first_write = true};
        int rc = trellis_state_save(trellis_app_sidecar(app), shop_store(), key, stock, &create);
        trellis_json_free(stock);
        if (rc != 0 && rc != TRELLIS_ECONFLICT) {
            trellis_log(TRELLIS_LOG_ERROR, "seeding %s failed: %s", key, trellis_last_error());
            return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ reserve */

struct attempt {
    struct trellis_state_item *items; /* [0] the reservation, [1..n] the stocks */
    size_t nkeys;
    char (*keys)[96];
};

static int read_all(struct trellis_sidecar *sc, const char *order_id, struct trellis_json *lines,
                    struct attempt *a)
{
    a->nkeys = 1 + trellis_json_size(lines);
    a->keys = calloc(a->nkeys, sizeof(*a->keys));
    const char **ptrs = calloc(a->nkeys, sizeof(*ptrs));
    key_of(a->keys[0], sizeof(a->keys[0]), "reservation", order_id);
    for (size_t i = 1; i < a->nkeys; i++) {
        key_of(a->keys[i], sizeof(a->keys[i]), "stock",
               trellis_json_get_str(trellis_json_at(lines, i - 1), "product_id"));
    }
    for (size_t i = 0; i < a->nkeys; i++) {
        ptrs[i] = a->keys[i];
    }
    int rc = trellis_state_get_bulk(sc, shop_store(), ptrs, a->nkeys, &a->items);
    free(ptrs);
    return rc;
}

static void attempt_free(struct attempt *a)
{
    trellis_state_items_free(a->items, a->nkeys);
    free(a->keys);
    memset(a, 0, sizeof(*a));
}

static void reply_existing(struct trellis_req *req, struct trellis_json *res,
                           struct trellis_json *lines)
{
    const char *status = trellis_json_get_str(res, "status");
    if (status != NULL && strcmp(status, "released") == 0) {
        trellis_reply_error(req, 409, "reservation_released",
                            "order %s was released; it cannot reserve again",
                            trellis_json_get_str(res, "order_id"));
    } else if (!trellis_json_equal(trellis_json_get(res, "items"), lines)) {
        trellis_reply_error(req, 409, "conflict",
                            "order %s already holds a reservation for other items",
                            trellis_json_get_str(res, "order_id"));
    } else {
        trellis_reply_header(req, "Idempotent-Replayed", "true");
        trellis_reply_json(req, 200, trellis_json_ref(res));
    }
}

/* Checks stock for every line and builds the transaction; replies (404/409) and returns
 * false when the order cannot be reserved. */
static bool plan(struct trellis_req *req, struct attempt *a, const char *order_id,
                 struct trellis_json *lines, struct trellis_state_op *ops,
                 struct trellis_json **values)
{
    values[0] = trellis_json_pack("{s:s, s:s, s:O, s:I}", "order_id", order_id, "status",
                                  "reserved", "items", lines, "updated_ms", shop_now_ms());
    ops[0] = (struct trellis_state_op){.key = a->keys[0], .value = values[0], .first_write = true};
    for (size_t i = 1; i < a->nkeys; i++) {
        struct trellis_json *line = trellis_json_at(lines, i - 1);
        const char *pid = trellis_json_get_str(line, "product_id");
        struct trellis_json *stock = a->items[i].value;
        int64_t want = 0;
        int64_t available = 0;
        int64_t reserved = 0;
        trellis_json_get_int(line, "quantity", &want);
        if (stock == NULL || !trellis_json_get_int(stock, "available", &available)) {
            trellis_reply_error(req, 404, "unknown_product", "no stock record for product \"%s\"",
                                pid);
            return false;
        }
        trellis_json_get_int(stock, "reserved", &reserved);
        if (available < want) {
            trellis_reply_json(req, 409,
                               trellis_json_pack("{s:{s:s, s:s, s:s, s:I, s:I}}", "error", "code",
                                                 "insufficient_stock", "message",
                                                 "not enough stock for this order", "product_id",
                                                 pid, "available", available, "requested", want));
            return false;
        }
        values[i] = trellis_json_pack("{s:s, s:I, s:I}", "product_id", pid, "available",
                                      available - want, "reserved", reserved + want);
        ops[i] = (struct trellis_state_op){
            .key = a->keys[i], .value = values[i], .etag = a->items[i].etag};
    }
    return true;
}

static void reserve(struct trellis_req *req, void *data)
{
    struct trellis_json *body = trellis_req_json(req);
    if (body == NULL) {
        return;
    }
    const char *order_id = trellis_json_get_str(body, "order_id");
    char err[160];
    if (!shop_valid_id(order_id, 128)) {
        trellis_reply_error(req, 400, "bad_param", "order_id must be 1-128 of [A-Za-z0-9._-]");
        return;
    }
    struct trellis_json *lines =
        shop_parse_items(trellis_json_get(body, "items"), err, sizeof(err));
    if (lines == NULL) {
        trellis_reply_error(req, 400, "bad_param", "%s", err);
        return;
    }
    struct trellis_sidecar *sc = trellis_req_sidecar(req);
    for (int attempt = 0; attempt < ATTEMPTS && !trellis_replied(req); attempt++) {
        struct attempt a = {0};
        int rc = read_all(sc, order_id, lines, &a);
        if (rc != 0) {
            shop_reply_call_failed(req, rc, "reading stock");
        } else if (a.items[0].value != NULL) {
            reply_existing(req, a.items[0].value, lines);
        } else {
            struct trellis_state_op ops[1 + SHOP_MAX_ITEMS];
            struct trellis_json *values[1 + SHOP_MAX_ITEMS] = {0};
            if (plan(req, &a, order_id, lines, ops, values)) {
                rc = trellis_state_transaction(sc, shop_store(), ops, a.nkeys);
                if (rc == 0) {
                    trellis_reply_json(req, 201, trellis_json_ref(values[0]));
                } else if (rc != TRELLIS_ECONFLICT) {
                    shop_reply_call_failed(req, rc, "writing the reservation");
                }
            }
            for (size_t i = 0; i < a.nkeys; i++) {
                trellis_json_free(values[i]);
            }
            if (rc == TRELLIS_ECONFLICT) {
                shop_backoff(attempt); /* another replica wrote first: read again */
            }
        }
        attempt_free(&a);
    }
    if (!trellis_replied(req)) {
        trellis_reply_error(req, 503, "unavailable", "stock is too contended right now; retry");
    }
    trellis_json_free(lines);
}

/* ------------------------------------------------------------ release */

/* One release attempt: returns 0 when done (reply sent), TRELLIS_ECONFLICT to retry. */
static int release_once(struct trellis_req *req, struct trellis_sidecar *sc, const char *order_id)
{
    char rkey[160];
    key_of(rkey, sizeof(rkey), "reservation", order_id);
    struct trellis_json *res = NULL;
    char *etag = NULL;
    int rc = trellis_state_get(sc, shop_store(), rkey, &res, &etag);
    if (rc == TRELLIS_ENOTFOUND) {
        /* Never reserved: leave a tombstone so a reserve still in flight fails. */
        struct trellis_json *t =
            trellis_json_pack("{s:s, s:s, s:[], s:I}", "order_id", order_id, "status", "released",
                              "items", "updated_ms", shop_now_ms());
        struct trellis_state_opts create = {.first_write = true};
        rc = trellis_state_save(sc, shop_store(), rkey, t, &create);
        if (rc == 0) {
            trellis_reply_json(req, 200, t);
        } else {
            trellis_json_free(t);
        }
        return rc;
    }
    if (rc != 0) {
        return rc;
    }
    const char *status = trellis_json_get_str(res, "status");
    if (status != NULL && strcmp(status, "released") == 0) {
        trellis_reply_header(req, "Idempotent-Replayed", "true");
        trellis_reply_json(req, 200, res);
        trellis_free(etag);
        return 0;
    }
    struct trellis_json *lines = trellis_json_get(res, "items");
    struct attempt a = {0};
    rc = read_all(sc, order_id, lines, &a);
    struct trellis_state_op ops[1 + SHOP_MAX_ITEMS];
    struct trellis_json *values[1 + SHOP_MAX_ITEMS] = {0};
    size_t nops = 0;
    if (rc == 0) {
        trellis_json_set_str(res, "status", "released");
        trellis_json_set_int(res, "updated_ms", shop_now_ms());
        ops[nops++] = (struct trellis_state_op){.key = rkey, .value = res, .etag = etag};
        for (size_t i = 1; i < a.nkeys && i <= SHOP_MAX_ITEMS; i++) {
            struct trellis_json *stock = a.items[i].value;
            int64_t qty = 0;
            int64_t available = 0;
            int64_t reserved = 0;
            trellis_json_get_int(trellis_json_at(lines, i - 1), "quantity", &qty);
            if (stock == NULL) {
                continue;
            }
            trellis_json_get_int(stock, "available", &available);
            trellis_json_get_int(stock, "reserved", &reserved);
            values[nops] = trellis_json_pack("{s:O, s:I, s:I}", "product_id",
                                             trellis_json_get(stock, "product_id"), "available",
                                             available + qty, "reserved", reserved - qty);
            ops[nops] = (struct trellis_state_op){
                .key = a.keys[i], .value = values[nops], .etag = a.items[i].etag};
            nops++;
        }
        rc = trellis_state_transaction(sc, shop_store(), ops, nops);
        if (rc == 0) {
            trellis_reply_json(req, 200, trellis_json_ref(res));
        }
    }
    for (size_t i = 0; i < nops; i++) {
        trellis_json_free(values[i]);
    }
    attempt_free(&a);
    trellis_json_free(res);
    trellis_free(etag);
    return rc;
}

static void release(struct trellis_req *req, void *data)
{
    struct trellis_json *body = trellis_req_json(req);
    if (body == NULL) {
        return;
    }
    const char *order_id = trellis_json_get_str(body, "order_id");
    if (!shop_valid_id(order_id, 128)) {
        trellis_reply_error(req, 400, "bad_param", "order_id must be 1-128 of [A-Za-z0-9._-]");
        return;
    }
    struct trellis_sidecar *sc = trellis_req_sidecar(req);
    int rc = TRELLIS_ECONFLICT;
    for (int attempt = 0; attempt < ATTEMPTS && rc == TRELLIS_ECONFLICT; attempt++) {
        rc = release_once(req, sc, order_id);
        if (rc == TRELLIS_ECONFLICT) {
            shop_backoff(attempt);
        }
    }
    if (!trellis_replied(req)) {
        shop_reply_call_failed(req, rc, "releasing the reservation");
    }
}

/* ------------------------------------------------------------ reads */

static void get_one(struct trellis_req *req, const char *prefix, const char *what)
{
    const char *id = trellis_req_param(req, "id");
    if (!shop_valid_id(id, 128)) {
        trellis_reply_error(req, 400, "bad_param", "id must be 1-128 of [A-Za-z0-9._-]");
        return;
    }
    char key[160];
    key_of(key, sizeof(key), prefix, id);
    struct trellis_json *v = NULL;
    int rc = trellis_state_get(trellis_req_sidecar(req), shop_store(), key, &v, NULL);
    if (rc == TRELLIS_ENOTFOUND) {
        trellis_reply_error(req, 404, "not_found", "no %s for \"%s\"", what, id);
    } else if (rc != 0) {
        shop_reply_call_failed(req, rc, "reading state");
    } else {
        trellis_reply_json(req, 200, v);
    }
}

static void get_stock(struct trellis_req *req, void *data)
{
    get_one(req, "stock", "stock record");
}

static void get_reservation(struct trellis_req *req, void *data)
{
    get_one(req, "reservation", "reservation");
}

static void list_stock(struct trellis_req *req, void *data)
{
    const char *keys[SHOP_CATALOG_SIZE];
    char bufs[SHOP_CATALOG_SIZE][80];
    for (size_t i = 0; i < SHOP_CATALOG_SIZE; i++) {
        key_of(bufs[i], sizeof(bufs[i]), "stock", shop_catalog[i].id);
        keys[i] = bufs[i];
    }
    struct trellis_state_item *items = NULL;
    int rc = trellis_state_get_bulk(trellis_req_sidecar(req), shop_store(), keys, SHOP_CATALOG_SIZE,
                                    &items);
    if (rc != 0) {
        shop_reply_call_failed(req, rc, "reading stock");
        return;
    }
    struct trellis_json *list = trellis_json_array();
    for (size_t i = 0; i < SHOP_CATALOG_SIZE; i++) {
        if (items[i].value != NULL) {
            trellis_json_append(list, trellis_json_ref(items[i].value));
        }
    }
    trellis_state_items_free(items, SHOP_CATALOG_SIZE);
    trellis_reply_json(req, 200, trellis_json_pack("{s:o}", "stock", list));
}

int main(void)
{
    struct trellis_app *app = trellis_app_new("inventory");
    trellis_app_route(app, "POST", "/inventory/reserve", reserve, NULL);
    trellis_app_route(app, "POST", "/inventory/release", release, NULL);
    trellis_app_route(app, "GET", "/inventory", list_stock, NULL);
    trellis_app_route(app, "GET", "/inventory/reservations/{id}", get_reservation, NULL);
    trellis_app_route(app, "GET", "/inventory/{id}", get_stock, NULL);
    trellis_app_on_start(app, seed, NULL);
    int rc = trellis_app_run(app);
    trellis_app_free(app);
    return rc;
}
