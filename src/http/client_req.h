/* SPDX-License-Identifier: Apache-2.0 */
/* Private to the HTTP client: the in-flight request object, shared by client.c (its
 * life: start, body writes, retry, end/error/cancel) and client_resp.c (parsing its
 * response). A request lives from tr_http_client_request() until its final callback
 * returns or it is cancelled, plus as long as libuv still holds a write of its head. */
#ifndef TR_HTTP_CLIENT_REQ_H
#define TR_HTTP_CLIENT_REQ_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <llhttp.h>
#include <uv.h>

#include "core/addr.h"
#include "core/buf.h"
#include "core/slice.h"
#include "http/client.h"
#include "http/pool.h"

/* The first attempt and at most one transparent retry. */
#define TR_HTTP_CLIENT_MAX_ATTEMPTS 2
#define TR_HTTP_CLIENT_SPAN_NONE UINT32_MAX

/* A response header being parsed: offsets into the connection's input buffer, which
 * keeps the whole header section until the headers callback has run. */
struct tr_http_client_span {
    uint32_t name_off;
    uint32_t name_len;
    uint32_t value_off; /* TR_HTTP_CLIENT_SPAN_NONE until the first value byte */
    uint32_t value_len;
};

enum tr_http_client_body {
    TR_HTTP_CLIENT_BODY_NONE = 0,
    TR_HTTP_CLIENT_BODY_BUFFER,        /* copied into `out` after the head */
    TR_HTTP_CLIENT_BODY_STREAM_LENGTH, /* caller writes, Content-Length framing */
    TR_HTTP_CLIENT_BODY_STREAM_CHUNKED,
};

struct tr_http_client_req {
    struct tr_http_client *client;
    struct tr_http_client_conn *conn; /* the current attempt's connection; NULL once done */
    const struct tr_http_client_handler *handler;
    void *data;
    struct tr_addr upstream;
    struct tr_buf out;   /* owned: request head and buffered body, replayed on retry */
    struct tr_buf spans; /* owned: a struct tr_http_client_span per header being parsed */
    uv_write_t head_writes[TR_HTTP_CLIENT_MAX_ATTEMPTS]; /* one per attempt; buffer `out` */
    uint64_t body_left; /* TR_HTTP_CLIENT_BODY_STREAM_LENGTH: bytes still to come */
    uint32_t reason_off;
    uint32_t reason_len;
    unsigned head_writes_pending; /* the request is freed only once these are back */
    unsigned attempts;
    enum tr_http_client_body body;
    int deferred_err; /* failure found inside a parser callback, acted on after it */
    bool idempotent;
    bool is_head;
    bool conn_close;    /* the request asked for Connection: close */
    bool stream_ended;  /* tr_http_client_req_end() was called */
    bool chunk_written; /* a streamed byte left: the request can no longer be replayed */
    bool sent_all;      /* every request byte has been handed to libuv */
    bool write_failed;  /* a write on this attempt reported the peer gone */
    /* Parse state of the current attempt's response. */
    bool resp_started; /* a response byte arrived */
    bool headers_done; /* the current message's header section is complete */
    bool headers_seen; /* the headers callback ran */
    bool interim;      /* the current message is a 1xx */
    bool msg_done;     /* the current message is complete */
    bool keep_alive;   /* llhttp's verdict for the completed message */
    bool field_open;   /* inside a header name */
    bool kick;         /* resumed after a consumer pause: run the parser even without
                          input, it may owe a message-complete */
    bool te_seen;
    bool te_bad;
    /* Consumer state. */
    bool paused;
    bool cancelled;
    bool done; /* the end/error callback is running or has run */
};

/* client.c: finishing a request. Each detaches and closes or pools its connection,
 * runs at most one final callback, and frees the request. */
void tr_http_client__complete(struct tr_http_client_req *req); /* end callback; may pool */
void tr_http_client__fail(struct tr_http_client_req *req, int err, unsigned flags);
void tr_http_client__teardown(struct tr_http_client_req *req); /* cancelled: no callback */
/* The attempt's connection failed with `err` (UV_EOF, a socket error): retries once on
 * a fresh connection if tr_http_client_retry_safe() allows, else fails the request. */
void tr_http_client__attempt_failed(struct tr_http_client_req *req, int err);

/* client_resp.c */
extern const llhttp_settings_t tr_http_client__parser_settings;
/* Clears the per-message parse state (a 1xx and the final response each get one). */
void tr_http_client__reset_message(struct tr_http_client_req *req);

static inline bool tr_http_client__is_tchar(unsigned char c)
{
    /* RFC 9110 §5.6.2 */
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static inline bool tr_http_client__is_token(struct tr_slice s)
{
    if (s.len == 0) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (!tr_http_client__is_tchar((unsigned char)s.ptr[i])) {
            return false;
        }
    }
    return true;
}

/* Field values may hold HTAB, visible ASCII and obs-text, nothing else (RFC 9110 §5.5):
 * a CR or LF would let a caller smuggle a header or a second request. */
static inline bool tr_http_client__is_field_value(struct tr_slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return false;
        }
    }
    return true;
}

#endif
