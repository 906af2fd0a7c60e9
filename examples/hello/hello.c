/* SPDX-License-Identifier: Apache-2.0 */
/* hello: the complete example service of docs/sdk.md.
 *   GET  /hello/{name}   greets, counts visits per name in the state store, publishes
 *                        "greeted"
 *   POST /echo           calls another app's /echo through the sidecar (?app=ID)
 * and logs every "greeted" event it receives. */
#include <stdio.h>

#include <trellis/trellis.h>

/* Adds one to the visit counter (the state update may call this more than once). */
static int add_visit(struct trellis_json **value, void *data)
{
    int64_t n = 0;
    trellis_json_get_int(*value, "visits", &n);
    trellis_json_free(*value);
    *value = trellis_json_pack("{s:I}", "visits", n + 1);
    *(int64_t *)data = n + 1;
    return TRELLIS_STATE_WRITE;
}

static void hello(struct trellis_req *req, void *data)
{
    const char *name = trellis_req_param(req, "name");
    struct trellis_sidecar *sc = trellis_req_sidecar(req);
    char key[300];
    snprintf(key, sizeof(key), "visits-%s", name);
    int64_t visits = 0;
    int rc = trellis_state_update(sc, "statestore", key, add_visit, &visits);
    if (rc != 0) {
        trellis_reply_error(req, 503, "unavailable", "state: %s", trellis_last_error());
        return;
    }
    struct trellis_json *event = trellis_json_pack("{s:s, s:I}", "name", name, "visits", visits);
    if (trellis_publish(sc, "pubsub", "greeted", event, NULL) != 0) {
        trellis_log(TRELLIS_LOG_WARN, "publish failed: %s", trellis_last_error());
    }
    trellis_json_free(event);
    trellis_reply_json(
        req, 200,
        trellis_json_pack("{s:s++, s:I}", "greeting", "Hello, ", name, "!", "visits", visits));
}

static void echo_via(struct trellis_req *req, void *data)
{
    struct trellis_json *body = trellis_req_json(req); /* replies 400 itself if not JSON */
    const char *app = trellis_req_query(req, "app");
    if (body == NULL) {
        return;
    }
    if (app == NULL) {
        trellis_reply_json(req, 200, trellis_json_ref(body)); /* no app: echo it ourselves */
        return;
    }
    struct trellis_response *resp = NULL;
    if (trellis_invoke(trellis_req_sidecar(req), app, "POST", "/echo", body, NULL, &resp) != 0) {
        trellis_reply_error(req, 502, "bad_gateway", "%s", trellis_last_error());
        return;
    }
    size_t len;
    const char *text = trellis_response_body(resp, &len);
    trellis_reply(req, trellis_response_status(resp), trellis_response_header(resp, "Content-Type"),
                  text, len);
    trellis_response_free(resp);
}

static enum trellis_event_status on_greeted(const struct trellis_event *ev, void *data)
{
    struct trellis_json *d = trellis_event_data(ev);
    trellis_log(TRELLIS_LOG_INFO, "event %s: %s has visited %lld time(s)", trellis_event_id(ev),
                trellis_json_get_str(d, "name"),
                (long long)trellis_json_int_value(trellis_json_get(d, "visits")));
    return TRELLIS_EVENT_SUCCESS;
}

int main(void)
{
    struct trellis_app *app = trellis_app_new("hello");
    trellis_app_route(app, "GET", "/hello/{name}", hello, NULL);
    trellis_app_route(app, "POST", "/echo", echo_via, NULL);
    trellis_app_subscribe(app, "pubsub", "greeted", NULL, on_greeted, NULL);
    int rc = trellis_app_run(app); /* until SIGTERM */
    trellis_app_free(app);
    return rc;
}
