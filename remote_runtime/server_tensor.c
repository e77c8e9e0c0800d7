/*
 * The tensor registry over the wire: UPLOAD, ATTACH, DOWNLOAD, FREE and
 * PIN.
 *
 * Each connection is one session; its handles mean nothing on any other
 * connection, which gets the same -ENOENT and the same words as for a
 * handle never issued. A shared upload's content key is recomputed from
 * the received bytes here, on the connection's thread (hashing a large
 * weight must not hold up the executor), and a mismatch is refused, so the
 * registry only ever sees keys that name their bytes. The registry work
 * runs on the worker thread; this file decodes, checks and replies on the
 * connection's thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "genie/control.pb-c.h"
#include "gn_error.h"
#include "gpu_mem.h"
#include "plan.h"
#include "server_internal.h"

/* One registry operation for the worker. */
struct tensor_job {
	struct gn_job job;
	struct gn_server *srv;
	uint64_t session;
	const uint8_t *handle;		    /* in: FREE, PIN, DOWNLOAD */
	uint8_t new_handle[GN_HANDLE_SIZE]; /* out: UPLOAD, ATTACH */
	struct gn_tensor_meta meta; /* in: UPLOAD, ATTACH; out: DOWNLOAD */
	const void *bytes;	    /* UPLOAD */
	void *placed;		    /* UPLOAD: `bytes`, in a pool block */
	int taken;		    /* UPLOAD: the registry adopted `placed` */
	const uint8_t *key;	    /* shared UPLOAD (checked), ATTACH */
	int pin;
	/*
	 * DOWNLOAD: the value, a malloc'd copy, or with `loan` set the
	 * tensor's own memory, lent by the registry until the reply is sent:
	 * where the backend's memory is host memory, or GPU memory and the
	 * connection's transport reads GPU memory (`gpu_ok`; verbs).
	 */
	void *out;
	uint64_t out_len;
	void *loan;
	int gpu_ok;
	const char *what; /* "upload", "download", ... for messages */
};

/* The registry's -ENOENT, in the words every session gets. */
static int no_tensor(const char *what)
{
	return gn_error_set(-ENOENT, "%s: " GN_SERVER_NO_TENSOR, what);
}

static int run_upload(struct gn_job *job)
{
	struct tensor_job *tj = (struct tensor_job *)job;
	struct gn_registry *r = tj->srv->registry;
	char ms[96], why[400];
	int rc;

	if (tj->placed != NULL)
		rc = gn_registry_adopt(r, tj->session, &tj->meta, tj->placed,
				       tj->key, tj->new_handle, &tj->taken);
	else if (tj->key != NULL)
		rc = gn_registry_upload_shared(r, tj->session, &tj->meta,
					       tj->bytes, tj->key,
					       tj->new_handle);
	else
		rc = gn_registry_upload(r, tj->session, &tj->meta, tj->bytes,
					tj->new_handle);
	if (rc != 0) {
		snprintf(why, sizeof(why), "%s", gn_last_error());
		return gn_error_set(
			rc, "upload of %s (%llu bytes): %s",
			gn_meta_format(&tj->meta, ms, sizeof(ms)),
			(unsigned long long)gn_meta_nbytes(&tj->meta), why);
	}
	if (tj->pin)
		gn_registry_pin(r, tj->session, tj->new_handle, 1);
	return 0;
}

static int run_attach(struct gn_job *job)
{
	struct tensor_job *tj = (struct tensor_job *)job;
	struct gn_registry *r = tj->srv->registry;
	int rc;

	rc = gn_registry_attach(r, tj->session, tj->key, &tj->meta,
				tj->new_handle);
	if (rc == -ENOENT)
		return gn_error_set(-ENOENT, GN_SERVER_NOT_CACHED);
	if (rc != 0)
		return rc;
	if (tj->pin)
		gn_registry_pin(r, tj->session, tj->new_handle, 1);
	return 0;
}

static int run_download(struct gn_job *job)
{
	struct tensor_job *tj = (struct tensor_job *)job;
	struct gn_registry *r = tj->srv->registry;
	struct gn_reg_tensor *t = gn_registry_get(r, tj->session, tj->handle);
	const struct gn_backend *be = &tj->srv->backend;
	int rc;

	if (t == NULL)
		return no_tensor(tj->what);
	if (t->bytes > 0 &&
	    (be->ops->host_memory ||
	     (tj->gpu_ok && gn_mem_kind_of(t->dev) == GN_MEM_CUDA))) {
		struct gn_reg_tensor lt;

		/*
		 * Kernels may still be writing it on the device's stream, and
		 * the transport reads it without that stream: wait for them.
		 */
		rc = be->ops->sync ? be->ops->sync(be->ctx) : 0;
		if (rc != 0)
			return rc;
		tj->loan = gn_registry_lend(r, tj->session, tj->handle, &lt);
		tj->meta = lt.meta;
		tj->out = lt.dev;
		tj->out_len = lt.bytes;
		return 0;
	}
	tj->out = malloc(t->bytes ? t->bytes : 1);
	if (tj->out == NULL)
		return gn_error_set(-ENOMEM,
				    "download: no host memory for %llu bytes",
				    (unsigned long long)t->bytes);
	tj->meta = t->meta;
	tj->out_len = t->bytes;
	rc = gn_registry_download(r, tj->session, tj->handle, tj->out,
				  t->bytes);
	if (rc != 0) {
		free(tj->out);
		tj->out = NULL;
	}
	return rc;
}

static int run_unlend(struct gn_job *job)
{
	struct tensor_job *tj = (struct tensor_job *)job;

	gn_registry_unlend(tj->srv->registry, tj->loan);
	return 0;
}

static int run_free(struct gn_job *job)
{
	struct tensor_job *tj = (struct tensor_job *)job;

	if (gn_registry_free(tj->srv->registry, tj->session, tj->handle) != 0)
		return no_tensor(tj->what);
	return 0;
}

static int run_pin(struct gn_job *job)
{
	struct tensor_job *tj = (struct tensor_job *)job;

	if (gn_registry_pin(tj->srv->registry, tj->session, tj->handle,
			    tj->pin) != 0)
		return no_tensor(tj->what);
	return 0;
}

static int run_end_session(struct gn_job *job)
{
	struct tensor_job *tj = (struct tensor_job *)job;
	uint32_t n = gn_registry_end_session(tj->srv->registry, tj->session);

	if (n > 0)
		GN_LOG(INFO, runtime, "session %llu ended: %u handles dropped",
		       (unsigned long long)tj->session, n);
	return 0;
}

/* Reply to a refused registry request and count it. */
static int refuse(struct conn_slot *cs, uint64_t req_id, int rc)
{
	atomic_fetch_add(&cs->srv->tensor_errors, 1);
	GN_LOG(NOTICE, runtime, "%s: request %llu refused: %s", cs->conn->peer,
	       (unsigned long long)req_id, gn_last_error());
	return gn_server_send_error(cs, req_id, rc, gn_last_error());
}

/* A content key field must be exactly GN_CONTENT_KEY_SIZE bytes. */
static int check_key(const ProtobufCBinaryData *k, const char *what)
{
	if (k->len != GN_CONTENT_KEY_SIZE)
		return gn_error_set(-EINVAL,
				    "%s: content key of %zu bytes, expected %d "
				    "(SHA-256)",
				    what, k->len, GN_CONTENT_KEY_SIZE);
	return 0;
}

/* A handle field must be exactly GN_HANDLE_SIZE bytes. */
static int check_handle(const ProtobufCBinaryData *h, const char *what)
{
	if (h->len != GN_HANDLE_SIZE)
		return gn_error_set(-EINVAL,
				    "%s: handle of %zu bytes, expected %d",
				    what, h->len, GN_HANDLE_SIZE);
	return 0;
}

int gn_server_handle_upload(struct conn_slot *cs, const Genie__Envelope *env,
			    struct gn_msg *msg)
{
	struct tensor_job tj = {.job.run = run_upload,
				.srv = cs->srv,
				.session = cs->session,
				.what = "upload"};
	Genie__UploadResult res = GENIE__UPLOAD_RESULT__INIT;
	Genie__UploadRequest *req;
	char ms[96];
	int rc;

	atomic_fetch_add(&cs->srv->tensor_requests, 1);
	req = (Genie__UploadRequest *)gn_pb_unpack(
		&genie__upload_request__descriptor, env->body.data,
		env->body.len, cs->conn->limits.max_envelope);
	if (req == NULL)
		return refuse(cs, env->request_id, gn_last_error_code());
	if (req->meta == NULL) {
		rc = gn_error_set(-EINVAL,
				  "upload: request without a tensor meta");
		goto refused;
	}
	rc = gn_meta_from_pb(req->meta, &tj.meta, "upload");
	if (rc != 0)
		goto refused;
	if (gn_meta_nbytes(&tj.meta) != msg->payload_len) {
		rc = gn_error_set(-EINVAL,
				  "upload: %s needs %llu bytes, payload has "
				  "%zu",
				  gn_meta_format(&tj.meta, ms, sizeof(ms)),
				  (unsigned long long)gn_meta_nbytes(&tj.meta),
				  msg->payload_len);
		goto refused;
	}
	tj.bytes = msg->payload;
	tj.placed = msg->placed;
	tj.pin = req->pin;
	if (req->shared) {
		rc = check_key(&req->content_key, "upload");
		if (rc != 0)
			goto refused;
		rc = gn_content_key_check(&tj.meta, msg->payload,
					  req->content_key.data, "upload");
		if (rc != 0) {
			if (rc == -EINVAL)
				atomic_fetch_add(&cs->srv->hash_mismatches, 1);
			goto refused;
		}
		tj.key = req->content_key.data;
	} else if (req->content_key.len != 0) {
		rc = gn_error_set(-EINVAL,
				  "upload: content key of %zu bytes on an "
				  "upload without `shared`; expected none",
				  req->content_key.len);
		goto refused;
	}
	rc = gn_worker_call(cs->srv->worker, &tj.job);
	if (tj.taken)
		gn_msg_take_placed(msg); /* the registry's block now */
	if (rc != 0)
		goto refused;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	res.handle.data = tj.new_handle;
	res.handle.len = GN_HANDLE_SIZE;
	res.bytes = gn_meta_nbytes(&tj.meta);
	return gn_server_send(cs, GENIE__MSG_TYPE__MSG_TYPE_UPLOAD_RESULT,
			      env->request_id, &res.base, NULL, 0);

refused:
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return refuse(cs, env->request_id, rc);
}

int gn_server_handle_attach(struct conn_slot *cs, const Genie__Envelope *env)
{
	struct tensor_job tj = {.job.run = run_attach,
				.srv = cs->srv,
				.session = cs->session,
				.what = "attach"};
	Genie__AttachResult res = GENIE__ATTACH_RESULT__INIT;
	Genie__AttachRequest *req;
	int rc;

	atomic_fetch_add(&cs->srv->tensor_requests, 1);
	req = (Genie__AttachRequest *)gn_pb_unpack(
		&genie__attach_request__descriptor, env->body.data,
		env->body.len, cs->conn->limits.max_envelope);
	if (req == NULL)
		return refuse(cs, env->request_id, gn_last_error_code());
	rc = check_key(&req->content_key, "attach");
	if (rc != 0)
		goto refused;
	if (req->meta == NULL) {
		rc = gn_error_set(-EINVAL,
				  "attach: request without a tensor meta");
		goto refused;
	}
	rc = gn_meta_from_pb(req->meta, &tj.meta, "attach");
	if (rc != 0)
		goto refused;
	tj.key = req->content_key.data;
	tj.pin = req->pin;
	rc = gn_worker_call(cs->srv->worker, &tj.job);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	if (rc == -ENOENT) {
		/* Not cached: the expected answer to a first load, not a
		 * fault; the client uploads next. */
		GN_LOG(DEBUG, runtime, "%s: request %llu: %s", cs->conn->peer,
		       (unsigned long long)env->request_id, gn_last_error());
		return gn_server_send_error(cs, env->request_id, rc,
					    gn_last_error());
	}
	if (rc != 0)
		return refuse(cs, env->request_id, rc);
	res.handle.data = tj.new_handle;
	res.handle.len = GN_HANDLE_SIZE;
	res.bytes = gn_meta_nbytes(&tj.meta);
	return gn_server_send(cs, GENIE__MSG_TYPE__MSG_TYPE_ATTACH_RESULT,
			      env->request_id, &res.base, NULL, 0);

refused:
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return refuse(cs, env->request_id, rc);
}

int gn_server_handle_download(struct conn_slot *cs, const Genie__Envelope *env)
{
	struct tensor_job tj = {.job.run = run_download,
				.srv = cs->srv,
				.session = cs->session,
				.what = "download"};
	Genie__DownloadResult res = GENIE__DOWNLOAD_RESULT__INIT;
	Genie__TensorMeta pm = GENIE__TENSOR_META__INIT;
	int64_t dims[GN_MAX_DIMS];
	Genie__DownloadRequest *req;
	struct iovec iov;
	int rc;

	atomic_fetch_add(&cs->srv->tensor_requests, 1);
	req = (Genie__DownloadRequest *)gn_pb_unpack(
		&genie__download_request__descriptor, env->body.data,
		env->body.len, cs->conn->limits.max_envelope);
	if (req == NULL)
		return refuse(cs, env->request_id, gn_last_error_code());
	rc = check_handle(&req->handle, "download");
	if (rc == 0) {
		tj.handle = req->handle.data;
		tj.gpu_ok = gn_conn_takes_gpu_memory(cs->conn);
		rc = gn_worker_call(cs->srv->worker, &tj.job);
	}
	protobuf_c_message_free_unpacked(&req->base, NULL);
	if (rc != 0)
		return refuse(cs, env->request_id, rc);
	gn_meta_to_pb(&tj.meta, &pm, dims);
	res.meta = &pm;
	iov.iov_base = tj.out;
	iov.iov_len = tj.out_len;
	rc = gn_server_send(cs, GENIE__MSG_TYPE__MSG_TYPE_DOWNLOAD_RESULT,
			    env->request_id, &res.base, &iov, 1);
	if (tj.loan != NULL) {
		/* The send returned: the transport is done with the bytes. */
		tj.job.run = run_unlend;
		tj.job.must_run = 1;
		(void)gn_worker_call(cs->srv->worker, &tj.job);
	} else {
		free(tj.out);
	}
	return rc;
}

/* FREE and PIN: a handle in, a TensorAck with it out. */
static int handle_simple(struct conn_slot *cs, const Genie__Envelope *env,
			 const ProtobufCBinaryData *handle,
			 struct tensor_job *tj)
{
	Genie__TensorAck ack = GENIE__TENSOR_ACK__INIT;
	uint8_t h[GN_HANDLE_SIZE];
	int rc;

	rc = check_handle(handle, tj->what);
	if (rc != 0)
		return refuse(cs, env->request_id, rc);
	memcpy(h, handle->data, GN_HANDLE_SIZE);
	tj->handle = h;
	rc = gn_worker_call(cs->srv->worker, &tj->job);
	if (rc != 0)
		return refuse(cs, env->request_id, rc);
	ack.handle.data = h;
	ack.handle.len = GN_HANDLE_SIZE;
	return gn_server_send(cs, GENIE__MSG_TYPE__MSG_TYPE_TENSOR_ACK,
			      env->request_id, &ack.base, NULL, 0);
}

int gn_server_handle_free(struct conn_slot *cs, const Genie__Envelope *env)
{
	struct tensor_job tj = {.job.run = run_free,
				.srv = cs->srv,
				.session = cs->session,
				.what = "free"};
	Genie__FreeRequest *req;
	int rc;

	atomic_fetch_add(&cs->srv->tensor_requests, 1);
	req = (Genie__FreeRequest *)gn_pb_unpack(
		&genie__free_request__descriptor, env->body.data, env->body.len,
		cs->conn->limits.max_envelope);
	if (req == NULL)
		return refuse(cs, env->request_id, gn_last_error_code());
	rc = handle_simple(cs, env, &req->handle, &tj);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return rc;
}

int gn_server_handle_pin(struct conn_slot *cs, const Genie__Envelope *env)
{
	struct tensor_job tj = {.job.run = run_pin,
				.srv = cs->srv,
				.session = cs->session,
				.what = "pin"};
	Genie__PinRequest *req;
	int rc;

	atomic_fetch_add(&cs->srv->tensor_requests, 1);
	req = (Genie__PinRequest *)gn_pb_unpack(&genie__pin_request__descriptor,
						env->body.data, env->body.len,
						cs->conn->limits.max_envelope);
	if (req == NULL)
		return refuse(cs, env->request_id, gn_last_error_code());
	tj.pin = req->pinned;
	rc = handle_simple(cs, env, &req->handle, &tj);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return rc;
}

void gn_server_end_session(struct conn_slot *cs)
{
	struct tensor_job tj = {.job.run = run_end_session,
				.job.must_run = 1,
				.srv = cs->srv,
				.session = cs->session};

	/* must_run: only a stopped worker refuses it, and then the registry
	 * is about to be destroyed with everything in it anyway. */
	gn_worker_call(cs->srv->worker, &tj.job);
}

/*
 * Payload placement (transport.h): an UPLOAD of GN_SERVER_PLACE_MIN bytes
 * or more lands straight in a block of the runtime's pool, which the
 * registry then adopts, instead of in a message buffer copied into a new
 * block. Host-memory backends take it over any transport that places;
 * GPU backends only where the transport writes GPU memory (verbs), and
 * never for a shared upload, whose key is checked by reading the bytes on
 * the host. It may run on a transport's thread (dpdk's engine), so it
 * only parses and takes the pool's lock: a pool without room declines,
 * and the worker evicts for the copy as before.
 */
void *gn_server_place(void *arg, const struct gn_conn *c, const uint8_t *env,
		      size_t env_len, size_t payload_len)
{
	struct gn_server *s = arg;
	int host = s->backend.ops->host_memory;
	Genie__UploadRequest *req;
	struct gn_envelope_peek e;
	struct gn_tensor_meta meta;
	void *blk = NULL;

	if (payload_len < GN_SERVER_PLACE_MIN ||
	    (!host && !(gn_gpu_mem_enabled() && gn_conn_takes_gpu_memory(c))))
		return NULL;
	/* Not unpacked: an EXEC's envelope may carry a whole plan. */
	if (gn_envelope_peek(env, env_len, &e) != 0 ||
	    e.type != GENIE__MSG_TYPE__MSG_TYPE_UPLOAD)
		return NULL; /* dispatch says what is wrong with it */
	req = (Genie__UploadRequest *)gn_pb_unpack(
		&genie__upload_request__descriptor, e.body, e.body_len,
		c->limits.max_envelope);
	if (req == NULL)
		return NULL;
	if (req->meta != NULL && (host || !req->shared) &&
	    gn_meta_from_pb(req->meta, &meta, "upload") == 0 &&
	    gn_meta_nbytes(&meta) == payload_len)
		blk = gn_pool_try_alloc(s->pool, payload_len);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return blk;
}

void gn_server_unplace(void *arg, void *buf)
{
	struct gn_server *s = arg;

	gn_pool_free(s->pool, buf);
}
