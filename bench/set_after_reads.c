/*
 * set_after_reads.c: how long a set waits after a burst of reads over a large working
 * set (issue 12): the reads fill the hit buffer, the hit writer starts writing their
 * hits, and a set of the same process then needs the file's write lock. Fills DIR/c.db
 * with ENTRIES entries (16-byte keys, 100-byte values, set_many of 1000), makes GETS
 * random gets, then times SETS single sets of new keys, one after the other, and the
 * close (which waits for the hit writer and writes what is left). With MAX_SIZE (bytes;
 * 100 per entry), a cache filled to it: each set evicts.
 *
 * Usage: set_after_reads DIR ENTRIES GETS [SETS [MAX_SIZE]]   (bench/README.md, "Hits written
 * without holding up sets")
 * Build: gcc -O2 -I include bench/set_after_reads.c $CARGO_TARGET_DIR/release/libbacklite.a
 *        -lpthread -ldl -lm -o set_after_reads
 */
#define _POSIX_C_SOURCE 200809L
#include "backlite.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* A 16-byte key: `prefix` and `id` in 15 decimal digits (as bench.c spells them). */
static void make_key(uint8_t *k, char prefix, uint64_t id) {
    k[0] = (uint8_t)prefix;
    for (int i = 15; i >= 1; i--) {
        k[i] = (uint8_t)('0' + id % 10);
        id /= 10;
    }
}

static void check(backlite_result rc, backlite_error *e, const char *what) {
    if (rc == BACKLITE_RESULT_OK) return;
    fprintf(stderr, "set_after_reads: %s: %d %s\n", what, rc, e ? backlite_error_message(e) : "");
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: set_after_reads DIR ENTRIES GETS [SETS [MAX_SIZE]]\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/c.db", argv[1]);
    uint64_t entries = strtoull(argv[2], NULL, 10);
    long gets = atol(argv[3]), sets = argc > 4 ? atol(argv[4]) : 5;
    if (entries == 0) entries = 1;

    backlite_storage *s = NULL;
    backlite_error *e = NULL;
    backlite_options *o = backlite_options_new();
    if (argc > 5) check(backlite_options_set_max_size(o, strtoull(argv[5], NULL, 10)), NULL, "max_size");
    check(backlite_storage_open(path, o, &s, &e), e, "open");
    backlite_options_free(o);

    static backlite_entry batch[1000];
    static uint8_t keys[1000][16];
    uint8_t value[100];
    memset(value, 7, sizeof value);
    for (uint64_t live = 0; live < entries;) {
        size_t n = entries - live < 1000 ? (size_t)(entries - live) : 1000;
        for (size_t i = 0; i < n; i++) {
            make_key(keys[i], 'k', live + i);
            batch[i] = (backlite_entry){keys[i], 16, value, sizeof value, BACKLITE_EXPIRATION_DEFAULT};
        }
        check(backlite_storage_set_many(s, batch, n, &e), e, "set_many");
        live += n;
    }

    uint64_t r = 88172645463325252ull; /* xorshift64 */
    uint8_t key[16];
    double t0 = now_ms(), slowest = 0;
    for (long g = 0; g < gets; g++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        make_key(key, 'k', r % entries);
        backlite_buf b;
        int64_t left;
        double t = now_ms();
        backlite_result rc = backlite_storage_get(s, key, 16, &b, &left, &e);
        if (rc == BACKLITE_RESULT_OK) backlite_buf_free(&b);
        else check(rc, e, "get");
        t = now_ms() - t;
        if (t > slowest) slowest = t;
    }
    printf("%ld gets over %llu entries: %.2f us each, slowest %.2f ms\n", gets,
           (unsigned long long)entries, gets ? (now_ms() - t0) * 1e3 / (double)gets : 0.0, slowest);
    printf("sets right after, ms:");
    for (long i = 0; i < sets; i++) {
        make_key(key, 'n', (uint64_t)i);
        double t = now_ms();
        check(backlite_storage_set(s, key, 16, value, sizeof value, BACKLITE_EXPIRATION_DEFAULT, &e), e, "set");
        printf(" %.2f", now_ms() - t);
    }
    double t = now_ms();
    backlite_storage_free(s);
    printf("\nclose: %.2f ms\n", now_ms() - t);
    return 0;
}
