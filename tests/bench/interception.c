/*
 * Interception benchmark: what recording one lazy op costs a client.
 *
 * Records 1,000,000 ops (a transformer-block mix: linear, gelu, add,
 * layernorm, reshape, permute, matmul, mul, softmax, transpose, slice,
 * concat, relu) into one local session, timing batches of 64 ops, and
 * reports the median and p99 nanoseconds per op and the client memory per
 * recorded node. In the same run it executes a chain of the same mix on
 * the local CPU backend and reports its time per op, for scale.
 *
 *   interception [--quick] [--json]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "clock.h"

#define BATCH 64
#define D 64
#define T 8

struct block_inputs {
	struct gn_tensor *w1, *b1, *w2, *b2, *g, *be, *scale;
};

/* One block of 16 ops over x [T, D]; returns the block output [T, D]. */
static struct gn_tensor *block(struct gn_tensor *x,
			       const struct block_inputs *p)
{
	static const int64_t heads[] = {T, 4, D / 4};
	static const int64_t flat[] = {T, D};
	static const int perm[] = {1, 0, 2};
	struct gn_tensor *h, *q, *att, *cat[2];

	h = gn_gelu(gn_linear(x, p->w1, p->b1), 1);		     /* 2 */
	h = gn_add(gn_linear(h, p->w2, p->b2), x);		     /* 4 */
	h = gn_layernorm(h, p->g, p->be, 1, 1e-5f);		     /* 5 */
	q = gn_permute(gn_reshape(h, 3, heads), 3, perm);	     /* 7 */
	att = gn_mul(gn_matmul(q, gn_transpose(q, 1, 2)), p->scale); /* 10 */
	att = gn_matmul(gn_softmax(att, -1), q);		     /* 12 */
	h = gn_reshape(gn_permute(att, 3, perm), 2, flat);	     /* 14 */
	cat[0] = gn_slice(h, 1, 0, D / 2, 1);			     /* 15 */
	cat[1] = gn_relu(gn_slice(h, 1, D / 2, D, 1));		     /* 17 */
	return gn_concat(cat, 2, 1);				     /* 18 */
}

#define OPS_PER_BLOCK 18

static int make_inputs(struct gn_session *s, struct block_inputs *p, float *buf)
{
	int64_t wd[] = {D, D}, vd[] = {D};

	for (int i = 0; i < D * D; i++)
		buf[i] = (float)((i * 7919) % 201 - 100) / 1000.0f;
	p->w1 = gn_tensor_from_host(s, GN_DTYPE_F32, 2, wd, buf, 0);
	p->w2 = gn_tensor_from_host(s, GN_DTYPE_F32, 2, wd, buf, 0);
	p->b1 = gn_tensor_from_host(s, GN_DTYPE_F32, 1, vd, buf, 0);
	p->b2 = gn_tensor_from_host(s, GN_DTYPE_F32, 1, vd, buf + D, 0);
	p->g = gn_ones(s, GN_DTYPE_F32, 1, vd);
	p->be = gn_zeros(s, GN_DTYPE_F32, 1, vd);
	p->scale = gn_full(s, GN_DTYPE_F32, 0, NULL, 0.25);
	return p->w1 && p->w2 && p->b1 && p->b2 && p->g && p->be && p->scale
		       ? 0
		       : -1;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int quick = 0, json = 0;
	long target_ops = 1000000, exec_blocks = 200;
	struct gn_session_opts o;
	struct gn_session *s;
	struct block_inputs p;
	static float wbuf[D * D];
	float xbuf[T * D];
	int64_t xd[] = {T, D};
	double *lat;
	long nb = 0, ops = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else {
			fprintf(stderr,
				"usage: interception [--quick] [--json]\n");
			return 2;
		}
	}
	if (quick)
		exec_blocks = 50;
	for (int i = 0; i < T * D; i++)
		xbuf[i] = (float)(i % 13) / 13.0f - 0.5f;
	gn_session_opts_init(&o, sizeof(o));
	s = gn_session_create(&o);
	if (s == NULL || make_inputs(s, &p, wbuf) != 0) {
		fprintf(stderr, "interception: setup: %s\n", gn_last_error());
		return 1;
	}

	/* Record: time each batch of BATCH ops (whole blocks straddle). */
	lat = malloc(sizeof(double) * (size_t)(target_ops / BATCH + 2));
	struct gn_tensor *x = gn_tensor_from_host(s, GN_DTYPE_F32, 2, xd, xbuf,
						  GN_TENSOR_BORROW);
	uint64_t nodes0 = s->nnodes;
	struct gn_arena_stats st0, st1;
	gn_arena_get_stats(s->arena, &st0);
	uint64_t t_all = gn_clock_ns();
	while (ops < target_ops) {
		/* Blocks of 18 ops; a sample covers ceil(64/18) = 4 blocks. */
		uint64_t t0 = gn_clock_ns();
		int n = 0;

		while (n < BATCH) {
			x = block(x, &p);
			n += OPS_PER_BLOCK;
		}
		lat[nb++] = (double)(gn_clock_ns() - t0) / n;
		ops += n;
		if (x == NULL) {
			fprintf(stderr, "interception: record: %s\n",
				gn_last_error());
			return 1;
		}
	}
	t_all = gn_clock_ns() - t_all;
	gn_arena_get_stats(s->arena, &st1);
	double bytes_per_node = (double)(st1.allocated - st0.allocated) /
				(double)(s->nnodes - nodes0);
	qsort(lat, (size_t)nb, sizeof(*lat), cmp_d);
	double med = lat[nb / 2], p99 = lat[(long)(nb * 0.99)];
	gn_session_destroy(&s);

	printf("interception: %ld ops recorded in %.3f s (%ld samples of %d+ "
	       "ops)\n",
	       ops, t_all / 1e9, nb, BATCH);
	printf("  %-34s %10.1f ns   (target <= 100)\n", "median per op", med);
	printf("  %-34s %10.1f ns\n", "p99 per op", p99);
	printf("  %-34s %10.1f B    (target <= 128)\n",
	       "client memory per node", bytes_per_node);

	/* Execute the same mix on the local CPU backend. */
	s = gn_session_create(&o);
	if (s == NULL || make_inputs(s, &p, wbuf) != 0) {
		fprintf(stderr, "interception: setup: %s\n", gn_last_error());
		return 1;
	}
	x = gn_tensor_from_host(s, GN_DTYPE_F32, 2, xd, xbuf, GN_TENSOR_BORROW);
	for (long b = 0; b < exec_blocks; b++)
		x = block(x, &p);
	uint64_t te = gn_clock_ns();
	int rc = gn_tensor_to_host(x, xbuf, sizeof(xbuf));
	te = gn_clock_ns() - te;
	if (rc != 0) {
		fprintf(stderr, "interception: execute: %s\n", gn_last_error());
		return 1;
	}
	double exec_ns = (double)te / (double)(exec_blocks * OPS_PER_BLOCK);
	gn_session_destroy(&s);

	printf("  %-34s %10.1f ns   (%ld ops, [%d,%d] f32, local cpu)\n",
	       "execute per op", exec_ns, exec_blocks * OPS_PER_BLOCK, T, D);
	printf("  %-34s %10.4f\n", "record / execute", med / exec_ns);
	if (json)
		printf("{\"ops\": %ld, \"median_ns_per_op\": %.2f, "
		       "\"p99_ns_per_op\": %.2f, \"bytes_per_node\": %.2f, "
		       "\"exec_ns_per_op\": %.2f, "
		       "\"record_over_execute\": %.5f}\n",
		       ops, med, p99, bytes_per_node, exec_ns, med / exec_ns);
	free(lat);
	return 0;
}
