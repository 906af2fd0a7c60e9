/* SPDX-License-Identifier: Apache-2.0 */
/* Hash map, heap and base64. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "core/base64.h"
#include "core/heap.h"
#include "core/map.h"
#include "core/mem.h"

static void map_put_get_delete_many(void **state)
{
    struct tr_map m;
    tr_map_init(&m);
    char key[32];
    for (uintptr_t i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%lu", (unsigned long)i);
        assert_null(tr_map_put(&m, tr_slice_cstr(key), (void *)(i + 1)));
    }
    assert_int_equal(m.len, 5000);
    /* Delete every third key: backward shift must keep the others reachable. */
    for (uintptr_t i = 0; i < 5000; i += 3) {
        snprintf(key, sizeof(key), "key-%lu", (unsigned long)i);
        assert_ptr_equal(tr_map_del(&m, tr_slice_cstr(key)), (void *)(i + 1));
    }
    for (uintptr_t i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%lu", (unsigned long)i);
        void *v = tr_map_get(&m, tr_slice_cstr(key));
        if (i % 3 == 0) {
            assert_null(v);
        } else {
            assert_ptr_equal(v, (void *)(i + 1));
        }
    }
    assert_ptr_equal(tr_map_put(&m, tr_slice_cstr("key-1"), (void *)7), (void *)2);
    size_t count = 0;
    size_t it = 0;
    const struct tr_map_slot *slot;
    while (tr_map_next(&m, &it, &slot)) {
        count++;
    }
    assert_int_equal(count, m.len);
    tr_map_dispose(&m);
}

struct item {
    struct tr_heap_node node;
    int id;
};

static void heap_order_and_remove(void **state)
{
    struct tr_heap h;
    tr_heap_init(&h);
    struct item items[100];
    for (int i = 0; i < 100; i++) {
        items[i].id = i;
        items[i].node.slot = 0;
        tr_heap_push(&h, &items[i].node, (uint64_t)((i * 37) % 100));
    }
    /* Remove the items with odd keys from the middle of the heap. */
    for (int i = 0; i < 100; i++) {
        if (items[i].node.key % 2 == 1) {
            tr_heap_remove(&h, &items[i].node);
        }
    }
    tr_heap_remove(&h, &items[0].node); /* key 0 */
    tr_heap_remove(&h, &items[0].node); /* twice is a no-op */
    uint64_t last = 0;
    int popped = 0;
    struct tr_heap_node *n;
    while ((n = tr_heap_min(&h)) != NULL) {
        assert_true(n->key >= last);
        assert_true(n->key % 2 == 0);
        last = n->key;
        tr_heap_remove(&h, n);
        popped++;
    }
    assert_int_equal(popped, 49);
    tr_heap_dispose(&h);
}

static void base64_round_trip_and_rejects(void **state)
{
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        struct tr_buf b;
        tr_buf_init(&b);
        tr_base64_encode(&b, plain[i], strlen(plain[i]));
        assert_int_equal(b.len, strlen(enc[i]));
        if (b.len) {
            assert_memory_equal(tr_buf_data(&b), enc[i], b.len);
        }
        tr_buf_reset(&b);
        assert_int_equal(tr_base64_decode(&b, tr_slice_cstr(enc[i])), 0);
        assert_int_equal(b.len, strlen(plain[i]));
        tr_buf_dispose(&b);
    }
    struct tr_buf b;
    tr_buf_init(&b);
    assert_int_equal(tr_base64_decode(&b, tr_slice_cstr("Zg=")), -EINVAL);
    assert_int_equal(tr_base64_decode(&b, tr_slice_cstr("Z===")), -EINVAL);
    assert_int_equal(tr_base64_decode(&b, tr_slice_cstr("Zg=a")), -EINVAL);
    assert_int_equal(tr_base64_decode(&b, tr_slice_cstr("Zm9v!A==")), -EINVAL);
    assert_int_equal(tr_base64_decode(&b, tr_slice_cstr("Zg==Zg==")), -EINVAL);
    tr_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(map_put_get_delete_many),
        cmocka_unit_test(heap_order_and_remove),
        cmocka_unit_test(base64_round_trip_and_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
