/* SPDX-License-Identifier: Apache-2.0 */
/* Command lines as users write them in a manifest ("./order --port 80 'a b'"), split into
 * argv words the way a POSIX shell would, but without any expansion: no variables, globs
 * or command substitution, so what is written is what runs. The one exception,
 * tr_up_expand_vars(), fills in ${APP_PORT} and the like when a replica starts. */
#ifndef TR_UP_SHELLWORDS_H
#define TR_UP_SHELLWORDS_H

#include <stddef.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/mem.h"

#define TR_UP_MAX_ARGS 256 /* words of one command */

/* Splits `s` into words: blanks (space, tab, newline) separate words, '...' is literal,
 * "..." allows the escapes \" \\ \$ \` (a backslash before anything else stays), and a
 * backslash outside quotes takes the next character literally. Words are allocated in
 * `a`; *argv gets a NULL-terminated array of *argc words. Returns 0, or -EINVAL with
 * *why set: an unterminated quote, a trailing backslash, no words at all, more than
 * TR_UP_MAX_ARGS words, or a NUL byte. `len` is the length of `s`. */
TR_MUST_CHECK int tr_up_shell_split(const char *s, size_t len, struct tr_arena *a, char ***argv,
                                    size_t *argc, const char **why);

/* Replaces every "${NAME}" in `word` with the value of NAME from `vars` ("NAME=value"
 * strings, NULL-terminated; the first match wins) and appends the result to `out`.
 * Nothing else is special. Returns 0, or -ENOENT with *unknown pointing at the name
 * (not NUL-terminated; *unknown_len bytes) when NAME is not in `vars`, or -EINVAL for a
 * "${" without its "}". */
TR_MUST_CHECK int tr_up_expand_vars(const char *word, const char *const *vars, struct tr_buf *out,
                                    const char **unknown, size_t *unknown_len);

#endif
