/* SPDX-License-Identifier: Apache-2.0 */
/* Errors. Internal functions return 0 or a negative errno (libuv's UV_E* codes are the
 * same values on Linux). Errors that reach HTTP clients go through the one table in
 * errors.c, which gives each its status and stable JSON code; handlers pick an entry
 * and add a message naming the problem, they never invent status lines. */
#ifndef TR_CORE_ERRORS_H
#define TR_CORE_ERRORS_H

#include "core/buf.h"

/* Names a negative errno (or libuv error): "connection refused". */
const char *tr_strerror(int err);

enum tr_err {
    TR_E_BAD_REQUEST = 0,     /* 400 bad_request: malformed HTTP framing */
    TR_E_BAD_JSON,            /* 400 bad_json */
    TR_E_BAD_PARAM,           /* 400 bad_param: a named field or query value is invalid */
    TR_E_NOT_FOUND,           /* 404 not_found */
    TR_E_METHOD_NOT_ALLOWED,  /* 405 method_not_allowed */
    TR_E_REQUEST_TIMEOUT,     /* 408 request_timeout */
    TR_E_CONFLICT,            /* 409 conflict */
    TR_E_LENGTH_REQUIRED,     /* 411 length_required */
    TR_E_BODY_TOO_LARGE,      /* 413 body_too_large */
    TR_E_URI_TOO_LONG,        /* 414 uri_too_long */
    TR_E_EXPECTATION_FAILED,  /* 417 expectation_failed */
    TR_E_TOO_MANY_REQUESTS,   /* 429 too_many_requests */
    TR_E_HEADERS_TOO_LARGE,   /* 431 headers_too_large */
    TR_E_TOO_MANY_HEADERS,    /* 431 too_many_headers */
    TR_E_INTERNAL,            /* 500 internal */
    TR_E_NOT_IMPLEMENTED,     /* 501 not_implemented */
    TR_E_BAD_GATEWAY,         /* 502 bad_gateway */
    TR_E_UNAVAILABLE,         /* 503 unavailable */
    TR_E_GATEWAY_TIMEOUT,     /* 504 gateway_timeout */
    TR_E_VERSION_UNSUPPORTED, /* 505 http_version_not_supported */
    TR_E_CIRCUIT_OPEN,        /* 503 circuit_open: a proxy cluster's breaker is open */
    TR_E_OVERLOADED,          /* 503 overloaded: a proxy cluster's connection/request limit */
    TR_E_COUNT
};

struct tr_err_info {
    int status;
    const char *code;    /* stable, machine-readable: "headers_too_large" */
    const char *message; /* default human message */
};

const struct tr_err_info *tr_err_info(enum tr_err e);

/* Appends {"error":{"code":"…","message":"…"}} with `message` JSON-escaped; a NULL
 * message uses the table's default. */
void tr_err_json(struct tr_buf *out, enum tr_err e, const char *message);

/* Appends `s` to `out` as the body of a JSON string (without quotes), escaped. */
void tr_json_escape(struct tr_buf *out, struct tr_slice s);

#endif
