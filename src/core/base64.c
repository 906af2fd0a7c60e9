/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 encoding and strict decoding. */
#include "core/base64.h"

#include <errno.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void tr_base64_encode(struct tr_buf *out, const void *p, size_t n)
{
    const unsigned char *s = p;
    char *o = tr_buf_reserve(out, (n + 2) / 3 * 4);
    size_t k = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        o[k++] = alphabet[v >> 18];
        o[k++] = alphabet[(v >> 12) & 63];
        o[k++] = alphabet[(v >> 6) & 63];
        o[k++] = alphabet[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
        o[k++] = alphabet[v >> 18];
        o[k++] = alphabet[(v >> 12) & 63];
        o[k++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        o[k++] = '=';
    }
    tr_buf_commit(out, k);
}

static int value_of(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int tr_base64_decode(struct tr_buf *out, struct tr_slice in)
{
    if (in.len % 4 != 0) {
        return -EINVAL;
    }
    for (size_t i = 0; i < in.len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = in.ptr[i + k];
            if (c == '=' && i + 4 == in.len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0) {
                return -EINVAL;
            }
            v[k] = value_of(c);
            if (v[k] < 0) {
                return -EINVAL;
            }
        }
        unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 |
                     (unsigned)v[3];
        char bytes[3] = {(char)(w >> 16), (char)(w >> 8), (char)w};
        tr_buf_append(out, bytes, (size_t)(3 - pad));
    }
    return 0;
}
