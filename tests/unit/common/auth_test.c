/*
 * Shared-secret authentication: secret files, MACs bound to nonce, role
 * and name, and refusals.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "gn_error.h"

static void write_file(const char *path, const char *text, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void test_secret_files(void **state)
{
	char path[] = "/tmp/genie-auth-XXXXXX";
	struct gn_auth_secret s, t;
	char *big = malloc(GN_AUTH_SECRET_MAX + 2);
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	write_file(path, "correct horse battery staple\n", 29);
	assert_int_equal(gn_auth_load_secret(path, &s), 0);
	assert_int_equal(s.len, 28); /* newline dropped */
	write_file(path, "correct horse battery staple", 28);
	assert_int_equal(gn_auth_load_secret(path, &t), 0);
	assert_memory_equal(s.bytes, t.bytes, 28);
	write_file(path, "short\n", 6);
	assert_int_equal(gn_auth_load_secret(path, &s), -EINVAL);
	assert_non_null(strstr(gn_last_error(), path));
	assert_non_null(strstr(gn_last_error(), "at least 16"));
	memset(big, 'x', GN_AUTH_SECRET_MAX + 1);
	write_file(path, big, GN_AUTH_SECRET_MAX + 1);
	assert_int_equal(gn_auth_load_secret(path, &s), -EINVAL);
	assert_non_null(strstr(gn_last_error(), "larger"));
	unlink(path);
	assert_int_equal(gn_auth_load_secret(path, &s), -ENOENT);
	assert_non_null(strstr(gn_last_error(), path));
	free(big);
}

static void test_mac_binds_everything(void **state)
{
	struct gn_auth_secret s = {.len = 20}, other = {.len = 20};
	uint8_t n1[GN_AUTH_NONCE_SIZE], n2[GN_AUTH_NONCE_SIZE];
	uint8_t mac[GN_AUTH_MAC_SIZE];
	char long_name[GN_AUTH_NAME_MAX + 2];

	(void)state;
	memset(s.bytes, 'a', s.len);
	memset(other.bytes, 'b', other.len);
	assert_int_equal(gn_auth_nonce(n1), 0);
	assert_int_equal(gn_auth_nonce(n2), 0);
	assert_memory_not_equal(n1, n2, sizeof(n1));
	assert_int_equal(gn_auth_mac(&s, n1, 1, "runtime-a", mac), 0);
	assert_int_equal(
		gn_auth_verify(&s, n1, 1, "runtime-a", mac, sizeof(mac)), 0);
	/* Another secret, nonce, role or name: refused, with words. */
	assert_int_equal(
		gn_auth_verify(&other, n1, 1, "runtime-a", mac, sizeof(mac)),
		-EACCES);
	assert_non_null(strstr(gn_last_error(), "runtime-a"));
	assert_int_equal(
		gn_auth_verify(&s, n2, 1, "runtime-a", mac, sizeof(mac)),
		-EACCES);
	assert_int_equal(
		gn_auth_verify(&s, n1, 2, "runtime-a", mac, sizeof(mac)),
		-EACCES);
	assert_int_equal(
		gn_auth_verify(&s, n1, 1, "runtime-b", mac, sizeof(mac)),
		-EACCES);
	assert_int_equal(gn_auth_verify(&s, n1, 1, "runtime-a", mac, 31),
			 -EACCES);
	assert_int_equal(gn_auth_verify(&s, n1, 1, "runtime-a", NULL, 32),
			 -EACCES);
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(gn_auth_mac(&s, n1, 1, long_name, mac), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_files),
		cmocka_unit_test(test_mac_binds_everything),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
