/* SPDX-License-Identifier: Apache-2.0 */
/* The small text syntaxes inside catalog definitions: Go durations ("1m30s", "250ms",
 * as Consul's agent takes them, and Go's way of printing them back) and check targets
 * ("http://host:port/path", "host:port"). Pure functions, fuzzable and unit-tested. */
#include "registry/catalog.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

#define MAX_DURATION_NS (UINT64_C(1) << 62)

/* ------------------------------------------------------------ durations */

static int unit_ns(struct tr_slice u, uint64_t *mult)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"ns", 1},
        {"us", 1000},
        {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
        {"ms", 1000000},
        {"s", UINT64_C(1000000000)},
        {"m", UINT64_C(60000000000)},
        {"h", UINT64_C(3600000000000)},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(units); i++) {
        if (tr_slice_eq(u, tr_slice_cstr(units[i].name))) {
            *mult = units[i].ns;
            return 0;
        }
    }
    return -EINVAL;
}

/* One "<number><unit>" term at *pos, in nanoseconds. */
static int duration_term(struct tr_slice s, size_t *pos, uint64_t *ns)
{
    size_t i = *pos;
    uint64_t whole = 0;
    bool digits = false;
    while (i < s.len && isdigit((unsigned char)s.ptr[i])) {
        if (whole > MAX_DURATION_NS / 10) {
            return -EINVAL;
        }
        whole = whole * 10 + (uint64_t)(s.ptr[i++] - '0');
        digits = true;
    }
    uint64_t frac = 0;
    uint64_t scale = 1;
    if (i < s.len && s.ptr[i] == '.') {
        i++;
        while (i < s.len && isdigit((unsigned char)s.ptr[i])) {
            if (scale < UINT64_C(1000000000000000000)) {
                frac = frac * 10 + (uint64_t)(s.ptr[i] - '0');
                scale *= 10;
            }
            digits = true;
            i++;
        }
    }
    if (!digits) {
        return -EINVAL;
    }
    size_t ustart = i;
    while (i < s.len && !isdigit((unsigned char)s.ptr[i]) && s.ptr[i] != '.') {
        i++;
    }
    uint64_t mult;
    if (unit_ns(tr_slice(s.ptr + ustart, i - ustart), &mult) != 0) {
        return -EINVAL;
    }
    if (whole > MAX_DURATION_NS / mult) {
        return -EINVAL;
    }
    *ns = whole * mult + (uint64_t)((long double)frac * (long double)mult / (long double)scale);
    *pos = i;
    return 0;
}

int tr_cat_parse_duration(struct tr_slice s, uint64_t *ms)
{
    size_t i = 0;
    if (s.len > 0 && s.ptr[0] == '+') {
        i++;
    }
    if (i == s.len) {
        return -EINVAL;
    }
    if (s.len - i == 1 && s.ptr[i] == '0') {
        *ms = 0;
        return 0;
    }
    uint64_t total = 0;
    while (i < s.len) {
        uint64_t ns;
        if (duration_term(s, &i, &ns) != 0 || ns > MAX_DURATION_NS - total) {
            return -EINVAL;
        }
        total += ns;
    }
    *ms = (total + 999999) / 1000000;
    return 0;
}

void tr_cat_format_duration(uint64_t ms, char *buf, size_t size)
{
    if (ms < 1000) {
        snprintf(buf, size, "%llu%s", (unsigned long long)ms, ms == 0 ? "s" : "ms");
        return;
    }
    unsigned long long h = ms / 3600000;
    unsigned long long m = ms / 60000 % 60;
    unsigned long long s = ms / 1000 % 60;
    unsigned long long frac = ms % 1000;
    char secs[32];
    if (frac == 0) {
        snprintf(secs, sizeof(secs), "%llu", s);
    } else {
        snprintf(secs, sizeof(secs), "%llu.%03llu", s, frac);
        size_t n = strlen(secs);
        while (secs[n - 1] == '0') {
            secs[--n] = '\0';
        }
    }
    if (h > 0) {
        snprintf(buf, size, "%lluh%llum%ss", h, m, secs);
    } else if (m > 0) {
        snprintf(buf, size, "%llum%ss", m, secs);
    } else {
        snprintf(buf, size, "%ss", secs);
    }
}

/* ------------------------------------------------------------ addresses */

int tr_cat_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon;
    const char *hstart = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return -EINVAL;
        }
        hstart = s + 1;
        hlen = (size_t)(close - hstart);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
            return -EINVAL;
        }
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= hostlen) {
        return -EINVAL;
    }
    for (size_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)hstart[i];
        if (ch <= ' ' || ch == '/' || ch == '@' || ch == 0x7f) {
            return -EINVAL;
        }
    }
    uint64_t p;
    if (tr_slice_to_u64(tr_slice_cstr(colon + 1), &p) != 0 || p == 0 || p > 65535) {
        return -EINVAL;
    }
    memcpy(host, hstart, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int tr_cat_parse_http_url(const char *url, char *host, size_t hostlen, uint16_t *port,
                          const char **target)
{
    if (strncasecmp(url, "https://", 8) == 0) {
        return -EPROTONOSUPPORT;
    }
    if (strncasecmp(url, "http://", 7) != 0) {
        return -EINVAL;
    }
    const char *auth = url + 7;
    size_t alen = strcspn(auth, "/?#");
    char hp[300];
    if (alen == 0 || alen >= sizeof(hp) - 4 || memchr(auth, '@', alen) != NULL) {
        return -EINVAL;
    }
    memcpy(hp, auth, alen);
    hp[alen] = '\0';
    bool has_port = hp[alen - 1] != ']' && strrchr(hp, ':') != NULL;
    if (!has_port) {
        snprintf(hp + alen, sizeof(hp) - alen, ":80");
    }
    if (tr_cat_split_hostport(hp, host, hostlen, port) != 0) {
        return -EINVAL;
    }
    for (const char *p = auth + alen; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            return -EINVAL;
        }
    }
    *target = auth + alen;
    return 0;
}
