/* SPDX-License-Identifier: Apache-2.0 */
/* YAML configuration: a file (or string) is parsed with libyaml into an immutable tree
 * of mappings, sequences and scalars, each node remembering the file, line and column
 * it starts at. Typed getters validate a node and, on failure, write an error that
 * names that position ("gateway.yaml:12:7: expected a duration like 500ms, 2s, 1m,
 * got \"fast\""), so every config mistake points at the exact spot in the file. */
#ifndef TR_CORE_CONFIG_H
#define TR_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "core/slice.h"

/* Input limits. Larger files are rejected with -EFBIG; deeper nesting with -EINVAL. */
#define TR_CONF_MAX_BYTES (4u * 1024 * 1024)
#define TR_CONF_MAX_DEPTH 64 /* nested mappings/sequences, the root counting as 1 */

/* Where errors are written: one line, "file:line:col: what was expected, got what". */
struct tr_conf_err {
    char msg[512];
};

enum tr_conf_kind {
    TR_CONF_SCALAR = 0,
    TR_CONF_MAP,
    TR_CONF_SEQ,
};

struct tr_conf_pair;

/* A node of the tree. All nodes, strings and arrays belong to the struct tr_conf they
 * came from and are freed by tr_conf_free(); the tree is never modified after loading,
 * so it may be read from several threads at once. */
struct tr_conf_node {
    enum tr_conf_kind kind;
    bool plain;       /* TR_CONF_SCALAR: written without quotes or block indicator */
    uint32_t line;    /* 1-based */
    uint32_t col;     /* 1-based, in characters */
    const char *file; /* the name given to the loader */
    union {
        struct tr_slice text; /* TR_CONF_SCALAR; ptr[len] is '\0' (may hold NULs) */
        struct {
            const struct tr_conf_node *const *items;
            size_t len;
        } seq; /* TR_CONF_SEQ, in document order */
        struct {
            const struct tr_conf_pair *pairs;
            size_t len;
        } map; /* TR_CONF_MAP, in document order; keys are scalars and unique */
    } u;
};

struct tr_conf_pair {
    const struct tr_conf_node *key; /* always TR_CONF_SCALAR */
    const struct tr_conf_node *value;
};

/* A loaded document; opaque, owns the whole tree. */
struct tr_conf;

/* Reads and parses the YAML file at `path`. On success stores a new tr_conf in *out
 * (the caller owns it; release with tr_conf_free()) and returns 0. On failure writes
 * err->msg and returns a negative errno: the open/read error (-ENOENT, -EACCES...),
 * -EFBIG for files over TR_CONF_MAX_BYTES, -ENOMEM if libyaml runs out of memory, or
 * -EINVAL for everything else: YAML syntax errors, zero or several documents,
 * anchors/aliases/tags (not supported), non-scalar or duplicate mapping keys, nesting
 * deeper than TR_CONF_MAX_DEPTH. `err` may be NULL. */
TR_MUST_CHECK int tr_conf_load_file(const char *path, struct tr_conf **out,
                                    struct tr_conf_err *err);

/* As tr_conf_load_file() for `len` bytes at `data` (need not be NUL-terminated);
 * `name` stands for the file name in positions and errors. `data` is not kept. */
TR_MUST_CHECK int tr_conf_load_mem(const char *name, const char *data, size_t len,
                                   struct tr_conf **out, struct tr_conf_err *err);

/* Frees the conf and every node, string and array of its tree. NULL is a no-op. */
void tr_conf_free(struct tr_conf *conf);

/* The document's root node; never NULL for a loaded conf. */
const struct tr_conf_node *tr_conf_root(const struct tr_conf *conf);

/* Writes "file:line:col: <message>" for node `n` into err (if not NULL) and returns
 * -EINVAL, so callers can report their own checks at the right place:
 * `return tr_conf_errorf(n, err, "port %u is already used by %s", ...);` */
int tr_conf_errorf(const struct tr_conf_node *n, struct tr_conf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns 0 if `n` has `kind`; otherwise writes "expected a mapping, got a sequence"
 * at `n` and returns -EINVAL. */
TR_MUST_CHECK int tr_conf_expect(const struct tr_conf_node *n, enum tr_conf_kind kind,
                                 struct tr_conf_err *err);

/* Is `n` a YAML null: a plain (unquoted) scalar that is empty, "~", "null", "Null"
 * or "NULL"? Callers that treat an explicit null as "use the default" test this. */
bool tr_conf_is_null(const struct tr_conf_node *n);

/* Mappings. tr_conf_get() returns the value for `key` (exact, case-sensitive match), or
 * NULL if the key is absent or `map` is NULL or not a mapping; validate the mapping
 * with tr_conf_check_keys() or tr_conf_expect() first so that a wrong kind is reported
 * rather than read as "absent". */
const struct tr_conf_node *tr_conf_get(const struct tr_conf_node *map, const char *key);

/* As tr_conf_get() but a missing key is an error, reported at the mapping:
 * "missing key \"port\" in listen section". Stores the value in *out. */
TR_MUST_CHECK int tr_conf_require(const struct tr_conf_node *map, const char *key,
                                  const char *section, const struct tr_conf_node **out,
                                  struct tr_conf_err *err);

/* Checks that `map` is a mapping whose keys all appear in the NULL-terminated `allowed`
 * list. The first unknown key is reported at its position: "unknown key \"listn\" in
 * listen section; did you mean \"listen\"?" (the hint appears when an allowed key is
 * one or two edits away, a swap of adjacent letters counting as one). `section` names
 * the mapping in messages and may be NULL. Returns 0 or -EINVAL. */
TR_MUST_CHECK int tr_conf_check_keys(const struct tr_conf_node *map, const char *const *allowed,
                                     const char *section, struct tr_conf_err *err);

/* Iteration: number of pairs of a mapping or items of a sequence, 0 for a scalar.
 *     for (size_t i = 0; i < tr_conf_len(map); i++) {
 *         const struct tr_conf_pair *p = tr_conf_pair_at(map, i);
 * Index bounds and kinds are asserted: they are the caller's logic, not input. */
static inline size_t tr_conf_len(const struct tr_conf_node *n)
{
    switch (n->kind) {
    case TR_CONF_MAP:
        return n->u.map.len;
    case TR_CONF_SEQ:
        return n->u.seq.len;
    default:
        return 0;
    }
}

static inline const struct tr_conf_pair *tr_conf_pair_at(const struct tr_conf_node *map, size_t i)
{
    TR_ASSERT(map->kind == TR_CONF_MAP && i < map->u.map.len);
    return &map->u.map.pairs[i];
}

static inline const struct tr_conf_node *tr_conf_item_at(const struct tr_conf_node *seq, size_t i)
{
    TR_ASSERT(seq->kind == TR_CONF_SEQ && i < seq->u.seq.len);
    return seq->u.seq.items[i];
}

/* Typed getters. Each takes a node (not NULL), validates it and stores the value in
 * *out only on success. On failure it writes an error at the node's position and
 * returns -EINVAL (wrong kind or format) or -ERANGE (well-formed but out of range). */

/* Any scalar except a YAML null (see tr_conf_is_null(); quote it to mean the text)
 * and a string with an embedded NUL. *out points into the tree. */
TR_MUST_CHECK int tr_conf_str(const struct tr_conf_node *n, const char **out,
                              struct tr_conf_err *err);

/* true/false, yes/no, on/off, in any letter case. */
TR_MUST_CHECK int tr_conf_bool(const struct tr_conf_node *n, bool *out, struct tr_conf_err *err);

/* A decimal integer with an optional sign, within [min, max]. Leading zeros ("0644")
 * are rejected, since YAML 1.1 readers take them as octal. */
TR_MUST_CHECK int tr_conf_int(const struct tr_conf_node *n, int64_t min, int64_t max, int64_t *out,
                              struct tr_conf_err *err);

/* A duration in milliseconds, in tr_parse_duration_ms() syntax. */
TR_MUST_CHECK int tr_conf_duration_ms(const struct tr_conf_node *n, uint64_t *out,
                                      struct tr_conf_err *err);

/* A size in bytes, in tr_parse_size() syntax. */
TR_MUST_CHECK int tr_conf_size_bytes(const struct tr_conf_node *n, uint64_t *out,
                                     struct tr_conf_err *err);

/* Plain-string parsers, shared with CLI flags. Both return 0, -EINVAL for malformed
 * input, or -ERANGE when the value does not fit in 64 bits.
 *
 * Durations: one or more <number><unit> terms, summed: "500ms", "2s", "1.5s", "1m",
 * "1h30m". Units: ms, s, m, h (lower case). A number is digits with an optional
 * fraction, which must come to a whole number of milliseconds ("1.0005s" is rejected).
 * A bare number is rejected, except "0", because "timeout: 30" is ambiguous; no sign,
 * no spaces. */
TR_MUST_CHECK int tr_parse_duration_ms(const char *s, uint64_t *out);

/* Sizes: a number with an optional unit, any letter case: none or B (bytes), KB/MB/GB/TB
 * (powers of 1000), KiB/MiB/GiB/TiB (powers of 1024): "100", "64KiB", "10MB", "1.5MiB".
 * A fraction must come to a whole number of bytes; no sign, no spaces. */
TR_MUST_CHECK int tr_parse_size(const char *s, uint64_t *out);

#endif
