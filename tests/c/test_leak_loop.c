/*
 * Long loops: open / set / get / close 2000 times, and 20000 operations on one
 * handle. After a warm-up, the number of open file descriptors must come back exactly
 * to where it was, and the resident memory (VmRSS) may not grow by more than 8 MiB.
 * The figures are printed.
 *
 * Under valgrind (memcheck_test_leak_loop) the loops are shorter and the memory bound
 * is not asserted (valgrind's own memory is in VmRSS); under AddressSanitizer
 * (asan_test_leak_loop) freed memory sits in ASan's quarantine, so the memory bound is
 * not asserted either. Leaks themselves are what those two runs look for.
 */
#include "backlite.h"
#include "harness.h"
#include "proc_self.h"

#define RSS_BOUND_KB (8 * 1024)

/* iterations, shorter under valgrind */
static int scaled(int n) { return h_under_valgrind() ? n / 20 : n; }

typedef struct {
    int fds;
    long rss;
} usage;

static usage now_usage(void) { return (usage){proc_entries("fd"), proc_status_kib("VmRSS")}; }

static void expect_no_growth_(const char *file, int line, const char *what, int n, usage before, usage after) {
    printf("# %s x%d: open fds %d -> %d, VmRSS %ld kB -> %ld kB (%+ld kB)%s\n", what, n, before.fds, after.fds,
           before.rss, after.rss, after.rss - before.rss,
           h_under_valgrind() ? " [valgrind: not bounded]" : UNDER_ASAN ? " [ASan: not bounded]" : "");
    if (before.fds < 0 || before.rss < 0) {
        h_fail_(file, line, "cannot read /proc/self");
        return;
    }
    if (after.fds != before.fds) h_fail_(file, line, "%s: %d file descriptors leaked", what, after.fds - before.fds);
    if (!h_under_valgrind() && !UNDER_ASAN && after.rss - before.rss > RSS_BOUND_KB)
        h_fail_(file, line, "%s: VmRSS grew by %ld kB (bound %d kB)", what, after.rss - before.rss, RSS_BOUND_KB);
}
#define EXPECT_NO_GROWTH(what, n, before, after) expect_no_growth_(__FILE__, __LINE__, (what), (n), (before), (after))

static int32_t compute(void *ud, backlite_sink *sink) {
    (void)ud;
    return backlite_sink_write(sink, (const uint8_t *)"computed", 8) == BACKLITE_RESULT_OK ? 0 : 1;
}

static uint8_t value[4096];

/* one open / set / get / cached_call / stats / close round on `path` */
static void round_trip_(const char *path, int i, uint64_t max_size) {
    backlite_options *o = OPTIONS(max_size, (backlite_eviction_policy)(i % 5));
    backlite_storage *s = OPEN(path, o);
    backlite_options_free(o);
    if (s == NULL) return;
    char k[32];
    snprintf(k, sizeof k, "key-%d", i % 64);
    size_t len = 100 + (size_t)(i * 37) % 3000;
    memset(value, 'a' + i % 26, len);
    CHECK_OK(backlite_storage_set(s, K(k), value, len, NEVER, &err));
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K(k), &b, NULL, &err));
    CHECK_BUF(b, value, len);
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call(s, K("memo"), compute, NULL, NULL, NEVER, &b, &err));
    backlite_buf_free(&b);
    CHECK_RC(backlite_storage_get(s, K("never-set"), &b, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    (void)STATS(s);
    backlite_storage_free(s);
}

static void round_trip(const char *path, int i) { round_trip_(path, i, 64 * 1024); }

static void open_set_get_close_2000_times_leaks_nothing(void) {
    const char *path = tmp_path("loop.db");
    for (int i = 0; i < 100; i++) round_trip(path, i); /* warm-up: pools, caches, allocator */
    usage before = now_usage();
    int n = scaled(2000);
    for (int i = 0; i < n; i++) round_trip(path, i);
    EXPECT_NO_GROWTH("open/set/get/close", n, before, now_usage());
}

static void a_second_handle_open_and_closed_2000_times_leaks_nothing(void) {
    const char *path = tmp_path("two.db");
    backlite_storage *keep = OPEN(path, NULL); /* a handle that stays open meanwhile */
    REQUIRE(keep != NULL);
    SET(keep, "kept", "value");
    for (int i = 0; i < 100; i++) round_trip_(path, i, 1 << 30); /* nothing evicted */
    usage before = now_usage();
    int n = scaled(2000);
    for (int i = 0; i < n; i++) round_trip_(path, i, 1 << 30);
    EXPECT_NO_GROWTH("open/close beside a kept handle", n, before, now_usage());
    GET_EQ(keep, "kept", "value");
    backlite_storage_free(keep);
}

static void memory_caches_opened_and_closed_2000_times_leak_nothing(void) {
    for (int i = 0; i < 100; i++) round_trip(":memory:", i);
    usage before = now_usage();
    int n = scaled(2000);
    for (int i = 0; i < n; i++) round_trip(":memory:", i);
    EXPECT_NO_GROWTH("open/close :memory:", n, before, now_usage());
}

static void twenty_thousand_operations_on_one_handle_leak_nothing(void) {
    backlite_options *o = OPTIONS(256 * 1024, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
    backlite_storage *s = OPEN(tmp_path("ops.db"), o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    uint64_t rng = 3;
    int n = scaled(20000);
    usage before = {0, 0};
    for (int i = 0; i < 2000 + n; i++) {
        if (i == 2000) before = now_usage(); /* after a warm-up that fills the cache */
        char k[32];
        snprintf(k, sizeof k, "key-%d", (int)h_rand_below(&rng, 500));
        unsigned op = (unsigned)h_rand_below(&rng, 10);
        backlite_buf b = {NULL, 0};
        if (op < 4) {
            size_t len = (size_t)h_rand_below(&rng, sizeof value);
            CHECK_OK(backlite_storage_set(s, K(k), value, len, op == 0 ? 50 : NEVER, &err));
        } else if (op < 8) {
            backlite_error *err = NULL;
            backlite_result rc = backlite_storage_get(s, K(k), &b, NULL, &err);
            if (rc != BACKLITE_RESULT_NOT_FOUND) h_check_rc_(__FILE__, __LINE__, "get", rc, BACKLITE_RESULT_OK, err);
            backlite_error_free(err);
            backlite_buf_free(&b);
        } else if (op < 9) {
            backlite_error *err = NULL;
            backlite_storage_delete(s, K(k), &err);
            backlite_error_free(err);
        } else {
            CHECK_OK(backlite_cached_call(s, K(k), compute, NULL, NULL, NEVER, &b, &err));
            backlite_buf_free(&b);
        }
    }
    EXPECT_NO_GROWTH("set/get/delete/cached_call on one handle", n, before, now_usage());
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(open_set_get_close_2000_times_leaks_nothing);
    RUN(a_second_handle_open_and_closed_2000_times_leaks_nothing);
    RUN(memory_caches_opened_and_closed_2000_times_leak_nothing);
    RUN(twenty_thousand_operations_on_one_handle_leak_nothing);
    return h_end();
}
