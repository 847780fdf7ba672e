/*
 * robust.h: what the robustness programs share beyond tests/c/harness.h: a CRC-32,
 * values that can be recomputed from their key (so that any bytes read back can be
 * judged without remembering them), and small process helpers.
 */
#ifndef BACKLITE_ROBUST_H
#define BACKLITE_ROBUST_H

#include <signal.h>
#include <sys/wait.h>

#include "harness.h"

/* CRC-32 (IEEE, reflected), as zlib computes it: for the logs only */
static inline uint32_t r_crc32(const uint8_t *p, size_t n) {
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* FNV-1a of a byte string: the seed of a key's value */
static inline uint64_t r_fnv(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* fills v[0..n) with bytes that depend only on seed */
static inline void r_fill(uint8_t *v, size_t n, uint64_t seed) {
    uint64_t st = seed;
    size_t i = 0;
    while (i < n) {
        uint64_t x = h_rand(&st);
        for (int k = 0; k < 8 && i < n; k++, x >>= 8) v[i++] = (uint8_t)x;
    }
}

/* the one value a key of the crash test may ever hold: its length and bytes follow
   from the key alone (1..max_len bytes; v must have room for max_len) */
static inline size_t r_value_of_key(const char *key, uint8_t *v, size_t max_len) {
    uint64_t h = r_fnv(key, strlen(key));
    size_t len = 1 + (size_t)(h % max_len);
    r_fill(v, len, h);
    return len;
}

/* write(2) of the whole buffer, or false */
static inline bool r_write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static inline double r_seconds_since(int64_t start_ms) { return (double)(h_now_ms() - start_ms) / 1000.0; }

/* an integer from the environment, or the default */
static inline long r_env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') return dflt;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    return end != NULL && *end == '\0' && n > 0 ? n : dflt;
}

#endif /* BACKLITE_ROBUST_H */
