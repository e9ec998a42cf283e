#ifndef BILLA_BUILD_H
#define BILLA_BUILD_H
/* What `billa --version` reports about the binary itself: the commit it was built from and the kernels the CPU
 * dispatch chose. Kept apart from billa_kernels.h because it describes the build, not an arithmetic contract. */

/* The git commit scripts/build recorded (with "+dirty" when the work tree had changes), or "unknown" for a build
 * that did not go through scripts/build (swift build, swift test). */
const char *bk_build_commit(void);

/* 1 when the AVX-512 prompt tiles are in use: the CPU has AVX-512 F/VL/BW/DQ and BILLA_NO_AVX512 is not set. */
int bk_avx512_in_use(void);

#endif
