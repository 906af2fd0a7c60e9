/* SPDX-License-Identifier: Apache-2.0 */
/* The secrets API: GET /v1.0/secrets/{store}/{name} and /v1.0/secrets/{store}/bulk.
 * Stores:
 *   secretstores.local.file  a JSON file read once at startup (metadata secretsFile).
 *       Nested objects and arrays are flattened with nestedSeparator (default ":"):
 *       {"db":{"user":"u"}} is the secret "db:user". With multiValued: "true" the
 *       top-level keys are the secrets and their flattened contents the values:
 *       GET .../db -> {"user":"u"}.
 *   secretstores.local.env   the process environment (metadata prefix: only variables
 *       starting with it, the prefix removed from names). DAPR_API_TOKEN and
 *       APP_API_TOKEN are never served.
 * Answers are serialised once at load time, so workers only copy bytes. Secret values
 * never reach a log line: messages name stores, files and secret names only. */
#include "sidecar/api_secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/map.h"
#include "core/mem.h"
#include "sidecar/modules.h"
#include "sidecar/sidecar.h"

#define MAX_SECRETS_FILE (4u * 1024 * 1024)

extern char **environ;

struct env_store {
    char *prefix; /* owned; "" for none */
};

static bool any_store;

/* ------------------------------------------------------------ loading */

static char *value_text(json_t *v)
{
    if (json_is_string(v)) {
        return tr_xstrndup(json_string_value(v), json_string_length(v));
    }
    if (json_is_null(v)) {
        return tr_xstrdup("");
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    char *copy = tr_xstrdup(s != NULL ? s : "");
    free(s);
    return copy;
}

/* Adds every leaf under `v` to `out` as "<prefix><sep><key>..." -> text. */
static int flatten(json_t *v, const char *prefix, const char *sep, json_t *out, int depth)
{
    if (depth > TR_SIDECAR_SECRETS_MAX_DEPTH) {
        return -ELOOP;
    }
    char key[TR_SIDECAR_SECRETS_MAX_KEY];
    if (json_is_object(v)) {
        const char *k;
        json_t *child;
        json_object_foreach (v, k, child) {
            int n = prefix[0] ? snprintf(key, sizeof(key), "%s%s%s", prefix, sep, k)
                              : snprintf(key, sizeof(key), "%s", k);
            if (n < 0 || (size_t)n >= sizeof(key)) {
                return -ENAMETOOLONG;
            }
            int rc = flatten(child, key, sep, out, depth + 1);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach (v, i, child) {
            int n = prefix[0] ? snprintf(key, sizeof(key), "%s%s%zu", prefix, sep, i)
                              : snprintf(key, sizeof(key), "%zu", i);
            if (n < 0 || (size_t)n >= sizeof(key)) {
                return -ENAMETOOLONG;
            }
            int rc = flatten(child, key, sep, out, depth + 1);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    char *text = value_text(v);
    json_object_set_new(out, prefix, json_string(text));
    tr_free_null(&text);
    return 0;
}

static char *dump(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    char *copy = tr_xstrdup(s != NULL ? s : "{}");
    free(s);
    return copy;
}

/* Builds the answers from the file's JSON object. */
static int build_answers(struct tr_sidecar_secret_answers *fs, json_t *root, const char *sep,
                         bool multi)
{
    json_t *secrets = json_object(); /* name -> object of key -> text */
    int rc = 0;
    if (multi) {
        const char *k;
        json_t *v;
        json_object_foreach (root, k, v) {
            json_t *vals = json_object();
            if (json_is_object(v) || json_is_array(v)) {
                rc = flatten(v, "", sep, vals, 1);
            } else {
                char *text = value_text(v);
                json_object_set_new(vals, k, json_string(text));
                tr_free_null(&text);
            }
            json_object_set_new(secrets, k, vals);
            if (rc != 0) {
                break;
            }
        }
    } else {
        json_t *flat = json_object();
        rc = flatten(root, "", sep, flat, 0);
        const char *k;
        json_t *v;
        json_object_foreach (flat, k, v) {
            json_object_set_new(secrets, k, json_pack("{s:O}", k, v));
        }
        json_decref(flat);
    }
    if (rc == 0) {
        const char *k;
        json_t *v;
        json_object_foreach (secrets, k, v) {
            tr_map_put(&fs->by_name, tr_slice_cstr(k), dump(v));
        }
        fs->bulk = dump(secrets);
    }
    json_decref(secrets);
    return rc;
}

void tr_sidecar_secrets_dispose(struct tr_sidecar_secret_answers *a)
{
    const struct tr_map_slot *slot;
    for (size_t i = 0; tr_map_next(&a->by_name, &i, &slot);) {
        char *v = slot->value;
        tr_free_null(&v);
    }
    tr_map_dispose(&a->by_name);
    tr_free_null(&a->bulk);
}

int tr_sidecar_secrets_build(const char *json, size_t len, const char *sep, bool multi,
                             struct tr_sidecar_secret_answers *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    tr_map_init(&out->by_name);
    json_error_t jerr;
    json_t *root = json_loadb(json != NULL ? json : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        /* jansson's text may quote the input: say where, not what. */
        snprintf(why, whylen, "not valid JSON (line %d, column %d)", jerr.line, jerr.column);
        tr_map_dispose(&out->by_name);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        snprintf(why, whylen, "must hold a JSON object");
        json_decref(root);
        tr_map_dispose(&out->by_name);
        return -EINVAL;
    }
    int rc = build_answers(out, root, sep, multi);
    json_decref(root);
    if (rc != 0) {
        snprintf(why, whylen, "nested more than %d levels deep or a key path longer than %d "
                              "bytes", TR_SIDECAR_SECRETS_MAX_DEPTH, TR_SIDECAR_SECRETS_MAX_KEY);
        tr_sidecar_secrets_dispose(out);
    }
    return rc;
}

static int read_secrets_file(const char *path, struct tr_buf *text, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(why, whylen, "cannot read %.300s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (;;) {
        char *p = tr_buf_reserve(text, 64 * 1024);
        ssize_t n = read(fd, p, 64 * 1024);
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n < 0) {
                snprintf(why, whylen, "cannot read %.300s: %s", path, strerror(errno));
                rc = -1;
            }
            break;
        }
        tr_buf_commit(text, (size_t)n);
        if (text->len > MAX_SECRETS_FILE) {
            (void)!snprintf(why, whylen, "%.300s is larger than %u bytes", path, MAX_SECRETS_FILE);
            rc = -1;
            break;
        }
    }
    close(fd);
    return rc;
}

/* secretsFile relative to the working directory, else to the component file's dir. */
static void resolve(const struct tr_sidecar_component *c, const char *file, char *out,
                    size_t outlen)
{
    if (file[0] == '/' || access(file, F_OK) == 0) {
        snprintf(out, outlen, "%s", file);
        return;
    }
    const char *slash = strrchr(c->file, '/');
    if (slash == NULL) {
        snprintf(out, outlen, "%s", file);
        return;
    }
    snprintf(out, outlen, "%.*s/%s", (int)(slash - c->file), c->file, file);
}

static int init_file_store(struct tr_sidecar_component *c)
{
    static const char *const known[] = {"secretsFile", "nestedSeparator", "multiValued", NULL};
    for (size_t i = 0; i < c->nmeta; i++) {
        bool ok = false;
        for (size_t k = 0; known[k] != NULL; k++) {
            ok |= strcmp(c->meta[i].name, known[k]) == 0;
        }
        if (!ok) {
            fprintf(stderr,
                    "trellis sidecar: %s: secret store \"%s\": unknown metadata \"%s\" "
                    "(secretstores.local.file takes secretsFile, nestedSeparator, multiValued)\n",
                    c->file, c->name, c->meta[i].name);
            return -1;
        }
    }
    const char *file = tr_sidecar_component_meta(c, "secretsFile");
    const char *sep = tr_sidecar_component_meta(c, "nestedSeparator");
    const char *multi = tr_sidecar_component_meta(c, "multiValued");
    if (file == NULL || file[0] == '\0') {
        fprintf(stderr, "trellis sidecar: %s: secret store \"%s\": missing metadata secretsFile\n",
                c->file, c->name);
        return -1;
    }
    if (multi != NULL && strcmp(multi, "true") != 0 && strcmp(multi, "false") != 0) {
        fprintf(stderr,
                "trellis sidecar: %s: secret store \"%s\": multiValued must be \"true\" or "
                "\"false\"\n",
                c->file, c->name);
        return -1;
    }
    char path[4096];
    resolve(c, file, path, sizeof(path));
    char why[512];
    struct tr_buf text;
    tr_buf_init(&text);
    if (read_secrets_file(path, &text, why, sizeof(why)) != 0) {
        tr_buf_dispose(&text);
        fprintf(stderr, "trellis sidecar: %s: secret store \"%s\": %s\n", c->file, c->name, why);
        return -1;
    }
    struct tr_sidecar_secret_answers *fs = tr_xcalloc(1, sizeof(*fs));
    int rc = tr_sidecar_secrets_build(tr_buf_data(&text), text.len,
                                      sep != NULL && sep[0] != '\0' ? sep : ":",
                                      multi != NULL && strcmp(multi, "true") == 0, fs, why,
                                      sizeof(why));
    tr_buf_dispose(&text);
    if (rc != 0) {
        tr_free_null(&fs);
        fprintf(stderr, "trellis sidecar: %s: secret store \"%s\": %s: %s\n", c->file, c->name,
                path, why);
        return -1;
    }
    c->impl = fs;
    TR_LOG_INFO("sidecar", NULL, "secret store \"%s\": %zu secret(s) from %s", c->name,
                fs->by_name.len, path);
    return 0;
}

static void free_file_store(struct tr_sidecar_secret_answers *fs)
{
    tr_sidecar_secrets_dispose(fs);
    tr_free_null(&fs);
}

/* ------------------------------------------------------------ env store */

static bool env_hidden(const char *name, size_t len)
{
    return (len == 14 && memcmp(name, "DAPR_API_TOKEN", 14) == 0) ||
           (len == 13 && memcmp(name, "APP_API_TOKEN", 13) == 0);
}

static void env_get(struct tr_http_req *req, const struct env_store *es, struct tr_slice name)
{
    size_t plen = strlen(es->prefix);
    char *full = tr_arena_alloc(&req->arena, plen + name.len + 1);
    memcpy(full, es->prefix, plen);
    memcpy(full + plen, name.ptr, name.len);
    full[plen + name.len] = '\0';
    const char *v = strlen(full) == plen + name.len ? getenv(full) : NULL;
    if (v == NULL || env_hidden(full, plen + name.len)) {
        tr_http_resp_send(req, 204, TR_SLICE_NULL, TR_SLICE_NULL);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, tr_arena_strndup(&req->arena, name.ptr, name.len), json_string(v));
    tr_sidecar_send_json(req, 200, o);
}

static void env_bulk(struct tr_http_req *req, const struct env_store *es)
{
    size_t plen = strlen(es->prefix);
    json_t *o = json_object();
    for (char **e = environ; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || strncmp(*e, es->prefix, plen) != 0 || env_hidden(*e, (size_t)(eq - *e)) ||
            (size_t)(eq - *e) == plen) {
            continue;
        }
        char *name = tr_arena_strndup(&req->arena, *e + plen, (size_t)(eq - *e) - plen);
        json_t *v = json_string(eq + 1);
        if (v != NULL) {
            json_object_set_new(o, name, json_pack("{s:o}", name, v));
        }
    }
    tr_sidecar_send_json(req, 200, o);
}

/* ------------------------------------------------------------ handlers */

static const struct tr_sidecar_component *store_of(struct tr_http_req *req)
{
    struct tr_sidecar *sc = tr_sidecar_worker_of(req)->sc;
    struct tr_slice store = tr_http_req_param(req, "store");
    if (!any_store) {
        tr_sidecar_error(req, 500, "ERR_SECRET_STORES_NOT_CONFIGURED",
                         "secret store is not configured");
        return NULL;
    }
    const struct tr_sidecar_component *c = tr_sidecar_component(sc, TR_SIDECAR_SECRETS, store);
    if (c == NULL) {
        tr_sidecar_error(req, 401, "ERR_SECRET_STORE_NOT_FOUND",
                         "failed finding secret store with key %.*s",
                         (int)(store.len > 200 ? 200 : store.len), store.ptr);
    }
    return c;
}

static void on_get(struct tr_http_req *req)
{
    const struct tr_sidecar_component *c = store_of(req);
    if (c == NULL) {
        return;
    }
    struct tr_slice raw = tr_http_req_param(req, "name");
    char *name = tr_arena_alloc(&req->arena, raw.len + 1);
    size_t n = tr_pct_decode(name, raw, false);
    name[n] = '\0';
    if (c->ctype == TR_SIDECAR_TYPE_SECRETS_ENV) {
        env_get(req, c->impl, tr_slice(name, n));
        return;
    }
    const struct tr_sidecar_secret_answers *fs = c->impl;
    const char *answer = tr_map_get(&fs->by_name, tr_slice(name, n));
    if (answer == NULL) {
        tr_http_resp_send(req, 204, TR_SLICE_NULL, TR_SLICE_NULL);
        return;
    }
    tr_http_resp_send(req, 200, TR_SLICE_LIT("application/json"), tr_slice_cstr(answer));
}

static void on_bulk(struct tr_http_req *req)
{
    const struct tr_sidecar_component *c = store_of(req);
    if (c == NULL) {
        return;
    }
    if (c->ctype == TR_SIDECAR_TYPE_SECRETS_ENV) {
        env_bulk(req, c->impl);
        return;
    }
    const struct tr_sidecar_secret_answers *fs = c->impl;
    tr_http_resp_send(req, 200, TR_SLICE_LIT("application/json"), tr_slice_cstr(fs->bulk));
}

static int secrets_init(struct tr_sidecar *sc, unsigned index)
{
    (void)index;
    for (size_t i = 0; i < sc->comps.ncomps; i++) {
        struct tr_sidecar_component *c = &sc->comps.comps[i];
        if (c->kind != TR_SIDECAR_SECRETS) {
            continue;
        }
        any_store = true;
        if (c->ctype == TR_SIDECAR_TYPE_SECRETS_FILE) {
            if (init_file_store(c) != 0) {
                return -1;
            }
            continue;
        }
        struct env_store *es = tr_xcalloc(1, sizeof(*es));
        const char *prefix = tr_sidecar_component_meta(c, "prefix");
        es->prefix = tr_xstrdup(prefix != NULL ? prefix : "");
        c->impl = es;
        for (size_t k = 0; k < c->nmeta; k++) {
            if (strcmp(c->meta[k].name, "prefix") != 0) {
                fprintf(stderr,
                        "trellis sidecar: %s: secret store \"%s\": unknown metadata \"%s\" "
                        "(secretstores.local.env takes prefix)\n",
                        c->file, c->name, c->meta[k].name);
                return -1;
            }
        }
    }
    int rc = 0;
    rc |= tr_sidecar_route(sc, "GET", "/v1.0/secrets/:store/bulk", on_bulk, TR_ROUTE_BUFFERED);
    rc |= tr_sidecar_route(sc, "GET", "/v1.0/secrets/:store/:name", on_get, TR_ROUTE_BUFFERED);
    TR_ASSERT(rc == 0);
    return 0;
}

static void secrets_cleanup(struct tr_sidecar *sc)
{
    for (size_t i = 0; i < sc->comps.ncomps; i++) {
        struct tr_sidecar_component *c = &sc->comps.comps[i];
        if (c->kind != TR_SIDECAR_SECRETS || c->impl == NULL) {
            continue;
        }
        if (c->ctype == TR_SIDECAR_TYPE_SECRETS_FILE) {
            free_file_store(c->impl);
        } else {
            struct env_store *es = c->impl;
            tr_free_null(&es->prefix);
            tr_free_null(&es);
        }
        c->impl = NULL;
    }
}

const struct tr_sidecar_module tr_sidecar_mod_secrets = {
    .name = "secrets",
    .init = secrets_init,
    .cleanup = secrets_cleanup,
};
