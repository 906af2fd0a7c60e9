/* SPDX-License-Identifier: Apache-2.0 */
/* Dapr resource files: components, subscriptions, scopes, several documents per file,
 * and the errors (file, position, what) for everything that is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "sidecar/components.h"

static int parse(struct tr_sidecar_components *c, const char *text, struct tr_conf_err *err)
{
    return tr_sidecar_components_parse(c, "dir/file.yaml", text, strlen(text), "app1", err);
}

static void component_with_metadata(void **state)
{
    struct tr_sidecar_components c;
    struct tr_conf_err err;
    tr_sidecar_components_init(&c);
    assert_int_equal(parse(&c,
                           "apiVersion: dapr.io/v1alpha1\n"
                           "kind: Component\n"
                           "metadata:\n"
                           "  name: secrets\n"
                           "  namespace: default\n"
                           "spec:\n"
                           "  type: secretstores.local.file\n"
                           "  version: v1\n"
                           "  metadata:\n"
                           "  - name: secretsFile\n"
                           "    value: ./s.json\n"
                           "  - name: port\n"
                           "    value: 5\n"
                           "  - name: empty\n",
                           &err),
                     0);
    assert_int_equal(c.ncomps, 1);
    const struct tr_sidecar_component *comp = &c.comps[0];
    assert_string_equal(comp->name, "secrets");
    assert_string_equal(comp->type, "secretstores.local.file");
    assert_string_equal(comp->version, "v1");
    assert_string_equal(comp->file, "dir/file.yaml");
    assert_int_equal(comp->kind, TR_SIDECAR_SECRETS);
    assert_int_equal(comp->ctype, TR_SIDECAR_TYPE_SECRETS_FILE);
    assert_string_equal(tr_sidecar_component_meta(comp, "secretsFile"), "./s.json");
    assert_string_equal(tr_sidecar_component_meta(comp, "port"), "5");
    assert_string_equal(tr_sidecar_component_meta(comp, "empty"), "");
    assert_null(tr_sidecar_component_meta(comp, "nope"));
    tr_sidecar_components_dispose(&c);
}

static void documents_scopes_and_kinds(void **state)
{
    struct tr_sidecar_components c;
    struct tr_conf_err err;
    tr_sidecar_components_init(&c);
    const char *text = "# leading comment\n"
                       "---\n"
                       "apiVersion: dapr.io/v1alpha1\n"
                       "kind: Component\n"
                       "metadata: {name: a}\n"
                       "spec: {type: state.trellis}\n"
                       "scopes: [app1, app2]\n"
                       "--- # separator with a comment\n"
                       "apiVersion: dapr.io/v1alpha1\n"
                       "kind: Component\n"
                       "metadata: {name: b}\n"
                       "spec: {type: pubsub.trellis}\n"
                       "scopes: [other]\n"
                       "---\n"
                       "apiVersion: dapr.io/v1alpha1\n"
                       "kind: Resiliency\n"
                       "metadata: {name: r}\n"
                       "spec: {}\n"
                       "---\n"
                       "apiVersion: dapr.io/v2alpha1\n"
                       "kind: Subscription\n"
                       "metadata: {name: s}\n"
                       "spec:\n"
                       "  topic: orders\n"
                       "  pubsubname: pubsub\n"
                       "  routes:\n"
                       "    rules:\n"
                       "    - {match: 'event.type == \"x\"', path: /x}\n"
                       "    default: /d\n"
                       "  deadLetterTopic: dead\n"
                       "  metadata: {rawPayload: 'true'}\n"
                       "  bulkSubscribe: {enabled: true, maxMessagesCount: 10}\n";
    assert_int_equal(parse(&c, text, &err), 0);
    assert_int_equal(c.ncomps, 1);
    assert_string_equal(c.comps[0].name, "a");
    assert_int_equal(c.nsubs, 1);
    const struct tr_sidecar_subscription *s = &c.subs[0];
    assert_string_equal(s->topic, "orders");
    assert_string_equal(s->route, "/d");
    assert_int_equal(s->nrules, 1);
    assert_string_equal(s->rules[0].match, "event.type == \"x\"");
    assert_string_equal(s->rules[0].path, "/x");
    assert_string_equal(s->dead_letter_topic, "dead");
    assert_int_equal(s->nmeta, 1);
    assert_string_equal(s->meta[0].value, "true");
    assert_true(s->bulk);
    assert_int_equal(s->bulk_max_messages, 10);
    /* Skipped documents are warnings naming the file and line. */
    const char *w = tr_buf_data(&c.warnings);
    assert_non_null(w);
    assert_non_null(strstr(w, "dir/file.yaml:9:"));  /* b, scoped out */
    assert_non_null(strstr(w, "dir/file.yaml:15:")); /* Resiliency */
    tr_sidecar_components_dispose(&c);
}

static void expect_error(const char *text, const char *want)
{
    struct tr_sidecar_components c;
    struct tr_conf_err err;
    tr_sidecar_components_init(&c);
    assert_int_equal(parse(&c, "apiVersion: dapr.io/v1alpha1\nkind: Component\n"
                                "metadata: {name: keep}\nspec: {type: state.trellis}\n",
                           &err),
                     0);
    assert_int_not_equal(parse(&c, text, &err), 0);
    if (strstr(err.msg, want) == NULL) {
        fail_msg("error \"%s\" does not contain \"%s\"", err.msg, want);
    }
    assert_int_equal(c.ncomps, 1); /* a failed file adds nothing */
    assert_int_equal(c.nsubs, 0);
    tr_sidecar_components_dispose(&c);
}

static void errors(void **state)
{
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: r}\n"
                 "spec: {type: state.redis}\n",
                 "dir/file.yaml:4:14: unknown component type \"state.redis\" (supported: state.trellis");
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: ok}\n"
                 "spec: {type: state.trellis}\n---\nkind: Component\n",
                 "dir/file.yaml:6:1: missing key \"apiVersion\"");
    expect_error("apiVersion: dapr.io/v2alpha1\nkind: Component\nmetadata: {name: r}\n"
                 "spec: {type: state.trellis}\n",
                 "Component needs apiVersion dapr.io/v1alpha1");
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: 'a/b'}\n"
                 "spec: {type: state.trellis}\n",
                 "may only contain");
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: a}\n"
                 "spec: {type: state.trellis, version: v2}\n",
                 "no version \"v2\"");
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: a}\n"
                 "spec:\n  type: state.trellis\n  metadata:\n  - name: x\n    secretKeyRef: {}\n",
                 "secretKeyRef is not supported");
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: a}\n"
                 "spec:\n  type: state.trellis\n  metadata:\n  - {name: x, value: 1}\n"
                 "  - {name: x, value: 2}\n",
                 "given twice");
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: a}\n"
                 "spec: {type: state.trellis, typo: 1}\n",
                 "unknown key \"typo\"");
    expect_error("apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\n"
                 "spec: {topic: t, pubsubname: p}\n",
                 "has no route");
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: a}\n"
                 "spec: {type: state.trellis}\nscopes: app1\n",
                 "expected a sequence");
    expect_error("key: [unclosed\n", "dir/file.yaml:");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(component_with_metadata),
        cmocka_unit_test(documents_scopes_and_kinds),
        cmocka_unit_test(errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
