/* SPDX-License-Identifier: Apache-2.0 */
/* The table of client-facing errors and errno naming. */
#include "core/errors.h"

#include <string.h>
#include <uv.h>

static const struct tr_err_info err_table[TR_E_COUNT] = {
    [TR_E_BAD_REQUEST] = {400, "bad_request", "malformed request"},
    [TR_E_BAD_JSON] = {400, "bad_json", "request body is not valid JSON"},
    [TR_E_BAD_PARAM] = {400, "bad_param", "invalid parameter"},
    [TR_E_NOT_FOUND] = {404, "not_found", "no such resource"},
    [TR_E_METHOD_NOT_ALLOWED] = {405, "method_not_allowed", "method not allowed"},
    [TR_E_REQUEST_TIMEOUT] = {408, "request_timeout", "request not received in time"},
    [TR_E_CONFLICT] = {409, "conflict", "conflict"},
    [TR_E_LENGTH_REQUIRED] = {411, "length_required", "Content-Length required"},
    [TR_E_BODY_TOO_LARGE] = {413, "body_too_large", "request body too large"},
    [TR_E_URI_TOO_LONG] = {414, "uri_too_long", "request target too long"},
    [TR_E_EXPECTATION_FAILED] = {417, "expectation_failed", "unsupported Expect value"},
    [TR_E_TOO_MANY_REQUESTS] = {429, "too_many_requests", "rate limit exceeded"},
    [TR_E_HEADERS_TOO_LARGE] = {431, "headers_too_large", "request headers too large"},
    [TR_E_TOO_MANY_HEADERS] = {431, "too_many_headers", "too many request headers"},
    [TR_E_INTERNAL] = {500, "internal", "internal error"},
    [TR_E_NOT_IMPLEMENTED] = {501, "not_implemented", "not implemented"},
    [TR_E_BAD_GATEWAY] = {502, "bad_gateway", "bad gateway"},
    [TR_E_UNAVAILABLE] = {503, "unavailable", "service unavailable"},
    [TR_E_GATEWAY_TIMEOUT] = {504, "gateway_timeout", "upstream timed out"},
    [TR_E_VERSION_UNSUPPORTED] = {505, "http_version_not_supported",
                                  "HTTP version not supported"},
    [TR_E_CIRCUIT_OPEN] = {503, "circuit_open", "circuit breaker is open"},
    [TR_E_OVERLOADED] = {503, "overloaded", "upstream capacity limit reached"},
};

const char *tr_strerror(int err)
{
    return uv_strerror(err);
}

const struct tr_err_info *tr_err_info(enum tr_err e)
{
    if ((unsigned)e >= TR_E_COUNT) {
        e = TR_E_INTERNAL;
    }
    return &err_table[e];
}

void tr_json_escape(struct tr_buf *out, struct tr_slice s)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
            continue;
        }
        tr_buf_append(out, s.ptr + start, i - start);
        start = i + 1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            char two[2] = {'\\', (char)c};
            tr_buf_append(out, two, 2);
        } else if (c == '\n') {
            tr_buf_append(out, "\\n", 2);
        } else {
            tr_buf_append(out, esc, 6);
        }
    }
    tr_buf_append(out, s.ptr + start, s.len - start);
}

void tr_err_json(struct tr_buf *out, enum tr_err e, const char *message)
{
    const struct tr_err_info *info = tr_err_info(e);
    tr_buf_append_slice(out, TR_SLICE_LIT("{\"error\":{\"code\":\""));
    tr_buf_append(out, info->code, strlen(info->code));
    tr_buf_append_slice(out, TR_SLICE_LIT("\",\"message\":\""));
    tr_json_escape(out, tr_slice_cstr(message ? message : info->message));
    tr_buf_append_slice(out, TR_SLICE_LIT("\"}}"));
}
