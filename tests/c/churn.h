/* One key ("same") overwritten as fast as they can by other processes while a test
 * reads it, and each read checked whole: what the churn tests share. Every value is
 * `len` bytes of one fill: 'S' (set before the overwriters start), 'A' or 'B' (theirs). */
#ifndef BACKLITE_TEST_CHURN_H
#define BACKLITE_TEST_CHURN_H

#include "harness.h"

/* A child: opens the cache at `path` with `threshold` and sets "same" `times` times.
 * Exits 3 if it cannot begin, 4 if a set fails. */
__attribute__((noreturn)) static inline void churn_overwrite(const char *path, int64_t threshold, size_t len,
                                                             uint8_t fill, int times) {
    backlite_storage *s = NULL;
    backlite_error *e = NULL;
    backlite_options *o = backlite_options_new();
    if (!o || backlite_options_set_file_threshold(o, threshold) != BACKLITE_RESULT_OK ||
        backlite_options_set_busy_timeout_ms(o, 20000) != BACKLITE_RESULT_OK ||
        backlite_storage_open(path, o, &s, &e) != BACKLITE_RESULT_OK)
        h_child_exit(3);
    backlite_options_free(o);
    uint8_t *v = malloc(len);
    if (!v) h_child_exit(3);
    memset(v, fill, len);
    for (int i = 0; i < times; i++)
        if (backlite_storage_set(s, K("same"), v, len, NEVER, &e) != BACKLITE_RESULT_OK) h_child_exit(4);
    free(v);
    backlite_storage_free(s);
    h_child_exit(0);
}

/* Whether `b` holds one whole value of `want` bytes: no mix of two, none cut short. */
static inline bool churn_whole(const uint8_t *b, size_t len, size_t want) {
    if (len != want || (b[0] != 'A' && b[0] != 'B' && b[0] != 'S')) return false;
    for (size_t i = 1; i < len; i++)
        if (b[i] != b[0]) return false;
    return true;
}

/* What a get_chunks visitor gathered, in `bytes` of `cap` bytes. */
typedef struct {
    uint8_t *bytes;
    size_t len, cap;
} gathered;

/* The visitor: stops (non-zero) at a value longer than `cap`. */
static inline int32_t gather(void *user, const uint8_t *chunk, size_t len) {
    gathered *g = user;
    if (g->len + len > g->cap) return 1;
    memcpy(g->bytes + g->len, chunk, len);
    g->len += len;
    return 0;
}

#endif
