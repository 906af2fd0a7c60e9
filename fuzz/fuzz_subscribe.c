/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes the parser of an app's GET /dapr/subscribe answer (src/sidecar/subscription.c):
 * any body must give a list of usable subscriptions plus a reason for every item left
 * out, and each subscription must route an event (its CEL rules evaluated) and apply its
 * metadata to a delivery policy without crashing or leaking. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "sidecar/subscription.h"

static json_t *event;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (event == NULL) {
        event = json_loads("{\"specversion\":\"1.0\",\"type\":\"order\",\"data\":{\"n\":2,"
                           "\"tags\":[\"a\"]}}",
                           JSON_DECODE_INT_AS_REAL, NULL);
    }
    struct tr_ps_spec *specs = NULL;
    size_t n = 0;
    struct tr_buf warnings;
    tr_buf_init(&warnings);
    if (tr_ps_subscribe_parse(tr_slice((const char *)data, size), &specs, &n, &warnings) == 0) {
        for (size_t i = 0; i < n; i++) {
            const struct tr_ps_spec *s = &specs[i];
            if (s->nrules == 0 || s->pubsub[0] == '\0' || s->topic[0] == '\0') {
                abort(); /* such items must have been left out */
            }
            const char *route = tr_ps_spec_route(s, event);
            if (route != NULL && route[0] != '/') {
                abort();
            }
            struct tr_ps_policy p;
            tr_ps_policy_init(&p);
            const char *key;
            json_t *v;
            char why[256];
            json_object_foreach(s->metadata, key, v)
            {
                if (tr_ps_policy_set(&p, key, json_string_value(v), why, sizeof(why)) < 0) {
                    abort(); /* checked when parsed */
                }
            }
        }
        tr_ps_specs_free(specs, n);
    } else if (warnings.len == 0) {
        abort(); /* a refusal says why */
    }
    tr_buf_dispose(&warnings);
    return 0;
}
