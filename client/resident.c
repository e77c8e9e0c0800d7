/*
 * Resident tensors (see genie/resident.h): UPLOAD, ATTACH, DOWNLOAD, FREE
 * and PIN to a remote runtime, or the same on a local session's own
 * registry over its in-process backend.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "content_key.h"
#include "executor.h"
#include "genie/control.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "gn_error.h"
#include "pool.h"
#include "registry.h"

/* Close the session's connection, keeping its byte counts. */
static void conn_drop(struct gn_session *s)
{
	s->stats.bytes_sent = s->conn->stats.bytes_sent;
	s->stats.bytes_received = s->conn->stats.bytes_received;
	gn_conn_close(&s->conn);
}

void gn_client_check_conn(struct gn_session *s, int rc)
{
	if (s->kind != GN_TARGET_REMOTE || s->conn == NULL)
		return;
	/* The stream is out of step or gone: stop using it. */
	if (rc == -ECONNRESET || rc == -ETIMEDOUT || rc == -EPROTO ||
	    rc == -EBADMSG || rc == -EMSGSIZE)
		conn_drop(s);
}

static int check_remote(const struct gn_session *s, const char *what)
{
	if (s->kind == GN_TARGET_REMOTE && s->conn == NULL)
		return gn_error_set(-ECONNRESET,
				    "%s: the session lost its runtime "
				    "connection earlier; create a new session",
				    what);
	return 0;
}

/* The local session's registry, made at first use. */
static struct gn_registry *local_registry(struct gn_session *s)
{
	struct gn_pool_opts po;

	if (s->registry != NULL)
		return s->registry;
	if (s->pool == NULL) {
		gn_pool_opts_init(&po, sizeof(po));
		po.name = s->backend.ops->name;
		s->pool = gn_pool_create(&s->backend, &po);
		if (s->pool == NULL)
			return NULL;
	}
	s->registry = gn_registry_create(s->pool, &s->backend);
	return s->registry;
}

/* Send `body` as `type`, expect `reply_type`; the reply body is dropped. */
static int call_simple(struct gn_session *s, int type,
		       const ProtobufCMessage *body, int reply_type,
		       const ProtobufCMessageDescriptor *reply_desc)
{
	ProtobufCMessage *reply;
	struct gn_msg msg;
	int rc;

	rc = gn_client_call(s, type, body, NULL, 0, reply_type, reply_desc,
			    &reply, &msg);
	if (rc != 0) {
		gn_client_check_conn(s, rc);
		return rc;
	}
	protobuf_c_message_free_unpacked(reply, NULL);
	gn_msg_release(&msg);
	return 0;
}

/*
 * Put the value of `t` on the target; the handle it gets goes to `h`.
 * With `key` (the content key of t's value) it is stored shared.
 */
static int upload(struct gn_tensor *t, int pin, const uint8_t *key,
		  uint8_t h[GN_HANDLE_SIZE])
{
	struct gn_session *s = t->session;
	Genie__UploadRequest req = GENIE__UPLOAD_REQUEST__INIT;
	Genie__TensorMeta pm = GENIE__TENSOR_META__INIT;
	int64_t dims[GN_MAX_DIMS];
	Genie__UploadResult *res;
	struct gn_tensor_meta m;
	struct gn_registry *r;
	struct gn_msg msg;
	struct iovec iov;
	int rc;

	gn_tensor_meta_of(t, &m);
	if (s->kind == GN_TARGET_LOCAL) {
		r = local_registry(s);
		if (r == NULL)
			return gn_last_error_code();
		rc = key ? gn_registry_upload_shared(r, GN_LOCAL_SESSION, &m,
						     t->data, key, h)
			 : gn_registry_upload(r, GN_LOCAL_SESSION, &m, t->data,
					      h);
		if (rc == 0 && pin)
			rc = gn_registry_pin(r, GN_LOCAL_SESSION, h, 1);
		return rc;
	}
	gn_meta_to_pb(&m, &pm, dims);
	req.meta = &pm;
	req.pin = pin != 0;
	if (key != NULL) {
		req.shared = 1;
		req.content_key.data = (uint8_t *)key;
		req.content_key.len = GN_CONTENT_KEY_SIZE;
	}
	iov.iov_base = t->data;
	iov.iov_len = gn_meta_nbytes(&m);
	rc = gn_client_call(s, GENIE__MSG_TYPE__MSG_TYPE_UPLOAD, &req.base,
			    &iov, iov.iov_len ? 1 : 0,
			    GENIE__MSG_TYPE__MSG_TYPE_UPLOAD_RESULT,
			    &genie__upload_result__descriptor,
			    (ProtobufCMessage **)&res, &msg);
	if (rc != 0) {
		gn_client_check_conn(s, rc);
		return rc;
	}
	if (res->handle.len == GN_HANDLE_SIZE)
		memcpy(h, res->handle.data, GN_HANDLE_SIZE);
	else
		rc = gn_error_set(-EPROTO,
				  "upload: runtime answered a handle of %zu "
				  "bytes, expected %d",
				  res->handle.len, GN_HANDLE_SIZE);
	protobuf_c_message_free_unpacked(&res->base, NULL);
	gn_msg_release(&msg);
	return rc;
}

/*
 * ATTACH: a handle of this session on the shared copy of t's value the
 * target holds under `key`. 0, -ENOENT (not cached), or another error.
 */
static int attach(struct gn_tensor *t, int pin, const uint8_t *key,
		  uint8_t h[GN_HANDLE_SIZE])
{
	struct gn_session *s = t->session;
	Genie__AttachRequest req = GENIE__ATTACH_REQUEST__INIT;
	Genie__TensorMeta pm = GENIE__TENSOR_META__INIT;
	int64_t dims[GN_MAX_DIMS];
	Genie__AttachResult *res;
	struct gn_tensor_meta m;
	struct gn_registry *r;
	struct gn_msg msg;
	int rc;

	gn_tensor_meta_of(t, &m);
	if (s->kind == GN_TARGET_LOCAL) {
		r = local_registry(s);
		if (r == NULL)
			return gn_last_error_code();
		rc = gn_registry_attach(r, GN_LOCAL_SESSION, key, &m, h);
		if (rc == 0 && pin)
			rc = gn_registry_pin(r, GN_LOCAL_SESSION, h, 1);
		return rc;
	}
	gn_meta_to_pb(&m, &pm, dims);
	req.meta = &pm;
	req.pin = pin != 0;
	req.content_key.data = (uint8_t *)key;
	req.content_key.len = GN_CONTENT_KEY_SIZE;
	rc = gn_client_call(s, GENIE__MSG_TYPE__MSG_TYPE_ATTACH, &req.base,
			    NULL, 0, GENIE__MSG_TYPE__MSG_TYPE_ATTACH_RESULT,
			    &genie__attach_result__descriptor,
			    (ProtobufCMessage **)&res, &msg);
	if (rc != 0) {
		gn_client_check_conn(s, rc);
		return rc;
	}
	if (res->handle.len == GN_HANDLE_SIZE)
		memcpy(h, res->handle.data, GN_HANDLE_SIZE);
	else
		rc = gn_error_set(-EPROTO,
				  "attach: runtime answered a handle of %zu "
				  "bytes, expected %d",
				  res->handle.len, GN_HANDLE_SIZE);
	protobuf_c_message_free_unpacked(&res->base, NULL);
	gn_msg_release(&msg);
	return rc;
}

/*
 * Remember a content key this session made shared, for
 * gn_session_shared_keys(): the newest at the front, each once.
 */
static void note_shared_key(struct gn_session *s, const uint8_t *key)
{
	uint32_t n = s->n_shared_keys, i;

	for (i = 0; i < n; i++)
		if (memcmp(s->shared_keys[i], key, GN_CONTENT_KEY_SIZE) == 0)
			break;
	if (i == n && n < GN_SESSION_SHARED_KEYS)
		s->n_shared_keys = ++n;
	if (i == n)
		i = n - 1; /* full: the oldest goes */
	memmove(s->shared_keys[1], s->shared_keys[0],
		(size_t)i * GN_CONTENT_KEY_SIZE);
	memcpy(s->shared_keys[0], key, GN_CONTENT_KEY_SIZE);
}

/*
 * Make t's value resident by content: attach to the target's shared copy
 * (`*hit` set, no bytes sent) or, when it holds none, upload it shared.
 */
static int share(struct gn_tensor *t, int pin, uint8_t h[GN_HANDLE_SIZE],
		 int *hit)
{
	uint8_t key[GN_CONTENT_KEY_SIZE];
	struct gn_tensor_meta m;
	int rc;

	gn_tensor_meta_of(t, &m);
	rc = gn_content_key(&m, t->data, key);
	if (rc != 0)
		return rc;
	rc = attach(t, pin, key, h);
	*hit = rc == 0;
	if (rc == -ENOENT) {
		gn_error_clear();
		rc = upload(t, pin, key, h);
	}
	if (rc == 0)
		note_shared_key(t->session, key);
	return rc;
}

/* PIN on the target: 0, -ENOENT, or a connection error. */
static int pin_on_target(struct gn_tensor *t, int pin)
{
	struct gn_session *s = t->session;
	Genie__PinRequest req = GENIE__PIN_REQUEST__INIT;

	if (s->kind == GN_TARGET_LOCAL)
		return s->registry == NULL
			       ? gn_error_set(-ENOENT, "pin: no such tensor")
			       : gn_registry_pin(s->registry, GN_LOCAL_SESSION,
						 t->handle, pin);
	req.handle.data = t->handle;
	req.handle.len = GN_HANDLE_SIZE;
	req.pinned = pin != 0;
	return call_simple(s, GENIE__MSG_TYPE__MSG_TYPE_PIN, &req.base,
			   GENIE__MSG_TYPE__MSG_TYPE_TENSOR_ACK,
			   &genie__tensor_ack__descriptor);
}

/* Forget that `t` is resident: later plans send its bytes. */
static int drop_resident(struct gn_tensor *t)
{
	struct gn_session *s = t->session;

	t->resident = 0;
	s->stats.resident_tensors--;
	s->stats.resident_bytes -= gn_tensor_nbytes(t);
	/* A fresh handle, so no plan names the target's old copy. */
	return gn_client_new_handle(t);
}

int gn_tensor_make_resident(struct gn_tensor *t, int pin)
{
	uint8_t h[GN_HANDLE_SIZE];
	struct gn_session *s;
	int rc;

	if (t == NULL)
		return gn_error_set(-EINVAL, "make_resident: NULL tensor");
	if (t->resident & GN_RESIDENT_YES)
		return (!(t->resident & GN_RESIDENT_PINNED)) == !pin
			       ? 0
			       : gn_tensor_set_pinned(t, pin);
	s = t->session;
	rc = check_remote(s, "make_resident");
	if (rc != 0)
		return rc;
	if (t->data == NULL) {
		rc = gn_tensor_materialize(t);
		if (rc != 0)
			return rc;
	}
	rc = upload(t, pin, NULL, h);
	if (rc != 0)
		return rc;
	memcpy(t->handle, h, GN_HANDLE_SIZE);
	t->has_handle = 1;
	t->resident = GN_RESIDENT_YES | (pin ? GN_RESIDENT_PINNED : 0);
	s->stats.resident_tensors++;
	s->stats.resident_bytes += gn_tensor_nbytes(t);
	s->stats.resident_bytes_uploaded += gn_tensor_nbytes(t);
	return 0;
}

int gn_tensor_make_resident_shared(struct gn_tensor *t, int pin)
{
	uint8_t h[GN_HANDLE_SIZE];
	struct gn_session *s;
	int hit, rc;

	if (t == NULL)
		return gn_error_set(-EINVAL,
				    "make_resident_shared: NULL tensor");
	if (t->resident & GN_RESIDENT_YES)
		return (!(t->resident & GN_RESIDENT_PINNED)) == !pin
			       ? 0
			       : gn_tensor_set_pinned(t, pin);
	s = t->session;
	rc = check_remote(s, "make_resident_shared");
	if (rc != 0)
		return rc;
	if (t->data == NULL) {
		rc = gn_tensor_materialize(t);
		if (rc != 0)
			return rc;
	}
	rc = share(t, pin, h, &hit);
	if (rc != 0)
		return rc;
	memcpy(t->handle, h, GN_HANDLE_SIZE);
	t->has_handle = 1;
	t->resident = GN_RESIDENT_YES | GN_RESIDENT_SHARED |
		      (pin ? GN_RESIDENT_PINNED : 0);
	s->stats.resident_tensors++;
	s->stats.resident_bytes += gn_tensor_nbytes(t);
	if (hit) {
		s->stats.resident_attach_hits++;
		s->stats.resident_bytes_attached += gn_tensor_nbytes(t);
	} else {
		s->stats.resident_bytes_uploaded += gn_tensor_nbytes(t);
	}
	return 0;
}

int gn_tensor_set_pinned(struct gn_tensor *t, int pin)
{
	int rc;

	if (t == NULL || !(t->resident & GN_RESIDENT_YES))
		return gn_error_set(-EINVAL, "set_pinned: %s",
				    t ? "tensor is not resident "
					"(gn_tensor_make_resident first)"
				      : "NULL tensor");
	rc = check_remote(t->session, "set_pinned");
	if (rc != 0)
		return rc;
	rc = pin_on_target(t, pin);
	if (rc == -ENOENT) {
		drop_resident(t);
		return gn_error_set(-ENOENT,
				    "set_pinned: the target no longer holds "
				    "the tensor (evicted while unpinned); "
				    "gn_tensor_make_resident uploads it again");
	}
	if (rc != 0)
		return rc;
	t->resident = GN_RESIDENT_YES | (pin ? GN_RESIDENT_PINNED : 0);
	return 0;
}

int gn_tensor_release(struct gn_tensor *t)
{
	Genie__FreeRequest req = GENIE__FREE_REQUEST__INIT;
	struct gn_session *s;
	int rc;

	if (t == NULL || !(t->resident & GN_RESIDENT_YES))
		return gn_error_set(-EINVAL, "release: %s",
				    t ? "tensor is not resident"
				      : "NULL tensor");
	s = t->session;
	rc = check_remote(s, "release");
	if (rc != 0)
		return rc;
	if (s->kind == GN_TARGET_LOCAL) {
		rc = s->registry ? gn_registry_free(s->registry,
						    GN_LOCAL_SESSION, t->handle)
				 : -ENOENT;
	} else {
		req.handle.data = t->handle;
		req.handle.len = GN_HANDLE_SIZE;
		rc = call_simple(s, GENIE__MSG_TYPE__MSG_TYPE_FREE, &req.base,
				 GENIE__MSG_TYPE__MSG_TYPE_TENSOR_ACK,
				 &genie__tensor_ack__descriptor);
	}
	/* Already evicted is as good as freed. */
	if (rc != 0 && rc != -ENOENT)
		return rc;
	gn_error_clear();
	return drop_resident(t);
}

/* DOWNLOAD from a remote runtime into dst. */
static int fetch_remote(struct gn_tensor *t, void *dst, size_t dst_size)
{
	struct gn_session *s = t->session;
	Genie__DownloadRequest req = GENIE__DOWNLOAD_REQUEST__INIT;
	Genie__DownloadResult *res;
	struct gn_tensor_meta m, tm;
	char s1[96], s2[96];
	struct gn_msg msg;
	bool given;
	int rc;

	req.handle.data = t->handle;
	req.handle.len = GN_HANDLE_SIZE;
	gn_client_place_arm(s, GENIE__MSG_TYPE__MSG_TYPE_DOWNLOAD_RESULT, dst,
			    dst_size);
	rc = gn_client_call(s, GENIE__MSG_TYPE__MSG_TYPE_DOWNLOAD, &req.base,
			    NULL, 0, GENIE__MSG_TYPE__MSG_TYPE_DOWNLOAD_RESULT,
			    &genie__download_result__descriptor,
			    (ProtobufCMessage **)&res, &msg);
	given = gn_client_place_disarm(s);
	if (rc != 0) {
		/*
		 * A reply given the caller's buffer may still be landing in
		 * it (dpdk reassembles on its own thread): close the
		 * connection, which stops that, before the caller gets its
		 * buffer back.
		 */
		if (given && s->conn != NULL)
			conn_drop(s);
		gn_client_check_conn(s, rc);
		return rc;
	}
	gn_tensor_meta_of(t, &tm);
	if (res->meta == NULL)
		rc = gn_error_set(-EPROTO, "fetch: reply without a meta");
	else if (gn_meta_from_pb(res->meta, &m, "fetch") != 0)
		rc = -EPROTO; /* the detail names the bad meta */
	else if (!gn_meta_equal(&m, &tm) || msg.payload_len != dst_size)
		rc = gn_error_set(
			-EPROTO,
			"fetch: runtime sent %s (%zu bytes), "
			"expected %s (%zu bytes)",
			gn_meta_format(&m, s1, sizeof(s1)), msg.payload_len,
			gn_meta_format(&tm, s2, sizeof(s2)), dst_size);
	if (rc == 0 && dst_size && msg.payload != dst)
		memcpy(dst, msg.payload, dst_size);
	gn_msg_take_placed(&msg); /* the caller's own buffer, when placed */
	protobuf_c_message_free_unpacked(&res->base, NULL);
	gn_msg_release(&msg);
	return rc;
}

int gn_tensor_fetch(struct gn_tensor *t, void *dst, size_t dst_size)
{
	struct gn_session *s;
	int rc;

	if (t == NULL || (dst == NULL && dst_size != 0))
		return gn_error_set(-EINVAL, "fetch: NULL %s",
				    t ? "destination" : "tensor");
	if (!(t->resident & GN_RESIDENT_YES))
		return gn_error_set(-EINVAL, "fetch: tensor is not resident");
	if (dst_size != gn_tensor_nbytes(t))
		return gn_error_set(-EINVAL,
				    "fetch: destination holds %zu bytes, "
				    "tensor has %zu",
				    dst_size, gn_tensor_nbytes(t));
	s = t->session;
	rc = check_remote(s, "fetch");
	if (rc != 0)
		return rc;
	if (s->kind == GN_TARGET_LOCAL)
		rc = s->registry
			     ? gn_registry_download(s->registry,
						    GN_LOCAL_SESSION, t->handle,
						    dst, dst_size)
			     : gn_error_set(-ENOENT, "fetch: no such tensor");
	else
		rc = fetch_remote(t, dst, dst_size);
	if (rc == -ENOENT) {
		char detail[400];

		snprintf(detail, sizeof(detail), "%s", gn_last_error());
		drop_resident(t);
		gn_error_set(-ENOENT, "%s", detail);
	}
	return rc;
}

int gn_tensor_is_resident(const struct gn_tensor *t)
{
	return t != NULL && (t->resident & GN_RESIDENT_YES) != 0;
}

int gn_tensor_is_pinned(const struct gn_tensor *t)
{
	return t != NULL && (t->resident & GN_RESIDENT_PINNED) != 0;
}

int gn_client_resident_bind_local(struct gn_tensor *t, struct gn_exec_input *in)
{
	struct gn_session *s = t->session;
	struct gn_reg_tensor *rt;

	rt = s->registry
		     ? gn_registry_get(s->registry, GN_LOCAL_SESSION, t->handle)
		     : NULL;
	if (rt == NULL)
		return gn_error_set(-ENOENT,
				    "materialize: a resident input is no "
				    "longer held by the session");
	in->data = NULL;
	in->dev = rt->dev;
	in->len = rt->bytes;
	return 0;
}

int gn_client_resident_restore(struct gn_tensor *t)
{
	struct gn_session *s = t->session;
	int pin = (t->resident & GN_RESIDENT_PINNED) != 0;
	uint8_t h[GN_HANDLE_SIZE];
	int hit = 0, rc;

	/* Still there (another input was the one evicted): keep it. */
	rc = pin_on_target(t, pin);
	if (rc != -ENOENT)
		return rc;
	gn_error_clear();
	/* A shared one may be back already (another session uploaded it):
	 * attach first, upload only when it is not. */
	rc = t->resident & GN_RESIDENT_SHARED ? share(t, pin, h, &hit)
					      : upload(t, pin, NULL, h);
	if (rc != 0)
		return rc;
	memcpy(t->handle, h, GN_HANDLE_SIZE);
	if (hit) {
		s->stats.resident_attach_hits++;
		s->stats.resident_bytes_attached += gn_tensor_nbytes(t);
		return 0;
	}
	s->stats.resident_reuploads++;
	s->stats.resident_bytes_uploaded += gn_tensor_nbytes(t);
	return 0;
}
