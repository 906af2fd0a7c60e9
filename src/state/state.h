/* SPDX-License-Identifier: Apache-2.0 */
/* State stores: the Dapr state building block's model (opaque values under string keys,
 * ETags, first-write/last-write concurrency, atomic transactions) behind a small vtable,
 * so that the embedded store (embedded.c) and later sidecar backends (trellis, redis,
 * postgres) are interchangeable. Keys reach a store already namespaced by the caller's
 * app id, "appid||key", as Dapr stores them; names and limits are checked here. */
#ifndef TR_STATE_STATE_H
#define TR_STATE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "core/slice.h"

#define TR_STATE_MAX_NAME 128                       /* store name, app id: bytes */
#define TR_STATE_MAX_KEY 1024                       /* key without the "appid||" prefix */
#define TR_STATE_MAX_VALUE (4u * 1024 * 1024)       /* one value */
#define TR_STATE_MAX_CONTENT_TYPE 256               /* metadata.contentType */
#define TR_STATE_MAX_OPS 256                        /* operations in one transaction or save */
#define TR_STATE_MAX_BULK 1000                      /* keys in one bulk get */
#define TR_STATE_MAX_BULK_BYTES (16u * 1024 * 1024) /* data in one bulk answer */
#define TR_STATE_SEP "||"                           /* Dapr's app-id separator */
#define TR_STATE_ETAG_LEN 24                        /* buffer for a decimal etag + NUL */

enum tr_state_concurrency {
    TR_STATE_LAST_WRITE = 0, /* Dapr's default */
    TR_STATE_FIRST_WRITE,
};

enum tr_state_op_kind {
    TR_STATE_UPSERT = 0,
    TR_STATE_DELETE,
};

/* One write. Everything is borrowed for the duration of the call. */
struct tr_state_op {
    enum tr_state_op_kind kind;
    struct tr_slice key;          /* full key, "appid||key" */
    struct tr_slice value;        /* upsert: stored bytes, given back as they are */
    struct tr_slice content_type; /* upsert: empty = JSON (application/json) */
    struct tr_slice etag;         /* empty = no ETag */
    enum tr_state_concurrency concurrency;
};

/* One read. The slices borrow the store's memory and stay valid until its next write. */
struct tr_state_item {
    struct tr_slice value;
    struct tr_slice content_type; /* empty = JSON */
    char etag[TR_STATE_ETAG_LEN];
};

/* Error convention shared by every backend (negative errno):
 *   -ENOENT   get: no such key
 *   -ESTALE   an ETag did not match, or first-write found the key already there
 *   -EINVAL   an ETag that this store never hands out (not a version number), or a bad key
 *   -E2BIG    a value or an operation count over the limits above
 *   -EIO      the store cannot accept writes (persistence failed)
 * Writes are all-or-nothing: on any error nothing was changed. */
struct tr_state_ops {
    const char *name;
    /* Reads `key` of `store` into `out`. */
    TR_MUST_CHECK int (*get)(void *self, struct tr_slice store, struct tr_slice key,
                             struct tr_state_item *out);
    /* Reads `n` keys; `found[i]` says whether out[i] was filled. Returns 0 or an error
     * for the whole request. */
    TR_MUST_CHECK int (*bulk_get)(void *self, struct tr_slice store, const struct tr_slice *keys,
                                  size_t n, struct tr_state_item *out, bool *found);
    /* One upsert, or one delete (a missing key without an ETag is not an error). */
    TR_MUST_CHECK int (*set)(void *self, struct tr_slice store, const struct tr_state_op *op);
    TR_MUST_CHECK int (*del)(void *self, struct tr_slice store, const struct tr_state_op *op);
    /* Applies `n` operations atomically; on error `*failed` is the index of the
     * operation at fault. */
    TR_MUST_CHECK int (*transact)(void *self, struct tr_slice store, const struct tr_state_op *ops,
                                  size_t n, size_t *failed);
};

/* Why a store name or app id is unacceptable (NULL when fine): 1..TR_STATE_MAX_NAME bytes
 * of [A-Za-z0-9._-]. */
const char *tr_state_name_problem(struct tr_slice name);
/* Why a key (without the app prefix) is unacceptable, or NULL: 1..TR_STATE_MAX_KEY
 * bytes, no "||" (Dapr reserves it), no control characters. */
const char *tr_state_key_problem(struct tr_slice key);
/* Parses an ETag into the version it names: 0 on success, -EINVAL when it is not one
 * of ours (ours are decimal numbers >= 1). */
TR_MUST_CHECK int tr_state_etag_parse(struct tr_slice etag, uint64_t *version);
/* Formats a version as an ETag into buf (TR_STATE_ETAG_LEN bytes). */
void tr_state_etag_format(uint64_t version, char *buf);
/* Whether a content type is JSON ("application/json", "...+json", with parameters). */
bool tr_state_content_type_is_json(struct tr_slice content_type);

#endif
