/* A loop of random gets through the C ABI, to profile or to time in CPU time
 * (perf stat -e task-clock, callgrind) where the machine is too loaded for wall-clock
 * ratios. Builds against a libbacklite.a (bench/README.md, "Readers on more threads").
 *
 *   get_loop DIR ENTRIES GETS THREADS [noset|SIZE]
 *
 * Sets ENTRIES entries (16-byte keys, SIZE-byte values, default 100) in DIR/c.db unless
 * `noset`, then THREADS threads on the one handle each make GETS random gets of them
 * (with GET_LOOP_STREAM=1 in the environment, streaming gets: backlite_storage_get_chunks
 * to a callback that counts the bytes). Prints the CPU time the reading threads spent in
 * their loops, per get: unlike perf's task-clock, it leaves out the open, the close (which
 * writes the buffered hits) and the hit writer.
 *
 * With GET_LOOP_RAW=1, the same on raw SQLite instead, as bench.c's baseline does it: a
 * table (key BLOB PRIMARY KEY, value BLOB) in DIR/raw.db, WAL, synchronous=NORMAL, a
 * connection per thread, the statement prepared once, the value copied to malloc'd
 * memory as backlite_storage_get does. */
#include "backlite.h"
#include "sqlite3.h"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static backlite_storage *g_storage;
static long g_entries, g_gets;
static int g_stream, g_raw;
static char g_raw_path[4096];
static long long g_cpu_ns[64];

static long long thread_cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (long long)t.tv_sec * 1000000000 + t.tv_nsec;
}

static sqlite3 *raw_open(void) {
    sqlite3 *db;
    /* The busy timeout first: the threads open at once, and switching to WAL or creating
     * the table while another thread does is SQLITE_BUSY without it (a flaky smoke run). */
    if (sqlite3_open(g_raw_path, &db) != SQLITE_OK || sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB)",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "get_loop: cannot open %s\n", g_raw_path);
        exit(1);
    }
    return db;
}

/* One raw get: bound, stepped, copied, reset. Not inlined: callgrind counts it with
 * --toggle-collect=raw_get. */
__attribute__((noinline, noclone)) static int raw_get(sqlite3_stmt *s, const uint8_t *k, size_t klen) {
    sqlite3_bind_blob(s, 1, k, (int)klen, SQLITE_STATIC);
    int found = 0;
    if (sqlite3_step(s) == SQLITE_ROW) {
        int n = sqlite3_column_bytes(s, 0);
        void *v = malloc(n > 0 ? (size_t)n : 1);
        if (v != NULL) memcpy(v, sqlite3_column_blob(s, 0), (size_t)n);
        free(v);
        found = 1;
    }
    sqlite3_reset(s);
    return found;
}

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
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    if (g_raw) {
        db = raw_open();
        sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE key = ?", -1, &stmt, NULL);
    }
    long long start = thread_cpu_ns();
    for (long i = 0; i < g_gets; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        make_key(k, rng % (uint64_t)g_entries);
        backlite_buf b = {NULL, 0};
        backlite_error *e = NULL;
        size_t seen = 0;
        if (g_raw) {
            found += raw_get(stmt, k, sizeof k);
            continue;
        }
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
    g_cpu_ns[(uintptr_t)arg] = thread_cpu_ns() - start;
    if (g_raw) {
        sqlite3_finalize(stmt);
        sqlite3_close(db);
    }
    if (found != g_gets) fprintf(stderr, "get_loop: %ld of %ld gets found nothing\n", g_gets - found, g_gets);
    return NULL;
}

static void run_readers(int threads) {
    pthread_t th[64];
    for (long t = 0; t < threads; t++) pthread_create(&th[t], NULL, reader, (void *)t);
    long long cpu = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        cpu += g_cpu_ns[t];
    }
    printf("%s, %d thread(s): %.0f CPU ns per get (the readers' own CPU time in their loops)\n",
           g_raw ? "raw SQLite" : "backlite", threads, (double)cpu / ((double)g_gets * threads));
}

/* The raw side: fills DIR/raw.db unless `noset`, then the same readers. */
static int raw_main(int argc, char **argv, int threads) {
    if (argc < 6 || strcmp(argv[5], "noset") != 0) {
        size_t size = argc > 5 ? (size_t)atol(argv[5]) : 100;
        uint8_t k[16], *v = calloc(size + 1, 1);
        if (v == NULL) return 1;
        memset(v, 7, size);
        sqlite3 *db = raw_open();
        sqlite3_stmt *ins;
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv VALUES (?, ?)", -1, &ins, NULL);
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        for (long i = 0; i < g_entries; i++) {
            make_key(k, (uint64_t)i);
            sqlite3_bind_blob(ins, 1, k, sizeof k, SQLITE_STATIC);
            sqlite3_bind_blob(ins, 2, v, (int)size, SQLITE_STATIC);
            sqlite3_step(ins);
            sqlite3_reset(ins);
        }
        sqlite3_finalize(ins);
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            fprintf(stderr, "get_loop: cannot fill %s\n", g_raw_path);
            return 1;
        }
        sqlite3_close(db);
        free(v);
    }
    run_readers(threads);
    return 0;
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
    g_raw = getenv("GET_LOOP_RAW") != NULL;
    snprintf(g_raw_path, sizeof g_raw_path, "%s/raw.db", argv[1]);
    if (g_raw) return raw_main(argc, argv, threads);
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
    run_readers(threads);
    backlite_storage_free(g_storage);
    return 0;
}
