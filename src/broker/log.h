/* SPDX-License-Identifier: Apache-2.0 */
/* A topic's log: append-only segment files "<base offset>.log" in one directory. Each
 * record is a 32-byte header {crc32c, data length, metadata length, flags, offset,
 * timestamp} followed by the metadata and the data; the CRC covers everything after
 * itself. Opening a log scans every segment and truncates a torn or corrupt tail. The
 * log writes to the page cache only: making bytes durable is the caller's job
 * (tr_bk_log_take_sync() hands out what needs an fdatasync). One thread owns a log. */
#ifndef TR_BROKER_LOG_H
#define TR_BROKER_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/slice.h"

#define TR_BK_HEADER_BYTES 32
#define TR_BK_MAX_RECORD_BYTES (64u * 1024 * 1024) /* sanity bound when reading */
#define TR_BK_FLAG_JSON 1u                         /* data is one JSON value (served unencoded) */

struct tr_bk_segment {
    uint64_t base;  /* offset of its first record (file name) */
    uint64_t count; /* records */
    uint64_t bytes; /* file size = append position */
    uint64_t *pos;  /* owned; file position of record base + i */
    size_t pos_cap;
    uint64_t last_ts; /* ms, wall clock; 0 when empty */
    int fd;
    bool dirty; /* written since the last tr_bk_log_take_sync() */
};

struct tr_bk_log {
    char *dir; /* owned */
    int dir_fd;
    bool dir_dirty;              /* a segment was created: the directory needs a sync */
    struct tr_bk_segment **segs; /* owned, oldest first; never empty once open */
    size_t nsegs;
    size_t segs_cap;
    uint64_t next_offset; /* offset the next append gets */
    uint64_t total_bytes;
    uint64_t segment_bytes; /* roll to a new segment past this size */
};

/* What recovery found. */
struct tr_bk_recovery {
    uint64_t records;
    uint64_t truncated_bytes; /* torn or corrupt bytes cut off */
    unsigned truncated_segments;
};

/* One record to append: metadata (a JSON object's text, may be empty) and data. */
struct tr_bk_rec_in {
    struct tr_slice meta;
    struct tr_slice data;
    uint32_t flags;
};

/* A record read back; `meta` and `data` point into the caller's scratch buffer. */
struct tr_bk_record {
    uint64_t offset;
    uint64_t timestamp_ms;
    uint32_t flags;
    struct tr_slice meta;
    struct tr_slice data;
};

/* Opens (creating if needed) the log in `dir`, recovering every segment. Returns 0 or
 * a negative errno; on failure the log is disposed. */
TR_MUST_CHECK int tr_bk_log_open(struct tr_bk_log *log, const char *dir, uint64_t segment_bytes,
                                 struct tr_bk_recovery *rec);
void tr_bk_log_close(struct tr_bk_log *log);

/* Appends `n` records with consecutive offsets (the first is returned in *first),
 * rolling to a new segment when the active one is full. All or nothing: on a write
 * error the active segment is cut back and a negative errno returned. */
TR_MUST_CHECK int tr_bk_log_append(struct tr_bk_log *log, const struct tr_bk_rec_in *recs, size_t n,
                                   uint64_t timestamp_ms, uint64_t *first);

/* Reads the record at `offset` into `scratch` (reset first). Returns 0, -ENOENT when
 * the offset is not in the log (deleted, a gap, or not written yet), -EIO on a bad
 * record. */
TR_MUST_CHECK int tr_bk_log_read(const struct tr_bk_log *log, uint64_t offset,
                                 struct tr_buf *scratch, struct tr_bk_record *out);

/* Reads up to `n` consecutive records from `offset` with one read, stopping at the end
 * of the segment holding `offset`. Fills `out` and returns how many (>= 1), or as
 * tr_bk_log_read(). */
TR_MUST_CHECK ssize_t tr_bk_log_read_run(const struct tr_bk_log *log, uint64_t offset, size_t n,
                                         struct tr_buf *scratch, struct tr_bk_record *out);

/* First offset still in the log (== next_offset when empty). */
uint64_t tr_bk_log_first(const struct tr_bk_log *log);

/* Fills `fds` with dup()s of every file needing an fdatasync since the last call (dirty
 * segments, then the directory), clearing their dirty marks; returns how many, at
 * most `max`. The caller syncs and closes them. */
size_t tr_bk_log_take_sync(struct tr_bk_log *log, int *fds, size_t max);

/* Deletes the oldest segment (never the active one). Returns 0 or -ENOENT. */
TR_MUST_CHECK int tr_bk_log_drop_oldest(struct tr_bk_log *log);

#endif
