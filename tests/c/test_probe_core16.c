/*
 * Sixteenth probe round of the local cache contract (API.md), kept as tests.
 *
 * an_already_expired_value_too_large_is_answered_alike_by_set_and_set_many: a value
 * over max_size with expiration 0 (or a default of 0) is stored as nothing, OK, by a
 * set (the header: "0 = already expired: nothing is stored, OK"), and set_many answers
 * such an entry the same way, removing the older value under its key.
 * every_hit_is_an_access_and_contains_is_none: a hit by each call that can hit (get,
 * get_chunks, open_reader, cached_call, cached_call_exclusive, lease_try_acquire,
 * lease_step) is an access for the eviction order and a hit in the stats; contains is
 * neither.
 * a_fulfil_of_an_impossible_length_answers_as_a_set_of_it: a fulfil of a length no
 * memory holds answers what a set of it answers (TOO_LARGE, or OK already expired),
 * releases the lease and removes the older value under the key, as a set does.
 */
#include "backlite.h"
#include "harness.h"

/* a length no memory holds (past PTRDIFF_MAX), given with a value that is never read */
#define IMPOSSIBLE ((size_t)PTRDIFF_MAX + 1)
static const uint8_t never_read[1];

/* ------------------------------------------------ too large and already expired */

/* the result of a set_many of the one entry {key, value, expiration} */
static backlite_result set_one_in_batch(backlite_storage *s, const char *key, const uint8_t *value,
                                        size_t len, int64_t expiration) {
    backlite_entry e = {(const uint8_t *)key, strlen(key), value, len, expiration};
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_set_many(s, &e, 1, &err);
    CHECK((rc == BACKLITE_RESULT_OK) == (err == NULL));
    backlite_error_free(err);
    return rc;
}

/* the result of a set of {key, value, expiration} */
static backlite_result set_one(backlite_storage *s, const char *key, const uint8_t *value, size_t len,
                               int64_t expiration) {
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_set(s, K(key), value, len, expiration, &err);
    CHECK((rc == BACKLITE_RESULT_OK) == (err == NULL));
    backlite_error_free(err);
    return rc;
}

/*
 * max_size 100, a value of 200 bytes. For each expiration, a set and a set_many of
 * the value over a key holding "old" answer the same code; the other entry is kept. Already expired (0, or DEFAULT with a
 * default of 0) is OK; DEFAULT with a default of an hour and NEVER are TOO_LARGE.
 * Before, set_many refused every such entry TOO_LARGE, where set answered OK.
 */
static void check_set_and_set_many_agree(int64_t default_ms, int64_t expiration, backlite_result want) {
    backlite_options *o = OPTIONS_SET(.max_size = 100);
    REQUIRE(o);
    REQUIRE_OK(backlite_options_set_default_expiration_ms(o, default_ms));
    uint8_t big[200];
    memset(big, 'x', sizeof big);
    backlite_storage *s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s);
    SET(s, "other", "stays");
    SET(s, "by-set", "old");
    SET(s, "by-batch", "old");
    CHECK_EQ(set_one(s, "by-set", big, sizeof big, expiration), want);
    CHECK_EQ(set_one_in_batch(s, "by-batch", big, sizeof big, expiration), want);
    GET_MISSING(s, "by-set");
    /* a refused batch stores nothing (all or nothing) and, as the set did, removes the
     * older value under the too-large key; one that stores nothing removes it too */
    bool stored_nothing = want == BACKLITE_RESULT_OK;
    GET_MISSING(s, "by-batch");
    GET_EQ(s, "other", "stays");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 5);
    CHECK_EQ(st.evictions, 0);
    /* in a batch beside a value that is stored: the batch stores it */
    backlite_entry two[2] = {
        {K("small"), (const uint8_t *)"1", 1, NEVER},
        {K("by-batch"), big, sizeof big, expiration},
    };
    CHECK_RC(backlite_storage_set_many(s, two, 2, &err), want);
    if (stored_nothing)
        GET_EQ(s, "small", "1");
    else
        GET_MISSING(s, "small");
    backlite_storage_free(s);
}

/*
 * The same with a length no memory holds (past PTRDIFF_MAX, the value never read): a
 * set answers from the length alone, and set_many must answer alike.
 */
static void check_an_impossible_length_agrees(int64_t expiration, backlite_result want) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s);
    SET(s, "by-set", "old");
    SET(s, "by-batch", "old");
    CHECK_EQ(set_one(s, "by-set", never_read, IMPOSSIBLE, expiration), want);
    CHECK_EQ(set_one_in_batch(s, "by-batch", never_read, IMPOSSIBLE, expiration), want);
    GET_MISSING(s, "by-set");
    /* refused or storing nothing, the batch removes the older value, as the set did */
    GET_MISSING(s, "by-batch");
    backlite_storage_free(s);
    /* an entry refused before it, of an ordinary length, loses its older value too;
     * the others keep theirs */
    backlite_options *o = OPTIONS_SET(.max_size = 100);
    REQUIRE(o);
    s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s);
    SET(s, "a", "old");
    SET(s, "b", "old");
    SET(s, "c", "old");
    uint8_t big[200];
    memset(big, 'x', sizeof big);
    backlite_entry three[3] = {
        {K("a"), big, sizeof big, NEVER},
        {K("b"), (const uint8_t *)"new", 3, NEVER},
        {K("c"), never_read, IMPOSSIBLE, expiration},
    };
    CHECK_RC(backlite_storage_set_many(s, three, 3, &err), BACKLITE_RESULT_TOO_LARGE);
    GET_MISSING(s, "a");
    GET_EQ(s, "b", "old");
    if (want == BACKLITE_RESULT_OK)
        GET_EQ(s, "c", "old"); /* already expired: never read, and the batch refused */
    else
        GET_MISSING(s, "c");
    backlite_storage_free(s);
}

static void an_already_expired_value_too_large_is_answered_alike_by_set_and_set_many(void) {
    check_set_and_set_many_agree(3600 * 1000, 0, BACKLITE_RESULT_OK);
    check_set_and_set_many_agree(0, BACKLITE_EXPIRATION_DEFAULT, BACKLITE_RESULT_OK);
    check_set_and_set_many_agree(3600 * 1000, BACKLITE_EXPIRATION_DEFAULT, BACKLITE_RESULT_TOO_LARGE);
    check_set_and_set_many_agree(3600 * 1000, NEVER, BACKLITE_RESULT_TOO_LARGE);
    check_an_impossible_length_agrees(0, BACKLITE_RESULT_OK);
    check_an_impossible_length_agrees(NEVER, BACKLITE_RESULT_TOO_LARGE);
}

/* ------------------------------------------------ every hit is an access */

static int32_t compute_never(void *user_data, backlite_sink *sink) {
    (void)sink;
    ++*(int *)user_data;
    return 1;
}

static int32_t take_no_chunk(void *user_data, const uint8_t *chunk, size_t len) {
    (void)user_data, (void)chunk, (void)len;
    return 0;
}

typedef enum {
    BY_GET, BY_CHUNKS, BY_READER, BY_CACHED, BY_EXCLUSIVE, BY_TRY_ACQUIRE, BY_STEP, BY_CONTAINS, BY_COUNT
} lookup_way;

static const char *const way_names[BY_COUNT] = {
    "get", "get_chunks", "open_reader", "cached_call", "cached_call_exclusive",
    "lease_try_acquire", "lease_step", "contains",
};

/* looks "a" up by `way`, which finds it live: OK */
static backlite_result look_up_a(backlite_storage *s, lookup_way way) {
    backlite_buf buf = {0};
    backlite_lease *lease = NULL;
    backlite_value_reader *reader = NULL;
    uint64_t size = 0;
    int computed = 0;
    backlite_result rc = BACKLITE_RESULT_INTERNAL;
    switch (way) {
    case BY_GET: rc = backlite_storage_get(s, K("a"), &buf, NULL, NULL); break;
    case BY_CHUNKS: rc = backlite_storage_get_chunks(s, K("a"), take_no_chunk, NULL, NULL, NULL); break;
    case BY_READER: rc = backlite_storage_open_reader(s, K("a"), &reader, &size, NULL, NULL); break;
    case BY_CACHED:
        rc = backlite_cached_call(s, K("a"), compute_never, &computed, NULL, NEVER, &buf, NULL);
        break;
    case BY_EXCLUSIVE:
        rc = backlite_cached_call_exclusive(s, K("a"), compute_never, &computed, NEVER, 0, &buf, NULL);
        break;
    case BY_TRY_ACQUIRE: rc = backlite_lease_try_acquire(s, K("a"), 1000, &buf, &lease, NULL); break;
    case BY_STEP: rc = backlite_lease_step(s, K("a"), 0, &buf, &lease, NULL); break;
    case BY_CONTAINS: rc = backlite_storage_contains(s, K("a"), NULL); break;
    case BY_COUNT: break;
    }
    CHECK_EQ(computed, 0);
    CHECK(lease == NULL);
    if (lease != NULL) backlite_lease_abandon(lease);
    backlite_value_reader_free(reader);
    backlite_buf_free(&buf);
    return rc;
}

/*
 * most-recently-used, room for three 1-byte values: a, b, c set in that order, then a
 * looked up. The next set evicts the newest access: a when the look-up was one, c when
 * it was not (contains). The hit counter moves with it.
 */
static void every_hit_is_an_access_and_contains_is_none(void) {
    for (int way = 0; way < BY_COUNT; ++way) {
        backlite_storage *s = OPEN_WITH(":memory:", 3, BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED);
        REQUIRE(s);
        SET(s, "a", "1");
        SET(s, "b", "2");
        SET(s, "c", "3");
        uint64_t hits = STATS(s).hits;
        bool access = way != BY_CONTAINS;
        backlite_result rc = look_up_a(s, way);
        uint64_t hits_after = STATS(s).hits;
        SET(s, "d", "4");
        bool a_kept = HAS(s, "a"), c_kept = HAS(s, "c");
        if (rc != BACKLITE_RESULT_OK || hits_after != hits + access || a_kept == access || c_kept != access)
            h_fail_(__FILE__, __LINE__, "by %s: %s, %" PRIu64 " hits of %" PRIu64 ", a %s, c %s",
                    way_names[way], h_rc_name(rc), hits_after - hits, (uint64_t)access,
                    a_kept ? "kept" : "evicted", c_kept ? "kept" : "evicted");
        backlite_storage_free(s);
    }
}

/* ------------------------------------------------ a fulfil of an impossible length */

/*
 * A lease on "k" is taken (a miss), another caller sets "k" meanwhile (a set does not
 * wait for a lease), then the holder fulfils with a length past PTRDIFF_MAX (the value
 * never read). The header: fulfil stores "as backlite_storage_set would", and such a
 * set answers TOO_LARGE (OK already expired) from the length alone and removes the
 * older value. Before, the fulfil was INVALID_ARGUMENT and "old" stayed.
 */
static void check_a_fulfil_of_an_impossible_length(int64_t expiration, backlite_result want) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s);
    backlite_buf buf = {0};
    backlite_lease *lease = NULL;
    REQUIRE_RC(backlite_lease_try_acquire(s, K("k"), 10000, &buf, &lease, NULL), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    SET(s, "k", "old");
    CHECK_RC(backlite_lease_fulfill(lease, never_read, IMPOSSIBLE, expiration, &err), want);
    GET_MISSING(s, "k");
    /* released: the next caller takes the lease at once */
    lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 10000, &buf, &lease, NULL), BACKLITE_RESULT_NOT_FOUND);
    CHECK(lease != NULL);
    backlite_lease_abandon(lease);
    backlite_buf_free(&buf);
    backlite_storage_free(s);
}

static void a_fulfil_of_an_impossible_length_answers_as_a_set_of_it(void) {
    check_a_fulfil_of_an_impossible_length(NEVER, BACKLITE_RESULT_TOO_LARGE);
    check_a_fulfil_of_an_impossible_length(0, BACKLITE_RESULT_OK);
}

int main(void) {
    h_begin();
    RUN(an_already_expired_value_too_large_is_answered_alike_by_set_and_set_many);
    RUN(every_hit_is_an_access_and_contains_is_none);
    RUN(a_fulfil_of_an_impossible_length_answers_as_a_set_of_it);
    return h_end();
}
