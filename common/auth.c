/*
 * Shared-secret authentication (see auth.h): HMAC-SHA256 from OpenSSL.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "gn_error.h"
#include "log.h"

GN_LOG_REGISTER(auth)

static const char k_label[] = "genie-coord-v1";

int gn_auth_load_secret(const char *path, struct gn_auth_secret *s)
{
	struct stat st;
	ssize_t n;
	int fd;

	memset(s, 0, sizeof(*s));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gn_error_set(-errno,
				    "auth: cannot open secret file "
				    "'%s': %s",
				    path, strerror(errno));
	if (fstat(fd, &st) == 0 && (st.st_mode & 0077))
		GN_LOG(WARNING, auth,
		       "secret file '%s' can be read by others (mode %03o); "
		       "chmod 600 it",
		       path, (unsigned)(st.st_mode & 0777));
	n = read(fd, s->bytes, sizeof(s->bytes));
	if (n < 0) {
		int e = errno;

		close(fd);
		return gn_error_set(-e, "auth: cannot read '%s': %s", path,
				    strerror(e));
	}
	/* One more byte would mean the file is larger than allowed. */
	if ((size_t)n == sizeof(s->bytes)) {
		char extra;

		if (read(fd, &extra, 1) == 1) {
			close(fd);
			memset(s, 0, sizeof(*s));
			return gn_error_set(-EINVAL,
					    "auth: secret file '%s' is larger "
					    "than %d bytes",
					    path, GN_AUTH_SECRET_MAX);
		}
	}
	close(fd);
	if (n > 0 && s->bytes[n - 1] == '\n')
		n--;
	if (n > 0 && s->bytes[n - 1] == '\r')
		n--;
	if (n < GN_AUTH_SECRET_MIN) {
		memset(s, 0, sizeof(*s));
		return gn_error_set(-EINVAL,
				    "auth: secret file '%s' holds %zd bytes, "
				    "expected at least %d",
				    path, n, GN_AUTH_SECRET_MIN);
	}
	s->len = (size_t)n;
	return 0;
}

int gn_auth_nonce(uint8_t nonce[GN_AUTH_NONCE_SIZE])
{
	size_t got = 0;

	while (got < GN_AUTH_NONCE_SIZE) {
		ssize_t n = getrandom(nonce + got, GN_AUTH_NONCE_SIZE - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return gn_error_set(-EIO, "auth: no randomness: %s",
					    strerror(errno));
		got += (size_t)n;
	}
	return 0;
}

int gn_auth_mac(const struct gn_auth_secret *s,
		const uint8_t nonce[GN_AUTH_NONCE_SIZE], uint32_t role,
		const char *peer_name, uint8_t mac[GN_AUTH_MAC_SIZE])
{
	uint8_t msg[sizeof(k_label) - 1 + GN_AUTH_NONCE_SIZE + 4 +
		    GN_AUTH_NAME_MAX];
	size_t name_len = strlen(peer_name), n = 0;
	unsigned int len = 0;

	if (name_len > GN_AUTH_NAME_MAX)
		return gn_error_set(-EINVAL,
				    "auth: peer name of %zu bytes, at most %d",
				    name_len, GN_AUTH_NAME_MAX);
	memcpy(msg, k_label, sizeof(k_label) - 1);
	n += sizeof(k_label) - 1;
	memcpy(msg + n, nonce, GN_AUTH_NONCE_SIZE);
	n += GN_AUTH_NONCE_SIZE;
	for (int i = 0; i < 4; i++)
		msg[n++] = (uint8_t)(role >> (8 * i));
	memcpy(msg + n, peer_name, name_len);
	n += name_len;
	if (HMAC(EVP_sha256(), s->bytes, (int)s->len, msg, n, mac, &len) ==
		    NULL ||
	    len != GN_AUTH_MAC_SIZE)
		return gn_error_set(-EIO, "auth: HMAC-SHA256 failed");
	return 0;
}

int gn_auth_verify(const struct gn_auth_secret *s,
		   const uint8_t nonce[GN_AUTH_NONCE_SIZE], uint32_t role,
		   const char *peer_name, const uint8_t *mac, size_t mac_len)
{
	uint8_t want[GN_AUTH_MAC_SIZE];
	int rc = gn_auth_mac(s, nonce, role, peer_name, want);

	if (rc != 0)
		return rc;
	if (mac == NULL || mac_len != GN_AUTH_MAC_SIZE ||
	    CRYPTO_memcmp(want, mac, GN_AUTH_MAC_SIZE) != 0)
		return gn_error_set(-EACCES,
				    "authentication refused: wrong secret for "
				    "'%s' (or a replayed answer)",
				    peer_name);
	return 0;
}
