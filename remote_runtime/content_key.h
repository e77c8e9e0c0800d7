/*
 * Content keys: the name of a tensor's value, for sharing it.
 *
 * A runtime keeps one copy of a weight that many sessions load (the same
 * ONNX model opened by several clients): the copy is found by a key that
 * depends only on the value. The key is SHA-256 over a fixed header and
 * the bytes:
 *
 *   "genie-tensor-v1" (15 bytes), dtype (u32 LE, the wire's genie.DType),
 *   ndim (u32 LE), each dim (i64 LE), then the tensor's bytes
 *
 * so two tensors share a key only when dtype, shape and bytes are all
 * equal. A key is not a secret (anyone holding the bytes can compute it)
 * and grants nothing by itself: a runtime attaches a session to a shared
 * copy only under a fresh handle of that session, and stores a shared copy
 * only after recomputing the key from the bytes it received, so no client
 * can place other bytes under a key. Thread-safe.
 */
#ifndef GN_RUNTIME_CONTENT_KEY_H
#define GN_RUNTIME_CONTENT_KEY_H

#include <stdint.h>

#include "tensor_meta.h"

#define GN_CONTENT_KEY_SIZE 32

/*
 * The key of the tensor `meta` describes, whose gn_meta_nbytes(meta) bytes
 * are at `bytes` (may be NULL when that is 0), into `key`. Returns 0,
 * -EINVAL for a bad meta, or -ENOMEM when OpenSSL cannot set up a digest.
 */
int gn_content_key(const struct gn_tensor_meta *meta, const void *bytes,
		   uint8_t key[GN_CONTENT_KEY_SIZE]);

/*
 * Check that `claimed` is the key of (`meta`, `bytes`). Returns 0, or
 * -EINVAL with a detail prefixed by `what` that shows the start of the
 * claimed and the computed key; errors of gn_content_key() otherwise.
 */
int gn_content_key_check(const struct gn_tensor_meta *meta, const void *bytes,
			 const uint8_t claimed[GN_CONTENT_KEY_SIZE],
			 const char *what);

/* The first `n` bytes of `key` as hex into buf (2n + 1 bytes); buf. */
const char *gn_content_key_hex(const uint8_t *key, int n, char *buf);

#endif /* GN_RUNTIME_CONTENT_KEY_H */
