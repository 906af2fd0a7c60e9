/* SPDX-License-Identifier: Apache-2.0 */
/* The embedded state store against a real registry (store in a temporary directory,
 * threads not started): ETags, first-write/last-write, deletes, transactions that are
 * all or nothing, limits, and replay after a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "registry/registry.h"
#include "state/embedded.h"
#include "state/state.h"

#define S(x) tr_slice_cstr(x)
#define OPS tr_state_embedded_ops

struct fixture {
    char dir[64];
    struct tr_reg *reg;
};

static struct tr_reg *open_reg(const char *dir)
{
    struct tr_reg *reg = tr_xcalloc(1, sizeof(*reg));
    snprintf(reg->node_name, sizeof(reg->node_name), "n1");
    char err[256];
    assert_int_equal(tr_reg_open(reg, dir, err, sizeof(err)), 0);
    return reg;
}

static void close_reg(struct tr_reg **reg)
{
    tr_reg_settle(*reg, true);
    uv_timer_stop(&(*reg)->deadline_timer);
    tr_reg_close(*reg);
    tr_free_null(reg);
}

static int setup(void **state)
{
    tr_log_set_level(TR_LOG_LEVEL_ERROR);
    struct fixture *f = tr_xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/trellis-test-state-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->reg = open_reg(f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->reg != NULL) {
        close_reg(&f->reg);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    tr_free_null(&f);
    return 0;
}

static struct tr_state_op upsert(const char *key, const char *value, const char *etag)
{
    struct tr_state_op op = {.kind = TR_STATE_UPSERT, .key = S(key), .value = S(value)};
    if (etag != NULL) {
        op.etag = S(etag);
    }
    return op;
}

static struct tr_state_op del(const char *key, const char *etag)
{
    struct tr_state_op op = {.kind = TR_STATE_DELETE, .key = S(key)};
    if (etag != NULL) {
        op.etag = S(etag);
    }
    return op;
}

/* The current etag of key in store "s" into buf, or "" when missing. */
static void etag_of(struct tr_reg *reg, const char *key, char *buf)
{
    struct tr_state_item item;
    int rc = OPS.get(reg->state, S("s"), S(key), &item);
    if (rc == -ENOENT) {
        buf[0] = '\0';
        return;
    }
    assert_int_equal(rc, 0);
    snprintf(buf, TR_STATE_ETAG_LEN, "%s", item.etag);
}

static void value_is(struct tr_reg *reg, const char *key, const char *want)
{
    struct tr_state_item item;
    assert_int_equal(OPS.get(reg->state, S("s"), S(key), &item), 0);
    assert_int_equal(item.value.len, strlen(want));
    assert_memory_equal(item.value.ptr, want, item.value.len);
}

static void last_write_and_etags(void **state)
{
    struct tr_reg *reg = ((struct fixture *)*state)->reg;
    struct tr_state_op op = upsert("app||a", "1", NULL);
    struct tr_state_item item;
    assert_int_equal(OPS.get(reg->state, S("s"), S("app||a"), &item), -ENOENT);
    assert_int_equal(OPS.set(reg->state, S("s"), &op), 0);
    char e1[TR_STATE_ETAG_LEN];
    char e2[TR_STATE_ETAG_LEN];
    etag_of(reg, "app||a", e1);
    /* Without an ETag, last-write always wins and the ETag changes. */
    op = upsert("app||a", "2", NULL);
    assert_int_equal(OPS.set(reg->state, S("s"), &op), 0);
    etag_of(reg, "app||a", e2);
    assert_string_not_equal(e1, e2);
    /* With an ETag it must match, whatever the concurrency mode. */
    op = upsert("app||a", "3", e1);
    assert_int_equal(OPS.set(reg->state, S("s"), &op), -ESTALE);
    value_is(reg, "app||a", "2");
    op = upsert("app||a", "3", e2);
    assert_int_equal(OPS.set(reg->state, S("s"), &op), 0);
    value_is(reg, "app||a", "3");
    op = upsert("app||a", "4", "not-a-version");
    assert_int_equal(OPS.set(reg->state, S("s"), &op), -EINVAL);
    op = upsert("app||missing", "4", "12");
    assert_int_equal(OPS.set(reg->state, S("s"), &op), -ESTALE);
    assert_int_equal(OPS.get(reg->state, S("s"), S("app||missing"), &item), -ENOENT);
}

static void first_write(void **state)
{
    struct tr_reg *reg = ((struct fixture *)*state)->reg;
    struct tr_state_op op = upsert("app||k", "1", NULL);
    op.concurrency = TR_STATE_FIRST_WRITE;
    assert_int_equal(OPS.set(reg->state, S("s"), &op), 0);
    /* No ETag under first-write: only a new key may be written. */
    assert_int_equal(OPS.set(reg->state, S("s"), &op), -ESTALE);
    char e[TR_STATE_ETAG_LEN];
    etag_of(reg, "app||k", e);
    op = upsert("app||k", "2", e);
    op.concurrency = TR_STATE_FIRST_WRITE;
    assert_int_equal(OPS.set(reg->state, S("s"), &op), 0);
    /* The same ETag a second time is stale: the first writer won. */
    op.value = S("3");
    assert_int_equal(OPS.set(reg->state, S("s"), &op), -ESTALE);
    value_is(reg, "app||k", "2");
}

static void deletes(void **state)
{
    struct tr_reg *reg = ((struct fixture *)*state)->reg;
    struct tr_state_op op = del("app||gone", NULL);
    assert_int_equal(OPS.del(reg->state, S("s"), &op), 0); /* missing, no ETag: fine */
    op = del("app||gone", "5");
    assert_int_equal(OPS.del(reg->state, S("s"), &op), -ESTALE);
    op = upsert("app||d", "x", NULL);
    assert_int_equal(OPS.set(reg->state, S("s"), &op), 0);
    char e[TR_STATE_ETAG_LEN];
    etag_of(reg, "app||d", e);
    op = del("app||d", "999999");
    assert_int_equal(OPS.del(reg->state, S("s"), &op), -ESTALE);
    value_is(reg, "app||d", "x");
    op = del("app||d", e);
    assert_int_equal(OPS.del(reg->state, S("s"), &op), 0);
    etag_of(reg, "app||d", e);
    assert_string_equal(e, "");
}

static void transaction_all_or_nothing(void **state)
{
    struct tr_reg *reg = ((struct fixture *)*state)->reg;
    struct tr_state_op ops[3] = {upsert("app||a", "1", NULL), upsert("app||b", "1", NULL)};
    size_t failed = 99;
    assert_int_equal(OPS.transact(reg->state, S("s"), ops, 2, &failed), 0);
    char ea[TR_STATE_ETAG_LEN];
    char eb[TR_STATE_ETAG_LEN];
    etag_of(reg, "app||a", ea);
    etag_of(reg, "app||b", eb);
    assert_string_equal(ea, eb); /* one transaction, one version */
    ops[0] = upsert("app||c", "new", NULL);
    ops[1] = del("app||a", ea);
    ops[2] = upsert("app||b", "2", "1"); /* stale */
    assert_int_equal(OPS.transact(reg->state, S("s"), ops, 3, &failed), -ESTALE);
    assert_int_equal(failed, 2);
    char e[TR_STATE_ETAG_LEN];
    etag_of(reg, "app||c", e);
    assert_string_equal(e, "");
    etag_of(reg, "app||a", e);
    assert_string_equal(e, ea);
    value_is(reg, "app||b", "1");
    ops[2] = upsert("app||b", "2", eb);
    assert_int_equal(OPS.transact(reg->state, S("s"), ops, 3, &failed), 0);
    value_is(reg, "app||c", "new");
    value_is(reg, "app||b", "2");
    etag_of(reg, "app||a", e);
    assert_string_equal(e, "");
}

static void limits(void **state)
{
    struct tr_reg *reg = ((struct fixture *)*state)->reg;
    size_t big = TR_STATE_MAX_VALUE + 1;
    char *v = tr_xmalloc(big);
    memset(v, 'x', big);
    struct tr_state_op op = {
        .kind = TR_STATE_UPSERT, .key = S("app||big"), .value = tr_slice(v, big)};
    assert_int_equal(OPS.set(reg->state, S("s"), &op), -E2BIG);
    op.value.len = TR_STATE_MAX_VALUE;
    assert_int_equal(OPS.set(reg->state, S("s"), &op), 0);
    tr_free_null(&v);
    size_t n = TR_STATE_MAX_OPS + 1;
    struct tr_state_op *ops = tr_xcalloc(n, sizeof(*ops));
    for (size_t i = 0; i < n; i++) {
        ops[i] = upsert("app||many", "1", NULL);
    }
    size_t failed;
    assert_int_equal(OPS.transact(reg->state, S("s"), ops, n, &failed), -E2BIG);
    assert_int_equal(OPS.transact(reg->state, S("s"), ops, n - 1, &failed), 0);
    tr_free_null(&ops);
    struct tr_slice keys[TR_STATE_MAX_BULK + 1];
    struct tr_state_item *items = tr_xcalloc(TR_STATE_MAX_BULK + 1, sizeof(*items));
    bool found[TR_STATE_MAX_BULK + 1];
    for (size_t i = 0; i <= TR_STATE_MAX_BULK; i++) {
        keys[i] = S("app||many");
    }
    assert_int_equal(OPS.bulk_get(reg->state, S("s"), keys, TR_STATE_MAX_BULK + 1, items, found),
                     -E2BIG);
    tr_free_null(&items);
}

static void stores_are_separate(void **state)
{
    struct tr_reg *reg = ((struct fixture *)*state)->reg;
    struct tr_state_op op = upsert("app||k", "one", NULL);
    assert_int_equal(OPS.set(reg->state, S("s"), &op), 0);
    struct tr_state_item item;
    assert_int_equal(OPS.get(reg->state, S("other"), S("app||k"), &item), -ENOENT);
    assert_int_equal(OPS.get(reg->state, S("s"), S("app2||k"), &item), -ENOENT);
    struct tr_slice keys[3] = {S("app||k"), S("app||nope"), S("app2||k")};
    struct tr_state_item items[3];
    bool found[3];
    assert_int_equal(OPS.bulk_get(reg->state, S("s"), keys, 3, items, found), 0);
    assert_true(found[0]);
    assert_false(found[1]);
    assert_false(found[2]);
}

static void survives_restart(void **state)
{
    struct fixture *f = *state;
    struct tr_state_op op = upsert("app||keep", "{\"a\":1}", NULL);
    assert_int_equal(OPS.set(f->reg->state, S("s"), &op), 0);
    op = upsert("app||text", "hi", NULL);
    op.content_type = S("text/plain");
    assert_int_equal(OPS.set(f->reg->state, S("s"), &op), 0);
    op = upsert("app||drop", "1", NULL);
    assert_int_equal(OPS.set(f->reg->state, S("s"), &op), 0);
    op = del("app||drop", NULL);
    assert_int_equal(OPS.del(f->reg->state, S("s"), &op), 0);
    char keep[TR_STATE_ETAG_LEN];
    etag_of(f->reg, "app||keep", keep);
    close_reg(&f->reg);

    f->reg = open_reg(f->dir);
    assert_int_equal(tr_state_embedded_count(f->reg->state), 2);
    char e[TR_STATE_ETAG_LEN];
    etag_of(f->reg, "app||keep", e);
    assert_string_equal(e, keep);
    value_is(f->reg, "app||keep", "{\"a\":1}");
    struct tr_state_item item;
    assert_int_equal(OPS.get(f->reg->state, S("s"), S("app||text"), &item), 0);
    assert_true(tr_slice_eq(item.content_type, S("text/plain")));
    etag_of(f->reg, "app||drop", e);
    assert_string_equal(e, "");
    /* Versions never go back: a new write gets a fresh, larger ETag. */
    op = upsert("app||keep", "2", keep);
    assert_int_equal(OPS.set(f->reg->state, S("s"), &op), 0);
    etag_of(f->reg, "app||keep", e);
    assert_true(strtoull(e, NULL, 10) > strtoull(keep, NULL, 10));
}

static void names_keys_and_etags(void **state)
{
    (void)state;
    assert_null(tr_state_name_problem(S("my-store.v1_x")));
    assert_non_null(tr_state_name_problem(S("")));
    assert_non_null(tr_state_name_problem(S("a/b")));
    assert_null(tr_state_key_problem(S("orders/1|x")));
    assert_non_null(tr_state_key_problem(S("a||b")));
    assert_non_null(tr_state_key_problem(S("")));
    assert_non_null(tr_state_key_problem(S("a\nb")));
    char long_key[TR_STATE_MAX_KEY + 2];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    assert_non_null(tr_state_key_problem(S(long_key)));
    uint64_t v = 0;
    assert_int_equal(tr_state_etag_parse(S("42"), &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(tr_state_etag_parse(S("042"), &v), -EINVAL);
    assert_int_equal(tr_state_etag_parse(S("0"), &v), -EINVAL);
    assert_int_equal(tr_state_etag_parse(S("-1"), &v), -EINVAL);
    assert_int_equal(tr_state_etag_parse(S(""), &v), -EINVAL);
    assert_int_equal(tr_state_etag_parse(S("18446744073709551615"), &v), 0);
    assert_int_equal(tr_state_etag_parse(S("18446744073709551616"), &v), -EINVAL);
    assert_true(tr_state_content_type_is_json(S("application/json; charset=utf-8")));
    assert_true(tr_state_content_type_is_json(S("application/cloudevents+json")));
    assert_false(tr_state_content_type_is_json(S("text/plain")));
    assert_false(tr_state_content_type_is_json(S("json")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(last_write_and_etags, setup, teardown),
        cmocka_unit_test_setup_teardown(first_write, setup, teardown),
        cmocka_unit_test_setup_teardown(deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(transaction_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(limits, setup, teardown),
        cmocka_unit_test_setup_teardown(stores_are_separate, setup, teardown),
        cmocka_unit_test_setup_teardown(survives_restart, setup, teardown),
        cmocka_unit_test(names_keys_and_etags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
