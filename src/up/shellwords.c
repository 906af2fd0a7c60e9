/* SPDX-License-Identifier: Apache-2.0 */
/* POSIX-style word splitting without expansions (see shellwords.h). One pass over the
 * input with a small state machine; each word is built in a scratch buffer and copied
 * into the caller's arena when it ends. */
#include "up/shellwords.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "core/buf.h"

enum quote_state {
    Q_NONE = 0,
    Q_SINGLE,
    Q_DOUBLE,
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

struct words {
    struct tr_arena *arena;
    struct tr_buf word; /* the word being built */
    struct tr_buf list; /* char *, the finished words */
    size_t n;
};

static int end_word(struct words *w, const char **why)
{
    if (w->n == TR_UP_MAX_ARGS) {
        *why = "too many words (at most 256)";
        return -EINVAL;
    }
    char *copy = tr_arena_strndup(w->arena, w->word.len ? tr_buf_data(&w->word) : "", w->word.len);
    tr_buf_append(&w->list, &copy, sizeof(copy));
    w->n++;
    tr_buf_reset(&w->word);
    return 0;
}

static int split(const char *s, size_t len, struct words *w, const char **why)
{
    enum quote_state q = Q_NONE;
    bool in_word = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\0') {
            *why = "contains a NUL byte";
            return -EINVAL;
        }
        switch (q) {
        case Q_SINGLE:
            if (c == '\'') {
                q = Q_NONE;
            } else {
                tr_buf_append(&w->word, &c, 1);
            }
            continue;
        case Q_DOUBLE:
            if (c == '"') {
                q = Q_NONE;
            } else if (c == '\\' && i + 1 < len && strchr("\"\\$`", s[i + 1]) != NULL) {
                tr_buf_append(&w->word, &s[++i], 1);
            } else {
                tr_buf_append(&w->word, &c, 1);
            }
            continue;
        case Q_NONE:
            break;
        default:
            TR_ASSERT(!"bad quote state");
        }
        if (is_blank(c)) {
            if (in_word) {
                int rc = end_word(w, why);
                if (rc < 0) {
                    return rc;
                }
                in_word = false;
            }
            continue;
        }
        in_word = true;
        if (c == '\'') {
            q = Q_SINGLE;
        } else if (c == '"') {
            q = Q_DOUBLE;
        } else if (c == '\\') {
            if (i + 1 == len) {
                *why = "ends with a backslash";
                return -EINVAL;
            }
            c = s[++i];
            if (c == '\0') {
                *why = "contains a NUL byte";
                return -EINVAL;
            }
            tr_buf_append(&w->word, &c, 1);
        } else {
            tr_buf_append(&w->word, &c, 1);
        }
    }
    if (q != Q_NONE) {
        *why = q == Q_SINGLE ? "unterminated single quote" : "unterminated double quote";
        return -EINVAL;
    }
    if (in_word) {
        return end_word(w, why);
    }
    return 0;
}

int tr_up_shell_split(const char *s, size_t len, struct tr_arena *a, char ***argv, size_t *argc,
                      const char **why)
{
    struct words w = {.arena = a};
    tr_buf_init(&w.word);
    tr_buf_init(&w.list);
    *why = NULL;
    int rc = split(s, len, &w, why);
    if (rc == 0 && w.n == 0) {
        *why = "no command";
        rc = -EINVAL;
    }
    if (rc == 0) {
        char **out = tr_arena_alloc(a, (w.n + 1) * sizeof(char *));
        memcpy(out, tr_buf_data(&w.list), w.n * sizeof(char *));
        out[w.n] = NULL;
        *argv = out;
        *argc = w.n;
    }
    tr_buf_dispose(&w.word);
    tr_buf_dispose(&w.list);
    return rc;
}

static const char *find_var(const char *const *vars, const char *name, size_t len)
{
    for (size_t i = 0; vars != NULL && vars[i] != NULL; i++) {
        if (strncmp(vars[i], name, len) == 0 && vars[i][len] == '=') {
            return vars[i] + len + 1;
        }
    }
    return NULL;
}

int tr_up_expand_vars(const char *word, const char *const *vars, struct tr_buf *out,
                      const char **unknown, size_t *unknown_len)
{
    const char *p = word;
    for (;;) {
        const char *start = strstr(p, "${");
        if (start == NULL) {
            tr_buf_append(out, p, strlen(p));
            return 0;
        }
        tr_buf_append(out, p, (size_t)(start - p));
        const char *name = start + 2;
        const char *end = strchr(name, '}');
        if (end == NULL) {
            *unknown = name;
            *unknown_len = strlen(name);
            return -EINVAL;
        }
        size_t len = (size_t)(end - name);
        const char *value = find_var(vars, name, len);
        if (value == NULL) {
            *unknown = name;
            *unknown_len = len;
            return -ENOENT;
        }
        tr_buf_append(out, value, strlen(value));
        p = end + 1;
    }
}
