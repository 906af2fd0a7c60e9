/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the sidecar's Dapr resource parser (components.c): the input is
 * a --components file's text — YAML documents separated by `---` lines, Components and
 * Subscriptions, scopes, metadata lists and maps, routes and rules. Each input is parsed
 * twice into one set (the second time must add the same again or fail the same way).
 * Aborts (a finding) if a failed parse changes the set, a success yields a component or
 * subscription missing a required field, or an error message is empty. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/mem.h"
#include "sidecar/components.h"

static void check(const struct tr_sidecar_components *c)
{
    for (size_t i = 0; i < c->ncomps; i++) {
        const struct tr_sidecar_component *comp = &c->comps[i];
        TR_ASSERT(comp->name != NULL && comp->name[0] != '\0' && comp->type != NULL);
        TR_ASSERT(comp->version != NULL && comp->file != NULL);
        TR_ASSERT(comp->kind < TR_SIDECAR_COMP_KIND_COUNT && comp->ctype < TR_SIDECAR_TYPE_COUNT);
        for (size_t k = 0; k < comp->nmeta; k++) {
            TR_ASSERT(comp->meta[k].name != NULL && comp->meta[k].value != NULL);
        }
    }
    for (size_t i = 0; i < c->nsubs; i++) {
        const struct tr_sidecar_subscription *s = &c->subs[i];
        TR_ASSERT(s->name != NULL && s->topic != NULL && s->pubsubname != NULL);
        TR_ASSERT(s->route != NULL || s->nrules > 0);
        for (size_t k = 0; k < s->nrules; k++) {
            TR_ASSERT(s->rules[k].path != NULL && s->rules[k].match != NULL);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tr_sidecar_components c;
    tr_sidecar_components_init(&c);
    for (int round = 0; round < 2; round++) {
        size_t ncomps = c.ncomps;
        size_t nsubs = c.nsubs;
        struct tr_conf_err err;
        err.msg[0] = '\0';
        int rc = tr_sidecar_components_parse(&c, "fuzz.yaml", (const char *)data, size, "app1",
                                             &err);
        if (rc != 0) {
            TR_ASSERT(c.ncomps == ncomps && c.nsubs == nsubs);
            TR_ASSERT(err.msg[0] != '\0');
            break;
        }
        check(&c);
    }
    tr_sidecar_components_dispose(&c);
    return 0;
}
