/* A program outside BackLite's tree: open a cache, set a key, get it back, print the
 * version. Built against an installed BackLite by tests/consumer/run.sh, once with
 * find_package(backlite) and once with pkg-config. */
#include <backlite.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what, backlite_result r, backlite_error *err) {
    fprintf(stderr, "consumer: %s: %s (%s)\n", what, err ? backlite_error_message(err) : "",
            backlite_result_str(r));
    backlite_error_free(err);
    return 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : ":memory:";
    backlite_storage *s = NULL;
    backlite_error *err = NULL;
    backlite_result r = backlite_storage_open(path, NULL, &s, &err);
    if (r != BACKLITE_RESULT_OK) {
        return fail("open", r, err);
    }

    static const char key[] = "greeting";
    static const char value[] = "hello from an installed backlite";
    r = backlite_storage_set(s, (const uint8_t *)key, strlen(key), (const uint8_t *)value,
                             strlen(value), BACKLITE_EXPIRATION_NEVER, &err);
    if (r != BACKLITE_RESULT_OK) {
        backlite_storage_free(s);
        return fail("set", r, err);
    }

    backlite_buf got = {NULL, 0};
    r = backlite_storage_get(s, (const uint8_t *)key, strlen(key), &got, NULL, &err);
    if (r != BACKLITE_RESULT_OK) {
        backlite_storage_free(s);
        return fail("get", r, err);
    }
    int same = got.len == strlen(value) && memcmp(got.data, value, got.len) == 0;
    printf("backlite %s (header %s): %s = %.*s\n", backlite_version(), BACKLITE_VERSION_STRING,
           key, (int)got.len, (const char *)got.data);
    backlite_buf_free(&got);
    backlite_storage_free(s);

    if (!same) {
        fprintf(stderr, "consumer: got back something else than was set\n");
        return 1;
    }
    if (strcmp(backlite_version(), BACKLITE_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: header and library versions differ\n");
        return 1;
    }
    return 0;
}
