#ifndef BILLA_FUZZ_DRIVER_H
#define BILLA_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/// The per-input callback libFuzzer calls (LLVMFuzzerTestOneInput's signature).
typedef int (*billa_fuzz_callback)(const uint8_t *data, size_t size);

/// Runs libFuzzer's driver with `argv` (libFuzzer flags and corpus directories) on `callback`. One binary holds
/// every target, so the Swift main picks the callback by name and hands the rest of the command line here.
int billa_fuzz_run(int argc, char **argv, billa_fuzz_callback callback);

#endif
