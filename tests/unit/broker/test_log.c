/* SPDX-License-Identifier: Apache-2.0 */
/* src/broker/log.c: append, read back, roll, recover from a torn tail and a corrupt
 * CRC; src/broker/retention.c on the same files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/crc32c.h"
#include "broker/log.h"
#include "broker/retention.h"

static char dir[256];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/tr-bk-log-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void append_n(struct tr_bk_log *log, int from, int n, uint64_t ts)
{
    for (int i = from; i < from + n; i++) {
        char data[64];
        int len = snprintf(data, sizeof(data), "event-%d", i);
        struct tr_bk_rec_in rec = {.meta = TR_SLICE_LIT("{\"k\":\"v\"}"),
                                   .data = tr_slice(data, (size_t)len)};
        uint64_t first;
        assert_int_equal(tr_bk_log_append(log, &rec, 1, ts, &first), 0);
        assert_int_equal(first, (uint64_t)i);
    }
}

static void check_record(struct tr_bk_log *log, int i)
{
    struct tr_buf scratch;
    tr_buf_init(&scratch);
    struct tr_bk_record rec;
    assert_int_equal(tr_bk_log_read(log, (uint64_t)i, &scratch, &rec), 0);
    char want[64];
    int len = snprintf(want, sizeof(want), "event-%d", i);
    assert_int_equal(rec.offset, (uint64_t)i);
    assert_int_equal(rec.data.len, (size_t)len);
    assert_memory_equal(rec.data.ptr, want, (size_t)len);
    assert_true(tr_slice_eq(rec.meta, TR_SLICE_LIT("{\"k\":\"v\"}")));
    tr_buf_dispose(&scratch);
}

static void crc32c_known_vector(void **state)
{
    /* RFC 3720 B.4: 32 bytes of zeros. */
    unsigned char zeros[32] = {0};
    assert_int_equal(tr_crc32c(0, zeros, sizeof(zeros)), 0x8a9136aa);
    assert_int_equal(tr_crc32c(0, "123456789", 9), 0xe3069283);
}

static void append_read_reopen(void **state)
{
    struct tr_bk_log log;
    struct tr_bk_recovery rec;
    assert_int_equal(tr_bk_log_open(&log, dir, 1 << 20, &rec), 0);
    append_n(&log, 0, 100, 1000);
    struct tr_bk_rec_in batch[3] = {
        {.data = TR_SLICE_LIT("event-100")},
        {.data = TR_SLICE_LIT("event-101")},
        {.data = TR_SLICE_LIT("event-102")},
    };
    uint64_t first;
    assert_int_equal(tr_bk_log_append(&log, batch, 3, 1000, &first), 0);
    assert_int_equal(first, 100);
    check_record(&log, 7);
    struct tr_buf scratch;
    tr_buf_init(&scratch);
    struct tr_bk_record r;
    assert_int_equal(tr_bk_log_read(&log, 103, &scratch, &r), -ENOENT);
    tr_buf_dispose(&scratch);
    tr_bk_log_close(&log);

    assert_int_equal(tr_bk_log_open(&log, dir, 1 << 20, &rec), 0);
    assert_int_equal(rec.records, 103);
    assert_int_equal(rec.truncated_bytes, 0);
    assert_int_equal(log.next_offset, 103);
    check_record(&log, 0);
    check_record(&log, 99);
    tr_bk_log_close(&log);
}

static void rolls_segments(void **state)
{
    struct tr_bk_log log;
    struct tr_bk_recovery rec;
    assert_int_equal(tr_bk_log_open(&log, dir, 4096, &rec), 0);
    append_n(&log, 0, 500, 1000);
    assert_true(log.nsegs > 3);
    int fds[64];
    size_t n = tr_bk_log_take_sync(&log, fds, 64);
    assert_true(n >= log.nsegs); /* every segment written, plus the directory */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fdatasync(fds[i]), 0);
        close(fds[i]);
    }
    assert_int_equal(tr_bk_log_take_sync(&log, fds, 64), 0);
    /* A run read stops at the end of the segment holding its first offset. */
    struct tr_buf scratch;
    tr_buf_init(&scratch);
    struct tr_bk_record recs[600];
    const struct tr_bk_segment *s1 = log.segs[1];
    ssize_t got = tr_bk_log_read_run(&log, s1->base - 2, 600, &scratch, recs);
    assert_int_equal(got, 2);
    assert_int_equal(recs[1].offset, s1->base - 1);
    got = tr_bk_log_read_run(&log, s1->base, 5, &scratch, recs);
    assert_int_equal(got, 5);
    for (int i = 0; i < 5; i++) {
        char want[32];
        int len = snprintf(want, sizeof(want), "event-%d", (int)s1->base + i);
        assert_true(tr_slice_eq(recs[i].data, tr_slice(want, (size_t)len)));
    }
    tr_buf_dispose(&scratch);
    tr_bk_log_close(&log);
    assert_int_equal(tr_bk_log_open(&log, dir, 4096, &rec), 0);
    assert_int_equal(rec.records, 500);
    for (int i = 0; i < 500; i += 37) {
        check_record(&log, i);
    }
    tr_bk_log_close(&log);
}

static void last_segment_path(struct tr_bk_log *log, char *out, size_t n)
{
    snprintf(out, n, "%s/%020llu.log", dir, (unsigned long long)log->segs[log->nsegs - 1]->base);
}

static void recovers_torn_tail(void **state)
{
    struct tr_bk_log log;
    struct tr_bk_recovery rec;
    assert_int_equal(tr_bk_log_open(&log, dir, 1 << 20, &rec), 0);
    append_n(&log, 0, 10, 1000);
    char path[512];
    last_segment_path(&log, path, sizeof(path));
    uint64_t good = log.segs[0]->bytes;
    tr_bk_log_close(&log);
    /* A crash in the middle of the 11th record: half a header plus garbage. */
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x10\x00\x00\x00garbage", 11), 11);
    close(fd);
    assert_int_equal(tr_bk_log_open(&log, dir, 1 << 20, &rec), 0);
    assert_int_equal(rec.records, 10);
    assert_int_equal(rec.truncated_bytes, 11);
    assert_int_equal(log.segs[0]->bytes, good);
    /* Appends continue where the good data ends. */
    append_n(&log, 10, 2, 1000);
    tr_bk_log_close(&log);
    assert_int_equal(tr_bk_log_open(&log, dir, 1 << 20, &rec), 0);
    assert_int_equal(rec.records, 12);
    check_record(&log, 11);
    tr_bk_log_close(&log);
}

static void recovers_corrupt_crc(void **state)
{
    struct tr_bk_log log;
    struct tr_bk_recovery rec;
    assert_int_equal(tr_bk_log_open(&log, dir, 1 << 20, &rec), 0);
    append_n(&log, 0, 10, 1000);
    uint64_t pos7 = log.segs[0]->pos[7];
    char path[512];
    last_segment_path(&log, path, sizeof(path));
    tr_bk_log_close(&log);
    /* Flip one payload byte of record 7: it and everything after it are cut. */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    char c;
    assert_int_equal(pread(fd, &c, 1, (off_t)pos7 + TR_BK_HEADER_BYTES + 3), 1);
    c ^= 0x55;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)pos7 + TR_BK_HEADER_BYTES + 3), 1);
    close(fd);
    assert_int_equal(tr_bk_log_open(&log, dir, 1 << 20, &rec), 0);
    assert_int_equal(rec.records, 7);
    assert_int_equal(rec.truncated_segments, 1);
    assert_int_equal(log.next_offset, 7);
    check_record(&log, 6);
    tr_bk_log_close(&log);
}

static void retention_by_size_and_age(void **state)
{
    struct tr_bk_log log;
    struct tr_bk_recovery rec;
    assert_int_equal(tr_bk_log_open(&log, dir, 4096, &rec), 0);
    append_n(&log, 0, 300, 1000);   /* old */
    append_n(&log, 300, 300, 5000); /* new */
    size_t segs = log.nsegs;
    assert_true(segs > 6);
    /* Nothing over budget: nothing deleted. */
    struct tr_bk_retention none = {0};
    assert_int_equal(tr_bk_retention_apply(&log, &none, 10000), 0);
    /* By age: segments whose newest record is older than 2 s at t = 4.5 s go. */
    struct tr_bk_retention age = {.max_age_ms = 2000};
    int dropped = tr_bk_retention_apply(&log, &age, 4500);
    assert_true(dropped > 0);
    assert_true(log.segs[0]->last_ts == 5000 || log.segs[0]->base <= 300);
    for (size_t i = 0; i < log.nsegs; i++) {
        assert_true(log.segs[i]->last_ts + 2000 >= 4500 || i == log.nsegs - 1);
    }
    /* By size: down to at most 8 KiB, whole segments, the active one kept. */
    struct tr_bk_retention size = {.max_bytes = 8192};
    assert_true(tr_bk_retention_apply(&log, &size, 4500) > 0);
    assert_true(log.total_bytes <= 8192 || log.nsegs == 1);
    uint64_t first = tr_bk_log_first(&log);
    assert_true(first > 300);
    struct tr_buf scratch;
    tr_buf_init(&scratch);
    struct tr_bk_record r;
    assert_int_equal(tr_bk_log_read(&log, first - 1, &scratch, &r), -ENOENT);
    tr_buf_dispose(&scratch);
    check_record(&log, 599);
    tr_bk_log_close(&log);
    /* Reopening sees the same first offset. */
    assert_int_equal(tr_bk_log_open(&log, dir, 4096, &rec), 0);
    assert_int_equal(tr_bk_log_first(&log), first);
    assert_int_equal(log.next_offset, 600);
    tr_bk_log_close(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32c_known_vector),
        cmocka_unit_test_setup_teardown(append_read_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(rolls_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(recovers_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(recovers_corrupt_crc, setup, teardown),
        cmocka_unit_test_setup_teardown(retention_by_size_and_age, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
