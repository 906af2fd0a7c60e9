/* SPDX-License-Identifier: Apache-2.0 */
/* `trellis kv get|put|delete|list`: a thin client over /v1/kv. Values travel as bytes
 * (base64 only inside JSON, as in Consul's API); a check-and-set that loses, which the
 * API answers with 200 and `false`, becomes exit status 1 with a message saying so. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/table.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/mem.h"

#define KV_MAX_POS 2
#define KV_MAX_STDIN_BYTES (64u * 1024 * 1024)
#define KV_PREVIEW_CHARS 48

struct kv_opts {
    const char *cmd;  /* "kv get" */
    const char *addr; /* --addr, or NULL */
    const char *pos[KV_MAX_POS];
    size_t npos;
    uint64_t flags;
    uint64_t cas;
    bool has_flags;
    bool has_cas;
    bool json;
    bool raw;
    bool recurse;
};

struct kv_sub {
    const char *name;
    const char *options; /* the options it accepts, space-separated */
    size_t min_pos;
    size_t max_pos;
    int (*run)(struct tr_cli_api *api, const struct kv_opts *o);
};

static bool takes_value(const char *name)
{
    return strcmp(name, "addr") == 0 || strcmp(name, "flags") == 0 || strcmp(name, "cas") == 0;
}

static bool accepts(const struct kv_sub *sub, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = sub->options; (p = strstr(p, name)) != NULL; p += n) {
        bool starts = p == sub->options || p[-1] == ' ';
        if (starts && (p[n] == ' ' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

static int parse_u64_opt(const struct kv_opts *o, const char *name, const char *v, uint64_t *out)
{
    if (tr_slice_to_u64(tr_slice_cstr(v), out) != 0) {
        return tr_cli_usage_error(o->cmd, "--%s: expected an unsigned integer, got \"%s\"", name,
                                  v);
    }
    return 0;
}

static int set_opt(struct kv_opts *o, const char *name, const char *v)
{
    if (strcmp(name, "json") == 0) {
        o->json = true;
    } else if (strcmp(name, "raw") == 0) {
        o->raw = true;
    } else if (strcmp(name, "recurse") == 0) {
        o->recurse = true;
    } else if (strcmp(name, "addr") == 0) {
        o->addr = v;
    } else if (strcmp(name, "flags") == 0) {
        o->has_flags = true;
        return parse_u64_opt(o, name, v, &o->flags);
    } else if (strcmp(name, "cas") == 0) {
        o->has_cas = true;
        return parse_u64_opt(o, name, v, &o->cas);
    }
    return 0;
}

/* Fills `o` from argv[i..]; returns 0 or the usage error's exit status. */
static int parse_args(const struct kv_sub *sub, int argc, char **argv, int i, struct kv_opts *o)
{
    bool only_pos = false;
    while (i < argc) {
        const char *value = NULL;
        const char *name = only_pos ? NULL : tr_cli_next_opt(argc, argv, &i, &value, takes_value);
        if (only_pos) {
            i++;
        }
        if (name != NULL && name[0] == '\0') {
            only_pos = true; /* "--": the rest are positional, even "-5" */
            continue;
        }
        if (name == NULL) {
            if (o->npos == sub->max_pos) {
                return tr_cli_usage_error(o->cmd, "unexpected argument \"%s\"", argv[i - 1]);
            }
            o->pos[o->npos++] = argv[i - 1];
            continue;
        }
        if (!accepts(sub, name)) {
            return tr_cli_usage_error(o->cmd, "unknown option --%s", name);
        }
        if (takes_value(name) && value == NULL) {
            return tr_cli_usage_error(o->cmd, "--%s needs a value", name);
        }
        if (!takes_value(name) && value != NULL) {
            return tr_cli_usage_error(o->cmd, "--%s takes no value", name);
        }
        int rc = set_opt(o, name, value);
        if (rc != 0) {
            return rc;
        }
    }
    if (o->npos < sub->min_pos) {
        return tr_cli_usage_error(o->cmd, "missing %s",
                                  o->npos == 0 ? "KEY"
                                               : "VALUE (or - to "
                                                 "read stdin)");
    }
    return 0;
}

static void kv_target(struct tr_buf *t, const char *key, const char *query)
{
    tr_buf_append_slice(t, TR_SLICE_LIT("/v1/kv/"));
    tr_cli_url_escape(t, tr_slice_cstr(key), true);
    tr_buf_appendf(t, "%s", query);
    tr_buf_append(t, "", 1);
}

/* Decodes an entry's base64 Value (null means empty) into `out`. */
static int entry_value(const struct tr_cli_api *api, const json_t *entry, struct tr_buf *out)
{
    const json_t *v = json_object_get(entry, "Value");
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v) ||
        tr_base64_decode(out, tr_slice(json_string_value(v), json_string_length(v))) != 0) {
        fprintf(stderr, "trellis %s: server sent a Value that is not base64\n", api->cmd);
        return -EINVAL;
    }
    return 0;
}

/* GET ?raw: the value's bytes as the body, so nothing is decoded on the way. */
static int get_value(struct tr_cli_api *api, const struct kv_opts *o, const char *target)
{
    struct tr_cli_resp resp;
    int rc = 1;
    if (tr_cli_api_call(api, "GET", target, TR_SLICE_NULL, &resp) != 0) {
        /* already reported */
    } else if (resp.status == 404) {
        fprintf(stderr, "trellis %s: key \"%s\" not found\n", o->cmd, o->pos[0]);
    } else if (resp.status != 200) {
        tr_cli_api_print_status(api, o->pos[0], &resp);
    } else {
        fwrite(tr_buf_data(&resp.body), 1, resp.body.len, stdout);
        if (!o->raw) {
            fputc('\n', stdout);
        }
        rc = 0;
    }
    tr_cli_resp_dispose(&resp);
    return rc;
}

static int get_entry(struct tr_cli_api *api, const struct kv_opts *o, const char *target)
{
    struct tr_cli_resp resp;
    int rc = 1;
    json_t *arr = NULL;
    if (tr_cli_api_call(api, "GET", target, TR_SLICE_NULL, &resp) != 0) {
        /* already reported */
    } else if (resp.status == 404) {
        fprintf(stderr, "trellis %s: key \"%s\" not found\n", o->cmd, o->pos[0]);
    } else if (resp.status != 200) {
        tr_cli_api_print_status(api, o->pos[0], &resp);
    } else if ((arr = tr_cli_resp_json(api, &resp)) == NULL) {
        /* reported */
    } else if (!json_is_object(json_array_get(arr, 0))) {
        fprintf(stderr, "trellis %s: server sent no entry for \"%s\"\n", o->cmd, o->pos[0]);
    } else {
        tr_cli_print_json(json_array_get(arr, 0));
        rc = 0;
    }
    json_decref(arr);
    tr_cli_resp_dispose(&resp);
    return rc;
}

static int kv_get(struct tr_cli_api *api, const struct kv_opts *o)
{
    if (o->json && o->raw) {
        return tr_cli_usage_error(o->cmd, "--json and --raw exclude each other");
    }
    if (o->pos[0][0] == '\0') {
        return tr_cli_usage_error(o->cmd,
                                  "KEY must not be empty (list keys with: trellis kv list)");
    }
    struct tr_buf target;
    tr_cli_buf_init(&target);
    kv_target(&target, o->pos[0], o->json ? "" : "?raw");
    int rc =
        o->json ? get_entry(api, o, tr_buf_data(&target)) : get_value(api, o, tr_buf_data(&target));
    tr_buf_dispose(&target);
    return rc;
}

static int read_stdin(const char *cmd, struct tr_buf *out)
{
    for (;;) {
        char *p = tr_buf_reserve(out, 65536);
        size_t n = fread(p, 1, 65536, stdin);
        tr_buf_commit(out, n);
        if (out->len > KV_MAX_STDIN_BYTES) {
            fprintf(stderr, "trellis %s: value on stdin is larger than %u MiB\n", cmd,
                    KV_MAX_STDIN_BYTES >> 20);
            return -EMSGSIZE;
        }
        if (n == 0) {
            break;
        }
    }
    if (ferror(stdin)) {
        fprintf(stderr, "trellis %s: cannot read the value from stdin: %s\n", cmd, strerror(errno));
        return -EIO;
    }
    return 0;
}

/* A write answered `false`: say which condition did not hold. */
static void print_cas_failure(const struct kv_opts *o, const char *verb)
{
    if (!o->has_cas) {
        fprintf(stderr, "trellis %s: the server refused to %s \"%s\"\n", o->cmd, verb, o->pos[0]);
    } else if (o->cas == 0) {
        fprintf(stderr,
                "trellis %s: check-and-set failed: \"%s\" already exists "
                "(--cas 0 only creates)\n",
                o->cmd, o->pos[0]);
    } else {
        fprintf(stderr,
                "trellis %s: check-and-set failed: \"%s\" does not exist or its "
                "ModifyIndex is not %" PRIu64 "\n",
                o->cmd, o->pos[0], o->cas);
    }
}

/* Sends a PUT or DELETE whose answer is `true` or `false`. Returns the exit status. */
static int kv_write(struct tr_cli_api *api, const struct kv_opts *o, const char *method,
                    const char *target, struct tr_slice body, const char *verb)
{
    struct tr_cli_resp resp;
    int rc = 1;
    if (tr_cli_api_call(api, method, target, body, &resp) != 0) {
        tr_cli_resp_dispose(&resp);
        return 1;
    }
    struct tr_slice answer = tr_slice_trim(tr_buf_slice(&resp.body));
    if (resp.status != 200) {
        tr_cli_api_print_status(api, o->pos[0], &resp);
    } else if (tr_slice_eq(answer, TR_SLICE_LIT("true"))) {
        rc = 0;
    } else if (tr_slice_eq(answer, TR_SLICE_LIT("false"))) {
        print_cas_failure(o, verb);
    } else {
        fprintf(stderr, "trellis %s: unexpected answer from the server: %.*s\n", o->cmd,
                TR_SLICE_FMT(answer));
    }
    tr_cli_resp_dispose(&resp);
    return rc;
}

static int kv_put(struct tr_cli_api *api, const struct kv_opts *o)
{
    if (o->pos[0][0] == '\0') {
        return tr_cli_usage_error(o->cmd, "KEY must not be empty");
    }
    struct tr_buf value;
    tr_cli_buf_init(&value);
    if (strcmp(o->pos[1], "-") != 0) {
        tr_buf_append_slice(&value, tr_slice_cstr(o->pos[1]));
    } else if (read_stdin(o->cmd, &value) != 0) {
        tr_buf_dispose(&value);
        return 1;
    }
    struct tr_buf target;
    tr_cli_buf_init(&target);
    tr_buf_append_slice(&target, TR_SLICE_LIT("/v1/kv/"));
    tr_cli_url_escape(&target, tr_slice_cstr(o->pos[0]), true);
    char sep = '?';
    if (o->has_flags) {
        tr_buf_appendf(&target, "%cflags=%" PRIu64, sep, o->flags);
        sep = '&';
    }
    if (o->has_cas) {
        tr_buf_appendf(&target, "%ccas=%" PRIu64, sep, o->cas);
    }
    tr_buf_append(&target, "", 1);
    /* Never a NULL pointer, even for an empty value: the client then sends Content-Length: 0. */
    struct tr_slice body = tr_buf_slice(&value);
    int rc = kv_write(api, o, "PUT", tr_buf_data(&target), body, "write");
    if (rc == 0) {
        printf("wrote %s (%zu bytes)\n", o->pos[0], value.len);
    }
    tr_buf_dispose(&target);
    tr_buf_dispose(&value);
    return rc;
}

static int kv_delete(struct tr_cli_api *api, const struct kv_opts *o)
{
    if (o->recurse && o->has_cas) {
        return tr_cli_usage_error(o->cmd, "--cas and --recurse exclude each other");
    }
    if (o->has_cas && o->cas == 0) {
        return tr_cli_usage_error(o->cmd, "--cas: must be a ModifyIndex (1 or more) for delete");
    }
    if (!o->recurse && o->pos[0][0] == '\0') {
        return tr_cli_usage_error(o->cmd, "KEY must not be empty");
    }
    struct tr_buf target;
    tr_cli_buf_init(&target);
    tr_buf_append_slice(&target, TR_SLICE_LIT("/v1/kv/"));
    tr_cli_url_escape(&target, tr_slice_cstr(o->pos[0]), true);
    if (o->recurse) {
        tr_buf_append_slice(&target, TR_SLICE_LIT("?recurse"));
    } else if (o->has_cas) {
        tr_buf_appendf(&target, "?cas=%" PRIu64, o->cas);
    }
    tr_buf_append(&target, "", 1);
    int rc = kv_write(api, o, "DELETE", tr_buf_data(&target), TR_SLICE_NULL, "delete");
    if (rc == 0 && o->recurse) {
        printf("deleted every key under \"%s\"\n", o->pos[0]);
    } else if (rc == 0) {
        printf("deleted %s\n", o->pos[0]);
    }
    tr_buf_dispose(&target);
    return rc;
}

/* A short, printable view of a value for the list table. */
static void preview(struct tr_buf *out, struct tr_slice v)
{
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.ptr[i];
        if (ch < 0x20 || ch == 0x7f) {
            if (ch != '\n' && ch != '\t' && ch != '\r') {
                tr_buf_appendf(out, "<%zu bytes>", v.len);
                return;
            }
        }
    }
    size_t chars = 0;
    size_t i = 0;
    for (; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.ptr[i];
        if ((ch & 0xC0) != 0x80 && chars++ == KV_PREVIEW_CHARS) {
            break;
        }
        bool ws = ch == '\n' || ch == '\t' || ch == '\r';
        tr_buf_append(out, ws ? " " : (const char *)&v.ptr[i], 1);
    }
    if (i < v.len) {
        tr_buf_append_slice(out, TR_SLICE_LIT("..."));
    }
}

static int print_list(const struct tr_cli_api *api, const json_t *arr)
{
    static const char *const header[] = {"KEY", "FLAGS", "INDEX", "VALUE"};
    struct tr_cli_table t;
    tr_cli_table_init(&t, TR_ARRAY_LEN(header), header);
    size_t i;
    const json_t *e;
    int rc = 0;
    for (i = 0; (e = json_array_get(arr, i)) != NULL; i++) {
        struct tr_buf value;
        struct tr_buf shown;
        tr_cli_buf_init(&value);
        tr_cli_buf_init(&shown);
        rc = entry_value(api, e, &value);
        preview(&shown, tr_buf_slice(&value));
        tr_buf_append(&shown, "", 1);
        char flags[24];
        char index[24];
        snprintf(flags, sizeof(flags), "%lld",
                 (long long)json_integer_value(json_object_get(e, "Flags")));
        snprintf(index, sizeof(index), "%lld",
                 (long long)json_integer_value(json_object_get(e, "ModifyIndex")));
        const char *row[] = {json_string_value(json_object_get(e, "Key")), flags, index,
                             tr_buf_data(&shown)};
        tr_cli_table_add(&t, row);
        tr_buf_dispose(&value);
        tr_buf_dispose(&shown);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0) {
        tr_cli_table_print(&t, stdout);
    }
    tr_cli_table_dispose(&t);
    return rc == 0 ? 0 : 1;
}

static int kv_list(struct tr_cli_api *api, const struct kv_opts *o)
{
    const char *prefix = o->npos > 0 ? o->pos[0] : "";
    struct tr_buf target;
    tr_cli_buf_init(&target);
    kv_target(&target, prefix, "?recurse");
    struct tr_cli_resp resp;
    int rc = 1;
    json_t *arr = NULL;
    if (tr_cli_api_call(api, "GET", tr_buf_data(&target), TR_SLICE_NULL, &resp) != 0) {
        /* already reported */
    } else if (resp.status == 404) {
        arr = json_array(); /* Consul answers 404 when nothing is under the prefix */
    } else if (resp.status != 200) {
        tr_cli_api_print_status(api, prefix[0] != '\0' ? prefix : "list", &resp);
    } else {
        arr = tr_cli_resp_json(api, &resp);
    }
    if (arr == NULL) {
        /* reported above */
    } else if (o->json) {
        tr_cli_print_json(arr);
        rc = 0;
    } else if (json_array_size(arr) == 0) {
        fprintf(stderr, "no keys under \"%s\"\n", prefix);
        rc = 0;
    } else {
        rc = print_list(api, arr);
    }
    json_decref(arr);
    tr_cli_resp_dispose(&resp);
    tr_buf_dispose(&target);
    return rc;
}

static const struct kv_sub subs[] = {
    {"get", "addr json raw", 1, 1, kv_get},
    {"put", "addr flags cas", 2, 2, kv_put},
    {"delete", "addr recurse cas", 1, 1, kv_delete},
    {"list", "addr json", 0, 1, kv_list},
};

static int run(int argc, char **argv)
{
    if (argc < 2) {
        return tr_cli_usage_error("kv", "missing subcommand: get, put, delete or list");
    }
    const struct kv_sub *sub = NULL;
    for (size_t i = 0; i < TR_ARRAY_LEN(subs); i++) {
        if (strcmp(argv[1], subs[i].name) == 0) {
            sub = &subs[i];
        }
    }
    if (sub == NULL) {
        return tr_cli_usage_error("kv",
                                  "unknown subcommand \"%s\" (expected get, put, delete "
                                  "or list)",
                                  argv[1]);
    }
    char cmd[16];
    snprintf(cmd, sizeof(cmd), "kv %s", sub->name);
    struct kv_opts o = {.cmd = cmd};
    int rc = parse_args(sub, argc, argv, 2, &o);
    if (rc != 0) {
        return rc;
    }
    struct tr_cli_api api;
    rc = tr_cli_api_open(&api, cmd, o.addr);
    if (rc != 0) {
        return rc;
    }
    rc = sub->run(&api, &o);
    tr_cli_api_close(&api);
    return rc;
}

const struct tr_cli_cmd tr_cli_cmd_kv = {
    .name = "kv",
    .summary = "read and write the server's key/value store",
    .usage = "Usage: trellis kv get KEY [--json | --raw]\n"
             "       trellis kv put KEY VALUE|- [--flags N] [--cas INDEX]\n"
             "       trellis kv delete KEY [--recurse | --cas INDEX]\n"
             "       trellis kv list [PREFIX] [--json]\n\n"
             "A client of the server's Consul-compatible /v1/kv API.\n\n"
             "  get      print the value of KEY followed by a newline; --raw prints the\n"
             "           bytes exactly, --json the entry (Key, Flags, CreateIndex,\n"
             "           ModifyIndex, LockIndex, Value in base64)\n"
             "  put      store VALUE at KEY; with - the value is read from stdin\n"
             "           --flags N     an opaque 64-bit number stored with the value\n"
             "           --cas INDEX   write only if KEY's ModifyIndex is INDEX\n"
             "                         (0: only if KEY does not exist yet)\n"
             "  delete   delete KEY; --recurse deletes every key starting with KEY,\n"
             "           --cas INDEX only if KEY's ModifyIndex is INDEX\n"
             "  list     a table of the keys under PREFIX (all keys without one);\n"
             "           --json prints the entries as the API returns them\n\n"
             "  --addr ADDR   server address, host:port or http://host:port; default\n"
             "                $TRELLIS_ADDR, then $CONSUL_HTTP_ADDR, then 127.0.0.1:8500\n\n"
             "Exit status: 0 success, 1 failure (missing key, failed check-and-set,\n"
             "server unreachable or answering with an error), 2 usage error.\n",
    .run = run,
};
