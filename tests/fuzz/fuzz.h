/*
 * What a fuzz target gives driver.c: the libFuzzer entry point, and
 * FUZZ_SEEDS valid inputs to mutate (also written as libFuzzer's seed
 * corpus). An accepted input leaves gn_last_error() empty.
 */
#ifndef GN_TEST_FUZZ_H
#define GN_TEST_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_SEEDS 2
#define FUZZ_SEED_MAX 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write valid input `variant` (0..FUZZ_SEEDS-1) to out; its length. */
size_t fuzz_seed(uint8_t *out, size_t cap, int variant);

#endif
