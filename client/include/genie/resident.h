/*
 * Resident tensors: values that stay on the session's target.
 *
 * By default every plan carries the bytes of each input it reads, which
 * is right for activations and wasteful for weights and caches that many
 * plans read unchanged. gn_tensor_make_resident() uploads a tensor once;
 * from then on plans that read it send only its 128-bit handle, and the
 * target binds its copy in place. A handle is a capability of this
 * session: no other session (connection) can read, pin or free it, and
 * everything a session made resident is freed when it ends (on a remote
 * runtime: when its connection closes).
 *
 * A remote runtime under memory pressure evicts unpinned resident
 * tensors, least recently used first; pinned ones are never evicted. A
 * plan that reads an evicted tensor still runs: libgenie uploads it again
 * from the client's copy (the tensor keeps its host value) and counts it
 * in gn_session_stats.resident_reuploads.
 *
 * The "local" target keeps resident tensors in the session's own
 * registry over its in-process backend, so code runs unchanged on both.
 * Like the rest of a session, none of this is thread-safe.
 */
#ifndef GENIE_RESIDENT_H
#define GENIE_RESIDENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gn_tensor;

/*
 * Upload the value of `t` to its session's target and keep it there; `pin`
 * non-zero also protects it from eviction. A lazy `t` is materialized
 * first. The tensor keeps its host value and stays owned by its session;
 * the target's copy belongs to the session until gn_tensor_release() or
 * the session's end. Calling it on a tensor already resident only sets
 * its pin state to `pin`.
 *
 * Returns 0, or a negative errno with gn_last_error() set: -EINVAL for a
 * NULL tensor; -ENOMEM when the target cannot hold it even after evicting
 * every unpinned tensor (the detail names the size and the memory limit);
 * -ECONNRESET, -ETIMEDOUT or -EPROTO when the runtime went away or
 * answered out of step (the session then stays disconnected); -EIO when
 * no random handle could be drawn (local); any error of
 * gn_tensor_materialize() for a lazy tensor.
 */
int gn_tensor_make_resident(struct gn_tensor *t, int pin);

/*
 * Pin (`pin` non-zero) or unpin a resident tensor. Returns 0; -EINVAL when
 * `t` is NULL or not resident; -ENOENT when the target no longer holds it
 * (it was evicted while unpinned: `t` is then no longer resident, and
 * gn_tensor_make_resident() uploads it again); connection errors as for
 * gn_tensor_make_resident().
 */
int gn_tensor_set_pinned(struct gn_tensor *t, int pin);

/*
 * Free the target's copy of `t`. The tensor stays valid with its host
 * value; later plans send its bytes again. Returns 0 (also when the target
 * had already evicted it); -EINVAL when `t` is NULL or not resident;
 * connection errors as for gn_tensor_make_resident().
 */
int gn_tensor_release(struct gn_tensor *t);

/*
 * Copy the target's copy of resident tensor `t` into `dst` of `dst_size`
 * bytes (a round trip, unlike gn_tensor_to_host(), which reads the
 * client's copy). Returns 0; -EINVAL when `t` or `dst` is NULL, `t` is not
 * resident, or `dst_size` differs from gn_tensor_nbytes(); -ENOENT when the
 * target no longer holds it (evicted: `t` is no longer resident); -EPROTO
 * when the target describes it differently; connection errors as for
 * gn_tensor_make_resident().
 */
int gn_tensor_fetch(struct gn_tensor *t, void *dst, size_t dst_size);

/* 1 when `t` is resident (as far as this client knows), 0 otherwise. */
int gn_tensor_is_resident(const struct gn_tensor *t);

/* 1 when `t` is resident and pinned, 0 otherwise. */
int gn_tensor_is_pinned(const struct gn_tensor *t);

#ifdef __cplusplus
}
#endif

#endif /* GENIE_RESIDENT_H */
