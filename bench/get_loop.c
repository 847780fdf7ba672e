/* A loop of random gets through the C ABI, to profile or to time in CPU time
 * (perf stat -e task-clock, callgrind) where the machine is too loaded for wall-clock
 * ratios. Builds against a libbacklite.a (bench/README.md, "Readers on more threads").
 *
 *   get_loop DIR ENTRIES GETS THREADS [noset|SIZE]
 *
 * Sets ENTRIES entries (16-byte keys, SIZE-byte values, default 100) in DIR/c.db unless
 * `noset`, then THREADS threads on the one handle each make GETS random gets of them
 * (with GET_LOOP_STREAM=1 in the environment, streaming gets: backlite_storage_get_chunks
 * to a callback that counts the bytes). */
#include "backlite.h"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static backlite_storage *g_storage;
static long g_entries, g_gets;
static int g_stream;

static int32_t count_chunk(void *user, const uint8_t *chunk, size_t len) {
    (void)chunk;
    *(size_t *)user += len;
    return 0;
}

static void make_key(uint8_t *k, uint64_t i) {
    for (int j = 15; j >= 1; j--) {
        k[j] = (uint8_t)('0' + i % 10);
        i /= 10;
    }
    k[0] = 'k';
}

static void *reader(void *arg) {
    uint64_t rng = 88172645463325252ull ^ ((uintptr_t)arg * 0x9E3779B97F4A7C15ull);
    long found = 0;
    uint8_t k[16];
    for (long i = 0; i < g_gets; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        make_key(k, rng % (uint64_t)g_entries);
        backlite_buf b = {NULL, 0};
        backlite_error *e = NULL;
        size_t seen = 0;
        if (g_stream) {
            if (backlite_storage_get_chunks(g_storage, k, sizeof k, count_chunk, &seen, NULL, &e) ==
                    BACKLITE_RESULT_OK &&
                seen > 0)
                found++;
        } else if (backlite_storage_get(g_storage, k, sizeof k, &b, NULL, &e) == BACKLITE_RESULT_OK)
            found++;
        backlite_error_free(e);
        backlite_buf_free(&b);
    }
    if (found != g_gets) fprintf(stderr, "get_loop: %ld of %ld gets found nothing\n", g_gets - found, g_gets);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: get_loop DIR ENTRIES GETS THREADS [noset|SIZE]\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/c.db", argv[1]);
    g_entries = atol(argv[2]);
    g_gets = atol(argv[3]);
    int threads = atoi(argv[4]);
    g_stream = getenv("GET_LOOP_STREAM") != NULL;
    if (g_entries < 1 || threads < 1 || threads > 64) {
        fprintf(stderr, "get_loop: ENTRIES >= 1, THREADS 1..64\n");
        return 2;
    }
    backlite_error *e = NULL;
    if (backlite_storage_open(path, NULL, &g_storage, &e) != BACKLITE_RESULT_OK) {
        fprintf(stderr, "get_loop: cannot open %s\n", path);
        return 1;
    }
    if (argc < 6 || strcmp(argv[5], "noset") != 0) {
        size_t size = argc > 5 ? (size_t)atol(argv[5]) : 100;
        uint8_t k[16], *v = calloc(size + 1, 1);
        if (v == NULL) return 1;
        memset(v, 7, size);
        for (long i = 0; i < g_entries; i++) {
            make_key(k, (uint64_t)i);
            if (backlite_storage_set(g_storage, k, sizeof k, v, size, BACKLITE_EXPIRATION_DEFAULT,
                                     &e) != BACKLITE_RESULT_OK) {
                fprintf(stderr, "get_loop: set failed\n");
                return 1;
            }
        }
        free(v);
    }
    pthread_t th[64];
    for (long t = 0; t < threads; t++) pthread_create(&th[t], NULL, reader, (void *)t);
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    backlite_storage_free(g_storage);
    return 0;
}
