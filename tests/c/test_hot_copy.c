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
 *   be at least the generation published before its get began.
 */
#include "harness.h"

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

int main(void) {
    h_begin();
    RUN(every_get_answers_what_the_other_process_committed_last);
    RUN(a_get_never_answers_older_than_what_was_committed_before_it);
    RUN(another_handle_of_this_process_is_seen_at_once);
    RUN(hits_served_from_copies_count_and_order_as_hits);
    return h_end();
}
