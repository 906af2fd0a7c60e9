/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the trellis up manifest parser: every input is parsed as a
 * trellis.yaml. A manifest that parses must also survive what trellis up does with it
 * next: its gateway section is emitted and re-checked with the proxy's parser (which
 * must accept it, since the parse already did with other addresses), and every
 * service's command words go through ${VAR} expansion with the replica's variables.
 * A failure must come with a message naming the file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "up/gateway.h"
#include "up/manifest.h"
#include "up/shellwords.h"

static void expand_commands(const struct tr_up_manifest *m)
{
    for (size_t i = 0; i < m->nservices; i++) {
        const struct tr_up_service_def *s = &m->services[i];
        const char *vars[TR_UP_MAX_ENV + 8];
        size_t n = 0;
        vars[n++] = "APP_PORT=8081";
        vars[n++] = "APP_ID=x";
        vars[n++] = "TRELLIS_REPLICA=1";
        vars[n++] = "TRELLIS_ADDR=127.0.0.1:8500";
        vars[n++] = "DAPR_HTTP_PORT=3500";
        for (size_t e = 0; e < s->nenv; e++) {
            vars[n++] = s->env[e];
        }
        vars[n] = NULL;
        TR_ASSERT(s->argc >= 1 && s->argv[s->argc] == NULL);
        struct tr_buf out;
        tr_buf_init(&out);
        for (size_t a = 0; a < s->argc; a++) {
            const char *name;
            size_t len;
            /* The parser checked every ${NAME}: expansion cannot fail now. */
            TR_ASSERT(tr_up_expand_vars(s->argv[a], vars, &out, &name, &len) == 0);
        }
        tr_buf_dispose(&out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        tr_log_set_level(TR_LOG_LEVEL_ERROR);
        quiet = true;
    }
    struct tr_up_manifest *m = NULL;
    struct tr_conf_err err = {""};
    int rc = tr_up_manifest_parse("fuzz.yaml", "/srv/app", (const char *)data, size, &m, &err);
    if (rc != 0) {
        TR_ASSERT(m == NULL);
        TR_ASSERT(strncmp(err.msg, "fuzz.yaml:", 10) == 0);
        return 0;
    }
    TR_ASSERT(m->nservices <= TR_UP_MAX_SERVICES);
    expand_commands(m);
    if (m->gateway != NULL) {
        struct tr_buf yaml;
        tr_buf_init(&yaml);
        TR_ASSERT(tr_up_gateway_yaml(m, "127.0.0.1:18080", "127.0.0.1:19901",
                                     "http://127.0.0.1:18500", &yaml, &err) == 0);
        tr_buf_dispose(&yaml);
    }
    tr_up_manifest_free(m);
    return 0;
}
