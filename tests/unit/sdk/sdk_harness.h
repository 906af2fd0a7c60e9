/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers for the SDK: run a trellis_app on a thread (port 0) and talk to it with
 * a tiny blocking HTTP/1.1 client (one request per connection, Content-Length or
 * chunked bodies). */
#ifndef TESTS_SDK_HARNESS_H
#define TESTS_SDK_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "trellis/trellis.h"

struct running_app {
    struct trellis_app *app;
    pthread_t thread;
    int rc;
};

static void *app_thread(void *arg)
{
    struct running_app *ra = arg;
    ra->rc = trellis_app_run(ra->app);
    return NULL;
}

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Starts `app` on 127.0.0.1:0 and waits until it listens; returns its port. */
static inline int app_start(struct running_app *ra, struct trellis_app *app)
{
    ra->app = app;
    ra->rc = -1;
    if (trellis_app_set_listen(app, "127.0.0.1:0") != 0) {
        abort();
    }
    pthread_create(&ra->thread, NULL, app_thread, ra);
    for (int i = 0; i < 500 && trellis_app_port(app) == 0; i++) {
        sleep_ms(10);
    }
    return trellis_app_port(app);
}

/* Stops the app, joins its thread and returns trellis_app_run()'s result. */
static inline int app_stop(struct running_app *ra)
{
    trellis_app_stop(ra->app);
    pthread_join(ra->thread, NULL);
    return ra->rc;
}

struct http_result {
    int status;
    char head[8192];
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
};

static inline void http_result_free(struct http_result *r)
{
    free(r->body);
    r->body = NULL;
}

/* Value of header `name` in r->head, copied into out; false if absent. */
static inline bool http_header(const struct http_result *r, const char *name, char *out,
                               size_t size)
{
    const char *p = strstr(r->head, "\r\n");
    size_t n = strlen(name);
    while (p != NULL && p[2] != '\0') {
        p += 2;
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL) {
            break;
        }
        if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ') {
                v++;
            }
            snprintf(out, size, "%.*s", (int)(eol - v), v);
            return true;
        }
        p = eol;
    }
    return false;
}

/* Sends one request (extra_headers: full "Name: value\r\n" lines or NULL) and reads the
 * response. Returns 0 or -1 on a socket error. */
static inline int http_do(int port, const char *method, const char *target,
                          const char *extra_headers, const char *body, struct http_result *r)
{
    memset(r, 0, sizeof(*r));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    size_t blen = body != NULL ? strlen(body) : 0;
    size_t cap = 1024 + blen + (extra_headers ? strlen(extra_headers) : 0) + strlen(target);
    char *req = malloc(cap);
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%sContent-Length: "
                     "%zu\r\n\r\n",
                     method, target, extra_headers ? extra_headers : "", blen);
    if (blen > 0) {
        memcpy(req + n, body, blen);
    }
    size_t total = (size_t)n + blen;
    size_t off = 0;
    while (off < total) {
        ssize_t w = write(fd, req + off, total - off);
        if (w <= 0) {
            break;
        }
        off += (size_t)w;
    }
    free(req);
    size_t rcap = 65536;
    size_t rlen = 0;
    char *buf = malloc(rcap);
    for (;;) {
        if (rlen + 4096 > rcap) {
            rcap *= 2;
            buf = realloc(buf, rcap);
        }
        ssize_t got = read(fd, buf + rlen, rcap - rlen - 1);
        if (got <= 0) {
            break;
        }
        rlen += (size_t)got;
    }
    close(fd);
    buf[rlen] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (end == NULL || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1) {
        free(buf);
        return -1;
    }
    size_t hlen = (size_t)(end - buf) + 2;
    snprintf(r->head, sizeof(r->head), "%.*s", (int)hlen, buf);
    const char *b = end + 4;
    size_t avail = rlen - (size_t)(b - buf);
    char te[64];
    r->body = malloc(avail + 1);
    if (http_header(r, "Transfer-Encoding", te, sizeof(te))) {
        size_t out = 0;
        while (avail > 0) {
            unsigned long sz = strtoul(b, NULL, 16);
            const char *nl = strstr(b, "\r\n");
            if (sz == 0 || nl == NULL) {
                break;
            }
            b = nl + 2;
            memcpy(r->body + out, b, sz);
            out += sz;
            b += sz + 2;
        }
        r->body_len = out;
    } else {
        memcpy(r->body, b, avail);
        r->body_len = avail;
    }
    r->body[r->body_len] = '\0';
    free(buf);
    return 0;
}

#endif
