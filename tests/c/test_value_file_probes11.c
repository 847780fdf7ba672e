/*
 * Values kept in files (issue 16), eleventh probe round: two handles of one process,
 * of other thresholds, and two processes, setting, deleting and clearing one key while
 * readers of its earlier values are open (a reader reads the version it opened, whole,
 * never a byte of another; the handle that opened it may be closed and opened again
 * with another threshold meanwhile); reads into buffers larger than what is left
 * write only the bytes they return; a size limit filled by values in files alone
 * evicts whole values with their files while readers of them are open; values at the
 * threshold and one byte either side, overwritten through handles opened with the
 * threshold moved by one byte, with readers of the older ones open.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <sys/wait.h>

#define THRESHOLD 4096

/* Byte `i` of h_pattern(n, seed), whatever n: a reader's bytes checked as they come. */
static uint8_t pattern_byte(unsigned seed, size_t i) { return (uint8_t)((i * 131u + seed) ^ (i >> 9)); }

/* The first byte at or after `at` of `got` (n bytes, from offset `at` of the value)
 * that is not h_pattern's of `seed`; SIZE_MAX when all are. */
static size_t first_wrong(unsigned seed, size_t at, const uint8_t *got, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (got[i] != pattern_byte(seed, at + i)) return at + i;
    return SIZE_MAX;
}

/* A reader of one version of a value, and how far it was read. */
typedef struct {
    backlite_value_reader *r;
    unsigned seed;
    size_t len, at;
    int handle; /* the handle that opened it (-1: that handle was closed since) */
} pull;

/* One read of `p` of at most `cap` bytes into a buffer larger than `cap` (its bytes past
 * what the read returns must stay as they were); true while the reader is not at its
 * end. */
static bool h_pull_some_(const char *file, int line, pull *p, size_t cap) {
    static uint8_t buf[(1u << 20) + 64];
    if (cap > (1u << 20)) cap = 1u << 20;
    memset(buf, 0xA5, cap + 64);
    size_t n = 777;
    backlite_error *e = NULL;
    backlite_result rc = backlite_value_reader_read(p->r, buf, cap, &n, &e);
    if (rc != BACKLITE_RESULT_OK) {
        h_fail_(file, line, "read of %zu at %zu of %zu (seed %u): %s %s", cap, p->at, p->len, p->seed,
                h_rc_name(rc), e ? backlite_error_message(e) : "");
        backlite_error_free(e);
        return false;
    }
    if (n > cap || p->at + n > p->len) {
        h_fail_(file, line, "read of %zu at %zu of %zu gave %zu bytes", cap, p->at, p->len, n);
        return false;
    }
    if (n == 0 && cap > 0 && p->at != p->len) {
        h_fail_(file, line, "read of %zu at %zu of %zu (seed %u) ended early", cap, p->at, p->len, p->seed);
        return false;
    }
    size_t wrong = first_wrong(p->seed, p->at, buf, n);
    if (wrong != SIZE_MAX) {
        h_fail_(file, line, "byte %zu of a %zu-byte value (seed %u) is another value's", wrong, p->len, p->seed);
        return false;
    }
    for (size_t i = n; i < cap + 64; i++) {
        if (buf[i] != 0xA5) {
            h_fail_(file, line, "a read of %zu bytes (cap %zu) wrote byte %zu of the buffer", n, cap, i);
            return false;
        }
    }
    p->at += n;
    return !(n == 0 && cap > 0);
}
#define PULL_SOME(p, cap) h_pull_some_(__FILE__, __LINE__, (p), (cap))

/* Reads `p` to its end in reads of `cap`, then frees it. */
static void h_pull_rest_(const char *file, int line, pull *p, size_t cap) {
    while (h_pull_some_(file, line, p, cap)) {
    }
    if (p->at != p->len) h_fail_(file, line, "read %zu bytes of %zu", p->at, p->len);
    backlite_value_reader_free(p->r);
    p->r = NULL;
}
#define PULL_REST(p, cap) h_pull_rest_(__FILE__, __LINE__, (p), (cap))

/* Opens a reader of `key`, which must hold h_pattern(len, seed). */
static bool h_pull_open_(const char *file, int line, backlite_storage *s, const char *key, unsigned seed,
                         size_t len, pull *out) {
    backlite_value_reader *r = NULL;
    uint64_t size = 0;
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_open_reader(s, K(key), &r, &size, NULL, &e);
    h_check_rc_(file, line, "open_reader", rc, BACKLITE_RESULT_OK, e);
    backlite_error_free(e);
    if (rc != BACKLITE_RESULT_OK) return false;
    if (size != len) h_fail_(file, line, "a reader of %" PRIu64 " bytes, not %zu", size, len);
    *out = (pull){r, seed, len, 0, 0};
    return true;
}
#define PULL_OPEN(s, key, seed, len, out) h_pull_open_(__FILE__, __LINE__, (s), (key), (seed), (len), (out))

typedef struct {
    unsigned seed;
    size_t len, at;
    bool bad;
} streamed;

static int32_t check_chunk(void *user, const uint8_t *chunk, size_t len) {
    streamed *st = user;
    if (st->at + len > st->len || first_wrong(st->seed, st->at, chunk, len) != SIZE_MAX) st->bad = true;
    st->at += len;
    return 0;
}

/* The sizes the probes store: around the threshold, the 64 KiB a reader's last read
 * holds back, and the 256 KiB above which a reader pumps a value from the database. */
static const size_t sizes[] = {0, 1, 255, 4095, 4096, 4097, 65535, 65536, 65537, 262144, 262145, 300001};
#define SIZES (sizeof sizes / sizeof sizes[0])

/* Whether a value of `len` bytes set through a handle of threshold `t` is in a file. */
static bool filed(int64_t t, size_t len) { return t > 0 && len >= (size_t)t; }

#define READERS 4

/*
 * Two handles on one file, of thresholds 4096 and never, take turns at random to set
 * (every size around the thresholds), delete, clear, get, stream and open readers of
 * one key, with up to four readers open that are read a few bytes at a time in
 * between. Midway the first handle is closed, its readers still open, and opened again
 * with a threshold of 64 KiB. Each read is checked byte by byte against the version
 * its reader opened; each get and stream against the last version set; the folder
 * holds a file exactly when the live value was set in one; the counters and check
 * agree at the end.
 */
static void two_handles_of_one_process_interleave_a_key_with_readers_open(void) {
    const char *path = tmp_path("two.db");
    int64_t thresholds[2] = {THRESHOLD, BACKLITE_FILE_THRESHOLD_NEVER};
    backlite_storage *h[2];
    for (int i = 0; i < 2; i++) h[i] = OPEN_SET(path, .file_threshold = thresholds[i]);
    REQUIRE(h[0] != NULL && h[1] != NULL);
    uint8_t *values[SIZES];
    pull readers[READERS] = {0};
    bool live = false, in_file = false;
    unsigned seed = 0;
    size_t len = 0;
    uint64_t state = 11;
    int steps = h_under_valgrind() ? 300 : 1500;
    for (int step = 0; step < steps; step++) {
        if (step == steps / 2) {
            /* Its readers stay open; the handle opens again with another threshold. */
            backlite_storage_free(h[0]);
            for (int i = 0; i < READERS; i++)
                if (readers[i].r != NULL && readers[i].handle == 0) readers[i].handle = -1;
            thresholds[0] = 65536;
            h[0] = OPEN_SET(path, .file_threshold = thresholds[0]);
            REQUIRE(h[0] != NULL);
        }
        int which = (int)h_rand_below(&state, 2);
        backlite_storage *s = h[which];
        unsigned op = (unsigned)h_rand_below(&state, 100);
        if (op < 30) {
            size_t k = (size_t)h_rand_below(&state, SIZES);
            seed = 1000u + (unsigned)step;
            len = sizes[k];
            values[0] = h_pattern(len, seed);
            SET_BYTES(s, "k", values[0], len, NEVER);
            free(values[0]);
            live = true;
            in_file = filed(thresholds[which], len);
        } else if (op < 38) {
            CHECK_RC(backlite_storage_delete(s, K("k"), &err), live ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND);
            live = in_file = false;
        } else if (op < 41) {
            CHECK_OK(backlite_storage_clear(s, &err));
            live = in_file = false;
        } else if (op < 56) {
            int slot = (int)h_rand_below(&state, READERS);
            if (readers[slot].r != NULL) PULL_REST(&readers[slot], 65537);
            if (live) {
                if (PULL_OPEN(s, "k", seed, len, &readers[slot])) readers[slot].handle = which;
            } else {
                backlite_value_reader *r = NULL;
                CHECK_RC(backlite_storage_open_reader(s, K("k"), &r, NULL, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
                CHECK(r == NULL);
            }
        } else if (op < 80) {
            int slot = (int)h_rand_below(&state, READERS);
            if (readers[slot].r != NULL) {
                size_t caps[] = {1, 7, 4096, 65535, 65536, 65537, 1u << 20,
                                 readers[slot].len - readers[slot].at, readers[slot].len - readers[slot].at + 1};
                size_t cap = caps[h_rand_below(&state, sizeof caps / sizeof caps[0])];
                if (!PULL_SOME(&readers[slot], cap)) {
                    backlite_value_reader_free(readers[slot].r);
                    readers[slot].r = NULL;
                }
            }
        } else if (op < 90) {
            backlite_buf b = {0};
            backlite_error *e = NULL;
            backlite_result rc = backlite_storage_get(s, K("k"), &b, NULL, &e);
            h_check_rc_(__FILE__, __LINE__, "get", rc, live ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND, e);
            backlite_error_free(e);
            if (rc == BACKLITE_RESULT_OK && (b.len != len || first_wrong(seed, 0, b.data, b.len) != SIZE_MAX))
                h_fail_(__FILE__, __LINE__, "step %d: get gave %zu bytes, not the %zu of seed %u", step, b.len, len, seed);
            backlite_buf_free(&b);
        } else if (op < 96) {
            streamed st = {seed, len, 0, false};
            CHECK_RC(backlite_storage_get_chunks(s, K("k"), check_chunk, &st, NULL, &err),
                     live ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND);
            if (live && (st.bad || st.at != len))
                h_fail_(__FILE__, __LINE__, "step %d: streamed %zu bytes of %zu, %s", step, st.at, len,
                        st.bad ? "some another value's" : "all right");
        } else {
            CHECK_EQ(HAS(s, "k"), live);
        }
        if (value_files(path) != (in_file ? 1 : 0)) {
            h_fail_(__FILE__, __LINE__, "step %d: %d value files, the live value %s", step, value_files(path),
                    in_file ? "in one" : "in none");
            break;
        }
    }
    for (int i = 0; i < READERS; i++)
        if (readers[i].r != NULL) PULL_REST(&readers[i], 9999);
    for (int i = 0; i < 2; i++) {
        backlite_stats st = STATS(h[i]);
        CHECK_EQ(st.count, live ? 1 : 0);
        CHECK_EQ(st.total_size, live ? len : 0);
    }
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(h[1], 0, &rep, &err));
    CHECK(rep.healthy == 1 && rep.orphan_values == 0 && rep.damaged == 0);
    CHECK_EQ(value_files(path), in_file ? 1 : 0);
    CHECK_EQ(temp_files(path), 0);
    for (int i = 0; i < 2; i++) backlite_storage_free(h[i]);
}

/* The value a writer process sets as version `v`: its length, and its bytes (the
 * first eight are `v`, the rest h_pattern's of seed v). */
static size_t version_len(uint64_t v) {
    static const size_t lens[] = {16, 4095, 4096, 4097, 65537, 262145, 300001};
    return lens[v % (sizeof lens / sizeof lens[0])];
}

static uint8_t *version_value(uint64_t v) {
    size_t len = version_len(v);
    uint8_t *value = h_pattern(len, (unsigned)v);
    memcpy(value, &v, sizeof v);
    return value;
}

/* The writer process: versions 1.. of "k" through two handles (thresholds 4096 and
 * never) in turn, with a delete after every fifth and a clear after every thirteenth,
 * `rounds` times; exits 0 when every call answered as it should. */
__attribute__((noreturn)) static void versions_writer(const char *path, int rounds) {
    backlite_storage *h[2] = {NULL, NULL};
    backlite_options *o = backlite_options_new();
    backlite_options_set_file_threshold(o, THRESHOLD);
    backlite_options_set_busy_timeout_ms(o, 60000);
    backlite_storage_open(path, o, &h[0], NULL);
    backlite_options_set_file_threshold(o, BACKLITE_FILE_THRESHOLD_NEVER);
    backlite_storage_open(path, o, &h[1], NULL);
    backlite_options_free(o);
    if (h[0] == NULL || h[1] == NULL) h_child_exit(3);
    for (uint64_t v = 1; v <= (uint64_t)rounds; v++) {
        uint8_t *value = version_value(v);
        backlite_error *e = NULL;
        backlite_result rc = backlite_storage_set(h[v % 2], K("k"), value, version_len(v), NEVER, &e);
        free(value);
        if (rc == BACKLITE_RESULT_OK && v % 5 == 0) rc = backlite_storage_delete(h[(v / 5) % 2], K("k"), &e);
        if (rc == BACKLITE_RESULT_OK && v % 13 == 0) rc = backlite_storage_clear(h[(v / 13) % 2], &e);
        if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND) {
            fprintf(stderr, "writer, version %" PRIu64 ": %s %s\n", v, h_rc_name(rc), e ? backlite_error_message(e) : "");
            h_child_exit(4);
        }
        backlite_error_free(e);
    }
    backlite_storage_free(h[0]);
    backlite_storage_free(h[1]);
    h_child_exit(0);
}

/* A reader of a writer's version: its first eight bytes say which; every byte after
 * them is checked against it. */
typedef struct {
    backlite_value_reader *r;
    uint64_t v, len, at;
    uint8_t head[8];
} version_pull;

/* One read of at most `cap` bytes; false once at its end (or failed): then freed. */
static bool h_version_pull_(const char *file, int line, version_pull *p, size_t cap) {
    static uint8_t buf[1u << 20];
    size_t n = 0;
    backlite_error *e = NULL;
    backlite_result rc = backlite_value_reader_read(p->r, buf, cap, &n, &e);
    bool more = rc == BACKLITE_RESULT_OK && n > 0;
    if (rc != BACKLITE_RESULT_OK) {
        h_fail_(file, line, "read at %" PRIu64 " of %" PRIu64 ": %s %s", p->at, p->len, h_rc_name(rc),
                e ? backlite_error_message(e) : "");
    } else if (n == 0 && p->at != p->len) {
        h_fail_(file, line, "the reader ended at %" PRIu64 " of %" PRIu64, p->at, p->len);
    } else if (n > 0) {
        /* The version's eight bytes may come in more than one read (the last 64 KiB
           of a value come in a read of their own). */
        size_t from = 0;
        if (p->at < 8) {
            from = 8 - (size_t)p->at < n ? 8 - (size_t)p->at : n;
            memcpy(p->head + p->at, buf, from);
            if (p->at + from == 8) {
                memcpy(&p->v, p->head, 8);
                if (p->v == 0 || version_len(p->v) != p->len) {
                    h_fail_(file, line, "version %" PRIu64 " in a value of %" PRIu64 " bytes", p->v, p->len);
                    more = false;
                }
            }
        }
        if (more && from < n) {
            size_t wrong = first_wrong((unsigned)p->v, (size_t)p->at + from, buf + from, n - from);
            if (wrong != SIZE_MAX) {
                h_fail_(file, line, "byte %zu of version %" PRIu64 " is another version's", wrong, p->v);
                more = false;
            }
        }
        p->at += n;
    }
    backlite_error_free(e);
    if (!more) {
        backlite_value_reader_free(p->r);
        p->r = NULL;
    }
    return more;
}
#define VERSION_PULL(p, cap) h_version_pull_(__FILE__, __LINE__, (p), (cap))

/*
 * A writer process sets versions of one key through handles of two thresholds,
 * deleting and clearing it now and then, while this process, through handles of the
 * same two thresholds, keeps up to three readers of it open and reads them a little at
 * a time, and gets and streams it: every reader reads one version whole, never a byte
 * of another; every get is one version whole or a miss.
 */
static void two_processes_interleave_a_key_with_readers_open(void) {
    const char *path = tmp_path("procs.db");
    backlite_storage *h[2];
    h[0] = OPEN_SET(path, .file_threshold = THRESHOLD, .busy_timeout_ms = 60000);
    h[1] = OPEN_SET(path, .file_threshold = BACKLITE_FILE_THRESHOLD_NEVER, .busy_timeout_ms = 60000);
    REQUIRE(h[0] != NULL && h[1] != NULL);
    int rounds = h_under_valgrind() ? 150 : 1500;
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) versions_writer(path, rounds);
    version_pull readers[3] = {0};
    uint64_t state = 5, opened = 0, got = 0;
    for (;;) {
        int status = 0;
        bool done = waitpid(pid, &status, WNOHANG) == pid;
        backlite_storage *s = h[h_rand_below(&state, 2)];
        unsigned op = (unsigned)h_rand_below(&state, 10);
        int slot = (int)h_rand_below(&state, 3);
        if (op < 3 && readers[slot].r == NULL) {
            uint64_t size = 0;
            backlite_error *e = NULL;
            backlite_result rc = backlite_storage_open_reader(s, K("k"), &readers[slot].r, &size, NULL, &e);
            if (rc == BACKLITE_RESULT_OK) {
                readers[slot].len = size;
                readers[slot].at = 0;
                opened++;
            } else if (rc != BACKLITE_RESULT_NOT_FOUND) {
                h_fail_(__FILE__, __LINE__, "open_reader: %s %s", h_rc_name(rc), e ? backlite_error_message(e) : "");
            }
            backlite_error_free(e);
        } else if (op < 8) {
            if (readers[slot].r != NULL) {
                static const size_t caps[] = {3, 1000, 4097, 65536, 65537, 1u << 20};
                VERSION_PULL(&readers[slot], caps[h_rand_below(&state, 6)]);
            }
        } else {
            backlite_buf b = {0};
            backlite_error *e = NULL;
            backlite_result rc = backlite_storage_get(s, K("k"), &b, NULL, &e);
            if (rc == BACKLITE_RESULT_OK) {
                uint64_t v = 0;
                if (b.len >= 8) memcpy(&v, b.data, 8);
                if (b.len < 8 || v == 0 || version_len(v) != b.len ||
                    first_wrong((unsigned)v, 8, b.data + 8, b.len - 8) != SIZE_MAX)
                    h_fail_(__FILE__, __LINE__, "get: %zu bytes that are no one version", b.len);
                got++;
            } else if (rc != BACKLITE_RESULT_NOT_FOUND) {
                h_fail_(__FILE__, __LINE__, "get: %s %s", h_rc_name(rc), e ? backlite_error_message(e) : "");
            }
            backlite_buf_free(&b);
            backlite_error_free(e);
        }
        if (done) {
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            break;
        }
    }
    for (int i = 0; i < 3; i++)
        while (readers[i].r != NULL) VERSION_PULL(&readers[i], 4097);
    printf("# %" PRIu64 " readers opened, %" PRIu64 " gets hit\n", opened, got);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(h[0], 0, &rep, &err));
    CHECK(rep.healthy == 1 && rep.orphan_values == 0);
    backlite_stats st = STATS(h[0]);
    CHECK_EQ(st.count, rep.actual_count);
    CHECK_EQ(st.total_size, rep.actual_total_size);
    /* The last version, 1500 or 150, was deleted (a multiple of 5): nothing is left. */
    CHECK_EQ(st.count, 0);
    CHECK_EQ(value_files(path), 0);
    for (int i = 0; i < 2; i++) backlite_storage_free(h[i]);
}

/* A read into a buffer larger than what is left of the value (and larger than the 64
 * KiB the read reaching the end holds back) writes the bytes it returns and nothing
 * past them, for a value in a file, copied from the database and pumped from it; a
 * read of more than PTRDIFF_MAX bytes is refused and consumes nothing. */
static void reads_into_larger_buffers_write_only_what_they_return(void) {
    const char *path = tmp_path("caps.db");
    struct {
        int64_t threshold;
        size_t len;
    } cases[] = {{THRESHOLD, 4096}, {THRESHOLD, 65537}, {THRESHOLD, 300001},
                 {BACKLITE_FILE_THRESHOLD_NEVER, 4096}, {BACKLITE_FILE_THRESHOLD_NEVER, 200000},
                 {BACKLITE_FILE_THRESHOLD_NEVER, 300001}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        backlite_storage *s = OPEN_SET(path, .file_threshold = cases[c].threshold);
        REQUIRE(s != NULL);
        size_t len = cases[c].len;
        uint8_t *v = h_pattern(len, (unsigned)c);
        SET_BYTES(s, "k", v, len, NEVER);
        free(v);
        CHECK_EQ(value_files(path), cases[c].threshold > 0 ? 1 : 0);
        size_t starts[] = {0, 1, len - 65536, len - 1};
        for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
            if (starts[i] > len) continue;
            pull p;
            REQUIRE(PULL_OPEN(s, "k", (unsigned)c, len, &p));
            uint8_t one;
            size_t n = 5;
            CHECK_RC(backlite_value_reader_read(p.r, &one, SIZE_MAX, &n, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
            CHECK_EQ(n, 5);
            /* Up to the start, then reads of the whole rest and more. */
            while (p.at < starts[i] && PULL_SOME(&p, starts[i] - p.at)) {
            }
            CHECK_EQ(p.at, starts[i]);
            PULL_REST(&p, 1u << 20);
        }
        backlite_storage_free(s);
        CHECK(remove_cache_file(path));
        h_rm_rf(folder_of(path));
    }
}

/*
 * A size limit of five values of 100,000 bytes, each in a file: the sixth set evicts
 * the oldest with its file, while a reader opened on it before reads it whole; the
 * counters say the sizes exactly after each set; a batch of small and large values
 * past the limit keeps exactly the files of what stays; a value of the whole limit
 * leaves one file, and one byte more leaves none.
 */
static void a_limit_filled_by_values_in_files_alone_evicts_them_whole(void) {
    const char *path = tmp_path("limit.db");
    const size_t big = 100000;
    backlite_storage *s = OPEN_SET(path, .max_size = 5 * big, .file_threshold = THRESHOLD,
                                   .policy = BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT);
    REQUIRE(s != NULL);
    pull readers[3];
    int open = 0;
    for (unsigned i = 0; i < 9; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%u", i);
        /* The oldest, about to be evicted, is opened first. */
        if (i >= 5 && open < 3) {
            char oldest[16];
            snprintf(oldest, sizeof oldest, "k%u", i - 5);
            if (PULL_OPEN(s, oldest, i - 5, big, &readers[open])) {
                PULL_SOME(&readers[open], 1000);
                open++;
            }
        }
        uint8_t *v = h_pattern(big, i);
        SET_BYTES(s, key, v, big, NEVER);
        free(v);
        backlite_stats st = STATS(s);
        uint64_t kept = i + 1 < 5 ? i + 1 : 5;
        CHECK_EQ(st.count, kept);
        CHECK_EQ(st.total_size, kept * big);
        CHECK_EQ(st.evictions, i + 1 - kept);
        CHECK_EQ(value_files(path), (int)kept);
    }
    for (int i = 0; i < open; i++) PULL_REST(&readers[i], 7777);
    for (unsigned i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%u", i);
        GET_MISSING(s, key);
    }
    uint8_t *v = h_pattern(5 * big + 1, 77);
    /* Small and large, past the limit: the first large ones and the oldest go. */
    backlite_entry batch[] = {
        {(const uint8_t *)"s1", 2, v, 10, NEVER},         {(const uint8_t *)"b1", 2, v + 1, big, NEVER},
        {(const uint8_t *)"s2", 2, v + 2, THRESHOLD - 1, NEVER}, {(const uint8_t *)"b2", 2, v + 3, big, NEVER},
        {(const uint8_t *)"b3", 2, v + 4, big, NEVER},    {(const uint8_t *)"s3", 2, v + 5, 1, NEVER},
    };
    CHECK_OK(backlite_storage_set_many(s, batch, 6, &err));
    backlite_stats st = STATS(s);
    uint64_t sum = 0, files = 0;
    const char *keys[] = {"k4", "k5", "k6", "k7", "k8", "s1", "b1", "s2", "b2", "b3", "s3"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        backlite_buf b = {0};
        if (backlite_storage_get(s, K(keys[i]), &b, NULL, NULL) == BACKLITE_RESULT_OK) {
            sum += b.len;
            files += b.len >= THRESHOLD;
        }
        backlite_buf_free(&b);
    }
    CHECK(sum <= 5 * big);
    CHECK_EQ(st.total_size, sum);
    CHECK_EQ(st.evictions, 9 + 6 - st.count); /* every key set once, none deleted */
    uint64_t evicted = st.evictions, before = st.count;
    CHECK_EQ(value_files(path), (int)files);
    CHECK(HAS(s, "b3") && HAS(s, "s3"));
    /* The whole limit: everything else goes. One byte more: refused, nothing left of it. */
    SET_BYTES(s, "all", v, 5 * big, NEVER);
    st = STATS(s);
    CHECK(st.count == 1 && st.total_size == 5 * big);
    CHECK_EQ(st.evictions, evicted + before);
    CHECK_EQ(value_files(path), 1);
    CHECK_RC(backlite_storage_set(s, K("all"), v, 5 * big + 1, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    st = STATS(s);
    CHECK(st.count == 0 && st.total_size == 0);
    CHECK_EQ(value_files(path), 0);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK(rep.healthy == 1 && rep.orphan_values == 0);
    free(v);
    backlite_storage_free(s);
}

/*
 * Values of the threshold and one byte either side, set with threshold t, then each
 * overwritten through a handle opened with t + 1, then t - 1, then never, while a
 * reader of each older value, opened through the handle closed since, is open: each
 * reads its value whole; the folder holds exactly the files of the values at or above
 * the threshold of the handle that set them; the counters are exact.
 */
static void values_around_the_threshold_overwritten_across_reopens_with_readers_open(void) {
    const char *path = tmp_path("edges.db");
    const int64_t t = 5000;
    int64_t rounds[] = {t, t + 1, t - 1, BACKLITE_FILE_THRESHOLD_NEVER, t};
    const char *keys[3] = {"below", "at", "above"};
    size_t lens[3] = {(size_t)t - 1, (size_t)t, (size_t)t + 1};
    pull readers[3] = {0};
    for (unsigned r = 0; r < sizeof rounds / sizeof rounds[0]; r++) {
        backlite_storage *s = OPEN_SET(path, .file_threshold = rounds[r]);
        REQUIRE(s != NULL);
        int files = 0;
        for (int k = 0; k < 3 && r > 0; k++) {
            uint8_t *was = h_pattern(lens[k], 100 * (r - 1) + (unsigned)k);
            GET_BYTES_EQ(s, keys[k], was, lens[k]);
            free(was);
        }
        for (int k = 0; k < 3; k++) {
            uint8_t *v = h_pattern(lens[k], 100 * r + (unsigned)k);
            SET_BYTES(s, keys[k], v, lens[k], NEVER);
            free(v);
            files += filed(rounds[r], lens[k]);
            if (readers[k].r != NULL) PULL_REST(&readers[k], 1000);
            PULL_OPEN(s, keys[k], 100 * r + (unsigned)k, lens[k], &readers[k]);
            PULL_SOME(&readers[k], 3);
        }
        CHECK_EQ(value_files(path), files);
        backlite_stats st = STATS(s);
        CHECK(st.count == 3 && st.total_size == (uint64_t)(3 * t));
        backlite_storage_free(s);
    }
    for (int k = 0; k < 3; k++) PULL_REST(&readers[k], 4999);
    backlite_storage *s = OPEN_SET(path, .file_threshold = t);
    REQUIRE(s != NULL);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK(rep.healthy == 1 && rep.repaired == 0 && rep.orphan_values == 0);
    CHECK_EQ(value_files(path), 2);
    backlite_storage_free(s);
}

/* Flips the last byte of the value in the cache's one value file: same length and
 * record, a CRC that fails at the end. */
static void damage_the_value_file(const char *path) {
    const char *file = only_value_file(path);
    size_t len = 0;
    uint8_t *bytes = h_read_file(file, &len);
    REQUIRE(bytes != NULL && len > VALUE_RECORD_LEN);
    bytes[len - VALUE_RECORD_LEN - 1] ^= 1;
    REQUIRE(h_write_file(file, bytes, len));
    free(bytes);
}

static int32_t count_chunk(void *user, const uint8_t *chunk, size_t len) {
    (void)chunk;
    *(size_t *)user += len;
    return 0;
}

/*
 * A damaged value in a file, read by each kind of read (get, a stream, a reader; the
 * reader's handle closed before the read that finds the damage), is a miss in the
 * handle's counters and in the file's lifetime counters, never a hit: each read counts
 * one miss, and the entry and its file go.
 */
static void a_damaged_value_file_is_one_miss_in_every_counter_by_every_read(void) {
    const char *path = tmp_path("count.db");
    size_t len = 200000;
    uint8_t *v = h_pattern(len, 9);
    for (int kind = 0; kind < 3; kind++) {
        backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD);
        REQUIRE(s != NULL);
        CHECK_OK(backlite_storage_zero_stats(s, &err));
        SET_BYTES(s, "k", v, len, NEVER);
        damage_the_value_file(path);
        const char *what[] = {"get", "get_chunks", "reader"};
        if (kind == 0) {
            GET_MISSING(s, "k");
        } else if (kind == 1) {
            size_t seen = 0;
            CHECK_RC(backlite_storage_get_chunks(s, K("k"), count_chunk, &seen, NULL, &err),
                     BACKLITE_RESULT_NOT_FOUND);
            CHECK(seen < len);
        } else {
            backlite_value_reader *r = NULL;
            CHECK_OK(backlite_storage_open_reader(s, K("k"), &r, NULL, NULL, &err));
            REQUIRE(r != NULL);
            /* The handle goes first: the reader keeps what it needs. */
            backlite_storage_free(s);
            uint8_t *got = malloc(len);
            REQUIRE(got != NULL);
            size_t at = 0, n = 0;
            backlite_result rc;
            backlite_error *e = NULL;
            while ((rc = backlite_value_reader_read(r, got + at, len - at, &n, &e)) == BACKLITE_RESULT_OK && n > 0)
                at += n;
            CHECK_EQ(rc, BACKLITE_RESULT_NOT_FOUND);
            CHECK(e == NULL);
            backlite_error_free(e);
            CHECK(at < len);
            free(got);
            backlite_value_reader_free(r);
            s = OPEN_SET(path, .file_threshold = THRESHOLD);
            REQUIRE(s != NULL);
        }
        backlite_lifetime_stats life;
        CHECK_OK(backlite_storage_lifetime_stats(s, &life, &err));
        if (life.hits != 0 || life.misses != 1)
            h_fail_(__FILE__, __LINE__, "%s of a damaged value: lifetime %" PRIu64 " hits, %" PRIu64 " misses",
                    what[kind], life.hits, life.misses);
        if (kind < 2) {
            backlite_stats st = STATS(s);
            if (st.hits != 0 || st.misses != 1)
                h_fail_(__FILE__, __LINE__, "%s of a damaged value: %" PRIu64 " hits, %" PRIu64 " misses",
                        what[kind], st.hits, st.misses);
        }
        CHECK(!HAS(s, "k"));
        CHECK_EQ(STATS(s).count, 0);
        CHECK_EQ(value_files(path), 0);
        backlite_storage_free(s);
    }
    free(v);
}

int main(void) {
    h_begin();
    RUN(two_handles_of_one_process_interleave_a_key_with_readers_open);
    RUN(two_processes_interleave_a_key_with_readers_open);
    RUN(reads_into_larger_buffers_write_only_what_they_return);
    RUN(a_limit_filled_by_values_in_files_alone_evicts_them_whole);
    RUN(values_around_the_threshold_overwritten_across_reopens_with_readers_open);
    RUN(a_damaged_value_file_is_one_miss_in_every_counter_by_every_read);
    return h_end();
}
