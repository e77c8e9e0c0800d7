/*
 * One client of the dpdk:// loss test: relu of an N MiB tensor on a
 * genie-runtime over DPDK memif, checked bit-exact, timed.
 *
 *   dpdk_loss_client TARGET MIB TIMEOUT_MS [expect-fail]
 *
 * With a coordinator:// target, $GENIE_SECRET_FILE is the secret and
 * $GENIE_TEST_TRANSPORT (tcp, dpdk) the data plane asked for.
 *
 * With $GENIE_TEST_RESIDENT set (not empty), the tensor is made resident first:
 * sent as an UPLOAD (which the runtime places, transport.h), then read by the
 * plan.
 *
 * Exit 0 when the result is right (or, with expect-fail, when the request
 * fails with an error that says why within the timeout); 1 otherwise.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <genie/genie.h>

#include "clock.h"

int main(int argc, char **argv)
{
	struct gn_session_opts o;
	struct gn_session *s;
	struct gn_tensor *x, *y;
	const char *resident;
	uint64_t mib, n, t0, bad = 0;
	int64_t shape[1];
	float *in, *out;
	int expect_fail, rc;

	if (argc < 4) {
		fprintf(stderr,
			"usage: %s TARGET MIB TIMEOUT_MS "
			"[expect-fail]\n",
			argv[0]);
		return 2;
	}
	mib = strtoull(argv[2], NULL, 10);
	expect_fail = argc > 4 && strcmp(argv[4], "expect-fail") == 0;
	n = mib << 18; /* floats */
	shape[0] = (int64_t)n;
	in = malloc(n * sizeof(float));
	out = malloc(n * sizeof(float));
	if (in == NULL || out == NULL)
		return 1;
	for (uint64_t i = 0; i < n; i++)
		in[i] = (float)((int64_t)(i * 2654435761u % 2001) - 1000) /
			7.0f;
	gn_session_opts_init(&o, sizeof(o));
	o.target = argv[1];
	o.timeout_ms = atoi(argv[3]);
	/* coordinator:// targets: which data plane (the multi-listen test). */
	o.transport = getenv("GENIE_TEST_TRANSPORT");
	t0 = gn_clock_ns();
	s = gn_session_create(&o);
	if (s == NULL) {
		printf("session: %s (%s)\n", gn_last_error(),
		       gn_strerror(gn_last_error_code()));
		free(in);
		free(out);
		return expect_fail ? 0 : 1;
	}
	x = gn_tensor_from_host(s, GN_DTYPE_F32, 1, shape, in,
				GN_TENSOR_BORROW);
	/* GENIE_TEST_RESIDENT: uploaded first (an UPLOAD, not a plan input). */
	resident = getenv("GENIE_TEST_RESIDENT");
	if (resident != NULL && resident[0] != '\0' &&
	    gn_tensor_make_resident(x, 0) != 0) {
		printf("upload of %llu MiB failed after %.1f s: %s\n",
		       (unsigned long long)mib, (gn_clock_ns() - t0) / 1e9,
		       gn_last_error());
		gn_session_destroy(&s);
		free(in);
		free(out);
		return 1;
	}
	y = gn_relu(x);
	rc = gn_tensor_to_host(y, out, n * sizeof(float));
	if (rc != 0) {
		printf("relu of %llu MiB failed after %.1f s: %s\n",
		       (unsigned long long)mib, (gn_clock_ns() - t0) / 1e9,
		       gn_last_error());
		rc = expect_fail && gn_last_error()[0] != '\0' ? 0 : 1;
		gn_session_destroy(&s);
		free(in);
		free(out);
		return rc;
	}
	for (uint64_t i = 0; i < n; i++) {
		float want = in[i] > 0 ? in[i] : 0;

		if (memcmp(&out[i], &want, sizeof(float)) != 0)
			bad++;
	}
	printf("relu of %llu MiB over %s: %s, %.2f s, %llu elements wrong\n",
	       (unsigned long long)mib, argv[1], bad ? "WRONG" : "bit-exact",
	       (gn_clock_ns() - t0) / 1e9, (unsigned long long)bad);
	gn_session_destroy(&s);
	free(in);
	free(out);
	return bad == 0 && !expect_fail ? 0 : 1;
}
