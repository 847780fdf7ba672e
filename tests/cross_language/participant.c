/*
 * One participant of the cross-language test (C): writes its keys, reads back every
 * other participant's keys byte for byte, then asks for the shared memoised key
 * through backlite_cached_call_exclusive.
 *     participant PATH NAME NAMES(comma-separated) COMPUTE_LOG
 */
#include "backlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEYS 20

static const char *me, *compute_log;

static void die(const char *what, backlite_error *err) {
    fprintf(stderr, "c %s: %s: %s\n", me, what, err ? backlite_error_message(err) : "");
    exit(1);
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int32_t compute(void *user_data, backlite_sink *sink) {
    (void)user_data;
    FILE *log = fopen(compute_log, "a");
    if (log == NULL) return 1;
    fprintf(log, "%s\n", me);
    fclose(log);
    sleep_ms(500);
    char value[64];
    int n = snprintf(value, sizeof value, "computed by %s", me);
    return backlite_sink_write(sink, (const uint8_t *)value, (size_t)n) == BACKLITE_RESULT_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    const char *path = argv[1];
    me = argv[2];
    compute_log = argv[4];
    backlite_storage *s = NULL;
    backlite_error *err = NULL;
    if (backlite_storage_open(path, NULL, &s, &err) != BACKLITE_RESULT_OK) die("open", err);
    char key[64], value[64];
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof key, "%s-%d", me, i);
        int n = snprintf(value, sizeof value, "%s wrote %d", me, i);
        if (backlite_storage_set(s, (const uint8_t *)key, strlen(key), (const uint8_t *)value, (size_t)n,
                                 BACKLITE_EXPIRATION_NEVER, &err) != BACKLITE_RESULT_OK)
            die("set", err);
    }
    char names[256];
    snprintf(names, sizeof names, "%s", argv[3]);
    for (char *other = strtok(names, ","); other != NULL; other = strtok(NULL, ",")) {
        for (int i = 0; i < KEYS; i++) {
            snprintf(key, sizeof key, "%s-%d", other, i);
            int n = snprintf(value, sizeof value, "%s wrote %d", other, i);
            backlite_buf got = {0};
            backlite_result r = BACKLITE_RESULT_NOT_FOUND;
            for (int tries = 0; tries < 3000; tries++) { /* up to 30 s for the others to start */
                r = backlite_storage_get(s, (const uint8_t *)key, strlen(key), &got, NULL, NULL);
                if (r != BACKLITE_RESULT_NOT_FOUND) break;
                sleep_ms(10);
            }
            if (r != BACKLITE_RESULT_OK) die(key, NULL);
            if (got.len != (size_t)n || memcmp(got.data, value, got.len) != 0) die("wrong bytes", NULL);
            backlite_buf_free(&got);
        }
    }
    backlite_buf memo = {0};
    if (backlite_cached_call_exclusive(s, (const uint8_t *)"shared-memo", 11, compute, NULL,
                                       BACKLITE_EXPIRATION_NEVER, 30000, &memo, &err) != BACKLITE_RESULT_OK)
        die("cached_call_exclusive", err);
    printf("%s: %.*s\n", me, (int)memo.len, memo.data);
    backlite_buf_free(&memo);
    backlite_storage_free(s);
    return 0;
}
