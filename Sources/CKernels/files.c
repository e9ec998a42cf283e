/* File-to-file copy that Swift's Glibc module does not expose (copy_file_range needs _GNU_SOURCE). */
#define _GNU_SOURCE
#include "billa_kernels.h"
#include <errno.h>
#if defined(__linux__)
#include <unistd.h>
#include <sys/syscall.h>
#endif

int64_t bk_copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t len) {
#if defined(__linux__) && defined(SYS_copy_file_range)
    long long in = (long long)*off_in, out = (long long)*off_out;   /* the kernel's loff_t */
    long n = syscall(SYS_copy_file_range, fd_in, &in, fd_out, &out, len, 0u);
    if (n > 0) { *off_in = in; *off_out = out; }
    return n;
#else
    (void)fd_in; (void)off_in; (void)fd_out; (void)off_out; (void)len;
    errno = ENOSYS;
    return -1;
#endif
}

#if defined(__linux__)
#include <fcntl.h>
#endif

int bk_start_writeback(int fd, int64_t offset, int64_t len) {
#if defined(__linux__)
    return sync_file_range(fd, (off_t)offset, (off_t)len, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd; (void)offset; (void)len;
    return 0;
#endif
}
