/* SPDX-License-Identifier: Apache-2.0 */
/* product: the catalog, read from the state store.
 *   GET /products        all products
 *   GET /products/{id}   one product, 404 if unknown
 * On first start the catalog (shop.h) is seeded with first-write saves, so replicas
 * starting together, or a restart, never overwrite what is there. /healthz answers 503
 * until the seed is done. */
#include "shop.h"

static char *product_key(const char *id, char *buf, size_t size)
{
    snprintf(buf, size, "product-%s", id);
    return buf;
}

/* Saves `value` unless the key exists already. */
static int create(struct trellis_sidecar *sc, const char *key, struct trellis_json *value)
{
    struct trellis_state_opts opts = {.first_write = true};
    int rc = trellis_state_save(sc, shop_store(), key, value, &opts);
    trellis_json_free(value);
    return rc == TRELLIS_ECONFLICT ? 0 : rc;
}

static int seed(struct trellis_app *app, void *data)
{
    if (shop_wait_sidecar(app) != 0) {
        return -1;
    }
    struct trellis_sidecar *sc = trellis_app_sidecar(app);
    struct trellis_json *ids = trellis_json_array();
    for (size_t i = 0; i < SHOP_CATALOG_SIZE; i++) {
        const struct shop_product *p = &shop_catalog[i];
        char key[64];
        int rc = create(sc, product_key(p->id, key, sizeof(key)),
                        trellis_json_pack("{s:s, s:s, s:I}", "id", p->id, "name", p->name,
                                          "price_cents", p->price_cents));
        if (rc != 0) {
            trellis_log(TRELLIS_LOG_ERROR, "seeding %s failed: %s", p->id, trellis_last_error());
            trellis_json_free(ids);
            return rc;
        }
        trellis_json_append(ids, trellis_json_str(p->id));
    }
    /* The index last: once it exists, every product it names exists. */
    int rc = create(sc, "products", ids);
    if (rc == 0) {
        trellis_log(TRELLIS_LOG_INFO, "catalog seeded (%zu products)", SHOP_CATALOG_SIZE);
    }
    return rc;
}

static void list_products(struct trellis_req *req, void *data)
{
    struct trellis_sidecar *sc = trellis_req_sidecar(req);
    struct trellis_json *ids = NULL;
    int rc = trellis_state_get(sc, shop_store(), "products", &ids, NULL);
    if (rc == TRELLIS_ENOTFOUND) {
        trellis_reply_json(req, 200, trellis_json_pack("{s:[]}", "products"));
        return;
    }
    if (rc != 0) {
        shop_reply_call_failed(req, rc, "reading the product index");
        return;
    }
    size_t n = trellis_json_size(ids);
    const char **keys = calloc(n + 1, sizeof(*keys));
    char(*bufs)[80] = calloc(n + 1, sizeof(*bufs));
    for (size_t i = 0; i < n; i++) {
        const char *id = trellis_json_string(trellis_json_at(ids, i));
        keys[i] = product_key(id != NULL ? id : "", bufs[i], sizeof(bufs[i]));
    }
    struct trellis_state_item *items = NULL;
    rc = trellis_state_get_bulk(sc, shop_store(), keys, n, &items);
    if (rc != 0) {
        shop_reply_call_failed(req, rc, "reading products");
    } else {
        struct trellis_json *list = trellis_json_array();
        for (size_t i = 0; i < n; i++) {
            if (items[i].value != NULL) {
                trellis_json_append(list, trellis_json_ref(items[i].value));
            }
        }
        trellis_reply_json(req, 200, trellis_json_pack("{s:o}", "products", list));
    }
    trellis_state_items_free(items, n);
    free(keys);
    free(bufs);
    trellis_json_free(ids);
}

static void get_product(struct trellis_req *req, void *data)
{
    const char *id = trellis_req_param(req, "id");
    if (!shop_valid_id(id, 64)) {
        trellis_reply_error(req, 400, "bad_param", "product id must be 1-64 of [A-Za-z0-9._-]");
        return;
    }
    char key[80];
    struct trellis_json *product = NULL;
    int rc = trellis_state_get(trellis_req_sidecar(req), shop_store(),
                               product_key(id, key, sizeof(key)), &product, NULL);
    if (rc == TRELLIS_ENOTFOUND) {
        trellis_reply_error(req, 404, "not_found", "no product \"%s\"", id);
    } else if (rc != 0) {
        shop_reply_call_failed(req, rc, "reading the product");
    } else {
        trellis_reply_json(req, 200, product);
    }
}

int main(void)
{
    struct trellis_app *app = trellis_app_new("product");
    trellis_app_route(app, "GET", "/products", list_products, NULL);
    trellis_app_route(app, "GET", "/products/{id}", get_product, NULL);
    trellis_app_on_start(app, seed, NULL);
    int rc = trellis_app_run(app);
    trellis_app_free(app);
    return rc;
}
