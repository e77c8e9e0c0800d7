/*
 * Fuzz target: the ONNX loader. Any bytes go through gn_model_load_buffer()
 * on a local session; a model that loads is then recorded once with zero
 * inputs (which runs its shape arithmetic on the host). The only
 * acceptable outcomes are success or a negative errno with a message.
 */
#include <stdlib.h>
#include <string.h>

#include <genie/genie.h>

#include "fuzz.h"
#include "gn_error.h"

static struct gn_session *g_s;

static void run_once(struct gn_model *m)
{
	struct gn_tensor *in[16], *out[16];
	int nin = gn_model_num_inputs(m);

	if (nin > 16 || gn_model_num_outputs(m) > 16)
		return;
	for (int i = 0; i < nin; i++) {
		const struct gn_model_io *io = gn_model_input(m, i);
		uint64_t n = 1;

		if (io->ndim < 0)
			return;
		for (int d = 0; d < io->ndim; d++) {
			if (io->shape[d] < 0 || io->shape[d] > 4096)
				return;
			n *= (uint64_t)io->shape[d];
		}
		if (n > 4096)
			return;
		in[i] = gn_zeros(g_s, io->dtype, io->ndim, io->shape);
		if (in[i] == NULL)
			abort(); /* valid dtype and shape */
	}
	if (gn_model_run(m, in, out) != 0 && gn_last_error()[0] == '\0')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gn_model *m;

	if (g_s == NULL) {
		g_s = gn_session_create(NULL);
		if (g_s == NULL)
			abort();
	}
	m = gn_model_load_buffer(g_s, data, size, NULL);
	if (m == NULL) {
		if (gn_last_error_code() >= 0 || gn_last_error()[0] == '\0')
			abort(); /* an error without words is a bug */
		return 0;
	}
	gn_error_clear();
	run_once(m); /* leaves its error, if any, for the driver to count */
	gn_model_free(&m);
	return 0;
}
