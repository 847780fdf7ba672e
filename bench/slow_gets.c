/* Random gets over a file of many keys, each timed alone in wall and CPU time, to find
 * the gets that are slow and why (bench/README.md, "The gets that spent milliseconds of
 * their own CPU"). Prints every get whose own CPU time passed THRESHOLD_US, with its
 * page faults and context switches (getrusage(RUSAGE_THREAD)), then the wall-time
 * quantiles, the reader's CPU and the CPU of the process's other threads (the hit
 * writer, and the close that writes the last hits).
 *
 *   gcc -O2 -I include bench/slow_gets.c $CARGO_TARGET_DIR/release/libbacklite.a \
 *       -lgcc_s -lutil -lrt -lpthread -ldl -lm -o slow_gets
 *   ./slow_gets DIR 100000 1 1000 fill           # DIR/c.db: 100,000 entries of 100 B
 *   cp DIR/c.db SAVED.db                          # the same file for every run
 *   ./slow_gets DIR 100000 200000 1000            # 200,000 gets, show those over 1 ms CPU
 *   sqlite3 DIR/c.db 'SELECT sum(hits) FROM entries'   # hits written (not left out)
 */
#define _GNU_SOURCE
#include "backlite.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

static double now_ns(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* The keys of bench/get_loop.c: 'k' and 15 digits. */
static void make_key(uint8_t *k, uint64_t i) {
    for (int j = 15; j >= 1; j--) {
        k[j] = (uint8_t)('0' + i % 10);
        i /= 10;
    }
    k[0] = 'k';
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long us_of(struct timeval t) { return t.tv_sec * 1000000L + t.tv_usec; }

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: slow_gets DIR ENTRIES GETS THRESHOLD_US [fill]\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/c.db", argv[1]);
    long entries = atol(argv[2]), gets = atol(argv[3]);
    double threshold = atof(argv[4]);
    if (entries < 1 || gets < 1) {
        fprintf(stderr, "slow_gets: ENTRIES and GETS >= 1\n");
        return 2;
    }
    backlite_storage *s;
    backlite_error *e = NULL;
    if (backlite_storage_open(path, NULL, &s, &e) != BACKLITE_RESULT_OK) {
        fprintf(stderr, "slow_gets: cannot open %s\n", path);
        return 1;
    }
    uint8_t k[16], v[100];
    memset(v, 'v', sizeof v);
    if (argc > 5 && !strcmp(argv[5], "fill"))
        for (long i = 0; i < entries; i++) {
            make_key(k, (uint64_t)i);
            if (backlite_storage_set(s, k, sizeof k, v, sizeof v, BACKLITE_EXPIRATION_DEFAULT, &e) !=
                BACKLITE_RESULT_OK) {
                fprintf(stderr, "slow_gets: set failed\n");
                return 1;
            }
        }
    double *walls = malloc(sizeof(double) * (size_t)gets), reader_cpu = 0;
    if (!walls) return 1;
    long misses = 0;
    uint64_t rng = 88172645463325252ull;
    for (long i = 0; i < gets; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        make_key(k, rng % (uint64_t)entries);
        backlite_buf b = {NULL, 0};
        struct rusage r0, r1;
        getrusage(RUSAGE_THREAD, &r0);
        double w0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        backlite_result rc = backlite_storage_get(s, k, sizeof k, &b, NULL, &e);
        double c1 = now_ns(CLOCK_THREAD_CPUTIME_ID), w1 = now_ns(CLOCK_MONOTONIC);
        getrusage(RUSAGE_THREAD, &r1);
        if (rc != BACKLITE_RESULT_OK) misses++;
        backlite_buf_free(&b);
        double wall = (w1 - w0) / 1e3, cpu = (c1 - c0) / 1e3;
        walls[i] = wall;
        reader_cpu += cpu;
        if (cpu > threshold)
            printf("get %7ld: wall %9.1f us, cpu %9.1f us (user %ld, sys %ld), minor faults %ld, "
                   "context switches %ld voluntary, %ld involuntary\n",
                   i, wall, cpu, us_of(r1.ru_utime) - us_of(r0.ru_utime),
                   us_of(r1.ru_stime) - us_of(r0.ru_stime), r1.ru_minflt - r0.ru_minflt,
                   r1.ru_nvcsw - r0.ru_nvcsw, r1.ru_nivcsw - r0.ru_nivcsw);
    }
    backlite_storage_free(s); /* waits for the hit writer */
    qsort(walls, (size_t)gets, sizeof(double), cmp_double);
    long over1 = 0, over5 = 0;
    for (long i = 0; i < gets; i++) {
        over1 += walls[i] > 1000;
        over5 += walls[i] > 5000;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double process_ms = (us_of(ru.ru_utime) + us_of(ru.ru_stime)) / 1e3;
    printf("%ld gets (%ld missed): wall µs p50 %.2f p99 %.2f p99.9 %.1f max %.1f; over 1 ms %ld, "
           "over 5 ms %ld\n",
           gets, misses, walls[gets / 2], walls[(long)(gets * 0.99)], walls[(long)(gets * 0.999)],
           walls[gets - 1], over1, over5);
    printf("CPU ms: reader (its gets) %.0f, the rest of the process (hit writer, close) %.0f\n",
           reader_cpu / 1e3, process_ms - reader_cpu / 1e3);
    free(walls);
    return 0;
}
