/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing trellis.yaml (see manifest.h). The YAML loader gives a tree with positions;
 * this file walks it section by section, checks every key against the list of known
 * keys, converts values with the loader's typed getters and re-labels their messages
 * with the key path, so that each mistake reads "file:line:col: services.x.key: ...". */
#include "up/manifest.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/buf.h"
#include "up/gateway.h"
#include "up/shellwords.h"

#define PATH_MAX_KEY 160 /* bytes of a key path in messages */

struct parser {
    struct tr_up_manifest *m;
    struct tr_conf_err *err;
};

static const char *const top_keys[] = {
    "name",     "server",       "gateway",         "components",  "sidecar",
    "services", "stop_timeout", "startup_timeout", "drain_grace", NULL,
};
static const char *const server_keys[] = {"listen", "data_dir", "workers", NULL};
static const char *const service_keys[] = {
    "command", "replicas", "health", "env", "port", "sidecar", "stop_timeout", NULL,
};

/* Variables trellis up sets itself in every replica's environment. */
static const char *const reserved_env[] = {
    "APP_PORT", "DAPR_HTTP_PORT", "APP_ID", "TRELLIS_REPLICA", NULL,
};

/* ---- messages ---- */

static int vfail(struct parser *p, const struct tr_conf_node *n, const char *key, const char *fmt,
                 va_list ap)
{
    if (p->err == NULL) {
        return -EINVAL;
    }
    char what[400];
    vsnprintf(what, sizeof(what), fmt, ap);
    snprintf(p->err->msg, sizeof(p->err->msg), "%.150s:%u:%u: %.120s: %.220s", n->file, n->line,
             n->col, key, what);
    return -EINVAL;
}

static int fail(struct parser *p, const struct tr_conf_node *n, const char *key, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));
static int fail(struct parser *p, const struct tr_conf_node *n, const char *key, const char *fmt,
                ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(p, n, key, fmt, ap);
    va_end(ap);
    return rc;
}

/* A typed getter failed with `rc` and wrote "file:line:col: msg" about node `n` into
 * `inner`: re-label it as "file:line:col: key: msg". */
static int relabel(struct parser *p, const struct tr_conf_node *n, const char *key, int rc,
                   const struct tr_conf_err *inner)
{
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "%s:%u:%u: ", n->file, n->line, n->col);
    const char *msg = inner->msg;
    if (strncmp(msg, prefix, strlen(prefix)) == 0) {
        msg += strlen(prefix);
    }
    fail(p, n, key, "%s", msg);
    return rc < 0 ? rc : -EINVAL;
}

/* `map` must be a mapping with only `allowed` keys. */
static int check_keys(struct parser *p, const struct tr_conf_node *map, const char *key,
                      const char *const *allowed)
{
    struct tr_conf_err inner = {""};
    if (map->kind != TR_CONF_MAP) {
        int rc = tr_conf_expect(map, TR_CONF_MAP, &inner);
        return relabel(p, map, key, rc, &inner);
    }
    int rc = tr_conf_check_keys(map, allowed, NULL, &inner);
    if (rc == 0) {
        return 0;
    }
    /* Find the offending key again to report at its own position. */
    for (size_t i = 0; i < map->u.map.len; i++) {
        const struct tr_conf_node *k = map->u.map.pairs[i].key;
        char prefix[300];
        snprintf(prefix, sizeof(prefix), "%s:%u:%u: ", k->file, k->line, k->col);
        if (strncmp(inner.msg, prefix, strlen(prefix)) == 0) {
            return relabel(p, k, key, rc, &inner);
        }
    }
    return relabel(p, map, key, rc, &inner);
}

static int get_str(struct parser *p, const struct tr_conf_node *n, const char *key,
                   const char **out)
{
    struct tr_conf_err inner = {""};
    int rc = tr_conf_str(n, out, &inner);
    return rc == 0 ? 0 : relabel(p, n, key, rc, &inner);
}

static int get_bool(struct parser *p, const struct tr_conf_node *n, const char *key, bool *out)
{
    struct tr_conf_err inner = {""};
    int rc = tr_conf_bool(n, out, &inner);
    return rc == 0 ? 0 : relabel(p, n, key, rc, &inner);
}

static int get_int(struct parser *p, const struct tr_conf_node *n, const char *key, int64_t min,
                   int64_t max, int64_t *out)
{
    struct tr_conf_err inner = {""};
    int rc = tr_conf_int(n, min, max, out, &inner);
    return rc == 0 ? 0 : relabel(p, n, key, rc, &inner);
}

static int get_duration(struct parser *p, const struct tr_conf_node *n, const char *key,
                        uint64_t *out)
{
    struct tr_conf_err inner = {""};
    int rc = tr_conf_duration_ms(n, out, &inner);
    if (rc != 0) {
        return relabel(p, n, key, rc, &inner);
    }
    if (*out > TR_UP_MAX_TIMEOUT_MS) {
        return fail(p, n, key, "at most 10m");
    }
    return 0;
}

/* ---- paths ---- */

static const char *join_path(struct parser *p, const char *rel)
{
    if (rel[0] == '/') {
        return tr_arena_strndup(&p->m->arena, rel, strlen(rel));
    }
    while (rel[0] == '.' && rel[1] == '/') {
        rel += 2;
        while (rel[0] == '/') {
            rel++;
        }
    }
    const char *dir = p->m->dir;
    size_t dlen = strlen(dir);
    size_t rlen = strlen(rel);
    if (rlen == 0 || (rlen == 1 && rel[0] == '.')) {
        return tr_arena_strndup(&p->m->arena, dir, dlen);
    }
    char *out = tr_arena_alloc(&p->m->arena, dlen + 1 + rlen + 1);
    memcpy(out, dir, dlen);
    size_t o = dlen;
    if (o == 0 || out[o - 1] != '/') {
        out[o++] = '/';
    }
    memcpy(out + o, rel, rlen + 1);
    return out;
}

/* host:port as trellis up can use it: a numeric address and a port (0 = pick). */
static int get_addr(struct parser *p, const struct tr_conf_node *n, const char *key,
                    const char **out)
{
    const char *s;
    int rc = get_str(p, n, key, &s);
    if (rc != 0) {
        return rc;
    }
    struct tr_addr a;
    if (tr_addr_parse(s, &a) != 0) {
        return fail(p, n, key,
                    "expected host:port with a numeric IP or localhost (port 0 picks "
                    "a free port), got \"%.64s\"",
                    s);
    }
    *out = s;
    return 0;
}

/* ---- sections ---- */

static int parse_server(struct parser *p, const struct tr_conf_node *n)
{
    int rc = check_keys(p, n, "server", server_keys);
    if (rc != 0) {
        return rc;
    }
    const struct tr_conf_node *v;
    if ((v = tr_conf_get(n, "listen")) != NULL &&
        (rc = get_addr(p, v, "server.listen", &p->m->server_listen)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "data_dir")) != NULL) {
        const char *dir;
        if ((rc = get_str(p, v, "server.data_dir", &dir)) != 0) {
            return rc;
        }
        p->m->data_dir = join_path(p, dir);
    }
    if ((v = tr_conf_get(n, "workers")) != NULL) {
        int64_t w;
        if ((rc = get_int(p, v, "server.workers", 1, 64, &w)) != 0) {
            return rc;
        }
        p->m->server_workers = (unsigned)w;
    }
    return 0;
}

static int parse_gateway(struct parser *p, const struct tr_conf_node *n)
{
    struct tr_conf_err inner = {""};
    if (n->kind != TR_CONF_MAP) {
        int rc = tr_conf_expect(n, TR_CONF_MAP, &inner);
        return relabel(p, n, "gateway", rc, &inner);
    }
    p->m->gateway = n;
    const struct tr_conf_node *v;
    int rc;
    if ((v = tr_conf_get(n, "registry")) != NULL) {
        return fail(p, v, "gateway.registry",
                    "set by trellis up to the server's address; remove it");
    }
    if ((v = tr_conf_get(n, "listen")) != NULL &&
        (rc = get_addr(p, v, "gateway.listen", &p->m->gateway_listen)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "admin")) != NULL &&
        (rc = get_addr(p, v, "gateway.admin", &p->m->gateway_admin)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "workers")) != NULL) {
        int64_t w;
        if ((rc = get_int(p, v, "gateway.workers", 1, 64, &w)) != 0) {
            return rc;
        }
        p->m->gateway_workers = (unsigned)w;
    }
    return 0;
}

static bool valid_name(struct tr_slice s)
{
    if (s.len == 0 || s.len > TR_UP_MAX_NAME) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_'))) {
            return false;
        }
    }
    return true;
}

static bool valid_env_name(struct tr_slice s)
{
    if (s.len == 0 || (s.ptr[0] >= '0' && s.ptr[0] <= '9')) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return false;
        }
    }
    return true;
}

static int parse_command(struct parser *p, struct tr_up_service_def *s,
                         const struct tr_conf_node *n, const char *key)
{
    char **argv = NULL;
    size_t argc = 0;
    if (n->kind == TR_CONF_SEQ) {
        if (n->u.seq.len == 0 || n->u.seq.len > TR_UP_MAX_ARGS) {
            return fail(p, n, key, "expected 1 to %d words", TR_UP_MAX_ARGS);
        }
        argc = n->u.seq.len;
        argv = tr_arena_alloc(&p->m->arena, (argc + 1) * sizeof(char *));
        for (size_t i = 0; i < argc; i++) {
            const char *w;
            int rc = get_str(p, n->u.seq.items[i], key, &w);
            if (rc != 0) {
                return rc;
            }
            argv[i] = (char *)w;
        }
        argv[argc] = NULL;
    } else {
        const char *line;
        int rc = get_str(p, n, key, &line);
        if (rc != 0) {
            return rc;
        }
        const char *why = NULL;
        if (tr_up_shell_split(line, strlen(line), &p->m->arena, &argv, &argc, &why) != 0) {
            return fail(p, n, key, "%s", why);
        }
    }
    if (argv[0][0] == '\0') {
        return fail(p, n, key, "the program name is empty");
    }
    if (strchr(argv[0], '/') != NULL) {
        argv[0] = (char *)join_path(p, argv[0]);
    }
    s->argv = (const char *const *)argv;
    s->argc = argc;
    s->command_pos = (struct tr_up_pos){n->line, n->col};
    return 0;
}

static int parse_env(struct parser *p, struct tr_up_service_def *s, const struct tr_conf_node *n,
                     const char *key)
{
    struct tr_conf_err inner = {""};
    if (n->kind != TR_CONF_MAP) {
        int rc = tr_conf_expect(n, TR_CONF_MAP, &inner);
        return relabel(p, n, key, rc, &inner);
    }
    if (n->u.map.len > TR_UP_MAX_ENV) {
        return fail(p, n, key, "at most %d variables", TR_UP_MAX_ENV);
    }
    const char **env = tr_arena_alloc(&p->m->arena, (n->u.map.len + 1) * sizeof(char *));
    for (size_t i = 0; i < n->u.map.len; i++) {
        const struct tr_conf_pair *pair = &n->u.map.pairs[i];
        struct tr_slice name = pair->key->u.text;
        char vkey[PATH_MAX_KEY + 96];
        snprintf(vkey, sizeof(vkey), "%.176s.%.*s", key, (int)(name.len > 64 ? 64 : name.len),
                 name.ptr);
        if (!valid_env_name(name) || strlen(name.ptr) != name.len) {
            return fail(p, pair->key, key,
                        "\"%.64s\" is not a variable name (letters, digits and _, not starting "
                        "with a digit)",
                        name.ptr);
        }
        for (size_t r = 0; reserved_env[r] != NULL; r++) {
            if (tr_slice_eq(name, tr_slice_cstr(reserved_env[r]))) {
                return fail(p, pair->key, vkey, "set by trellis up for every replica");
            }
        }
        if (pair->value->kind != TR_CONF_SCALAR) {
            int rc = tr_conf_expect(pair->value, TR_CONF_SCALAR, &inner);
            return relabel(p, pair->value, vkey, rc, &inner);
        }
        const char *value = "";
        if (!tr_conf_is_null(pair->value)) {
            int rc = get_str(p, pair->value, vkey, &value);
            if (rc != 0) {
                return rc;
            }
        }
        size_t nl = name.len;
        size_t vl = strlen(value);
        char *kv = tr_arena_alloc(&p->m->arena, nl + 1 + vl + 1);
        memcpy(kv, name.ptr, nl);
        kv[nl] = '=';
        memcpy(kv + nl + 1, value, vl + 1);
        env[i] = kv;
    }
    env[n->u.map.len] = NULL;
    s->env = env;
    s->nenv = n->u.map.len;
    return 0;
}

static int parse_health(struct parser *p, struct tr_up_service_def *s, const struct tr_conf_node *n,
                        const char *key)
{
    const char *path;
    int rc = get_str(p, n, key, &path);
    if (rc != 0) {
        return rc;
    }
    if (path[0] != '/') {
        return fail(p, n, key, "expected an HTTP path starting with '/', got \"%.64s\"", path);
    }
    for (const char *c = path; *c != '\0'; c++) {
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
            return fail(p, n, key, "the path may not contain spaces or control characters");
        }
    }
    if (strlen(path) > 1024) {
        return fail(p, n, key, "longer than 1024 bytes");
    }
    s->health = path;
    return 0;
}

/* Every ${NAME} in the command must be a variable the replica will have. */
static int check_vars(struct parser *p, const struct tr_up_service_def *s,
                      const struct tr_conf_node *n, const char *key)
{
    const char *vars[TR_UP_MAX_ENV + 8];
    size_t nv = 0;
    vars[nv++] = "APP_PORT=1";
    vars[nv++] = "APP_ID=x";
    vars[nv++] = "TRELLIS_REPLICA=1";
    vars[nv++] = "TRELLIS_ADDR=x";
    if (s->sidecar) {
        vars[nv++] = "DAPR_HTTP_PORT=1";
    }
    for (size_t i = 0; i < s->nenv; i++) {
        vars[nv++] = s->env[i];
    }
    vars[nv] = NULL;
    struct tr_buf scratch;
    tr_buf_init(&scratch);
    int rc = 0;
    for (size_t i = 0; i < s->argc && rc == 0; i++) {
        const char *name;
        size_t len;
        rc = tr_up_expand_vars(s->argv[i], vars, &scratch, &name, &len);
        if (rc == -EINVAL) {
            rc = fail(p, n, key, "\"${\" without a closing \"}\"");
        } else if (rc != 0) {
            if (len == 14 && strncmp(name, "DAPR_HTTP_PORT", 14) == 0) {
                rc = fail(p, n, key, "${DAPR_HTTP_PORT} needs a sidecar (sidecar is false)");
            } else {
                rc = fail(p, n, key,
                          "unknown variable ${%.*s} (known: APP_PORT, APP_ID, TRELLIS_REPLICA, "
                          "TRELLIS_ADDR, DAPR_HTTP_PORT and the service's env)",
                          (int)(len > 64 ? 64 : len), name);
            }
        }
        tr_buf_reset(&scratch);
    }
    tr_buf_dispose(&scratch);
    return rc;
}

static int parse_service(struct parser *p, struct tr_up_service_def *s,
                         const struct tr_conf_pair *pair)
{
    struct tr_slice name = pair->key->u.text;
    char key[PATH_MAX_KEY];
    if (!valid_name(name) || strlen(name.ptr) != name.len) {
        return fail(p, pair->key, "services",
                    "\"%.64s\" is not a valid service name (1 to %d letters, digits, '-' and '_', "
                    "starting with a letter or digit)",
                    name.ptr, TR_UP_MAX_NAME);
    }
    snprintf(key, sizeof(key), "services.%s", name.ptr);
    const struct tr_conf_node *n = pair->value;
    int rc = check_keys(p, n, key, service_keys);
    if (rc != 0) {
        return rc;
    }
    s->name = name.ptr;
    s->pos = (struct tr_up_pos){pair->key->line, pair->key->col};
    s->replicas = 1;
    s->sidecar = p->m->sidecar;
    s->stop_timeout_ms = p->m->stop_timeout_ms;
    static const char *const no_env[] = {NULL};
    s->env = no_env;
    char sub[PATH_MAX_KEY + 16];
    const struct tr_conf_node *v = tr_conf_get(n, "command");
    if (v == NULL) {
        return fail(p, n, key, "missing key \"command\"");
    }
    snprintf(sub, sizeof(sub), "%s.command", key);
    if ((rc = parse_command(p, s, v, sub)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(n, "replicas")) != NULL) {
        int64_t r;
        snprintf(sub, sizeof(sub), "%s.replicas", key);
        if ((rc = get_int(p, v, sub, 0, TR_UP_MAX_REPLICAS, &r)) != 0) {
            return rc;
        }
        s->replicas = (unsigned)r;
    }
    if ((v = tr_conf_get(n, "health")) != NULL) {
        snprintf(sub, sizeof(sub), "%s.health", key);
        if ((rc = parse_health(p, s, v, sub)) != 0) {
            return rc;
        }
    }
    if ((v = tr_conf_get(n, "env")) != NULL) {
        snprintf(sub, sizeof(sub), "%s.env", key);
        if ((rc = parse_env(p, s, v, sub)) != 0) {
            return rc;
        }
    }
    if ((v = tr_conf_get(n, "port")) != NULL) {
        int64_t port;
        snprintf(sub, sizeof(sub), "%s.port", key);
        if ((rc = get_int(p, v, sub, 1, 65535, &port)) != 0) {
            return rc;
        }
        s->port = (uint16_t)port;
    }
    if ((v = tr_conf_get(n, "sidecar")) != NULL) {
        snprintf(sub, sizeof(sub), "%s.sidecar", key);
        if ((rc = get_bool(p, v, sub, &s->sidecar)) != 0) {
            return rc;
        }
    }
    if ((v = tr_conf_get(n, "stop_timeout")) != NULL) {
        snprintf(sub, sizeof(sub), "%s.stop_timeout", key);
        if ((rc = get_duration(p, v, sub, &s->stop_timeout_ms)) != 0) {
            return rc;
        }
    }
    snprintf(sub, sizeof(sub), "%s.command", key);
    return check_vars(p, s, tr_conf_get(n, "command"), sub);
}

static int parse_services(struct parser *p, const struct tr_conf_node *n)
{
    struct tr_conf_err inner = {""};
    if (n->kind != TR_CONF_MAP) {
        if (tr_conf_is_null(n)) {
            return 0;
        }
        int rc = tr_conf_expect(n, TR_CONF_MAP, &inner);
        return relabel(p, n, "services", rc, &inner);
    }
    if (n->u.map.len > TR_UP_MAX_SERVICES) {
        return fail(p, n, "services", "at most %d services", TR_UP_MAX_SERVICES);
    }
    struct tr_up_manifest *m = p->m;
    m->services = tr_arena_alloc(&m->arena, (n->u.map.len + 1) * sizeof(*m->services));
    memset(m->services, 0, (n->u.map.len + 1) * sizeof(*m->services));
    for (size_t i = 0; i < n->u.map.len; i++) {
        int rc = parse_service(p, &m->services[i], &n->u.map.pairs[i]);
        if (rc != 0) {
            return rc;
        }
        m->nservices++;
    }
    return 0;
}

/* The settings every other section's defaults depend on come first. */
static int parse_globals(struct parser *p, const struct tr_conf_node *root)
{
    struct tr_up_manifest *m = p->m;
    const struct tr_conf_node *v;
    int rc;
    if ((v = tr_conf_get(root, "name")) != NULL) {
        if ((rc = get_str(p, v, "name", &m->name)) != 0) {
            return rc;
        }
        if (!valid_name(tr_slice_cstr(m->name))) {
            return fail(p, v, "name",
                        "expected letters, digits, '-' and '_' (at most %d), got \"%.64s\"",
                        TR_UP_MAX_NAME, m->name);
        }
    }
    if ((v = tr_conf_get(root, "sidecar")) != NULL &&
        (rc = get_bool(p, v, "sidecar", &m->sidecar))) {
        return rc;
    }
    if ((v = tr_conf_get(root, "stop_timeout")) != NULL &&
        (rc = get_duration(p, v, "stop_timeout", &m->stop_timeout_ms)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(root, "startup_timeout")) != NULL) {
        if ((rc = get_duration(p, v, "startup_timeout", &m->startup_timeout_ms)) != 0) {
            return rc;
        }
        if (m->startup_timeout_ms == 0) {
            return fail(p, v, "startup_timeout", "must be more than 0");
        }
    }
    if ((v = tr_conf_get(root, "drain_grace")) != NULL &&
        (rc = get_duration(p, v, "drain_grace", &m->drain_grace_ms)) != 0) {
        return rc;
    }
    if ((v = tr_conf_get(root, "components")) != NULL) {
        const char *dir;
        if ((rc = get_str(p, v, "components", &dir)) != 0) {
            return rc;
        }
        m->components = join_path(p, dir);
    }
    return 0;
}

static void set_defaults(struct tr_up_manifest *m)
{
    m->server_listen = TR_UP_DEFAULT_SERVER_LISTEN;
    m->server_workers = 1;
    m->gateway_listen = TR_UP_DEFAULT_GATEWAY_LISTEN;
    m->gateway_workers = 1;
    m->sidecar = true;
    m->stop_timeout_ms = TR_UP_DEFAULT_STOP_TIMEOUT_MS;
    m->startup_timeout_ms = TR_UP_DEFAULT_STARTUP_TIMEOUT_MS;
    m->drain_grace_ms = TR_UP_DEFAULT_DRAIN_GRACE_MS;
}

static const char *base_name(struct tr_arena *a, const char *dir)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') {
        len--;
    }
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/') {
        start--;
    }
    if (start == len) {
        return "trellis";
    }
    return tr_arena_strndup(a, dir + start, len - start);
}

static int parse_root(struct parser *p, const struct tr_conf_node *root)
{
    struct tr_up_manifest *m = p->m;
    struct tr_conf_err inner = {""};
    if (root->kind != TR_CONF_MAP) {
        int rc = tr_conf_expect(root, TR_CONF_MAP, &inner);
        return relabel(p, root, "manifest", rc, &inner);
    }
    int rc = tr_conf_check_keys(root, top_keys, NULL, &inner);
    if (rc != 0) {
        if (p->err != NULL) {
            snprintf(p->err->msg, sizeof(p->err->msg), "%s", inner.msg);
        }
        return rc;
    }
    if ((rc = parse_globals(p, root)) != 0) {
        return rc;
    }
    const struct tr_conf_node *v;
    if ((v = tr_conf_get(root, "server")) != NULL && !tr_conf_is_null(v) &&
        (rc = parse_server(p, v)) != 0) {
        return rc;
    }
    if (m->data_dir == NULL) {
        m->data_dir = join_path(p, ".trellis/data");
    }
    if ((v = tr_conf_get(root, "gateway")) != NULL && !tr_conf_is_null(v) &&
        (rc = parse_gateway(p, v)) != 0) {
        return rc;
    }
    v = tr_conf_get(root, "services");
    if (v == NULL) {
        return fail(p, root, "services", "missing: the services to run");
    }
    if ((rc = parse_services(p, v)) != 0) {
        return rc;
    }
    if (m->name == NULL) {
        m->name = base_name(&m->arena, m->dir);
    }
    if (m->gateway != NULL) {
        /* Validate the section now, with stand-ins for the addresses chosen at start. */
        struct tr_buf yaml;
        tr_buf_init(&yaml);
        rc = tr_up_gateway_yaml(m, m->gateway_listen,
                                m->gateway_admin != NULL ? m->gateway_admin : "127.0.0.1:0",
                                "http://127.0.0.1:8500", &yaml, p->err);
        tr_buf_dispose(&yaml);
    }
    return rc;
}

int tr_up_manifest_parse(const char *file, const char *dir, const char *data, size_t len,
                         struct tr_up_manifest **out, struct tr_conf_err *err)
{
    struct tr_up_manifest *m = tr_xcalloc(1, sizeof(*m));
    tr_arena_init(&m->arena, 4096);
    m->file = tr_arena_strndup(&m->arena, file, strlen(file));
    m->dir = tr_arena_strndup(&m->arena, dir, strlen(dir));
    set_defaults(m);
    int rc = tr_conf_load_mem(m->file, data, len, &m->conf, err);
    if (rc != 0) {
        tr_up_manifest_free(m);
        return rc;
    }
    struct parser p = {.m = m, .err = err};
    rc = parse_root(&p, tr_conf_root(m->conf));
    if (rc != 0) {
        tr_up_manifest_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

static int read_file(const char *path, struct tr_buf *out, struct tr_conf_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int rc = -errno;
        if (err != NULL) {
            snprintf(err->msg, sizeof(err->msg), "%.300s: %s", path, strerror(-rc));
        }
        return rc;
    }
    char chunk[16384];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (out->len + n > TR_CONF_MAX_BYTES) {
            rc = -EFBIG;
            if (err != NULL) {
                snprintf(err->msg, sizeof(err->msg), "%.300s: larger than %u bytes", path,
                         TR_CONF_MAX_BYTES);
            }
            break;
        }
        tr_buf_append(out, chunk, n);
    }
    if (rc == 0 && ferror(f)) {
        rc = -EIO;
        if (err != NULL) {
            snprintf(err->msg, sizeof(err->msg), "%.300s: read error", path);
        }
    }
    fclose(f);
    return rc;
}

int tr_up_manifest_load(const char *path, struct tr_up_manifest **out, struct tr_conf_err *err)
{
    struct tr_buf data;
    tr_buf_init(&data);
    int rc = read_file(path, &data, err);
    if (rc != 0) {
        tr_buf_dispose(&data);
        return rc;
    }
    /* The directory, made absolute, so that children started elsewhere find paths. */
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    char parent[PATH_MAX];
    if (slash == NULL) {
        snprintf(parent, sizeof(parent), ".");
    } else if (slash == path) {
        snprintf(parent, sizeof(parent), "/");
    } else {
        snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
    }
    if (realpath(parent, dir) == NULL) {
        rc = -errno;
        if (err != NULL) {
            snprintf(err->msg, sizeof(err->msg), "%.300s: %s", parent, strerror(-rc));
        }
        tr_buf_dispose(&data);
        return rc;
    }
    rc = tr_up_manifest_parse(path, dir, data.len ? tr_buf_data(&data) : "", data.len, out, err);
    tr_buf_dispose(&data);
    return rc;
}

int tr_up_manifest_check_files(const struct tr_up_manifest *m, struct tr_conf_err *err)
{
    for (size_t i = 0; i < m->nservices; i++) {
        const struct tr_up_service_def *s = &m->services[i];
        const char *prog = s->argv[0];
        if (strchr(prog, '/') == NULL) {
            continue; /* found through PATH when it starts */
        }
        struct stat st;
        int rc = 0;
        const char *why = NULL;
        if (stat(prog, &st) != 0) {
            rc = -errno;
            why = strerror(errno);
        } else if (!S_ISREG(st.st_mode)) {
            rc = -EACCES;
            why = "not a regular file";
        } else if (access(prog, X_OK) != 0) {
            rc = -errno;
            why = "not executable";
        }
        if (rc != 0) {
            if (err != NULL) {
                snprintf(err->msg, sizeof(err->msg),
                         "%.150s:%u:%u: services.%s.command: %.200s: %s", m->file,
                         s->command_pos.line, s->command_pos.col, s->name, prog, why);
            }
            return rc;
        }
    }
    if (m->components != NULL) {
        struct stat st;
        if (stat(m->components, &st) != 0 || !S_ISDIR(st.st_mode)) {
            const struct tr_conf_node *v = tr_conf_get(tr_conf_root(m->conf), "components");
            if (err != NULL) {
                snprintf(err->msg, sizeof(err->msg),
                         "%.150s:%u:%u: components: %.250s: not a directory", m->file,
                         v ? v->line : 0, v ? v->col : 0, m->components);
            }
            return -ENOTDIR;
        }
    }
    return 0;
}

const struct tr_up_service_def *tr_up_manifest_service(const struct tr_up_manifest *m,
                                                       const char *name)
{
    for (size_t i = 0; i < m->nservices; i++) {
        if (strcmp(m->services[i].name, name) == 0) {
            return &m->services[i];
        }
    }
    return NULL;
}

void tr_up_manifest_free(struct tr_up_manifest *m)
{
    if (m == NULL) {
        return;
    }
    tr_conf_free(m->conf);
    tr_arena_dispose(&m->arena);
    tr_free_null(&m);
}
