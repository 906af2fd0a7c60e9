/* SPDX-License-Identifier: Apache-2.0 */
/* A small CEL subset (see cel.h): a recursive-descent parser into a tree, and a
 * tree-walking evaluator whose values are jansson values (each evaluation returns a new
 * reference, NULL for an error). Operator precedence follows the CEL spec: || < && <
 * relations (== != < <= > >= in) < unary (! -) < member access and calls. */
#include "sidecar/cel.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

enum op {
    OP_LIT = 0, /* lit */
    OP_EVENT,   /* the event */
    OP_FIELD,   /* a.name */
    OP_INDEX,   /* a[b] */
    OP_LIST,    /* [items] */
    OP_NOT,
    OP_NEG,
    OP_AND,
    OP_OR,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_IN,
    OP_HAS,      /* has(a.name): a, name */
    OP_SIZE,     /* size(a) */
    OP_STARTS,   /* a.startsWith(b) */
    OP_ENDS,     /* a.endsWith(b) */
    OP_CONTAINS, /* a.contains(b) */
};

struct node {
    enum op op;
    json_t *lit;         /* OP_LIT: owned */
    char *name;          /* OP_FIELD, OP_HAS: owned */
    struct node *a;      /* owned */
    struct node *b;      /* owned */
    struct node **items; /* OP_LIST: owned, [nitems] */
    size_t nitems;
};

struct tr_cel {
    struct node *root;
};

/* ------------------------------------------------------------ parser */

struct parser {
    const char *src;
    size_t len;
    size_t pos;
    unsigned depth;
    char *why;
    size_t why_len;
    bool failed;
};

static void fail_at(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail_at(struct parser *p, const char *fmt, ...)
{
    if (p->failed) {
        return;
    }
    p->failed = true;
    int n = snprintf(p->why, p->why_len, "at %zu: ", p->pos + 1);
    if (n < 0 || (size_t)n >= p->why_len) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why + n, p->why_len - (size_t)n, fmt, ap);
    va_end(ap);
}

static void node_free(struct node *n)
{
    if (n == NULL) {
        return;
    }
    json_decref(n->lit);
    tr_free_null(&n->name);
    node_free(n->a);
    node_free(n->b);
    for (size_t i = 0; i < n->nitems; i++) {
        node_free(n->items[i]);
    }
    tr_free_null(&n->items);
    tr_free_null(&n);
}

static struct node *node_new(enum op op, struct node *a, struct node *b)
{
    struct node *n = tr_xcalloc(1, sizeof(*n));
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len && strchr(" \t\r\n", p->src[p->pos]) != NULL) {
        p->pos++;
    }
}

/* Consumes `tok` if it comes next (after blanks). */
static bool accept(struct parser *p, const char *tok)
{
    skip_ws(p);
    size_t n = strlen(tok);
    if (p->len - p->pos >= n && memcmp(p->src + p->pos, tok, n) == 0) {
        p->pos += n;
        return true;
    }
    return false;
}

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* An identifier at the current position (after blanks), copied; NULL if none. */
static char *ident(struct parser *p)
{
    skip_ws(p);
    size_t start = p->pos;
    if (p->pos >= p->len || !is_ident_start(p->src[p->pos])) {
        return NULL;
    }
    while (p->pos < p->len && is_ident_char(p->src[p->pos])) {
        p->pos++;
    }
    return tr_xstrndup(p->src + start, p->pos - start);
}

static struct node *parse_expr(struct parser *p);

static struct node *parse_string(struct parser *p)
{
    char quote = p->src[p->pos++];
    struct tr_buf s;
    tr_buf_init(&s);
    while (p->pos < p->len && p->src[p->pos] != quote) {
        char c = p->src[p->pos++];
        if (c == '\n') {
            break;
        }
        if (c == '\\') {
            if (p->pos >= p->len) {
                break;
            }
            char e = p->src[p->pos++];
            static const char from[] = "nrt\\'\"";
            static const char to[] = "\n\r\t\\'\"";
            const char *k = strchr(from, e);
            if (k == NULL || e == '\0') {
                p->pos--;
                fail_at(p, "unsupported escape \\%c in a string", e);
                tr_buf_dispose(&s);
                return NULL;
            }
            c = to[k - from];
        }
        tr_buf_append(&s, &c, 1);
    }
    if (p->pos >= p->len || p->src[p->pos] != quote) {
        fail_at(p, "unterminated string");
        tr_buf_dispose(&s);
        return NULL;
    }
    p->pos++;
    struct node *n = node_new(OP_LIT, NULL, NULL);
    n->lit = json_stringn(s.len ? tr_buf_data(&s) : "", s.len);
    tr_buf_dispose(&s);
    if (n->lit == NULL) {
        fail_at(p, "string is not valid UTF-8");
        node_free(n);
        return NULL;
    }
    return n;
}

static struct node *parse_number(struct parser *p)
{
    size_t start = p->pos;
    while (p->pos < p->len &&
           ((p->src[p->pos] >= '0' && p->src[p->pos] <= '9') || p->src[p->pos] == '.' ||
            p->src[p->pos] == 'e' || p->src[p->pos] == 'E' ||
            ((p->src[p->pos] == '+' || p->src[p->pos] == '-') &&
             (p->src[p->pos - 1] == 'e' || p->src[p->pos - 1] == 'E')))) {
        p->pos++;
    }
    char tmp[64];
    size_t n = p->pos - start;
    if (n >= sizeof(tmp)) {
        fail_at(p, "number too long");
        return NULL;
    }
    memcpy(tmp, p->src + start, n);
    tmp[n] = '\0';
    if (p->pos < p->len && (p->src[p->pos] == 'u' || p->src[p->pos] == 'U')) {
        p->pos++; /* CEL's unsigned suffix: the same number here */
    }
    char *end;
    double v = strtod(tmp, &end);
    if (*end != '\0' || !isfinite(v)) {
        fail_at(p, "malformed number \"%s\"", tmp);
        return NULL;
    }
    struct node *node = node_new(OP_LIT, NULL, NULL);
    node->lit = json_real(v);
    return node;
}

/* Arguments of a call after its '(' up to ')': exactly `want` of them. */
static bool parse_args(struct parser *p, const char *fn, size_t want, struct node **args)
{
    for (size_t i = 0; i < want; i++) {
        if (i > 0 && !accept(p, ",")) {
            fail_at(p, "%s() takes %zu argument%s", fn, want, want == 1 ? "" : "s");
            return false;
        }
        args[i] = parse_expr(p);
        if (args[i] == NULL) {
            return false;
        }
    }
    if (accept(p, ",")) {
        fail_at(p, "%s() takes %zu argument%s", fn, want, want == 1 ? "" : "s");
        return false;
    }
    if (!accept(p, ")")) {
        fail_at(p, "expected ) to close %s(", fn);
        return false;
    }
    return true;
}

static struct node *parse_list(struct parser *p)
{
    struct node *n = node_new(OP_LIST, NULL, NULL);
    if (accept(p, "]")) {
        return n;
    }
    do {
        struct node *item = parse_expr(p);
        if (item == NULL) {
            node_free(n);
            return NULL;
        }
        n->items = tr_xrealloc(n->items, (n->nitems + 1) * sizeof(*n->items));
        n->items[n->nitems++] = item;
    } while (accept(p, ","));
    if (!accept(p, "]")) {
        fail_at(p, "expected , or ] in a list");
        node_free(n);
        return NULL;
    }
    return n;
}

static struct node *parse_primary(struct parser *p)
{
    skip_ws(p);
    if (p->pos >= p->len) {
        fail_at(p, "unexpected end of expression");
        return NULL;
    }
    char c = p->src[p->pos];
    if (c == '"' || c == '\'') {
        return parse_string(p);
    }
    if ((c >= '0' && c <= '9') || c == '.') {
        return parse_number(p);
    }
    if (accept(p, "(")) {
        struct node *n = parse_expr(p);
        if (n != NULL && !accept(p, ")")) {
            fail_at(p, "expected )");
            node_free(n);
            return NULL;
        }
        return n;
    }
    if (accept(p, "[")) {
        return parse_list(p);
    }
    size_t at = p->pos;
    char *id = ident(p);
    if (id == NULL) {
        fail_at(p, "unexpected character '%c'", c);
        return NULL;
    }
    struct node *n = NULL;
    if (strcmp(id, "event") == 0) {
        n = node_new(OP_EVENT, NULL, NULL);
    } else if (strcmp(id, "true") == 0 || strcmp(id, "false") == 0) {
        n = node_new(OP_LIT, NULL, NULL);
        n->lit = json_boolean(id[0] == 't');
    } else if (strcmp(id, "null") == 0) {
        n = node_new(OP_LIT, NULL, NULL);
        n->lit = json_null();
    } else if ((strcmp(id, "has") == 0 || strcmp(id, "size") == 0) && accept(p, "(")) {
        struct node *arg = NULL;
        if (parse_args(p, id, 1, &arg)) {
            if (id[0] == 's') {
                n = node_new(OP_SIZE, arg, NULL);
            } else if (arg->op == OP_FIELD) {
                /* has(a.f) tests presence instead of reading the field. */
                n = node_new(OP_HAS, arg->a, NULL);
                n->name = arg->name;
                arg->a = NULL;
                arg->name = NULL;
                node_free(arg);
            } else {
                fail_at(p, "has() needs a field selection like has(event.data.id)");
                node_free(arg);
            }
        } else {
            node_free(arg);
        }
    } else {
        p->pos = at;
        fail_at(p, "unknown identifier \"%s\" (only event is defined)", id);
    }
    tr_free_null(&id);
    return n;
}

static struct node *parse_method(struct parser *p, struct node *target, char *name)
{
    static const struct {
        const char *name;
        enum op op;
        size_t nargs;
    } methods[] = {
        {"startsWith", OP_STARTS, 1},
        {"endsWith", OP_ENDS, 1},
        {"contains", OP_CONTAINS, 1},
        {"size", OP_SIZE, 0},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(methods); i++) {
        if (strcmp(name, methods[i].name) == 0) {
            struct node *arg = NULL;
            if (!parse_args(p, name, methods[i].nargs, &arg)) {
                node_free(arg);
                node_free(target);
                return NULL;
            }
            return node_new(methods[i].op, target, arg);
        }
    }
    fail_at(p, "unsupported function %s()", name);
    node_free(target);
    return NULL;
}

static struct node *parse_member(struct parser *p)
{
    struct node *n = parse_primary(p);
    while (n != NULL) {
        if (accept(p, ".")) {
            char *name = ident(p);
            if (name == NULL) {
                fail_at(p, "expected a field name after .");
                node_free(n);
                return NULL;
            }
            if (accept(p, "(")) {
                n = parse_method(p, n, name);
                tr_free_null(&name);
                continue;
            }
            n = node_new(OP_FIELD, n, NULL);
            n->name = name;
        } else if (accept(p, "[")) {
            struct node *idx = parse_expr(p);
            if (idx == NULL || !accept(p, "]")) {
                fail_at(p, "expected ] after an index");
                node_free(idx);
                node_free(n);
                return NULL;
            }
            n = node_new(OP_INDEX, n, idx);
        } else {
            break;
        }
    }
    return n;
}

static struct node *parse_unary(struct parser *p)
{
    if (++p->depth > TR_CEL_MAX_DEPTH) {
        fail_at(p, "expression nested deeper than %d", TR_CEL_MAX_DEPTH);
        return NULL;
    }
    struct node *n;
    skip_ws(p);
    if (p->pos < p->len && p->src[p->pos] == '!' &&
        !(p->pos + 1 < p->len && p->src[p->pos + 1] == '=')) {
        p->pos++;
        struct node *a = parse_unary(p);
        n = a ? node_new(OP_NOT, a, NULL) : NULL;
    } else if (accept(p, "-")) {
        struct node *a = parse_unary(p);
        n = a ? node_new(OP_NEG, a, NULL) : NULL;
    } else {
        n = parse_member(p);
    }
    p->depth--;
    return n;
}

static struct node *parse_relation(struct parser *p)
{
    static const struct {
        const char *tok;
        enum op op;
    } ops[] = {{"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE}, {">=", OP_GE},
               {"<", OP_LT},  {">", OP_GT},  {"in", OP_IN}};
    struct node *n = parse_unary(p);
    while (n != NULL) {
        size_t i = 0;
        for (; i < TR_ARRAY_LEN(ops); i++) {
            size_t at = p->pos;
            if (accept(p, ops[i].tok)) {
                /* "in" must be a whole word ("index" is an identifier). */
                if (ops[i].op == OP_IN && p->pos < p->len && is_ident_char(p->src[p->pos])) {
                    p->pos = at;
                    continue;
                }
                break;
            }
        }
        if (i == TR_ARRAY_LEN(ops)) {
            break;
        }
        struct node *b = parse_unary(p);
        if (b == NULL) {
            node_free(n);
            return NULL;
        }
        n = node_new(ops[i].op, n, b);
    }
    return n;
}

static struct node *parse_and(struct parser *p)
{
    struct node *n = parse_relation(p);
    while (n != NULL && accept(p, "&&")) {
        struct node *b = parse_relation(p);
        if (b == NULL) {
            node_free(n);
            return NULL;
        }
        n = node_new(OP_AND, n, b);
    }
    return n;
}

static struct node *parse_expr(struct parser *p)
{
    if (++p->depth > TR_CEL_MAX_DEPTH) {
        fail_at(p, "expression nested deeper than %d", TR_CEL_MAX_DEPTH);
        return NULL;
    }
    struct node *n = parse_and(p);
    while (n != NULL && accept(p, "||")) {
        struct node *b = parse_and(p);
        if (b == NULL) {
            node_free(n);
            n = NULL;
            break;
        }
        n = node_new(OP_OR, n, b);
    }
    p->depth--;
    return n;
}

int tr_cel_compile(const char *src, struct tr_cel **out, char *why, size_t why_len)
{
    struct parser p = {.src = src, .len = strlen(src), .why = why, .why_len = why_len};
    if (p.len > TR_CEL_MAX_LEN) {
        snprintf(why, why_len, "expression longer than %d bytes", TR_CEL_MAX_LEN);
        return -EINVAL;
    }
    struct node *root = parse_expr(&p);
    skip_ws(&p);
    if (root != NULL && p.pos < p.len) {
        fail_at(&p, "unexpected \"%.20s\"", p.src + p.pos);
        node_free(root);
        root = NULL;
    }
    if (root == NULL) {
        if (!p.failed) {
            fail_at(&p, "malformed expression");
        }
        return -EINVAL;
    }
    struct tr_cel *e = tr_xcalloc(1, sizeof(*e));
    e->root = root;
    *out = e;
    return 0;
}

void tr_cel_free(struct tr_cel *e)
{
    if (e == NULL) {
        return;
    }
    node_free(e->root);
    tr_free_null(&e);
}

/* ------------------------------------------------------------ evaluation */

static json_t *eval(const struct node *n, json_t *event);

/* Equality by value (numbers numerically, containers deeply); -1 when the types differ
 * (an error in CEL), except that null compares unequal to anything else. */
static int equal(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        return json_number_value(a) == json_number_value(b);
    }
    if (json_is_boolean(a) && json_is_boolean(b)) {
        return json_is_true(a) == json_is_true(b);
    }
    if (json_typeof(a) != json_typeof(b)) {
        return json_is_null(a) || json_is_null(b) ? 0 : -1;
    }
    return json_equal(a, b);
}

/* <0, 0, >0, or INT32_MIN for values that have no order. */
#define NO_ORDER (-0x7fffffff - 1)
static int compare(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a);
        double y = json_number_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_string(a) && json_is_string(b)) {
        size_t la = json_string_length(a);
        size_t lb = json_string_length(b);
        int c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
        return c != 0 ? c : (la < lb ? -1 : la > lb);
    }
    if (json_is_boolean(a) && json_is_boolean(b)) {
        return (int)json_is_true(a) - (int)json_is_true(b);
    }
    return NO_ORDER;
}

static json_t *boolean(int v)
{
    return v < 0 ? NULL : json_boolean(v);
}

static json_t *logic(const struct node *n, json_t *event)
{
    /* CEL's commutative && / ||: a decisive side wins over an error on the other. */
    bool decisive = n->op == OP_OR;
    json_t *a = eval(n->a, event);
    if (json_is_boolean(a) && json_is_true(a) == decisive) {
        return a;
    }
    json_t *b = eval(n->b, event);
    json_t *r;
    if (json_is_boolean(b) && json_is_true(b) == decisive) {
        r = json_incref(b);
    } else if (json_is_boolean(a) && json_is_boolean(b)) {
        r = json_boolean(!decisive);
    } else {
        r = NULL;
    }
    json_decref(a);
    json_decref(b);
    return r;
}

static json_t *string_test(enum op op, json_t *s, json_t *arg)
{
    if (!json_is_string(s) || !json_is_string(arg)) {
        return NULL;
    }
    const char *v = json_string_value(s);
    size_t lv = json_string_length(s);
    const char *x = json_string_value(arg);
    size_t lx = json_string_length(arg);
    if (lx > lv) {
        return json_false();
    }
    switch (op) {
    case OP_STARTS:
        return json_boolean(memcmp(v, x, lx) == 0);
    case OP_ENDS:
        return json_boolean(memcmp(v + lv - lx, x, lx) == 0);
    default:
        return json_boolean(lx == 0 || memmem(v, lv, x, lx) != NULL);
    }
}

static json_t *membership(json_t *x, json_t *coll)
{
    if (json_is_array(coll)) {
        size_t i;
        json_t *v;
        json_array_foreach(coll, i, v)
        {
            if (equal(x, v) == 1) {
                return json_true();
            }
        }
        return json_false();
    }
    if (json_is_object(coll) && json_is_string(x)) {
        return json_boolean(json_object_get(coll, json_string_value(x)) != NULL);
    }
    return NULL;
}

static json_t *size_of(json_t *v)
{
    if (json_is_string(v)) {
        /* CEL counts code points. */
        size_t n = 0;
        const char *s = json_string_value(v);
        for (size_t i = 0; i < json_string_length(v); i++) {
            n += ((unsigned char)s[i] & 0xc0) != 0x80;
        }
        return json_real((double)n);
    }
    if (json_is_array(v)) {
        return json_real((double)json_array_size(v));
    }
    if (json_is_object(v)) {
        return json_real((double)json_object_size(v));
    }
    return NULL;
}

static json_t *index_of(json_t *a, json_t *idx)
{
    if (json_is_object(a) && json_is_string(idx)) {
        return json_incref(json_object_get(a, json_string_value(idx)));
    }
    if (json_is_array(a) && json_is_number(idx)) {
        double d = json_number_value(idx);
        if (d >= 0 && d < (double)json_array_size(a) && d == floor(d)) {
            return json_incref(json_array_get(a, (size_t)d));
        }
    }
    return NULL;
}

static json_t *eval2(const struct node *n, json_t *a, json_t *b)
{
    int c;
    switch (n->op) {
    case OP_INDEX:
        return index_of(a, b);
    case OP_EQ:
        return boolean(equal(a, b));
    case OP_NE:
        c = equal(a, b);
        return boolean(c < 0 ? c : !c);
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE:
        c = compare(a, b);
        if (c == NO_ORDER) {
            return NULL;
        }
        return json_boolean(n->op == OP_LT   ? c < 0
                            : n->op == OP_LE ? c <= 0
                            : n->op == OP_GT ? c > 0
                                             : c >= 0);
    case OP_IN:
        return membership(a, b);
    case OP_STARTS:
    case OP_ENDS:
    case OP_CONTAINS:
        return string_test(n->op, a, b);
    default:
        TR_ASSERT(0 && "not a binary operator");
        return NULL;
    }
}

static json_t *eval(const struct node *n, json_t *event)
{
    json_t *a;
    json_t *r;
    switch (n->op) {
    case OP_LIT:
        return json_incref(n->lit);
    case OP_EVENT:
        return json_incref(event);
    case OP_FIELD:
    case OP_HAS:
        a = eval(n->a, event);
        r = json_is_object(a) ? json_object_get(a, n->name) : NULL;
        if (n->op == OP_HAS) {
            r = json_is_object(a) ? json_boolean(r != NULL) : NULL;
        } else {
            json_incref(r);
        }
        json_decref(a);
        return r;
    case OP_LIST:
        r = json_array();
        for (size_t i = 0; i < n->nitems; i++) {
            json_t *v = eval(n->items[i], event);
            if (v == NULL) {
                json_decref(r);
                return NULL;
            }
            json_array_append_new(r, v);
        }
        return r;
    case OP_NOT:
        a = eval(n->a, event);
        r = json_is_boolean(a) ? json_boolean(!json_is_true(a)) : NULL;
        json_decref(a);
        return r;
    case OP_NEG:
        a = eval(n->a, event);
        r = json_is_number(a) ? json_real(-json_number_value(a)) : NULL;
        json_decref(a);
        return r;
    case OP_AND:
    case OP_OR:
        return logic(n, event);
    case OP_SIZE:
        a = eval(n->a, event);
        r = size_of(a);
        json_decref(a);
        return r;
    default:
        break;
    }
    a = eval(n->a, event);
    json_t *b = a ? eval(n->b, event) : NULL;
    r = a && b ? eval2(n, a, b) : NULL;
    json_decref(a);
    json_decref(b);
    return r;
}

bool tr_cel_match(const struct tr_cel *e, json_t *event)
{
    json_t *r = eval(e->root, event);
    bool match = json_is_true(r);
    json_decref(r);
    return match;
}
