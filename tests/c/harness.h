/*
 * harness.h: the small shared helper of BackLite's C tests.
 *
 * Header-only (static inline functions) so that each tests/c/test_<area>.c is one
 * standalone C11 program with main(): no extra .c file to compile or link.
 *
 * A test program looks like:
 *
 *     static void lru_evicts_the_oldest_access(void) { ... CHECK(...); ... }
 *     int main(void) {
 *         h_begin();
 *         RUN(lru_evicts_the_oldest_access);
 *         return h_end();
 *     }
 *
 * RUN prints "ok - name" or "not ok - name" (or "ok - name # SKIP why") on stdout, one
 * line per case, and after a case of a second or more "# name: W s, C s of CPU" (its
 * wall and CPU time: a loaded machine shows as W far above C); failed checks print
 * "file:line: message" on stderr. h_end() removes
 * the temporary directory and returns the exit status: 0 when every check passed.
 *
 * Checks of backlite calls:
 *
 *     CHECK_RC(backlite_storage_get(s, K("a"), &buf, NULL, &err), BACKLITE_RESULT_OK);
 *
 * CHECK_RC declares its own `backlite_error *err = NULL` around the call, so the call
 * writes `&err`. Besides comparing the result with the expected one, it checks the
 * error contract of API.md on every call: on success and on NOT_FOUND (a miss is an
 * answer, not a failure) `*err` is left untouched (still NULL); on any other failure
 * `*err` is a non-NULL error object whose backlite_error_result() is the returned code
 * and whose message is non-empty. The error is then freed.
 *
 * Environment:
 *   TMPDIR                   where the temporary directory is made (default /tmp)
 *   BACKLITE_TEST_KEEP_TMP   when set, the temporary directory is kept (path printed)
 *   BACKLITE_TEST_TIMEOUT    seconds before a hung program is killed by SIGALRM (300)
 */
#ifndef BACKLITE_TEST_HARNESS_H
#define BACKLITE_TEST_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backlite.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define NEVER BACKLITE_EXPIRATION_NEVER

/* -------------------------------------------- under a sanitizer, valgrind */

/* 1 in the asan_ build of a test (gcc's __SANITIZE_ADDRESS__, clang's feature) */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* true in the memcheck_ run: valgrind's client request where its header is installed,
 * and its preloaded library in any case */
static inline bool h_under_valgrind(void) {
    if (RUNNING_ON_VALGRIND) return true;
    const char *p = getenv("LD_PRELOAD");
    return p != NULL && strstr(p, "vgpreload") != NULL;
}

/* Ends a forked child with `code`; under valgrind through exec, so that what the child
 * inherited from the parent (its handles, its threads' memory) is not reported as the
 * child's leaks. */
__attribute__((noreturn)) static inline void h_child_exit(int code) {
    if (h_under_valgrind()) execl(code == 0 ? "/bin/true" : "/bin/false", "child", (char *)NULL);
    _exit(code);
}

/* ------------------------------------------------------------------ state */

typedef struct h_state {
    atomic_int failures;      /* failed checks in the whole program */
    int case_index;           /* number of the current case, from 1 */
    int case_skipped;         /* the current case called SKIP */
    char skip_reason[256];
    int cases_failed;
    int cases_run;
    char root[PATH_MAX];      /* the program's temporary directory, "" until made */
    char paths[16][PATH_MAX]; /* ring of tmp_path() results */
    unsigned next_path;
} h_state;

static inline h_state *h_st(void) {
    static h_state st;
    return &st;
}

/* ------------------------------------------------------------- reporting */

__attribute__((format(printf, 3, 4))) static inline void h_fail_(const char *file, int line,
                                                                 const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s:%d: %s\n", file, line, msg);
    atomic_fetch_add(&h_st()->failures, 1);
}

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) h_fail_(__FILE__, __LINE__, "CHECK(%s) failed", #cond);          \
    } while (0)

/* like CHECK, but ends the current (void) test function on failure */
#define REQUIRE(cond)                                                                 \
    do {                                                                              \
        if (!(cond)) {                                                                \
            h_fail_(__FILE__, __LINE__, "REQUIRE(%s) failed", #cond);                 \
            return;                                                                   \
        }                                                                             \
    } while (0)

/* integers: both sides are compared as long long (all values in the tests fit) */
#define CHECK_EQ(a, b)                                                                \
    do {                                                                              \
        long long h_a_ = (long long)(a), h_b_ = (long long)(b);                       \
        if (h_a_ != h_b_)                                                             \
            h_fail_(__FILE__, __LINE__, "CHECK_EQ(%s, %s) failed: %lld != %lld", #a, #b, \
                    h_a_, h_b_);                                                      \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                            \
    do {                                                                              \
        const char *h_a_ = (a), *h_b_ = (b);                                          \
        if (h_a_ == NULL || h_b_ == NULL || strcmp(h_a_, h_b_) != 0)                  \
            h_fail_(__FILE__, __LINE__, "CHECK_STR_EQ(%s, %s) failed: \"%s\" != \"%s\"", \
                    #a, #b, h_a_ ? h_a_ : "(null)", h_b_ ? h_b_ : "(null)");          \
    } while (0)

static inline const char *h_rc_name(backlite_result rc) {
    switch (rc) {
    case BACKLITE_RESULT_OK: return "OK";
    case BACKLITE_RESULT_NOT_FOUND: return "NOT_FOUND";
    case BACKLITE_RESULT_NULL_PARAMETER: return "NULL_PARAMETER";
    case BACKLITE_RESULT_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case BACKLITE_RESULT_IO: return "IO";
    case BACKLITE_RESULT_NOT_A_CACHE: return "NOT_A_CACHE";
    case BACKLITE_RESULT_CORRUPT: return "CORRUPT";
    case BACKLITE_RESULT_BUSY: return "BUSY";
    case BACKLITE_RESULT_TOO_LARGE: return "TOO_LARGE";
    case BACKLITE_RESULT_CALLBACK_FAILED: return "CALLBACK_FAILED";
    case BACKLITE_RESULT_INCOMPATIBLE: return "INCOMPATIBLE";
    case BACKLITE_RESULT_PANIC: return "PANIC";
    case BACKLITE_RESULT_INTERNAL: return "INTERNAL";
    case BACKLITE_RESULT_LEASE_LOST: return "LEASE_LOST";
    case BACKLITE_RESULT_LEASE_HELD: return "LEASE_HELD";
    default: return "?";
    }
}

/*
 * Checks one result against the expected one and the error object against the error
 * contract. Returns true when rc == expected (whatever the error checks said).
 */
static inline bool h_check_rc_(const char *file, int line, const char *what, backlite_result rc,
                               backlite_result expected, const backlite_error *err) {
    const char *msg = NULL;
    if (err != NULL) msg = backlite_error_message(err);
    if (rc != expected) {
        h_fail_(file, line, "%s: expected %s (%d), got %s (%d)%s%s", what, h_rc_name(expected),
                (int)expected, h_rc_name(rc), (int)rc, msg ? ": " : "", msg ? msg : "");
    }
    if (rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_NOT_FOUND) {
        if (err != NULL)
            h_fail_(file, line, "%s: returned %s but wrote an error object (\"%s\")", what,
                    h_rc_name(rc), msg ? msg : "(null)");
    } else {
        if (err == NULL) {
            h_fail_(file, line, "%s: returned %s (%d) without an error object", what,
                    h_rc_name(rc), (int)rc);
        } else {
            backlite_result er = backlite_error_result(err);
            if (er != rc)
                h_fail_(file, line, "%s: returned %s (%d) but backlite_error_result says %s (%d)",
                        what, h_rc_name(rc), (int)rc, h_rc_name(er), (int)er);
            if (msg == NULL || msg[0] == '\0')
                h_fail_(file, line, "%s: error object of %s has an empty message", what,
                        h_rc_name(rc));
        }
    }
    return rc == expected;
}

/* `call` must pass `&err` (the macro's own variable) as its error argument */
#define CHECK_RC(call, expected)                                                      \
    do {                                                                              \
        backlite_error *err = NULL;                                                   \
        backlite_result h_rc_ = (call);                                               \
        h_check_rc_(__FILE__, __LINE__, #call, h_rc_, (expected), err);               \
        backlite_error_free(err);                                                     \
    } while (0)

#define CHECK_OK(call) CHECK_RC(call, BACKLITE_RESULT_OK)

/* like CHECK_RC, but ends the current (void) test function when rc != expected */
#define REQUIRE_RC(call, expected)                                                    \
    do {                                                                              \
        backlite_error *err = NULL;                                                   \
        backlite_result h_rc_ = (call);                                               \
        bool h_ok_ = h_check_rc_(__FILE__, __LINE__, #call, h_rc_, (expected), err);  \
        backlite_error_free(err);                                                     \
        if (!h_ok_) return;                                                           \
    } while (0)

#define REQUIRE_OK(call) REQUIRE_RC(call, BACKLITE_RESULT_OK)

/* for functions without an error argument (options setters, backlite_sink_write) */
#define CHECK_RESULT(call, expected)                                                  \
    do {                                                                              \
        backlite_result h_rc_ = (call), h_ex_ = (expected);                           \
        if (h_rc_ != h_ex_)                                                           \
            h_fail_(__FILE__, __LINE__, "%s: expected %s (%d), got %s (%d)", #call,   \
                    h_rc_name(h_ex_), (int)h_ex_, h_rc_name(h_rc_), (int)h_rc_);      \
    } while (0)

static inline void h_check_bytes_(const char *file, int line, const char *what, const uint8_t *got,
                                  size_t got_len, const void *want, size_t want_len) {
    if (got_len != want_len) {
        h_fail_(file, line, "%s: length %zu, expected %zu", what, got_len, want_len);
        return;
    }
    if (want_len > 0 && (got == NULL || memcmp(got, want, want_len) != 0))
        h_fail_(file, line, "%s: bytes differ from the expected %zu bytes", what, want_len);
}

/* a backlite_buf equals the given bytes */
#define CHECK_BUF(b_, want_, want_len_)                                               \
    h_check_bytes_(__FILE__, __LINE__, #b_, (b_).data, (b_).len, (want_), (want_len_))
#define CHECK_BUF_STR(b_, str_) CHECK_BUF(b_, str_, strlen(str_))

/* ------------------------------------------------------------ test cases */

#define RUN(fn) h_run_(#fn, fn)

/* marks the current case skipped and leaves it (only in the test function itself) */
#define SKIP(reason)                                                                  \
    do {                                                                              \
        h_skip_(reason);                                                              \
        return;                                                                       \
    } while (0)

static inline void h_skip_(const char *reason) {
    h_st()->case_skipped = 1;
    snprintf(h_st()->skip_reason, sizeof h_st()->skip_reason, "%s", reason);
}

static inline void h_begin(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *t = getenv("BACKLITE_TEST_TIMEOUT");
    unsigned secs = t && atoi(t) > 0 ? (unsigned)atoi(t) : 300;
    alarm(secs); /* a deadlock ends the program (SIGALRM) instead of hanging the suite */
}

static inline int64_t h_now_ms(void);

static inline void h_run_(const char *name, void (*fn)(void)) {
    h_state *st = h_st();
    int before = atomic_load(&st->failures);
    st->case_index++;
    st->case_skipped = 0;
    st->skip_reason[0] = '\0';
    int64_t started = h_now_ms();
    clock_t cpu = clock();
    fn();
    double secs = (double)(h_now_ms() - started) / 1000.0, cpu_secs = (double)(clock() - cpu) / CLOCKS_PER_SEC;
    st->cases_run++;
    if (atomic_load(&st->failures) != before) {
        st->cases_failed++;
        printf("not ok - %s\n", name);
    } else if (st->case_skipped) {
        printf("ok - %s # SKIP %s\n", name, st->skip_reason);
    } else {
        printf("ok - %s\n", name);
    }
    /* a slow case says whether it waited (load: wall time far above CPU time) or worked */
    if (secs >= 1.0) printf("# %s: %.1f s, %.1f s of CPU\n", name, secs, cpu_secs);
}

static inline int h_rm_one_(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0) fprintf(stderr, "warning: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

/* removes a file or a whole directory tree (no error when it does not exist) */
static inline void h_rm_rf(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    nftw(path, h_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
}

/* removes the temporary directory; returns the program's exit status */
static inline int h_end(void) {
    h_state *st = h_st();
    if (st->root[0] != '\0') {
        if (getenv("BACKLITE_TEST_KEEP_TMP"))
            fprintf(stderr, "# temporary files kept in %s\n", st->root);
        else
            h_rm_rf(st->root);
    }
    int failures = atomic_load(&st->failures);
    printf("# %d case(s), %d failed, %d failed check(s)\n", st->cases_run, st->cases_failed,
           failures);
    return failures == 0 ? 0 : 1;
}

/* ------------------------------------------------------------- temp files */

/* the program's fresh temporary directory, made on first use under $TMPDIR or /tmp */
static inline const char *h_tmp_root(void) {
    h_state *st = h_st();
    if (st->root[0] == '\0') {
        const char *base = getenv("TMPDIR");
        if (base == NULL || base[0] == '\0') base = "/tmp";
        if (snprintf(st->root, sizeof st->root, "%s/backlite-ctest-XXXXXX", base) >= (int)sizeof st->root ||
            mkdtemp(st->root) == NULL) {
            fprintf(stderr, "fatal: mkdtemp(%s): %s\n", st->root, strerror(errno));
            exit(2);
        }
    }
    return st->root;
}

/*
 * A path for `name` in the temporary directory, fresh for the current case (the case
 * number is part of the name). Nothing is created. The result stays valid for the
 * next 15 calls (ring of static buffers): copy it to keep it longer.
 */
static inline const char *tmp_path(const char *name) {
    h_state *st = h_st();
    const char *root = h_tmp_root();
    char *p = st->paths[st->next_path++ % 16];
    if (snprintf(p, PATH_MAX, "%s/%02d-%s", root, st->case_index, name) >= PATH_MAX) {
        fprintf(stderr, "fatal: temporary path too long for %s\n", name);
        exit(2);
    }
    return p;
}

static inline bool h_exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static inline bool h_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) return false;
    bool ok = len == 0 || fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* reads a whole file into a malloc'd buffer (free it); NULL when it cannot be read */
static inline uint8_t *h_read_file(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (nb == NULL) { free(buf); fclose(f); return NULL; }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    fclose(f);
    *len_out = len;
    return buf;
}

/* --------------------------------------------------------- time, random */

static inline int64_t h_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* only for expiry tests: never to order events */
static inline void h_sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* n bytes (malloc'd, free them) that differ with `seed` and from one 512-byte stretch
 * to the next (a period of 128 KiB, not 256 bytes), so that bytes out of place or from
 * another value show */
static inline uint8_t *h_pattern(size_t n, unsigned seed) {
    uint8_t *v = malloc(n ? n : 1);
    if (v == NULL) abort();
    for (size_t i = 0; i < n; i++) v[i] = (uint8_t)((i * 131u + seed) ^ (i >> 9));
    return v;
}

/* deterministic PRNG (splitmix64) so that failures reproduce */
static inline uint64_t h_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t h_rand_below(uint64_t *state, uint64_t n) { return h_rand(state) % n; }

/* ------------------------------------------------------- backlite helpers */

/* a string key or value as the (ptr, len) pair of the API */
#define K(s) (const uint8_t *)(s), strlen(s)

static inline backlite_storage *h_open_(const char *file, int line, const char *path,
                                        const backlite_options *o) {
    backlite_storage *s = NULL;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_open(path, o, &s, &err);
    h_check_rc_(file, line, "backlite_storage_open", rc, BACKLITE_RESULT_OK, err);
    backlite_error_free(err);
    if (rc == BACKLITE_RESULT_OK && s == NULL) h_fail_(file, line, "open returned OK and a NULL storage");
    return rc == BACKLITE_RESULT_OK ? s : NULL;
}
/* opens a storage, checking that it opened; NULL on failure */
#define OPEN(path, options) h_open_(__FILE__, __LINE__, (path), (options))

/*
 * The options a test sets, by name; a field left 0 (NULL) keeps the library's default
 * (max_size 1 GiB, least-recently-used, file threshold 64 KiB, busy timeout 5000 ms, no
 * version tag). 0 is no valid max_size or threshold; a test that wants a busy timeout
 * of 0 sets it on its own options.
 */
typedef struct h_settings {
    uint64_t max_size;
    backlite_eviction_policy policy;
    int64_t file_threshold;   /* BACKLITE_FILE_THRESHOLD_NEVER: every value in the database */
    uint32_t busy_timeout_ms;
    const char *version_tag;  /* "" is a tag like any other */
} h_settings;

static inline backlite_options *h_settings_options_(const char *file, int line, h_settings set) {
    backlite_options *o = backlite_options_new();
    if (o == NULL) {
        h_fail_(file, line, "backlite_options_new() returned NULL");
        return NULL;
    }
    backlite_result rc;
    if (set.max_size != 0 && (rc = backlite_options_set_max_size(o, set.max_size)) != BACKLITE_RESULT_OK)
        h_fail_(file, line, "set_max_size(%" PRIu64 "): %s", set.max_size, h_rc_name(rc));
    if ((rc = backlite_options_set_eviction_policy(o, set.policy)) != BACKLITE_RESULT_OK)
        h_fail_(file, line, "set_eviction_policy(%d): %s", (int)set.policy, h_rc_name(rc));
    if (set.file_threshold != 0 &&
        (rc = backlite_options_set_file_threshold(o, set.file_threshold)) != BACKLITE_RESULT_OK)
        h_fail_(file, line, "set_file_threshold(%" PRId64 "): %s", set.file_threshold, h_rc_name(rc));
    if (set.busy_timeout_ms != 0 &&
        (rc = backlite_options_set_busy_timeout_ms(o, set.busy_timeout_ms)) != BACKLITE_RESULT_OK)
        h_fail_(file, line, "set_busy_timeout_ms(%u): %s", (unsigned)set.busy_timeout_ms, h_rc_name(rc));
    if (set.version_tag != NULL &&
        (rc = backlite_options_set_version_tag(o, set.version_tag)) != BACKLITE_RESULT_OK)
        h_fail_(file, line, "set_version_tag(\"%s\"): %s", set.version_tag, h_rc_name(rc));
    return o;
}
/* new options with the named settings (free with backlite_options_free):
 *     backlite_options *o = OPTIONS_SET(.max_size = 1u << 30, .file_threshold = 4096); */
#define OPTIONS_SET(...) h_settings_options_(__FILE__, __LINE__, (h_settings){__VA_ARGS__})
/* new options with max_size and policy set (free with backlite_options_free) */
#define OPTIONS(max_size_, policy_) OPTIONS_SET(.max_size = (max_size_), .policy = (policy_))

static inline backlite_storage *h_open_set_(const char *file, int line, const char *path,
                                            h_settings set) {
    backlite_options *o = h_settings_options_(file, line, set);
    backlite_storage *s = o != NULL ? h_open_(file, line, path, o) : NULL;
    backlite_options_free(o);
    return s;
}
/* opens `path` with the named settings, checking that it opened; NULL on failure:
 *     backlite_storage *s = OPEN_SET(path, .file_threshold = 4096, .busy_timeout_ms = 60000); */
#define OPEN_SET(path, ...) h_open_set_(__FILE__, __LINE__, (path), (h_settings){__VA_ARGS__})

/* opens `path` with a new options object of (max_size, policy); frees the options */
#define OPEN_WITH(path, max_size_, policy_) OPEN_SET(path, .max_size = (max_size_), .policy = (policy_))

static inline backlite_stats h_stats_(const char *file, int line, backlite_storage *s) {
    backlite_stats st;
    memset(&st, 0, sizeof st);
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_stats(s, &st, &err);
    h_check_rc_(file, line, "backlite_storage_stats", rc, BACKLITE_RESULT_OK, err);
    backlite_error_free(err);
    return st;
}
#define STATS(s) h_stats_(__FILE__, __LINE__, (s))

static inline backlite_lifetime_stats h_lifetime_(const char *file, int line, backlite_storage *s) {
    backlite_lifetime_stats st;
    memset(&st, 0, sizeof st);
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_lifetime_stats(s, &st, &err);
    h_check_rc_(file, line, "backlite_storage_lifetime_stats", rc, BACKLITE_RESULT_OK, err);
    backlite_error_free(err);
    return st;
}
/* the file's lifetime counters, checking OK */
#define LIFETIME(s) h_lifetime_(__FILE__, __LINE__, (s))

/* checks that two backlite_stats agree in every field but max_size */
#define SAME_STATS(a, b)                                                                            \
    do {                                                                                            \
        CHECK_EQ((a).count, (b).count);                                                             \
        CHECK_EQ((a).total_size, (b).total_size);                                                   \
        CHECK_EQ((a).hits, (b).hits);                                                               \
        CHECK_EQ((a).misses, (b).misses);                                                           \
        CHECK_EQ((a).evictions, (b).evictions);                                                     \
        CHECK_EQ((a).expirations, (b).expirations);                                                 \
    } while (0)

static inline void h_set_(const char *file, int line, backlite_storage *s, const char *key,
                          const void *value, size_t value_len, int64_t expiration_ms) {
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_set(s, (const uint8_t *)key, strlen(key),
                                              (const uint8_t *)value, value_len, expiration_ms, &err);
    char what[300];
    snprintf(what, sizeof what, "set(\"%.200s\")", key);
    h_check_rc_(file, line, what, rc, BACKLITE_RESULT_OK, err);
    backlite_error_free(err);
}
/* sets string key -> string value, never expiring, checking OK */
#define SET(s, key, value) h_set_(__FILE__, __LINE__, (s), (key), (value), strlen(value), BACKLITE_EXPIRATION_NEVER)
#define SET_EXP(s, key, value, ms) h_set_(__FILE__, __LINE__, (s), (key), (value), strlen(value), (ms))

/* sets string key -> the n bytes at v, with that expiration, checking OK */
#define SET_BYTES(s, key, v, n, ms) h_set_(__FILE__, __LINE__, (s), (key), (v), (n), (ms))

/* a value of n bytes (n <= 4096): the first letter of the key, repeated */
static inline void h_set_n_(const char *file, int line, backlite_storage *s, const char *key, size_t n) {
    static uint8_t v[4096];
    if (n > sizeof v) n = sizeof v;
    memset(v, key[0] ? key[0] : '-', n);
    h_set_(file, line, s, key, v, n, BACKLITE_EXPIRATION_NEVER);
}
#define SET_N(s, key, n) h_set_n_(__FILE__, __LINE__, (s), (key), (n))

/* true when the key is live (contains is not an access); checks OK or NOT_FOUND */
static inline bool h_has_(const char *file, int line, backlite_storage *s, const void *key, size_t key_len) {
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_contains(s, (const uint8_t *)key, key_len, &err);
    if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND)
        h_check_rc_(file, line, "contains", rc, BACKLITE_RESULT_OK, err);
    else
        h_check_rc_(file, line, "contains", rc, rc, err);
    backlite_error_free(err);
    return rc == BACKLITE_RESULT_OK;
}
#define HAS(s, key) h_has_(__FILE__, __LINE__, (s), (key), strlen(key))

static inline void h_get_eq_(const char *file, int line, backlite_storage *s, const char *key,
                             const void *want, size_t want_len) {
    backlite_buf buf = {NULL, 0};
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_get(s, (const uint8_t *)key, strlen(key), &buf, NULL, &err);
    char what[300];
    snprintf(what, sizeof what, "get(\"%.200s\")", key);
    if (h_check_rc_(file, line, what, rc, BACKLITE_RESULT_OK, err))
        h_check_bytes_(file, line, what, buf.data, buf.len, want, want_len);
    backlite_error_free(err);
    backlite_buf_free(&buf);
}
/* get(key) returns OK and exactly the string value */
#define GET_EQ(s, key, value) h_get_eq_(__FILE__, __LINE__, (s), (key), (value), strlen(value))
/* get(key) returns OK and exactly the n bytes at v */
#define GET_BYTES_EQ(s, key, v, n) h_get_eq_(__FILE__, __LINE__, (s), (key), (v), (n))

static inline void h_get_missing_(const char *file, int line, backlite_storage *s, const char *key) {
    uint8_t sentinel_byte = 0;
    backlite_buf buf = {&sentinel_byte, 12345};
    int64_t left = 777;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_get(s, (const uint8_t *)key, strlen(key), &buf, &left, &err);
    char what[300];
    snprintf(what, sizeof what, "get(\"%.200s\")", key);
    h_check_rc_(file, line, what, rc, BACKLITE_RESULT_NOT_FOUND, err);
    backlite_error_free(err);
    if (rc == BACKLITE_RESULT_OK) {
        backlite_buf_free(&buf);
    } else if (buf.data != &sentinel_byte || buf.len != 12345 || left != 777) {
        h_fail_(file, line, "%s: out-parameters written although the call failed", what);
    }
}
/* get(key) returns NOT_FOUND and leaves its out-parameters untouched */
#define GET_MISSING(s, key) h_get_missing_(__FILE__, __LINE__, (s), (key))

/* removes a cache file and the -wal and -shm SQLite keeps beside it (not its folder of
 * values): rm of the cache behind its handles' back; false if the file was not there */
static inline bool remove_cache_file(const char *path) {
    char side[PATH_MAX + 8];
    bool removed = unlink(path) == 0;
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return removed;
}

/* ------------------------------------------------------------- children */

/* waits for the child `pid`; its exit code, or -1 when it did not exit (a signal) */
static inline int h_exit_code_(const char *file, int line, pid_t pid) {
    int status = 0;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    if (got != pid) {
        h_fail_(file, line, "waitpid(%d): %s", (int)pid, strerror(errno));
        return -1;
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "%s:%d: # child %d died of signal %d\n", file, line, (int)pid, WTERMSIG(status));
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
#define CHILD_EXIT_CODE(pid) h_exit_code_(__FILE__, __LINE__, (pid))

/* kills the child `pid` (SIGKILL) wherever it is; true when it died of that signal */
static inline bool h_kill_child_(const char *file, int line, pid_t pid) {
    kill(pid, SIGKILL);
    int status = 0;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    if (got != pid) {
        h_fail_(file, line, "waitpid(%d): %s", (int)pid, strerror(errno));
        return false;
    }
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}
#define KILL_CHILD(pid) h_kill_child_(__FILE__, __LINE__, (pid))

/* python3 with its sqlite3 module, used to make or edit SQLite files of other programs */
static inline bool h_have_python_sqlite(void) {
    return system("python3 -c 'import sqlite3' >/dev/null 2>&1") == 0;
}

/* Runs the SQL script `sql` on the cache file at `path` (closed, or not written to
 * meanwhile) through python3's sqlite3: another program's SQLite, as damage or a foreign
 * writer is. The path and the script go to python3 as arguments, with no shell between,
 * so no quoting can break them. True when python3 ran it. */
static inline bool h_python_sqlite(const char *path, const char *sql) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        execlp("python3", "python3", "-c",
               "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); "
               "c.close()",
               path, sql, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return false;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Overwrites every value kept in `blobs` of the closed cache at `path` with zeros of the
 * same length (a value damaged inside the database), through python3's sqlite3. */
static inline bool h_zero_blobs(const char *path) {
    char cmd[PATH_MAX + 300];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
             "c.execute(\"update blobs set value = zeroblob(length(value))\"); c.commit(); "
             "c.close()' '%s'",
             path);
    return system(cmd) == 0;
}

#endif /* BACKLITE_TEST_HARNESS_H */
