/* SPDX-License-Identifier: Apache-2.0 */
/* The one place raw malloc is called: everything else allocates through here. */
#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void tr_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"assertion failed: %s\",\"at\":\"%s:%d\"}\n",
            expr, file, line);
    abort();
}

static _Noreturn void oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory allocating %zu bytes\"}\n", n);
    abort();
}

void *tr_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        oom(n);
    }
    return p;
}

void *tr_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        oom(count * size);
    }
    return p;
}

void *tr_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        oom(n);
    }
    return q;
}

char *tr_xstrdup(const char *s)
{
    return tr_xstrndup(s, strlen(s));
}

char *tr_xstrndup(const char *s, size_t n)
{
    char *p = tr_xmalloc(n + 1);
    if (n > 0) {
        memcpy(p, s, n); /* s may be NULL when n == 0 (memcpy's arguments must not be) */
    }
    p[n] = '\0';
    return p;
}

void tr_free_null(void *pp)
{
    void **p = pp;
    free(*p);
    *p = NULL;
}
