#include "fuzz_driver.h"

// Provided by libclang_rt.fuzzer, which `-sanitize=fuzzer` links. Its own main() is not the entry point: SwiftPM
// links the Swift main of BillaFuzz as the program's main.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

static billa_fuzz_callback selected;

// libFuzzer's archive member that holds its main() refers to this symbol, so it must exist; it runs the target the
// Swift main selected.
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return selected ? selected(data, size) : 0; }

int billa_fuzz_run(int argc, char **argv, billa_fuzz_callback callback) {
    selected = callback;
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
