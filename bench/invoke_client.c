// SPDX-License-Identifier: Apache-2.0
// Open-loop HTTP/1.1 load client for bench/sidecar_invoke.sh (a small wrk2 stand-in).
//
//   invoke_client HOST:PORT PATH RATE SECONDS CONNECTIONS [BODY_BYTES] [WARMUP_SECONDS]
//
// Sends request i at start + i / RATE (a timerfd with absolute deadlines drives the
// schedule), over CONNECTIONS keep-alive connections with at most one request in flight
// on each (no pipelining). A request whose slot comes up while every connection is busy
// waits in a FIFO and goes out on the next free connection. Latency runs from the
// request's *scheduled* send time to the last byte of its response, so a stall counts
// against every request it delays (no coordinated omission). BODY_BYTES > 0 sends POST
// with that many bytes of body, else GET. Requests of the first WARMUP_SECONDS (default
// 1) are sent but not recorded. Responses must carry Content-Length (chunked responses
// count as errors); gives up (exit 1) when responses are still missing 10 s after the last
// scheduled send. Prints one line of key=value pairs: n errors p50_us p90_us p99_us
// p999_us max_us achieved_rps.
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

typedef struct {
    int fd;
    int busy;
    int64_t scheduled; // ns, of the request in flight
    int record;
    char buf[65536];
    size_t len;
} conn_t;

static struct sockaddr_in g_addr;
static char g_req[8192];
static size_t g_req_len;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static int open_conn(int ep, int idx)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    if (connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr) != 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)idx + 1};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl");
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        p += w;
        n -= (size_t)w;
    }
}

// Returns the length of the complete response at the start of buf, 0 if incomplete,
// -1 if it cannot be framed (no Content-Length). *status gets the status code.
static long complete_response(const char *buf, size_t len, int *status)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t)(end - buf) + 4;
    *status = len > 12 ? atoi(buf + 9) : 0;
    long clen = -1;
    const char *p = buf;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        if (!eol)
            break;
        if (eol - p > 15 && strncasecmp(p, "content-length:", 15) == 0)
            clen = atol(p + 15);
        p = eol + 2;
    }
    if (clen < 0)
        return -1;
    if (len < head + (size_t)clen)
        return 0;
    return (long)(head + (size_t)clen);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: invoke_client HOST:PORT PATH RATE SECONDS CONNECTIONS [BODY_BYTES] "
                        "[WARMUP_SECONDS]\n");
        return 2;
    }
    char host[64];
    snprintf(host, sizeof host, "%s", argv[1]);
    char *colon = strrchr(host, ':');
    if (!colon)
        return fprintf(stderr, "HOST:PORT expected\n"), 2;
    *colon = 0;
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &g_addr.sin_addr) != 1)
        return fprintf(stderr, "bad host\n"), 2;
    const char *path = argv[2];
    double rate = atof(argv[3]), seconds = atof(argv[4]);
    int nconns = atoi(argv[5]);
    size_t body = argc > 6 ? (size_t)atol(argv[6]) : 0;
    double warmup = argc > 7 ? atof(argv[7]) : 1.0;
    if (rate <= 0 || seconds <= 0 || nconns <= 0 || body > 4096)
        return fprintf(stderr, "bad args\n"), 2;

    int hl = snprintf(g_req, sizeof g_req, "%s %s HTTP/1.1\r\nHost: bench\r\n",
                      body ? "POST" : "GET", path);
    if (body)
        hl += snprintf(g_req + hl, sizeof g_req - (size_t)hl,
                       "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n", body);
    hl += snprintf(g_req + hl, sizeof g_req - (size_t)hl, "\r\n");
    memset(g_req + hl, 'b', body);
    g_req_len = (size_t)hl + body;

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    conn_t *conns = calloc((size_t)nconns, sizeof *conns);
    for (int i = 0; i < nconns; i++)
        conns[i].fd = open_conn(ep, i);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0)
        die("timerfd_create");
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = 0};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev) != 0)
        die("epoll_ctl");

    int64_t total = (int64_t)(rate * (warmup + seconds));
    int64_t nwarm = (int64_t)(rate * warmup);
    double interval = 1e9 / rate;
    int64_t *lat = malloc(sizeof(int64_t) * (size_t)(total + 1));
    int64_t *queue = malloc(sizeof(int64_t) * (size_t)(total + 1)); // request indexes waiting
    size_t qhead = 0, qtail = 0;
    int64_t nlat = 0, errors = 0, sent = 0, done = 0, next = 0;
    int64_t start = now_ns() + 1000000;

#define SCHED(i) (start + (int64_t)((double)(i)*interval))
    struct itimerspec its = {0};

    while (done < total) {
        int64_t t = now_ns();
        // Everything whose time has come joins the queue.
        while (next < total && SCHED(next) <= t)
            queue[qtail++] = next++;
        // Hand queued requests to free connections.
        for (int i = 0; i < nconns && qhead < qtail; i++) {
            conn_t *c = &conns[i];
            if (c->busy)
                continue;
            int64_t idx = queue[qhead++];
            c->busy = 1;
            c->scheduled = SCHED(idx);
            c->record = idx >= nwarm;
            send_all(c->fd, g_req, g_req_len);
            sent++;
        }
        if (next < total) {
            int64_t d = SCHED(next);
            its.it_value.tv_sec = d / 1000000000;
            its.it_value.tv_nsec = d % 1000000000;
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 1000);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        if (n == 0 && next == total && now_ns() - SCHED(total - 1) > 10000000000LL) {
            fprintf(stderr, "invoke_client: %lld responses missing 10 s after the last send\n",
                    (long long)(total - done));
            return 1;
        }
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u64 == 0) {
                uint64_t exp;
                ssize_t r = read(tfd, &exp, sizeof exp);
                (void)r;
                continue;
            }
            conn_t *c = &conns[evs[k].data.u64 - 1];
            ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (!c->busy) { // closed (or stray bytes) while idle: reconnect, not a request
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = open_conn(ep, (int)(c - conns));
                c->len = 0;
                continue;
            }
            int status = 0;
            long used =
                r > 0 ? (c->len += (size_t)r, complete_response(c->buf, c->len, &status)) : -1;
            if (used == 0 && c->len == sizeof c->buf)
                used = -1;
            if (used == 0)
                continue;
            int64_t end = now_ns();
            if (used < 0 || status != 200 || (size_t)used != c->len) {
                // Closed, unframeable, a non-200, or extra bytes: an error; start afresh.
                errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = open_conn(ep, (int)(c - conns));
            } else if (c->record) {
                lat[nlat++] = end - c->scheduled;
            }
            c->len = 0;
            c->busy = 0;
            done++;
        }
    }
    int64_t elapsed = now_ns() - start;
    qsort(lat, (size_t)nlat, sizeof *lat, cmp_i64);
#define PCT(p)                                                                                     \
    (nlat ? lat[(int64_t)((p) * (double)nlat) < nlat ? (int64_t)((p) * (double)nlat) : nlat - 1] / \
                1000                                                                               \
          : -1)
    printf("n=%lld errors=%lld p50_us=%lld p90_us=%lld p99_us=%lld p999_us=%lld max_us=%lld "
           "achieved_rps=%.0f\n",
           (long long)nlat, (long long)errors, (long long)PCT(0.50), (long long)PCT(0.90),
           (long long)PCT(0.99), (long long)PCT(0.999),
           (long long)(nlat ? lat[nlat - 1] / 1000 : -1), (double)sent * 1e9 / (double)elapsed);
    return 0;
}
