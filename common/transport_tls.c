/*
 * The TLS transport ("tls://HOST:PORT"): the TCP transport's framing over
 * OpenSSL, for the control plane (genie-coordinator and its peers).
 *
 * It wraps a tcp:// connection rather than copying it: connect and accept
 * go through the TCP transport, and the TLS session then runs over the
 * same non-blocking socket through a small BIO that sends with
 * MSG_NOSIGNAL (OpenSSL's socket BIO uses write(), which raises SIGPIPE
 * in a library user that has not ignored it). Every wait is a poll() on
 * that socket with the caller's deadline, as in transport_tcp.c.
 *
 * A connecting end shakes hands inside connect(), so certificate errors
 * surface there. A listening end shakes hands on the first send or recv,
 * on the connection's own thread, so a slow or hostile peer never holds up
 * the accept loop. Certificate problems are -EACCES with words that say
 * which (self-signed / unknown CA, expired, wrong host name, no client
 * certificate); a peer that does not speak TLS is -EPROTO.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clock.h"
#include "gn_error.h"
#include "log.h"
#include "transport.h"

GN_LOG_REGISTER(tls)

struct tls_conn {
	struct gn_conn base; /* first: the generic code casts */
	struct gn_conn *tcp; /* owns the socket */
	SSL *ssl;
	int fd;
	int server;
	int ready;  /* handshake done */
	int failed; /* handshake refused: linger on close (tls_close) */
};

struct tls_listener {
	struct gn_listener base;
	struct gn_listener *tcp;
	SSL_CTX *ctx;
};

static const struct gn_transport_ops tls_ops;

/* --- A socket BIO that never raises SIGPIPE ----------------------------- */

static BIO_METHOD *g_bio_method;
static pthread_once_t g_bio_once = PTHREAD_ONCE_INIT;

static int bio_fd(BIO *b)
{
	return (int)(intptr_t)BIO_get_data(b);
}

static int bio_retry(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

static int bio_write(BIO *b, const char *buf, int len)
{
	ssize_t w = send(bio_fd(b), buf, (size_t)len, MSG_NOSIGNAL);

	BIO_clear_retry_flags(b);
	if (w < 0 && bio_retry())
		BIO_set_retry_write(b);
	return (int)w;
}

static int bio_read(BIO *b, char *buf, int len)
{
	ssize_t r = recv(bio_fd(b), buf, (size_t)len, 0);

	BIO_clear_retry_flags(b);
	if (r < 0 && bio_retry())
		BIO_set_retry_read(b);
	return (int)r;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "genie socket");

	if (m == NULL)
		return;
	BIO_meth_set_write(m, bio_write);
	BIO_meth_set_read(m, bio_read);
	BIO_meth_set_ctrl(m, bio_ctrl);
	BIO_meth_set_create(m, bio_create);
	g_bio_method = m;
}

/* --- Errors ------------------------------------------------------------- */

/* The OpenSSL error queue's last entry in words ("" when empty); clears. */
static unsigned long ssl_last_error(char *buf, size_t len)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	buf[0] = '\0';
	if (last != 0)
		ERR_error_string_n(last, buf, len);
	return last;
}

/* What a failed certificate check means, in an operator's words. */
static const char *verify_hint(long v)
{
	switch (v) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return "self-signed / unknown CA: is --tls-ca the CA that "
		       "signed it?";
	case X509_V_ERR_CERT_HAS_EXPIRED: return "expired";
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "not valid yet: check the clocks";
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return "wrong host name: the certificate does not name the "
		       "address connected to";
	default: return "certificate verify failed";
	}
}

/*
 * Turn a failed SSL call (SSL_get_error() gave `e`) into an error code and
 * detail. `what` is "TLS handshake with" or "TLS with".
 */
static int tls_fail(struct tls_conn *c, int e, const char *what)
{
	const char *peer = c->base.peer;
	char text[256];
	unsigned long err = ssl_last_error(text, sizeof(text));
	long v = SSL_get_verify_result(c->ssl);
	int reason = err ? ERR_GET_REASON(err) : 0;

	if (v != X509_V_OK && err != 0)
		return gn_error_set(-EACCES,
				    "%s %s failed: %s certificate verify "
				    "failed: %s (%s)",
				    what, peer, c->server ? "client" : "its",
				    X509_verify_cert_error_string(v),
				    verify_hint(v));
	switch (reason) {
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return gn_error_set(-EACCES,
				    "%s %s failed: peer presented no client "
				    "certificate",
				    what, peer);
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return gn_error_set(-EACCES,
				    "%s %s failed: it requires a client "
				    "certificate and we presented none "
				    "(--tls-cert/--tls-key)",
				    what, peer);
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
		return gn_error_set(-EACCES,
				    "%s %s failed: it refused our certificate "
				    "(%s)",
				    what, peer,
				    ERR_reason_error_string(err)
					    ? ERR_reason_error_string(err)
					    : text);
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_HTTP_REQUEST:
		return gn_error_set(-EPROTO,
				    "%s %s failed: the peer does not speak "
				    "TLS (%s)",
				    what, peer, text);
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return gn_error_set(-ECONNRESET,
				    "tls: %s closed the connection", peer);
	default: break;
	}
	if (e == SSL_ERROR_ZERO_RETURN ||
	    (e == SSL_ERROR_SYSCALL && err == 0 && errno == 0))
		return gn_error_set(-ECONNRESET,
				    "tls: %s closed the connection", peer);
	if (e == SSL_ERROR_SYSCALL && err == 0)
		return gn_error_set(errno == EPIPE ? -ECONNRESET : -errno,
				    "tls: %s: %s", peer, strerror(errno));
	return gn_error_set(-EPROTO, "%s %s failed: %s", what, peer,
			    text[0] ? text : "unknown TLS error");
}

/* --- Contexts ----------------------------------------------------------- */

static int ctx_fail(SSL_CTX *ctx, const char *what, const char *file)
{
	char text[256];

	ssl_last_error(text, sizeof(text));
	SSL_CTX_free(ctx);
	return gn_error_set(-EINVAL, "tls: cannot load %s '%s': %s", what, file,
			    text);
}

/* A context for one end; the files as struct gn_tls_files says. */
static int ctx_new(const struct gn_tls_files *f, int server, SSL_CTX **out)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL)
		return gn_error_set(-ENOMEM, "tls: cannot make a context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* No resumption: connections are few and long-lived. */
	if (server)
		SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (server && (f->cert == NULL || f->key == NULL)) {
		SSL_CTX_free(ctx);
		return gn_error_set(-EINVAL,
				    "tls: a listener needs a certificate and "
				    "its key (--tls-cert FILE --tls-key FILE)");
	}
	if ((f->cert == NULL) != (f->key == NULL)) {
		SSL_CTX_free(ctx);
		return gn_error_set(-EINVAL,
				    "tls: a certificate needs its key and a "
				    "key its certificate (--tls-cert and "
				    "--tls-key together)");
	}
	if (f->cert != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1)
			return ctx_fail(ctx, "certificate", f->cert);
		if (SSL_CTX_use_PrivateKey_file(ctx, f->key,
						SSL_FILETYPE_PEM) != 1)
			return ctx_fail(ctx, "private key", f->key);
		if (SSL_CTX_check_private_key(ctx) != 1)
			return ctx_fail(ctx,
					"private key (it does not match "
					"the certificate)",
					f->key);
	}
	if (f->ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, f->ca, NULL) != 1)
			return ctx_fail(ctx, "CA file", f->ca);
	} else if (!server) {
		SSL_CTX_set_default_verify_paths(ctx);
	}
	if (server && f->ca != NULL) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(f->ca);

		if (names != NULL)
			SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(
			ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			NULL);
	} else if (!server) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	*out = ctx;
	return 0;
}

/* Wrap a TCP connection; takes `tcp` (closed on failure). */
static int conn_wrap(struct gn_conn *tcp, SSL_CTX *ctx, int server,
		     struct tls_conn **out)
{
	struct tls_conn *c;
	BIO *bio;

	pthread_once(&g_bio_once, bio_method_init);
	c = calloc(1, sizeof(*c));
	if (c == NULL || g_bio_method == NULL)
		goto nomem;
	c->base.ops = &tls_ops;
	c->base.limits = tcp->limits;
	snprintf(c->base.peer, sizeof(c->base.peer), "%s", tcp->peer);
	c->tcp = tcp;
	c->fd = tcp->ops->conn_fd(tcp);
	c->server = server;
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL)
		goto nomem;
	bio = BIO_new(g_bio_method);
	if (bio == NULL)
		goto nomem;
	BIO_set_data(bio, (void *)(intptr_t)c->fd);
	SSL_set_bio(c->ssl, bio, bio);
	if (server)
		SSL_set_accept_state(c->ssl);
	else
		SSL_set_connect_state(c->ssl);
	*out = c;
	return 0;

nomem:
	if (c != NULL)
		SSL_free(c->ssl);
	free(c);
	gn_conn_close(&tcp);
	return gn_error_set(-ENOMEM, "tls: no memory for a connection");
}

static int handshake(struct tls_conn *c, uint64_t deadline)
{
	int rc;

	while (!c->ready) {
		int r, e;

		ERR_clear_error();
		errno = 0;
		r = SSL_do_handshake(c->ssl);
		if (r == 1) {
			c->ready = 1;
			break;
		}
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			rc = gn_stream_wait_fd(c->fd,
				     e == SSL_ERROR_WANT_READ ? POLLIN
							      : POLLOUT,
				     deadline);
			if (rc != 0)
				return gn_error_set(rc,
						    "TLS handshake with %s "
						    "failed: %s",
						    c->base.peer,
						    strerror(-rc));
			continue;
		}
		c->failed = 1;
		return tls_fail(c, e, "TLS handshake with");
	}
	return 0;
}

/* --- The ops ------------------------------------------------------------ */

static int tls_listen(const char *addr, const struct gn_transport_opts *opts,
		      struct gn_listener **out)
{
	struct gn_transport_opts topts = *opts;
	struct tls_listener *l;
	char url[128];
	SSL_CTX *ctx;
	int rc;

	rc = ctx_new(&opts->tls, 1, &ctx);
	if (rc != 0)
		return rc;
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		SSL_CTX_free(ctx);
		return gn_error_set(-ENOMEM, "tls: no memory");
	}
	snprintf(url, sizeof(url), "tcp://%s", addr);
	memset(&topts.tls, 0, sizeof(topts.tls));
	rc = gn_listen(url, &topts, &l->tcp);
	if (rc != 0) {
		SSL_CTX_free(ctx);
		free(l);
		return rc;
	}
	l->base.ops = &tls_ops;
	l->base.opts = *opts;
	memset(&l->base.opts.tls, 0, sizeof(l->base.opts.tls));
	snprintf(l->base.addr, sizeof(l->base.addr), "%s", l->tcp->addr);
	l->ctx = ctx;
	GN_LOG(INFO, tls, "listening on %s (client certificates %s)",
	       l->base.addr, opts->tls.ca ? "required" : "not asked for");
	*out = &l->base;
	return 0;
}

static int tls_accept(struct gn_listener *gl, int timeout_ms,
		      struct gn_conn **out)
{
	struct tls_listener *l = (struct tls_listener *)gl;
	struct gn_conn *tcp = NULL;
	struct tls_conn *c;
	int rc = l->tcp->ops->accept(l->tcp, timeout_ms, &tcp);

	if (rc != 0)
		return rc;
	rc = conn_wrap(tcp, l->ctx, 1, &c);
	if (rc != 0)
		return rc;
	*out = &c->base;
	return 0;
}

static int tls_listener_fd(const struct gn_listener *gl)
{
	const struct tls_listener *l = (const struct tls_listener *)gl;

	return l->tcp->ops->listener_fd(l->tcp);
}

static void tls_listener_close(struct gn_listener *gl)
{
	struct tls_listener *l = (struct tls_listener *)gl;

	gn_listener_close(&l->tcp);
	SSL_CTX_free(l->ctx);
	free(l);
}

static int tls_connect(const char *addr, const struct gn_transport_opts *opts,
		       int timeout_ms, struct gn_conn **out)
{
	uint64_t deadline = gn_stream_deadline(timeout_ms);
	struct gn_transport_opts topts = *opts;
	struct gn_conn *tcp = NULL;
	struct tls_conn *c;
	unsigned char ip[16];
	char url[300], host[256];
	uint16_t port;
	SSL_CTX *ctx;
	int rc;

	rc = gn_addr_split(addr, host, sizeof(host), &port);
	if (rc != 0)
		return rc;
	rc = ctx_new(&opts->tls, 0, &ctx);
	if (rc != 0)
		return rc;
	snprintf(url, sizeof(url), "tcp://%s", addr);
	memset(&topts.tls, 0, sizeof(topts.tls));
	rc = gn_connect(url, &topts, timeout_ms, &tcp);
	if (rc != 0) {
		SSL_CTX_free(ctx);
		return rc;
	}
	rc = conn_wrap(tcp, ctx, 0, &c);
	SSL_CTX_free(ctx); /* the SSL holds its own reference */
	if (rc != 0)
		return rc;
	/* Check the name we dialled: an IP address or a host name. */
	if (inet_pton(AF_INET, host, ip) == 1 ||
	    inet_pton(AF_INET6, host, ip) == 1) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
	} else {
		SSL_set1_host(c->ssl, host);
		SSL_set_tlsext_host_name(c->ssl, host);
	}
	rc = handshake(c, deadline);
	if (rc != 0) {
		SSL_free(c->ssl);
		gn_conn_close(&c->tcp);
		free(c);
		return rc;
	}
	*out = &c->base;
	return 0;
}

static int write_all(struct tls_conn *c, const uint8_t *p, size_t len,
		     uint64_t deadline)
{
	while (len > 0) {
		int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
		int w, e, rc;

		ERR_clear_error();
		errno = 0;
		w = SSL_write(c->ssl, p, chunk);
		if (w > 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		e = SSL_get_error(c->ssl, w);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return tls_fail(c, e, "TLS with");
		rc = gn_stream_wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			     deadline);
		if (rc != 0)
			return gn_error_set(rc, "tls: send to %s: %s",
					    c->base.peer, strerror(-rc));
	}
	return 0;
}

static int tls_send(struct gn_conn *gc, const uint8_t *env, size_t env_len,
		    const struct iovec *payload, int iovcnt, int timeout_ms)
{
	struct tls_conn *c = (struct tls_conn *)gc;
	uint64_t deadline = gn_stream_deadline(timeout_ms);
	uint8_t hdr[GN_FRAME_HDR_SIZE];
	uint64_t payload_len;
	int rc;

	rc = gn_stream_frame_hdr(gc, env_len, payload, iovcnt, hdr,
				 &payload_len);
	if (rc != 0)
		return rc;
	rc = handshake(c, deadline);
	if (rc != 0)
		return rc;
	rc = write_all(c, hdr, sizeof(hdr), deadline);
	if (rc == 0)
		rc = write_all(c, env, env_len, deadline);
	for (int i = 0; rc == 0 && i < iovcnt; i++)
		rc = write_all(c, payload[i].iov_base, payload[i].iov_len,
			       deadline);
	if (rc != 0)
		return rc;
	gc->stats.bytes_sent += sizeof(hdr) + env_len + payload_len;
	gc->stats.msgs_sent++;
	return 0;
}

/* Read exactly `len` bytes (gn_stream_read_fn). */
static int read_full(struct gn_conn *gc, uint8_t *buf, size_t len,
		     uint64_t deadline, size_t *got)
{
	struct tls_conn *c = (struct tls_conn *)gc;

	*got = 0;
	while (*got < len) {
		size_t want = len - *got;
		int r, e, rc;

		ERR_clear_error();
		errno = 0;
		r = SSL_read(c->ssl, buf + *got,
			     want > (1u << 30) ? 1 << 30 : (int)want);
		if (r > 0) {
			*got += (size_t)r;
			continue;
		}
		e = SSL_get_error(c->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return tls_fail(c, e, "TLS with");
		rc = gn_stream_wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			     deadline);
		if (rc != 0)
			return gn_error_set(rc, "tls: receive from %s: %s",
					    c->base.peer, strerror(-rc));
	}
	return 0;
}

static int tls_recv(struct gn_conn *gc, struct gn_msg *msg, int timeout_ms)
{
	uint64_t deadline = gn_stream_deadline(timeout_ms);
	int rc;

	memset(msg, 0, sizeof(*msg));
	rc = handshake((struct tls_conn *)gc, deadline);
	if (rc != 0)
		return rc;
	return gn_stream_recv(gc, read_full, deadline, msg);
}

static int tls_conn_fd(const struct gn_conn *gc)
{
	return ((const struct tls_conn *)gc)->fd;
}

static void tls_close(struct gn_conn *gc)
{
	struct tls_conn *c = (struct tls_conn *)gc;

	/* One non-blocking close_notify; the peer copes without it. */
	if (c->ready) {
		ERR_clear_error();
		SSL_shutdown(c->ssl);
	}
	/*
	 * A refused client has usually sent its first request already (in
	 * TLS 1.3 its handshake ends before ours). Closing with that unread
	 * would send a reset that can overtake our alert, and the client
	 * would see "connection reset" instead of why: send FIN, read what
	 * it sent until it closes, briefly.
	 */
	if (c->server && c->failed) {
		uint64_t deadline = gn_stream_deadline(250);
		char sink[512];

		shutdown(c->fd, SHUT_WR);
		while (gn_stream_wait_fd(c->fd, POLLIN, deadline) == 0 &&
		       recv(c->fd, sink, sizeof(sink), 0) > 0)
			;
	}
	ERR_clear_error();
	SSL_free(c->ssl);
	gn_conn_close(&c->tcp);
	free(c);
}

static const struct gn_transport_ops tls_ops = {
	.name = "tls",
	.listen = tls_listen,
	.accept = tls_accept,
	.listener_fd = tls_listener_fd,
	.listener_close = tls_listener_close,
	.connect = tls_connect,
	.send = tls_send,
	.recv = tls_recv,
	.conn_fd = tls_conn_fd,
	.close = tls_close,
};

GN_TRANSPORT_REGISTER(tls_ops)
