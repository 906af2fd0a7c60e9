/* SPDX-License-Identifier: Apache-2.0 */
/* Replays fuzz inputs without libFuzzer: each argument is a file or a directory of
 * files, fed one by one to LLVMFuzzerTestOneInput. Used by ctest to replay the
 * committed corpus under the sanitizer build. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    struct tr_buf buf;
    tr_buf_init(&buf);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        tr_buf_append(&buf, chunk, n);
    }
    fclose(f);
    /* Copy into an exact-size allocation so ASan catches reads past the end. */
    uint8_t *exact = (uint8_t *)tr_xstrndup(tr_buf_data(&buf), buf.len);
    LLVMFuzzerTestOneInput(exact, buf.len);
    tr_free_null(&exact);
    tr_buf_dispose(&buf);
    return 0;
}

int main(int argc, char **argv)
{
    int count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == -1) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            count += run_file(argv[i]) == 0;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            if (run_file(path) != 0) {
                closedir(d);
                return 1;
            }
            count++;
        }
        closedir(d);
    }
    printf("replayed %d inputs\n", count);
    return count > 0 ? 0 : 1;
}
