/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes routing-rule expressions (src/sidecar/cel.c): each input is "<expression>\n<event
 * JSON>". The expression comes from an app's /dapr/subscribe answer or a Subscription
 * file; compiling must refuse what it cannot parse with a reason, and evaluating any
 * compiled expression against any event must neither crash nor leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/mem.h"
#include "sidecar/cel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *nl = memchr(p, '\n', size);
    size_t n = nl ? (size_t)(nl - p) : size;
    char *src = tr_xstrndup(p, n);
    struct tr_cel *e = NULL;
    char why[256] = "";
    if (strlen(src) == n && tr_cel_compile(src, &e, why, sizeof(why)) == 0) {
        json_t *ev =
            nl ? json_loadb(nl + 1, size - n - 1, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL)
               : NULL;
        if (ev == NULL) {
            ev = json_object();
        }
        (void)tr_cel_match(e, ev);
        json_decref(ev);
        tr_cel_free(e);
    } else if (e != NULL || (strlen(src) == n && why[0] == '\0')) {
        abort(); /* a refusal always says why and returns nothing */
    }
    tr_free_null(&src);
    return 0;
}
