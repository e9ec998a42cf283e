#include "fuzz_driver.h"

// Provided by libclang_rt.fuzzer, which `-sanitize=fuzzer` links. Its own main() is not used: SwiftPM links the
// Swift main of BillaFuzz as the program's entry point.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

int billa_fuzz_run(int argc, char **argv, billa_fuzz_callback callback) {
    return LLVMFuzzerRunDriver(&argc, &argv, callback);
}
