/*
 * Values kept in files (issue 16), tenth probe round: a socket put in a value file's
 * place (which no open reaches: ENXIO) is a miss whose row goes, as a FIFO, a link or
 * a folder there is, and check counts and repairs it.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#define THRESHOLD 4096

typedef struct {
    uint8_t *bytes;
    size_t len, cap;
    int calls;
} gathered;

static int32_t gather(void *user, const uint8_t *chunk, size_t len) {
    gathered *g = user;
    g->calls++;
    if (g->len + len <= g->cap) memcpy(g->bytes + g->len, chunk, len);
    g->len += len;
    return 0;
}

/* Every read of `key` misses: get, get_chunks (no chunk handed over), open_reader,
 * contains; a miss is an answer, never an error. */
static void every_read_misses(backlite_storage *s, const char *key) {
    GET_MISSING(s, key);
    gathered g = {0};
    CHECK_RC(backlite_storage_get_chunks(s, K(key), gather, &g, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(g.calls, 0);
    backlite_value_reader *r = NULL;
    CHECK_RC(backlite_storage_open_reader(s, K(key), &r, NULL, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK(r == NULL);
    CHECK(!HAS(s, key));
}

/* Binds a Unix socket at `path` (relative to its folder: a socket's name is short). */
static bool bind_socket_at(const char *path) {
    char dir[PATH_MAX + 400];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) return false;
    *slash = '\0';
    int here = open(".", O_RDONLY | O_DIRECTORY);
    if (here < 0 || chdir(dir) != 0) return false;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", slash + 1);
    bool bound = fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    if (fd >= 0) close(fd);
    bool back = fchdir(here) == 0;
    close(here);
    return bound && back;
}

/* A socket in place of a value file is no file of ours, as a FIFO, a link or a folder
 * there is not: every read misses (opening a socket fails, ENXIO), its row goes, and a
 * check counts it damaged and repairs the cache. */
static void a_socket_in_place_of_a_value_file_is_a_miss_and_check_repairs(void) {
    for (int how = 0; how < 2; how++) {
        const char *path = tmp_path(how == 0 ? "sock-get.db" : "sock-check.db");
        backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
        REQUIRE(s != NULL);
        size_t n = 50000;
        uint8_t *v = h_pattern(n, 101);
        SET_BYTES(s, "k", v, n, NEVER);
        SET_BYTES(s, "other", v, n, NEVER);
        char file[PATH_MAX + 400];
        /* "k"'s file: the one that is not "other"'s, found by removing "other" first. */
        CHECK_OK(backlite_storage_delete(s, K("other"), &err));
        snprintf(file, sizeof file, "%s", only_value_file(path));
        SET_BYTES(s, "other", v, n, NEVER);
        REQUIRE(unlink(file) == 0);
        REQUIRE(bind_socket_at(file));
        struct stat st;
        REQUIRE(lstat(file, &st) == 0 && S_ISSOCK(st.st_mode));
        backlite_check_report rep;
        if (how == 0) {
            every_read_misses(s, "k");
            every_read_misses(s, "k");
            /* A miss each by get, get_chunks and open_reader; contains counts nothing. */
            backlite_stats st = STATS(s);
            CHECK(st.hits == 0 && st.misses == 6 && st.count == 1 && st.total_size == n);
        } else {
            CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
            CHECK(rep.healthy == 0 && rep.damaged == 1);
        }
        CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        CHECK(rep.healthy == 1 && rep.damaged == 0 && rep.entries == 1);
        every_read_misses(s, "k");
        GET_BYTES_EQ(s, "other", v, n);
        backlite_stats stats = STATS(s);
        CHECK(stats.count == 1 && stats.total_size == n);
        CHECK_OK(backlite_storage_clear(s, &err));
        CHECK_OK(backlite_storage_vacuum(s, &err));
        backlite_storage_free(s);
        free(v);
    }
}

int main(void) {
    h_begin();
    RUN(a_socket_in_place_of_a_value_file_is_a_miss_and_check_repairs);
    return h_end();
}
