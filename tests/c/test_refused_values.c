/*
 * test_refused_values.c: values refused from their length alone (API.md, "Too large": a
 * value longer than max_size is not stored, TOO_LARGE, and any older value under that
 * key is removed, "a later get must not return a stale value"), for a length a probe
 * found answered otherwise: one longer than any memory (a C size_t past PTRDIFF_MAX)
 * was INVALID_ARGUMENT and kept the older value, locally and on the remote tier. With
 * a remote, one longer than SQLite's limit on one value where no file may hold it too.
 * Nothing of such a value is ever read: each is passed with a one-byte buffer.
 */
#include "harness.h"
#include "redis_server.h"

static const uint8_t one_byte[1] = {'x'};

/* A length past PTRDIFF_MAX is longer than max_size can be (INT64_MAX at most): TOO_LARGE,
 * the older value gone, as for any value over max_size; an already expired one is OK and
 * stores nothing; set_many stores none of its batch, and removes the older value under
 * the refused key as set does. */
static void a_length_past_any_memory_is_too_large_and_removes_the_older_value(void) {
    size_t lengths[] = {(size_t)PTRDIFF_MAX + 1, SIZE_MAX};
    for (int mem = 0; mem <= 1; mem++) {
        backlite_storage *s = OPEN(mem ? ":memory:" : tmp_path("past-memory.db"), NULL);
        REQUIRE(s != NULL);
        for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
            SET(s, "k", "old");
            CHECK_RC(backlite_storage_set(s, K("k"), one_byte, lengths[i], NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
            GET_MISSING(s, "k");
            SET(s, "k", "old");
            CHECK_RC(backlite_storage_set(s, K("k"), one_byte, lengths[i], 0, &err), BACKLITE_RESULT_OK);
            GET_MISSING(s, "k");
            /* a bad expiration is still refused first, changing nothing */
            SET(s, "k", "old");
            CHECK_RC(backlite_storage_set(s, K("k"), one_byte, lengths[i], -7, &err),
                     BACKLITE_RESULT_INVALID_ARGUMENT);
            GET_EQ(s, "k", "old");

            backlite_entry batch[2] = {{K("other"), one_byte, 1, NEVER}, {K("k"), one_byte, lengths[i], NEVER}};
            CHECK_RC(backlite_storage_set_many(s, batch, 2, &err), BACKLITE_RESULT_TOO_LARGE);
            CHECK(!HAS(s, "other"));
            GET_MISSING(s, "k");
        }
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 0);
        CHECK_EQ(st.total_size, 0);
        CHECK_EQ(st.evictions, 0);
        backlite_storage_free(s);
    }
}

/* With a remote tier: a value over BACKLITE_MAX_VALUE_SIZE that no file may hold (an
 * in-memory cache, or BACKLITE_FILE_THRESHOLD_NEVER), or one past any memory, removes
 * the older value from both tiers, so the next get finds it in neither. */
static void a_refused_value_leaves_no_older_value_on_the_remote(void) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("redis"));
    REQUIRE(mkdir(dir, 0700) == 0);
    redis_server rs;
    if (redis_server_start(&rs, dir, NULL) != 0) SKIP("no redis-server");
    size_t lengths[] = {(size_t)BACKLITE_MAX_VALUE_SIZE + 1, SIZE_MAX};
    for (int mem = 0; mem <= 1; mem++) {
        backlite_options *o = backlite_options_new();
        REQUIRE(o != NULL);
        CHECK_RC(backlite_options_set_remote(o, rs.url), BACKLITE_RESULT_OK);
        CHECK_RC(backlite_options_set_remote_timeout_ms(o, 5000), BACKLITE_RESULT_OK);
        CHECK_RC(backlite_options_set_max_size(o, (uint64_t)INT64_MAX), BACKLITE_RESULT_OK);
        if (!mem) CHECK_RC(backlite_options_set_file_threshold(o, BACKLITE_FILE_THRESHOLD_NEVER), BACKLITE_RESULT_OK);
        backlite_storage *s = OPEN(mem ? ":memory:" : tmp_path("remote.db"), o);
        REQUIRE(s != NULL);
        for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%d-%zu", mem, i);
            SET(s, key, "old");
            CHECK_RC(backlite_storage_set(s, K(key), one_byte, lengths[i], NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
            GET_MISSING(s, key); /* was "old", from the remote */
            SET(s, key, "old");
            CHECK_RC(backlite_storage_set(s, K(key), one_byte, lengths[i], 0, &err), BACKLITE_RESULT_OK);
            GET_MISSING(s, key);
        }
        /* another handle with the remote, on a file of its own, finds none of them */
        backlite_storage *other = OPEN(tmp_path(mem ? "other-m.db" : "other-f.db"), o);
        REQUIRE(other != NULL);
        for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%d-%zu", mem, i);
            GET_MISSING(other, key);
        }
        backlite_remote_stats rst;
        CHECK_RC(backlite_storage_remote_stats(s, &rst, &err), BACKLITE_RESULT_OK);
        CHECK_EQ(rst.errors, 0);
        backlite_storage_free(other);
        backlite_storage_free(s);
        backlite_options_free(o);
    }
    redis_server_stop(&rs);
}

int main(void) {
    h_begin();
    RUN(a_length_past_any_memory_is_too_large_and_removes_the_older_value);
    RUN(a_refused_value_leaves_no_older_value_on_the_remote);
    return h_end();
}
