/*
 * memoize: remember a slow function's result in a BackLite cache file.
 *
 *     memoize [CACHE_FILE] [LIMIT]
 *
 * The slow function counts the primes below LIMIT (default 200000) by naive trial
 * division, then sleeps a second to stand for an expensive call (a network request,
 * a big computation). backlite_cached_call looks the answer up in CACHE_FILE (default
 * "memoize-demo.db") and calls the function only when it is not there, so the first
 * run takes a second or more and every later run returns at once from the file.
 *
 * Then it times 10,000 backlite_storage_set and 10,000 backlite_storage_get calls on
 * distinct small keys and prints the mean of each.
 */
#include "backlite.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_CALLS 10000
#define BENCH_VALUE_SIZE 100

/* Monotonic time in milliseconds. */
static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Prints what failed with the library's message, frees the error, returns 1. */
static int report(const char *what, backlite_result result, backlite_error *err) {
    fprintf(stderr, "memoize: %s failed: %s (%s)\n", what,
            err != NULL ? backlite_error_message(err) : "no details",
            backlite_result_str(result));
    backlite_error_free(err);
    return 1;
}

/* The deliberately slow function: count the primes below `limit`, the slow way. */
static uint64_t slow_count_primes(uint64_t limit) {
    uint64_t count = 0;
    for (uint64_t n = 2; n < limit; n++) {
        int prime = 1;
        for (uint64_t d = 2; d * d <= n; d++) {
            if (n % d == 0) {
                prime = 0;
                break;
            }
        }
        count += (uint64_t)prime;
    }
    struct timespec second = {1, 0};
    nanosleep(&second, NULL);
    return count;
}

struct call {
    uint64_t limit;
    int computed; /* set when the compute callback ran */
};

/* backlite_compute_fn: computes the value and hands its bytes (decimal text) to the sink. */
static int32_t compute_count_primes(void *user_data, backlite_sink *sink) {
    struct call *call = user_data;
    call->computed = 1;
    char text[32];
    int len = snprintf(text, sizeof text, "%" PRIu64, slow_count_primes(call->limit));
    if (len < 0) {
        return 1;
    }
    return backlite_sink_write(sink, (const uint8_t *)text, (size_t)len) == BACKLITE_RESULT_OK ? 0 : 1;
}

/* Times BENCH_CALLS sets, then as many gets, on keys "bench-0" ... and removes them. */
static int bench(backlite_storage *storage) {
    uint8_t value[BENCH_VALUE_SIZE];
    memset(value, 'v', sizeof value);
    char key[32];
    backlite_error *err = NULL;
    backlite_result r;

    double start = now_ms();
    for (int i = 0; i < BENCH_CALLS; i++) {
        int len = snprintf(key, sizeof key, "bench-%d", i);
        r = backlite_storage_set(storage, (const uint8_t *)key, (size_t)len, value, sizeof value,
                                 BACKLITE_EXPIRATION_NEVER, &err);
        if (r != BACKLITE_RESULT_OK) {
            return report("backlite_storage_set", r, err);
        }
    }
    double set_ms = now_ms() - start;

    start = now_ms();
    for (int i = 0; i < BENCH_CALLS; i++) {
        int len = snprintf(key, sizeof key, "bench-%d", i);
        backlite_buf buf = {NULL, 0};
        r = backlite_storage_get(storage, (const uint8_t *)key, (size_t)len, &buf, NULL, &err);
        if (r != BACKLITE_RESULT_OK) {
            return report("backlite_storage_get", r, err);
        }
        size_t got = buf.len;
        backlite_buf_free(&buf);
        if (got != sizeof value) {
            fprintf(stderr, "memoize: %s: got %zu bytes, stored %zu\n", key, got, sizeof value);
            return 1;
        }
    }
    double get_ms = now_ms() - start;

    printf("backlite_storage_set: %.1f us mean over %d calls (%d-byte values)\n",
           set_ms * 1e3 / BENCH_CALLS, BENCH_CALLS, BENCH_VALUE_SIZE);
    printf("backlite_storage_get: %.1f us mean over %d calls\n", get_ms * 1e3 / BENCH_CALLS,
           BENCH_CALLS);

    /* Leave the cache file as we found it, apart from the memoised value. */
    for (int i = 0; i < BENCH_CALLS; i++) {
        int len = snprintf(key, sizeof key, "bench-%d", i);
        r = backlite_storage_delete(storage, (const uint8_t *)key, (size_t)len, &err);
        if (r != BACKLITE_RESULT_OK) {
            return report("backlite_storage_delete", r, err);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "memoize-demo.db";
    struct call call = {200000, 0};
    if (argc > 2) {
        char *end = NULL;
        call.limit = strtoull(argv[2], &end, 10);
        if (end == argv[2] || *end != '\0') {
            fprintf(stderr, "usage: %s [CACHE_FILE] [LIMIT]\n", argv[0]);
            return 2;
        }
    }
    if (argc > 3) {
        fprintf(stderr, "usage: %s [CACHE_FILE] [LIMIT]\n", argv[0]);
        return 2;
    }

    printf("BackLite %s, cache file %s\n", backlite_version(), path);

    backlite_storage *storage = NULL;
    backlite_error *err = NULL;
    backlite_result r = backlite_storage_open(path, NULL, &storage, &err);
    if (r != BACKLITE_RESULT_OK) {
        return report("backlite_storage_open", r, err);
    }

    /* The key names the function and its argument. */
    char key[64];
    int key_len = snprintf(key, sizeof key, "count_primes_below:%" PRIu64, call.limit);

    backlite_buf value = {NULL, 0};
    double start = now_ms();
    r = backlite_cached_call(storage, (const uint8_t *)key, (size_t)key_len, compute_count_primes,
                             &call, NULL, BACKLITE_EXPIRATION_NEVER, &value, &err);
    double elapsed = now_ms() - start;
    if (r != BACKLITE_RESULT_OK) {
        report("backlite_cached_call", r, err);
        backlite_storage_free(storage);
        return 1;
    }

    printf("count_primes_below(%" PRIu64 ")\n", call.limit);
    printf("result: %.*s (%s, %.3f ms)\n", (int)value.len, (const char *)value.data,
           call.computed ? "computed" : "cache hit", elapsed);
    if (call.computed) {
        printf("stored under \"%s\": run me again and the answer comes from the file\n", key);
    }
    backlite_buf_free(&value);

    int status = bench(storage);
    backlite_storage_free(storage);
    return status;
}
