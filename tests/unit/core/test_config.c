/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the YAML configuration loader: the tree and its positions, every rejected
 * input with its exact file:line:col message, the typed getters, and the duration and
 * size parsers' edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/mem.h"

/* Loads `text` as "t.yaml", asserting success. */
static struct tr_conf *load_ok(const char *text)
{
    struct tr_conf *conf = NULL;
    struct tr_conf_err err = {""};
    int rc = tr_conf_load_mem("t.yaml", text, strlen(text), &conf, &err);
    if (rc != 0) {
        fail_msg("load failed (%d): %s", rc, err.msg);
    }
    assert_non_null(conf);
    return conf;
}

/* Loads `text` as "t.yaml", asserting it fails with `want_rc` and message `want`. */
static void load_fails(const char *text, int want_rc, const char *want)
{
    struct tr_conf *conf = NULL;
    struct tr_conf_err err = {""};
    int rc = tr_conf_load_mem("t.yaml", text, strlen(text), &conf, &err);
    assert_int_equal(rc, want_rc);
    assert_null(conf);
    assert_string_equal(err.msg, want);
}

static const char nested_doc[] = "# gateway\n"
                                 "listen:\n"
                                 "  host: \"0.0.0.0\"\n"
                                 "  port: 8080\n"
                                 "routes:\n"
                                 "  - path: /api\n"
                                 "    timeout: 1.5s\n"
                                 "  - path: /static\n"
                                 "    max_body: 64KiB\n"
                                 "tags: [a, 'b']\n"
                                 "empty:\n"
                                 "debug: yes\n";

static void valid_nested_document(void **state)
{
    struct tr_conf *conf = load_ok(nested_doc);
    const struct tr_conf_node *root = tr_conf_root(conf);
    assert_int_equal(root->kind, TR_CONF_MAP);
    assert_int_equal(tr_conf_len(root), 5);
    assert_int_equal(root->line, 2);
    assert_int_equal(root->col, 1);
    assert_string_equal(root->file, "t.yaml");

    /* Pairs keep document order. */
    const char *order[] = {"listen", "routes", "tags", "empty", "debug"};
    for (size_t i = 0; i < tr_conf_len(root); i++) {
        const struct tr_conf_pair *p = tr_conf_pair_at(root, i);
        assert_string_equal(p->key->u.text.ptr, order[i]);
    }

    const struct tr_conf_node *listen = tr_conf_get(root, "listen");
    assert_non_null(listen);
    assert_int_equal(listen->kind, TR_CONF_MAP);
    assert_int_equal(listen->line, 3);
    assert_int_equal(listen->col, 3);
    const char *host = NULL;
    assert_int_equal(tr_conf_str(tr_conf_get(listen, "host"), &host, NULL), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_false(tr_conf_get(listen, "host")->plain);
    const struct tr_conf_node *port = tr_conf_get(listen, "port");
    assert_int_equal(port->line, 4);
    assert_int_equal(port->col, 9);
    int64_t p = 0;
    assert_int_equal(tr_conf_int(port, 1, 65535, &p, NULL), 0);
    assert_int_equal(p, 8080);
    assert_null(tr_conf_get(listen, "missing"));
    assert_null(tr_conf_get(port, "x"));
    assert_null(tr_conf_get(NULL, "x"));

    const struct tr_conf_node *routes = tr_conf_get(root, "routes");
    assert_int_equal(routes->kind, TR_CONF_SEQ);
    assert_int_equal(tr_conf_len(routes), 2);
    assert_int_equal(routes->line, 6);
    assert_int_equal(routes->col, 3);
    const struct tr_conf_node *r0 = tr_conf_item_at(routes, 0);
    assert_int_equal(r0->line, 6);
    assert_int_equal(r0->col, 5);
    uint64_t ms = 0;
    assert_int_equal(tr_conf_duration_ms(tr_conf_get(r0, "timeout"), &ms, NULL), 0);
    assert_int_equal(ms, 1500);
    uint64_t bytes = 0;
    const struct tr_conf_node *r1 = tr_conf_item_at(routes, 1);
    assert_int_equal(tr_conf_size_bytes(tr_conf_get(r1, "max_body"), &bytes, NULL), 0);
    assert_int_equal(bytes, 65536);

    const struct tr_conf_node *tags = tr_conf_get(root, "tags");
    assert_int_equal(tags->kind, TR_CONF_SEQ);
    assert_int_equal(tr_conf_len(tags), 2);
    assert_string_equal(tr_conf_item_at(tags, 1)->u.text.ptr, "b");
    assert_int_equal(tr_conf_item_at(tags, 1)->col, 11);
    assert_int_equal(tr_conf_len(tr_conf_item_at(tags, 0)), 0);

    const struct tr_conf_node *empty = tr_conf_get(root, "empty");
    assert_non_null(empty);
    assert_true(tr_conf_is_null(empty));
    bool debug = false;
    assert_int_equal(tr_conf_bool(tr_conf_get(root, "debug"), &debug, NULL), 0);
    assert_true(debug);
    tr_conf_free(conf);
    tr_conf_free(NULL);
}

static void scalar_root_and_empty_collections(void **state)
{
    struct tr_conf *conf = load_ok("hello\n");
    assert_int_equal(tr_conf_root(conf)->kind, TR_CONF_SCALAR);
    assert_string_equal(tr_conf_root(conf)->u.text.ptr, "hello");
    tr_conf_free(conf);

    conf = load_ok("a: {}\nb: []\n");
    assert_int_equal(tr_conf_len(tr_conf_get(tr_conf_root(conf), "a")), 0);
    assert_int_equal(tr_conf_get(tr_conf_root(conf), "b")->kind, TR_CONF_SEQ);
    tr_conf_free(conf);

    /* An explicit "---" with nothing after it is one document holding a null. */
    conf = load_ok("---\n");
    assert_true(tr_conf_is_null(tr_conf_root(conf)));
    tr_conf_free(conf);
}

static void syntax_errors(void **state)
{
    load_fails("listen:\n  host: \"0.0.0.0\n", -EINVAL,
               "t.yaml:3:1: found unexpected end of stream "
               "(while scanning a quoted scalar at 2:9)");
    load_fails("a: 1\n  b: 2\n", -EINVAL,
               "t.yaml:2:4: mapping values are not allowed in this context");
    load_fails("a:\n  b: [1, 2\n", -EINVAL,
               "t.yaml:3:1: did not find expected ',' or ']' "
               "(while parsing a flow sequence at 2:6)");
    load_fails("\ta: 1\n", -EINVAL,
               "t.yaml:1:1: found character that cannot start any token "
               "(while scanning for the next token at 1:1)");
    /* Reader errors come as a byte offset; the column counts characters. */
    load_fails("a: 1\nb: \xc3\xa9\xff\n", -EINVAL,
               "t.yaml:2:5: invalid leading UTF-8 octet (byte 0xff)");
}

static void truncated_input(void **state)
{
    const char *doc = "listen:\n  host: \"0.0.0.0\"\n  port: [80, 443]\n";
    /* Every prefix must either load or fail cleanly with a positioned message. */
    for (size_t n = 0; n <= strlen(doc); n++) {
        struct tr_conf *conf = NULL;
        struct tr_conf_err err = {""};
        int rc = tr_conf_load_mem("t.yaml", doc, n, &conf, &err);
        if (rc == 0) {
            assert_non_null(tr_conf_root(conf));
            tr_conf_free(conf);
        } else {
            assert_int_equal(rc, -EINVAL);
            assert_null(conf);
            assert_true(strncmp(err.msg, "t.yaml:", 7) == 0);
        }
    }
    load_fails("listen:\n  host: \"0.0", -EINVAL,
               "t.yaml:2:13: found unexpected end of stream "
               "(while scanning a quoted scalar at 2:9)");
}

static void duplicate_keys(void **state)
{
    load_fails("listen: 1\nport: 2\nlisten: 3\n", -EINVAL,
               "t.yaml:3:1: duplicate key \"listen\" (first defined at line 1, column 1)");
    load_fails("a:\n  x: 1\n  y: 2\n  \"x\": 3\n  x: 4\n", -EINVAL,
               "t.yaml:4:3: duplicate key \"x\" (first defined at line 2, column 3)");
    /* The earliest second occurrence wins, whatever the sort order of the keys. */
    load_fails("b: 1\na: 1\nb: 2\na: 2\n", -EINVAL,
               "t.yaml:3:1: duplicate key \"b\" (first defined at line 1, column 1)");
    load_fails("{k: 1, k: 2}\n", -EINVAL,
               "t.yaml:1:8: duplicate key \"k\" (first defined at line 1, column 2)");
    /* Same key in different mappings is fine. */
    tr_conf_free(load_ok("a: {x: 1}\nb: {x: 1}\n"));
}

static void anchors_aliases_tags(void **state)
{
    load_fails("base: &b {x: 1}\n", -EINVAL,
               "t.yaml:1:7: YAML anchors are not supported (found anchor \"b\")");
    load_fails("a: &x 1\n", -EINVAL,
               "t.yaml:1:4: YAML anchors are not supported (found anchor \"x\")");
    load_fails("a: 1\nb: *x\n", -EINVAL,
               "t.yaml:2:4: YAML aliases are not supported (found alias \"x\")");
    load_fails("a: !!str 1\n", -EINVAL,
               "t.yaml:1:4: YAML tags are not supported (found tag \"tag:yaml.org,2002:str\")");
    load_fails("a: !custom [1]\n", -EINVAL,
               "t.yaml:1:4: YAML tags are not supported (found tag \"!custom\")");
}

static void non_scalar_keys(void **state)
{
    load_fails("? [a, b]\n: 1\n", -EINVAL,
               "t.yaml:1:3: mapping keys must be scalars, got a sequence");
    load_fails("x:\n  {a: 1}: 2\n", -EINVAL,
               "t.yaml:2:3: mapping keys must be scalars, got a mapping");
    /* A collection as a value is of course fine. */
    tr_conf_free(load_ok("? a\n: [1]\n"));
}

static void document_count(void **state)
{
    load_fails("", -EINVAL, "t.yaml:1:1: expected one YAML document, found none");
    load_fails("# only a comment\n", -EINVAL, "t.yaml:1:1: expected one YAML document, found none");
    load_fails("a: 1\n---\nb: 2\n", -EINVAL,
               "t.yaml:2:1: expected one YAML document, found a second one");
    load_fails("--- a\n--- b\n", -EINVAL,
               "t.yaml:2:1: expected one YAML document, found a second one");
}

static char *nested_flow(size_t depth)
{
    char *s = tr_xmalloc(2 * depth + 2);
    for (size_t i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth + i] = ']';
    }
    s[2 * depth] = '\n';
    s[2 * depth + 1] = '\0';
    return s;
}

static void nesting_limit(void **state)
{
    char *ok = nested_flow(TR_CONF_MAX_DEPTH);
    struct tr_conf *conf = load_ok(ok);
    const struct tr_conf_node *n = tr_conf_root(conf);
    for (int i = 1; i < TR_CONF_MAX_DEPTH; i++) {
        n = tr_conf_item_at(n, 0);
    }
    assert_int_equal(n->col, TR_CONF_MAX_DEPTH);
    assert_int_equal(tr_conf_len(n), 0);
    tr_conf_free(conf);
    tr_free_null(&ok);

    char *deep = nested_flow(TR_CONF_MAX_DEPTH + 1);
    load_fails(deep, -EINVAL, "t.yaml:1:65: nesting is deeper than 64 levels");
    tr_free_null(&deep);

    /* Block style, mappings: 65 levels of "k:" each indented by one more space. */
    struct tr_buf b;
    tr_buf_init(&b);
    for (int i = 0; i <= TR_CONF_MAX_DEPTH; i++) {
        tr_buf_appendf(&b, "%*sk:\n", i, "");
    }
    tr_buf_append(&b, "", 1);
    load_fails(tr_buf_data(&b), -EINVAL, "t.yaml:65:65: nesting is deeper than 64 levels");
    tr_buf_dispose(&b);
}

/* Writes `len` bytes of a valid YAML file (a comment, then "a: 1") to a temp file. */
static char *write_temp(size_t len)
{
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *path = tr_xmalloc(strlen(tmpdir) + 32);
    snprintf(path, strlen(tmpdir) + 32, "%s/trconf-XXXXXX", tmpdir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char *data = tr_xmalloc(len);
    memset(data, 'x', len);
    data[0] = '#';
    memcpy(data + len - 6, "\na: 1\n", 6);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    tr_free_null(&data);
    return path;
}

static void file_size_limit(void **state)
{
    struct tr_conf_err err = {""};
    struct tr_conf *conf = NULL;
    char want[512];

    char *big = write_temp(5u * 1024 * 1024);
    assert_int_equal(tr_conf_load_file(big, &conf, &err), -EFBIG);
    assert_null(conf);
    snprintf(want, sizeof(want), "%s: file is larger than the 4 MiB limit", big);
    assert_string_equal(err.msg, want);
    unlink(big);
    tr_free_null(&big);

    /* Exactly at the limit is accepted. */
    char *edge = write_temp(TR_CONF_MAX_BYTES);
    assert_int_equal(tr_conf_load_file(edge, &conf, &err), 0);
    int64_t a = 0;
    assert_int_equal(tr_conf_int(tr_conf_get(tr_conf_root(conf), "a"), 0, 9, &a, &err), 0);
    assert_int_equal(a, 1);
    assert_int_equal(tr_conf_root(conf)->line, 2);
    tr_conf_free(conf);
    unlink(edge);
    tr_free_null(&edge);

    /* The in-memory loader has the same limit. */
    char *mem = tr_xcalloc(1, TR_CONF_MAX_BYTES + 1);
    assert_int_equal(tr_conf_load_mem("m.yaml", mem, TR_CONF_MAX_BYTES + 1, &conf, &err), -EFBIG);
    assert_string_equal(err.msg, "m.yaml: file is larger than the 4 MiB limit");
    tr_free_null(&mem);
}

static void file_errors(void **state)
{
    struct tr_conf_err err = {""};
    struct tr_conf *conf = NULL;
    assert_int_equal(tr_conf_load_file("/nonexistent/gateway.yaml", &conf, &err), -ENOENT);
    assert_string_equal(err.msg,
                        "/nonexistent/gateway.yaml: cannot open: no such file or directory");
    assert_int_equal(tr_conf_load_file("/", &conf, &err), -EISDIR);
    assert_string_equal(err.msg, "/: cannot read: illegal operation on a directory");
    assert_null(conf);
    /* err may be NULL. */
    assert_int_equal(tr_conf_load_mem("t.yaml", "[", 1, &conf, NULL), -EINVAL);
}

/* Loads a one-key document "v: <value>" and returns the value node's conf. */
static struct tr_conf *value_doc(const char *value)
{
    char doc[256];
    snprintf(doc, sizeof(doc), "v: %s\n", value);
    return load_ok(doc);
}

static const struct tr_conf_node *v_of(const struct tr_conf *conf)
{
    return tr_conf_get(tr_conf_root(conf), "v");
}

static void getter_errors(void **state)
{
    struct tr_conf_err err = {""};
    struct tr_conf *conf = load_ok("gateway:\n"
                                   "  timeout: fast\n"
                                   "  port: 70000\n"
                                   "  mode: 0644\n"
                                   "  name:\n"
                                   "  tls: maybe\n"
                                   "  body: big\n"
                                   "  retries: [1]\n"
                                   "  idle: 30\n"
                                   "  grace: -1s\n"
                                   "  label: ~\n"
                                   "  huge: 99999999999999999999\n"
                                   "  nul: \"a\\0b\"\n");
    const struct tr_conf_node *g = tr_conf_get(tr_conf_root(conf), "gateway");
    uint64_t u = 0;
    int64_t i = 0;
    bool b = false;
    const char *s = NULL;

    assert_int_equal(tr_conf_duration_ms(tr_conf_get(g, "timeout"), &u, &err), -EINVAL);
    assert_string_equal(err.msg,
                        "t.yaml:2:12: expected a duration like 500ms, 2s, 1m, got \"fast\"");
    assert_int_equal(tr_conf_int(tr_conf_get(g, "port"), 1, 65535, &i, &err), -ERANGE);
    assert_string_equal(err.msg,
                        "t.yaml:3:9: expected an integer between 1 and 65535, got \"70000\"");
    assert_int_equal(tr_conf_int(tr_conf_get(g, "mode"), 0, INT64_MAX, &i, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:4:9: expected an integer >= 0, got \"0644\": "
                                 "leading zeros are not allowed");
    assert_int_equal(tr_conf_str(tr_conf_get(g, "name"), &s, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:5:8: expected a string, got an empty value");
    assert_int_equal(tr_conf_bool(tr_conf_get(g, "tls"), &b, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:6:8: expected a boolean (true/false, yes/no, on/off), "
                                 "got \"maybe\"");
    assert_int_equal(tr_conf_size_bytes(tr_conf_get(g, "body"), &u, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:7:9: expected a size like 512, 64KiB, 10MB, got \"big\"");
    assert_int_equal(tr_conf_int(tr_conf_get(g, "retries"), INT64_MIN, 10, &i, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:8:12: expected an integer <= 10, got a sequence");
    assert_int_equal(tr_conf_duration_ms(tr_conf_get(g, "idle"), &u, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:9:9: expected a duration like 500ms, 2s, 1m, "
                                 "got \"30\": missing unit (ms, s, m or h)");
    assert_int_equal(tr_conf_duration_ms(tr_conf_get(g, "grace"), &u, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:10:10: expected a duration like 500ms, 2s, 1m, "
                                 "got \"-1s\": negative values are not allowed");
    assert_int_equal(tr_conf_str(tr_conf_get(g, "label"), &s, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:11:10: expected a string, got null");
    assert_int_equal(tr_conf_int(tr_conf_get(g, "huge"), INT64_MIN, INT64_MAX, &i, &err), -ERANGE);
    assert_string_equal(err.msg, "t.yaml:12:9: expected an integer, got \"99999999999999999999\"");
    assert_int_equal(tr_conf_str(tr_conf_get(g, "nul"), &s, &err), -EINVAL);
    assert_string_equal(err.msg,
                        "t.yaml:13:8: expected a string without NUL characters, got \"a\\x00b\"");
    assert_int_equal(tr_conf_str(g, &s, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:3: expected a string, got a mapping");
    assert_int_equal(tr_conf_expect(g, TR_CONF_SEQ, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:3: expected a sequence, got a mapping");
    assert_int_equal(tr_conf_expect(g, TR_CONF_MAP, &err), 0);
    assert_int_equal(tr_conf_errorf(tr_conf_get(g, "port"), &err, "port %d is taken", 70000),
                     -EINVAL);
    assert_string_equal(err.msg, "t.yaml:3:9: port 70000 is taken");
    /* Failed getters leave *out alone. */
    assert_null(s);
    assert_false(b);
    tr_conf_free(conf);
}

static void getter_values(void **state)
{
    static const struct {
        const char *text;
        bool value;
    } bools[] = {
        {"true", true}, {"False", false}, {"YES", true},   {"no", false},
        {"on", true},   {"off", false},   {"'yes'", true}, {"\"Off\"", false},
    };
    for (size_t k = 0; k < TR_ARRAY_LEN(bools); k++) {
        struct tr_conf *conf = value_doc(bools[k].text);
        bool b = !bools[k].value;
        assert_int_equal(tr_conf_bool(v_of(conf), &b, NULL), 0);
        assert_int_equal(b, bools[k].value);
        tr_conf_free(conf);
    }

    static const struct {
        const char *text;
        int64_t value;
    } ints[] = {
        {"0", 0},
        {"-0", 0},
        {"+7", 7},
        {"-42", -42},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    for (size_t k = 0; k < TR_ARRAY_LEN(ints); k++) {
        struct tr_conf *conf = value_doc(ints[k].text);
        int64_t v = 1;
        assert_int_equal(tr_conf_int(v_of(conf), INT64_MIN, INT64_MAX, &v, NULL), 0);
        assert_true(v == ints[k].value);
        tr_conf_free(conf);
    }
    const char *bad_ints[] = {"9223372036854775808",
                              "-9223372036854775809",
                              "1.0",
                              "0x10",
                              "1e3",
                              "",
                              "'-'",
                              "1_000",
                              "\"\""};
    for (size_t k = 0; k < TR_ARRAY_LEN(bad_ints); k++) {
        struct tr_conf *conf = value_doc(bad_ints[k]);
        int64_t v = 5;
        assert_true(tr_conf_int(v_of(conf), INT64_MIN, INT64_MAX, &v, NULL) < 0);
        assert_int_equal(v, 5);
        tr_conf_free(conf);
    }

    /* Quoted nulls are strings; strings keep inner spaces and colons. */
    struct tr_conf *conf = value_doc("\"null\"");
    const char *s = NULL;
    assert_false(tr_conf_is_null(v_of(conf)));
    assert_int_equal(tr_conf_str(v_of(conf), &s, NULL), 0);
    assert_string_equal(s, "null");
    tr_conf_free(conf);
    conf = value_doc("'a: b  c'");
    assert_int_equal(tr_conf_str(v_of(conf), &s, NULL), 0);
    assert_string_equal(s, "a: b  c");
    tr_conf_free(conf);
    conf = value_doc("Null");
    assert_true(tr_conf_is_null(v_of(conf)));
    tr_conf_free(conf);
}

/* Checks the message for a bool value of `prefix` plus 30 "é", expecting `keep` of them. */
static void check_cut(const char *prefix, int keep)
{
    char value[128];
    snprintf(value, sizeof(value), "%s", prefix);
    for (int i = 0; i < 30; i++) {
        strncat(value, "\xc3\xa9", sizeof(value) - strlen(value) - 1);
    }
    struct tr_conf *conf = value_doc(value);
    struct tr_conf_err err = {""};
    bool b = false;
    assert_int_equal(tr_conf_bool(v_of(conf), &b, &err), -EINVAL);
    char want[256];
    snprintf(want, sizeof(want),
             "t.yaml:1:4: expected a boolean (true/false, yes/no, on/off), got \"%s", prefix);
    for (int i = 0; i < keep; i++) {
        strncat(want, "\xc3\xa9", sizeof(want) - strlen(want) - 1);
    }
    strncat(want, "...\"", sizeof(want) - strlen(want) - 1);
    assert_string_equal(err.msg, want);
    tr_conf_free(conf);
}

static void long_values_are_cut_in_messages(void **state)
{
    /* The cut never splits a UTF-8 sequence, whether it lands before or inside one. */
    check_cut("", 29);
    check_cut("a", 28);
}

static void unknown_keys(void **state)
{
    static const char *const top[] = {"listen", "routes", "log_level", NULL};
    static const char *const listen_keys[] = {"host", "port", "backlog", NULL};
    struct tr_conf_err err = {""};
    struct tr_conf *conf = load_ok("listen:\n"
                                   "  host: a\n"
                                   "  prot: 80\n"
                                   "routes: []\n");
    const struct tr_conf_node *root = tr_conf_root(conf);
    assert_int_equal(tr_conf_check_keys(root, top, "top-level", &err), 0);
    assert_int_equal(tr_conf_check_keys(tr_conf_get(root, "listen"), listen_keys, "listen", &err),
                     -EINVAL);
    assert_string_equal(
        err.msg, "t.yaml:3:3: unknown key \"prot\" in listen section; did you mean \"port\"?");
    tr_conf_free(conf);

    static const struct {
        const char *doc;
        const char *want;
    } cases[] = {
        {"listn: 1\n", "t.yaml:1:1: unknown key \"listn\" in top-level section; "
                       "did you mean \"listen\"?"},
        {"listen: 1\nLISTEN: 1\n", "t.yaml:2:1: unknown key \"LISTEN\" in top-level section; "
                                   "did you mean \"listen\"?"},
        {"loglevel: 1\n", "t.yaml:1:1: unknown key \"loglevel\" in top-level section; "
                          "did you mean \"log_level\"?"},
        {"rotues: 1\n", "t.yaml:1:1: unknown key \"rotues\" in top-level section; "
                        "did you mean \"routes\"?"},
        {"clusters: 1\n", "t.yaml:1:1: unknown key \"clusters\" in top-level section"},
        {"lis: 1\n", "t.yaml:1:1: unknown key \"lis\" in top-level section"},
        {"[1]\n", "t.yaml:1:1: expected a mapping for the top-level section, got a sequence"},
    };
    for (size_t k = 0; k < TR_ARRAY_LEN(cases); k++) {
        conf = load_ok(cases[k].doc);
        assert_int_equal(tr_conf_check_keys(tr_conf_root(conf), top, "top-level", &err), -EINVAL);
        assert_string_equal(err.msg, cases[k].want);
        tr_conf_free(conf);
    }

    /* "port" is two edits from "host": too far for a four-letter word. */
    static const char *const hosts[] = {"host", NULL};
    conf = load_ok("port: 1\n");
    assert_int_equal(tr_conf_check_keys(tr_conf_root(conf), hosts, NULL, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:1:1: unknown key \"port\"");
    tr_conf_free(conf);
}

static void required_keys(void **state)
{
    struct tr_conf_err err = {""};
    struct tr_conf *conf = load_ok("listen:\n  host: a\n");
    const struct tr_conf_node *listen = tr_conf_get(tr_conf_root(conf), "listen");
    const struct tr_conf_node *v = NULL;
    assert_int_equal(tr_conf_require(listen, "host", "listen", &v, &err), 0);
    assert_string_equal(v->u.text.ptr, "a");
    assert_int_equal(tr_conf_require(listen, "port", "listen", &v, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:3: missing key \"port\" in listen section");
    assert_int_equal(tr_conf_require(tr_conf_get(listen, "host"), "x", NULL, &v, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:2:9: expected a mapping, got \"a\"");
    tr_conf_free(conf);
}

static void durations(void **state)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {
        {"0", 0},
        {"0s", 0},
        {"0ms", 0},
        {"500ms", 500},
        {"2s", 2000},
        {"1.5s", 1500},
        {"0.001s", 1},
        {"1.000s", 1000},
        {"1.0000000000000s", 1000},
        {"1m", 60000},
        {"1.5m", 90000},
        {"1h", 3600000},
        {"0.0001h", 360},
        {"1h30m", 5400000},
        {"1m1s1ms", 61001},
        {"007s", 7000},
        {"18446744073709551615ms", UINT64_MAX},
        {"5124095576030h", UINT64_C(18446744073708000000)},
        {"5124095576030h1551615ms", UINT64_MAX},
    };
    for (size_t k = 0; k < TR_ARRAY_LEN(good); k++) {
        uint64_t v = 0;
        int rc = tr_parse_duration_ms(good[k].text, &v);
        if (rc != 0 || v != good[k].ms) {
            fail_msg("\"%s\": rc %d, %llu", good[k].text, rc, (unsigned long long)v);
        }
    }
    static const struct {
        const char *text;
        int rc;
    } bad[] = {
        {"", -EINVAL},
        {"30", -EINVAL},
        {"00", -EINVAL},
        {"1h30", -EINVAL},
        {"-1s", -EINVAL},
        {"+1s", -EINVAL},
        {"fast", -EINVAL},
        {"s", -EINVAL},
        {"1d", -EINVAL},
        {"1S", -EINVAL},
        {"1.s", -EINVAL},
        {".5s", -EINVAL},
        {"1.5ms", -EINVAL},
        {"1.0005s", -EINVAL},
        {"0.000001h", -EINVAL},
        {"1 s", -EINVAL},
        {" 1s", -EINVAL},
        {"1s ", -EINVAL},
        {"1s,2s", -EINVAL},
        {"1e3ms", -EINVAL},
        {"18446744073709551616ms", -ERANGE},
        {"99999999999999999999s", -ERANGE},
        {"5124095576031h", -ERANGE},
        {"5124095576030h1551616ms", -ERANGE},
        {"18446744073709551615ms1ms", -ERANGE},
    };
    for (size_t k = 0; k < TR_ARRAY_LEN(bad); k++) {
        uint64_t v = 12345;
        int rc = tr_parse_duration_ms(bad[k].text, &v);
        if (rc != bad[k].rc || v != 12345) {
            fail_msg("\"%s\": rc %d, want %d", bad[k].text, rc, bad[k].rc);
        }
    }
}

static void sizes(void **state)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"0", 0},
        {"100", 100},
        {"100B", 100},
        {"64KiB", 65536},
        {"1MiB", 1048576},
        {"1mib", 1048576},
        {"10MB", 10000000},
        {"10mb", 10000000},
        {"1kB", 1000},
        {"2GiB", UINT64_C(2147483648)},
        {"1TB", UINT64_C(1000000000000)},
        {"1.5KiB", 1536},
        {"0.5KB", 500},
        {"1.0000000000000KiB", 1024},
        {"0.25MiB", 262144},
        {"16777215TiB", UINT64_C(16777215) << 40},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t k = 0; k < TR_ARRAY_LEN(good); k++) {
        uint64_t v = 0;
        int rc = tr_parse_size(good[k].text, &v);
        if (rc != 0 || v != good[k].bytes) {
            fail_msg("\"%s\": rc %d, %llu", good[k].text, rc, (unsigned long long)v);
        }
    }
    static const struct {
        const char *text;
        int rc;
    } bad[] = {
        {"", -EINVAL},
        {"-1", -EINVAL},
        {"1k", -EINVAL},
        {"1K", -EINVAL},
        {"1KB2", -EINVAL},
        {"1.5", -EINVAL},
        {"1.5B", -EINVAL},
        {"0.0001KB", -EINVAL},
        {"1 MiB", -EINVAL},
        {"MiB", -EINVAL},
        {"1MiBs", -EINVAL},
        {"1KiB1B", -EINVAL},
        {"big", -EINVAL},
        {"16777216TiB", -ERANGE},
        {"18446744073709551616", -ERANGE},
        {"18446744073709551615KB", -ERANGE},
    };
    for (size_t k = 0; k < TR_ARRAY_LEN(bad); k++) {
        uint64_t v = 12345;
        int rc = tr_parse_size(bad[k].text, &v);
        if (rc != bad[k].rc || v != 12345) {
            fail_msg("\"%s\": rc %d, want %d", bad[k].text, rc, bad[k].rc);
        }
    }

    /* The getter explains why a size is refused. */
    struct tr_conf_err err = {""};
    struct tr_conf *conf = value_doc("1.5B");
    uint64_t v = 0;
    assert_int_equal(tr_conf_size_bytes(v_of(conf), &v, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:1:4: expected a size like 512, 64KiB, 10MB, got \"1.5B\": "
                                 "not a whole number of bytes");
    tr_conf_free(conf);
    conf = value_doc("16777216TiB");
    assert_int_equal(tr_conf_size_bytes(v_of(conf), &v, &err), -ERANGE);
    assert_string_equal(err.msg, "t.yaml:1:4: expected a size like 512, 64KiB, 10MB, "
                                 "got \"16777216TiB\": too large");
    tr_conf_free(conf);
    conf = value_doc("1 PB");
    assert_int_equal(tr_conf_size_bytes(v_of(conf), &v, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:1:4: expected a size like 512, 64KiB, 10MB, "
                                 "got \"1 PB\": spaces are not allowed");
    tr_conf_free(conf);
    conf = value_doc("1PB");
    assert_int_equal(tr_conf_size_bytes(v_of(conf), &v, &err), -EINVAL);
    assert_string_equal(err.msg, "t.yaml:1:4: expected a size like 512, 64KiB, 10MB, got \"1PB\": "
                                 "unknown unit (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)");
    tr_conf_free(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_nested_document),
        cmocka_unit_test(scalar_root_and_empty_collections),
        cmocka_unit_test(syntax_errors),
        cmocka_unit_test(truncated_input),
        cmocka_unit_test(duplicate_keys),
        cmocka_unit_test(anchors_aliases_tags),
        cmocka_unit_test(non_scalar_keys),
        cmocka_unit_test(document_count),
        cmocka_unit_test(nesting_limit),
        cmocka_unit_test(file_size_limit),
        cmocka_unit_test(file_errors),
        cmocka_unit_test(getter_errors),
        cmocka_unit_test(getter_values),
        cmocka_unit_test(long_values_are_cut_in_messages),
        cmocka_unit_test(unknown_keys),
        cmocka_unit_test(required_keys),
        cmocka_unit_test(durations),
        cmocka_unit_test(sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
