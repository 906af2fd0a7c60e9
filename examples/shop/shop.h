/* SPDX-License-Identifier: Apache-2.0 */
/* What the shop's services share: the catalog they seed, environment settings, and a
 * few small helpers. Uses only libtrellis's public header. */
#ifndef SHOP_H
#define SHOP_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <trellis/trellis.h>

struct shop_product {
    const char *id;
    const char *name;
    int64_t price_cents;
};

static const struct shop_product shop_catalog[] = {
    {"p1", "Trellis T-shirt", 1999}, {"p2", "Coffee mug", 1299}, {"p3", "Sticker pack", 499},
    {"p4", "Hoodie", 4999},          {"p5", "Notebook", 899},
};
#define SHOP_CATALOG_SIZE (sizeof(shop_catalog) / sizeof(shop_catalog[0]))

/* $name, or `def` when unset or empty. */
static inline const char *shop_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : def;
}

/* $name as an integer in [min, max]; `def` when unset; an invalid value is logged. */
static inline int64_t shop_env_int(const char *name, int64_t def, int64_t min, int64_t max)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        return def;
    }
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (*end != '\0' || n < min || n > max) {
        trellis_log(TRELLIS_LOG_WARN, "ignoring %s=\"%s\" (expected %lld..%lld)", name, v,
                    (long long)min, (long long)max);
        return def;
    }
    return n;
}

static inline double shop_env_real(const char *name, double def, double min, double max)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        return def;
    }
    char *end = NULL;
    double d = strtod(v, &end);
    if (*end != '\0' || !(d >= min && d <= max)) {
        trellis_log(TRELLIS_LOG_WARN, "ignoring %s=\"%s\" (expected %g..%g)", name, v, min, max);
        return def;
    }
    return d;
}

/* The component names: "statestore" and "pubsub" unless overridden. */
static inline const char *shop_store(void)
{
    return shop_env("STATE_STORE", "statestore");
}

static inline const char *shop_pubsub(void)
{
    return shop_env("PUBSUB", "pubsub");
}

/* Wall-clock milliseconds (records and leases are compared across processes). */
static inline int64_t shop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void shop_sleep_ms(int64_t ms)
{
    if (ms > 0) {
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Ids travel in URLs and state keys: 1..max characters of [A-Za-z0-9._-]. */
static inline bool shop_valid_id(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

/* FNV-1a: picks a bucket for a key. */
static inline uint64_t shop_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

/* A per-thread random number (jitter, simulated failures); not for secrets. */
static inline uint64_t shop_rand(void)
{
    static _Thread_local uint64_t x;
    if (x == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = (((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)&x ^ (uint64_t)ts.tv_sec) | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* Sleeps a random 0..cap ms, cap doubling with each attempt up to 50 ms: replicas that
 * collided on an ETag should not collide again in lock step. */
static inline void shop_backoff(int attempt)
{
    int64_t cap = (int64_t)1 << (attempt < 6 ? attempt : 6);
    shop_sleep_ms((int64_t)(shop_rand() % (uint64_t)(cap < 50 ? cap + 1 : 51)));
}

#define SHOP_MAX_ITEMS 20
#define SHOP_MAX_QUANTITY 100

/* Checks an order's "items" ([{"product_id","quantity"}], 1..20 lines, quantity 1..100)
 * and returns them normalised (one line per product, in first-seen order), or NULL with
 * a message in err naming the offending field. */
static inline struct trellis_json *shop_parse_items(const struct trellis_json *items, char *err,
                                                    size_t err_size)
{
    size_t n = trellis_json_size(items);
    if (trellis_json_typeof(items) != TRELLIS_JSON_ARRAY || n == 0 || n > SHOP_MAX_ITEMS) {
        snprintf(err, err_size, "\"items\" must be an array of 1 to %d lines", SHOP_MAX_ITEMS);
        return NULL;
    }
    struct trellis_json *out = trellis_json_array();
    for (size_t i = 0; i < n; i++) {
        struct trellis_json *line = trellis_json_at(items, i);
        const char *pid = trellis_json_get_str(line, "product_id");
        int64_t qty = 0;
        if (!shop_valid_id(pid, 64)) {
            snprintf(err, err_size, "items[%zu].product_id must be 1-64 of [A-Za-z0-9._-]", i);
            trellis_json_free(out);
            return NULL;
        }
        if (!trellis_json_get_int(line, "quantity", &qty) || qty < 1 || qty > SHOP_MAX_QUANTITY) {
            snprintf(err, err_size, "items[%zu].quantity must be an integer from 1 to %d", i,
                     SHOP_MAX_QUANTITY);
            trellis_json_free(out);
            return NULL;
        }
        struct trellis_json *same = NULL;
        for (size_t k = 0; k < trellis_json_size(out) && same == NULL; k++) {
            struct trellis_json *o = trellis_json_at(out, k);
            if (strcmp(trellis_json_get_str(o, "product_id"), pid) == 0) {
                same = o;
            }
        }
        if (same != NULL) {
            int64_t had = 0;
            trellis_json_get_int(same, "quantity", &had);
            trellis_json_set_int(same, "quantity", had + qty);
        } else {
            trellis_json_append(
                out, trellis_json_pack("{s:s, s:I}", "product_id", pid, "quantity", qty));
        }
    }
    return out;
}

/* Startup: wait for the sidecar's components (trellis up starts both at once). */
static inline int shop_wait_sidecar(struct trellis_app *app)
{
    int rc = trellis_sidecar_wait(trellis_app_sidecar(app),
                                  (uint64_t)shop_env_int("SIDECAR_WAIT_MS", 30000, 1, 600000));
    if (rc != 0) {
        trellis_log(TRELLIS_LOG_ERROR, "sidecar not ready: %s", trellis_last_error());
    }
    return rc;
}

/* Replies 502/503/504 for a failed sidecar call, naming what was being done. */
static inline void shop_reply_call_failed(struct trellis_req *req, int rc, const char *what)
{
    int status = rc == -ETIMEDOUT ? 504 : 503;
    trellis_reply_error(req, status, status == 504 ? "gateway_timeout" : "unavailable", "%s: %s",
                        what,
                        trellis_last_error()[0] ? trellis_last_error() : trellis_strerror(rc));
}

#endif
