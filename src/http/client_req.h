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
    struct tr_http_client_req *next_free; /* on the client's free list */
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

/* RFC 9110 §5.6.2 tchar, and field-value bytes (RFC 9110 §5.5: HTAB, visible ASCII,
 * obs-text), as one lookup table (client.c): bit 0 = tchar, bit 1 = field-value byte. */
extern const unsigned char tr_http_client__ctype[256];
#define TR_HTTP_CLIENT_TCHAR 1u
#define TR_HTTP_CLIENT_VCHAR 2u

static inline bool tr_http_client__is_tchar(unsigned char c)
{
    return (tr_http_client__ctype[c] & TR_HTTP_CLIENT_TCHAR) != 0;
}

static inline bool tr_http_client__is_token(struct tr_slice s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    const unsigned char *t = tr_http_client__ctype;
    unsigned char ok = s.len > 0 ? TR_HTTP_CLIENT_TCHAR : 0;
    size_t i = 0;
    for (; i + 4 <= s.len; i += 4) {
        ok &= t[p[i]] & t[p[i + 1]] & t[p[i + 2]] & t[p[i + 3]];
    }
    for (; i < s.len; i++) {
        ok &= t[p[i]];
    }
    return ok != 0;
}

/* Does any of the eight bytes fall below 0x20 or equal DEL? Exact as a whole. */
static inline bool tr_http_client__ctl8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t del = w ^ (0x7f * ones);
    return ((((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & (0x80 * ones)) != 0;
}

/* Field values may hold HTAB, visible ASCII and obs-text, nothing else (RFC 9110 §5.5):
 * a CR or LF would let a caller smuggle a header or a second request. Eight bytes at a
 * time while no byte is below 0x20 or DEL (the usual case: only HTAB is then looked
 * at again), the last eight overlapping; shorter values byte by byte. */
static inline bool tr_http_client__is_field_value(struct tr_slice s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0;
    if (s.len >= 8) {
        uint64_t w;
        for (; i + 8 <= s.len; i += 8) {
            memcpy(&w, p + i, sizeof(w));
            if (tr_http_client__ctl8(w)) {
                break;
            }
        }
        if (i + 8 > s.len) {
            memcpy(&w, p + s.len - 8, sizeof(w));
            if (!tr_http_client__ctl8(w)) {
                return true;
            }
            i = s.len - 8;
        }
    }
    unsigned char ok = TR_HTTP_CLIENT_VCHAR;
    for (; i < s.len; i++) {
        ok &= tr_http_client__ctype[p[i]];
    }
    return ok != 0;
}

#endif
