/* SPDX-License-Identifier: Apache-2.0 */
/* Memory helpers for the daemons: allocation that aborts with a clear message on
 * exhaustion, free-and-forget, and the small macros every module leans on
 * (container_of, assertions, must-check). libtrellis code returns -ENOMEM instead. */
#ifndef TR_CORE_MEM_H
#define TR_CORE_MEM_H

#include <stddef.h>

#define TR_MUST_CHECK __attribute__((warn_unused_result))
#define TR_UNUSED(x) ((void)(x))
#define TR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define tr_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Invariant check, on in release builds: logs file:line and aborts. Never use it on
 * network, config or disk input. */
#define TR_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            tr_assert_fail(#cond, __FILE__, __LINE__);                                             \
        }                                                                                          \
    } while (0)

_Noreturn void tr_assert_fail(const char *expr, const char *file, int line);

/* Allocate or abort with "out of memory" on stderr. Never return NULL. */
void *tr_xmalloc(size_t n);
void *tr_xcalloc(size_t count, size_t size);
void *tr_xrealloc(void *p, size_t n);
char *tr_xstrdup(const char *s);
char *tr_xstrndup(const char *s, size_t n);

/* Free *pp and set it to NULL. pp must point at a pointer variable (void **) */
void tr_free_null(void *pp);

#endif
