/* SPDX-License-Identifier: Apache-2.0 */
/* JSON values for services: parse request bodies, build replies, read and write state.
 * A struct trellis_json is an opaque, reference-counted value (libtrellis uses jansson
 * underneath, but no jansson type appears here).
 *
 * Ownership follows one rule: a function that returns `struct trellis_json *` from a
 * constructor, parse, pack or copy gives the caller a reference to release with
 * trellis_json_free(); getters (trellis_json_get, trellis_json_at, ...) return borrowed
 * values that live as long as their container. Setters whose comment says "takes"
 * consume the reference passed in, even on failure, so nested builders read naturally:
 *     trellis_json_set(obj, "tags", trellis_json_array());
 * Values are not thread-safe: share one between threads only read-only. */
#ifndef TRELLIS_JSON_H
#define TRELLIS_JSON_H

#include "trellis/base.h"

#ifdef __cplusplus
extern "C" {
#endif

struct trellis_json;

enum trellis_json_type {
    TRELLIS_JSON_NULL = 0,
    TRELLIS_JSON_BOOL,
    TRELLIS_JSON_INT,
    TRELLIS_JSON_REAL,
    TRELLIS_JSON_STRING,
    TRELLIS_JSON_ARRAY,
    TRELLIS_JSON_OBJECT,
};

/* --- Parsing and printing --- */

/* Parses `len` bytes of JSON text (any value, not only objects; the whole input must be
 * one value). Returns a new value, or NULL with a message naming the line, column and
 * problem in `err` (if not NULL) and in trellis_last_error(). Nesting deeper than 2048
 * levels is refused. */
TRELLIS_API struct trellis_json *trellis_json_parse(const char *text, size_t len, char *err,
                                                    size_t err_size);
/* Compact text of `j` (object members in insertion order), NUL-terminated; free it with
 * trellis_free(). NULL for a NULL value. */
TRELLIS_API char *trellis_json_dump(const struct trellis_json *j);

/* --- Constructors: each returns a new value (NULL only when memory runs out) --- */

TRELLIS_API struct trellis_json *trellis_json_object(void);
TRELLIS_API struct trellis_json *trellis_json_array(void);
/* `s` must be valid UTF-8; returns NULL otherwise. */
TRELLIS_API struct trellis_json *trellis_json_str(const char *s);
TRELLIS_API struct trellis_json *trellis_json_strn(const char *s, size_t len);
TRELLIS_API struct trellis_json *trellis_json_int(int64_t v);
TRELLIS_API struct trellis_json *trellis_json_real(double v);
TRELLIS_API struct trellis_json *trellis_json_bool(bool v);
TRELLIS_API struct trellis_json *trellis_json_null(void);

/* Builds a value from a format, jansson's json_pack() syntax: s string, i int, I int64_t,
 * f double, b bool, n null, o a trellis_json (taken), O a trellis_json (referenced),
 * {} objects and [] arrays, `?` after s/o makes NULL become null. Example:
 *     trellis_json_pack("{s:s, s:I, s:[i,i]}", "id", id, "total", total, "xy", 1, 2)
 * Returns NULL (and sets trellis_last_error()) on a bad format or argument. */
TRELLIS_API struct trellis_json *trellis_json_pack(const char *fmt, ...);

/* Checks and extracts fields with jansson's json_unpack() syntax ("{s:s, s:I, s?b}":
 * s const char **, I int64_t *, i int *, f double *, F double * accepting ints too,
 * b bool-as-int *, o struct trellis_json ** borrowed, `?` marks optional keys, `!`
 * refuses unknown keys). Returns 0, or TRELLIS_EBADJSON with jansson's message (a missing
 * key is named; a wrong type says "Expected integer, got string")
 * in `err` (if not NULL) and in trellis_last_error(). */
TRELLIS_API int trellis_json_unpack(const struct trellis_json *j, char *err, size_t err_size,
                                    const char *fmt, ...);

/* --- Reading --- */

TRELLIS_API enum trellis_json_type trellis_json_typeof(const struct trellis_json *j);
/* The string of a string value, else NULL. */
TRELLIS_API const char *trellis_json_string(const struct trellis_json *j);
TRELLIS_API size_t trellis_json_string_len(const struct trellis_json *j);
/* Integer of an int value (0 otherwise). */
TRELLIS_API int64_t trellis_json_int_value(const struct trellis_json *j);
/* Number of an int or real value (0 otherwise). */
TRELLIS_API double trellis_json_number(const struct trellis_json *j);
/* true only for the JSON literal true. */
TRELLIS_API bool trellis_json_is_true(const struct trellis_json *j);
/* Elements of an array or members of an object; 0 for anything else. */
TRELLIS_API size_t trellis_json_size(const struct trellis_json *j);

/* Object member `key` (borrowed), or NULL if absent or `obj` is not an object. */
TRELLIS_API struct trellis_json *trellis_json_get(const struct trellis_json *obj, const char *key);
/* Member `key` if it is a string, else NULL. */
TRELLIS_API const char *trellis_json_get_str(const struct trellis_json *obj, const char *key);
/* Member `key` if it is an integer: stores it and returns true; false otherwise. */
TRELLIS_API bool trellis_json_get_int(const struct trellis_json *obj, const char *key,
                                      int64_t *out);
/* Member `key` if it is true/false. */
TRELLIS_API bool trellis_json_get_bool(const struct trellis_json *obj, const char *key, bool *out);
/* Array element `i` (borrowed), or NULL when out of range or not an array. */
TRELLIS_API struct trellis_json *trellis_json_at(const struct trellis_json *arr, size_t i);

/* Object iteration, in insertion order:
 *     for (void *it = trellis_json_iter(obj); it; it = trellis_json_iter_next(obj, it))
 *         use(trellis_json_iter_key(it), trellis_json_iter_value(it));
 * The object must not be modified while iterating (except through iter_value). */
TRELLIS_API void *trellis_json_iter(const struct trellis_json *obj);
TRELLIS_API void *trellis_json_iter_next(const struct trellis_json *obj, void *it);
TRELLIS_API const char *trellis_json_iter_key(void *it);
TRELLIS_API struct trellis_json *trellis_json_iter_value(void *it);

/* --- Writing --- */

/* Sets member `key` of an object; takes `value`. Returns 0, or -EINVAL when obj is not
 * an object, value is NULL or key is not UTF-8. */
TRELLIS_API int trellis_json_set(struct trellis_json *obj, const char *key,
                                 struct trellis_json *value);
TRELLIS_API int trellis_json_set_str(struct trellis_json *obj, const char *key, const char *s);
TRELLIS_API int trellis_json_set_int(struct trellis_json *obj, const char *key, int64_t v);
TRELLIS_API int trellis_json_set_bool(struct trellis_json *obj, const char *key, bool v);
/* Removes member `key`; returns 0 or TRELLIS_ENOTFOUND. */
TRELLIS_API int trellis_json_del(struct trellis_json *obj, const char *key);
/* Appends to an array; takes `value`. Returns 0 or -EINVAL. */
TRELLIS_API int trellis_json_append(struct trellis_json *arr, struct trellis_json *value);
/* Removes array element `i`; returns 0 or -EINVAL. */
TRELLIS_API int trellis_json_remove(struct trellis_json *arr, size_t i);

/* --- Lifetime --- */

/* Adds a reference and returns `j` (NULL stays NULL). */
TRELLIS_API struct trellis_json *trellis_json_ref(struct trellis_json *j);
/* Drops a reference; the value is freed with its last one. NULL is fine. */
TRELLIS_API void trellis_json_free(struct trellis_json *j);
/* A deep copy (new value). */
TRELLIS_API struct trellis_json *trellis_json_copy(const struct trellis_json *j);
/* Structural equality (object member order does not matter). */
TRELLIS_API bool trellis_json_equal(const struct trellis_json *a, const struct trellis_json *b);

#ifdef __cplusplus
}
#endif

#endif
