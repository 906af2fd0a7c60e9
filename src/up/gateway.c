/* SPDX-License-Identifier: Apache-2.0 */
/* Emitting the gateway section (see gateway.h). The output is YAML flow style, one
 * scalar or bracket per line, every scalar double-quoted (or a plain `null`), so the
 * proxy reads exactly the text the manifest held. A table records, for each output line,
 * the manifest position of the node that produced it; the proxy's "gateway.yaml:L:C:"
 * errors are translated through it. */
#include "up/gateway.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"
#include "up/manifest.h"

#define GEN_NAME "gateway.yaml"

/* Where an output line came from: a value, and the key before it on the same line (if
 * any), which starts before column `value_col` of the output line. */
struct line_src {
    struct tr_up_pos key;
    struct tr_up_pos value;
    unsigned value_col; /* 1-based column of the value in the output line */
};

struct emitter {
    struct tr_buf *out;
    struct tr_buf lines; /* struct line_src, one per output line */
    size_t nlines;
    size_t line_start;    /* offset in out where the current line starts */
    struct tr_up_pos key; /* the key written on the current line, if any */
    unsigned value_col;
};

static void emit_indent(struct emitter *e, unsigned indent)
{
    static const char spaces[] = "                                ";
    while (indent > 0) {
        unsigned n = indent < sizeof(spaces) - 1 ? indent : (unsigned)sizeof(spaces) - 1;
        tr_buf_append(e->out, spaces, n);
        indent -= n;
    }
}

/* Ends the current output line, recording where in the manifest it came from. */
static void end_line(struct emitter *e, const struct tr_conf_node *from, bool comma)
{
    if (comma) {
        tr_buf_append(e->out, ",", 1);
    }
    tr_buf_append(e->out, "\n", 1);
    struct tr_up_pos pos = {from->line, from->col};
    struct line_src src = {
        .key = e->key.line != 0 ? e->key : pos,
        .value = pos,
        .value_col = e->key.line != 0 ? e->value_col : 0,
    };
    tr_buf_append(&e->lines, &src, sizeof(src));
    e->nlines++;
    e->line_start = e->out->len;
    e->key = (struct tr_up_pos){0, 0};
}

/* A YAML double-quoted scalar: quotes and backslashes escaped, control bytes as \xNN. */
static void emit_quoted(struct emitter *e, struct tr_slice s)
{
    static const char hex[] = "0123456789abcdef";
    tr_buf_append(e->out, "\"", 1);
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            tr_buf_append(e->out, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 0xf]};
            tr_buf_append(e->out, esc, 4);
        } else {
            tr_buf_append(e->out, &s.ptr[i], 1);
        }
    }
    tr_buf_append(e->out, "\"", 1);
}

static void emit_scalar(struct emitter *e, const struct tr_conf_node *n)
{
    if (tr_conf_is_null(n)) {
        tr_buf_append(e->out, "null", 4);
    } else {
        emit_quoted(e, n->u.text);
    }
}

static void emit_key(struct emitter *e, unsigned indent, const struct tr_conf_node *key,
                     const char *text)
{
    emit_indent(e, indent);
    if (text != NULL) {
        emit_quoted(e, tr_slice_cstr(text));
        tr_buf_append(e->out, ": ", 2);
        e->key = key != NULL ? (struct tr_up_pos){key->line, key->col} : (struct tr_up_pos){0, 0};
        e->value_col = (unsigned)(e->out->len - e->line_start) + 1;
    }
}

/* Emits `n` at `indent`, after "key: " when key is not NULL, followed by a comma when
 * more siblings follow. */
static void emit_node(struct emitter *e, const struct tr_conf_node *n, unsigned indent,
                      const struct tr_conf_node *key, bool comma)
{
    emit_key(e, indent, key, key != NULL ? key->u.text.ptr : NULL);
    switch (n->kind) {
    case TR_CONF_SCALAR:
        emit_scalar(e, n);
        end_line(e, n, comma);
        return;
    case TR_CONF_MAP:
        if (n->u.map.len == 0) {
            tr_buf_append(e->out, "{}", 2);
            end_line(e, n, comma);
            return;
        }
        tr_buf_append(e->out, "{", 1);
        end_line(e, n, false);
        for (size_t i = 0; i < n->u.map.len; i++) {
            const struct tr_conf_pair *p = &n->u.map.pairs[i];
            emit_node(e, p->value, indent + 2, p->key, i + 1 < n->u.map.len);
        }
        emit_indent(e, indent);
        tr_buf_append(e->out, "}", 1);
        end_line(e, n, comma);
        return;
    case TR_CONF_SEQ:
        if (n->u.seq.len == 0) {
            tr_buf_append(e->out, "[]", 2);
            end_line(e, n, comma);
            return;
        }
        tr_buf_append(e->out, "[", 1);
        end_line(e, n, false);
        for (size_t i = 0; i < n->u.seq.len; i++) {
            emit_node(e, n->u.seq.items[i], indent + 2, NULL, i + 1 < n->u.seq.len);
        }
        emit_indent(e, indent);
        tr_buf_append(e->out, "]", 1);
        end_line(e, n, comma);
        return;
    default:
        TR_ASSERT(!"bad node kind");
    }
}

/* An address line trellis up decides; placed at the key's position when the manifest
 * wrote one, else at the section. */
static void emit_override(struct emitter *e, const struct tr_conf_node *gw, const char *key,
                          const char *value, bool comma)
{
    const struct tr_conf_node *orig = tr_conf_get(gw, key);
    emit_key(e, 2, NULL, key);
    emit_quoted(e, tr_slice_cstr(value));
    end_line(e, orig != NULL ? orig : gw, comma);
}

static bool is_overridden(struct tr_slice key)
{
    static const char *const keys[] = {"listen", "admin", "registry", "workers"};
    for (size_t i = 0; i < TR_ARRAY_LEN(keys); i++) {
        if (tr_slice_eq(key, tr_slice_cstr(keys[i]))) {
            return true;
        }
    }
    return false;
}

/* Rewrites the proxy's "gateway.yaml:L:C: msg" as "<manifest>:line:col: gateway: msg". */
static int map_error(const struct tr_up_manifest *m, const struct emitter *e,
                     const struct tr_conf_err *inner, struct tr_conf_err *err)
{
    const struct tr_conf_node *gw = m->gateway;
    struct tr_up_pos pos = {gw->line, gw->col};
    const char *msg = inner->msg;
    size_t plen = strlen(GEN_NAME);
    if (strncmp(msg, GEN_NAME ":", plen + 1) == 0) {
        msg += plen + 1;
        char *end = NULL;
        unsigned long line = strtoul(msg, &end, 10);
        if (end != msg && *end == ':') {
            msg = end + 1;
            unsigned long col = strtoul(msg, &end, 10);
            if (end != msg && *end == ':') {
                msg = end + 1;
            }
            if (line >= 1 && line <= e->nlines) {
                const struct line_src *src =
                    (const struct line_src *)tr_buf_data(&e->lines) + (line - 1);
                pos = col < src->value_col ? src->key : src->value;
            }
        }
        while (*msg == ' ') {
            msg++;
        }
    }
    if (err != NULL) {
        snprintf(err->msg, sizeof(err->msg), "%.200s:%u:%u: gateway: %.280s", m->file, pos.line,
                 pos.col, msg);
    }
    return -EINVAL;
}

int tr_up_gateway_yaml(const struct tr_up_manifest *m, const char *listen, const char *admin,
                       const char *registry, struct tr_buf *out, struct tr_conf_err *err)
{
    const struct tr_conf_node *gw = m->gateway;
    TR_ASSERT(gw != NULL && gw->kind == TR_CONF_MAP);
    struct emitter e = {.out = out};
    tr_buf_init(&e.lines);
    tr_buf_reset(out);
    tr_buf_append(out, "{", 1);
    end_line(&e, gw, false);
    size_t rest = 0;
    for (size_t i = 0; i < gw->u.map.len; i++) {
        rest += !is_overridden(gw->u.map.pairs[i].key->u.text);
    }
    emit_override(&e, gw, "listen", listen, true);
    emit_override(&e, gw, "admin", admin, true);
    emit_override(&e, gw, "registry", registry, rest > 0);
    for (size_t i = 0; i < gw->u.map.len; i++) {
        const struct tr_conf_pair *p = &gw->u.map.pairs[i];
        if (is_overridden(p->key->u.text)) {
            continue;
        }
        rest--;
        emit_node(&e, p->value, 2, p->key, rest > 0);
    }
    tr_buf_append(out, "}", 1);
    end_line(&e, gw, false);
    struct tr_proxy_config *cfg = NULL;
    struct tr_conf_err inner = {""};
    int rc = tr_proxy_config_parse(GEN_NAME, tr_buf_data(out), out->len, 1, &cfg, &inner);
    if (rc == 0) {
        tr_proxy_config_unref(cfg);
    } else {
        rc = map_error(m, &e, &inner, err);
    }
    tr_buf_dispose(&e.lines);
    return rc;
}
