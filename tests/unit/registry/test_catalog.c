/* SPDX-License-Identifier: Apache-2.0 */
/* The catalog's mutations against a real registry (store in a temporary directory, its
 * threads not started): indexes, which topics a change wakes, and restore. */
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
#include "registry/catalog.h"
#include "registry/registry.h"

#define S(x) tr_slice_cstr(x)

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
    snprintf(f->dir, sizeof(f->dir), "/tmp/trellis-test-catalog-XXXXXX");
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

static void reg_json(struct tr_reg *reg, const char *text, bool replace)
{
    json_t *in = json_loads(text, 0, NULL);
    assert_non_null(in);
    json_t *svc;
    json_t *checks;
    char err[256];
    if (tr_cat_parse_service(in, &svc, &checks, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    json_decref(in);
    tr_catalog_register(reg, svc, checks, replace);
}

static uint64_t svc_index(struct tr_reg *reg, const char *name)
{
    return tr_catalog_service_index(reg->catalog, S(name));
}

static void indexes_move_per_name_and_never_back(void **state)
{
    struct fixture *f = *state;
    struct tr_reg *reg = f->reg;
    struct tr_catalog *cat = reg->catalog;
    assert_int_equal(svc_index(reg, "a"), 1);
    reg_json(reg, "{\"ID\":\"a1\",\"Name\":\"a\",\"Check\":{\"TTL\":\"30s\"}}", false);
    uint64_t ia = svc_index(reg, "a");
    assert_true(ia > 1);
    reg_json(reg, "{\"ID\":\"b1\",\"Name\":\"b\"}", false);
    uint64_t ib = svc_index(reg, "b");
    assert_true(ib > ia);
    assert_int_equal(svc_index(reg, "a"), ia); /* b's registration left a alone */
    assert_int_equal(cat->catalog_index, ib);

    /* Identical re-registration: nothing changes, no index is taken. */
    uint64_t before = reg->index;
    reg_json(reg, "{\"ID\":\"a1\",\"Name\":\"a\",\"Check\":{\"TTL\":\"30s\"}}", false);
    assert_int_equal(reg->index, before);

    /* A TTL update moves a's index and the health index, not the catalog's. */
    uint64_t cat_before = cat->catalog_index;
    assert_int_equal(tr_catalog_check_update(reg, S("service:a1"), TR_CHECK_PASSING, S("ok")), 0);
    assert_true(svc_index(reg, "a") > ib);
    assert_int_equal(cat->catalog_index, cat_before);
    assert_int_equal(cat->all_index, reg->index);
    /* The same update again is no change. */
    before = reg->index;
    assert_int_equal(tr_catalog_check_update(reg, S("service:a1"), TR_CHECK_PASSING, S("ok")), 0);
    assert_int_equal(reg->index, before);

    /* Deregistering the newest instance moves the name's index forward. */
    uint64_t ia2 = svc_index(reg, "a");
    assert_int_equal(tr_catalog_deregister(reg, S("a1")), 0);
    assert_true(svc_index(reg, "a") > ia2);
    assert_null(tr_catalog_check(cat, S("service:a1")));
    assert_int_equal(tr_catalog_name(cat, S("a"))->count, 0);
    assert_int_equal(tr_catalog_deregister(reg, S("a1")), -ENOENT);

    /* Restart: the tombstone index of a and the others come back. */
    uint64_t ia3 = svc_index(reg, "a");
    uint64_t all = cat->all_index;
    uint64_t catalog = cat->catalog_index;
    close_reg(&f->reg);
    f->reg = reg = open_reg(f->dir);
    cat = reg->catalog;
    assert_int_equal(svc_index(reg, "a"), ia3);
    assert_int_equal(svc_index(reg, "b"), ib);
    assert_int_equal(cat->all_index, all);
    assert_int_equal(cat->catalog_index, catalog);
    assert_true(reg->index >= ia3);
    assert_non_null(tr_catalog_service(cat, S("b1")));
    assert_null(tr_catalog_service(cat, S("a1")));
}

static void reregistration_keeps_check_state(void **state)
{
    struct fixture *f = *state;
    struct tr_reg *reg = f->reg;
    struct tr_catalog *cat = reg->catalog;
    reg_json(reg, "{\"ID\":\"s1\",\"Name\":\"s\",\"Checks\":[{\"TTL\":\"30s\"},{\"TTL\":\"60s\"}]}",
             false);
    assert_int_equal(tr_catalog_check_update(reg, S("service:s1:1"), TR_CHECK_WARNING, S("w")), 0);
    /* A changed definition keeps status and output, as Consul does. */
    reg_json(reg, "{\"ID\":\"s1\",\"Name\":\"s\",\"Checks\":[{\"TTL\":\"45s\"},{\"TTL\":\"60s\"}]}",
             false);
    struct tr_cat_check *c = tr_catalog_check(cat, S("service:s1:1"));
    assert_non_null(c);
    assert_int_equal(c->status, TR_CHECK_WARNING);
    assert_string_equal(c->output, "w");
    assert_int_equal(c->ttl_ms, 45000);
    /* Without replace-existing-checks the old checks stay; with it they go. */
    reg_json(reg, "{\"ID\":\"s1\",\"Name\":\"s\",\"Check\":{\"TTL\":\"5s\"}}", false);
    assert_int_equal(cat->checks.len, 3);
    reg_json(reg, "{\"ID\":\"s1\",\"Name\":\"s\",\"Check\":{\"TTL\":\"5s\"}}", true);
    assert_int_equal(cat->checks.len, 1);
    assert_non_null(tr_catalog_check(cat, S("service:s1")));
    assert_int_equal(tr_catalog_service_health(cat, tr_catalog_service(cat, S("s1"))),
                     TR_CHECK_CRITICAL);
    /* Renaming an instance moves it between names. */
    uint64_t is = svc_index(reg, "s");
    reg_json(reg, "{\"ID\":\"s1\",\"Name\":\"t\"}", false);
    assert_true(svc_index(reg, "s") > is);
    assert_int_equal(tr_catalog_name(cat, S("s"))->count, 0);
    assert_int_equal(tr_catalog_name(cat, S("t"))->count, 1);
    assert_string_equal(tr_cat_service_name(tr_catalog_service(cat, S("s1"))), "t");
}

static void checks_updates_and_node_checks(void **state)
{
    struct fixture *f = *state;
    struct tr_reg *reg = f->reg;
    struct tr_catalog *cat = reg->catalog;
    reg_json(reg,
             "{\"ID\":\"h1\",\"Name\":\"h\",\"Check\":{\"HTTP\":\"http://127.0.0.1:1/\","
             "\"Interval\":\"10s\"}}",
             false);
    assert_int_equal(tr_catalog_check_update(reg, S("service:h1"), TR_CHECK_PASSING, S("")),
                     -EINVAL);
    assert_int_equal(tr_catalog_check_update(reg, S("nope"), TR_CHECK_PASSING, S("")), -ENOENT);
    struct tr_cat_check *c = tr_catalog_check(cat, S("service:h1"));
    assert_int_equal(c->interval_ms, 10000);
    assert_int_equal(c->timeout_ms, 10000);
    assert_string_equal(c->host, "127.0.0.1");
    assert_int_equal(c->port, 1);
    assert_string_equal(c->path, "/");

    /* A node-level check moves every service's index. */
    reg_json(reg, "{\"ID\":\"g1\",\"Name\":\"g\"}", false);
    uint64_t ih = svc_index(reg, "h");
    json_t *def;
    char err[256];
    struct tr_cat_check_ctx ctx = {0};
    json_t *in = json_loads("{\"Name\":\"disk\",\"TTL\":\"1m\",\"Status\":\"passing\"}", 0, NULL);
    assert_int_equal(tr_cat_parse_check(in, &ctx, &def, err, sizeof(err)), 0);
    json_decref(in);
    assert_int_equal(tr_catalog_check_register(reg, def), 0);
    assert_true(svc_index(reg, "h") > ih);
    assert_int_equal(svc_index(reg, "g"), svc_index(reg, "h"));
    assert_int_equal(tr_catalog_check_update(reg, S("disk"), TR_CHECK_CRITICAL, S("full")), 0);
    assert_int_equal(tr_catalog_service_health(cat, tr_catalog_service(cat, S("g1"))),
                     TR_CHECK_CRITICAL);
    assert_int_equal(tr_catalog_check_deregister(reg, S("disk")), 0);
    assert_int_equal(tr_catalog_service_health(cat, tr_catalog_service(cat, S("g1"))),
                     TR_CHECK_PASSING);

    /* A check for a service that does not exist is refused. */
    in = json_loads("{\"Name\":\"x\",\"TTL\":\"1m\",\"ServiceID\":\"zz\"}", 0, NULL);
    assert_int_equal(tr_cat_parse_check(in, &ctx, &def, err, sizeof(err)), 0);
    json_decref(in);
    assert_int_equal(tr_catalog_check_register(reg, def), -ENOENT);

    /* Maintenance mode: a critical check of its own. */
    assert_int_equal(tr_catalog_maintenance(reg, S("g1"), true, S("")), 0);
    c = tr_catalog_check(cat, S("_service_maintenance:g1"));
    assert_non_null(c);
    assert_int_equal(c->type, TR_CHECK_MAINT);
    assert_int_equal(c->status, TR_CHECK_CRITICAL);
    assert_int_equal(tr_catalog_maintenance(reg, S("g1"), false, S("")), 0);
    assert_null(tr_catalog_check(cat, S("_service_maintenance:g1")));
    assert_int_equal(tr_catalog_maintenance(reg, S("zz"), true, S("")), -ENOENT);

    /* All of it survives a restart. */
    assert_int_equal(tr_catalog_check_update(reg, S("service:h1"), TR_CHECK_PASSING, S("")),
                     -EINVAL);
    close_reg(&f->reg);
    f->reg = reg = open_reg(f->dir);
    cat = reg->catalog;
    c = tr_catalog_check(cat, S("service:h1"));
    assert_non_null(c);
    assert_ptr_equal(c->service, tr_catalog_service(cat, S("h1")));
    assert_int_equal(c->type, TR_CHECK_HTTP);
    assert_int_equal(cat->checks.len, 1);
    assert_int_equal(cat->services.len, 2);
}

/* ---- topics */

struct probe_waiter {
    struct tr_reg_waiter w;
    int woken;
};

static void on_wake(struct tr_reg_waiter *w, bool timed_out)
{
    struct probe_waiter *p = tr_container_of(w, struct probe_waiter, w);
    p->woken += timed_out ? 100 : 1;
}

static void changes_wake_only_their_topics(void **state)
{
    struct fixture *f = *state;
    struct tr_reg *reg = f->reg;
    reg_json(reg, "{\"ID\":\"a1\",\"Name\":\"a\",\"Check\":{\"TTL\":\"30s\"}}", false);
    reg_json(reg, "{\"ID\":\"b1\",\"Name\":\"b\",\"Check\":{\"TTL\":\"30s\"}}", false);
    tr_reg_settle(reg, true);
    struct probe_waiter wa = {.w.wake = on_wake};
    struct probe_waiter wb = {.w.wake = on_wake};
    struct probe_waiter wc = {.w.wake = on_wake};
    struct probe_waiter wh = {.w.wake = on_wake};
    tr_reg_wait(reg, &wa.w, "svc:a", 60000);
    tr_reg_wait(reg, &wb.w, "svc:b", 60000);
    tr_reg_wait(reg, &wc.w, TR_TOPIC_CATALOG, 60000);
    tr_reg_wait(reg, &wh.w, TR_TOPIC_HEALTH, 60000);

    assert_int_equal(tr_catalog_check_update(reg, S("service:a1"), TR_CHECK_PASSING, S("")), 0);
    /* Nobody wakes before the change is durable. */
    assert_int_equal(wa.woken + wb.woken + wc.woken + wh.woken, 0);
    tr_reg_settle(reg, true);
    assert_int_equal(wa.woken, 1);
    assert_int_equal(wb.woken, 0);
    assert_int_equal(wc.woken, 0);
    assert_int_equal(wh.woken, 1);

    /* A new service wakes the catalog watchers (still parked), not b's. */
    reg_json(reg, "{\"ID\":\"c1\",\"Name\":\"c\"}", false);
    tr_reg_settle(reg, true);
    assert_int_equal(wc.woken, 1);
    assert_int_equal(wb.woken, 0);
    tr_reg_unwait(reg, &wb.w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(indexes_move_per_name_and_never_back, setup, teardown),
        cmocka_unit_test_setup_teardown(reregistration_keeps_check_state, setup, teardown),
        cmocka_unit_test_setup_teardown(checks_updates_and_node_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(changes_wake_only_their_topics, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
