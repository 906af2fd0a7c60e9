/* SPDX-License-Identifier: Apache-2.0 */
/* CloudEvents 1.0 envelopes (see cloudevent.h). Events are written by hand into a
 * tr_buf; jansson only validates. Members of an app's own event and JSON payloads are
 * copied as the bytes they arrived as, found by a small scanner that walks the top
 * level of an already validated object. */
#include "sidecar/cloudevent.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>

#include "core/base64.h"
#include "core/errors.h"

/* Validation only: big integers are valid JSON, which jansson's integers would refuse. */
#define LOAD_FLAGS (JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL)

/* ------------------------------------------------------------ content types */

/* The media type without parameters and surrounding blanks. */
static struct tr_slice media_type(struct tr_slice ct)
{
    const char *semi = ct.len ? memchr(ct.ptr, ';', ct.len) : NULL;
    if (semi != NULL) {
        ct.len = (size_t)(semi - ct.ptr);
    }
    return tr_slice_trim(ct);
}

bool tr_ce_type_is_cloudevent(struct tr_slice content_type)
{
    return tr_slice_caseeq(media_type(content_type), TR_SLICE_LIT(TR_CE_CONTENT_TYPE));
}

bool tr_ce_type_is_json(struct tr_slice content_type)
{
    struct tr_slice m = media_type(content_type);
    static const char suffix[] = "+json";
    size_t ns = sizeof(suffix) - 1;
    return tr_slice_caseeq(m, TR_SLICE_LIT("application/json")) ||
           (m.len > ns && strncasecmp(m.ptr + m.len - ns, suffix, ns) == 0);
}

bool tr_ce_type_is_binary(struct tr_slice content_type)
{
    return tr_slice_caseeq(media_type(content_type), TR_SLICE_LIT("application/octet-stream"));
}

/* ------------------------------------------------------------ ids, traces, time */

/* Random bytes from a per-thread pool refilled by getrandom(2): one syscall per 4 KiB
 * rather than one per event. */
static void random_bytes(unsigned char *out, size_t n)
{
    static _Thread_local unsigned char pool[4096];
    static _Thread_local size_t left;
    while (n > 0) {
        if (left == 0) {
            size_t got = 0;
            while (got < sizeof(pool)) {
                ssize_t r = getrandom(pool + got, sizeof(pool) - got, 0);
                TR_ASSERT(r > 0 || errno == EINTR);
                got += r > 0 ? (size_t)r : 0;
            }
            left = sizeof(pool);
        }
        size_t k = n < left ? n : left;
        memcpy(out, pool + sizeof(pool) - left, k);
        memset(pool + sizeof(pool) - left, 0, k); /* never hand the same bytes out twice */
        left -= k;
        out += k;
        n -= k;
    }
}

static void hex(char *out, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
}

void tr_ce_uuid4(char out[TR_CE_UUID_LEN + 1])
{
    unsigned char b[16];
    random_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* RFC 9562 §5.4: version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
    char *o = out;
    static const size_t groups[] = {4, 2, 2, 2, 6};
    size_t at = 0;
    for (size_t g = 0; g < 5; g++) {
        if (g > 0) {
            *o++ = '-';
        }
        hex(o, b + at, groups[g]);
        o += 2 * groups[g];
        at += groups[g];
    }
    *o = '\0';
}

static bool is_lower_hex(struct tr_slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

static bool all_zero(struct tr_slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] != '0') {
            return false;
        }
    }
    return true;
}

bool tr_ce_traceparent_valid(struct tr_slice s)
{
    /* W3C Trace Context §3.2: version "00" has exactly four fields. */
    if (s.len != TR_CE_TRACEPARENT_LEN || s.ptr[2] != '-' || s.ptr[35] != '-' || s.ptr[52] != '-') {
        return false;
    }
    struct tr_slice version = tr_slice(s.ptr, 2);
    struct tr_slice trace = tr_slice(s.ptr + 3, 32);
    struct tr_slice parent = tr_slice(s.ptr + 36, 16);
    struct tr_slice flags = tr_slice(s.ptr + 53, 2);
    return tr_slice_eq(version, TR_SLICE_LIT("00")) && is_lower_hex(trace) &&
           is_lower_hex(parent) && is_lower_hex(flags) && !all_zero(trace) && !all_zero(parent);
}

void tr_ce_traceparent_new(char out[TR_CE_TRACEPARENT_LEN + 1])
{
    unsigned char b[24];
    random_bytes(b, sizeof(b));
    b[0] |= 1; /* never all zero */
    b[16] |= 1;
    memcpy(out, "00-", 3);
    hex(out + 3, b, 16);
    out[35] = '-';
    hex(out + 36, b + 16, 8);
    memcpy(out + 52, "-01", 4); /* sampled, and the NUL */
}

void tr_ce_time_format(char out[TR_CE_TIME_MAX], uint64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* The moduli only tell the compiler the widths; gmtime_r keeps them in range. */
    snprintf(out, TR_CE_TIME_MAX, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
             (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
             (unsigned)tm.tm_sec % 100u, (unsigned)(ms % 1000));
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *p, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return true;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

int tr_ce_time_parse(struct tr_slice s, uint64_t *ms)
{
    /* RFC 3339 §5.6: full-date "T" full-time; 20 bytes at least ("...:ssZ"). */
    const char *p = s.ptr;
    unsigned y, mo, d, h, mi, sec;
    if (s.len < 20 || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
        !digits(p + 8, 2, &d) || (p[10] != 'T' && p[10] != 't' && p[10] != ' ') ||
        !digits(p + 11, 2, &h) || p[13] != ':' || !digits(p + 14, 2, &mi) || p[16] != ':' ||
        !digits(p + 17, 2, &sec)) {
        return -EINVAL;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60) {
        return -EINVAL;
    }
    size_t i = 19;
    unsigned frac_ms = 0;
    if (p[i] == '.') {
        size_t start = ++i;
        unsigned scale = 100;
        while (i < s.len && p[i] >= '0' && p[i] <= '9') {
            frac_ms += (unsigned)(p[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start) {
            return -EINVAL;
        }
    }
    int64_t offset_s = 0;
    if (i < s.len && (p[i] == 'Z' || p[i] == 'z')) {
        i++;
    } else if (i + 6 == s.len && (p[i] == '+' || p[i] == '-')) {
        unsigned oh, om;
        if (!digits(p + i + 1, 2, &oh) || p[i + 3] != ':' || !digits(p + i + 4, 2, &om) ||
            oh > 23 || om > 59) {
            return -EINVAL;
        }
        offset_s = (int64_t)(oh * 3600 + om * 60) * (p[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return -EINVAL;
    }
    if (i != s.len) {
        return -EINVAL;
    }
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    if (t < 0) {
        return -EINVAL;
    }
    *ms = (uint64_t)t * 1000 + frac_ms;
    return 0;
}

/* ------------------------------------------------------------ UTF-8 and JSON strings */

/* Length of the valid UTF-8 sequence at p[0..n), or 0 if it is not one (RFC 3629 §4). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80) {
        return 1;
    }
    size_t len;
    unsigned lo = 0x80;
    unsigned hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* overlong */
        hi = c == 0xed ? 0x9f : 0xbf; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80; /* overlong */
        hi = c == 0xf4 ? 0x8f : 0xbf; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }
    return len;
}

bool tr_ce_utf8_valid(struct tr_slice s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0;
    while (i < s.len) {
        size_t k = utf8_seq(p + i, s.len - i);
        if (k == 0) {
            return false;
        }
        i += k;
    }
    return true;
}

/* Text that can be a JSON string every parser takes: UTF-8 without NUL ("\u0000" is
 * valid JSON, but jansson, and so the broker, refuses it). */
static bool plain_text(struct tr_slice s)
{
    return (s.len == 0 || memchr(s.ptr, '\0', s.len) == NULL) && tr_ce_utf8_valid(s);
}

/* Appends `s` as a JSON string, quotes included. NUL and bytes that are not UTF-8
 * become U+FFFD, so the output is always valid JSON whatever a URL decoded to. */
static void put_str(struct tr_buf *out, struct tr_slice s)
{
    tr_buf_append(out, "\"", 1);
    if (s.len == 0) {
        /* nothing: tr_json_escape() would offset a NULL pointer */
    } else if (plain_text(s)) {
        tr_json_escape(out, s);
    } else {
        const unsigned char *p = (const unsigned char *)s.ptr;
        size_t i = 0;
        while (i < s.len) {
            size_t k = p[i] == 0 ? 0 : utf8_seq(p + i, s.len - i);
            if (k == 0) {
                tr_buf_append_slice(out, TR_SLICE_LIT("\\ufffd"));
                i++;
                continue;
            }
            tr_json_escape(out, tr_slice(s.ptr + i, k));
            i += k;
        }
    }
    tr_buf_append(out, "\"", 1);
}

/* Appends `,"name":` (no comma before the first member). */
static void put_key(struct tr_buf *out, const char *name, bool *first)
{
    if (!*first) {
        tr_buf_append(out, ",", 1);
    }
    *first = false;
    tr_buf_append(out, "\"", 1);
    tr_buf_append(out, name, strlen(name));
    tr_buf_append(out, "\":", 2);
}

static void put_member(struct tr_buf *out, const char *name, struct tr_slice value, bool *first)
{
    put_key(out, name, first);
    put_str(out, value);
}

/* ------------------------------------------------------------ top-level members */

/* Walks the members of a JSON object without building it. The text is expected to be
 * valid JSON (checked with jansson first, or stored by the broker after its check); the
 * walk still stops at malformed input and never reads outside it. */
struct members {
    const char *p;
    size_t len;
    size_t pos;
    bool started;
};

static void skip_ws(struct members *m)
{
    while (m->pos < m->len && (m->p[m->pos] == ' ' || m->p[m->pos] == '\t' ||
                               m->p[m->pos] == '\n' || m->p[m->pos] == '\r')) {
        m->pos++;
    }
}

static bool skip_string(struct members *m)
{
    m->pos++; /* the opening quote */
    while (m->pos < m->len) {
        char c = m->p[m->pos++];
        if (c == '"') {
            return true;
        }
        if (c == '\\') {
            m->pos++;
        }
    }
    return false;
}

static bool skip_value(struct members *m)
{
    if (m->pos >= m->len) {
        return false;
    }
    char c = m->p[m->pos];
    if (c == '"') {
        return skip_string(m);
    }
    if (c == '{' || c == '[') {
        size_t depth = 0;
        while (m->pos < m->len) {
            c = m->p[m->pos];
            if (c == '"') {
                if (!skip_string(m)) {
                    return false;
                }
                continue;
            }
            m->pos++;
            if (c == '{' || c == '[') {
                depth++;
            } else if ((c == '}' || c == ']') && --depth == 0) {
                return true;
            }
        }
        return false;
    }
    size_t start = m->pos;
    while (m->pos < m->len && strchr(",}] \t\r\n", m->p[m->pos]) == NULL) {
        m->pos++;
    }
    return m->pos > start;
}

static bool members_init(struct members *m, struct tr_slice obj)
{
    *m = (struct members){.p = obj.ptr, .len = obj.len};
    skip_ws(m);
    if (m->pos >= m->len || m->p[m->pos] != '{') {
        return false;
    }
    m->pos++;
    return true;
}

/* The next member's key (raw, quotes included) and value (raw). False at the end or
 * on malformed input. */
static bool members_next(struct members *m, struct tr_slice *key, struct tr_slice *value)
{
    skip_ws(m);
    if (m->pos < m->len && m->started && m->p[m->pos] == ',') {
        m->pos++;
        skip_ws(m);
    }
    if (m->pos >= m->len || m->p[m->pos] != '"') {
        return false;
    }
    size_t k = m->pos;
    if (!skip_string(m)) {
        return false;
    }
    *key = tr_slice(m->p + k, m->pos - k);
    skip_ws(m);
    if (m->pos >= m->len || m->p[m->pos] != ':') {
        return false;
    }
    m->pos++;
    skip_ws(m);
    size_t v = m->pos;
    if (!skip_value(m)) {
        return false;
    }
    *value = tr_slice(m->p + v, m->pos - v);
    m->started = true;
    return true;
}

/* Does the raw key (quotes included) name `name`? Keys with escapes are decoded. */
static bool key_is(struct tr_slice key, const char *name)
{
    size_t n = strlen(name);
    if (key.len < 2) {
        return false;
    }
    struct tr_slice inner = tr_slice(key.ptr + 1, key.len - 2);
    if (memchr(inner.ptr, '\\', inner.len) == NULL) {
        return inner.len == n && memcmp(inner.ptr, name, n) == 0;
    }
    json_t *j = json_loadb(key.ptr, key.len, JSON_DECODE_ANY, NULL);
    bool eq = json_is_string(j) && json_string_length(j) == n &&
              memcmp(json_string_value(j), name, n) == 0;
    json_decref(j);
    return eq;
}

/* The unquoted text of a plain string value (no escapes), else an empty slice. */
static struct tr_slice plain_string(struct tr_slice raw)
{
    if (raw.len < 2 || raw.ptr[0] != '"' || raw.ptr[raw.len - 1] != '"' ||
        memchr(raw.ptr, '\\', raw.len) != NULL) {
        return tr_slice(raw.ptr, 0);
    }
    return tr_slice(raw.ptr + 1, raw.len - 2);
}

/* ------------------------------------------------------------ publishing */

static const char *const override_names[TR_CE_OVR_COUNT] = {
    [TR_CE_OVR_ID] = "id",
    [TR_CE_OVR_SOURCE] = "source",
    [TR_CE_OVR_TYPE] = "type",
    [TR_CE_OVR_SUBJECT] = "subject",
    [TR_CE_OVR_TRACEID] = "traceid",
    [TR_CE_OVR_TRACEPARENT] = "traceparent",
    [TR_CE_OVR_TRACESTATE] = "tracestate",
};

enum tr_ce_override tr_ce_override_by_name(struct tr_slice name)
{
    for (int i = 0; i < TR_CE_OVR_COUNT; i++) {
        if (tr_slice_eq(name, tr_slice_cstr(override_names[i]))) {
            return (enum tr_ce_override)i;
        }
    }
    return TR_CE_OVR_COUNT;
}

/* The request's trace context, or a new one. `buf` holds a generated traceparent. */
static struct tr_slice trace_parent(const struct tr_ce_publish *in,
                                    char buf[TR_CE_TRACEPARENT_LEN + 1])
{
    if (tr_ce_traceparent_valid(in->traceparent)) {
        return in->traceparent;
    }
    tr_ce_traceparent_new(buf);
    return tr_slice(buf, TR_CE_TRACEPARENT_LEN);
}

/* Writes the payload as "data" or "data_base64" following Dapr's envelope rules. */
static void put_data(struct tr_buf *out, struct tr_slice body, struct tr_slice type, bool *first)
{
    if (tr_ce_type_is_json(type)) {
        json_t *j = json_loadb(body.ptr ? body.ptr : "", body.len, LOAD_FLAGS, NULL);
        if (j != NULL) {
            json_decref(j);
            put_key(out, "data", first);
            tr_buf_append_slice(out, tr_slice_trim(body));
            return;
        }
    }
    if (!tr_ce_type_is_binary(type) && plain_text(body)) {
        put_member(out, "data", body, first);
        return;
    }
    put_key(out, "data_base64", first);
    tr_buf_append(out, "\"", 1);
    tr_base64_encode(out, body.ptr, body.len);
    tr_buf_append(out, "\"", 1);
}

static void wrap(struct tr_buf *out, const struct tr_ce_publish *in)
{
    const struct tr_slice *ovr = in->overrides;
    char uuid[TR_CE_UUID_LEN + 1];
    char tp_buf[TR_CE_TRACEPARENT_LEN + 1];
    char when[TR_CE_TIME_MAX];
    struct tr_slice type = in->content_type.len ? in->content_type : TR_SLICE_LIT("text/plain");
    struct tr_slice id = ovr[TR_CE_OVR_ID];
    if (id.ptr == NULL) {
        tr_ce_uuid4(uuid);
        id = tr_slice(uuid, TR_CE_UUID_LEN);
    }
    struct tr_slice tp = ovr[TR_CE_OVR_TRACEPARENT];
    if (tp.ptr == NULL) {
        tp = trace_parent(in, tp_buf);
    }
    struct tr_slice tid = ovr[TR_CE_OVR_TRACEID].ptr ? ovr[TR_CE_OVR_TRACEID] : tp;
    struct tr_slice ts = ovr[TR_CE_OVR_TRACESTATE].ptr ? ovr[TR_CE_OVR_TRACESTATE] : in->tracestate;
    bool first = true;
    tr_buf_append(out, "{", 1);
    put_member(out, "specversion", TR_SLICE_LIT(TR_CE_SPECVERSION), &first);
    put_member(out, "id", id, &first);
    put_member(out, "source", ovr[TR_CE_OVR_SOURCE].ptr ? ovr[TR_CE_OVR_SOURCE] : in->source,
               &first);
    put_member(out, "type",
               ovr[TR_CE_OVR_TYPE].ptr ? ovr[TR_CE_OVR_TYPE] : TR_SLICE_LIT(TR_CE_DEFAULT_TYPE),
               &first);
    put_member(out, "datacontenttype", type, &first);
    put_member(out, "topic", in->topic, &first);
    put_member(out, "pubsubname", in->pubsub, &first);
    put_member(out, "traceid", tid, &first);
    put_member(out, "traceparent", tp, &first);
    put_member(out, "tracestate", ts, &first);
    tr_ce_time_format(when, in->now_ms);
    put_member(out, "time", tr_slice_cstr(when), &first);
    if (ovr[TR_CE_OVR_SUBJECT].ptr != NULL) {
        put_member(out, "subject", ovr[TR_CE_OVR_SUBJECT], &first);
    }
    if (in->ttl_s >= 0) {
        tr_ce_time_format(when, in->now_ms + (uint64_t)in->ttl_s * 1000);
        put_member(out, "expiration", tr_slice_cstr(when), &first);
    }
    put_data(out, in->body, type, &first);
    tr_buf_append(out, "}", 1);
}

static int reject(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reject(char *why, size_t why_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* The CloudEvents 1.0 rules (spec §3.1) for the attributes an event carries. */
static int check_event(json_t *ev, char *why, size_t why_len)
{
    static const char *const required[] = {"id", "source", "type"};
    static const char *const strings[] = {"datacontenttype", "dataschema", "subject", "time"};
    json_t *v = json_object_get(ev, "specversion");
    if (v != NULL && (!json_is_string(v) || strcmp(json_string_value(v), "1.0") != 0)) {
        return reject(why, why_len,
                      "unsupported CloudEvent specversion: expected the string \"1.0\"");
    }
    for (size_t i = 0; i < TR_ARRAY_LEN(required); i++) {
        v = json_object_get(ev, required[i]);
        if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0)) {
            return reject(why, why_len,
                          "invalid CloudEvent attribute \"%s\": expected a non-empty string",
                          required[i]);
        }
    }
    for (size_t i = 0; i < TR_ARRAY_LEN(strings); i++) {
        v = json_object_get(ev, strings[i]);
        if (v != NULL && !json_is_string(v)) {
            return reject(why, why_len, "invalid CloudEvent attribute \"%s\": expected a string",
                          strings[i]);
        }
    }
    v = json_object_get(ev, "time");
    uint64_t ms;
    if (v != NULL &&
        tr_ce_time_parse(tr_slice(json_string_value(v), json_string_length(v)), &ms) != 0) {
        return reject(why, why_len,
                      "invalid CloudEvent attribute \"time\": expected an RFC 3339 timestamp "
                      "like 2024-05-01T12:00:00Z");
    }
    json_t *b64 = json_object_get(ev, "data_base64");
    if (b64 != NULL && json_object_get(ev, "data") != NULL) {
        return reject(why, why_len, "a CloudEvent cannot have both \"data\" and \"data_base64\"");
    }
    if (b64 != NULL) {
        struct tr_buf tmp;
        tr_buf_init(&tmp);
        int rc =
            json_is_string(b64)
                ? tr_base64_decode(&tmp, tr_slice(json_string_value(b64), json_string_length(b64)))
                : -EINVAL;
        tr_buf_dispose(&tmp);
        if (rc != 0) {
            return reject(why, why_len,
                          "invalid CloudEvent attribute \"data_base64\": expected a base64 "
                          "string");
        }
    }
    return 0;
}

/* Members Dapr sets from the request whatever the event had. */
static bool replaced(struct tr_slice key)
{
    static const char *const names[] = {"topic", "pubsubname", "traceid", "traceparent",
                                        "tracestate"};
    for (size_t i = 0; i < TR_ARRAY_LEN(names); i++) {
        if (key_is(key, names[i])) {
            return true;
        }
    }
    return false;
}

static int structured(struct tr_buf *out, const struct tr_ce_publish *in, char *why, size_t why_len)
{
    json_error_t jerr;
    const char *body = in->body.ptr ? in->body.ptr : "";
    json_t *ev = json_loadb(body, in->body.len, LOAD_FLAGS | JSON_REJECT_DUPLICATES, &jerr);
    if (ev == NULL) {
        return reject(why, why_len,
                      "the body is not a valid CloudEvent: %s (line %d, column %d); "
                      "Content-Type application/cloudevents+json needs a JSON object",
                      jerr.text, jerr.line, jerr.column);
    }
    if (!json_is_object(ev)) {
        json_decref(ev);
        return reject(why, why_len,
                      "the body is not a valid CloudEvent: expected a JSON object "
                      "(Content-Type application/cloudevents+json)");
    }
    int rc = check_event(ev, why, why_len);
    if (rc != 0) {
        json_decref(ev);
        return rc;
    }
    bool first = true;
    tr_buf_append(out, "{", 1);
    struct members m;
    struct tr_slice key;
    struct tr_slice value;
    TR_ASSERT(members_init(&m, in->body)); /* jansson said it is an object */
    while (members_next(&m, &key, &value)) {
        if (replaced(key)) {
            continue;
        }
        if (!first) {
            tr_buf_append(out, ",", 1);
        }
        first = false;
        tr_buf_append_slice(out, key);
        tr_buf_append(out, ":", 1);
        tr_buf_append_slice(out, value);
    }
    char uuid[TR_CE_UUID_LEN + 1];
    if (json_object_get(ev, "specversion") == NULL) {
        put_member(out, "specversion", TR_SLICE_LIT(TR_CE_SPECVERSION), &first);
    }
    if (json_object_get(ev, "id") == NULL) {
        tr_ce_uuid4(uuid);
        put_member(out, "id", tr_slice(uuid, TR_CE_UUID_LEN), &first);
    }
    if (json_object_get(ev, "source") == NULL) {
        put_member(out, "source", TR_SLICE_LIT(TR_CE_DEFAULT_SOURCE), &first);
    }
    if (json_object_get(ev, "type") == NULL) {
        put_member(out, "type", TR_SLICE_LIT(TR_CE_DEFAULT_TYPE), &first);
    }
    json_decref(ev);
    char tp_buf[TR_CE_TRACEPARENT_LEN + 1];
    struct tr_slice tp = trace_parent(in, tp_buf);
    put_member(out, "topic", in->topic, &first);
    put_member(out, "pubsubname", in->pubsub, &first);
    put_member(out, "traceid", tp, &first);
    put_member(out, "traceparent", tp, &first);
    put_member(out, "tracestate", in->tracestate, &first);
    tr_buf_append(out, "}", 1);
    return 0;
}

int tr_ce_envelope(struct tr_buf *out, const struct tr_ce_publish *in, char *why, size_t why_len)
{
    if (!tr_ce_type_is_cloudevent(in->content_type)) {
        wrap(out, in);
        return 0;
    }
    size_t mark = out->len;
    int rc = structured(out, in, why, why_len);
    if (rc != 0) {
        out->len = mark;
    }
    return rc;
}

/* ------------------------------------------------------------ delivering */

/* A record that is a CloudEvent already: a JSON object with "specversion", stored as
 * JSON or as bytes of a JSON type (an event published with metadata.rawPayload=true);
 * bytes were never checked by the broker, so they are validated first. */
static bool is_event(const struct tr_ce_record *rec)
{
    struct members m;
    struct tr_slice key;
    struct tr_slice value;
    bool json_bytes = !rec->is_json && tr_ce_type_is_json(rec->content_type);
    if ((!rec->is_json && !json_bytes) || !members_init(&m, rec->data)) {
        return false;
    }
    bool found = false;
    while (!found && members_next(&m, &key, &value)) {
        found = key_is(key, "specversion");
    }
    if (found && json_bytes) {
        json_t *j = json_loadb(rec->data.ptr, rec->data.len, LOAD_FLAGS, NULL);
        found = json_is_object(j);
        json_decref(j);
    }
    return found;
}

static void synthesize(struct tr_buf *out, const struct tr_ce_record *rec)
{
    char uuid[TR_CE_UUID_LEN + 1];
    struct tr_slice id = rec->id;
    if (id.len == 0) {
        tr_ce_uuid4(uuid);
        id = tr_slice(uuid, TR_CE_UUID_LEN);
    }
    struct tr_slice type = rec->content_type;
    if (rec->raw_payload || (!rec->is_json && type.len == 0)) {
        type = TR_SLICE_LIT("application/octet-stream");
    } else if (rec->is_json) {
        type = TR_SLICE_LIT("application/json");
    }
    bool first = true;
    tr_buf_append(out, "{", 1);
    put_member(out, "specversion", TR_SLICE_LIT(TR_CE_SPECVERSION), &first);
    put_member(out, "id", id, &first);
    put_member(out, "source", TR_SLICE_LIT(TR_CE_DEFAULT_SOURCE), &first);
    put_member(out, "type", TR_SLICE_LIT(TR_CE_DEFAULT_TYPE), &first);
    put_member(out, "datacontenttype", type, &first);
    put_member(out, "topic", rec->topic, &first);
    put_member(out, "pubsubname", rec->pubsub, &first);
    if (rec->raw_payload) {
        put_key(out, "data_base64", &first);
        tr_buf_append(out, "\"", 1);
        tr_base64_encode(out, rec->data.ptr, rec->data.len);
        tr_buf_append(out, "\"", 1);
    } else if (rec->is_json) {
        put_key(out, "data", &first);
        tr_buf_append_slice(out, tr_slice_trim(rec->data));
    } else {
        put_data(out, rec->data, type, &first);
    }
    tr_buf_append(out, "}", 1);
}

static bool number(struct tr_slice raw, uint64_t max, uint64_t *out)
{
    return tr_slice_to_u64(raw, out) == 0 && *out <= max;
}

int tr_ce_record_parse(struct tr_slice line, struct tr_ce_record *rec, struct tr_ce_position *pos,
                       struct tr_buf *scratch)
{
    struct members m;
    struct tr_slice key;
    struct tr_slice value;
    bool have_offset = false;
    bool have_data = false;
    uint64_t v;
    memset(pos, 0, sizeof(*pos));
    rec->content_type = TR_SLICE_NULL;
    if (!members_init(&m, line)) {
        return -EINVAL;
    }
    while (members_next(&m, &key, &value)) {
        if (key_is(key, "offset") && number(value, INT64_MAX, &pos->offset)) {
            have_offset = true;
        } else if (key_is(key, "attempts") && number(value, UINT32_MAX, &v)) {
            pos->attempts = (uint32_t)v;
        } else if (key_is(key, "published_at") && number(value, INT64_MAX, &v)) {
            pos->published_ms = v;
        } else if (key_is(key, "data") && !have_data) {
            rec->data = value;
            rec->is_json = true;
            have_data = true;
        } else if (key_is(key, "data_base64") && !have_data) {
            struct tr_slice b64 = plain_string(value);
            tr_buf_reset(scratch);
            if (value.len < 2 || value.ptr[0] != '"' || tr_base64_decode(scratch, b64) != 0) {
                return -EINVAL;
            }
            rec->data = scratch->len ? tr_buf_slice(scratch) : TR_SLICE_LIT("");
            rec->is_json = false;
            have_data = true;
        } else if (key_is(key, "metadata")) {
            struct members mm;
            struct tr_slice mk;
            struct tr_slice mv;
            if (members_init(&mm, value)) {
                while (members_next(&mm, &mk, &mv)) {
                    if (key_is(mk, "content_type")) {
                        rec->content_type = plain_string(mv);
                    }
                }
            }
        }
    }
    return have_offset && have_data ? 0 : -EINVAL;
}

void tr_ce_for_delivery(struct tr_buf *out, const struct tr_ce_record *rec, struct tr_ce_info *info)
{
    TR_ASSERT(out->len == 0);
    memset(info, 0, sizeof(*info));
    if (!rec->raw_payload && is_event(rec)) {
        tr_buf_append_slice(out, rec->data);
    } else {
        synthesize(out, rec);
        info->synthesized = true;
    }
    struct members m;
    struct tr_slice key;
    struct tr_slice value;
    if (!members_init(&m, tr_buf_slice(out))) {
        return;
    }
    while (members_next(&m, &key, &value)) {
        struct tr_slice s = plain_string(value);
        if (key_is(key, "id")) {
            info->id = s;
        } else if (key_is(key, "type")) {
            info->type = s;
        } else if (key_is(key, "traceparent")) {
            info->traceparent = s;
        } else if (key_is(key, "tracestate")) {
            info->tracestate = s;
        } else if (key_is(key, "expiration")) {
            info->has_expiration = tr_ce_time_parse(s, &info->expiration_ms) == 0;
        }
    }
}
