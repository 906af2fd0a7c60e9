/* SPDX-License-Identifier: Apache-2.0 */
/* The control API of trellis up (see control.h): the project's HTTP server engine on
 * trellis up's own loop, with a router of four routes. */
#include "up/control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/errors.h"
#include "up/supervisor.h"

static struct tr_up *up_of(struct tr_http_req *req)
{
    return req->server->data;
}

static void send_json(struct tr_http_req *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    struct tr_buf out;
    tr_buf_init(&out);
    tr_buf_append(&out, text, strlen(text));
    tr_buf_append(&out, "\n", 1);
    free(text);
    tr_http_resp_send(req, status, TR_SLICE_LIT("application/json"), tr_buf_slice(&out));
    tr_buf_dispose(&out);
}

void tr_up__control_reply(struct tr_http_req *req, int status, json_t *body)
{
    req->on_body_end = NULL;
    req->user = NULL;
    send_json(req, status, body);
}

static void on_status(struct tr_http_req *req)
{
    send_json(req, 200, tr_up__status(up_of(req)));
}

/* The service named by the :name parameter, or NULL after answering 404. */
static struct tr_up_svc *find_service(struct tr_http_req *req)
{
    struct tr_up *up = up_of(req);
    struct tr_slice name = tr_http_req_param(req, "name");
    for (size_t i = 0; i < up->nsvcs; i++) {
        if (tr_slice_eq(name, tr_slice_cstr(up->svcs[i].def->name))) {
            return &up->svcs[i];
        }
    }
    char msg[200];
    snprintf(msg, sizeof(msg), "no service \"%.*s\" in %s", (int)(name.len > 64 ? 64 : name.len),
             name.ptr, up->m->file);
    tr_http_resp_error(req, TR_E_NOT_FOUND, msg);
    return NULL;
}

/* Operations only run once everything has started and until the stop begins. */
static bool check_running(struct tr_http_req *req)
{
    struct tr_up *up = up_of(req);
    if (up->phase == TR_UP_PHASE_RUNNING) {
        return true;
    }
    tr_http_resp_error(req, TR_E_UNAVAILABLE,
                       up->phase < TR_UP_PHASE_RUNNING ? "trellis up is still starting"
                                                       : "trellis up is stopping");
    return false;
}

static void on_abort(struct tr_http_req *req, bool complete)
{
    struct tr_up_svc *svc = req->user;
    (void)complete;
    if (svc != NULL) {
        tr_up__op_detach_req(svc, req);
    }
}

static void busy(struct tr_http_req *req, struct tr_up_svc *svc)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "%s of %s is in progress; try again when it is done",
             svc->op->kind == TR_UP_OP_SCALE ? "scaling" : "a rollout", svc->def->name);
    tr_http_resp_error(req, TR_E_CONFLICT, msg);
}

static void wait_for_op(struct tr_http_req *req, struct tr_up_svc *svc)
{
    if (svc->op == NULL) {
        return; /* answered already */
    }
    req->user = svc;
    req->on_body_end = on_abort;
}

static void on_scale(struct tr_http_req *req)
{
    struct tr_up_svc *svc = find_service(req);
    if (svc == NULL || !check_running(req)) {
        return;
    }
    json_error_t jerr;
    json_t *body =
        json_loadb(tr_buf_data(&req->body) ? tr_buf_data(&req->body) : "", req->body.len, 0, &jerr);
    if (body == NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg), "request body is not valid JSON: %s", jerr.text);
        tr_http_resp_error(req, TR_E_BAD_JSON, msg);
        return;
    }
    json_t *n = json_object_get(body, "replicas");
    if (!json_is_integer(n) || json_integer_value(n) < 0 ||
        json_integer_value(n) > TR_UP_MAX_REPLICAS) {
        json_decref(body);
        tr_http_resp_error(req, TR_E_BAD_PARAM, "replicas: expected an integer between 0 and 64");
        return;
    }
    unsigned want = (unsigned)json_integer_value(n);
    json_decref(body);
    if (tr_up__op_busy(svc)) {
        busy(req, svc);
        return;
    }
    TR_ASSERT(tr_up__scale(svc, want, req) == 0);
    wait_for_op(req, svc);
}

static void on_rollout(struct tr_http_req *req)
{
    struct tr_up_svc *svc = find_service(req);
    if (svc == NULL || !check_running(req)) {
        return;
    }
    if (tr_up__op_busy(svc)) {
        busy(req, svc);
        return;
    }
    int rc = tr_up__rollout(svc, req);
    if (rc == -ENOENT) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s has no running replica to roll out (scale it up first)",
                 svc->def->name);
        tr_http_resp_error(req, TR_E_CONFLICT, msg);
        return;
    }
    wait_for_op(req, svc);
}

static void on_down(struct tr_http_req *req)
{
    struct tr_up *up = up_of(req);
    send_json(req, 202, json_pack("{s:b, s:i}", "stopping", 1, "pid", (int)getpid()));
    tr_up__stop(up, "trellis down");
}

/* .trellis/control, written whole under a temporary name and renamed into place so that
 * a reader never sees half of it. */
static int write_control_file(struct tr_up *up)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", up->control_path);
    json_t *doc = json_pack("{s:i, s:s, s:s, s:s}", "pid", (int)getpid(), "addr", up->control_addr,
                            "manifest", up->m->file, "name", up->m->name);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
    } else {
        size_t len = strlen(text);
        if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
            rc = -EIO;
        }
        close(fd);
    }
    free(text);
    if (rc == 0 && rename(tmp, up->control_path) != 0) {
        rc = -errno;
    }
    return rc;
}

int tr_up__control_open(struct tr_up *up)
{
    tr_router_init(&up->router);
    int rc = tr_router_add(&up->router, "GET", "/v1/status", on_status, NULL, TR_ROUTE_BUFFERED);
    rc |= tr_router_add(&up->router, "POST", "/v1/services/:name/scale", on_scale, NULL,
                        TR_ROUTE_BUFFERED);
    rc |= tr_router_add(&up->router, "POST", "/v1/services/:name/rollout", on_rollout, NULL,
                        TR_ROUTE_BUFFERED);
    rc |= tr_router_add(&up->router, "POST", "/v1/down", on_down, NULL, TR_ROUTE_BUFFERED);
    TR_ASSERT(rc == 0);
    struct tr_addr addr;
    TR_ASSERT(tr_addr_parse("127.0.0.1:0", &addr) == 0);
    int fd = tr_listen_socket(&addr, 64);
    if (fd < 0) {
        tr_router_dispose(&up->router);
        return fd;
    }
    tr_addr_format((const struct sockaddr *)&addr.ss, up->control_addr, sizeof(up->control_addr));
    struct tr_http_limits limits;
    tr_http_limits_default(&limits);
    limits.max_body_bytes = 64 * 1024;
    rc = tr_http_server_init(&up->control, &up->loop, fd, &up->router, &limits);
    if (rc != 0) {
        tr_router_dispose(&up->router);
        return rc;
    }
    up->control.data = up;
    up->control.name = "trellis-up";
    up->control_open = true;
    rc = write_control_file(up);
    if (rc != 0) {
        tr_up__control_close(up);
    }
    return rc;
}

void tr_up__control_close(struct tr_up *up)
{
    if (!up->control_open) {
        return;
    }
    up->control_open = false;
    unlink(up->control_path);
    tr_http_server_close(&up->control);
}
