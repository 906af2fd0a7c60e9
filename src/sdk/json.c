/* SPDX-License-Identifier: Apache-2.0 */
/* The public JSON API over jansson. A struct trellis_json * is a json_t * in disguise:
 * the wrappers only cast and translate conventions (steal/borrow, errors to
 * trellis_last_error()), so values cost nothing extra. */
#include "trellis/json.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "sdk/sdk.h"

#define J(x) ((json_t *)(x))
#define T(x) ((struct trellis_json *)(x))

struct trellis_json *trellis_json_parse(const char *text, size_t len, char *err, size_t err_size)
{
    tr_sdk_clear_error();
    if (text == NULL) {
        text = "";
        len = 0;
    }
    json_error_t error;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &error);
    if (j == NULL) {
        tr_sdk_fail(TRELLIS_EBADJSON, "invalid JSON at line %d column %d: %s", error.line,
                    error.column, error.text);
        if (err != NULL && err_size > 0) {
            snprintf(err, err_size, "%s", trellis_last_error());
        }
    }
    return T(j);
}

char *trellis_json_dump(const struct trellis_json *j)
{
    if (j == NULL) {
        return NULL;
    }
    char *jansson_text = json_dumps(J(j), JSON_COMPACT | JSON_ENCODE_ANY);
    if (jansson_text == NULL) {
        return NULL;
    }
    /* Hand out memory trellis_free() releases (the same allocator, but keep the
     * contract independent of jansson's allocation hooks). */
    char *text = tr_xstrdup(jansson_text);
    free(jansson_text);
    return text;
}

struct trellis_json *trellis_json_object(void)
{
    return T(json_object());
}

struct trellis_json *trellis_json_array(void)
{
    return T(json_array());
}

struct trellis_json *trellis_json_str(const char *s)
{
    return s == NULL ? NULL : T(json_string(s));
}

struct trellis_json *trellis_json_strn(const char *s, size_t len)
{
    return s == NULL ? NULL : T(json_stringn(s, len));
}

struct trellis_json *trellis_json_int(int64_t v)
{
    return T(json_integer((json_int_t)v));
}

struct trellis_json *trellis_json_real(double v)
{
    return T(json_real(v));
}

struct trellis_json *trellis_json_bool(bool v)
{
    return T(json_boolean(v));
}

struct trellis_json *trellis_json_null(void)
{
    return T(json_null());
}

struct trellis_json *trellis_json_pack(const char *fmt, ...)
{
    tr_sdk_clear_error();
    json_error_t error;
    va_list ap;
    va_start(ap, fmt);
    json_t *j = json_vpack_ex(&error, 0, fmt, ap);
    va_end(ap);
    if (j == NULL) {
        tr_sdk_fail(-EINVAL, "trellis_json_pack(\"%s\"): %s", fmt, error.text);
    }
    return T(j);
}

int trellis_json_unpack(const struct trellis_json *j, char *err, size_t err_size, const char *fmt,
                        ...)
{
    tr_sdk_clear_error();
    if (j == NULL) {
        tr_sdk_fail(TRELLIS_EBADJSON, "no JSON value");
    } else {
        json_error_t error;
        va_list ap;
        va_start(ap, fmt);
        int rc = json_vunpack_ex(J(j), &error, 0, fmt, ap);
        va_end(ap);
        if (rc == 0) {
            return 0;
        }
        if (error.source[0] != '\0' && strcmp(error.source, "<validation>") != 0 &&
            strcmp(error.source, "<args>") != 0 && strcmp(error.source, "<format>") != 0) {
            tr_sdk_fail(TRELLIS_EBADJSON, "%s: %s", error.source, error.text);
        } else {
            tr_sdk_fail(TRELLIS_EBADJSON, "%s", error.text);
        }
    }
    if (err != NULL && err_size > 0) {
        snprintf(err, err_size, "%s", trellis_last_error());
    }
    return TRELLIS_EBADJSON;
}

enum trellis_json_type trellis_json_typeof(const struct trellis_json *j)
{
    switch (j == NULL ? JSON_NULL : json_typeof(J(j))) {
    case JSON_OBJECT:
        return TRELLIS_JSON_OBJECT;
    case JSON_ARRAY:
        return TRELLIS_JSON_ARRAY;
    case JSON_STRING:
        return TRELLIS_JSON_STRING;
    case JSON_INTEGER:
        return TRELLIS_JSON_INT;
    case JSON_REAL:
        return TRELLIS_JSON_REAL;
    case JSON_TRUE:
    case JSON_FALSE:
        return TRELLIS_JSON_BOOL;
    case JSON_NULL:
    default:
        return TRELLIS_JSON_NULL;
    }
}

const char *trellis_json_string(const struct trellis_json *j)
{
    return j == NULL ? NULL : json_string_value(J(j));
}

size_t trellis_json_string_len(const struct trellis_json *j)
{
    return j == NULL ? 0 : json_string_length(J(j));
}

int64_t trellis_json_int_value(const struct trellis_json *j)
{
    return j == NULL ? 0 : (int64_t)json_integer_value(J(j));
}

double trellis_json_number(const struct trellis_json *j)
{
    return j == NULL ? 0 : json_number_value(J(j));
}

bool trellis_json_is_true(const struct trellis_json *j)
{
    return j != NULL && json_is_true(J(j));
}

size_t trellis_json_size(const struct trellis_json *j)
{
    if (j == NULL) {
        return 0;
    }
    if (json_is_array(J(j))) {
        return json_array_size(J(j));
    }
    return json_is_object(J(j)) ? json_object_size(J(j)) : 0;
}

struct trellis_json *trellis_json_get(const struct trellis_json *obj, const char *key)
{
    if (obj == NULL || key == NULL) {
        return NULL;
    }
    return T(json_object_get(J(obj), key));
}

const char *trellis_json_get_str(const struct trellis_json *obj, const char *key)
{
    return json_string_value(J(trellis_json_get(obj, key)));
}

bool trellis_json_get_int(const struct trellis_json *obj, const char *key, int64_t *out)
{
    json_t *v = J(trellis_json_get(obj, key));
    if (!json_is_integer(v)) {
        return false;
    }
    *out = (int64_t)json_integer_value(v);
    return true;
}

bool trellis_json_get_bool(const struct trellis_json *obj, const char *key, bool *out)
{
    json_t *v = J(trellis_json_get(obj, key));
    if (!json_is_boolean(v)) {
        return false;
    }
    *out = json_is_true(v);
    return true;
}

struct trellis_json *trellis_json_at(const struct trellis_json *arr, size_t i)
{
    return arr == NULL ? NULL : T(json_array_get(J(arr), i));
}

void *trellis_json_iter(const struct trellis_json *obj)
{
    return obj == NULL ? NULL : json_object_iter(J(obj));
}

void *trellis_json_iter_next(const struct trellis_json *obj, void *it)
{
    return obj == NULL || it == NULL ? NULL : json_object_iter_next(J(obj), it);
}

const char *trellis_json_iter_key(void *it)
{
    return it == NULL ? NULL : json_object_iter_key(it);
}

struct trellis_json *trellis_json_iter_value(void *it)
{
    return it == NULL ? NULL : T(json_object_iter_value(it));
}

int trellis_json_set(struct trellis_json *obj, const char *key, struct trellis_json *value)
{
    if (obj == NULL || key == NULL || value == NULL || !json_is_object(J(obj))) {
        json_decref(J(value));
        return -EINVAL;
    }
    return json_object_set_new(J(obj), key, J(value)) == 0 ? 0 : -EINVAL;
}

int trellis_json_set_str(struct trellis_json *obj, const char *key, const char *s)
{
    return trellis_json_set(obj, key, trellis_json_str(s));
}

int trellis_json_set_int(struct trellis_json *obj, const char *key, int64_t v)
{
    return trellis_json_set(obj, key, trellis_json_int(v));
}

int trellis_json_set_bool(struct trellis_json *obj, const char *key, bool v)
{
    return trellis_json_set(obj, key, trellis_json_bool(v));
}

int trellis_json_del(struct trellis_json *obj, const char *key)
{
    if (obj == NULL || key == NULL) {
        return -EINVAL;
    }
    return json_object_del(J(obj), key) == 0 ? 0 : TRELLIS_ENOTFOUND;
}

int trellis_json_append(struct trellis_json *arr, struct trellis_json *value)
{
    if (arr == NULL || value == NULL || !json_is_array(J(arr))) {
        json_decref(J(value));
        return -EINVAL;
    }
    return json_array_append_new(J(arr), J(value)) == 0 ? 0 : -EINVAL;
}

int trellis_json_remove(struct trellis_json *arr, size_t i)
{
    if (arr == NULL) {
        return -EINVAL;
    }
    return json_array_remove(J(arr), i) == 0 ? 0 : -EINVAL;
}

struct trellis_json *trellis_json_ref(struct trellis_json *j)
{
    return T(json_incref(J(j)));
}

void trellis_json_free(struct trellis_json *j)
{
    json_decref(J(j));
}

struct trellis_json *trellis_json_copy(const struct trellis_json *j)
{
    return j == NULL ? NULL : T(json_deep_copy(J(j)));
}

bool trellis_json_equal(const struct trellis_json *a, const struct trellis_json *b)
{
    return json_equal(J(a), J(b)) == 1;
}
