/*
 * Two processes (one with two handles) take turns writing one file, and after every
 * turn the file's counters are what its rows say. A write takes the counters from what its connection's last
 * commit left while no other commit came since: any write, clear, check, vacuum,
 * zero-stats or reopen of the other process in between must make it read them again.
 *
 * The parent draws each step (seeded, so a failure reproduces) and runs it on one of
 * its two handles or hands it to the child through a pipe; the child answers once it is done, so the
 * order is exact and nothing sleeps. After each step the parent checks, without
 * repair: the counters recorded equal the entries counted, total_size stays within
 * max_size, and the lifetime evictions are those both handles made since the last
 * zero-stats (expirations at least theirs: closing a handle may purge more). Every
 * value read is the last one set under its key. TRACE=1 prints each step.
 */
#include <sys/wait.h>

#include "backlite.h"
#include "harness.h"

#define KEYS 16
#define STEPS 400
#define MAX_SIZE 8000
#define THRESHOLD 1024 /* values from here on are kept in files */
#define HOUR (3600 * 1000)

enum { OP_SET, OP_DELETE, OP_SET_MANY, OP_GET, OP_CLEAR, OP_REPAIR, OP_VACUUM, OP_ZERO, OP_REOPEN, OP_QUIT };

typedef struct {
    int code;
    int n; /* entries of a set_many; 1 for a set */
    int key[4];
    uint32_t serial[4];
    size_t len[4];
    int64_t expiration[4];
    /* a get: what the key may hold (want_known: the last value set is serial/len) */
    int want_absent, want_known;
    uint32_t want_serial;
    size_t want_len;
} op;

typedef struct {
    int32_t rc;
    int failed_checks;
    uint64_t evictions, expirations; /* of the handle, since it was opened */
} reply;

/* the model of a key: the last value set under it, and whether it is surely gone */
typedef struct {
    int known, absent;
    uint32_t serial;
    size_t len;
} slot;

static void key_of(char buf[16], int k) { snprintf(buf, 16, "k%02d", k); }

static void value_of(uint8_t *v, uint32_t serial, size_t len) {
    for (size_t i = 0; i < len; i++) v[i] = (uint8_t)(serial * 131u + i * 7u + (serial >> 5));
}

static backlite_storage *open_file(const char *path) {
    return OPEN_SET(path, .max_size = MAX_SIZE, .file_threshold = THRESHOLD, .busy_timeout_ms = 30000);
}

/* the handle's own eviction and expiration counts, carried over a reopen */
typedef struct {
    backlite_storage *s;
    uint64_t evictions, expirations;
} side;

static void count_of(side *h, uint64_t *evictions, uint64_t *expirations) {
    backlite_stats st = STATS(h->s);
    *evictions = h->evictions + st.evictions;
    *expirations = h->expirations + st.expirations;
}

/* runs one step on this process's handle */
static int32_t apply(side *h, const char *path, const op *o) {
    static uint8_t values[4][2600];
    char keys[4][16];
    backlite_error *err = NULL;
    backlite_result rc = BACKLITE_RESULT_OK;
    for (int i = 0; i < o->n; i++) {
        key_of(keys[i], o->key[i]);
        value_of(values[i], o->serial[i], o->len[i]);
    }
    switch (o->code) {
    case OP_SET:
        rc = backlite_storage_set(h->s, K(keys[0]), values[0], o->len[0], o->expiration[0], &err);
        break;
    case OP_DELETE:
        rc = backlite_storage_delete(h->s, K(keys[0]), &err);
        if (rc == BACKLITE_RESULT_NOT_FOUND) rc = BACKLITE_RESULT_OK;
        break;
    case OP_SET_MANY: {
        backlite_entry e[4];
        for (int i = 0; i < o->n; i++)
            e[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), values[i], o->len[i],
                                    o->expiration[i]};
        rc = backlite_storage_set_many(h->s, e, (size_t)o->n, &err);
        break;
    }
    case OP_GET: {
        backlite_buf b = {NULL, 0};
        rc = backlite_storage_get(h->s, K(keys[0]), &b, NULL, &err);
        if (rc == BACKLITE_RESULT_OK) {
            CHECK(!o->want_absent);
            if (o->want_known) {
                value_of(values[1], o->want_serial, o->want_len);
                h_check_bytes_(__FILE__, __LINE__, keys[0], b.data, b.len, values[1], o->want_len);
            }
            backlite_buf_free(&b);
        } else if (rc == BACKLITE_RESULT_NOT_FOUND) {
            rc = BACKLITE_RESULT_OK;
        }
        break;
    }
    case OP_CLEAR:
        rc = backlite_storage_clear(h->s, &err);
        break;
    case OP_REPAIR: {
        backlite_check_report r;
        rc = backlite_storage_check(h->s, 1, &r, &err);
        if (rc == BACKLITE_RESULT_OK && r.repaired)
            h_fail_(__FILE__, __LINE__, "a check repaired a sound file: %" PRIu64 " damaged, %" PRIu64
                    " orphan values, recorded %" PRIu64 "/%" PRIu64 ", counted %" PRIu64 "/%" PRIu64,
                    r.damaged, r.orphan_values, r.recorded_count, r.recorded_total_size, r.actual_count,
                    r.actual_total_size);
        break;
    }
    case OP_VACUUM:
        rc = backlite_storage_vacuum(h->s, &err);
        /* the rebuild is done; only the log's truncation can be kept from it */
        if (rc == BACKLITE_RESULT_BUSY) rc = BACKLITE_RESULT_OK;
        break;
    case OP_ZERO:
        rc = backlite_storage_zero_stats(h->s, &err);
        break;
    case OP_REOPEN: {
        backlite_stats st = STATS(h->s);
        h->evictions += st.evictions;
        h->expirations += st.expirations;
        backlite_storage_free(h->s);
        h->s = open_file(path);
        rc = h->s == NULL ? BACKLITE_RESULT_IO : BACKLITE_RESULT_OK;
        break;
    }
    default:
        break;
    }
    if (rc != BACKLITE_RESULT_OK) {
        fprintf(stderr, "step %d failed: %s\n", o->code, err ? backlite_error_message(err) : "");
    }
    backlite_error_free(err);
    return rc;
}

static bool read_all(int fd, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t got = read(fd, p, n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        p += got;
        n -= (size_t)got;
    }
    return true;
}

static bool write_all(int fd, const void *buf, size_t n) {
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t put = write(fd, p, n);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) return false;
        p += put;
        n -= (size_t)put;
    }
    return true;
}

/* the child: runs each step it is handed on a handle of its own, answers, until QUIT */
static void child_main(const char *path, int in, int out) {
    side h = {open_file(path), 0, 0};
    op o;
    while (h.s != NULL && read_all(in, &o, sizeof o) && o.code != OP_QUIT) {
        int before = atomic_load(&h_st()->failures);
        reply r = {0, 0, 0, 0};
        r.rc = apply(&h, path, &o);
        if (h.s != NULL) count_of(&h, &r.evictions, &r.expirations);
        r.failed_checks = atomic_load(&h_st()->failures) - before;
        if (!write_all(out, &r, sizeof r)) break;
    }
    backlite_storage_free(h.s);
    _exit(atomic_load(&h_st()->failures) == 0 ? 0 : 1);
}

static int64_t draw_expiration(uint64_t *rng) {
    switch (h_rand_below(rng, 10)) {
    case 0: return 0;                        /* already expired: removes the key */
    case 1: case 2: return 1 + (int64_t)h_rand_below(rng, 3); /* due within a few ms */
    case 3: case 4: return HOUR;
    default: return BACKLITE_EXPIRATION_NEVER;
    }
}

static size_t draw_len(uint64_t *rng) {
    switch (h_rand_below(rng, 4)) {
    case 0: return (size_t)h_rand_below(rng, 65);          /* inline, 0 included */
    case 1: return 200 + (size_t)h_rand_below(rng, 57);    /* inline, up to 256 */
    case 2: return 257 + (size_t)h_rand_below(rng, 700);   /* in the blobs table */
    default: return THRESHOLD + (size_t)h_rand_below(rng, 1500); /* in a file */
    }
}

/* the model after a set of one key */
static void model_set(slot *m, uint32_t serial, size_t len, int64_t expiration) {
    m->known = expiration != 0;
    m->absent = expiration == 0;
    m->serial = serial;
    m->len = len;
}

static void two_processes_taking_turns_keep_the_counters_exact(void) {
    const char *path = tmp_path("turns.db");
    int to_child[2], from_child[2];
    REQUIRE(pipe(to_child) == 0 && pipe(from_child) == 0);
    /* forked before this process opens anything: the child opens its own handle */
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(to_child[1]);
        close(from_child[0]);
        child_main(path, to_child[0], from_child[1]);
    }
    close(to_child[0]);
    close(from_child[1]);

    side parent = {open_file(path), 0, 0}, second = {open_file(path), 0, 0};
    REQUIRE(parent.s != NULL && second.s != NULL);
    slot model[KEYS];
    memset(model, 0, sizeof model);
    for (int k = 0; k < KEYS; k++) model[k].absent = 1;
    uint64_t rng = 2026;
    uint32_t serial = 1;
    /* each side's counts when the lifetime counters were last zeroed, and now */
    uint64_t zeroed_at[3][2], now_at[3][2];
    memset(zeroed_at, 0, sizeof zeroed_at);
    memset(now_at, 0, sizeof now_at);
    const char *names[3] = {"parent", "child", "second handle"};
    bool child_alive = true;

    for (int step = 0; step < STEPS && parent.s != NULL && second.s != NULL && child_alive; step++) {
        op o;
        memset(&o, 0, sizeof o);
        uint64_t pick = h_rand_below(&rng, 100);
        o.code = pick < 40 ? OP_SET : pick < 50 ? OP_DELETE : pick < 62 ? OP_SET_MANY
               : pick < 82 ? OP_GET : pick < 85 ? OP_CLEAR : pick < 88 ? OP_REPAIR
               : pick < 91 ? OP_VACUUM : pick < 95 ? OP_ZERO : OP_REOPEN;
        o.n = o.code == OP_SET_MANY ? 2 + (int)h_rand_below(&rng, 3) : 1;
        for (int i = 0; i < o.n; i++) {
            o.key[i] = (int)h_rand_below(&rng, KEYS);
            o.serial[i] = serial++;
            o.len[i] = draw_len(&rng);
            o.expiration[i] = draw_expiration(&rng);
        }
        slot *m = &model[o.key[0]];
        o.want_absent = m->absent;
        o.want_known = m->known;
        o.want_serial = m->serial;
        o.want_len = m->len;
        int who = (int)h_rand_below(&rng, 3); /* 0: this process, 1: the child, 2: a second handle here */

        if (getenv("TRACE")) {
            fprintf(stderr, "step %d: op %d by %s:", step, o.code, names[who]);
            for (int i = 0; i < o.n; i++) fprintf(stderr, " k%02d len %zu exp %lld;", o.key[i], o.len[i], (long long)o.expiration[i]);
            fprintf(stderr, "\n");
        }
        int32_t rc;
        if (who != 1) {
            side *h = who == 0 ? &parent : &second;
            rc = apply(h, path, &o);
            if (h->s != NULL) count_of(h, &now_at[who][0], &now_at[who][1]);
        } else {
            reply r;
            child_alive = write_all(to_child[1], &o, sizeof o) && read_all(from_child[0], &r, sizeof r);
            if (!child_alive) break;
            rc = r.rc;
            CHECK_EQ(r.failed_checks, 0);
            now_at[1][0] = r.evictions;
            now_at[1][1] = r.expirations;
        }
        if (rc != BACKLITE_RESULT_OK || parent.s == NULL || second.s == NULL) {
            h_fail_(__FILE__, __LINE__, "step %d (op %d by %s): %s", step, o.code, names[who], h_rc_name(rc));
            break;
        }
        switch (o.code) {
        case OP_SET:
        case OP_SET_MANY:
            for (int i = 0; i < o.n; i++) model_set(&model[o.key[i]], o.serial[i], o.len[i], o.expiration[i]);
            break;
        case OP_DELETE:
            m->known = 0;
            m->absent = 1;
            break;
        case OP_CLEAR:
            for (int k = 0; k < KEYS; k++) model[k] = (slot){0, 1, 0, 0};
            break;
        case OP_ZERO:
            memcpy(zeroed_at, now_at, sizeof zeroed_at);
            break;
        default:
            break;
        }

        backlite_check_report r;
        backlite_error *err = NULL;
        backlite_result crc = backlite_storage_check(parent.s, 0, &r, &err);
        h_check_rc_(__FILE__, __LINE__, "check", crc, BACKLITE_RESULT_OK, err);
        backlite_error_free(err);
        if (crc == BACKLITE_RESULT_OK) {
            if (!r.healthy || r.recorded_count != r.actual_count || r.recorded_total_size != r.actual_total_size)
                h_fail_(__FILE__, __LINE__,
                        "after step %d (op %d by %s): healthy %d, recorded %" PRIu64 " entries of %" PRIu64
                        " bytes, counted %" PRIu64 " of %" PRIu64,
                        step, o.code, names[who], r.healthy, r.recorded_count,
                        r.recorded_total_size, r.actual_count, r.actual_total_size);
            CHECK(r.actual_total_size <= MAX_SIZE);
        }
        backlite_lifetime_stats life;
        memset(&life, 0, sizeof life);
        err = NULL;
        crc = backlite_storage_lifetime_stats(parent.s, &life, &err);
        h_check_rc_(__FILE__, __LINE__, "lifetime_stats", crc, BACKLITE_RESULT_OK, err);
        backlite_error_free(err);
        uint64_t evictions = 0, expirations = 0;
        for (int i = 0; i < 3; i++) {
            evictions += now_at[i][0] - zeroed_at[i][0];
            expirations += now_at[i][1] - zeroed_at[i][1];
        }
        if (crc == BACKLITE_RESULT_OK && (life.evictions != evictions || life.expirations < expirations))
            h_fail_(__FILE__, __LINE__,
                    "after step %d (op %d by %s): lifetime evictions %" PRIu64 ", expirations %" PRIu64
                    "; the handles made %" PRIu64 " and %" PRIu64 " since the last zero",
                    step, o.code, names[who], life.evictions, life.expirations, evictions,
                    expirations);
        if (atomic_load(&h_st()->failures) > 0) break; /* the first wrong step says most */
    }

    op quit;
    memset(&quit, 0, sizeof quit);
    quit.code = OP_QUIT;
    if (child_alive) write_all(to_child[1], &quit, sizeof quit);
    close(to_child[1]);
    close(from_child[0]);
    int code = CHILD_EXIT_CODE(pid);
    if (code != 0)
        h_fail_(__FILE__, __LINE__, "the child failed (exit %d; its messages, or valgrind's, are above)", code);
    backlite_storage_free(second.s);
    backlite_storage_free(parent.s);
}

int main(void) {
    h_begin();
    RUN(two_processes_taking_turns_keep_the_counters_exact);
    return h_end();
}
