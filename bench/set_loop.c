/* A loop of writes through the C ABI, the write twin of get_loop.c: to count what one
 * write costs in figures load does not move (instructions under
 * `valgrind --tool=cachegrind --cache-sim=no`, system calls under
 * `perf stat -e raw_syscalls:sys_enter`, WAL pages under `strace`), taking the
 * difference between a run of OPS writes and one of 0. Builds against a libbacklite.a
 * as get_loop.c does (bench/README.md, "Counting one write").
 *
 *   set_loop DIR FILL OPS MODE [POLICY] [SIZE]
 *
 * Sets FILL entries (16-byte keys, 100-byte values) in DIR/c.db, then makes OPS writes
 * of SIZE-byte values (default 100; 65536 and up are kept in files beside the cache,
 * which is how a large set is counted; SIZE may follow MODE directly):
 *   new    sets of new keys
 *   over   sets of existing keys, in a pseudo-random order
 *   evict  sets of new keys with max_size at FILL values, so each evicts one entry by
 *          POLICY (a policy name, default least-recently-used)
 *   many   new keys through backlite_storage_set_many, 1000 per call */
#include "backlite.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void make_key(uint8_t *k, uint64_t i) {
    for (int j = 15; j >= 1; j--) {
        k[j] = (uint8_t)('0' + i % 10);
        i /= 10;
    }
    k[0] = 'k';
}

static int set_one(backlite_storage *s, uint64_t i, const uint8_t *v, size_t len) {
    uint8_t k[16];
    make_key(k, i);
    backlite_error *e = NULL;
    if (backlite_storage_set(s, k, sizeof k, v, len, BACKLITE_EXPIRATION_DEFAULT, &e) != BACKLITE_RESULT_OK) {
        fprintf(stderr, "set_loop: set failed: %s\n", backlite_error_message(e));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: set_loop DIR FILL OPS new|over|evict|many [POLICY] [SIZE]\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/c.db", argv[1]);
    long fill = atol(argv[2]), ops = atol(argv[3]);
    const char *mode = argv[4];
    /* SIZE is the last argument when it is a number (POLICY never is). */
    size_t size = argc > 5 && argv[argc - 1][0] >= '0' && argv[argc - 1][0] <= '9'
                      ? (size_t)atol(argv[argc - 1])
                      : 100;
    if (fill < 1 || ops < 0) {
        fprintf(stderr, "set_loop: FILL >= 1, OPS >= 0\n");
        return 2;
    }
    backlite_options *o = backlite_options_new();
    if (strcmp(mode, "evict") == 0) {
        backlite_options_set_max_size(o, (uint64_t)fill * 100);
        const char *policy = argc > 5 && (argv[5][0] < '0' || argv[5][0] > '9') ? argv[5] : "least-recently-used";
        if (backlite_options_set_eviction_policy_name(o, policy) != BACKLITE_RESULT_OK) {
            fprintf(stderr, "set_loop: unknown policy %s\n", policy);
            return 2;
        }
    }
    backlite_storage *s;
    backlite_error *e = NULL;
    if (backlite_storage_open(path, o, &s, &e) != BACKLITE_RESULT_OK) {
        fprintf(stderr, "set_loop: cannot open %s\n", path);
        return 1;
    }
    backlite_options_free(o);
    uint8_t *v = calloc(size > 100 ? size : 100, 1);
    if (v == NULL) return 1;
    memset(v, 7, size > 100 ? size : 100);
    for (long i = 0; i < fill; i++)
        if (set_one(s, (uint64_t)i, v, 100)) return 1;
    if (strcmp(mode, "new") == 0 || strcmp(mode, "evict") == 0) {
        for (long i = 0; i < ops; i++)
            if (set_one(s, (uint64_t)(fill + i), v, size)) return 1;
    } else if (strcmp(mode, "over") == 0) {
        uint64_t rng = 88172645463325252ull;
        for (long i = 0; i < ops; i++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if (set_one(s, rng % (uint64_t)fill, v, size)) return 1;
        }
    } else if (strcmp(mode, "many") == 0) {
        static uint8_t keys[1000][16];
        backlite_entry batch[1000];
        for (long done = 0; done < ops;) {
            size_t n = ops - done < 1000 ? (size_t)(ops - done) : 1000;
            for (size_t j = 0; j < n; j++) {
                make_key(keys[j], (uint64_t)(fill + done + (long)j));
                batch[j] = (backlite_entry){keys[j], 16, v, size, BACKLITE_EXPIRATION_DEFAULT};
            }
            if (backlite_storage_set_many(s, batch, n, &e) != BACKLITE_RESULT_OK) {
                fprintf(stderr, "set_loop: set_many failed\n");
                return 1;
            }
            done += (long)n;
        }
    } else {
        fprintf(stderr, "set_loop: unknown mode %s\n", mode);
        return 2;
    }
    backlite_storage_free(s);
    free(v);
    return 0;
}
