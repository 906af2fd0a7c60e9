/* SPDX-License-Identifier: Apache-2.0 */
/* Raw spans of JSON text (see json_span.h): a skipper that knows just enough of RFC
 * 8259 to find where each value ends: strings with escapes, nested objects and arrays,
 * and bare literals/numbers. */
#include "server/json_span.h"

#include <string.h>

struct scan {
    const char *p;
    size_t len;
    size_t pos;
};

static void skip_ws(struct scan *s)
{
    while (s->pos < s->len) {
        char ch = s->p[s->pos];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
            return;
        }
        s->pos++;
    }
}

/* At an opening quote: moves past the closing one. */
static int skip_string(struct scan *s)
{
    s->pos++;
    while (s->pos < s->len) {
        char ch = s->p[s->pos++];
        if (ch == '"') {
            return 0;
        }
        if (ch == '\\') {
            if (s->pos >= s->len) {
                return -1;
            }
            s->pos++;
        }
    }
    return -1;
}

static bool is_bare(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || ch == '-' || ch == '+' ||
           ch == '.' || ch == 'E';
}

static int skip_value(struct scan *s, int depth);

/* At '{' or '[': moves past the matching close. */
static int skip_container(struct scan *s, int depth)
{
    char close = s->p[s->pos] == '{' ? '}' : ']';
    bool object = close == '}';
    s->pos++;
    skip_ws(s);
    if (s->pos < s->len && s->p[s->pos] == close) {
        s->pos++;
        return 0;
    }
    for (;;) {
        if (object) {
            skip_ws(s);
            if (s->pos >= s->len || s->p[s->pos] != '"' || skip_string(s) != 0) {
                return -1;
            }
            skip_ws(s);
            if (s->pos >= s->len || s->p[s->pos] != ':') {
                return -1;
            }
            s->pos++;
        }
        if (skip_value(s, depth + 1) != 0) {
            return -1;
        }
        skip_ws(s);
        if (s->pos >= s->len) {
            return -1;
        }
        char ch = s->p[s->pos++];
        if (ch == close) {
            return 0;
        }
        if (ch != ',') {
            return -1;
        }
    }
}

static int skip_value(struct scan *s, int depth)
{
    if (depth > TR_JSON_SPAN_MAX_DEPTH) {
        return -1;
    }
    skip_ws(s);
    if (s->pos >= s->len) {
        return -1;
    }
    char ch = s->p[s->pos];
    if (ch == '"') {
        return skip_string(s);
    }
    if (ch == '{' || ch == '[') {
        return skip_container(s, depth);
    }
    size_t start = s->pos;
    while (s->pos < s->len && is_bare(s->p[s->pos])) {
        s->pos++;
    }
    return s->pos > start ? 0 : -1;
}

ssize_t tr_json_span_value(struct tr_slice text, struct tr_slice *out)
{
    struct scan s = {.p = text.ptr, .len = text.len};
    skip_ws(&s);
    size_t start = s.pos;
    if (skip_value(&s, 0) != 0) {
        return -1;
    }
    size_t end = s.pos;
    skip_ws(&s);
    if (s.pos != s.len) {
        return -1;
    }
    *out = tr_slice(text.ptr + start, end - start);
    return (ssize_t)(end - start);
}

bool tr_json_span_member(struct tr_slice obj, const char *name, struct tr_slice *out)
{
    struct tr_slice v;
    if (tr_json_span_value(obj, &v) < 0 || v.ptr[0] != '{') {
        return false;
    }
    size_t name_len = strlen(name);
    struct scan s = {.p = v.ptr, .len = v.len, .pos = 1};
    for (;;) {
        skip_ws(&s);
        if (s.pos >= s.len || s.p[s.pos] != '"') {
            return false;
        }
        size_t key_start = s.pos + 1;
        if (skip_string(&s) != 0) {
            return false;
        }
        size_t key_len = s.pos - 1 - key_start;
        skip_ws(&s);
        s.pos++; /* ':' (the document is well formed) */
        skip_ws(&s);
        size_t value_start = s.pos;
        if (skip_value(&s, 1) != 0) {
            return false;
        }
        if (key_len == name_len && memcmp(s.p + key_start, name, name_len) == 0) {
            *out = tr_slice(s.p + value_start, s.pos - value_start);
            return true;
        }
        skip_ws(&s);
        if (s.pos >= s.len || s.p[s.pos] != ',') {
            return false;
        }
        s.pos++;
    }
}

ssize_t tr_json_span_items(struct tr_slice arr, struct tr_slice *out, size_t max)
{
    struct tr_slice v;
    if (tr_json_span_value(arr, &v) < 0 || v.ptr[0] != '[') {
        return -1;
    }
    struct scan s = {.p = v.ptr, .len = v.len, .pos = 1};
    skip_ws(&s);
    if (s.p[s.pos] == ']') {
        return 0;
    }
    size_t n = 0;
    for (;;) {
        skip_ws(&s);
        size_t start = s.pos;
        if (skip_value(&s, 1) != 0) {
            return -1;
        }
        if (n < max) {
            out[n] = tr_slice(s.p + start, s.pos - start);
        }
        n++;
        skip_ws(&s);
        if (s.pos >= s.len || s.p[s.pos] != ',') {
            return (ssize_t)n;
        }
        s.pos++;
    }
}
