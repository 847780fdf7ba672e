/*
 * pull_reader.c: a value kept in the database file (file threshold NEVER) read through
 * the pull reader (backlite_storage_open_reader + backlite_value_reader_read, 256 KiB
 * reads) beside backlite_storage_get_chunks (its visitor copies each chunk into a
 * 256 KiB buffer, as a caller would), in one run and one process. The reader's thread
 * reads the blob through one open handle: its cost grows with the value's size, as
 * get_chunks's does (a handle per read made it quadratic: 64 MiB took 3.5 s).
 *
 * Prints the median ms per read of the whole value, and the ratio reader / get_chunks;
 * never fails on a timing.
 *
 * Usage: pull_reader [--smoke] [--dir DIR] [--rounds N]
 *   (sizes 16 and 64 MiB; --smoke: 1 and 4 MiB, 2 rounds, for bench/smoke.sh)
 * Build: cc -O2 -std=c11 -I include bench/pull_reader.c $LIB/libbacklite.a \
 *          -lgcc_s -lutil -lrt -lpthread -ldl -lm -o pull_reader
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backlite.h"

#define READ_SIZE ((size_t)256 * 1024)

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void check(const char *what, backlite_result rc, backlite_error *e) {
    if (rc == BACKLITE_RESULT_OK) return;
    fprintf(stderr, "%s: %s: %s\n", what, backlite_result_str(rc), e ? backlite_error_message(e) : "");
    exit(1);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint8_t g_buf[READ_SIZE];

/* The whole value through the pull reader: the bytes read. */
static size_t pull(backlite_storage *s) {
    backlite_value_reader *r = NULL;
    backlite_error *e = NULL;
    check("open_reader", backlite_storage_open_reader(s, (const uint8_t *)"k", 1, &r, NULL, NULL, &e), e);
    size_t total = 0, n = 0;
    do {
        check("read", backlite_value_reader_read(r, g_buf, READ_SIZE, &n, &e), e);
        total += n;
    } while (n > 0);
    backlite_value_reader_free(r);
    return total;
}

static int32_t copy_chunk(void *user, const uint8_t *chunk, size_t len) {
    memcpy(g_buf, chunk, len < READ_SIZE ? len : READ_SIZE);
    *(size_t *)user += len;
    return 0;
}

/* The whole value through get_chunks: the bytes seen. */
static size_t chunks(backlite_storage *s) {
    backlite_error *e = NULL;
    size_t seen = 0;
    check("get_chunks", backlite_storage_get_chunks(s, (const uint8_t *)"k", 1, copy_chunk, &seen, NULL, &e), e);
    return seen;
}

int main(int argc, char **argv) {
    const char *dir = ".";
    int rounds = 5, smoke = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke")) smoke = 1, rounds = 2;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: pull_reader [--smoke] [--dir DIR] [--rounds N]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 100) rounds = 5;
    const size_t sizes[] = {smoke ? (size_t)1 << 20 : (size_t)16 << 20, smoke ? (size_t)4 << 20 : (size_t)64 << 20};
    char path[4096];
    snprintf(path, sizeof path, "%s/pull_reader.db", dir);
    backlite_options *o = backlite_options_new();
    check("threshold", backlite_options_set_file_threshold(o, BACKLITE_FILE_THRESHOLD_NEVER), NULL);
    backlite_storage *s = NULL;
    backlite_error *e = NULL;
    check("open", backlite_storage_open(path, o, &s, &e), e);
    backlite_options_free(o);
    printf("%-8s %16s %16s %10s\n", "value", "pull reader ms", "get_chunks ms", "ratio");
    for (size_t z = 0; z < 2; z++) {
        size_t n = sizes[z];
        uint8_t *v = malloc(n);
        if (!v) return 1;
        for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(i * 131u ^ (i >> 9));
        check("set", backlite_storage_set(s, (const uint8_t *)"k", 1, v, n, BACKLITE_EXPIRATION_NEVER, &e), e);
        free(v);
        double tp[100], tc[100];
        for (int r = 0; r < rounds; r++) {
            /* The first side changes every round. */
            for (int side = 0; side < 2; side++) {
                int which = (side + r) % 2;
                double t0 = now_ms();
                size_t got = which ? chunks(s) : pull(s);
                double t = now_ms() - t0;
                if (got != n) {
                    fprintf(stderr, "read %zu bytes of %zu\n", got, n);
                    return 1;
                }
                (which ? tc : tp)[r] = t;
            }
        }
        double p = median(tp, rounds), c = median(tc, rounds);
        printf("%4zu MiB %16.1f %16.1f %9.2fx\n", n >> 20, p, c, c > 0 ? p / c : 0);
    }
    backlite_storage_free(s);
    char side[4200];
    remove(path);
    snprintf(side, sizeof side, "%s-wal", path);
    remove(side);
    snprintf(side, sizeof side, "%s-shm", path);
    remove(side);
    return 0;
}
