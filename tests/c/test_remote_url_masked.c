/*
 * test_remote_url_masked.c: backlite_remote_url_masked shows a remote URL as the
 * library's messages do, so that a binding or program printing the URL it passed to
 * backlite_options_set_remote hides the same password: a user-info's password, a
 * query, and whatever may be a password in a URL the library refuses. NULL arguments
 * and a URL that is not UTF-8 fail with an error and leave *masked_out untouched.
 */
#include "harness.h"

/* backlite_remote_url_masked(url) equals `want` */
static void check_masked(const char *url, const char *want) {
    backlite_buf masked = {NULL, 0};
    backlite_error *err = NULL;
    backlite_result rc = backlite_remote_url_masked(url, &masked, &err);
    if (rc != BACKLITE_RESULT_OK) {
        h_fail_(__FILE__, __LINE__, "%s: %s", url, err ? backlite_error_message(err) : "?");
        backlite_error_free(err);
        return;
    }
    CHECK(err == NULL);
    CHECK(masked.data != NULL);
    if (masked.len != strlen(want) || memcmp(masked.data, want, masked.len) != 0)
        h_fail_(__FILE__, __LINE__, "%s: shown as \"%.*s\", expected \"%s\"", url, (int)masked.len,
                (const char *)masked.data, want);
    backlite_buf_free(&masked);
}

static void passwords_and_queries_are_masked(void) {
    check_masked("redis://user:s3cret@127.0.0.1:1/2", "redis://user:***@127.0.0.1:1/2");
    check_masked("rediss://s3cret@h", "rediss://***@h");
    check_masked("redis://:s3cret@h:6379", "redis://:***@h:6379");
    check_masked("redis://u:p@ss:s3cret@h", "redis://u:***@h");
    check_masked("redis+unix:///tmp/r.sock?pass=s3cret", "redis+unix:///tmp/r.sock?***");
    check_masked("redis://u:x?s3cret@h", "redis://u:***");
}

static void a_url_without_a_secret_is_shown_as_it_is(void) {
    check_masked("redis://h:1", "redis://h:1");
    check_masked("redis+cluster://a:1,b:2", "redis+cluster://a:1,b:2");
    check_masked("redis://[::1]:6379/0", "redis://[::1]:6379/0");
    check_masked("redis://u@h", "redis://***@h");
    check_masked("", "");
    check_masked("not a url", "not a url");
}

/* The URLs the library refuses are the ones most likely to be printed by hand. */
static void a_mistyped_url_has_what_may_be_its_password_masked(void) {
    check_masked("redis://:s3cret", "redis://:***");
    check_masked("redis://u:s3cret/0", "redis://u:***/0");
    check_masked("rediss://u:s3cret?x=1", "rediss://u:***?***");
    check_masked("redis+cluster://h:1,u:s3cret", "redis+cluster://h:1,u:***");
    check_masked("redis:s3cret@h", "redis:***@h");
    check_masked("redis:u:s3cret", "redis:***");
    check_masked("redis://[::1]:s3cret", "redis://[::1]:***");
}

static void bad_arguments_fail_and_write_nothing(void) {
    backlite_buf masked = {(uint8_t *)"untouched", 9};
    CHECK_RC(backlite_remote_url_masked(NULL, &masked, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK(masked.len == 9 && memcmp(masked.data, "untouched", 9) == 0);
    CHECK_RC(backlite_remote_url_masked("redis://u:s3cret@h", NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_remote_url_masked("redis://u:s3\xff@h", &masked, &err),
             BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(masked.len == 9 && memcmp(masked.data, "untouched", 9) == 0);
    /* err may be NULL */
    CHECK_RESULT(backlite_remote_url_masked(NULL, &masked, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    /* The refusal of a URL that is not UTF-8 does not show it. */
    backlite_error *err = NULL;
    backlite_remote_url_masked("redis://u:s3cret\xff@h", &masked, &err);
    CHECK(err != NULL && strstr(backlite_error_message(err), "s3cret") == NULL);
    backlite_error_free(err);
}

int main(void) {
    h_begin();
    RUN(passwords_and_queries_are_masked);
    RUN(a_url_without_a_secret_is_shown_as_it_is);
    RUN(a_mistyped_url_has_what_may_be_its_password_masked);
    RUN(bad_arguments_fail_and_write_nothing);
    return h_end();
}
