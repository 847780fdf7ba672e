/*
 * Out-parameters and *err, for every fallible function (API.md, "Conventions" and "A
 * miss is an answer"): out-parameters are written only when the call returns OK, and
 * *err only when it fails. Each call below starts with its out-parameters filled with
 * 0xA5 bytes and *err holding a sentinel that is no object, in its failing and missing
 * cases:
 * - after any result but OK, every out-parameter still holds its 0xA5 bytes (a caller's
 *   buffer too: the bytes a damaged value withholds never reach it);
 * - NOT_FOUND (a miss: no live entry, or one found damaged) leaves *err alone: the
 *   sentinel is neither replaced nor freed (ASan and valgrind would see the bad free);
 * - every other failure replaces it with an error object of that code and a message;
 * - and each call gives the same result with err == NULL.
 * The one out-parameter written without OK is the lease of a lease call's NOT_FOUND:
 * the lease is what that miss answers.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <stddef.h>

#define NP BACKLITE_RESULT_NULL_PARAMETER
#define INVALID BACKLITE_RESULT_INVALID_ARGUMENT
#define MISS BACKLITE_RESULT_NOT_FOUND

/* a pointer the library must neither write over on OK or a miss, nor free */
#define ERR_SENTINEL ((backlite_error *)(uintptr_t)0xA5A5A5A5u)
#define A5 0xA5

/* fills an out-parameter with 0xA5 bytes */
#define FILL(x) memset(&(x), A5, sizeof(x))

static bool all_a5(const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != A5) return false;
    return true;
}

/* an out-parameter (or a caller's buffer) still holds its 0xA5 bytes */
#define UNTOUCHED(x) UNTOUCHED_N(&(x), sizeof(x), #x)
#define UNTOUCHED_N(p, n, what)                                                       \
    do {                                                                              \
        if (!all_a5((p), (n))) h_fail_(__FILE__, __LINE__, "%s was written", (what)); \
    } while (0)

static void check_err_(const char *file, int line, const char *what, backlite_result rc,
                       backlite_result expected, backlite_error *err) {
    if (rc != expected)
        h_fail_(file, line, "%s: expected %s (%d), got %s (%d)", what, h_rc_name(expected),
                (int)expected, h_rc_name(rc), (int)rc);
    if (rc == BACKLITE_RESULT_OK || rc == MISS) {
        if (err != ERR_SENTINEL) {
            h_fail_(file, line, "%s: %s wrote *err", what, h_rc_name(rc));
            if (err != NULL) backlite_error_free(err);
        }
        return;
    }
    if (err == ERR_SENTINEL || err == NULL) {
        h_fail_(file, line, "%s: %s (%d) left *err without an error object", what, h_rc_name(rc),
                (int)rc);
        return;
    }
    if (backlite_error_result(err) != rc)
        h_fail_(file, line, "%s: the error object says %d, the call %d", what,
                (int)backlite_error_result(err), (int)rc);
    const char *m = backlite_error_message(err);
    if (m == NULL || m[0] == '\0') h_fail_(file, line, "%s: the error object has no message", what);
    backlite_error_free(err);
}

/*
 * Runs `call`, which passes E as its err argument, with *E holding the sentinel, and
 * checks the result and *err; then once more with E == NULL (for calls that can be
 * repeated: a failure or a miss that changes nothing the second call depends on).
 */
#define EXPECT(expected, call)                                                        \
    do {                                                                              \
        backlite_error *h_err_ = ERR_SENTINEL, **E = &h_err_;                         \
        backlite_result h_rc_ = (call);                                               \
        check_err_(__FILE__, __LINE__, #call, h_rc_, (expected), h_err_);             \
        E = NULL;                                                                     \
        h_rc_ = (call);                                                               \
        if (h_rc_ != (expected))                                                      \
            h_fail_(__FILE__, __LINE__, "%s with err == NULL: %s (%d)", #call,        \
                    h_rc_name(h_rc_), (int)h_rc_);                                    \
    } while (0)

/* the same, once (a call whose second run would differ: one that takes a lease) */
#define EXPECT_ONCE(expected, call)                                                   \
    do {                                                                              \
        backlite_error *h_err_ = ERR_SENTINEL, **E = &h_err_;                         \
        backlite_result h_rc_ = (call);                                               \
        check_err_(__FILE__, __LINE__, #call, h_rc_, (expected), h_err_);             \
    } while (0)

#define CHUNK ((size_t)256 * 1024)
#define BIG (3 * CHUNK + 100) /* a value in a file of its own, read in several parts */

static int32_t compute_ok(void *ud, backlite_sink *sink) {
    (void)ud;
    return backlite_sink_write(sink, (const uint8_t *)"v", 1) == BACKLITE_RESULT_OK ? 0 : 1;
}

static int32_t compute_fails(void *ud, backlite_sink *sink) {
    (void)ud;
    (void)backlite_sink_write(sink, (const uint8_t *)"partial", 7);
    return 7;
}

static int32_t lock_fails(void *ud) {
    (void)ud;
    return 1;
}

static void unlock_nothing(void *ud) { (void)ud; }

static int32_t visit_all(void *ud, const uint8_t *p, size_t n) {
    (void)ud;
    (void)p;
    (void)n;
    return 0;
}

static int32_t visit_stops(void *ud, const uint8_t *p, size_t n) {
    (void)ud;
    (void)p;
    (void)n;
    return 1;
}

/* A storage at a fresh path whose one entry, "k", is a BIG value found at open and
 * damaged at its end: kept in a file whose last byte was flipped, or (`in_db`) in the
 * database, its blob zeroed behind BackLite's back (python3's sqlite3 does that: ask
 * h_have_python_sqlite() first). */
static backlite_storage *with_a_damaged_value(const char *name, bool in_db) {
    const char *path = tmp_path(name);
    backlite_storage *s =
        OPEN_SET(path, .file_threshold = in_db ? BACKLITE_FILE_THRESHOLD_NEVER : 4096);
    if (s == NULL) return NULL;
    uint8_t *v = h_pattern(BIG, 9);
    SET_BYTES(s, "k", v, BIG, NEVER);
    free(v);
    bool damaged = false;
    if (in_db) {
        backlite_storage_free(s);
        damaged = h_zero_blobs(path);
        s = OPEN_SET(path, .file_threshold = BACKLITE_FILE_THRESHOLD_NEVER);
    } else {
        const char *file = only_value_file(path);
        size_t len = 0;
        uint8_t *bytes = h_read_file(file, &len);
        if (bytes != NULL && len > VALUE_RECORD_LEN) {
            bytes[len - VALUE_RECORD_LEN - 1] ^= 1; /* the value's last byte, before its record */
            damaged = h_write_file(file, bytes, len);
        }
        free(bytes);
    }
    if (!damaged) {
        h_fail_(__FILE__, __LINE__, "cannot damage the value of %s", path);
        backlite_storage_free(s);
        return NULL;
    }
    return s;
}

static void open_writes_no_storage_unless_it_opens(void) {
    backlite_storage *out;
    FILL(out);
    const char *text = tmp_path("text.txt");
    REQUIRE(h_write_file(text, "not a cache\n", 12));
    const char *dir = tmp_path("dir");
    REQUIRE(mkdir(dir, 0700) == 0);
    EXPECT(NP, backlite_storage_open(NULL, NULL, &out, E));
    EXPECT(NP, backlite_storage_open(":memory:", NULL, NULL, E));
    EXPECT(INVALID, backlite_storage_open("\xff\xfe.db", NULL, &out, E));
    EXPECT(BACKLITE_RESULT_IO, backlite_storage_open(tmp_path("no-such-dir/x.db"), NULL, &out, E));
    EXPECT(BACKLITE_RESULT_NOT_A_CACHE, backlite_storage_open(text, NULL, &out, E));
    EXPECT(BACKLITE_RESULT_IO, backlite_storage_open(dir, NULL, &out, E));
    UNTOUCHED(out);
}

static void get_writes_nothing_on_a_miss_or_a_failure(void) {
    backlite_storage *s = OPEN_SET(tmp_path("get.db"), .file_threshold = 4096);
    REQUIRE(s != NULL);
    SET_EXP(s, "expired", "v", 0);
    backlite_buf b;
    int64_t left;
    FILL(b);
    FILL(left);
    EXPECT(NP, backlite_storage_get(NULL, K("k"), &b, &left, E));
    EXPECT(NP, backlite_storage_get(s, NULL, 1, &b, &left, E));
    EXPECT(NP, backlite_storage_get(s, K("k"), NULL, &left, E));
    EXPECT(INVALID, backlite_storage_get(s, (const uint8_t *)"k", (size_t)BACKLITE_MAX_KEY_SIZE + 1,
                                         &b, &left, E));
    EXPECT(MISS, backlite_storage_get(s, K("absent"), &b, &left, E));
    EXPECT(MISS, backlite_storage_get(s, K("expired"), &b, &left, E));
    UNTOUCHED(b);
    UNTOUCHED(left);
    backlite_storage_free(s);

    /* damaged (in its file, or in the database when python3 can damage it), then gone */
    for (int in_db = 0; in_db <= (int)h_have_python_sqlite(); in_db++) {
        s = with_a_damaged_value(in_db ? "get-damaged-blob.db" : "get-damaged.db", in_db);
        REQUIRE(s != NULL);
        EXPECT(MISS, backlite_storage_get(s, K("k"), &b, &left, E));
        UNTOUCHED(b);
        UNTOUCHED(left);
        backlite_storage_free(s);
    }
}

static void get_chunks_writes_no_time_left_unless_it_ends_whole(void) {
    backlite_storage *s = OPEN_SET(tmp_path("chunks.db"), .file_threshold = 4096);
    REQUIRE(s != NULL);
    SET(s, "k", "value");
    int64_t left;
    FILL(left);
    EXPECT(NP, backlite_storage_get_chunks(NULL, K("k"), visit_all, NULL, &left, E));
    EXPECT(NP, backlite_storage_get_chunks(s, NULL, 1, visit_all, NULL, &left, E));
    EXPECT(NP, backlite_storage_get_chunks(s, K("k"), NULL, NULL, &left, E));
    EXPECT(MISS, backlite_storage_get_chunks(s, K("absent"), visit_all, NULL, &left, E));
    EXPECT(BACKLITE_RESULT_CALLBACK_FAILED,
           backlite_storage_get_chunks(s, K("k"), visit_stops, NULL, &left, E));
    UNTOUCHED(left);
    backlite_storage_free(s);

    for (int in_db = 0; in_db <= (int)h_have_python_sqlite(); in_db++) {
        s = with_a_damaged_value(in_db ? "chunks-damaged-blob.db" : "chunks-damaged.db", in_db);
        REQUIRE(s != NULL);
        EXPECT(MISS, backlite_storage_get_chunks(s, K("k"), visit_all, NULL, &left, E));
        UNTOUCHED(left);
        backlite_storage_free(s);
    }
}

static void open_reader_writes_nothing_on_a_miss_or_a_failure(void) {
    backlite_storage *s = OPEN_SET(tmp_path("reader.db"), .file_threshold = 4096);
    REQUIRE(s != NULL);
    SET(s, "k", "value");
    SET_EXP(s, "expired", "v", 0);
    backlite_value_reader *r;
    uint64_t size;
    int64_t left;
    FILL(r);
    FILL(size);
    FILL(left);
    EXPECT(NP, backlite_storage_open_reader(NULL, K("k"), &r, &size, &left, E));
    EXPECT(NP, backlite_storage_open_reader(s, NULL, 1, &r, &size, &left, E));
    EXPECT(NP, backlite_storage_open_reader(s, K("k"), NULL, &size, &left, E));
    EXPECT(INVALID, backlite_storage_open_reader(s, (const uint8_t *)"k",
                                                 (size_t)BACKLITE_MAX_KEY_SIZE + 1, &r, &size,
                                                 &left, E));
    EXPECT(MISS, backlite_storage_open_reader(s, K("absent"), &r, &size, &left, E));
    EXPECT(MISS, backlite_storage_open_reader(s, K("expired"), &r, &size, &left, E));
    UNTOUCHED(r);
    UNTOUCHED(size);
    UNTOUCHED(left);
    backlite_storage_free(s);
}

/* A damaged value read into one buffer of its whole length: whatever the reads before
 * handed over, the read that finds the damage writes neither the buffer nor *read_out,
 * so none of the value's last bytes is ever in the caller's memory. */
static void a_damaged_value_leaves_the_buffer_of_its_last_read_untouched_(bool in_db) {
    backlite_storage *s = with_a_damaged_value(in_db ? "read-damaged-blob.db" : "read-damaged.db", in_db);
    REQUIRE(s != NULL);
    backlite_value_reader *r = NULL;
    REQUIRE_OK(backlite_storage_open_reader(s, K("k"), &r, NULL, NULL, &err));
    REQUIRE(r != NULL);
    uint8_t *buf = malloc(BIG);
    REQUIRE(buf != NULL);
    memset(buf, A5, BIG);
    size_t at = 0, n;
    backlite_result rc;
    for (;;) {
        FILL(n);
        backlite_error *e = ERR_SENTINEL;
        rc = backlite_value_reader_read(r, buf + at, BIG - at, &n, &e);
        if (rc != BACKLITE_RESULT_OK) {
            check_err_(__FILE__, __LINE__, "the read that finds the damage", rc, MISS, e);
            break;
        }
        CHECK(e == ERR_SENTINEL);
        if (n == 0 || at + n > BIG) break;
        at += n;
    }
    CHECK_EQ(rc, MISS);
    UNTOUCHED(n);
    CHECK(at < BIG);
    UNTOUCHED_N(buf + at, BIG - at, "the buffer of the read that found the damage");
    /* every read after it is the same miss, and writes nothing either */
    memset(buf, A5, BIG);
    EXPECT(MISS, backlite_value_reader_read(r, buf, BIG, &n, E));
    UNTOUCHED(n);
    UNTOUCHED_N(buf, BIG, "the buffer of a read after the damage");
    backlite_value_reader_free(r);
    CHECK(!HAS(s, "k"));
    free(buf);
    backlite_storage_free(s);
}

static void a_damaged_value_leaves_the_buffer_of_its_last_read_untouched(void) {
    a_damaged_value_leaves_the_buffer_of_its_last_read_untouched_(false);
}

/* The same for a value in the database, read from the reader's snapshot of it. */
static void a_damaged_blob_leaves_the_buffer_of_its_last_read_untouched(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to edit the file");
    a_damaged_value_leaves_the_buffer_of_its_last_read_untouched_(true);
}

static void a_read_refused_writes_nothing(void) {
    backlite_storage *s = OPEN_SET(tmp_path("read-refused.db"), .file_threshold = 4096);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(BIG, 3);
    SET_BYTES(s, "k", v, BIG, NEVER);
    backlite_value_reader *r = NULL;
    REQUIRE_OK(backlite_storage_open_reader(s, K("k"), &r, NULL, NULL, &err));
    REQUIRE(r != NULL);
    uint8_t buf[64];
    size_t n;
    FILL(buf);
    FILL(n);
    EXPECT(NP, backlite_value_reader_read(NULL, buf, sizeof buf, &n, E));
    EXPECT(NP, backlite_value_reader_read(r, buf, sizeof buf, NULL, E));
    EXPECT(NP, backlite_value_reader_read(r, NULL, 10, &n, E));
    EXPECT(INVALID, backlite_value_reader_read(r, buf, (size_t)PTRDIFF_MAX + 1, &n, E));
    UNTOUCHED(buf);
    UNTOUCHED(n);
    /* and the whole value still reads back, in a single buffer as in small ones */
    uint8_t *got = malloc(BIG);
    REQUIRE(got != NULL);
    size_t at = 0;
    do {
        REQUIRE_OK(backlite_value_reader_read(r, got + at, BIG - at, &n, &err));
        at += n;
    } while (n > 0 && at < BIG);
    CHECK_EQ(at, BIG);
    CHECK(memcmp(got, v, BIG) == 0);
    REQUIRE_OK(backlite_value_reader_read(r, got, BIG, &n, &err));
    CHECK_EQ(n, 0);
    backlite_value_reader_free(r);
    free(got);
    free(v);
    backlite_storage_free(s);
}

static void writes_that_fail_fill_err(void) {
    backlite_storage *s = OPEN_SET(tmp_path("writes.db"), .max_size = 10);
    REQUIRE(s != NULL);
    backlite_entry bad[2] = {{(const uint8_t *)"a", 1, (const uint8_t *)"v", 1, NEVER},
                             {(const uint8_t *)"b", 1, (const uint8_t *)"v", 1, -7}};
    EXPECT(NP, backlite_storage_set(NULL, K("k"), K("v"), NEVER, E));
    EXPECT(NP, backlite_storage_set(s, K("k"), NULL, 1, NEVER, E));
    EXPECT(INVALID, backlite_storage_set(s, K("k"), K("v"), -7, E));
    EXPECT(BACKLITE_RESULT_TOO_LARGE, backlite_storage_set(s, K("k"), K("0123456789a"), NEVER, E));
    EXPECT(NP, backlite_storage_set_many(NULL, bad, 1, E));
    EXPECT(NP, backlite_storage_set_many(s, NULL, 1, E));
    EXPECT(INVALID, backlite_storage_set_many(s, bad, 2, E));
    EXPECT(INVALID, backlite_storage_set_many(s, bad, SIZE_MAX, E));
    EXPECT(NP, backlite_storage_delete(NULL, K("k"), E));
    EXPECT(MISS, backlite_storage_delete(s, K("absent"), E));
    EXPECT(NP, backlite_storage_contains(NULL, K("k"), E));
    EXPECT(MISS, backlite_storage_contains(s, K("absent"), E));
    EXPECT(NP, backlite_storage_keys(NULL, visit_all, NULL, E));
    EXPECT(NP, backlite_storage_keys(s, NULL, NULL, E));
    EXPECT(NP, backlite_storage_clear(NULL, E));
    EXPECT(NP, backlite_storage_vacuum(NULL, E));
    EXPECT(NP, backlite_storage_zero_stats(NULL, E));
    CHECK_EQ(STATS(s).count, 0); /* none of them wrote anything */
    backlite_storage_free(s);
}

static void counters_and_reports_are_written_only_on_ok(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    backlite_stats st;
    backlite_lifetime_stats life;
    backlite_remote_stats remote;
    backlite_check_report report;
    FILL(st);
    FILL(life);
    FILL(remote);
    FILL(report);
    EXPECT(NP, backlite_storage_stats(NULL, &st, E));
    EXPECT(NP, backlite_storage_stats(s, NULL, E));
    EXPECT(NP, backlite_storage_lifetime_stats(NULL, &life, E));
    EXPECT(NP, backlite_storage_lifetime_stats(s, NULL, E));
    EXPECT(NP, backlite_storage_remote_stats(NULL, &remote, E));
    EXPECT(NP, backlite_storage_remote_stats(s, NULL, E));
    EXPECT(NP, backlite_storage_check(NULL, 0, &report, E));
    EXPECT(NP, backlite_storage_check(s, 1, NULL, E));
    UNTOUCHED(st);
    UNTOUCHED(life);
    UNTOUCHED(remote);
    UNTOUCHED(report);
    backlite_storage_free(s);
}

static void a_cached_call_that_fails_writes_no_value(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    backlite_buf b;
    FILL(b);
    backlite_barrier refuses = {NULL, lock_fails, unlock_nothing};
    backlite_barrier no_unlock = {NULL, lock_fails, NULL};
    EXPECT(NP, backlite_cached_call(NULL, K("k"), compute_ok, NULL, NULL, NEVER, &b, E));
    EXPECT(NP, backlite_cached_call(s, NULL, 1, compute_ok, NULL, NULL, NEVER, &b, E));
    EXPECT(NP, backlite_cached_call(s, K("k"), NULL, NULL, NULL, NEVER, &b, E));
    EXPECT(NP, backlite_cached_call(s, K("k"), compute_ok, NULL, NULL, NEVER, NULL, E));
    EXPECT(NP, backlite_cached_call(s, K("k"), compute_ok, NULL, &no_unlock, NEVER, &b, E));
    EXPECT(INVALID, backlite_cached_call(s, K("k"), compute_ok, NULL, NULL, -7, &b, E));
    EXPECT(BACKLITE_RESULT_CALLBACK_FAILED,
           backlite_cached_call(s, K("k"), compute_fails, NULL, NULL, NEVER, &b, E));
    EXPECT(BACKLITE_RESULT_CALLBACK_FAILED,
           backlite_cached_call(s, K("k"), compute_ok, NULL, &refuses, NEVER, &b, E));

    EXPECT(NP, backlite_cached_call_exclusive(NULL, K("k"), compute_ok, NULL, NEVER, 0, &b, E));
    EXPECT(NP, backlite_cached_call_exclusive(s, K("k"), NULL, NULL, NEVER, 0, &b, E));
    EXPECT(NP, backlite_cached_call_exclusive(s, K("k"), compute_ok, NULL, NEVER, 0, NULL, E));
    EXPECT(INVALID, backlite_cached_call_exclusive(s, K("k"), compute_ok, NULL, -7, 0, &b, E));
    EXPECT(INVALID, backlite_cached_call_exclusive(s, K("k"), compute_ok, NULL, NEVER, -1, &b, E));
    EXPECT(BACKLITE_RESULT_CALLBACK_FAILED,
           backlite_cached_call_exclusive(s, K("k"), compute_fails, NULL, NEVER, 0, &b, E));
    /* another owner holds the key's lease: LEASE_HELD, with its error object */
    backlite_lease *held = NULL;
    backlite_buf v = {NULL, 0};
    REQUIRE_RC(backlite_lease_try_acquire(s, K("k"), 60000, &v, &held, &err), MISS);
    REQUIRE(held != NULL);
    EXPECT(BACKLITE_RESULT_LEASE_HELD,
           backlite_cached_call_exclusive(s, K("k"), compute_ok, NULL, NEVER, 0, &b, E));
    backlite_lease_abandon(held);
    UNTOUCHED(b);
    CHECK(!HAS(s, "k")); /* nothing was stored */
    backlite_storage_free(s);
}

typedef backlite_result (*acquire_fn)(backlite_storage *, const uint8_t *, size_t, backlite_buf *,
                                      backlite_lease **, backlite_error **);

static backlite_result try_acquire(backlite_storage *s, const uint8_t *k, size_t kl, backlite_buf *v,
                                   backlite_lease **l, backlite_error **e) {
    return backlite_lease_try_acquire(s, k, kl, 60000, v, l, e);
}

static backlite_result step(backlite_storage *s, const uint8_t *k, size_t kl, backlite_buf *v,
                            backlite_lease **l, backlite_error **e) {
    return backlite_lease_step(s, k, kl, 0, v, l, e);
}

/* NOT_FOUND hands over a lease (the answer to that miss) and nothing else; LEASE_HELD
 * and every failure write nothing; OK (a hit) writes the value and no lease. */
static void lease_calls_write_only_what_their_result_gives(void) {
    const acquire_fn fns[] = {try_acquire, step};
    for (int i = 0; i < 2; i++) {
        acquire_fn acquire = fns[i];
        backlite_storage *s = OPEN(":memory:", NULL);
        REQUIRE(s != NULL);
        backlite_buf b;
        backlite_lease *l;
        FILL(b);
        FILL(l);
        EXPECT(NP, acquire(NULL, K("k"), &b, &l, E));
        EXPECT(NP, acquire(s, NULL, 1, &b, &l, E));
        EXPECT(NP, acquire(s, K("k"), NULL, &l, E));
        EXPECT(NP, acquire(s, K("k"), &b, NULL, E));
        UNTOUCHED(b);
        UNTOUCHED(l);

        EXPECT_ONCE(MISS, acquire(s, K("k"), &b, &l, E));
        UNTOUCHED(b);
        backlite_lease *mine = l;
        REQUIRE(mine != NULL);
        FILL(l);
        EXPECT(BACKLITE_RESULT_LEASE_HELD, acquire(s, K("k"), &b, &l, E));
        UNTOUCHED(b);
        UNTOUCHED(l);
        REQUIRE_OK(backlite_lease_fulfill(mine, K("v"), NEVER, &err));
        EXPECT_ONCE(BACKLITE_RESULT_OK, acquire(s, K("k"), &b, &l, E));
        UNTOUCHED(l);
        CHECK_BUF_STR(b, "v");
        backlite_buf_free(&b);
        backlite_storage_free(s);
    }

    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    backlite_buf b;
    backlite_lease *l;
    FILL(b);
    FILL(l);
    EXPECT(INVALID, backlite_lease_try_acquire(s, K("k"), 0, &b, &l, E));
    UNTOUCHED(b);
    UNTOUCHED(l);
    backlite_lease *mine = NULL;
    backlite_buf v = {NULL, 0};
    REQUIRE_RC(backlite_lease_try_acquire(s, K("k"), 60000, &v, &mine, &err), MISS);
    REQUIRE(mine != NULL);
    EXPECT(NP, backlite_lease_extend(NULL, 1000, E));
    EXPECT(INVALID, backlite_lease_extend(mine, 0, E));
    EXPECT(NP, backlite_lease_fulfill(NULL, K("v"), NEVER, E));
    /* fulfil frees the lease whatever its result: once */
    EXPECT_ONCE(INVALID, backlite_lease_fulfill(mine, K("v"), -7, E));
    CHECK(!HAS(s, "k"));
    backlite_storage_free(s);
}

/* Setters have no err: a refused value gives its code and changes nothing. */
static void a_refused_option_changes_nothing(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_max_size(o, 1000), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_max_size(o, 0), INVALID);
    CHECK_RESULT(backlite_options_set_max_size(o, (uint64_t)INT64_MAX + 1), INVALID);
    CHECK_RESULT(backlite_options_set_eviction_policy(o, 5), INVALID);
    CHECK_RESULT(backlite_options_set_eviction_policy(o, -1), INVALID);
    CHECK_RESULT(backlite_options_set_eviction_policy_name(o, "lru"), INVALID);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, BACKLITE_EXPIRATION_DEFAULT), INVALID);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, -3), INVALID);
    CHECK_RESULT(backlite_options_set_file_threshold(o, 0), INVALID);
    CHECK_RESULT(backlite_options_set_file_threshold(o, -2), INVALID);
    CHECK_RESULT(backlite_options_set_lease_ms(o, 0), INVALID);
    CHECK_RESULT(backlite_options_set_remote(o, "http://localhost:6379"), INVALID);
    CHECK_RESULT(backlite_options_set_remote_namespace(o, ""), INVALID);
    CHECK_RESULT(backlite_options_set_remote_timeout_ms(o, 0), INVALID);
    CHECK_RESULT(backlite_options_set_remote_mode(o, 3), INVALID);
    CHECK_RESULT(backlite_options_set_remote_mode(o, -1), INVALID);
    CHECK_RESULT(backlite_options_set_eviction_policy_name(o, NULL), NP);
    CHECK_RESULT(backlite_options_set_version_tag(o, NULL), NP);
    CHECK_RESULT(backlite_options_set_remote_namespace(o, NULL), NP);
    CHECK_RESULT(backlite_options_set_file_threshold(NULL, 1), NP);
    CHECK_RESULT(backlite_options_set_lease_ms(NULL, 1), NP);
    CHECK_RESULT(backlite_options_set_remote(NULL, NULL), NP);
    CHECK_RESULT(backlite_options_set_remote_timeout_ms(NULL, 1), NP);
    CHECK_RESULT(backlite_options_set_remote_mode(NULL, 0), NP);
    backlite_storage *s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).max_size, 1000);
    /* still least-recently-used, never expiring, no remote: set and read back */
    SET(s, "k", "v");
    GET_EQ(s, "k", "v");
    backlite_remote_stats remote;
    FILL(remote);
    CHECK_OK(backlite_storage_remote_stats(s, &remote, &err));
    CHECK_EQ(remote.connected, 0);
    CHECK_EQ(remote.hits + remote.misses + remote.writes + remote.errors + remote.skipped, 0);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(open_writes_no_storage_unless_it_opens);
    RUN(get_writes_nothing_on_a_miss_or_a_failure);
    RUN(get_chunks_writes_no_time_left_unless_it_ends_whole);
    RUN(open_reader_writes_nothing_on_a_miss_or_a_failure);
    RUN(a_damaged_value_leaves_the_buffer_of_its_last_read_untouched);
    RUN(a_damaged_blob_leaves_the_buffer_of_its_last_read_untouched);
    RUN(a_read_refused_writes_nothing);
    RUN(writes_that_fail_fill_err);
    RUN(counters_and_reports_are_written_only_on_ok);
    RUN(a_cached_call_that_fails_writes_no_value);
    RUN(lease_calls_write_only_what_their_result_gives);
    RUN(a_refused_option_changes_nothing);
    return h_end();
}
