/*
 * Fixed-seed driver for fuzz targets when libFuzzer is not in use: feeds
 * the target valid plans, then seeded random mutations of them (bit flips,
 * byte overwrites, truncations, insertions), then random bytes.
 *
 *   fuzz_driver [ITERATIONS] [SEED]
 *   fuzz_driver --write-seeds DIR   (a seed corpus for libFuzzer)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "genie/plan.pb-c.h"
#include "gn_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t g_state;

static uint32_t rnd(void)
{
	g_state ^= g_state << 13;
	g_state ^= g_state >> 7;
	g_state ^= g_state << 17;
	return (uint32_t)(g_state >> 11);
}

/* A valid plan: input -> relu -> conv-like chain with attributes. */
static size_t seed_plan(uint8_t *out, size_t cap, int variant)
{
	static uint8_t handle[16] = {1, 2, 3};
	int64_t s_in[] = {2, 3}, s_w[] = {3, 4}, s_mm[] = {2, 4};
	int64_t perm[] = {1, 0}, s_t[] = {4, 2};
	Genie__TensorMeta m_in = GENIE__TENSOR_META__INIT, m_w = m_in,
			  m_mm = m_in, m_t = m_in;
	Genie__Node n[5];
	Genie__Node *np[5];
	uint32_t in1[] = {0}, in2[] = {1, 4}, in3[] = {2};
	uint32_t outputs[] = {3};
	Genie__Plan plan = GENIE__PLAN__INIT;
	size_t len;

	for (int i = 0; i < 5; i++) {
		genie__node__init(&n[i]);
		np[i] = &n[i];
	}
	m_in.dtype = m_w.dtype = m_mm.dtype = m_t.dtype =
		GENIE__DTYPE__DTYPE_F32;
	m_in.n_shape = m_w.n_shape = m_mm.n_shape = m_t.n_shape = 2;
	m_in.shape = s_in;
	m_w.shape = s_w;
	m_mm.shape = s_mm;
	m_t.shape = s_t;
	n[0].op = GENIE__OP_TYPE__OP_INPUT;
	n[0].out = &m_in;
	n[0].handle.data = handle;
	n[0].handle.len = 16;
	n[1].op = GENIE__OP_TYPE__OP_RELU;
	n[1].n_inputs = 1;
	n[1].inputs = in1;
	n[1].out = &m_in;
	n[4].op = GENIE__OP_TYPE__OP_INPUT;
	n[4].out = &m_w;
	n[4].handle.data = handle;
	n[4].handle.len = 16;
	/* Node order 0,1,4 then matmul and permute keeps operands earlier. */
	Genie__Node *order[] = {&n[0], &n[1], &n[4], &n[2], &n[3]};
	in2[1] = 2;
	n[2].op = GENIE__OP_TYPE__OP_MATMUL;
	n[2].n_inputs = 2;
	n[2].inputs = in2;
	n[2].out = &m_mm;
	in3[0] = 3;
	n[3].op = GENIE__OP_TYPE__OP_PERMUTE;
	n[3].n_inputs = 1;
	n[3].inputs = in3;
	n[3].n_iattrs = 2;
	n[3].iattrs = perm;
	n[3].out = &m_t;
	outputs[0] = 4;
	plan.schema_version = GN_SCHEMA_VERSION;
	plan.n_nodes = variant ? 3 : 5;
	plan.nodes = variant ? np : order;
	plan.n_outputs = 1;
	plan.outputs = variant ? in3 : outputs;
	if (variant)
		in3[0] = 1;
	plan.fingerprint = 0x1234;
	len = genie__plan__get_packed_size(&plan);
	if (len > cap)
		return 0;
	return genie__plan__pack(&plan, out);
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? strtol(argv[1], NULL, 0) : 50000;
	uint8_t seeds[2][1024], buf[2048];
	size_t seed_len[2];
	long ok_decodes = 0;

	g_state = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x9e3779b97f4a7c15ull;
	if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) {
		for (int v = 0; v < 2; v++) {
			char path[512];
			FILE *f;

			seed_len[v] = seed_plan(seeds[v], sizeof(seeds[v]), v);
			snprintf(path, sizeof(path), "%s/seed%d", argv[2], v);
			f = fopen(path, "wb");
			if (f == NULL ||
			    fwrite(seeds[v], 1, seed_len[v], f) !=
				    seed_len[v] ||
			    fclose(f) != 0) {
				perror(path);
				return 1;
			}
		}
		return 0;
	}
	for (int v = 0; v < 2; v++) {
		seed_len[v] = seed_plan(seeds[v], sizeof(seeds[v]), v);
		/* The seeds themselves must decode. */
		Genie__Plan *pb = (Genie__Plan *)gn_pb_unpack(
			&genie__plan__descriptor, seeds[v], seed_len[v],
			1 << 20);
		if (pb == NULL) {
			fprintf(stderr, "seed %d does not unpack: %s\n", v,
				gn_last_error());
			return 1;
		}
		protobuf_c_message_free_unpacked(&pb->base, NULL);
		LLVMFuzzerTestOneInput(seeds[v], seed_len[v]);
	}
	for (long it = 0; it < iters; it++) {
		int v = (int)(rnd() % 2);
		size_t n = seed_len[v];

		memcpy(buf, seeds[v], n);
		switch (rnd() % 5) {
		case 0: /* flip bits */
			for (int k = 0; k < 1 + (int)(rnd() % 4); k++)
				buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
			break;
		case 1: /* overwrite bytes */
			for (int k = 0; k < 1 + (int)(rnd() % 8); k++)
				buf[rnd() % n] = (uint8_t)rnd();
			break;
		case 2: /* truncate */ n = rnd() % n; break;
		case 3: /* insert */
			if (n + 8 < sizeof(buf)) {
				size_t at = rnd() % n;

				memmove(buf + at + 8, buf + at, n - at);
				for (int k = 0; k < 8; k++)
					buf[at + k] = (uint8_t)rnd();
				n += 8;
			}
			break;
		default: /* random bytes */
			n = rnd() % 512;
			for (size_t k = 0; k < n; k++)
				buf[k] = (uint8_t)rnd();
		}
		gn_error_clear();
		LLVMFuzzerTestOneInput(buf, n);
		ok_decodes += gn_last_error()[0] == '\0';
	}
	printf("fuzz driver: %ld inputs, %ld decoded without error, no "
	       "crash\n",
	       iters, ok_decodes);
	return 0;
}
