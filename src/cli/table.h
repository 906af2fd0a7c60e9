/* SPDX-License-Identifier: Apache-2.0 */
/* Plain-text tables for the CLI's human output: a header row, then rows of cells,
 * printed with columns padded to their widest cell and two spaces between them. */
#ifndef TR_CLI_TABLE_H
#define TR_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct tr_cli_table {
    size_t ncols;
    size_t nrows;  /* including the header */
    char **cells;  /* owned; nrows * ncols strings, each owned */
    size_t *width; /* owned; ncols display widths */
};

/* Starts a table whose header row is the `ncols` strings in `header`. */
void tr_cli_table_init(struct tr_cli_table *t, size_t ncols, const char *const *header);
/* Appends a row of `ncols` strings (copied; NULL prints as empty). */
void tr_cli_table_add(struct tr_cli_table *t, const char *const *row);
/* Prints every row to `f`; the last column is not padded. */
void tr_cli_table_print(const struct tr_cli_table *t, FILE *f);
void tr_cli_table_dispose(struct tr_cli_table *t);

#endif
