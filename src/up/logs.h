/* SPDX-License-Identifier: Apache-2.0 */
/* Where the output of every process trellis up runs goes: each line is printed in the
 * foreground prefixed with the process name ("order-1 | ..."), appended to up.log with
 * the same prefix (what `trellis logs` reads), and appended without prefix to the
 * process's own file, .trellis/logs/<name>.log. trellis up's own messages use the name
 * "up". Everything runs on the loop thread; writes are plain blocking write(2)s. */
#ifndef TR_UP_LOGS_H
#define TR_UP_LOGS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/mem.h"
#include "core/slice.h"

#define TR_UP_LOG_ALL "up.log"
#define TR_UP_LOG_MAX_LINE (16u * 1024) /* longer lines are cut into pieces */

struct tr_up_logs {
    char *dir;  /* owned: .../.trellis/logs */
    int all_fd; /* up.log */
    int out_fd; /* the foreground (1), or -1 when quiet */
    bool color; /* out_fd is a terminal: color the prefixes */
    size_t pad; /* prefix width, so that the bars line up */
};

/* Creates `dir` if needed, removes the *.log files of an earlier run and opens up.log.
 * `out_fd` is where lines are echoed (-1: nowhere). Returns 0 or a negative errno. */
TR_MUST_CHECK int tr_up_logs_open(struct tr_up_logs *l, const char *dir, int out_fd);
void tr_up_logs_close(struct tr_up_logs *l);

/* Opens (appending, creating) <dir>/<name>.log for one process. Returns the fd or a
 * negative errno. */
int tr_up_logs_file(struct tr_up_logs *l, const char *name);

/* Makes prefixes at least `width` characters wide. */
void tr_up_logs_pad(struct tr_up_logs *l, size_t width);

/* One line of output (without its newline) from process `name`; `file_fd` is its own
 * file (-1: none); `color` picks the prefix color. */
void tr_up_logs_line(struct tr_up_logs *l, const char *name, unsigned color, int file_fd,
                     struct tr_slice line);

/* trellis up's own message, logged as process "up". */
void tr_up_logs_note(struct tr_up_logs *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A stable color index for a name. */
unsigned tr_up_logs_color(const char *name);

#endif
