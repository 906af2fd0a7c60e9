/* SPDX-License-Identifier: Apache-2.0 */
/* Plain-text tables (see table.h). Widths count UTF-8 code points, not bytes, so a
 * non-ASCII service name or key does not shift the columns after it. */
#include "cli/table.h"

#include <string.h>

#include "core/mem.h"

static size_t display_width(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80) {
            n++;
        }
    }
    return n;
}

void tr_cli_table_init(struct tr_cli_table *t, size_t ncols, const char *const *header)
{
    t->ncols = ncols;
    t->nrows = 0;
    t->cells = NULL;
    t->width = tr_xcalloc(ncols, sizeof(*t->width));
    tr_cli_table_add(t, header);
}

void tr_cli_table_add(struct tr_cli_table *t, const char *const *row)
{
    t->cells = tr_xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*t->cells));
    char **dst = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        dst[i] = tr_xstrdup(row[i] != NULL ? row[i] : "");
        size_t w = display_width(dst[i]);
        if (w > t->width[i]) {
            t->width[i] = w;
        }
    }
    t->nrows++;
}

void tr_cli_table_print(const struct tr_cli_table *t, FILE *f)
{
    for (size_t r = 0; r < t->nrows; r++) {
        char *const *row = t->cells + r * t->ncols;
        for (size_t i = 0; i < t->ncols; i++) {
            fputs(row[i], f);
            if (i + 1 == t->ncols) {
                break;
            }
            for (size_t pad = display_width(row[i]); pad < t->width[i] + 2; pad++) {
                fputc(' ', f);
            }
        }
        fputc('\n', f);
    }
}

void tr_cli_table_dispose(struct tr_cli_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        tr_free_null(&t->cells[i]);
    }
    tr_free_null(&t->cells);
    tr_free_null(&t->width);
    t->nrows = 0;
}
