/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the trellis up manifest: a full manifest and its defaults, command splitting
 * and ${VAR} expansion, the gateway section re-emitted for the proxy, and every kind of
 * mistake with its exact "file:line:col: key.path: message". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "proxy/config.h"
#include "up/gateway.h"
#include "up/manifest.h"
#include "up/shellwords.h"

static struct tr_up_manifest *parse_ok(const char *text)
{
    struct tr_up_manifest *m = NULL;
    struct tr_conf_err err = {""};
    int rc = tr_up_manifest_parse("trellis.yaml", "/srv/app", text, strlen(text), &m, &err);
    if (rc != 0) {
        fail_msg("parse failed (%d): %s", rc, err.msg);
    }
    assert_non_null(m);
    return m;
}

static void parse_fails(const char *text, const char *want)
{
    struct tr_up_manifest *m = NULL;
    struct tr_conf_err err = {""};
    int rc = tr_up_manifest_parse("trellis.yaml", "/srv/app", text, strlen(text), &m, &err);
    if (rc == 0) {
        tr_up_manifest_free(m);
        fail_msg("expected an error: %s", want);
    }
    assert_null(m);
    assert_string_equal(err.msg, want);
}

static const char shop[] =
    "name: shop\n"
    "server: {listen: 127.0.0.1:8500, data_dir: /var/lib/shop, workers: 2}\n"
    "gateway:\n"
    "  listen: 127.0.0.1:8080\n"
    "  workers: 2\n"
    "  clusters:\n"
    "    - {name: products, service: product}\n"
    "  routes:\n"
    "    - {match: {prefix: /products}, cluster: products}\n"
    "components: ./components\n"
    "stop_timeout: 3s\n"
    "drain_grace: 100ms\n"
    "services:\n"
    "  product: {command: ./build/examples/shop/product, replicas: 2, health: /healthz}\n"
    "  order:\n"
    "    command: ./build/order --timeout \"800 ms\" 'a b' ${APP_PORT}\n"
    "    env: {PAYMENT_TIMEOUT_MS: \"800\", RETRIES: 3, EMPTY: }\n"
    "    port: 9100\n"
    "    stop_timeout: 1s\n"
    "  worker:\n"
    "    command: [python3, -m, worker, --port, \"${APP_PORT}\"]\n"
    "    replicas: 0\n"
    "    sidecar: no\n";

static void full_manifest(void **state)
{
    struct tr_up_manifest *m = parse_ok(shop);
    assert_string_equal(m->name, "shop");
    assert_string_equal(m->dir, "/srv/app");
    assert_string_equal(m->server_listen, "127.0.0.1:8500");
    assert_string_equal(m->data_dir, "/var/lib/shop");
    assert_int_equal(m->server_workers, 2);
    assert_non_null(m->gateway);
    assert_string_equal(m->gateway_listen, "127.0.0.1:8080");
    assert_null(m->gateway_admin);
    assert_int_equal(m->gateway_workers, 2);
    assert_string_equal(m->components, "/srv/app/components");
    assert_true(m->sidecar);
    assert_int_equal(m->stop_timeout_ms, 3000);
    assert_int_equal(m->drain_grace_ms, 100);
    assert_int_equal(m->startup_timeout_ms, TR_UP_DEFAULT_STARTUP_TIMEOUT_MS);
    assert_int_equal(m->nservices, 3);

    const struct tr_up_service_def *p = tr_up_manifest_service(m, "product");
    assert_non_null(p);
    assert_int_equal(p->argc, 1);
    assert_string_equal(p->argv[0], "/srv/app/build/examples/shop/product");
    assert_null(p->argv[1]);
    assert_int_equal(p->replicas, 2);
    assert_string_equal(p->health, "/healthz");
    assert_int_equal(p->nenv, 0);
    assert_null(p->env[0]);
    assert_int_equal(p->port, 0);
    assert_true(p->sidecar);
    assert_int_equal(p->stop_timeout_ms, 3000); /* the global default */
    assert_int_equal(p->pos.line, 14);
    assert_int_equal(p->pos.col, 3);

    const struct tr_up_service_def *o = tr_up_manifest_service(m, "order");
    assert_int_equal(o->argc, 5);
    assert_string_equal(o->argv[0], "/srv/app/build/order");
    assert_string_equal(o->argv[1], "--timeout");
    assert_string_equal(o->argv[2], "800 ms");
    assert_string_equal(o->argv[3], "a b");
    assert_string_equal(o->argv[4], "${APP_PORT}");
    assert_int_equal(o->replicas, 1);
    assert_null(o->health);
    assert_int_equal(o->nenv, 3);
    assert_string_equal(o->env[0], "PAYMENT_TIMEOUT_MS=800");
    assert_string_equal(o->env[1], "RETRIES=3");
    assert_string_equal(o->env[2], "EMPTY=");
    assert_null(o->env[3]);
    assert_int_equal(o->port, 9100);
    assert_int_equal(o->stop_timeout_ms, 1000);
    assert_int_equal(o->command_pos.line, 16);
    assert_int_equal(o->command_pos.col, 14);

    const struct tr_up_service_def *w = tr_up_manifest_service(m, "worker");
    assert_int_equal(w->argc, 5);
    assert_string_equal(w->argv[0], "python3"); /* no '/': found through PATH */
    assert_string_equal(w->argv[4], "${APP_PORT}");
    assert_int_equal(w->replicas, 0);
    assert_false(w->sidecar);
    assert_null(tr_up_manifest_service(m, "nope"));
    tr_up_manifest_free(m);
    tr_up_manifest_free(NULL);
}

static void defaults(void **state)
{
    struct tr_up_manifest *m = parse_ok("services:\n  web: {command: ./web}\n");
    assert_string_equal(m->name, "app"); /* the directory's name */
    assert_string_equal(m->server_listen, TR_UP_DEFAULT_SERVER_LISTEN);
    assert_string_equal(m->data_dir, "/srv/app/.trellis/data");
    assert_int_equal(m->server_workers, 1);
    assert_null(m->gateway);
    assert_null(m->components);
    assert_true(m->sidecar);
    assert_int_equal(m->stop_timeout_ms, TR_UP_DEFAULT_STOP_TIMEOUT_MS);
    assert_int_equal(m->drain_grace_ms, TR_UP_DEFAULT_DRAIN_GRACE_MS);
    assert_int_equal(m->services[0].replicas, 1);
    tr_up_manifest_free(m);

    m = parse_ok("sidecar: false\nserver:\ngateway: ~\nservices:\n  web: {command: web}\n");
    assert_false(m->services[0].sidecar);
    assert_null(m->gateway);
    tr_up_manifest_free(m);

    /* An empty services section is allowed (just a server). */
    m = parse_ok("services: {}\n");
    assert_int_equal(m->nservices, 0);
    tr_up_manifest_free(m);
}

static void split(const char *line, size_t want_n, const char *const *want)
{
    struct tr_arena a;
    tr_arena_init(&a, 256);
    char **argv = NULL;
    size_t argc = 0;
    const char *why = NULL;
    int rc = tr_up_shell_split(line, strlen(line), &a, &argv, &argc, &why);
    if (rc != 0) {
        fail_msg("split(%s) failed: %s", line, why);
    }
    assert_int_equal(argc, want_n);
    for (size_t i = 0; i < want_n; i++) {
        assert_string_equal(argv[i], want[i]);
    }
    assert_null(argv[want_n]);
    tr_arena_dispose(&a);
}

static void split_fails(const char *line, size_t len, const char *want_why)
{
    struct tr_arena a;
    tr_arena_init(&a, 256);
    char **argv = NULL;
    size_t argc = 0;
    const char *why = NULL;
    assert_int_equal(tr_up_shell_split(line, len, &a, &argv, &argc, &why), -EINVAL);
    assert_string_equal(why, want_why);
    tr_arena_dispose(&a);
}

static void shell_words(void **state)
{
    split("a", 1, (const char *[]){"a"});
    split("  a \t b\n c  ", 3, (const char *[]){"a", "b", "c"});
    split("'a b' \"c d\"", 2, (const char *[]){"a b", "c d"});
    split("x'y'\"z\"w", 1, (const char *[]){"xyzw"});
    split("'' \"\"", 2, (const char *[]){"", ""});
    split("a\\ b c\\'d", 2, (const char *[]){"a b", "c'd"});
    split("\"a\\\"b\\\\c\\$d\\`e\\n\"", 1, (const char *[]){"a\"b\\c$d`e\\n"});
    split("'no \\escapes\\ here'", 1, (const char *[]){"no \\escapes\\ here"});
    split("$HOME ${APP_PORT} *", 3, (const char *[]){"$HOME", "${APP_PORT}", "*"});
    split_fails("'open", 5, "unterminated single quote");
    split_fails("\"open", 5, "unterminated double quote");
    split_fails("a\\", 2, "ends with a backslash");
    split_fails("   ", 3, "no command");
    split_fails("", 0, "no command");
    split_fails("a\0b", 3, "contains a NUL byte");
    struct tr_buf many;
    tr_buf_init(&many);
    for (int i = 0; i < 257; i++) {
        tr_buf_append(&many, "w ", 2);
    }
    split_fails(tr_buf_data(&many), many.len, "too many words (at most 256)");
    tr_buf_dispose(&many);
}

static void expand(const char *word, const char *want)
{
    static const char *const vars[] = {"APP_PORT=8081", "APP_ID=order", "EMPTY=", NULL};
    struct tr_buf out;
    tr_buf_init(&out);
    const char *name = NULL;
    size_t len = 0;
    assert_int_equal(tr_up_expand_vars(word, vars, &out, &name, &len), 0);
    tr_buf_append(&out, "", 1);
    assert_string_equal(tr_buf_data(&out), want);
    tr_buf_dispose(&out);
}

static void expand_vars(void **state)
{
    expand("plain", "plain");
    expand("127.0.0.1:${APP_PORT}", "127.0.0.1:8081");
    expand("${APP_ID}-${APP_PORT}${EMPTY}!", "order-8081!");
    expand("$APP_PORT {APP_PORT}", "$APP_PORT {APP_PORT}");
    static const char *const vars[] = {"APP_PORT=1", NULL};
    struct tr_buf out;
    tr_buf_init(&out);
    const char *name = NULL;
    size_t len = 0;
    assert_int_equal(tr_up_expand_vars("x${NOPE}y", vars, &out, &name, &len), -ENOENT);
    assert_int_equal(len, 4);
    assert_memory_equal(name, "NOPE", 4);
    assert_int_equal(tr_up_expand_vars("x${APP_PORT", vars, &out, &name, &len), -EINVAL);
    /* A prefix of a name is not the name. */
    assert_int_equal(tr_up_expand_vars("${APP}", vars, &out, &name, &len), -ENOENT);
    tr_buf_dispose(&out);
}

static void gateway_section(void **state)
{
    struct tr_up_manifest *m = parse_ok(shop);
    struct tr_buf yaml;
    tr_buf_init(&yaml);
    struct tr_conf_err err = {""};
    assert_int_equal(tr_up_gateway_yaml(m, "127.0.0.1:18080", "127.0.0.1:19901",
                                        "http://127.0.0.1:18500", &yaml, &err),
                     0);
    /* What trellis proxy --config will read. */
    struct tr_proxy_config *cfg = NULL;
    assert_int_equal(tr_proxy_config_parse("gw.yaml", tr_buf_data(&yaml), yaml.len, 1, &cfg, &err),
                     0);
    assert_string_equal(cfg->listen, "127.0.0.1:18080");
    assert_string_equal(cfg->admin, "127.0.0.1:19901");
    assert_true(cfg->has_registry);
    assert_string_equal(cfg->registry_host, "127.0.0.1:18500");
    assert_int_equal(cfg->nclusters, 1);
    assert_string_equal(cfg->clusters[0].service, "product");
    assert_int_equal(cfg->nroutes, 1);
    tr_proxy_config_unref(cfg);
    tr_buf_append(&yaml, "", 1);
    assert_null(strstr(tr_buf_data(&yaml), "workers")); /* trellis up's own key */
    tr_buf_dispose(&yaml);
    tr_up_manifest_free(m);

    /* Quotes, backslashes and non-ASCII text survive the trip. */
    m = parse_ok("gateway:\n"
                 "  clusters:\n"
                 "    - {name: web, endpoints: [\"127.0.0.1:9001\"], lb: random}\n"
                 "  routes:\n"
                 "    - match: {prefix: /a, headers: {X-V: \"q\\\"b\\\\c \u00e9\"}}\n"
                 "      cluster: web\n"
                 "services: {}\n");
    tr_buf_init(&yaml);
    assert_int_equal(
        tr_up_gateway_yaml(m, "127.0.0.1:1", "127.0.0.1:2", "http://127.0.0.1:3", &yaml, &err), 0);
    assert_int_equal(tr_proxy_config_parse("gw.yaml", tr_buf_data(&yaml), yaml.len, 1, &cfg, &err),
                     0);
    assert_int_equal(cfg->routes[0].nheaders, 1);
    struct tr_slice hv = cfg->routes[0].headers[0].value;
    assert_int_equal(hv.len, 8);
    assert_memory_equal(hv.ptr, "q\"b\\c \xc3\xa9", 8);
    assert_int_equal(cfg->clusters[0].lb, TR_PROXY_LB_RANDOM);
    tr_proxy_config_unref(cfg);
    tr_buf_dispose(&yaml);
    tr_up_manifest_free(m);
}

/* The proxy's own complaints come back at the manifest's line and column. */
static void gateway_errors(void **state)
{
    parse_fails("services: {}\n"
                "gateway:\n"
                "  clusters:\n"
                "    - {name: web, service: web}\n"
                "  routes:\n"
                "    - {match: {prefix: /}, cluster: wbe}\n",
                "trellis.yaml:6:37: gateway: route refers to unknown cluster \"wbe\"");
    parse_fails("services: {}\n"
                "gateway:\n"
                "  clusters:\n"
                "    - name: web\n"
                "      service: web\n"
                "      timout: 2s\n"
                "  routes: [{cluster: web}]\n",
                "trellis.yaml:6:7: gateway: unknown key \"timout\" in cluster section; did you "
                "mean \"timeout\"?");
    parse_fails("services: {}\ngateway:\n  routes: [{cluster: web}]\n",
                "trellis.yaml:3:3: gateway: missing key \"clusters\"");
    parse_fails("services: {}\ngateway:\n  registry: http://127.0.0.1:8500\n",
                "trellis.yaml:3:13: gateway.registry: set by trellis up to the server's address; "
                "remove it");
    parse_fails("services: {}\ngateway: [a]\n",
                "trellis.yaml:2:10: gateway: expected a mapping, got a sequence");
    parse_fails("services: {}\ngateway: {listen: nowhere}\n",
                "trellis.yaml:2:19: gateway.listen: expected host:port with a numeric IP or "
                "localhost (port 0 picks a free port), got \"nowhere\"");
}

static void value_errors(void **state)
{
    parse_fails("services:\n"
                "  order:\n"
                "    command: ./order\n"
                "    replicas: two\n",
                "trellis.yaml:4:15: services.order.replicas: expected an integer between 0 and "
                "64, got \"two\"");
    parse_fails("services:\n  order: {command: ./order, replicas: -1}\n",
                "trellis.yaml:2:39: services.order.replicas: expected an integer between 0 and "
                "64, got \"-1\"");
    parse_fails("services:\n  order: {command: ./order, replicas: 65}\n",
                "trellis.yaml:2:39: services.order.replicas: expected an integer between 0 and "
                "64, got \"65\"");
    parse_fails("services:\n  order: {replicas: 2}\n",
                "trellis.yaml:2:10: services.order: missing key \"command\"");
    parse_fails("services:\n  order: {command: \"'a\"}\n",
                "trellis.yaml:2:20: services.order.command: unterminated single quote");
    parse_fails("services:\n  order: {command: []}\n",
                "trellis.yaml:2:20: services.order.command: expected 1 to 256 words");
    parse_fails("services:\n  order: {command: [a, [b]]}\n",
                "trellis.yaml:2:24: services.order.command: expected a string, got a sequence");
    parse_fails("services:\n  order: {command: \"\"}\n",
                "trellis.yaml:2:20: services.order.command: no command");
    parse_fails("services:\n  order: {command: \"x ${NOPE}\"}\n",
                "trellis.yaml:2:20: services.order.command: unknown variable ${NOPE} (known: "
                "APP_PORT, APP_ID, TRELLIS_REPLICA, TRELLIS_ADDR, DAPR_HTTP_PORT and the "
                "service's env)");
    parse_fails("services:\n  order: {command: \"x ${DAPR_HTTP_PORT}\", sidecar: false}\n",
                "trellis.yaml:2:20: services.order.command: ${DAPR_HTTP_PORT} needs a sidecar "
                "(sidecar is false)");
    parse_fails("services:\n  order: {command: \"x ${APP_PORT\"}\n",
                "trellis.yaml:2:20: services.order.command: \"${\" without a closing \"}\"");
    parse_fails("services:\n  order: {command: x, health: healthz}\n",
                "trellis.yaml:2:31: services.order.health: expected an HTTP path starting with "
                "'/', got \"healthz\"");
    parse_fails("services:\n  order: {command: x, health: \"/a b\"}\n",
                "trellis.yaml:2:31: services.order.health: the path may not contain spaces or "
                "control characters");
    parse_fails("services:\n  order: {command: x, port: 70000}\n",
                "trellis.yaml:2:29: services.order.port: expected an integer between 1 and "
                "65535, got \"70000\"");
    parse_fails("services:\n  order: {command: x, sidecar: maybe}\n",
                "trellis.yaml:2:32: services.order.sidecar: expected a boolean (true/false, "
                "yes/no, on/off), got \"maybe\"");
    parse_fails("services:\n  order: {command: x, stop_timeout: 5}\n",
                "trellis.yaml:2:37: services.order.stop_timeout: expected a duration like 500ms, "
                "2s, 1m, got \"5\": missing unit (ms, s, m or h)");
    parse_fails("stop_timeout: 11m\nservices: {}\n",
                "trellis.yaml:1:15: stop_timeout: at most 10m");
    parse_fails("startup_timeout: 0\nservices: {}\n",
                "trellis.yaml:1:18: startup_timeout: must be more than 0");
    parse_fails("services:\n  order: {command: x, env: {APP_PORT: \"1\"}}\n",
                "trellis.yaml:2:29: services.order.env.APP_PORT: set by trellis up for every "
                "replica");
    parse_fails("services:\n  order: {command: x, env: {1X: \"1\"}}\n",
                "trellis.yaml:2:29: services.order.env: \"1X\" is not a variable name (letters, "
                "digits and _, not starting with a digit)");
    parse_fails("services:\n  order: {command: x, env: {A: [1]}}\n",
                "trellis.yaml:2:32: services.order.env.A: expected a scalar, got a sequence");
    parse_fails("services:\n  order: {command: x, env: [A]}\n",
                "trellis.yaml:2:28: services.order.env: expected a mapping, got a sequence");
    parse_fails("services:\n  or.der: {command: x}\n",
                "trellis.yaml:2:3: services: \"or.der\" is not a valid service name (1 to 63 "
                "letters, digits, '-' and '_', starting with a letter or digit)");
    parse_fails("services:\n  -x: {command: x}\n",
                "trellis.yaml:2:3: services: \"-x\" is not a valid service name (1 to 63 "
                "letters, digits, '-' and '_', starting with a letter or digit)");
    parse_fails("services:\n  order: ./order\n",
                "trellis.yaml:2:10: services.order: expected a mapping, got \"./order\"");
    parse_fails("services: [a]\n",
                "trellis.yaml:1:11: services: expected a mapping, got a sequence");
    parse_fails("server: {listen: \"8500\"}\nservices: {}\n",
                "trellis.yaml:1:18: server.listen: expected host:port with a numeric IP or "
                "localhost (port 0 picks a free port), got \"8500\"");
    parse_fails("server: {workers: 0}\nservices: {}\n",
                "trellis.yaml:1:19: server.workers: expected an integer between 1 and 64, got "
                "\"0\"");
    parse_fails("name: \"my app\"\nservices: {}\n",
                "trellis.yaml:1:7: name: expected letters, digits, '-' and '_' (at most 63), got "
                "\"my app\"");
}

static void structure_errors(void **state)
{
    parse_fails("", "trellis.yaml:1:1: expected one YAML document, found none");
    parse_fails("~\n", "trellis.yaml:1:1: manifest: expected a mapping, got null");
    parse_fails("- a\n", "trellis.yaml:1:1: manifest: expected a mapping, got a sequence");
    parse_fails("name: x\n", "trellis.yaml:1:1: services: missing: the services to run");
    parse_fails("servcies: {}\n",
                "trellis.yaml:1:1: unknown key \"servcies\"; did you mean \"services\"?");
    parse_fails("services:\n  order:\n    command: x\n    replics: 2\n",
                "trellis.yaml:4:5: services.order: unknown key \"replics\"; did you mean "
                "\"replicas\"?");
    parse_fails("server: {listen: 127.0.0.1:1, dir: x}\nservices: {}\n",
                "trellis.yaml:1:31: server: unknown key \"dir\"");
    /* The YAML loader's own errors keep their wording. */
    parse_fails("services:\n  a: {command: x}\n  a: {command: y}\n",
                "trellis.yaml:3:3: duplicate key \"a\" (first defined at line 2, column 3)");
    parse_fails("services: {a: [}\n",
                "trellis.yaml:1:16: did not find expected node content (while parsing a flow "
                "node at 1:16)");
}

static void check_files(void **state)
{
    char dir[] = "/tmp/trellis-test-manifest-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/run.sh", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/trellis.yaml", dir);
    f = fopen(path, "w");
    fputs("services:\n  a: {command: ./run.sh}\n  b: {command: sh}\n", f);
    fclose(f);
    struct tr_up_manifest *m = NULL;
    struct tr_conf_err err = {""};
    assert_int_equal(tr_up_manifest_load(path, &m, &err), 0);
    assert_int_equal(tr_up_manifest_check_files(m, &err), -EACCES);
    char want[512];
    snprintf(want, sizeof(want), "%s:2:16: services.a.command: %s/run.sh: not executable", path,
             dir);
    assert_string_equal(err.msg, want);
    snprintf(path, sizeof(path), "%s/run.sh", dir);
    assert_int_equal(chmod(path, 0755), 0);
    assert_int_equal(tr_up_manifest_check_files(m, &err), 0);
    unlink(path);
    assert_int_equal(tr_up_manifest_check_files(m, &err), -ENOENT);
    tr_up_manifest_free(m);
    snprintf(path, sizeof(path), "%s/trellis.yaml", dir);
    unlink(path);
    assert_int_equal(tr_up_manifest_load(path, &m, &err), -ENOENT);
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    assert_string_equal(err.msg, want);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_manifest),   cmocka_unit_test(defaults),
        cmocka_unit_test(shell_words),     cmocka_unit_test(expand_vars),
        cmocka_unit_test(gateway_section), cmocka_unit_test(gateway_errors),
        cmocka_unit_test(value_errors),    cmocka_unit_test(structure_errors),
        cmocka_unit_test(check_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
