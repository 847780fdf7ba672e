/* Values that say whose they are, so that a read of another key's value, of another
 * set's or of a mix of two is seen: what the value-file probes check reads with. */
#ifndef BACKLITE_TEST_SIGNED_VALUES_H
#define BACKLITE_TEST_SIGNED_VALUES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A value that says whose it is: its key's number, its length and the seed of its
 * bytes in its first 16 bytes, so that a value of another key, another set or a mix of
 * two never passes `whole`. */
static inline void fill(uint8_t *v, size_t len, uint32_t key, uint64_t seed) {
    uint64_t st = seed * 0x9E3779B97F4A7C15ull + key + 1;
    for (size_t i = 0; i < len; i++) {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        v[i] = (uint8_t)st;
    }
    if (len >= 16) {
        uint32_t l = (uint32_t)len;
        memcpy(v, &key, 4);
        memcpy(v + 4, &l, 4);
        memcpy(v + 8, &seed, 8);
    }
}

static inline bool whole(const uint8_t *v, size_t len, uint32_t key) {
    if (len < 16) return true;
    uint32_t k, l;
    uint64_t seed;
    memcpy(&k, v, 4);
    memcpy(&l, v + 4, 4);
    memcpy(&seed, v + 8, 8);
    if (k != key || l != len) return false;
    uint8_t *w = malloc(len);
    if (w == NULL) return false;
    fill(w, len, key, seed);
    bool same = memcmp(w, v, len) == 0;
    free(w);
    return same;
}

#endif
