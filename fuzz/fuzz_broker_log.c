/* SPDX-License-Identifier: Apache-2.0 */
/* Broker log recovery on arbitrary segment bytes: the input becomes the only segment
 * of a log directory, which is opened (scanned, cut at the first bad record), read back
 * record by record, appended to and reopened. Nothing may crash, and whatever survives
 * recovery must read back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "broker/log.h"
#include "core/mem.h"

static char dir[64];
static char seg[128];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/tr-fuzz-bklog-XXXXXX");
        TR_ASSERT(mkdtemp(dir) != NULL);
        snprintf(seg, sizeof(seg), "%s/%020d.log", dir, 0);
    }
    if (size > 256 * 1024) {
        return 0;
    }
    int fd = open(seg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    TR_ASSERT(fd >= 0);
    TR_ASSERT(write(fd, data, size) == (ssize_t)size);
    close(fd);
    struct tr_bk_log log;
    struct tr_bk_recovery rec;
    TR_ASSERT(tr_bk_log_open(&log, dir, 1 << 20, &rec) == 0);
    TR_ASSERT(rec.records == log.next_offset);
    struct tr_buf scratch;
    tr_buf_init(&scratch);
    for (uint64_t o = 0; o < log.next_offset; o++) {
        struct tr_bk_record r;
        TR_ASSERT(tr_bk_log_read(&log, o, &scratch, &r) == 0);
        TR_ASSERT(r.offset == o);
    }
    struct tr_bk_rec_in in = {.data = TR_SLICE_LIT("appended")};
    uint64_t first;
    TR_ASSERT(tr_bk_log_append(&log, &in, 1, 1, &first) == 0);
    uint64_t next = log.next_offset;
    tr_bk_log_close(&log);
    TR_ASSERT(tr_bk_log_open(&log, dir, 1 << 20, &rec) == 0);
    TR_ASSERT(log.next_offset == next && rec.truncated_bytes == 0);
    struct tr_bk_record r;
    TR_ASSERT(tr_bk_log_read(&log, first, &scratch, &r) == 0);
    TR_ASSERT(tr_slice_eq(r.data, TR_SLICE_LIT("appended")));
    tr_bk_log_close(&log);
    tr_buf_dispose(&scratch);
    return 0;
}
