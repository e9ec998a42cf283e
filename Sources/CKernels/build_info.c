/* The build's own description for `billa --version`. scripts/build writes build_commit.h (git-ignored) before it
 * builds and touches this file when the commit changes, so the release binary names the commit it came from while
 * `swift build` and `swift test` need no generated file at all. */
#include "billa_kernels.h"

#if __has_include("build_commit.h")
#include "build_commit.h"
#endif

#ifndef BILLA_BUILD_COMMIT
#define BILLA_BUILD_COMMIT "unknown"
#endif

const char *bk_build_commit(void) { return BILLA_BUILD_COMMIT; }
