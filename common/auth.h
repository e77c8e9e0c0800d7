/*
 * Shared-secret authentication for control-plane connections.
 *
 * The coordinator sends a fresh 32-byte nonce; the peer proves it holds the
 * secret by answering HMAC-SHA256(secret, "genie-coord-v1" || nonce ||
 * role (u32 LE) || peer name). The MAC binds the role and name, so an
 * answer cannot be replayed under another identity or on another
 * connection. Secrets come from a file: its bytes, less one trailing
 * newline, 16 bytes at least.
 */
#ifndef GN_COMMON_AUTH_H
#define GN_COMMON_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define GN_AUTH_NONCE_SIZE 32
#define GN_AUTH_MAC_SIZE 32
#define GN_AUTH_SECRET_MIN 16
#define GN_AUTH_SECRET_MAX 4096
#define GN_AUTH_NAME_MAX 255 /* peer names longer are refused */

struct gn_auth_secret {
	uint8_t bytes[GN_AUTH_SECRET_MAX];
	size_t len;
};

/*
 * Read the secret at `path`. Returns 0, or -ENOENT/-EACCES/-EIO when the
 * file cannot be read, -EINVAL when it holds fewer than 16 or more than
 * 4096 bytes; the detail names the file. A file others can read is
 * accepted with a warning in the log.
 */
int gn_auth_load_secret(const char *path, struct gn_auth_secret *s);

/* A fresh random nonce. 0 or -EIO. */
int gn_auth_nonce(uint8_t nonce[GN_AUTH_NONCE_SIZE]);

/*
 * The answer to `nonce` for `role` and `peer_name` (NUL-terminated, at
 * most GN_AUTH_NAME_MAX bytes: -EINVAL beyond).
 */
int gn_auth_mac(const struct gn_auth_secret *s,
		const uint8_t nonce[GN_AUTH_NONCE_SIZE], uint32_t role,
		const char *peer_name, uint8_t mac[GN_AUTH_MAC_SIZE]);

/*
 * Check a peer's answer in constant time. 0, or -EACCES ("authentication
 * refused: wrong secret for <peer_name>") when it does not match or has
 * the wrong length.
 */
int gn_auth_verify(const struct gn_auth_secret *s,
		   const uint8_t nonce[GN_AUTH_NONCE_SIZE], uint32_t role,
		   const char *peer_name, const uint8_t *mac, size_t mac_len);

#endif /* GN_COMMON_AUTH_H */
