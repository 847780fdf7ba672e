/* A small file system of a test's own, to fill to its last block: a tmpfs mounted in a
 * private mount namespace of a forked child, so that nothing outside the child sees it
 * and it goes away with the child. Needs root or CAP_SYS_ADMIN; skipped loudly without. */
#ifndef BACKLITE_TEST_SMALL_DISK_H
#define BACKLITE_TEST_SMALL_DISK_H

#include <sched.h>
#include <sys/mount.h>

#include "harness.h"

/* Fills the file system of `path` with a file of zeros at `path`, then gives `leave`
 * bytes back (0: none); the file's size, or 0 if it could not be made. */
static inline size_t fill_up(const char *path, size_t leave) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 0;
    static uint8_t zeros[65536];
    size_t total = 0;
    for (size_t chunk = sizeof zeros; chunk >= 512;) {
        ssize_t n = write(fd, zeros, chunk);
        if (n > 0) total += (size_t)n;
        else chunk /= 2; /* ENOSPC: smaller pieces take the last free pages */
    }
    if (leave > 0 && ftruncate(fd, (off_t)(total > leave ? total - leave : 0)) != 0) total = 0;
    close(fd);
    return total;
}

/* Runs `body` in a child, on a folder `name` with a tmpfs of `size` (as mount's
 * "size=" takes it) mounted there; the case fails if a check in `body` failed. */
static inline void on_a_tmpfs(const char *name, const char *size, void (*body)(const char *dir)) {
    const char *dir = tmp_path(name);
    REQUIRE(mkdir(dir, 0755) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0) {
            fprintf(stderr, "# private mount namespace: %s\n", strerror(errno));
            _exit(77);
        }
        char options[32];
        snprintf(options, sizeof options, "size=%s", size);
        if (mount("tmpfs", dir, "tmpfs", 0, options) != 0) {
            fprintf(stderr, "# mount tmpfs on %s: %s\n", dir, strerror(errno));
            _exit(77);
        }
        int before = atomic_load(&h_st()->failures);
        body(dir);
        umount2(dir, MNT_DETACH);
        _exit(atomic_load(&h_st()->failures) == before ? 0 : 1);
    }
    int code = CHILD_EXIT_CODE(pid);
    if (code == 77) SKIP("cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN): disk-full behaviour not tested");
    CHECK_EQ(code, 0);
}

#endif
