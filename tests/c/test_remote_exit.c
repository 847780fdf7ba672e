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

int main(void) {
    h_begin();
    quiet_stopped_children();
    if (start_test_server(&server, server_dir) != 0) return 1;
    RUN(a_write_behind_queue_is_sent_at_exit_without_a_free);
    redis_server_stop(&server);
    return h_end();
}
