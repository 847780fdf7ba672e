/*
 * A read connection keeps copies of the small values it found and hands them out again
 * while SQLite's data version says the file is unchanged (core/src/hot.rs). These
 * tests are the proof that a copy is never stale: two processes on one file, one
 * changing it, the other reading each key again and again (so that copies are made
 * and served) and comparing every answer with what the writer committed.
 *
 * - lockstep: the writer does one random operation (set, identical rewrite, same-size
 *   rewrite, delete, clear, set_many, a set that expires soon), sends the state it
 *   committed; the reader reads every key three times and compares; and so on.
 * - racing: the writer rewrites keys as fast as it can, publishing in shared memory
 *   the generation it last committed for each key; every value the reader gets must
 *   be at least the generation published before its get began; again with four
 *   threads of one handle (a copy per read connection) and values on both sides of
 *   the 16 KiB a copy may hold.
 * - one change each, by another handle or another program's SQLite: the same bytes
 *   given a deadline, an eviction, a version tag, rows deleted around checkpoints
 *   that restart the log.
 *
 * Each case fails with the data version check of hot.rs removed (a copy served
 * whatever the version).
 */
#include "harness.h"

#include <pthread.h>
#include <sys/mman.h>

#define KEYS 8
#define VMAX 64

/* The library's clock (milliseconds of the real-time clock). */
static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct {
    bool present[KEYS];
    size_t len[KEYS];
    uint8_t value[KEYS][VMAX];
    /* wall_ms; 0: none. The library's deadline is between the two: the clock read
     * before the set, and after it, plus the expiration */
    int64_t deadline[KEYS], deadline_late[KEYS];
    unsigned gen[KEYS];     /* the generation of each value (the writer's) */
    bool done;
} state;

static void key_name(char *out, int k) { snprintf(out, 8, "k%d", k); }

static bool read_all(int fd, void *p, size_t n) {
    uint8_t *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

static bool write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t r = write(fd, b, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

/* `gen`'s value of key `k`: its length varies, and some generations share a length */
static size_t make_value(uint8_t *out, int k, unsigned gen) {
    size_t len = 8 + (gen % 3) * 20;
    for (size_t i = 0; i < len; i++) out[i] = (uint8_t)(k * 31 + gen * 7 + i);
    return len;
}

static bool set_one(backlite_storage *s, state *st, int k, unsigned gen, int64_t ms) {
    char key[8];
    key_name(key, k);
    uint8_t v[VMAX];
    size_t len = make_value(v, k, gen);
    int64_t before = wall_ms();
    if (backlite_storage_set(s, K(key), v, len, ms, NULL) != BACKLITE_RESULT_OK) return false;
    st->present[k] = true;
    st->len[k] = len;
    memcpy(st->value[k], v, len);
    st->deadline[k] = ms > 0 ? before + ms : 0;
    st->deadline_late[k] = ms > 0 ? wall_ms() + ms : 0;
    st->gen[k] = gen;
    return true;
}

/* the writer of `lockstep`: one operation per round, then the state it committed */
static int lockstep_writer(const char *path, int to_reader, int from_reader, int rounds) {
    backlite_storage *s = NULL;
    if (backlite_storage_open(path, NULL, &s, NULL) != BACKLITE_RESULT_OK) return 10;
    state st;
    memset(&st, 0, sizeof st);
    uint64_t rng = 20261204;
    unsigned gen = 1;
    for (int round = 0; round < rounds; round++) {
        int k = (int)h_rand_below(&rng, KEYS);
        char key[8];
        key_name(key, k);
        switch (h_rand_below(&rng, 8)) {
        case 0: /* a new value */
        case 1:
            if (!set_one(s, &st, k, gen++, NEVER)) return 11;
            break;
        case 2: /* the same bytes again */
            if (st.present[k]) {
                if (backlite_storage_set(s, K(key), st.value[k], st.len[k], NEVER, NULL) != BACKLITE_RESULT_OK)
                    return 12;
                st.deadline[k] = st.deadline_late[k] = 0;
            }
            break;
        case 3: { /* another value of the same size (make_value's length is gen % 3's) */
            unsigned g = gen;
            while (g % 3 != st.gen[k] % 3) g++;
            if (!set_one(s, &st, k, g, NEVER)) return 13;
            gen = g + 1;
            break;
        }
        case 4: {
            backlite_result rc = backlite_storage_delete(s, K(key), NULL);
            if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND) return 14;
            st.present[k] = false;
            break;
        }
        case 5:
            if (h_rand_below(&rng, 4) == 0) {
                if (backlite_storage_clear(s, NULL) != BACKLITE_RESULT_OK) return 15;
                memset(st.present, 0, sizeof st.present);
            }
            break;
        case 6: { /* three keys in one batch */
            backlite_entry items[3];
            uint8_t vals[3][VMAX];
            int ks[3] = {k, (k + 3) % KEYS, (k + 5) % KEYS};
            for (int i = 0; i < 3; i++) {
                char *name = malloc(8);
                key_name(name, ks[i]);
                st.gen[ks[i]] = gen;
                size_t len = make_value(vals[i], ks[i], gen++);
                items[i] = (backlite_entry){(const uint8_t *)name, strlen(name), vals[i], len, NEVER};
            }
            backlite_result rc = backlite_storage_set_many(s, items, 3, NULL);
            for (int i = 0; i < 3; i++) free((void *)items[i].key);
            if (rc != BACKLITE_RESULT_OK) return 16;
            for (int i = 0; i < 3; i++) {
                st.present[ks[i]] = true;
                st.len[ks[i]] = items[i].value_len;
                memcpy(st.value[ks[i]], vals[i], items[i].value_len);
                st.deadline[ks[i]] = st.deadline_late[ks[i]] = 0;
            }
            break;
        }
        case 7: /* expires soon: the reader reads it, then again past its deadline */
            if (!set_one(s, &st, k, gen++, 150)) return 17;
            break;
        }
        if (!write_all(to_reader, &st, sizeof st)) return 18;
        char ack;
        if (!read_all(from_reader, &ack, 1)) return 19;
    }
    st.done = true;
    if (!write_all(to_reader, &st, sizeof st)) return 20;
    backlite_storage_free(s);
    return 0;
}

/* one get of key `k` compared with `st`; `*failures` counts the wrong answers */
static void check_key(backlite_storage *s, const state *st, int k, int round, int *failures) {
    char key[8];
    key_name(key, k);
    backlite_buf b = {0};
    int64_t before = wall_ms();
    backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, NULL);
    int64_t after = wall_ms();
    /* may be live when the get began, must be when it ended */
    bool live_before = st->present[k] && (st->deadline[k] == 0 || before < st->deadline_late[k]);
    bool live_after = st->present[k] && (st->deadline[k] == 0 || after < st->deadline[k]);
    bool ok;
    if (rc == BACKLITE_RESULT_OK) {
        ok = live_before && b.len == st->len[k] && memcmp(b.data, st->value[k], b.len) == 0;
    } else {
        ok = rc == BACKLITE_RESULT_NOT_FOUND && !live_after;
    }
    if (!ok && (*failures)++ < 5)
        fprintf(stderr,
                "round %d: get(%s) = %s (%zu bytes), the writer committed %s (%zu bytes, deadline %" PRId64
                " ms after the get began)\n",
                round, key, h_rc_name(rc), rc == BACKLITE_RESULT_OK ? b.len : 0, st->present[k] ? "a value" : "none",
                st->len[k], st->deadline[k] ? st->deadline[k] - before : 0);
    backlite_buf_free(&b);
}

static void every_get_answers_what_the_other_process_committed_last(void) {
    const char *path = tmp_path("lockstep.db");
    int rounds = h_under_valgrind() ? 150 : 1500;
    int down[2], up[2];
    REQUIRE(pipe(down) == 0 && pipe(up) == 0);
    /* the file exists before either opens it */
    backlite_storage *made = OPEN(path, NULL);
    REQUIRE(made != NULL);
    backlite_storage_free(made);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(down[0]);
        close(up[1]);
        _exit(lockstep_writer(path, down[1], up[0], rounds));
    }
    close(down[1]);
    close(up[0]);
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    state st;
    int failures = 0, round = 0;
    while (read_all(down[0], &st, sizeof st) && !st.done) {
        for (int k = 0; k < KEYS; k++)
            for (int i = 0; i < 3; i++) check_key(s, &st, k, round, &failures);
        /* past every deadline the writer gave: the copies of those values are gone too */
        int64_t latest = 0;
        for (int k = 0; k < KEYS; k++)
            if (st.present[k] && st.deadline_late[k] > latest) latest = st.deadline_late[k];
        if (latest && round % 16 == 0) {
            while (wall_ms() <= latest) h_sleep_ms(latest - wall_ms() + 1);
            for (int k = 0; k < KEYS; k++) check_key(s, &st, k, round, &failures);
        }
        round++;
        char ack = 1;
        REQUIRE(write_all(up[1], &ack, 1));
    }
    close(down[0]);
    close(up[1]);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    CHECK_EQ(round, rounds);
    CHECK_EQ(failures, 0);
    backlite_storage_free(s);
}

/* what the racing writer has committed: the generation of each key, in shared memory */
typedef struct {
    _Atomic unsigned gen[KEYS];
    _Atomic bool stop;
} published;

static int racing_writer(const char *path, published *p) {
    backlite_storage *s = NULL;
    if (backlite_storage_open(path, NULL, &s, NULL) != BACKLITE_RESULT_OK) return 10;
    uint64_t rng = 7;
    unsigned gen = 1;
    while (!atomic_load(&p->stop)) {
        int k = (int)h_rand_below(&rng, KEYS);
        char key[8];
        key_name(key, k);
        uint8_t v[VMAX];
        size_t len = make_value(v, k, gen);
        memcpy(v, &gen, sizeof gen); /* the generation, in the value's first bytes */
        if (backlite_storage_set(s, K(key), v, len, NEVER, NULL) != BACKLITE_RESULT_OK) return 11;
        atomic_store(&p->gen[k], gen); /* after the commit */
        gen++;
        /* pauses let the reader's copies settle and be served between changes */
        if (h_rand_below(&rng, 4) == 0) h_sleep_ms(1);
    }
    backlite_storage_free(s);
    return 0;
}

static void a_get_never_answers_older_than_what_was_committed_before_it(void) {
    const char *path = tmp_path("racing.db");
    published *p = mmap(NULL, sizeof *p, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    memset(p, 0, sizeof *p);
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    for (int k = 0; k < KEYS; k++) {
        char key[8];
        key_name(key, k);
        uint8_t v[VMAX] = {0}; /* generation 0 */
        CHECK_OK(backlite_storage_set(s, K(key), v, 8, NEVER, &err));
    }
    /* the child opens its own handle: one inherited would never be freed there */
    backlite_storage_free(s);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(racing_writer(path, p));
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    int gets = h_under_valgrind() ? 4000 : 200000, stale = 0, served = 0;
    uint64_t rng = 11;
    for (int i = 0; i < gets; i++) {
        int k = (int)h_rand_below(&rng, KEYS);
        char key[8];
        key_name(key, k);
        unsigned floor = atomic_load(&p->gen[k]);
        backlite_buf b = {0};
        backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, NULL);
        if (rc == BACKLITE_RESULT_OK && b.len >= sizeof(unsigned)) {
            unsigned got;
            memcpy(&got, b.data, sizeof got);
            served++;
            if (got < floor && stale++ < 5)
                fprintf(stderr, "get(%s) answered generation %u after %u was committed\n", key, got, floor);
        } else if (stale++ < 5) {
            fprintf(stderr, "get(%s) = %s\n", key, h_rc_name(rc));
        }
        backlite_buf_free(&b);
    }
    atomic_store(&p->stop, true);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    CHECK_EQ(stale, 0);
    CHECK_EQ(served, gets);
    backlite_storage_free(s);
    munmap(p, sizeof *p);
}

/* reads `key` `times` times through `s`, each expected to be `want` (NULL: a miss) */
static void read_times(backlite_storage *s, const char *key, const char *want, int times) {
    for (int i = 0; i < times; i++) {
        if (want) GET_EQ(s, key, want);
        else GET_MISSING(s, key);
    }
}

static void another_handle_of_this_process_is_seen_at_once(void) {
    const char *path = tmp_path("two_handles.db");
    backlite_storage *a = OPEN(path, NULL), *b = OPEN(path, NULL);
    REQUIRE(a != NULL && b != NULL);
    SET(b, "k", "one");
    read_times(a, "k", "one", 4);
    SET(b, "k", "two");
    read_times(a, "k", "two", 4);
    SET(b, "k", "six"); /* same size */
    read_times(a, "k", "six", 4);
    CHECK_OK(backlite_storage_delete(b, K("k"), &err));
    read_times(a, "k", NULL, 2);
    SET(b, "k", "back");
    read_times(a, "k", "back", 4);
    CHECK_OK(backlite_storage_clear(b, &err));
    read_times(a, "k", NULL, 2);
    backlite_storage_free(a);
    backlite_storage_free(b);
}

/* a hit served from a copy counts and orders as any hit: a key's third find at one
 * version is copied, its fourth on is served from the copy; under LFU, a 6, b 4, c 5
 * hits (3, 1 and 2 of them from copies) make b the victim, where hits from copies
 * left uncounted would tie all three at 3 and make a, the first read, the victim */
static void hits_served_from_copies_count_and_order_as_hits(void) {
    const char *path = tmp_path("order.db");
    backlite_storage *s = OPEN_WITH(path, 3 * 10, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
    REQUIRE(s != NULL);
    SET(s, "a", "aaaaaaaaaa");
    SET(s, "b", "bbbbbbbbbb");
    SET(s, "c", "cccccccccc");
    read_times(s, "a", "aaaaaaaaaa", 6);
    read_times(s, "b", "bbbbbbbbbb", 4);
    read_times(s, "c", "cccccccccc", 5);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.hits, 15);
    SET(s, "d", "dddddddddd");
    CHECK(HAS(s, "a"));
    CHECK(!HAS(s, "b"));
    CHECK(HAS(s, "c"));
    CHECK(HAS(s, "d"));
    backlite_storage_free(s);
}

/* the same bytes rewritten by another handle with a deadline: the copy made while the
 * value never expired must not outlive the deadline (the value is unchanged, only the
 * row's expires_at moved) */
static void a_deadline_given_elsewhere_to_the_same_bytes_ends_the_copy(void) {
    const char *path = tmp_path("same_bytes_deadline.db");
    backlite_storage *a = OPEN(path, NULL), *b = OPEN(path, NULL);
    REQUIRE(a != NULL && b != NULL);
    SET(b, "k", "same");
    read_times(a, "k", "same", 4);
    SET_EXP(b, "k", "same", 100);
    h_sleep_ms(150);
    read_times(a, "k", NULL, 2);
    backlite_storage_free(a);
    backlite_storage_free(b);
}

static int32_t count_chunk(void *ud, const uint8_t *chunk, size_t len) {
    (void)chunk;
    *(size_t *)ud += len;
    return 0;
}

/* get_chunks of `key` through `s`: its result, and the bytes visited in `*len` */
static backlite_result chunks_of(backlite_storage *s, const char *key, size_t *len) {
    *len = 0;
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_get_chunks(s, K(key), count_chunk, len, NULL, &e);
    backlite_error_free(e);
    return rc;
}

/* another handle's set evicts the entry this one holds a copy of; contains and
 * get_chunks are answered from copies too, and count as they do from the file */
static void an_entry_evicted_by_another_writer_is_missed(void) {
    const char *path = tmp_path("evicted.db");
    backlite_storage *a = OPEN_WITH(path, 10, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    backlite_storage *b = OPEN_WITH(path, 10, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(a != NULL && b != NULL);
    SET(b, "x", "xxxxxxxxxx");
    read_times(a, "x", "xxxxxxxxxx", 4);
    backlite_stats before = STATS(a);
    size_t len = 0;
    for (int i = 0; i < 3; i++) {
        CHECK(HAS(a, "x"));
        CHECK_EQ(chunks_of(a, "x", &len), BACKLITE_RESULT_OK);
        CHECK_EQ(len, 10);
    }
    backlite_stats after = STATS(a);
    CHECK_EQ(after.hits, before.hits + 3); /* the get_chunks; contains counts nothing */
    CHECK_EQ(after.misses, before.misses);
    SET(b, "y", "yyyyyyyyyy"); /* room for one entry: x goes */
    read_times(a, "x", NULL, 2);
    CHECK(!HAS(a, "x"));
    CHECK_EQ(chunks_of(a, "x", &len), BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(len, 0);
    read_times(a, "y", "yyyyyyyyyy", 4);
    backlite_storage_free(a);
    backlite_storage_free(b);
}

/* another handle opens the file with another version tag (which drops the entries) */
static void a_version_tag_changed_elsewhere_ends_the_copies(void) {
    const char *path = tmp_path("tag.db");
    backlite_storage *a = OPEN_SET(path, .version_tag = "1");
    REQUIRE(a != NULL);
    SET(a, "k", "v1");
    read_times(a, "k", "v1", 4);
    backlite_storage *b = OPEN_SET(path, .version_tag = "2");
    REQUIRE(b != NULL);
    backlite_buf buf = {0};
    backlite_error *e = NULL;
    CHECK(backlite_storage_get(a, K("k"), &buf, NULL, &e) != BACKLITE_RESULT_OK);
    CHECK(buf.data == NULL);
    backlite_buf_free(&buf);
    backlite_error_free(e);
    backlite_storage_free(a);
    backlite_storage_free(b);
}

/* another program's SQLite (python3's) deletes rows, after and before checkpoints that
 * restart the log; a checkpoint alone changes no answer */
static void another_sqlite_writing_after_a_log_restart_is_seen(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is needed");
    const char *path = tmp_path("foreign.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    SET(s, "b", "2");
    read_times(s, "a", "1", 4);
    read_times(s, "b", "2", 4);
    REQUIRE(h_python_sqlite(path, "PRAGMA wal_checkpoint(TRUNCATE); "
                                  "DELETE FROM entries WHERE key = CAST('a' AS BLOB);"));
    read_times(s, "a", NULL, 2);
    read_times(s, "b", "2", 4);
    REQUIRE(h_python_sqlite(path, "PRAGMA wal_checkpoint(TRUNCATE);"));
    read_times(s, "b", "2", 4);
    REQUIRE(h_python_sqlite(path, "DELETE FROM entries WHERE key = CAST('b' AS BLOB); "
                                  "PRAGMA wal_checkpoint(TRUNCATE);"));
    read_times(s, "b", NULL, 2);
    backlite_storage_free(s);
}

/* threads of one handle (each read connection has copies of its own) against a racing
 * writer process, with values on both sides of the 16 KiB a copy may hold: each value
 * carries its generation at both ends, and its length is the generation's */
static size_t racing_len(unsigned gen) {
    static const size_t sizes[] = {8, 100, 4000, 16383, 16384, 16385, 20000, 16384};
    return sizes[gen % 8];
}

#define RACING_MAX 20000

static int threads_racing_writer(const char *path, published *p) {
    backlite_storage *s = NULL;
    if (backlite_storage_open(path, NULL, &s, NULL) != BACKLITE_RESULT_OK) return 10;
    static uint8_t v[RACING_MAX];
    uint64_t rng = 5;
    unsigned gen = 1;
    while (!atomic_load(&p->stop)) {
        int k = (int)h_rand_below(&rng, KEYS);
        char key[8];
        key_name(key, k);
        size_t len = racing_len(gen);
        memset(v, (int)(gen & 0xff), len);
        memcpy(v, &gen, sizeof gen);
        memcpy(v + len - sizeof gen, &gen, sizeof gen);
        if (backlite_storage_set(s, K(key), v, len, NEVER, NULL) != BACKLITE_RESULT_OK) return 11;
        atomic_store(&p->gen[k], gen);
        gen++;
        if (h_rand_below(&rng, 4) == 0) h_sleep_ms(1);
    }
    backlite_storage_free(s);
    return 0;
}

typedef struct {
    backlite_storage *s;
    published *p;
    uint64_t seed;
    int gets, stale, served;
} racing_reader;

static void *threads_racing_read(void *arg) {
    racing_reader *r = arg;
    for (int i = 0; i < r->gets; i++) {
        int k = (int)h_rand_below(&r->seed, KEYS);
        char key[8];
        key_name(key, k);
        unsigned floor = atomic_load(&r->p->gen[k]);
        backlite_buf b = {0};
        backlite_result rc = backlite_storage_get(r->s, K(key), &b, NULL, NULL);
        unsigned got = 0, tail = 1;
        if (rc == BACKLITE_RESULT_OK && b.len >= 8) {
            memcpy(&got, b.data, sizeof got);
            memcpy(&tail, b.data + b.len - sizeof tail, sizeof tail);
            r->served++;
        }
        if ((rc != BACKLITE_RESULT_OK || got < floor || tail != got || b.len != racing_len(got)) &&
            r->stale++ < 3)
            fprintf(stderr, "get(%s) = %s, generation %u (its end %u, %zu bytes) after %u was committed\n", key,
                    h_rc_name(rc), got, tail, b.len, floor);
        backlite_buf_free(&b);
    }
    return NULL;
}

static void threads_of_one_handle_never_answer_older_than_what_was_committed(void) {
    const char *path = tmp_path("threads_racing.db");
    published *p = mmap(NULL, sizeof *p, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    memset(p, 0, sizeof *p);
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    for (int k = 0; k < KEYS; k++) { /* generation 0, 8 bytes */
        char key[8];
        key_name(key, k);
        uint8_t v[8] = {0};
        CHECK_OK(backlite_storage_set(s, K(key), v, 8, NEVER, &err));
    }
    backlite_storage_free(s);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(threads_racing_writer(path, p));
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    enum { THREADS = 4 };
    racing_reader r[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (racing_reader){s, p, (uint64_t)i + 100, h_under_valgrind() ? 300 : 25000, 0, 0};
        REQUIRE(pthread_create(&t[i], NULL, threads_racing_read, &r[i]) == 0);
    }
    int stale = 0, served = 0;
    for (int i = 0; i < THREADS; i++) {
        REQUIRE(pthread_join(t[i], NULL) == 0);
        stale += r[i].stale;
        served += r[i].served;
    }
    atomic_store(&p->stop, true);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    CHECK_EQ(stale, 0);
    CHECK_EQ(served, THREADS * r[0].gets);
    backlite_storage_free(s);
    munmap(p, sizeof *p);
}

int main(void) {
    h_begin();
    RUN(every_get_answers_what_the_other_process_committed_last);
    RUN(a_get_never_answers_older_than_what_was_committed_before_it);
    RUN(another_handle_of_this_process_is_seen_at_once);
    RUN(hits_served_from_copies_count_and_order_as_hits);
    RUN(a_deadline_given_elsewhere_to_the_same_bytes_ends_the_copy);
    RUN(an_entry_evicted_by_another_writer_is_missed);
    RUN(a_version_tag_changed_elsewhere_ends_the_copies);
    RUN(another_sqlite_writing_after_a_log_restart_is_seen);
    RUN(threads_of_one_handle_never_answer_older_than_what_was_committed);
    return h_end();
}
