/*
 * Twelfth probe round of the local cache contract (API.md), kept as tests.
 *
 * a_refused_batch_names_its_entry_and_changes_nothing: a set_many refused for one of
 * its entries names it in its message, whatever refused it.
 */
#include "backlite.h"
#include "harness.h"

static backlite_lifetime_stats lifetime(backlite_storage *s) {
    backlite_lifetime_stats l;
    memset(&l, 0, sizeof l);
    CHECK_OK(backlite_storage_lifetime_stats(s, &l, &err));
    return l;
}

#define SAME_STATS(a, b)                                                                            \
    do {                                                                                            \
        CHECK_EQ((a).count, (b).count);                                                             \
        CHECK_EQ((a).total_size, (b).total_size);                                                   \
        CHECK_EQ((a).hits, (b).hits);                                                               \
        CHECK_EQ((a).misses, (b).misses);                                                           \
        CHECK_EQ((a).evictions, (b).evictions);                                                     \
        CHECK_EQ((a).expirations, (b).expirations);                                                 \
    } while (0)

/* ------------------------------------------------ set_many partial failure */

/* the refusal of a batch: its code, and a message that begins with `prefix` (the entry) */
static void h_refused_batch_(const char *file, int line, backlite_storage *s, const backlite_entry *e, size_t n,
                             backlite_result want, const char *prefix) {
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_set_many(s, e, n, &err);
    h_check_rc_(file, line, "set_many", rc, want, err);
    const char *msg = backlite_error_message(err);
    if (err != NULL && strncmp(msg, prefix, strlen(prefix)) != 0)
        h_fail_(file, line, "set_many's error does not name the entry (%s): \"%s\"", prefix, msg);
    backlite_error_free(err);
}
#define REFUSED_BATCH(s, e, n, want, prefix) h_refused_batch_(__FILE__, __LINE__, (s), (e), (n), (want), (prefix))

/*
 * A batch refused for one entry (a value too large, a key too long, a bad expiration,
 * a NULL value) writes nothing, counts nothing, and its error names that entry, as
 * set_many's own checks of each entry do; the older values of every key of the batch
 * stay, and the same handle then stores the batch put right. Before, a value too large
 * or a key too long gave only their sizes ("a value of 200 bytes is larger than
 * max_size (100 bytes): not stored"), whichever of the batch it was.
 */
static void a_refused_batch_names_its_entry_and_changes_nothing(void) {
    backlite_storage *s = OPEN_SET(tmp_path("batch.db"), .max_size = 100);
    REQUIRE(s != NULL);
    SET(s, "a", "old-a");
    SET(s, "b", "old-b");
    SET(s, "c", "old-c");
    backlite_stats before = STATS(s);
    backlite_lifetime_stats lbefore = lifetime(s);
    uint8_t big[200];
    memset(big, 'x', sizeof big);
    backlite_entry e[3] = {
        {(const uint8_t *)"a", 1, (const uint8_t *)"new", 3, NEVER},
        {(const uint8_t *)"b", 1, big, sizeof big, NEVER},
        {(const uint8_t *)"c", 1, (const uint8_t *)"new", 3, NEVER},
    };
    REFUSED_BATCH(s, e, 3, BACKLITE_RESULT_TOO_LARGE, "entries[1]");
    e[1].value = (const uint8_t *)"new";
    e[1].value_len = 3;
    e[2].value = big; /* the same, last */
    e[2].value_len = sizeof big;
    REFUSED_BATCH(s, e, 3, BACKLITE_RESULT_TOO_LARGE, "entries[2]");
    e[2].value = (const uint8_t *)"new";
    e[2].value_len = 3;
    /* a key over the limit: refused from its length, never read */
    e[1].key_len = (size_t)BACKLITE_MAX_KEY_SIZE + 1;
    REFUSED_BATCH(s, e, 3, BACKLITE_RESULT_INVALID_ARGUMENT, "entries[1]");
    e[1].key_len = 1;
    e[2].expiration_ms = -5;
    REFUSED_BATCH(s, e, 3, BACKLITE_RESULT_INVALID_ARGUMENT, "entries[2]");
    e[2].expiration_ms = NEVER;
    e[2].value = NULL;
    REFUSED_BATCH(s, e, 3, BACKLITE_RESULT_NULL_PARAMETER, "entries[2]");
    e[2].value = (const uint8_t *)"new";
    SAME_STATS(STATS(s), before);
    backlite_lifetime_stats l = lifetime(s);
    CHECK_EQ(l.hits, lbefore.hits);
    CHECK_EQ(l.misses, lbefore.misses);
    CHECK_EQ(l.evictions, lbefore.evictions);
    CHECK_EQ(l.expirations, lbefore.expirations);
    GET_EQ(s, "a", "old-a");
    GET_EQ(s, "b", "old-b");
    GET_EQ(s, "c", "old-c");
    CHECK_OK(backlite_storage_set_many(s, e, 3, &err));
    GET_EQ(s, "a", "new");
    GET_EQ(s, "b", "new");
    GET_EQ(s, "c", "new");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 9);
    backlite_storage_free(s);
}


int main(void) {
    h_begin();
    RUN(a_refused_batch_names_its_entry_and_changes_nothing);
    return h_end();
}
