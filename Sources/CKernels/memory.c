/* malloc tuning that Swift's Glibc module does not expose (malloc.h). */
#include "billa_kernels.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

int bk_set_mmap_threshold(size_t bytes) {
#if defined(__GLIBC__)
    return mallopt(M_MMAP_THRESHOLD, (int)bytes);
#else
    (void)bytes;
    return 0;
#endif
}
