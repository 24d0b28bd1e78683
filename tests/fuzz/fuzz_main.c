/* fuzz_main.c : replays a fuzz corpus without libFuzzer (stb's "works without
 * libFuzzer"): run every file of the directories (or files) given through
 * LLVMFuzzerTestOneInput. Built with ASan+UBSan by `make check`. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lq_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet_log(lq_log_level level, const char *msg, void *user) { (void)level, (void)msg, (void)user; }

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_main: cannot open %s\n", path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    rewind(f);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        fclose(f);
        free(buf);
        fprintf(stderr, "fuzz_main: cannot read %s\n", path);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    lq_log_set(quiet_log, NULL);
    int n_files = 0, bad = 0;
    for (int a = 1; a < argc; a++) {
        struct stat sb;
        if (stat(argv[a], &sb) != 0) {
            fprintf(stderr, "fuzz_main: %s does not exist\n", argv[a]);
            return 1;
        }
        if (!S_ISDIR(sb.st_mode)) {
            bad |= run_file(argv[a]);
            n_files++;
            continue;
        }
        struct dirent **list;
        const int       n = scandir(argv[a], &list, NULL, alphasort);
        for (int i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], list[i]->d_name);
            if (list[i]->d_name[0] != '.' && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
                bad |= run_file(path);
                n_files++;
            }
            free(list[i]);
        }
        free(list);
    }
    printf("fuzz replay: %d inputs, no crash\n", n_files);
    return bad || n_files == 0;
}
