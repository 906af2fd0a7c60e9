/* SPDX-License-Identifier: Apache-2.0 */
/* Service invocation through the sidecar: METHOD /v1.0/invoke/{app-id}/method/{path}.
 * The path (and its query string) is passed on as the caller wrote it. */
#include <errno.h>
#include <string.h>

#include "sdk/client.h"
#include "sdk/sdk.h"

int trellis_invoke_raw(struct trellis_sidecar *sc, const char *app_id, const char *method,
                       const char *path, const void *body, size_t len,
                       const struct trellis_call_opts *opts, struct trellis_response **out)
{
    tr_sdk_clear_error();
    *out = NULL;
    if (app_id == NULL || app_id[0] == '\0' || method == NULL || path == NULL) {
        return tr_sdk_fail(-EINVAL, "trellis_invoke: app id, method and path are required");
    }
    struct tr_buf target;
    tr_buf_init(&target);
    tr_buf_append_slice(&target, TR_SLICE_LIT("/v1.0/invoke/"));
    tr_sdk_pct_encode(&target, app_id, false);
    tr_buf_append_slice(&target, TR_SLICE_LIT("/method/"));
    while (*path == '/') {
        path++;
    }
    tr_buf_append(&target, path, strlen(path) + 1);
    struct tr_sdk_call_spec spec = {
        .method = method,
        .target = tr_buf_data(&target),
        .content_type =
            body != NULL ? (opts != NULL && opts->content_type != NULL ? opts->content_type
                                                                       : "application/octet-stream")
                         : NULL,
        .body = body,
        .body_len = len,
        .headers = opts != NULL ? opts->headers : NULL,
        .timeout_ms = opts != NULL ? opts->timeout_ms : 0,
    };
    int rc = tr_sdk_call(sc, &spec, out);
    tr_buf_dispose(&target);
    return rc;
}

int trellis_invoke(struct trellis_sidecar *sc, const char *app_id, const char *method,
                   const char *path, const struct trellis_json *body,
                   const struct trellis_call_opts *opts, struct trellis_response **out)
{
    *out = NULL;
    char *text = NULL;
    if (body != NULL && (text = trellis_json_dump(body)) == NULL) {
        return tr_sdk_fail(-EINVAL, "trellis_invoke: the body cannot be serialised");
    }
    struct trellis_call_opts o = opts != NULL ? *opts : (struct trellis_call_opts){0};
    o.content_type = "application/json";
    int rc = trellis_invoke_raw(sc, app_id, method, path, text, text != NULL ? strlen(text) : 0, &o,
                                out);
    trellis_free(text);
    return rc;
}
