/* SPDX-License-Identifier: Apache-2.0 */
/* Publishing through the sidecar: POST /v1.0/publish/{pubsub}/{topic}. With publish
 * options the client builds the CloudEvent itself and sends it as
 * application/cloudevents+json, which Dapr sidecars take as the event (keeping its id,
 * type and source and filling in topic, pubsubname and trace fields). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "sdk/client.h"
#include "sdk/sdk.h"
#include "sdk/trace.h"

static void uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    tr_sdk_random(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

int trellis_publish_raw(struct trellis_sidecar *sc, const char *pubsub, const char *topic,
                        const char *content_type, const void *data, size_t len)
{
    tr_sdk_clear_error();
    if (pubsub == NULL || pubsub[0] == '\0' || topic == NULL || topic[0] == '\0') {
        return tr_sdk_fail(-EINVAL, "trellis_publish: pubsub and topic are required");
    }
    struct tr_buf target;
    tr_buf_init(&target);
    tr_buf_append_slice(&target, TR_SLICE_LIT("/v1.0/publish/"));
    tr_sdk_pct_encode(&target, pubsub, false);
    tr_buf_append(&target, "/", 1);
    tr_sdk_pct_encode(&target, topic, true); /* topics may contain '/' */
    tr_buf_append(&target, "", 1);
    struct tr_sdk_call_spec spec = {
        .method = "POST",
        .target = tr_buf_data(&target),
        .content_type = content_type != NULL ? content_type : "text/plain",
        .body = data != NULL ? data : "",
        .body_len = data != NULL ? len : 0,
    };
    struct trellis_response *resp = NULL;
    int rc = tr_sdk_call(sc, &spec, &resp);
    if (rc == 0) {
        int status = trellis_response_status(resp);
        if (status < 200 || status > 299) {
            char what[300];
            snprintf(what, sizeof(what), "publish to %s/%s", pubsub, topic);
            rc = tr_sdk_unexpected(resp, what);
        }
    }
    trellis_response_free(resp);
    tr_buf_dispose(&target);
    return rc;
}

static json_t *build_cloudevent(const struct trellis_json *data,
                                const struct trellis_publish_opts *opts)
{
    char id[37];
    if (opts->id == NULL) {
        uuid4(id);
    }
    const char *source = opts->source != NULL ? opts->source : tr_sdk_app_id();
    json_t *ce = json_pack("{s:s, s:s, s:s, s:s}", "specversion", "1.0", "id",
                           opts->id != NULL ? opts->id : id, "type",
                           opts->type != NULL ? opts->type : "com.dapr.event.sent",
                           "datacontenttype", "application/json");
    if (ce == NULL) {
        return NULL;
    }
    if (source != NULL) {
        json_object_set_new(ce, "source", json_string(source));
    }
    if (opts->subject != NULL) {
        json_object_set_new(ce, "subject", json_string(opts->subject));
    }
    json_object_set(ce, "data", (json_t *)data);
    return ce;
}

int trellis_publish(struct trellis_sidecar *sc, const char *pubsub, const char *topic,
                    const struct trellis_json *data, const struct trellis_publish_opts *opts)
{
    tr_sdk_clear_error();
    if (data == NULL) {
        return tr_sdk_fail(-EINVAL, "trellis_publish: no data");
    }
    const char *content_type = "application/json";
    char *text;
    if (opts != NULL) {
        json_t *ce = build_cloudevent(data, opts);
        if (ce == NULL) {
            return tr_sdk_fail(-EINVAL, "trellis_publish: id, type, source and subject must be "
                                        "UTF-8");
        }
        text = trellis_json_dump((struct trellis_json *)ce);
        json_decref(ce);
        content_type = "application/cloudevents+json";
    } else {
        text = trellis_json_dump(data);
    }
    if (text == NULL) {
        return tr_sdk_fail(-EINVAL, "trellis_publish: the data cannot be serialised");
    }
    int rc = trellis_publish_raw(sc, pubsub, topic, content_type, text, strlen(text));
    trellis_free(text);
    return rc;
}
