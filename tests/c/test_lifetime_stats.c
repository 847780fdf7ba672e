/*
 * Lifetime counters: hits, misses, evictions and expirations since the file was made
 * (or last zeroed), added up over every handle of every process and kept in the file.
 */
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backlite.h"
#include "harness.h"

#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED

static backlite_lifetime_stats lifetime(backlite_storage *s) {
    backlite_lifetime_stats st;
    memset(&st, 0xAB, sizeof st);
    CHECK_OK(backlite_storage_lifetime_stats(s, &st, &err));
    return st;
}

static int64_t now_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void counters_add_up_over_handles_and_survive_reopen(void) {
    const char *path = tmp_path("l.db");
    int64_t before = now_ms();
    backlite_storage *a = OPEN(path, NULL);
    backlite_storage *b = OPEN(path, NULL);
    REQUIRE(a != NULL && b != NULL);
    backlite_lifetime_stats st = lifetime(a);
    CHECK_EQ(st.hits, 0);
    CHECK_EQ(st.misses, 0);
    CHECK(st.since_ms >= before - 1000 && st.since_ms <= now_ms());
    SET(a, "k1", "v1");
    SET(a, "k2", "v2");
    GET_EQ(a, "k1", "v1");
    GET_MISSING(a, "nope");
    GET_EQ(b, "k2", "v2");
    GET_EQ(b, "k2", "v2");
    GET_MISSING(b, "nope");
    st = lifetime(a); /* this process's unwritten ones are included */
    CHECK_EQ(st.hits, 3);
    CHECK_EQ(st.misses, 2);
    backlite_storage_free(a);
    backlite_storage_free(b);

    backlite_storage *c = OPEN(path, NULL);
    REQUIRE(c != NULL);
    st = lifetime(c);
    CHECK_EQ(st.hits, 3);
    CHECK_EQ(st.misses, 2);
    CHECK_EQ(st.evictions, 0);
    backlite_stats per_handle = STATS(c); /* the per-handle counters start at 0 */
    CHECK_EQ(per_handle.hits, 0);
    backlite_storage_free(c);
}

static void another_process_adds_its_counts_when_it_closes(void) {
    const char *path = tmp_path("p.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    GET_EQ(s, "k", "v");
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *child = NULL;
        if (backlite_storage_open(path, NULL, &child, NULL) != BACKLITE_RESULT_OK) _exit(2);
        backlite_buf buf = {NULL, 0};
        for (int i = 0; i < 5; i++) {
            if (backlite_storage_get(child, K("k"), &buf, NULL, NULL) != BACKLITE_RESULT_OK) _exit(3);
            backlite_buf_free(&buf);
        }
        for (int i = 0; i < 3; i++) {
            if (backlite_storage_get(child, K("nope"), &buf, NULL, NULL) != BACKLITE_RESULT_NOT_FOUND) _exit(4);
        }
        backlite_storage_free(child);
        /* The parent's handle too: freeing it here sets its inherited connections aside
         * (never closed), and leaves nothing for a leak checker to call lost. */
        backlite_storage_free(s);
        _exit(0);
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    backlite_lifetime_stats st = lifetime(s);
    CHECK_EQ(st.hits, 1 + 5);
    CHECK_EQ(st.misses, 3);
    backlite_storage_free(s);
}

static void evictions_and_expirations_are_counted(void) {
    const char *path = tmp_path("e.db");
    backlite_storage *s = OPEN_WITH(path, 10, LRU);
    REQUIRE(s != NULL);
    SET(s, "a", "123456");
    SET(s, "b", "123456"); /* evicts a */
    SET_EXP(s, "soon", "x", 1);
    usleep(5000);
    SET(s, "c", "1"); /* removes the expired entry */
    backlite_lifetime_stats st = lifetime(s);
    CHECK_EQ(st.evictions, 1);
    CHECK_EQ(st.expirations, 1);
    backlite_storage_free(s);
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    st = lifetime(s);
    CHECK_EQ(st.evictions, 1);
    CHECK_EQ(st.expirations, 1);
    backlite_storage_free(s);
}

static void zero_stats_starts_counting_again(void) {
    const char *path = tmp_path("z.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    GET_EQ(s, "k", "v");
    GET_MISSING(s, "nope");
    backlite_lifetime_stats st = lifetime(s);
    CHECK_EQ(st.hits, 1);
    int64_t before = now_ms();
    CHECK_OK(backlite_storage_zero_stats(s, &err));
    st = lifetime(s);
    CHECK_EQ(st.hits, 0);
    CHECK_EQ(st.misses, 0);
    CHECK(st.since_ms >= before);
    GET_EQ(s, "k", "v");
    backlite_storage_free(s);
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    st = lifetime(s);
    CHECK_EQ(st.hits, 1);
    CHECK_EQ(st.misses, 0);
    CHECK(st.since_ms >= before);
    backlite_stats per_handle = STATS(s);
    CHECK_EQ(per_handle.hits, 0);
    backlite_storage_free(s);
}

static void an_in_memory_cache_counts_too(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    GET_EQ(s, "k", "v");
    GET_MISSING(s, "x");
    backlite_lifetime_stats st = lifetime(s);
    CHECK_EQ(st.hits, 1);
    CHECK_EQ(st.misses, 1);
    backlite_storage_free(s);
}

static void null_parameters_are_refused(void) {
    backlite_lifetime_stats st;
    CHECK_RC(backlite_storage_lifetime_stats(NULL, &st, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_zero_stats(NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    CHECK_RC(backlite_storage_lifetime_stats(s, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(counters_add_up_over_handles_and_survive_reopen);
    RUN(another_process_adds_its_counts_when_it_closes);
    RUN(evictions_and_expirations_are_counted);
    RUN(zero_stats_starts_counting_again);
    RUN(an_in_memory_cache_counts_too);
    RUN(null_parameters_are_refused);
    return h_end();
}
