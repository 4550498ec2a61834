/* How fast the kernel copies between the page cache and a user buffer,
 * by where the buffer starts relative to a page (the finding behind
 * services::file::page_aligned and the proto decoder's ALIGN).
 *
 *   cc -O2 -o /tmp/page_offset scripts/bench/page_offset.c
 *   /tmp/page_offset read  FILE       # reads FILE (cached) into buffers at offsets 0, 8, 16, 24, 32, 64, 4072, 4088
 *   /tmp/page_offset write FILE MIB   # writes MIB MiB to FILE (tmpfs: /dev/shm) from the same offsets
 *
 * 256 KiB per call, like a file chunk; best of 3 passes per offset, in GB/s.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s read FILE | write FILE MIB\n", argv[0]);
        return 2;
    }
    int writing = strcmp(argv[1], "write") == 0;
    long long total = writing && argc > 3 ? atoll(argv[3]) * 1024 * 1024 : 0;
    static const size_t offsets[] = {0, 8, 16, 24, 32, 64, 4072, 4088};
    char *base = aligned_alloc(4096, CHUNK + 8192);
    if (!base) return 1;
    memset(base, 0x5a, CHUNK + 8192);
    for (size_t i = 0; i < sizeof offsets / sizeof *offsets; i++) {
        char *buf = base + offsets[i];
        double best = 0;
        for (int pass = 0; pass < 3; pass++) {
            int fd = writing ? open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600) : open(argv[2], O_RDONLY);
            if (fd < 0) { perror(argv[2]); return 1; }
            long long moved = 0;
            double t0 = now();
            if (writing) {
                while (moved < total) {
                    ssize_t n = write(fd, buf, CHUNK);
                    if (n <= 0) { perror("write"); return 1; }
                    moved += n;
                }
            } else {
                ssize_t n;
                while ((n = read(fd, buf, CHUNK)) > 0) moved += n;
            }
            double gbs = moved / (now() - t0) / 1e9;
            close(fd);
            if (writing) unlink(argv[2]);
            if (gbs > best) best = gbs;
        }
        printf("%s offset %4zu: %.2f GB/s\n", writing ? "write from" : "read into", offsets[i], best);
    }
    return 0;
}
