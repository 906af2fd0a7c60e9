/* SPDX-License-Identifier: Apache-2.0 */
/* Segment files and their recovery (see log.h). Records are found through an in-memory
 * array of file positions per segment, rebuilt by the recovery scan. */
#include "broker/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "broker/crc32c.h"
#include "core/errors.h"
#include "core/log.h"

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void seg_path(const struct tr_bk_log *log, uint64_t base, char *out, size_t n)
{
    snprintf(out, n, "%s/%020" PRIu64 ".log", log->dir, base);
}

static void seg_free(struct tr_bk_segment *s)
{
    if (s->fd >= 0) {
        close(s->fd);
    }
    tr_free_null(&s->pos);
    tr_free_null(&s);
}

static void seg_push_pos(struct tr_bk_segment *s, uint64_t pos)
{
    if (s->count == s->pos_cap) {
        s->pos_cap = s->pos_cap ? s->pos_cap * 2 : 256;
        s->pos = tr_xrealloc(s->pos, s->pos_cap * sizeof(*s->pos));
    }
    s->pos[s->count++] = pos;
}

static void log_push_seg(struct tr_bk_log *log, struct tr_bk_segment *s)
{
    if (log->nsegs == log->segs_cap) {
        log->segs_cap = log->segs_cap ? log->segs_cap * 2 : 8;
        log->segs = tr_xrealloc(log->segs, log->segs_cap * sizeof(*log->segs));
    }
    log->segs[log->nsegs++] = s;
}

/* Validates the record at `pos`; returns its total size, or 0 if it is torn or bad. */
static uint64_t check_record(int fd, uint64_t pos, uint64_t file_size, uint64_t want_offset,
                             struct tr_buf *tmp, uint64_t *ts)
{
    unsigned char h[TR_BK_HEADER_BYTES];
    if (file_size - pos < TR_BK_HEADER_BYTES ||
        pread(fd, h, sizeof(h), (off_t)pos) != (ssize_t)sizeof(h)) {
        return 0;
    }
    uint64_t body = (uint64_t)get_u32(h + 4) + get_u32(h + 8);
    if (body > TR_BK_MAX_RECORD_BYTES || file_size - pos - TR_BK_HEADER_BYTES < body ||
        get_u64(h + 16) != want_offset) {
        return 0;
    }
    tr_buf_reset(tmp);
    char *p = tr_buf_reserve(tmp, body + 1);
    if (pread(fd, p, body, (off_t)(pos + TR_BK_HEADER_BYTES)) != (ssize_t)body) {
        return 0;
    }
    uint32_t crc = tr_crc32c(0, h + 4, TR_BK_HEADER_BYTES - 4);
    if (tr_crc32c(crc, p, body) != get_u32(h)) {
        return 0;
    }
    *ts = get_u64(h + 24);
    return TR_BK_HEADER_BYTES + body;
}

/* Scans one segment, cutting it at the first bad record. */
static int recover_segment(struct tr_bk_segment *s, struct tr_bk_recovery *rec, const char *path)
{
    struct stat st;
    if (fstat(s->fd, &st) == -1) {
        return -errno;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint64_t pos = 0;
    struct tr_buf tmp;
    tr_buf_init(&tmp);
    for (;;) {
        uint64_t ts = 0;
        uint64_t n = check_record(s->fd, pos, size, s->base + s->count, &tmp, &ts);
        if (n == 0) {
            break;
        }
        seg_push_pos(s, pos);
        s->last_ts = ts;
        pos += n;
    }
    tr_buf_dispose(&tmp);
    rec->records += s->count;
    if (pos < size) {
        TR_LOG_WARN("broker", NULL, "%s: cutting %" PRIu64 " torn or corrupt bytes at %" PRIu64,
                    path, size - pos, pos);
        if (ftruncate(s->fd, (off_t)pos) == -1) {
            return -errno;
        }
        s->dirty = true;
        rec->truncated_bytes += size - pos;
        rec->truncated_segments++;
    }
    s->bytes = pos;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the segment bases in the directory, sorted. */
static int list_bases(const char *dir, uint64_t **out, size_t *n)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -errno;
    }
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char *end = NULL;
        if (len != 24 || strcmp(e->d_name + 20, ".log") != 0) {
            continue;
        }
        uint64_t base = strtoull(e->d_name, &end, 10);
        if (end != e->d_name + 20) {
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = tr_xrealloc(*out, cap * sizeof(**out));
        }
        (*out)[(*n)++] = base;
    }
    closedir(d);
    if (*n > 0) {
        qsort(*out, *n, sizeof(**out), cmp_u64);
    }
    return 0;
}

static int open_segment(struct tr_bk_log *log, uint64_t base, bool create,
                        struct tr_bk_segment **out)
{
    char path[4096];
    seg_path(log, base, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0644);
    if (fd == -1) {
        return -errno;
    }
    struct tr_bk_segment *s = tr_xcalloc(1, sizeof(*s));
    s->base = base;
    s->fd = fd;
    if (create) {
        log->dir_dirty = true;
    }
    *out = s;
    return 0;
}

int tr_bk_log_open(struct tr_bk_log *log, const char *dir, uint64_t segment_bytes,
                   struct tr_bk_recovery *rec)
{
    memset(log, 0, sizeof(*log));
    memset(rec, 0, sizeof(*rec));
    log->dir_fd = -1;
    log->dir = tr_xstrdup(dir);
    log->segment_bytes = segment_bytes;
    if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
        int err = -errno;
        tr_bk_log_close(log);
        return err;
    }
    log->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    uint64_t *bases = NULL;
    size_t nbases = 0;
    int rc = log->dir_fd == -1 ? -errno : list_bases(dir, &bases, &nbases);
    for (size_t i = 0; rc == 0 && i < nbases; i++) {
        struct tr_bk_segment *s;
        char path[4096];
        seg_path(log, bases[i], path, sizeof(path));
        rc = open_segment(log, bases[i], false, &s);
        if (rc != 0) {
            break;
        }
        log_push_seg(log, s);
        rc = recover_segment(s, rec, path);
        log->total_bytes += s->bytes;
        log->next_offset = s->base + s->count;
    }
    tr_free_null(&bases);
    if (rc == 0 && log->nsegs == 0) {
        struct tr_bk_segment *s;
        rc = open_segment(log, 0, true, &s);
        if (rc == 0) {
            log_push_seg(log, s);
        }
    }
    if (rc != 0) {
        tr_bk_log_close(log);
    }
    return rc;
}

void tr_bk_log_close(struct tr_bk_log *log)
{
    for (size_t i = 0; i < log->nsegs; i++) {
        seg_free(log->segs[i]);
    }
    tr_free_null(&log->segs);
    log->nsegs = 0;
    if (log->dir_fd >= 0) {
        close(log->dir_fd);
        log->dir_fd = -1;
    }
    tr_free_null(&log->dir);
}

static int roll(struct tr_bk_log *log)
{
    struct tr_bk_segment *s;
    int rc = open_segment(log, log->next_offset, true, &s);
    if (rc != 0) {
        return rc;
    }
    log_push_seg(log, s);
    return 0;
}

static int write_all(int fd, struct iovec *iov, int n, uint64_t pos)
{
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n > IOV_MAX ? IOV_MAX : n, (off_t)pos);
        if (w == -1) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        pos += (uint64_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

int tr_bk_log_append(struct tr_bk_log *log, const struct tr_bk_rec_in *recs, size_t n,
                     uint64_t timestamp_ms, uint64_t *first)
{
    struct tr_bk_segment *s = log->segs[log->nsegs - 1];
    if (s->count > 0 && s->bytes >= log->segment_bytes) {
        int rc = roll(log);
        if (rc != 0) {
            return rc;
        }
        s = log->segs[log->nsegs - 1];
    }
    unsigned char *heads = tr_xmalloc(n * TR_BK_HEADER_BYTES);
    struct iovec *iov = tr_xmalloc(n * 3 * sizeof(*iov));
    uint64_t pos = s->bytes;
    for (size_t i = 0; i < n; i++) {
        unsigned char *h = heads + i * TR_BK_HEADER_BYTES;
        put_u32(h + 4, (uint32_t)recs[i].data.len);
        put_u32(h + 8, (uint32_t)recs[i].meta.len);
        put_u32(h + 12, recs[i].flags);
        put_u64(h + 16, log->next_offset + i);
        put_u64(h + 24, timestamp_ms);
        uint32_t crc = tr_crc32c(0, h + 4, TR_BK_HEADER_BYTES - 4);
        crc = tr_crc32c(crc, recs[i].meta.ptr, recs[i].meta.len);
        put_u32(h, tr_crc32c(crc, recs[i].data.ptr, recs[i].data.len));
        iov[3 * i] = (struct iovec){h, TR_BK_HEADER_BYTES};
        iov[3 * i + 1] = (struct iovec){(void *)recs[i].meta.ptr, recs[i].meta.len};
        iov[3 * i + 2] = (struct iovec){(void *)recs[i].data.ptr, recs[i].data.len};
    }
    int rc = write_all(s->fd, iov, (int)(3 * n), pos);
    tr_free_null(&iov);
    tr_free_null(&heads);
    s->dirty = true;
    if (rc != 0) {
        /* Cut back what was partly written so the segment stays well-formed. */
        if (ftruncate(s->fd, (off_t)s->bytes) == -1) {
            TR_LOG_ERROR("broker", NULL, "%s: cannot cut back a failed append: %s", log->dir,
                         tr_strerror(-errno));
        }
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        seg_push_pos(s, pos);
        pos += TR_BK_HEADER_BYTES + recs[i].meta.len + recs[i].data.len;
    }
    log->total_bytes += pos - s->bytes;
    s->bytes = pos;
    s->last_ts = timestamp_ms;
    *first = log->next_offset;
    log->next_offset += n;
    return 0;
}

static const struct tr_bk_segment *find_segment(const struct tr_bk_log *log, uint64_t offset)
{
    size_t lo = 0;
    size_t hi = log->nsegs;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (log->segs[mid]->base <= offset) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    const struct tr_bk_segment *s = log->segs[lo];
    if (offset < s->base || offset - s->base >= s->count) {
        return NULL;
    }
    return s;
}

/* Decodes the record at `p` (`len` bytes available, exactly one record). */
static int decode(const unsigned char *p, uint64_t len, struct tr_bk_record *out)
{
    if (len < TR_BK_HEADER_BYTES) {
        return -EIO;
    }
    uint32_t dlen = get_u32(p + 4);
    uint32_t mlen = get_u32(p + 8);
    if ((uint64_t)dlen + mlen + TR_BK_HEADER_BYTES != len) {
        return -EIO;
    }
    out->offset = get_u64(p + 16);
    out->timestamp_ms = get_u64(p + 24);
    out->flags = get_u32(p + 12);
    out->meta = tr_slice((const char *)p + TR_BK_HEADER_BYTES, mlen);
    out->data = tr_slice((const char *)p + TR_BK_HEADER_BYTES + mlen, dlen);
    return 0;
}

ssize_t tr_bk_log_read_run(const struct tr_bk_log *log, uint64_t offset, size_t n,
                           struct tr_buf *scratch, struct tr_bk_record *out)
{
    const struct tr_bk_segment *s = log->nsegs > 0 ? find_segment(log, offset) : NULL;
    if (s == NULL || n == 0) {
        return -ENOENT;
    }
    uint64_t i = offset - s->base;
    if (n > s->count - i) {
        n = (size_t)(s->count - i);
    }
    uint64_t pos = s->pos[i];
    uint64_t end = i + n < s->count ? s->pos[i + n] : s->bytes;
    if (end - pos > TR_BK_MAX_RECORD_BYTES * 2ull) {
        /* Keep one read bounded: shrink the run (a single record always fits). */
        while (n > 1 && s->pos[i + n - 1] - pos > TR_BK_MAX_RECORD_BYTES) {
            n--;
        }
        end = s->pos[i + n];
    }
    tr_buf_reset(scratch);
    unsigned char *p = (unsigned char *)tr_buf_reserve(scratch, end - pos);
    if (pread(s->fd, p, end - pos, (off_t)pos) != (ssize_t)(end - pos)) {
        return -EIO;
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t a = s->pos[i + k] - pos;
        uint64_t b = (i + k + 1 < s->count ? s->pos[i + k + 1] : s->bytes) - pos;
        int rc = decode(p + a, b - a, &out[k]);
        if (rc != 0 || out[k].offset != offset + k) {
            return -EIO;
        }
    }
    return (ssize_t)n;
}

int tr_bk_log_read(const struct tr_bk_log *log, uint64_t offset, struct tr_buf *scratch,
                   struct tr_bk_record *out)
{
    ssize_t n = tr_bk_log_read_run(log, offset, 1, scratch, out);
    return n < 0 ? (int)n : 0;
}

uint64_t tr_bk_log_first(const struct tr_bk_log *log)
{
    for (size_t i = 0; i < log->nsegs; i++) {
        if (log->segs[i]->count > 0) {
            return log->segs[i]->base;
        }
    }
    return log->next_offset;
}

size_t tr_bk_log_take_sync(struct tr_bk_log *log, int *fds, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < log->nsegs && n < max; i++) {
        struct tr_bk_segment *s = log->segs[i];
        if (!s->dirty) {
            continue;
        }
        int fd = dup(s->fd);
        if (fd == -1) {
            continue; /* stays dirty: retried by the next round */
        }
        s->dirty = false;
        fds[n++] = fd;
    }
    if (log->dir_dirty && n < max) {
        int fd = dup(log->dir_fd);
        if (fd != -1) {
            log->dir_dirty = false;
            fds[n++] = fd;
        }
    }
    return n;
}

int tr_bk_log_drop_oldest(struct tr_bk_log *log)
{
    if (log->nsegs < 2) {
        return -ENOENT;
    }
    struct tr_bk_segment *s = log->segs[0];
    char path[4096];
    seg_path(log, s->base, path, sizeof(path));
    if (unlink(path) == -1) {
        return -errno;
    }
    log->total_bytes -= s->bytes;
    seg_free(s);
    memmove(log->segs, log->segs + 1, (log->nsegs - 1) * sizeof(*log->segs));
    log->nsegs--;
    log->dir_dirty = true;
    return 0;
}
