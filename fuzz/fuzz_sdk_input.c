/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes what libtrellis parses from the outside: the first byte picks the parser, the
 * rest is its input.
 *   0: a traceparent header (src/sdk/trace.c); a parsed value must format and parse
 *      back to the same trace
 *   1: a JSON body as handlers and event deliveries read it (trellis_json_parse); a
 *      parsed value must dump and parse back to an equal value
 *   2: a route pattern as trellis_app_route() takes it ({name} conversion, router) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "sdk/trace.h"
#include "trellis/trellis.h"

static void fuzz_trace(const char *p, size_t n)
{
    struct tr_trace t;
    if (tr_trace_parse(tr_slice(p, n), &t) != 0) {
        return;
    }
    char out[TR_TRACEPARENT_LEN + 1];
    tr_trace_format(&t, out);
    struct tr_trace back;
    TR_ASSERT(tr_trace_parse(tr_slice_cstr(out), &back) == 0);
    TR_ASSERT(strcmp(back.trace_id, t.trace_id) == 0);
    TR_ASSERT(strcmp(back.span_id, t.span_id) == 0);
    TR_ASSERT(back.flags == t.flags);
}

static void fuzz_json(const char *p, size_t n)
{
    struct trellis_json *j = trellis_json_parse(p, n, NULL, 0);
    if (j == NULL) {
        return;
    }
    char *text = trellis_json_dump(j);
    TR_ASSERT(text != NULL);
    struct trellis_json *back = trellis_json_parse(text, strlen(text), NULL, 0);
    TR_ASSERT(back != NULL);
    TR_ASSERT(trellis_json_typeof(back) == trellis_json_typeof(j));
    trellis_json_free(back);
    trellis_free(text);
    trellis_json_free(j);
}

static void handler(struct trellis_req *req, void *data)
{
    (void)req;
    (void)data;
}

static void fuzz_pattern(const char *p, size_t n)
{
    char *pattern = tr_xstrndup(p, n);
    struct trellis_app *app = trellis_app_new("fuzz");
    (void)trellis_app_route(app, "GET", pattern, handler, NULL);
    trellis_app_free(app);
    tr_free_null(&pattern);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0:
        fuzz_trace(p, n);
        break;
    case 1:
        fuzz_json(p, n);
        break;
    default:
        fuzz_pattern(p, n);
        break;
    }
    return 0;
}
