/* SPDX-License-Identifier: Apache-2.0 */
/* Broker benchmark client: publish -> deliver -> ack of fixed-size events, either
 * against trellis server's broker (HTTP/1.1 keep-alive, NDJSON batches) or against
 * nats-server JetStream (libnats, async publish, push consumer with explicit acks).
 * Each event carries its send time (CLOCK_MONOTONIC, same host); the consumer records
 * end-to-end latency. Prints one line: mode msgs msgs/s p50_ms p99_ms.
 *
 *   broker_bench trellis HOST:PORT N SIZE PUBLISHERS BATCH CONSUMERS [RATE]
 *   broker_bench jetstream nats://HOST:PORT N SIZE MAX_PENDING [RATE]
 *
 * RATE (events/s over all publishers, 0 = as fast as possible) paces publishing: event i
 * is not sent before start + i / RATE, which measures latency at a fixed load instead of
 * under saturation.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_N 2000000
#define MAX_THREADS 32
#define BUF_BYTES (8u << 20)

static uint32_t lat_us[MAX_N];
static atomic_long received;
static atomic_long sent;
static long total;
static size_t size;
static uint64_t t_start;
static uint64_t t_last;
static double rate; /* events/s, 0 = unpaced */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void record(uint64_t sent_ns)
{
    long i = atomic_fetch_add(&received, 1);
    uint64_t t = now_ns();
    if (i < MAX_N) {
        lat_us[i] = (uint32_t)((t - sent_ns) / 1000);
    }
    if (i + 1 == total) {
        t_last = t;
    }
}

/* Waits until event `i` is due (paced runs). */
static void pace(long i)
{
    if (rate <= 0) {
        return;
    }
    uint64_t due = t_start + (uint64_t)((double)i * 1e9 / rate);
    uint64_t now = now_ns();
    if (due > now) {
        struct timespec ts = {(time_t)((due - now) / 1000000000u),
                              (long)((due - now) % 1000000000u)};
        nanosleep(&ts, NULL);
    }
}

/* Payload: 16 hex digits of send time, then 'x' up to `size`. */
static void fill_payload(char *p, uint64_t ts)
{
    snprintf(p, 17, "%016llx", (unsigned long long)ts);
    memset(p + 16, 'x', size - 16);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *mode)
{
    long n = atomic_load(&received);
    if (n > MAX_N) {
        n = MAX_N;
    }
    qsort(lat_us, (size_t)n, sizeof(lat_us[0]), cmp_u32);
    double secs = (double)(t_last - t_start) / 1e9;
    printf("%s msgs=%ld rate=%.0f p50_ms=%.2f p99_ms=%.2f\n", mode, n, (double)n / secs,
           lat_us[n / 2] / 1000.0, lat_us[(size_t)((double)n * 0.99)] / 1000.0);
}

/* ------------------------------------------------------------ trellis (HTTP) */

static struct sockaddr_in addr;
static int batch;
static char *bufs[MAX_THREADS];

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            perror("write");
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* One request on a keep-alive connection; returns the body (in buf) and its length. */
static size_t http(int fd, char *buf, const char *path, const char *extra, const char *body,
                   size_t len, int *status)
{
    char head[512];
    int h = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: b\r\n%sContent-Length: %zu"
                     "\r\n\r\n",
                     path, extra, len);
    write_all(fd, head, (size_t)h);
    write_all(fd, body, len);
    size_t got = 0;
    char *end = NULL;
    while (end == NULL) {
        ssize_t r = read(fd, buf + got, BUF_BYTES - 1 - got);
        if (r <= 0) {
            fprintf(stderr, "read: connection closed\n");
            exit(1);
        }
        got += (size_t)r;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    *status = atoi(buf + 9);
    char *cl = strcasestr(buf, "content-length:");
    size_t blen = cl ? strtoull(cl + 15, NULL, 10) : 0;
    size_t hlen = (size_t)(end + 4 - buf);
    while (got < hlen + blen) {
        ssize_t r = read(fd, buf + got, BUF_BYTES - 1 - got);
        if (r <= 0) {
            fprintf(stderr, "read: connection closed\n");
            exit(1);
        }
        got += (size_t)r;
    }
    memmove(buf, buf + hlen, blen);
    buf[blen] = '\0';
    return blen;
}

static void *trellis_publisher(void *arg)
{
    int id = (int)(intptr_t)arg;
    int fd = dial();
    char *body = malloc(BUF_BYTES);
    char *resp = bufs[id];
    char *payload = malloc(size + 1);
    for (;;) {
        long first = atomic_fetch_add(&sent, batch);
        if (first >= total) {
            break;
        }
        long n = total - first < batch ? total - first : batch;
        pace(first);
        size_t len = 0;
        for (long i = 0; i < n; i++) {
            fill_payload(payload, now_ns());
            len += (size_t)snprintf(body + len, BUF_BYTES - len, "{\"data\":\"%.*s\"}\n", (int)size,
                                    payload);
        }
        int status;
        http(fd, resp, "/v1/broker/publish/bench", "Content-Type: application/x-ndjson\r\n", body,
             len, &status);
        if (status != 200) {
            fprintf(stderr, "publish: %d %s\n", status, resp);
            exit(1);
        }
    }
    free(payload);
    free(body);
    close(fd);
    return NULL;
}

static void *trellis_consumer(void *arg)
{
    int id = (int)(intptr_t)arg;
    int fd = dial();
    char *resp = bufs[id];
    char *acks = malloc(BUF_BYTES);
    while (atomic_load(&received) < total) {
        int status;
        size_t n = http(fd, resp, "/v1/broker/fetch/bench/bench?max=1000&wait=1s",
                        "Accept: application/x-ndjson\r\n", "", 0, &status);
        if (status != 200) {
            fprintf(stderr, "fetch: %d %s\n", status, resp);
            exit(1);
        }
        size_t alen = 0;
        acks[alen++] = '[';
        for (char *line = resp; line < resp + n;) {
            char *nl = strchr(line, '\n');
            char *off = strstr(line, "\"offset\":");
            char *data = strstr(line, "\"data\":\"");
            if (off == NULL || data == NULL) {
                break;
            }
            record(strtoull(data + 8, NULL, 16));
            alen += (size_t)snprintf(acks + alen, 32, "%s%llu", alen > 1 ? "," : "",
                                     strtoull(off + 9, NULL, 10));
            line = nl ? nl + 1 : resp + n;
        }
        acks[alen++] = ']';
        if (alen > 2) {
            http(fd, resp, "/v1/broker/ack/bench/bench", "", acks, alen, &status);
            if (status != 200) {
                fprintf(stderr, "ack: %d %s\n", status, resp);
                exit(1);
            }
        }
    }
    free(acks);
    close(fd);
    return NULL;
}

static int run_trellis(char **argv)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", argv[2]);
    char *colon = strchr(host, ':');
    *colon = '\0';
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(colon + 1));
    inet_pton(AF_INET, host, &addr.sin_addr);
    total = atol(argv[3]);
    size = (size_t)atol(argv[4]);
    int pubs = atoi(argv[5]);
    batch = atoi(argv[6]);
    int cons = atoi(argv[7]);
    rate = argv[8] ? atof(argv[8]) : 0;
    pthread_t th[MAX_THREADS];
    for (int i = 0; i < pubs + cons; i++) {
        bufs[i] = malloc(BUF_BYTES);
    }
    /* Create the group before publishing so that it sees every event. */
    int fd = dial();
    int status;
    http(fd, bufs[0], "/v1/broker/fetch/bench/bench?max=1", "", "", 0, &status);
    close(fd);
    t_start = now_ns();
    for (int i = 0; i < cons; i++) {
        pthread_create(&th[i], NULL, trellis_consumer, (void *)(intptr_t)i);
    }
    for (int i = 0; i < pubs; i++) {
        pthread_create(&th[cons + i], NULL, trellis_publisher, (void *)(intptr_t)(cons + i));
    }
    for (int i = 0; i < pubs + cons; i++) {
        pthread_join(th[i], NULL);
    }
    report("trellis");
    return 0;
}

/* ------------------------------------------------------------ JetStream */

static void on_js_msg_ts(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    char ts[17];
    memcpy(ts, natsMsg_GetData(msg), 16);
    ts[16] = '\0';
    record(strtoull(ts, NULL, 16));
    natsMsg_Ack(msg, NULL);
    natsMsg_Destroy(msg);
}

static int run_jetstream(char **argv)
{
    total = atol(argv[3]);
    size = (size_t)atol(argv[4]);
    int64_t pending = atol(argv[5]);
    rate = argv[6] ? atof(argv[6]) : 0;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsErrCode jerr = 0;
    natsStatus s = natsConnection_ConnectTo(&nc, argv[2]);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = pending;
    if (s == NATS_OK) {
        s = natsConnection_JetStream(&js, nc, &jo);
    }
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = "BENCH";
    const char *subjects[] = {"bench"};
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    if (s == NATS_OK) {
        s = js_AddStream(NULL, js, &sc, NULL, &jerr);
    }
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.ManualAck = true;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.MaxAckPending = 100000;
    if (s == NATS_OK) {
        s = js_Subscribe(&sub, js, "bench", on_js_msg_ts, NULL, NULL, &so, &jerr);
    }
    if (s == NATS_OK) {
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    }
    if (s != NATS_OK) {
        fprintf(stderr, "jetstream setup: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
        return 1;
    }
    char *payload = malloc(size + 1);
    t_start = now_ns();
    for (long i = 0; i < total; i++) {
        pace(i);
        fill_payload(payload, now_ns());
        s = js_PublishAsync(js, "bench", payload, (int)size, NULL);
        if (s != NATS_OK) {
            fprintf(stderr, "publish: %s\n", natsStatus_GetText(s));
            return 1;
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    js_PublishAsyncComplete(js, &po);
    while (atomic_load(&received) < total) {
        usleep(1000);
    }
    report("jetstream");
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(payload);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 8 && strcmp(argv[1], "trellis") == 0) {
        return run_trellis(argv);
    }
    if (argc >= 6 && strcmp(argv[1], "jetstream") == 0) {
        return run_jetstream(argv);
    }
    fprintf(stderr, "usage: see the comment at the top of bench/broker_bench.c\n");
    return 2;
}
