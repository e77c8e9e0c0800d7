/*
 * Content keys (see content_key.h): SHA-256 through OpenSSL's EVP API.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "content_key.h"
#include "gn_error.h"

#define KEY_TAG "genie-tensor-v1"

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int gn_content_key(const struct gn_tensor_meta *meta, const void *bytes,
		   uint8_t key[GN_CONTENT_KEY_SIZE])
{
	uint8_t head[sizeof(KEY_TAG) - 1 + 8 + 8 * GN_MAX_DIMS];
	size_t hl = sizeof(KEY_TAG) - 1;
	unsigned int kl = 0;
	EVP_MD_CTX *ctx;
	int rc, ok;

	rc = gn_meta_check(meta, "content key");
	if (rc != 0)
		return rc;
	memcpy(head, KEY_TAG, hl);
	put_le(head + hl, (uint32_t)meta->dtype, 4);
	put_le(head + hl + 4, (uint32_t)meta->ndim, 4);
	hl += 8;
	for (int i = 0; i < meta->ndim; i++, hl += 8)
		put_le(head + hl, (uint64_t)meta->shape[i], 8);
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return gn_error_set(-ENOMEM, "content key: no digest context");
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
	     EVP_DigestUpdate(ctx, head, hl) &&
	     (gn_meta_nbytes(meta) == 0 ||
	      EVP_DigestUpdate(ctx, bytes, gn_meta_nbytes(meta))) &&
	     EVP_DigestFinal_ex(ctx, key, &kl) && kl == GN_CONTENT_KEY_SIZE;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return gn_error_set(-ENOMEM, "content key: SHA-256 failed");
	return 0;
}

const char *gn_content_key_hex(const uint8_t *key, int n, char *buf)
{
	for (int i = 0; i < n; i++)
		snprintf(buf + 2 * i, 3, "%02x", key[i]);
	buf[2 * n] = '\0';
	return buf;
}

int gn_content_key_check(const struct gn_tensor_meta *meta, const void *bytes,
			 const uint8_t claimed[GN_CONTENT_KEY_SIZE],
			 const char *what)
{
	uint8_t key[GN_CONTENT_KEY_SIZE];
	char h1[17], h2[17];
	int rc = gn_content_key(meta, bytes, key);

	if (rc != 0)
		return rc;
	if (memcmp(key, claimed, GN_CONTENT_KEY_SIZE) == 0)
		return 0;
	return gn_error_set(-EINVAL,
			    "%s: content key %s... is not the SHA-256 of the "
			    "tensor sent (%s...); refused",
			    what, gn_content_key_hex(claimed, 8, h1),
			    gn_content_key_hex(key, 8, h2));
}
