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
 * Weights that many sessions load (every client opening the same model)
 * can be made resident by content with gn_tensor_make_resident_shared():
 * the runtime keeps one copy, found by a SHA-256 of the tensor's dtype,
 * shape and bytes, and a session whose tensor has that content gets a
 * handle on the copy without sending its bytes, even after every session
 * that uploaded it has ended (the runtime keeps unreferenced shared
 * copies cached until memory runs short; they are the first evicted).
 * Handles stay capabilities of one session: sharing a copy shares no
 * handle, and a session releasing, pinning or losing its handle touches
 * no other session's. Share only values that are no secret from the
 * runtime's other clients (weights, not a user's data): a client that
 * already knows a tensor's exact value can tell whether the runtime holds
 * it (its attach succeeds), as with any content-addressed cache.
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
 * Like gn_tensor_make_resident(), but by content, so sessions holding
 * equal tensors share one copy on the target:
 *
 * 1. libgenie computes the tensor's content key, SHA-256 over its dtype,
 *    shape and bytes (the client's copy; a lazy `t` is materialized
 *    first), and asks the target to attach: if it holds a shared copy
 *    with that key, dtype and shape, this session gets a new handle on it
 *    and no tensor bytes are sent (counted in gn_session_stats as
 *    resident_attach_hits and resident_bytes_attached);
 * 2. otherwise ("not cached": never uploaded, or evicted) the bytes are
 *    uploaded with the key, the target recomputes the key from the bytes
 *    it received, refuses them if it differs (so no client can place
 *    other bytes under a key another session will attach to), and keeps
 *    them as a shared copy (counted in resident_bytes_uploaded).
 *
 * Ownership: the tensor keeps its host value and stays owned by its
 * session. The handle belongs to this session only, exactly as for
 * gn_tensor_make_resident(): gn_tensor_release(), gn_tensor_set_pinned(),
 * gn_tensor_fetch() and plans reading `t` work on it unchanged, and the
 * session's end drops it. The shared copy belongs to the target: it lives
 * while any session's handle references it and then stays cached until
 * memory is short; it is pinned while any session has pinned its handle
 * (so `pin` here also keeps it for others). If the target evicts it while
 * referenced, every session's handle on it answers -ENOENT as an evicted
 * tensor does, and a plan reading `t` attaches again (or uploads again
 * when no session brought it back) without the caller noticing. Calling
 * this on a tensor already resident (either way) only sets its pin state
 * to `pin`.
 *
 * Returns 0, or a negative errno with gn_last_error() set: -EINVAL for a
 * NULL tensor, or when the runtime refuses the upload because the key is
 * not the SHA-256 of the bytes it received (a client or transport fault);
 * -ENOMEM when the target cannot hold it even after evicting every
 * unpinned tensor (the detail names the size and the memory limit), or no
 * memory for the digest; -ECONNRESET, -ETIMEDOUT or -EPROTO when the
 * runtime went away or answered out of step (the session then stays
 * disconnected; a runtime too old to know ATTACH answers -EPROTO too);
 * -EIO when no random handle could be drawn (local); any error of
 * gn_tensor_materialize() for a lazy tensor.
 */
int gn_tensor_make_resident_shared(struct gn_tensor *t, int pin);

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
 * gn_tensor_make_resident(). The reply is written straight into `dst`
 * where the transport can (unless $GENIE_NO_PLACEMENT is set), so after
 * an error `dst` may hold part of the value; nothing writes into it once
 * the call returned.
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
