/* SPDX-License-Identifier: Apache-2.0 */
/* YAML configuration loader (see config.h and docs/internals/config.md). libyaml's event
 * parser drives a stack of frames, one per open mapping or sequence; a collection
 * becomes a node in the conf's arena when its end event arrives, so every array in the
 * tree is allocated once at its final size. Anchors, aliases and tags are rejected. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/errors.h"
#include "core/mem.h"
#include "core/slice.h"

#define ARENA_CHUNK (16 * 1024)
#define READ_CHUNK (64 * 1024)
#define QUOTE_MAX 64   /* bytes of a quoted value in a message, quotes and "..." included */
#define SUGGEST_MAX 64 /* keys longer than this get no "did you mean" */

struct tr_conf {
    struct tr_arena arena; /* owns every node, string and array of the tree */
    const struct tr_conf_node *root;
};

/* A mapping or sequence whose end event has not arrived yet. */
struct frame {
    struct tr_conf_node *node; /* in the arena; arrays filled in at the end event */
    struct tr_buf kids;        /* const struct tr_conf_node *; keys and values alternate */
};

struct builder {
    struct tr_arena *arena;
    const char *file; /* in the arena */
    struct tr_conf_err *err;
    struct frame frames[TR_CONF_MAX_DEPTH];
    size_t depth; /* open frames */
    const struct tr_conf_node *root;
    unsigned docs; /* document-start events seen */
};

/* A unit suffix ("ms", "kib") and what it multiplies the number by. */
struct unit {
    const char *name;
    uint64_t mult;
};

struct quantity_syntax {
    const struct unit *units; /* ends with a NULL name */
    bool compound;            /* terms may follow each other: "1h30m" */
    bool bare_ok;             /* a number without a unit counts in the smallest unit */
    bool nocase;              /* units match in any letter case */
    const char *missing_unit; /* reasons given in messages */
    const char *bad_unit;
    const char *inexact;
};

static void errf(struct tr_conf_err *err, const char *file, size_t line, size_t col,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail_at(struct builder *b, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- error messages ---- */

static void verrf(struct tr_conf_err *err, const char *file, size_t line, size_t col,
                  const char *fmt, va_list ap)
{
    if (err == NULL) {
        return;
    }
    int n;
    if (line == 0) {
        n = snprintf(err->msg, sizeof(err->msg), "%s: ", file);
    } else {
        n = snprintf(err->msg, sizeof(err->msg), "%s:%zu:%zu: ", file, line, col);
    }
    if (n < 0 || (size_t)n >= sizeof(err->msg)) {
        return;
    }
    vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap);
}

/* line == 0 means the error concerns the whole file: "name: message". */
static void errf(struct tr_conf_err *err, const char *file, size_t line, size_t col,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verrf(err, file, line, col, fmt, ap);
    va_end(ap);
}

int tr_conf_errorf(const struct tr_conf_node *n, struct tr_conf_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verrf(err, n->file, n->line, n->col, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Writes `s` double-quoted into out[QUOTE_MAX], escaping quotes, backslashes and control
 * bytes, and cutting long values (never inside a UTF-8 sequence) with "...". */
static void quote(char *out, struct tr_slice s)
{
    static const char hex[] = "0123456789abcdef";
    const size_t limit = QUOTE_MAX - 5; /* room for `..."` and the NUL */
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        char esc[4] = {(char)c};
        size_t n = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 0xf];
            n = 4;
        }
        if (o + n > limit) {
            if ((c & 0xc0) == 0x80) {
                while (o > 1 && ((unsigned char)out[o - 1] & 0xc0) == 0x80) {
                    o--;
                }
                if (o > 1 && (unsigned char)out[o - 1] >= 0xc0) {
                    o--;
                }
            }
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o++] = '"';
    out[o] = '\0';
}

static const char *kind_name(enum tr_conf_kind kind)
{
    switch (kind) {
    case TR_CONF_SCALAR:
        return "a scalar";
    case TR_CONF_MAP:
        return "a mapping";
    case TR_CONF_SEQ:
        return "a sequence";
    default:
        TR_ASSERT(!"bad node kind");
        return "?";
    }
}

/* What a node is, for "got ..." in messages: a quoted value, "null", "an empty value",
 * "a mapping" or "a sequence". */
static void describe(const struct tr_conf_node *n, char *out)
{
    if (n->kind != TR_CONF_SCALAR) {
        snprintf(out, QUOTE_MAX, "%s", kind_name(n->kind));
    } else if (n->plain && n->u.text.len == 0) {
        snprintf(out, QUOTE_MAX, "an empty value");
    } else if (tr_conf_is_null(n)) {
        snprintf(out, QUOTE_MAX, "null");
    } else {
        quote(out, n->u.text);
    }
}

static int expected(const struct tr_conf_node *n, const char *what, struct tr_conf_err *err)
{
    char got[QUOTE_MAX];
    describe(n, got);
    return tr_conf_errorf(n, err, "expected %s, got %s", what, got);
}

/* ---- building the tree ---- */

static int fail_at(struct builder *b, yaml_mark_t mark, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verrf(b->err, b->file, mark.line + 1, mark.column + 1, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A node plus `extra` bytes right after it, zeroed. */
static struct tr_conf_node *new_node(struct builder *b, enum tr_conf_kind kind, yaml_mark_t mark,
                                     size_t extra)
{
    struct tr_conf_node *n = tr_arena_alloc(b->arena, sizeof(*n) + extra);
    memset(n, 0, sizeof(*n) + extra);
    n->kind = kind;
    n->line = (uint32_t)mark.line + 1;
    n->col = (uint32_t)mark.column + 1;
    n->file = b->file;
    return n;
}

static size_t kid_count(const struct frame *f)
{
    return f->kids.len / sizeof(const struct tr_conf_node *);
}

static void add_child(struct builder *b, const struct tr_conf_node *n)
{
    if (b->depth == 0) {
        b->root = n;
        return;
    }
    tr_buf_append(&b->frames[b->depth - 1].kids, &n, sizeof(n));
}

/* Anchors and aliases would make the tree a graph (and open the door to "billion
 * laughs" expansion); tags would need a type system. Neither is worth it for config. */
static int check_props(struct builder *b, yaml_mark_t mark, const yaml_char_t *anchor,
                       const yaml_char_t *tag)
{
    char q[QUOTE_MAX];
    if (anchor != NULL) {
        quote(q, tr_slice_cstr((const char *)anchor));
        return fail_at(b, mark, "YAML anchors are not supported (found anchor %s)", q);
    }
    if (tag != NULL) {
        quote(q, tr_slice_cstr((const char *)tag));
        return fail_at(b, mark, "YAML tags are not supported (found tag %s)", q);
    }
    return 0;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
    int rc = check_props(b, ev->start_mark, ev->data.scalar.anchor, ev->data.scalar.tag);
    if (rc < 0) {
        return rc;
    }
    /* The text lives right behind its node: one arena allocation per scalar keeps a
     * file of many tiny scalars ("[0,0,0,...]") from costing two aligned blocks each. */
    size_t len = ev->data.scalar.length;
    struct tr_conf_node *n = new_node(b, TR_CONF_SCALAR, ev->start_mark, len + 1);
    char *text = (char *)(n + 1);
    memcpy(text, ev->data.scalar.value, len);
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    n->u.text = tr_slice(text, len);
    add_child(b, n);
    return 0;
}

static int on_collection_start(struct builder *b, const yaml_event_t *ev, enum tr_conf_kind kind)
{
    const yaml_char_t *anchor =
        kind == TR_CONF_MAP ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    const yaml_char_t *tag =
        kind == TR_CONF_MAP ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    int rc = check_props(b, ev->start_mark, anchor, tag);
    if (rc < 0) {
        return rc;
    }
    if (b->depth > 0) {
        const struct frame *top = &b->frames[b->depth - 1];
        if (top->node->kind == TR_CONF_MAP && kid_count(top) % 2 == 0) {
            return fail_at(b, ev->start_mark, "mapping keys must be scalars, got %s",
                           kind_name(kind));
        }
    }
    if (b->depth == TR_CONF_MAX_DEPTH) {
        return fail_at(b, ev->start_mark, "nesting is deeper than %d levels", TR_CONF_MAX_DEPTH);
    }
    struct frame *f = &b->frames[b->depth++];
    f->node = new_node(b, kind, ev->start_mark, 0);
    tr_buf_init(&f->kids);
    return 0;
}

static int cmp_pair_keys(const void *pa, const void *pb)
{
    const struct tr_conf_pair *a = *(const struct tr_conf_pair *const *)pa;
    const struct tr_conf_pair *b = *(const struct tr_conf_pair *const *)pb;
    struct tr_slice ka = a->key->u.text;
    struct tr_slice kb = b->key->u.text;
    size_t n = ka.len < kb.len ? ka.len : kb.len;
    int c = n > 0 ? memcmp(ka.ptr, kb.ptr, n) : 0;
    if (c != 0) {
        return c;
    }
    if (ka.len != kb.len) {
        return ka.len < kb.len ? -1 : 1;
    }
    /* Pairs are in document order, so equal keys sort by position. */
    return a < b ? -1 : (a > b ? 1 : 0);
}

/* Sorting rather than comparing every pair keeps a huge flat mapping O(n log n). Of
 * all repeated keys, the one whose second occurrence comes first is reported. */
static int check_duplicates(struct builder *b, const struct tr_conf_node *map)
{
    size_t n = map->u.map.len;
    if (n < 2) {
        return 0;
    }
    const struct tr_conf_pair **sorted = tr_xmalloc(n * sizeof(*sorted));
    for (size_t i = 0; i < n; i++) {
        sorted[i] = &map->u.map.pairs[i];
    }
    qsort(sorted, n, sizeof(*sorted), cmp_pair_keys);
    const struct tr_conf_pair *first = NULL;
    const struct tr_conf_pair *dup = NULL;
    size_t run = 0;
    for (size_t i = 1; i < n; i++) {
        if (!tr_slice_eq(sorted[i - 1]->key->u.text, sorted[i]->key->u.text)) {
            run = i;
            continue;
        }
        if (dup == NULL || sorted[i] < dup) {
            dup = sorted[i];
            first = sorted[run];
        }
    }
    tr_free_null(&sorted);
    if (dup == NULL) {
        return 0;
    }
    char q[QUOTE_MAX];
    quote(q, dup->key->u.text);
    return tr_conf_errorf(dup->key, b->err,
                          "duplicate key %s (first defined at line %" PRIu32 ", column %" PRIu32
                          ")",
                          q, first->key->line, first->key->col);
}

static void finish_collection(struct builder *b, struct frame *f)
{
    struct tr_conf_node *n = f->node;
    size_t count = kid_count(f);
    if (count == 0) {
        return;
    }
    const char *kids = tr_buf_data(&f->kids);
    if (n->kind == TR_CONF_SEQ) {
        const struct tr_conf_node **items = tr_arena_alloc(b->arena, count * sizeof(*items));
        memcpy(items, kids, count * sizeof(*items));
        n->u.seq.items = items;
        n->u.seq.len = count;
        return;
    }
    /* libyaml pairs every key with a value (an empty scalar if none is written). */
    TR_ASSERT(count % 2 == 0);
    struct tr_conf_pair *pairs = tr_arena_alloc(b->arena, count / 2 * sizeof(*pairs));
    for (size_t i = 0; i < count / 2; i++) {
        memcpy(&pairs[i].key, kids + 2 * i * sizeof(pairs[i].key), sizeof(pairs[i].key));
        memcpy(&pairs[i].value, kids + (2 * i + 1) * sizeof(pairs[i].key), sizeof(pairs[i].key));
    }
    n->u.map.pairs = pairs;
    n->u.map.len = count / 2;
}

static int on_collection_end(struct builder *b)
{
    TR_ASSERT(b->depth > 0);
    struct frame *f = &b->frames[--b->depth];
    finish_collection(b, f);
    tr_buf_dispose(&f->kids);
    if (f->node->kind == TR_CONF_MAP) {
        int rc = check_duplicates(b, f->node);
        if (rc < 0) {
            return rc;
        }
    }
    add_child(b, f->node);
    return 0;
}

static int on_event(struct builder *b, const yaml_event_t *ev)
{
    char q[QUOTE_MAX];
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1) {
            return fail_at(b, ev->start_mark, "expected one YAML document, found a second one");
        }
        return 0;
    case YAML_ALIAS_EVENT:
        quote(q, tr_slice_cstr((const char *)ev->data.alias.anchor));
        return fail_at(b, ev->start_mark, "YAML aliases are not supported (found alias %s)", q);
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_collection_start(b, ev, TR_CONF_SEQ);
    case YAML_MAPPING_START_EVENT:
        return on_collection_start(b, ev, TR_CONF_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_collection_end(b);
    default:
        return 0;
    }
}

/* libyaml reports reader errors (bad UTF-8, control characters) as a byte offset. */
static void offset_to_pos(const char *data, size_t len, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == '\n' || (c == '\r' && (i + 1 == len || data[i + 1] != '\n'))) {
            (*line)++;
            *col = 1;
        } else if ((c & 0xc0) != 0x80 && c != '\r') {
            (*col)++;
        }
    }
}

static int syntax_error(struct builder *b, const yaml_parser_t *p, const char *data, size_t len)
{
    const char *problem = p->problem != NULL ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR) {
        errf(b->err, b->file, 0, 0, "out of memory while parsing YAML");
        return -ENOMEM;
    }
    if (p->error == YAML_READER_ERROR) {
        size_t line;
        size_t col;
        offset_to_pos(data, len, p->problem_offset, &line, &col);
        if (p->problem_value != -1) {
            errf(b->err, b->file, line, col, "%s (byte 0x%02x)", problem,
                 (unsigned)p->problem_value);
        } else {
            errf(b->err, b->file, line, col, "%s", problem);
        }
        return -EINVAL;
    }
    size_t line = p->problem_mark.line + 1;
    size_t col = p->problem_mark.column + 1;
    if (p->context != NULL) {
        errf(b->err, b->file, line, col, "%s (%s at %zu:%zu)", problem, p->context,
             p->context_mark.line + 1, p->context_mark.column + 1);
    } else {
        errf(b->err, b->file, line, col, "%s", problem);
    }
    return -EINVAL;
}

static int parse(struct builder *b, const char *data, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        errf(b->err, b->file, 0, 0, "out of memory while parsing YAML");
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    int rc = 0;
    bool done = false;
    while (rc == 0 && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = syntax_error(b, &parser, data, len);
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(b, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    /* Frames still open after an error own their kid lists. */
    while (b->depth > 0) {
        tr_buf_dispose(&b->frames[--b->depth].kids);
    }
    if (rc == 0 && b->docs == 0) {
        errf(b->err, b->file, 1, 1, "expected one YAML document, found none");
        rc = -EINVAL;
    }
    return rc;
}

static int too_large(const char *name, struct tr_conf_err *err)
{
    errf(err, name, 0, 0, "file is larger than the %u MiB limit", TR_CONF_MAX_BYTES >> 20);
    return -EFBIG;
}

int tr_conf_load_mem(const char *name, const char *data, size_t len, struct tr_conf **out,
                     struct tr_conf_err *err)
{
    TR_ASSERT(name != NULL);
    if (len > TR_CONF_MAX_BYTES) {
        return too_large(name, err);
    }
    struct tr_conf *conf = tr_xmalloc(sizeof(*conf));
    tr_arena_init(&conf->arena, ARENA_CHUNK);
    conf->root = NULL;
    struct builder b = {
        .arena = &conf->arena,
        .file = tr_arena_strndup(&conf->arena, name, strlen(name)),
        .err = err,
    };
    int rc = parse(&b, data, len);
    if (rc < 0) {
        tr_conf_free(conf);
        return rc;
    }
    TR_ASSERT(b.root != NULL);
    conf->root = b.root;
    *out = conf;
    return 0;
}

/* Reads at most TR_CONF_MAX_BYTES + 1 bytes, so a pipe or a growing file cannot make
 * us buffer more than the limit. */
static int read_file(const char *path, struct tr_buf *buf, struct tr_conf_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        int rc = -errno;
        errf(err, path, 0, 0, "cannot open: %s", tr_strerror(rc));
        return rc;
    }
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > TR_CONF_MAX_BYTES) {
        rc = too_large(path, err);
        goto out_close;
    }
    for (;;) {
        char *p = tr_buf_reserve(buf, READ_CHUNK);
        ssize_t n = read(fd, p, READ_CHUNK);
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n == -1) {
            rc = -errno;
            errf(err, path, 0, 0, "cannot read: %s", tr_strerror(rc));
            goto out_close;
        }
        if (n == 0) {
            break;
        }
        tr_buf_commit(buf, (size_t)n);
        if (buf->len > TR_CONF_MAX_BYTES) {
            rc = too_large(path, err);
            goto out_close;
        }
    }
out_close:
    close(fd);
    return rc;
}

int tr_conf_load_file(const char *path, struct tr_conf **out, struct tr_conf_err *err)
{
    struct tr_buf buf;
    tr_buf_init(&buf);
    int rc = read_file(path, &buf, err);
    if (rc == 0) {
        rc = tr_conf_load_mem(path, tr_buf_data(&buf), buf.len, out, err);
    }
    tr_buf_dispose(&buf);
    return rc;
}

void tr_conf_free(struct tr_conf *conf)
{
    if (conf == NULL) {
        return;
    }
    tr_arena_dispose(&conf->arena);
    tr_free_null(&conf);
}

const struct tr_conf_node *tr_conf_root(const struct tr_conf *conf)
{
    return conf->root;
}

/* ---- mappings ---- */

static int expect_kind(const struct tr_conf_node *n, enum tr_conf_kind kind, const char *section,
                       struct tr_conf_err *err)
{
    if (n->kind == kind) {
        return 0;
    }
    char what[96];
    if (section != NULL) {
        snprintf(what, sizeof(what), "%s for the %.60s section", kind_name(kind), section);
    } else {
        snprintf(what, sizeof(what), "%s", kind_name(kind));
    }
    return expected(n, what, err);
}

int tr_conf_expect(const struct tr_conf_node *n, enum tr_conf_kind kind, struct tr_conf_err *err)
{
    return expect_kind(n, kind, NULL, err);
}

bool tr_conf_is_null(const struct tr_conf_node *n)
{
    if (n->kind != TR_CONF_SCALAR || !n->plain) {
        return false;
    }
    struct tr_slice t = n->u.text;
    return t.len == 0 || tr_slice_eq(t, TR_SLICE_LIT("~")) ||
           tr_slice_eq(t, TR_SLICE_LIT("null")) || tr_slice_eq(t, TR_SLICE_LIT("Null")) ||
           tr_slice_eq(t, TR_SLICE_LIT("NULL"));
}

const struct tr_conf_node *tr_conf_get(const struct tr_conf_node *map, const char *key)
{
    if (map == NULL || map->kind != TR_CONF_MAP) {
        return NULL;
    }
    struct tr_slice k = tr_slice_cstr(key);
    for (size_t i = 0; i < map->u.map.len; i++) {
        if (tr_slice_eq(map->u.map.pairs[i].key->u.text, k)) {
            return map->u.map.pairs[i].value;
        }
    }
    return NULL;
}

static void in_section(char *out, size_t size, const char *section)
{
    if (section != NULL) {
        snprintf(out, size, " in %.60s section", section);
    } else {
        out[0] = '\0';
    }
}

int tr_conf_require(const struct tr_conf_node *map, const char *key, const char *section,
                    const struct tr_conf_node **out, struct tr_conf_err *err)
{
    int rc = expect_kind(map, TR_CONF_MAP, section, err);
    if (rc < 0) {
        return rc;
    }
    const struct tr_conf_node *v = tr_conf_get(map, key);
    if (v == NULL) {
        char q[QUOTE_MAX];
        char where[80];
        quote(q, tr_slice_cstr(key));
        in_section(where, sizeof(where), section);
        return tr_conf_errorf(map, err, "missing key %s%s", q, where);
    }
    *out = v;
    return 0;
}

/* Optimal string alignment distance, ASCII case-insensitive: insertions, deletions,
 * substitutions and swaps of adjacent characters cost 1. Both lengths <= SUGGEST_MAX. */
static size_t edit_distance(struct tr_slice a, struct tr_slice b)
{
    size_t rows[3][SUGGEST_MAX + 1];
    size_t *prev2 = rows[0];
    size_t *prev = rows[1];
    size_t *cur = rows[2];
    for (size_t j = 0; j <= b.len; j++) {
        prev[j] = j;
    }
    for (size_t i = 1; i <= a.len; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= b.len; j++) {
            int ca = tolower((unsigned char)a.ptr[i - 1]);
            int cb = tolower((unsigned char)b.ptr[j - 1]);
            size_t v = prev[j - 1] + (ca != cb);
            if (prev[j] + 1 < v) {
                v = prev[j] + 1;
            }
            if (cur[j - 1] + 1 < v) {
                v = cur[j - 1] + 1;
            }
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b.ptr[j - 2]) &&
                tolower((unsigned char)a.ptr[i - 2]) == cb && prev2[j - 2] + 1 < v) {
                v = prev2[j - 2] + 1;
            }
            cur[j] = v;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[b.len];
}

/* The allowed key closest to `key`, if it is close enough to be a likely typo: at most
 * two edits, and at most a third of the candidate (so "port" never suggests "host"). */
static const char *closest_key(struct tr_slice key, const char *const *allowed)
{
    if (key.len > SUGGEST_MAX) {
        return NULL;
    }
    const char *best = NULL;
    size_t best_dist = SIZE_MAX;
    for (size_t i = 0; allowed[i] != NULL; i++) {
        struct tr_slice cand = tr_slice_cstr(allowed[i]);
        if (cand.len > SUGGEST_MAX) {
            continue;
        }
        size_t d = edit_distance(key, cand);
        if (d < best_dist) {
            best = allowed[i];
            best_dist = d;
        }
    }
    if (best == NULL || best_dist > 2 || 3 * best_dist > strlen(best)) {
        return NULL;
    }
    return best;
}

static bool key_allowed(struct tr_slice key, const char *const *allowed)
{
    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (tr_slice_eq(key, tr_slice_cstr(allowed[i]))) {
            return true;
        }
    }
    return false;
}

int tr_conf_check_keys(const struct tr_conf_node *map, const char *const *allowed,
                       const char *section, struct tr_conf_err *err)
{
    int rc = expect_kind(map, TR_CONF_MAP, section, err);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < map->u.map.len; i++) {
        const struct tr_conf_node *key = map->u.map.pairs[i].key;
        if (key_allowed(key->u.text, allowed)) {
            continue;
        }
        char q[QUOTE_MAX];
        char where[80];
        char hint[96] = "";
        quote(q, key->u.text);
        in_section(where, sizeof(where), section);
        const char *best = closest_key(key->u.text, allowed);
        if (best != NULL) {
            snprintf(hint, sizeof(hint), "; did you mean \"%.64s\"?", best);
        }
        return tr_conf_errorf(key, err, "unknown key %s%s%s", q, where, hint);
    }
    return 0;
}

/* ---- typed getters ---- */

int tr_conf_str(const struct tr_conf_node *n, const char **out, struct tr_conf_err *err)
{
    if (n->kind != TR_CONF_SCALAR || tr_conf_is_null(n)) {
        return expected(n, "a string", err);
    }
    if (strlen(n->u.text.ptr) != n->u.text.len) {
        return expected(n, "a string without NUL characters", err);
    }
    *out = n->u.text.ptr;
    return 0;
}

int tr_conf_bool(const struct tr_conf_node *n, bool *out, struct tr_conf_err *err)
{
    static const struct {
        struct tr_slice word;
        bool value;
    } words[] = {
        {TR_SLICE_LIT("true"), true}, {TR_SLICE_LIT("false"), false}, {TR_SLICE_LIT("yes"), true},
        {TR_SLICE_LIT("no"), false},  {TR_SLICE_LIT("on"), true},     {TR_SLICE_LIT("off"), false},
    };
    if (n->kind == TR_CONF_SCALAR) {
        for (size_t i = 0; i < TR_ARRAY_LEN(words); i++) {
            if (tr_slice_caseeq(n->u.text, words[i].word)) {
                *out = words[i].value;
                return 0;
            }
        }
    }
    return expected(n, "a boolean (true/false, yes/no, on/off)", err);
}

/* [+-]digits, no leading zeros. Returns 0, -EINVAL or -ERANGE. */
static int parse_int(struct tr_slice s, int64_t *out, const char **why)
{
    *why = NULL;
    bool neg = false;
    if (s.len > 0 && (s.ptr[0] == '-' || s.ptr[0] == '+')) {
        neg = s.ptr[0] == '-';
        s = tr_slice(s.ptr + 1, s.len - 1);
    }
    if (s.len > 1 && s.ptr[0] == '0') {
        *why = "leading zeros are not allowed";
        return -EINVAL;
    }
    uint64_t mag;
    int rc = tr_slice_to_u64(s, &mag);
    if (rc < 0) {
        return rc;
    }
    if (neg && mag > (uint64_t)INT64_MAX + 1) {
        return -ERANGE;
    }
    if (!neg && mag > (uint64_t)INT64_MAX) {
        return -ERANGE;
    }
    /* Negating in unsigned arithmetic handles INT64_MIN without overflow. */
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

int tr_conf_int(const struct tr_conf_node *n, int64_t min, int64_t max, int64_t *out,
                struct tr_conf_err *err)
{
    char what[96];
    if (min == INT64_MIN && max == INT64_MAX) {
        snprintf(what, sizeof(what), "an integer");
    } else if (max == INT64_MAX) {
        snprintf(what, sizeof(what), "an integer >= %" PRId64, min);
    } else if (min == INT64_MIN) {
        snprintf(what, sizeof(what), "an integer <= %" PRId64, max);
    } else {
        snprintf(what, sizeof(what), "an integer between %" PRId64 " and %" PRId64, min, max);
    }
    if (n->kind != TR_CONF_SCALAR) {
        return expected(n, what, err);
    }
    int64_t v = 0;
    const char *why;
    int rc = parse_int(n->u.text, &v, &why);
    if (rc == -EINVAL) {
        char got[QUOTE_MAX];
        describe(n, got);
        return tr_conf_errorf(n, err, "expected %s, got %s%s%s", what, got, why ? ": " : "",
                              why ? why : "");
    }
    if (rc == -ERANGE || v < min || v > max) {
        expected(n, what, err);
        return -ERANGE;
    }
    *out = v;
    return 0;
}

static const struct unit duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}, {NULL, 0},
};

static const struct quantity_syntax duration_syntax = {
    .units = duration_units,
    .compound = true,
    .bare_ok = false,
    .nocase = false,
    .missing_unit = "missing unit (ms, s, m or h)",
    .bad_unit = "unknown unit (use ms, s, m or h)",
    .inexact = "not a whole number of milliseconds",
};

static const struct unit size_units[] = {
    {"b", 1},
    {"kb", UINT64_C(1000)},
    {"mb", UINT64_C(1000) * 1000},
    {"gb", UINT64_C(1000) * 1000 * 1000},
    {"tb", UINT64_C(1000) * 1000 * 1000 * 1000},
    {"kib", UINT64_C(1) << 10},
    {"mib", UINT64_C(1) << 20},
    {"gib", UINT64_C(1) << 30},
    {"tib", UINT64_C(1) << 40},
    {NULL, 0},
};

static const struct quantity_syntax size_syntax = {
    .units = size_units,
    .compound = false,
    .bare_ok = true,
    .nocase = true,
    .missing_unit = NULL,
    .bad_unit = "unknown unit (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)",
    .inexact = "not a whole number of bytes",
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The fraction 0.<digits> of `mult`, which must be whole. With g = gcd(mult, 10^k),
 * f/10^k * mult = (f / (10^k/g)) * (mult/g), and the product stays below mult. */
static int fraction_of(struct tr_slice digits, uint64_t mult, uint64_t *out)
{
    while (digits.len > 0 && digits.ptr[digits.len - 1] == '0') {
        digits.len--;
    }
    /* No unit is a multiple of 10^10, so a longer fraction can never be whole. */
    if (digits.len > 9) {
        return -EINVAL;
    }
    uint64_t f = 0;
    uint64_t p = 1;
    for (size_t i = 0; i < digits.len; i++) {
        f = f * 10 + (uint64_t)(digits.ptr[i] - '0');
        p *= 10;
    }
    uint64_t g = gcd(mult, p);
    uint64_t d = p / g;
    if (f % d != 0) {
        return -EINVAL;
    }
    *out = f / d * (mult / g);
    return 0;
}

static const struct unit *find_unit(const struct quantity_syntax *syn, struct tr_slice name)
{
    for (const struct unit *u = syn->units; u->name != NULL; u++) {
        struct tr_slice un = tr_slice_cstr(u->name);
        if (syn->nocase ? tr_slice_caseeq(name, un) : tr_slice_eq(name, un)) {
            return u;
        }
    }
    return NULL;
}

/* One <digits>[.<digits>][unit] term starting at s.ptr[*pos]; advances *pos. */
static int parse_term(struct tr_slice s, size_t *pos, const struct quantity_syntax *syn,
                      uint64_t *out, const char **why)
{
    size_t i = *pos;
    if (i < s.len && s.ptr[i] == '-') {
        *why = "negative values are not allowed";
        return -EINVAL;
    }
    size_t start = i;
    while (i < s.len && is_digit(s.ptr[i])) {
        i++;
    }
    uint64_t whole;
    int rc = tr_slice_to_u64(tr_slice(s.ptr + start, i - start), &whole);
    if (rc == -ERANGE) {
        *why = "too large";
    }
    if (rc < 0) {
        return rc;
    }
    struct tr_slice frac = TR_SLICE_NULL;
    if (i < s.len && s.ptr[i] == '.') {
        size_t fstart = ++i;
        while (i < s.len && is_digit(s.ptr[i])) {
            i++;
        }
        if (i == fstart) {
            return -EINVAL;
        }
        frac = tr_slice(s.ptr + fstart, i - fstart);
    }
    size_t ustart = i;
    while (i < s.len && is_alpha(s.ptr[i])) {
        i++;
    }
    uint64_t mult = 1;
    if (i == ustart) {
        if (i < s.len && s.ptr[i] == ' ') {
            *why = "spaces are not allowed";
            return -EINVAL;
        }
        if (!syn->bare_ok) {
            *why = i == s.len ? syn->missing_unit : NULL;
            return -EINVAL;
        }
    } else {
        const struct unit *u = find_unit(syn, tr_slice(s.ptr + ustart, i - ustart));
        if (u == NULL) {
            *why = syn->bad_unit;
            return -EINVAL;
        }
        mult = u->mult;
    }
    uint64_t part = 0;
    if (fraction_of(frac, mult, &part) < 0) {
        *why = syn->inexact;
        return -EINVAL;
    }
    if (whole > (UINT64_MAX - part) / mult) {
        *why = "too large";
        return -ERANGE;
    }
    *out = whole * mult + part;
    *pos = i;
    return 0;
}

/* Pure parser behind tr_parse_duration_ms()/tr_parse_size(): returns 0, -EINVAL or
 * -ERANGE, and on failure points *why at a reason for messages, or NULL if the text is
 * simply not of the expected shape. */
static int parse_quantity(struct tr_slice s, const struct quantity_syntax *syn, uint64_t *out,
                          const char **why)
{
    *why = NULL;
    if (s.len == 0) {
        return -EINVAL;
    }
    if (!syn->bare_ok && tr_slice_eq(s, TR_SLICE_LIT("0"))) {
        *out = 0;
        return 0;
    }
    uint64_t total = 0;
    size_t pos = 0;
    do {
        uint64_t v;
        int rc = parse_term(s, &pos, syn, &v, why);
        if (rc < 0) {
            return rc;
        }
        if (v > UINT64_MAX - total) {
            *why = "too large";
            return -ERANGE;
        }
        total += v;
    } while (syn->compound && pos < s.len);
    if (pos != s.len) {
        return -EINVAL;
    }
    *out = total;
    return 0;
}

int tr_parse_duration_ms(const char *s, uint64_t *out)
{
    const char *why;
    return parse_quantity(tr_slice_cstr(s), &duration_syntax, out, &why);
}

int tr_parse_size(const char *s, uint64_t *out)
{
    const char *why;
    return parse_quantity(tr_slice_cstr(s), &size_syntax, out, &why);
}

static int conf_quantity(const struct tr_conf_node *n, const struct quantity_syntax *syn,
                         const char *what, uint64_t *out, struct tr_conf_err *err)
{
    if (n->kind != TR_CONF_SCALAR) {
        return expected(n, what, err);
    }
    const char *why;
    int rc = parse_quantity(n->u.text, syn, out, &why);
    if (rc < 0) {
        char got[QUOTE_MAX];
        describe(n, got);
        tr_conf_errorf(n, err, "expected %s, got %s%s%s", what, got, why ? ": " : "",
                       why ? why : "");
    }
    return rc;
}

int tr_conf_duration_ms(const struct tr_conf_node *n, uint64_t *out, struct tr_conf_err *err)
{
    return conf_quantity(n, &duration_syntax, "a duration like 500ms, 2s, 1m", out, err);
}

int tr_conf_size_bytes(const struct tr_conf_node *n, uint64_t *out, struct tr_conf_err *err)
{
    return conf_quantity(n, &size_syntax, "a size like 512, 64KiB, 10MB", out, err);
}
