/* Version, result codes, constants and the layout of the public structs. */
#include <stddef.h>

#include "backlite.h"
#include "harness.h"

/* The values of API.md are part of the ABI: a change must fail the build. */
_Static_assert(BACKLITE_RESULT_OK == 0, "OK");
_Static_assert(BACKLITE_RESULT_NOT_FOUND == 1, "NOT_FOUND");
_Static_assert(BACKLITE_RESULT_NULL_PARAMETER == 2, "NULL_PARAMETER");
_Static_assert(BACKLITE_RESULT_INVALID_ARGUMENT == 3, "INVALID_ARGUMENT");
_Static_assert(BACKLITE_RESULT_IO == 4, "IO");
_Static_assert(BACKLITE_RESULT_NOT_A_CACHE == 5, "NOT_A_CACHE");
_Static_assert(BACKLITE_RESULT_CORRUPT == 6, "CORRUPT");
_Static_assert(BACKLITE_RESULT_BUSY == 7, "BUSY");
_Static_assert(BACKLITE_RESULT_TOO_LARGE == 8, "TOO_LARGE");
_Static_assert(BACKLITE_RESULT_CALLBACK_FAILED == 9, "CALLBACK_FAILED");
_Static_assert(BACKLITE_RESULT_INCOMPATIBLE == 10, "INCOMPATIBLE");
_Static_assert(BACKLITE_RESULT_PANIC == 11, "PANIC");
_Static_assert(BACKLITE_RESULT_INTERNAL == 12, "INTERNAL");
_Static_assert(BACKLITE_RESULT_LEASE_LOST == 13, "LEASE_LOST");
_Static_assert(BACKLITE_RESULT_LEASE_HELD == 14, "LEASE_HELD");
_Static_assert(BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED == 0, "LRU");
_Static_assert(BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED == 1, "LFU");
_Static_assert(BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED == 2, "MRU");
_Static_assert(BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT == 3, "FIFO");
_Static_assert(BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT == 4, "LIFO");
_Static_assert(BACKLITE_EXPIRATION_DEFAULT == -1, "EXPIRATION_DEFAULT");
_Static_assert(BACKLITE_EXPIRATION_NEVER == -2, "EXPIRATION_NEVER");
_Static_assert(sizeof(backlite_result) == 4 && (backlite_result)-1 < 0, "backlite_result is int32_t");
_Static_assert(sizeof(backlite_eviction_policy) == 4 && (backlite_eviction_policy)-1 < 0,
               "backlite_eviction_policy is int32_t");
_Static_assert(BACKLITE_VERSION_NUMBER ==
                   BACKLITE_VERSION_MAJOR * 10000 + BACKLITE_VERSION_MINOR * 100 + BACKLITE_VERSION_PATCH,
               "version number formula");

static void version_string_is_0_1_0_and_matches_the_header(void) {
    const char *v = backlite_version();
    REQUIRE(v != NULL);
    CHECK_STR_EQ(v, "0.1.0");
    CHECK_STR_EQ(v, BACKLITE_VERSION_STRING);
    CHECK_STR_EQ(BACKLITE_VERSION_STRING, "0.1.0");
    /* a static string: the same text on every call, never to be freed */
    CHECK_STR_EQ(backlite_version(), v);
}

static void version_number_is_100_and_matches_the_header(void) {
    CHECK_EQ(backlite_version_number(), 100);
    CHECK_EQ(backlite_version_number(), BACKLITE_VERSION_NUMBER);
    CHECK_EQ(BACKLITE_VERSION_NUMBER, 100);
    CHECK_EQ(BACKLITE_VERSION_MAJOR, 0);
    CHECK_EQ(BACKLITE_VERSION_MINOR, 1);
    CHECK_EQ(BACKLITE_VERSION_PATCH, 0);
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", (int)BACKLITE_VERSION_MAJOR, (int)BACKLITE_VERSION_MINOR,
             (int)BACKLITE_VERSION_PATCH);
    CHECK_STR_EQ(buf, backlite_version());
}

static void result_str_names_every_code_with_its_own_text(void) {
    const char *texts[15];
    for (int32_t r = 0; r <= 14; r++) {
        texts[r] = backlite_result_str(r);
        CHECK(texts[r] != NULL);
        if (texts[r] == NULL) continue;
        CHECK(texts[r][0] != '\0');
        CHECK_STR_EQ(backlite_result_str(r), texts[r]); /* static, stable text */
    }
    for (int a = 0; a <= 14; a++)
        for (int b = a + 1; b <= 14; b++)
            if (texts[a] && texts[b] && strcmp(texts[a], texts[b]) == 0)
                h_fail_(__FILE__, __LINE__, "codes %d and %d share the text \"%s\"", a, b, texts[a]);
}

static void result_str_gives_a_text_for_unknown_codes(void) {
    const int32_t unknown[] = {15, 100, 1000, -1, -2, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *t = backlite_result_str(unknown[i]);
        CHECK(t != NULL);
        if (t) CHECK(t[0] != '\0');
    }
}

static void struct_layouts_follow_the_contract(void) {
    CHECK_EQ(offsetof(backlite_buf, data), 0);
    CHECK_EQ(offsetof(backlite_buf, len), sizeof(uint8_t *));
    CHECK_EQ(sizeof(((backlite_buf *)0)->len), sizeof(size_t));

    CHECK_EQ(offsetof(backlite_entry, key), 0);
    CHECK(offsetof(backlite_entry, key_len) < offsetof(backlite_entry, value));
    CHECK(offsetof(backlite_entry, value) < offsetof(backlite_entry, value_len));
    CHECK(offsetof(backlite_entry, value_len) < offsetof(backlite_entry, expiration_ms));
    CHECK_EQ(sizeof(((backlite_entry *)0)->expiration_ms), 8);
    CHECK_EQ(sizeof(((backlite_entry *)0)->key_len), sizeof(size_t));

    CHECK_EQ(sizeof(backlite_stats), 7 * sizeof(uint64_t));
    CHECK_EQ(offsetof(backlite_stats, count), 0);
    CHECK_EQ(offsetof(backlite_stats, total_size), 8);
    CHECK_EQ(offsetof(backlite_stats, max_size), 16);
    CHECK_EQ(offsetof(backlite_stats, hits), 24);
    CHECK_EQ(offsetof(backlite_stats, misses), 32);
    CHECK_EQ(offsetof(backlite_stats, evictions), 40);
    CHECK_EQ(offsetof(backlite_stats, expirations), 48);

    CHECK_EQ(offsetof(backlite_barrier, user_data), 0);
    CHECK(offsetof(backlite_barrier, lock) < offsetof(backlite_barrier, unlock));

    /* the callback types take user_data first (compile-time check by assignment) */
    backlite_compute_fn c = NULL;
    backlite_key_visitor v = NULL;
    int32_t (*c2)(void *, backlite_sink *) = c;
    int32_t (*v2)(void *, const uint8_t *, size_t) = v;
    CHECK(c2 == NULL && v2 == NULL);
}

int main(void) {
    h_begin();
    RUN(version_string_is_0_1_0_and_matches_the_header);
    RUN(version_number_is_100_and_matches_the_header);
    RUN(result_str_names_every_code_with_its_own_text);
    RUN(result_str_gives_a_text_for_unknown_codes);
    RUN(struct_layouts_follow_the_contract);
    return h_end();
}
