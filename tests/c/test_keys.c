/* backlite_storage_keys: every live key exactly once, arbitrary bytes, early stop. */
#include "backlite.h"
#include "harness.h"

#define MAXSEEN 64

typedef struct {
    int calls;
    int stop_after; /* 0 = never stop */
    size_t lens[MAXSEEN];
    uint8_t keys[MAXSEEN][1100];
    void *self;     /* user_data must arrive unchanged */
} seen_keys;

static int32_t record_key(void *ud, const uint8_t *key, size_t len) {
    seen_keys *s = ud;
    if (s->self != s) {
        h_fail_(__FILE__, __LINE__, "visitor got a user_data that is not ours");
        return 1;
    }
    if (s->calls < MAXSEEN && len <= sizeof s->keys[0]) {
        s->lens[s->calls] = len;
        if (len > 0) {
            if (key == NULL)
                h_fail_(__FILE__, __LINE__, "visitor got a NULL key of length %zu", len);
            else
                memcpy(s->keys[s->calls], key, len);
        }
    }
    s->calls++;
    return (s->stop_after > 0 && s->calls >= s->stop_after) ? 1 : 0;
}

static int times_seen(const seen_keys *s, const uint8_t *key, size_t len) {
    int n = 0;
    for (int i = 0; i < s->calls && i < MAXSEEN; i++)
        if (s->lens[i] == len && (len == 0 || memcmp(s->keys[i], key, len) == 0)) n++;
    return n;
}

static void keys_visits_every_live_key_exactly_once(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    static uint8_t long_key[1000];
    for (size_t i = 0; i < sizeof long_key; i++) long_key[i] = (uint8_t)(i * 7);
    const uint8_t k_nul[] = {'a', 0, 'b'}, k_zero[] = {0}, k_hi[] = {0xff, 0xfe, 0x80};
    const struct {
        const uint8_t *p;
        size_t n;
    } keys[] = {
        {NULL, 0},                      /* the empty key */
        {k_nul, sizeof k_nul},          /* with a NUL byte inside */
        {k_zero, sizeof k_zero},        /* a single NUL byte */
        {k_hi, sizeof k_hi},            /* not UTF-8 */
        {(const uint8_t *)"plain", 5},
        {(const uint8_t *)"a", 1},      /* a prefix of k_nul */
        {long_key, sizeof long_key},
    };
    size_t nk = sizeof keys / sizeof keys[0];
    for (size_t i = 0; i < nk; i++)
        CHECK_OK(backlite_storage_set(s, keys[i].p, keys[i].n, K("v"), NEVER, &err));
    /* some keys set twice, some deleted: neither may show up twice or at all */
    CHECK_OK(backlite_storage_set(s, K("plain"), K("again"), NEVER, &err));
    SET(s, "deleted", "x");
    CHECK_OK(backlite_storage_delete(s, K("deleted"), &err));

    seen_keys seen;
    memset(&seen, 0, sizeof seen);
    seen.self = &seen;
    CHECK_OK(backlite_storage_keys(s, record_key, &seen, &err));
    CHECK_EQ(seen.calls, nk);
    for (size_t i = 0; i < nk; i++) {
        int n = times_seen(&seen, keys[i].p, keys[i].n);
        if (n != 1) h_fail_(__FILE__, __LINE__, "key #%zu (%zu bytes) visited %d times", i, keys[i].n, n);
    }
    CHECK_EQ(times_seen(&seen, (const uint8_t *)"deleted", 7), 0);
    backlite_storage_free(s);
}

static void keys_of_an_empty_cache_visits_nothing(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    seen_keys seen;
    memset(&seen, 0, sizeof seen);
    seen.self = &seen;
    CHECK_OK(backlite_storage_keys(s, record_key, &seen, &err));
    CHECK_EQ(seen.calls, 0);
    backlite_storage_free(s);
}

static void a_non_zero_visit_stops_early_and_the_call_is_still_ok(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    for (int i = 0; i < 10; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%d", i);
        SET(s, k, "v");
    }
    seen_keys seen;
    memset(&seen, 0, sizeof seen);
    seen.self = &seen;
    seen.stop_after = 3;
    CHECK_OK(backlite_storage_keys(s, record_key, &seen, &err));
    CHECK_EQ(seen.calls, 3);
    memset(&seen, 0, sizeof seen);
    seen.self = &seen;
    seen.stop_after = 1;
    CHECK_OK(backlite_storage_keys(s, record_key, &seen, &err));
    CHECK_EQ(seen.calls, 1);
    CHECK_EQ(STATS(s).count, 10); /* visiting changes nothing */
    backlite_storage_free(s);
}

static int32_t stop_with_negative(void *ud, const uint8_t *key, size_t len) {
    (void)key;
    (void)len;
    ++*(int *)ud;
    return -1;
}

static void any_non_zero_visit_result_stops(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    SET(s, "b", "2");
    int calls = 0;
    CHECK_OK(backlite_storage_keys(s, stop_with_negative, &calls, &err));
    CHECK_EQ(calls, 1);
    backlite_storage_free(s);
}

static void keys_rejects_a_null_visitor_or_storage(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    CHECK_RC(backlite_storage_keys(s, NULL, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(backlite_storage_keys(s, NULL, NULL, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    int calls = 0;
    CHECK_RC(backlite_storage_keys(NULL, stop_with_negative, &calls, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(calls, 0);
    backlite_storage_free(s);
}

static void keys_sees_keys_written_by_another_handle(void) {
    const char *path = tmp_path("k.db");
    backlite_storage *h1 = OPEN(path, NULL);
    backlite_storage *h2 = OPEN(path, NULL);
    REQUIRE(h1 != NULL && h2 != NULL);
    SET(h1, "from-1", "v");
    SET(h2, "from-2", "v");
    seen_keys seen;
    memset(&seen, 0, sizeof seen);
    seen.self = &seen;
    CHECK_OK(backlite_storage_keys(h1, record_key, &seen, &err));
    CHECK_EQ(seen.calls, 2);
    CHECK_EQ(times_seen(&seen, (const uint8_t *)"from-1", 6), 1);
    CHECK_EQ(times_seen(&seen, (const uint8_t *)"from-2", 6), 1);
    backlite_storage_free(h1);
    backlite_storage_free(h2);
}

/* A visitor that writes a new key for each key it is shown (a copy under a prefix): the
   listing is of the keys live when it began, so it ends. Each new key sorts after the one
   being visited ("new:k000" > "k000"), and the listing went on to it, and to the key
   that one made, without end (stopped here at 1,000 visits). */
typedef struct {
    backlite_storage *s;
    int seen;
    int olds; /* visits of keys that were there before the call */
} copy_ctx;

static int32_t copy_under_prefix(void *ud, const uint8_t *key, size_t len) {
    copy_ctx *c = ud;
    if (++c->seen > 1000) return 1;
    if (len >= 4 && memcmp(key, "new:", 4) != 0) c->olds++;
    uint8_t copy[64];
    if (len + 4 > sizeof copy) return 1;
    memcpy(copy, "new:", 4);
    memcpy(copy + 4, key, len);
    CHECK_OK(backlite_storage_set(c->s, copy, len + 4, K("copy"), NEVER, &err));
    return 0;
}

static int32_t count_visits(void *ud, const uint8_t *key, size_t len) {
    (void)key;
    (void)len;
    ++*(int *)ud;
    return 0;
}

static void a_visitor_writing_new_keys_sees_only_the_keys_there_before(void) {
    const char *paths[] = {tmp_path("copy-keys.db"), ":memory:"};
    for (int p = 0; p < 2; p++) {
        backlite_storage *s = OPEN(paths[p], NULL);
        REQUIRE(s != NULL);
        char k[16];
        for (int i = 0; i < 300; i++) { /* more than one page of the listing */
            snprintf(k, sizeof k, "k%03d", i);
            SET(s, k, "v");
        }
        copy_ctx c = {s, 0, 0};
        CHECK_OK(backlite_storage_keys(s, copy_under_prefix, &c, &err));
        CHECK_EQ(c.seen, 300);
        CHECK_EQ(c.olds, 300);
        int n = 0;
        CHECK_OK(backlite_storage_keys(s, count_visits, &n, &err));
        CHECK_EQ(n, 600); /* the copies are there, for the next listing */
        GET_EQ(s, "new:k123", "copy");
        backlite_storage_free(s);
    }
}

int main(void) {
    h_begin();
    RUN(keys_visits_every_live_key_exactly_once);
    RUN(keys_of_an_empty_cache_visits_nothing);
    RUN(a_non_zero_visit_stops_early_and_the_call_is_still_ok);
    RUN(any_non_zero_visit_result_stops);
    RUN(keys_rejects_a_null_visitor_or_storage);
    RUN(keys_sees_keys_written_by_another_handle);
    RUN(a_visitor_writing_new_keys_sees_only_the_keys_there_before);
    return h_end();
}
