/* SPDX-License-Identifier: Apache-2.0 */
/* A recursive-descent parser and evaluator for Consul's filter expressions (see
 * consul_filter.h). The parser is a pure function of the text; evaluation walks the
 * JSON entry the endpoint is about to return. */
#include "server/consul_filter.h"

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

enum tok_kind {
    TOK_END = 0,
    TOK_WORD,   /* bare word: selector, keyword or literal */
    TOK_STRING, /* "quoted" or `raw` */
    TOK_EQ,
    TOK_NE,
    TOK_LPAREN,
    TOK_RPAREN,
};

struct tok {
    enum tok_kind kind;
    char *text; /* owned: word or unescaped string */
    size_t len;
};

enum node_kind {
    N_OR = 0,
    N_AND,
    N_NOT,
    N_MATCH,
};

enum op {
    OP_EQ = 0,
    OP_NE,
    OP_IN, /* value in selector */
    OP_NOT_IN,
    OP_EMPTY,
    OP_NOT_EMPTY,
    OP_MATCHES,
    OP_NOT_MATCHES,
};

struct node {
    enum node_kind kind;
    struct node *a; /* owned */
    struct node *b; /* owned */
    enum op op;
    char **path; /* owned segments */
    size_t npath;
    char *value; /* owned */
    size_t value_len;
    regex_t re;
    bool has_re;
};

struct tr_consul_filter {
    struct node *root;
};

struct parser {
    const char *p;
    const char *end;
    struct tok cur;
    const char *const *roots;
    int depth;
    char *err;
    size_t errlen;
    bool failed;
};

/* ------------------------------------------------------------ tokens */

static void perr(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void perr(struct parser *ps, const char *fmt, ...)
{
    if (ps->failed) {
        return;
    }
    ps->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err, ps->errlen, fmt, ap);
    va_end(ap);
}

static bool word_char(char ch)
{
    return !isspace((unsigned char)ch) && ch != '(' && ch != ')' && ch != '=' && ch != '!' &&
           ch != '"' && ch != '`';
}

static void read_string(struct parser *ps, char quote)
{
    const char *start = ++ps->p;
    char *out = tr_xmalloc((size_t)(ps->end - start) + 1);
    size_t n = 0;
    while (ps->p < ps->end && *ps->p != quote) {
        char ch = *ps->p++;
        if (quote == '"' && ch == '\\' && ps->p < ps->end) {
            ch = *ps->p++;
            ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch;
        }
        out[n++] = ch;
    }
    if (ps->p >= ps->end) {
        tr_free_null(&out);
        perr(ps, "unterminated string");
        return;
    }
    ps->p++;
    out[n] = '\0';
    ps->cur = (struct tok){TOK_STRING, out, n};
}

static void next(struct parser *ps)
{
    tr_free_null(&ps->cur.text);
    ps->cur = (struct tok){TOK_END, NULL, 0};
    while (ps->p < ps->end && isspace((unsigned char)*ps->p)) {
        ps->p++;
    }
    if (ps->p >= ps->end || ps->failed) {
        return;
    }
    char ch = *ps->p;
    if (ch == '(' || ch == ')') {
        ps->cur.kind = ch == '(' ? TOK_LPAREN : TOK_RPAREN;
        ps->p++;
    } else if ((ch == '=' || ch == '!') && ps->p + 1 < ps->end && ps->p[1] == '=') {
        ps->cur.kind = ch == '=' ? TOK_EQ : TOK_NE;
        ps->p += 2;
    } else if (ch == '"' || ch == '`') {
        read_string(ps, ch);
    } else if (word_char(ch)) {
        const char *start = ps->p;
        while (ps->p < ps->end && word_char(*ps->p)) {
            ps->p++;
        }
        size_t n = (size_t)(ps->p - start);
        ps->cur = (struct tok){TOK_WORD, tr_xstrndup(start, n), n};
    } else {
        perr(ps, "unexpected character '%c'", ch);
    }
}

static bool is_word(const struct parser *ps, const char *w)
{
    return ps->cur.kind == TOK_WORD && strcmp(ps->cur.text, w) == 0;
}

/* ------------------------------------------------------------ nodes */

static void node_free(struct node *n)
{
    if (n == NULL) {
        return;
    }
    node_free(n->a);
    node_free(n->b);
    for (size_t i = 0; i < n->npath; i++) {
        tr_free_null(&n->path[i]);
    }
    tr_free_null(&n->path);
    tr_free_null(&n->value);
    if (n->has_re) {
        regfree(&n->re);
    }
    tr_free_null(&n);
}

static struct node *node_new(enum node_kind kind, struct node *a, struct node *b)
{
    struct node *n = tr_xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->a = a;
    n->b = b;
    return n;
}

/* Splits a selector into segments and checks its first one against the roots. */
static bool set_selector(struct parser *ps, struct node *n, const char *sel)
{
    size_t count = 1;
    for (const char *p = sel; *p != '\0'; p++) {
        count += *p == '.';
    }
    n->path = tr_xcalloc(count, sizeof(char *));
    const char *seg = sel;
    for (size_t i = 0; i < count; i++) {
        size_t len = strcspn(seg, ".");
        if (len == 0) {
            perr(ps, "invalid selector \"%.128s\"", sel);
            return false;
        }
        n->path[n->npath++] = tr_xstrndup(seg, len);
        seg += len + 1;
    }
    for (const char *const *r = ps->roots; r != NULL && *r != NULL; r++) {
        if (strcasecmp(*r, n->path[0]) == 0) {
            tr_free_null(&n->path[0]);
            n->path[0] = tr_xstrdup(*r);
            return true;
        }
    }
    perr(ps, "unknown field \"%.64s\" in selector \"%.128s\"", n->path[0], sel);
    return false;
}

static bool take_value(struct parser *ps, struct node *n)
{
    if (ps->cur.kind != TOK_STRING && ps->cur.kind != TOK_WORD) {
        perr(ps, "expected a value");
        return false;
    }
    n->value = ps->cur.text;
    n->value_len = ps->cur.len;
    ps->cur.text = NULL;
    next(ps);
    return true;
}

/* After "<selector>" has been read: the operator and its operand. */
static bool match_after_selector(struct parser *ps, struct node *n)
{
    bool negate = false;
    if (ps->cur.kind == TOK_EQ || ps->cur.kind == TOK_NE) {
        n->op = ps->cur.kind == TOK_EQ ? OP_EQ : OP_NE;
        next(ps);
        return take_value(ps, n);
    }
    if (is_word(ps, "is")) {
        next(ps);
        if (is_word(ps, "not")) {
            negate = true;
            next(ps);
        }
        if (!is_word(ps, "empty")) {
            perr(ps, "expected \"empty\" after \"is\"");
            return false;
        }
        next(ps);
        n->op = negate ? OP_NOT_EMPTY : OP_EMPTY;
        return true;
    }
    if (is_word(ps, "not")) {
        negate = true;
        next(ps);
    }
    if (is_word(ps, "contains")) {
        next(ps);
        n->op = negate ? OP_NOT_IN : OP_IN;
        return take_value(ps, n);
    }
    if (is_word(ps, "matches")) {
        next(ps);
        n->op = negate ? OP_NOT_MATCHES : OP_MATCHES;
        if (!take_value(ps, n)) {
            return false;
        }
        if (regcomp(&n->re, n->value, REG_EXTENDED | REG_NOSUB) != 0) {
            perr(ps, "invalid regular expression \"%.128s\"", n->value);
            return false;
        }
        n->has_re = true;
        return true;
    }
    perr(ps, "expected ==, !=, in, contains, is empty or matches");
    return false;
}

static struct node *parse_match(struct parser *ps)
{
    if (ps->cur.kind != TOK_WORD && ps->cur.kind != TOK_STRING) {
        perr(ps, "expected a selector or a value");
        return NULL;
    }
    struct node *n = node_new(N_MATCH, NULL, NULL);
    char *first = ps->cur.text;
    size_t first_len = ps->cur.len;
    bool first_is_word = ps->cur.kind == TOK_WORD;
    ps->cur.text = NULL;
    next(ps);
    bool negate = false;
    if (is_word(ps, "not") && ps->p < ps->end) {
        /* "<value> not in <selector>" or "<selector> not contains|matches <value>" */
        const char *save = ps->p;
        next(ps);
        if (is_word(ps, "in")) {
            negate = true;
        } else {
            /* Put "not" back: match_after_selector reads it. */
            tr_free_null(&ps->cur.text);
            ps->p = save;
            ps->cur = (struct tok){TOK_WORD, tr_xstrdup("not"), 3};
        }
    }
    if (is_word(ps, "in")) {
        next(ps);
        n->op = negate ? OP_NOT_IN : OP_IN;
        n->value = first;
        n->value_len = first_len;
        if (ps->cur.kind != TOK_WORD) {
            perr(ps, "expected a selector after \"in\"");
            node_free(n);
            return NULL;
        }
        bool ok = set_selector(ps, n, ps->cur.text);
        next(ps);
        if (!ok) {
            node_free(n);
            return NULL;
        }
        return n;
    }
    bool ok = first_is_word && set_selector(ps, n, first);
    if (!first_is_word) {
        perr(ps, "expected a selector, got the string \"%.64s\"", first);
    }
    tr_free_null(&first);
    if (!ok || !match_after_selector(ps, n)) {
        node_free(n);
        return NULL;
    }
    return n;
}

static struct node *parse_or(struct parser *ps);

static struct node *parse_unary(struct parser *ps)
{
    if (++ps->depth > TR_CONSUL_FILTER_MAX_DEPTH) {
        perr(ps, "expression nested deeper than %d", TR_CONSUL_FILTER_MAX_DEPTH);
        return NULL;
    }
    struct node *n = NULL;
    if (is_word(ps, "not")) {
        next(ps);
        struct node *a = parse_unary(ps);
        n = a ? node_new(N_NOT, a, NULL) : NULL;
    } else if (ps->cur.kind == TOK_LPAREN) {
        next(ps);
        n = parse_or(ps);
        if (n != NULL && ps->cur.kind != TOK_RPAREN) {
            perr(ps, "missing )");
            node_free(n);
            n = NULL;
        }
        next(ps);
    } else {
        n = parse_match(ps);
    }
    ps->depth--;
    return n;
}

static struct node *parse_and(struct parser *ps)
{
    struct node *n = parse_unary(ps);
    while (n != NULL && is_word(ps, "and")) {
        next(ps);
        struct node *b = parse_unary(ps);
        if (b == NULL) {
            node_free(n);
            return NULL;
        }
        n = node_new(N_AND, n, b);
    }
    return n;
}

static struct node *parse_or(struct parser *ps)
{
    struct node *n = parse_and(ps);
    while (n != NULL && is_word(ps, "or")) {
        next(ps);
        struct node *b = parse_and(ps);
        if (b == NULL) {
            node_free(n);
            return NULL;
        }
        n = node_new(N_OR, n, b);
    }
    return n;
}

int tr_consul_filter_parse(struct tr_slice expr, const char *const *roots,
                           struct tr_consul_filter **out, char *err, size_t errlen)
{
    *out = NULL;
    if (expr.len > TR_CONSUL_FILTER_MAX_LEN) {
        snprintf(err, errlen, "filter longer than %d bytes", TR_CONSUL_FILTER_MAX_LEN);
        return -EINVAL;
    }
    struct parser ps = {
        .p = expr.ptr,
        .end = expr.ptr + expr.len,
        .roots = roots,
        .err = err,
        .errlen = errlen,
    };
    next(&ps);
    if (ps.cur.kind == TOK_END && !ps.failed) {
        perr(&ps, "empty expression");
    }
    struct node *root = ps.failed ? NULL : parse_or(&ps);
    if (root != NULL && ps.cur.kind != TOK_END) {
        perr(&ps, "unexpected \"%.64s\"", ps.cur.text ? ps.cur.text : ")");
    }
    if (root == NULL && !ps.failed) {
        perr(&ps, "empty expression");
    }
    tr_free_null(&ps.cur.text);
    if (ps.failed) {
        node_free(root);
        return -EINVAL;
    }
    *out = tr_xcalloc(1, sizeof(**out));
    (*out)->root = root;
    return 0;
}

void tr_consul_filter_free(struct tr_consul_filter *f)
{
    if (f == NULL) {
        return;
    }
    node_free(f->root);
    tr_free_null(&f);
}

/* ------------------------------------------------------------ evaluation */

static json_t *member(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (v != NULL) {
        return v;
    }
    const char *k;
    json_t *m;
    json_object_foreach((json_t *)obj, k, m)
    {
        if (strcasecmp(k, key) == 0) {
            return m;
        }
    }
    return NULL;
}

/* Collects the values `path[i..]` leads to from `v`; arrays met before the last
 * segment fan out. */
static void resolve(const json_t *v, char *const *path, size_t i, size_t n, json_t *out)
{
    if (i == n) {
        json_array_append(out, (json_t *)v);
        return;
    }
    if (json_is_array(v)) {
        size_t k;
        json_t *e;
        json_array_foreach(v, k, e)
        {
            resolve(e, path, i, n, out);
        }
        return;
    }
    if (json_is_object(v)) {
        const json_t *m = member(v, path[i]);
        if (m != NULL) {
            resolve(m, path, i + 1, n, out);
        }
    }
}

static bool equals(const json_t *v, const char *lit, size_t len)
{
    char buf[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_length(v) == len && memcmp(json_string_value(v), lit, len) == 0;
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return strcmp(buf, lit) == 0;
    case JSON_REAL:
        return strtod(lit, NULL) == json_real_value(v);
    case JSON_TRUE:
        return strcmp(lit, "true") == 0;
    case JSON_FALSE:
        return strcmp(lit, "false") == 0;
    default:
        return false;
    }
}

static bool contains(const json_t *v, const char *lit, size_t len)
{
    if (json_is_string(v)) {
        return memmem(json_string_value(v), json_string_length(v), lit, len) != NULL;
    }
    if (json_is_array(v)) {
        size_t k;
        json_t *e;
        json_array_foreach(v, k, e)
        {
            if (equals(e, lit, len)) {
                return true;
            }
        }
        return false;
    }
    if (json_is_object(v)) {
        return json_object_get(v, lit) != NULL;
    }
    return false;
}

static bool is_empty(const json_t *v)
{
    return json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0) ||
           (json_is_array(v) && json_array_size(v) == 0) ||
           (json_is_object(v) && json_object_size(v) == 0);
}

static bool eval_match(const struct node *n, const json_t *entry)
{
    json_t *vals = json_array();
    resolve(entry, n->path, 0, n->npath, vals);
    bool any = false;
    bool empty = json_array_size(vals) == 0;
    size_t k;
    json_t *v;
    json_array_foreach(vals, k, v)
    {
        switch (n->op) {
        case OP_EQ:
        case OP_NE:
            any = any || equals(v, n->value, n->value_len);
            break;
        case OP_IN:
        case OP_NOT_IN:
            any = any || contains(v, n->value, n->value_len);
            break;
        case OP_EMPTY:
        case OP_NOT_EMPTY:
            empty = empty || is_empty(v);
            break;
        case OP_MATCHES:
        case OP_NOT_MATCHES:
            any = any ||
                  (json_is_string(v) && regexec(&n->re, json_string_value(v), 0, NULL, 0) == 0);
            break;
        default:
            TR_ASSERT(0);
        }
    }
    json_decref(vals);
    switch (n->op) {
    case OP_EQ:
    case OP_IN:
    case OP_MATCHES:
        return any;
    case OP_EMPTY:
        return empty;
    case OP_NOT_EMPTY:
        return !empty;
    default:
        return !any;
    }
}

static bool eval(const struct node *n, const json_t *entry)
{
    switch (n->kind) {
    case N_OR:
        return eval(n->a, entry) || eval(n->b, entry);
    case N_AND:
        return eval(n->a, entry) && eval(n->b, entry);
    case N_NOT:
        return !eval(n->a, entry);
    case N_MATCH:
        return eval_match(n, entry);
    default:
        TR_ASSERT(0);
        return false;
    }
}

bool tr_consul_filter_match(const struct tr_consul_filter *f, const json_t *entry)
{
    return f == NULL || eval(f->root, entry);
}
