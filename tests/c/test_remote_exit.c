/*
 * test_remote_exit.c: a C program that returns from main (or calls exit) without
 * freeing a WRITE_BEHIND handle still sends what the handle's queue holds, as
 * backlite_storage_free would: the library's atexit handler sends it. Before, the
 * queue's thread ended with the process: the queued sets never reached the remote,
 * and a queued delete left the deleted value there for every other machine to read.
 */
#include "harness.h"
#include "redis_server.h"
#include "remote_calls.h"

#include <sys/wait.h>
#include <unistd.h>

static redis_server server;
static char server_dir[PATH_MAX];

/* Kept reachable, as a program's global handle would be. */
static backlite_storage *left_open;

static void a_write_behind_queue_is_sent_at_exit_without_a_free(void) {
    backlite_options *rw = remote_at(server.url, 10000);
    backlite_storage *other = open_file("exit-other.db", rw);
    SET(other, "deleted", "old");
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_options *wb = remote_at(server.url, 10000);
        if (backlite_options_set_remote_mode(wb, BACKLITE_REMOTE_MODE_WRITE_BEHIND) != BACKLITE_RESULT_OK)
            _exit(2);
        if (backlite_storage_open(tmp_path("exit-child.db"), wb, &left_open, NULL) != BACKLITE_RESULT_OK)
            _exit(3);
        backlite_options_free(wb);
        char key[32];
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof key, "k%d", i);
            if (backlite_storage_set(left_open, K(key), K("from the child"), BACKLITE_EXPIRATION_NEVER, NULL) !=
                BACKLITE_RESULT_OK)
                _exit(4);
        }
        /* NOT_FOUND: in WRITE_BEHIND the file answers, and it never held the key. */
        if (backlite_storage_delete(left_open, K("deleted"), NULL) != BACKLITE_RESULT_NOT_FOUND) _exit(5);
        exit(0); /* the handle is never freed */
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    backlite_storage *fresh = open_file("exit-fresh.db", rw);
    backlite_buf v = {0};
    CHECK_EQ(backlite_storage_get(fresh, K("deleted"), &v, NULL, NULL), BACKLITE_RESULT_NOT_FOUND);
    backlite_buf_free(&v);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        GET_EQ(fresh, key, "from the child");
    }
    backlite_storage_free(fresh);
    backlite_storage_free(other);
    backlite_options_free(rw);
}

/* A READ_WRITE handle never freed pays the unlink it owes the remote at exit, as its
 * free would: its delete never reached the server (refused to a user without EVAL), and
 * the deleted value stayed there for every other machine to read once the process was
 * gone. */
static void an_owed_unlink_is_paid_at_exit_without_a_free(void) {
    char reply[64];
    CHECK_STR_EQ(redis_cli(server.port,
                           "ACL SETUSER noeval on '>pw' '~*' +get +set +unlink +pttl +del +pexpire +time +scan",
                           reply, sizeof reply),
                 "OK");
    backlite_options *rw = remote_at(server.url, 10000);
    backlite_storage *other = open_file("owed-other.db", rw);
    SET(other, "owed", "old");
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_options_free(rw); /* the parent's, unreachable once the child exits */
        char url[96];
        snprintf(url, sizeof url, "redis://noeval:pw@127.0.0.1:%d", server.port);
        backlite_options *o = backlite_options_new();
        if (backlite_options_set_remote(o, url) != BACKLITE_RESULT_OK) _exit(2);
        if (backlite_storage_open(tmp_path("owed-child.db"), o, &left_open, NULL) != BACKLITE_RESULT_OK)
            _exit(3);
        backlite_options_free(o);
        /* The file never held the key, and the remote refused the delete's script. */
        if (backlite_storage_delete(left_open, K("owed"), NULL) != BACKLITE_RESULT_NOT_FOUND) _exit(4);
        backlite_remote_stats st;
        if (backlite_storage_remote_stats(left_open, &st, NULL) != BACKLITE_RESULT_OK || st.errors != 1)
            _exit(5);
        sleep(1); /* past the back-off after that one failure (100 ms) */
        exit(0);  /* the handle is never freed */
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    backlite_storage *fresh = open_file("owed-fresh.db", rw);
    backlite_buf v = {0};
    CHECK_EQ(backlite_storage_get(fresh, K("owed"), &v, NULL, NULL), BACKLITE_RESULT_NOT_FOUND);
    backlite_buf_free(&v);
    backlite_storage_free(fresh);
    backlite_storage_free(other);
    backlite_options_free(rw);
}

int main(void) {
    h_begin();
    quiet_stopped_children();
    if (start_test_server(&server, server_dir) != 0) return 1;
    RUN(a_write_behind_queue_is_sent_at_exit_without_a_free);
    RUN(an_owed_unlink_is_paid_at_exit_without_a_free);
    redis_server_stop(&server);
    return h_end();
}
