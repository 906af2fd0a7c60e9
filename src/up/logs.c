/* SPDX-License-Identifier: Apache-2.0 */
/* Log fan-out for trellis up (see logs.h). */
#include "up/logs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"

static const char *const palette[] = {
    "\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m",
    "\x1b[96m", "\x1b[93m", "\x1b[92m", "\x1b[95m", "\x1b[94m",
};
#define RESET "\x1b[0m"

static int mkdir_p(const char *path)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            return -errno;
        }
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

static void remove_old_logs(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".log") == 0) {
            unlinkat(dirfd(d), e->d_name, 0);
        }
    }
    closedir(d);
}

int tr_up_logs_open(struct tr_up_logs *l, const char *dir, int out_fd)
{
    memset(l, 0, sizeof(*l));
    l->all_fd = -1;
    l->out_fd = out_fd;
    l->color = out_fd >= 0 && isatty(out_fd);
    l->pad = 2;
    int rc = mkdir_p(dir);
    if (rc != 0) {
        return rc;
    }
    remove_old_logs(dir);
    l->dir = tr_xstrdup(dir);
    l->all_fd = tr_up_logs_file(l, "up");
    if (l->all_fd < 0) {
        rc = l->all_fd;
        tr_free_null(&l->dir);
        return rc;
    }
    return 0;
}

void tr_up_logs_close(struct tr_up_logs *l)
{
    if (l->all_fd >= 0) {
        close(l->all_fd);
        l->all_fd = -1;
    }
    tr_free_null(&l->dir);
}

int tr_up_logs_file(struct tr_up_logs *l, const char *name)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s.log", l->dir, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd >= 0 ? fd : -errno;
}

void tr_up_logs_pad(struct tr_up_logs *l, size_t width)
{
    if (width > l->pad && width <= 40) {
        l->pad = width;
    }
}

unsigned tr_up_logs_color(const char *name)
{
    unsigned h = 5381;
    /* Replicas of one service share a color: hash up to the "-<n>". */
    const char *end = strrchr(name, '-');
    size_t len = end != NULL && end != name ? (size_t)(end - name) : strlen(name);
    for (size_t i = 0; i < len; i++) {
        h = h * 33 + (unsigned char)name[i];
    }
    return h % TR_ARRAY_LEN(palette);
}

/* write(2) all of it; a full disk or a closed terminal must not stop supervision. */
static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

void tr_up_logs_line(struct tr_up_logs *l, const char *name, unsigned color, int file_fd,
                     struct tr_slice line)
{
    if (line.len > 0 && line.ptr[line.len - 1] == '\r') {
        line.len--;
    }
    struct tr_buf b;
    tr_buf_init(&b);
    tr_buf_appendf(&b, "%-*s | ", (int)l->pad, name);
    size_t prefix = b.len;
    tr_buf_append_slice(&b, line);
    tr_buf_append(&b, "\n", 1);
    if (l->all_fd >= 0) {
        write_all(l->all_fd, tr_buf_data(&b), b.len);
    }
    if (file_fd >= 0) {
        write_all(file_fd, tr_buf_data(&b) + prefix, b.len - prefix);
    }
    if (l->out_fd >= 0 && !l->color) {
        write_all(l->out_fd, tr_buf_data(&b), b.len);
    } else if (l->out_fd >= 0) {
        struct tr_buf c;
        tr_buf_init(&c);
        tr_buf_appendf(&c, "%s%-*s |" RESET " ", palette[color % TR_ARRAY_LEN(palette)],
                       (int)l->pad, name);
        tr_buf_append(&c, tr_buf_data(&b) + prefix, b.len - prefix);
        write_all(l->out_fd, tr_buf_data(&c), c.len);
        tr_buf_dispose(&c);
    }
    tr_buf_dispose(&b);
}

void tr_up_logs_note(struct tr_up_logs *l, const char *fmt, ...)
{
    struct tr_buf b;
    tr_buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    tr_buf_vappendf(&b, fmt, ap);
    va_end(ap);
    tr_up_logs_line(l, "up", 0, -1, tr_buf_slice(&b));
    tr_buf_dispose(&b);
}
