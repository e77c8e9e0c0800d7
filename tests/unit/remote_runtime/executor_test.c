/*
 * The executor's buffer reuse: on a ResNet-style chain the computed
 * values alive at once stay far below the sum of all of them, and the
 * result is the same with and without a pool. Lent outputs: the pieces
 * of a lent result are the copied payload, and every lent block goes back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "executor.h"
#include "frame.h"
#include "gn_error.h"
#include "gpu_mem.h"
#include "pool.h"

#define MAXN 64

/* A tiny plan builder over the generated protobuf structs. */
struct pb {
	Genie__Node nodes[MAXN], *np[MAXN];
	Genie__TensorMeta metas[MAXN];
	int64_t shapes[MAXN][4];
	uint32_t ins[MAXN][2];
	uint8_t handles[MAXN][16];
	uint32_t n;
};

static uint32_t add(struct pb *p, Genie__OpType op, int64_t c, int64_t h,
		    int64_t w, int64_t o, uint32_t a, uint32_t b, int nin,
		    int64_t *iattrs, size_t ni)
{
	uint32_t i = p->n++;
	Genie__Node *n = &p->nodes[i];

	genie__node__init(n);
	genie__tensor_meta__init(&p->metas[i]);
	p->metas[i].dtype = GENIE__DTYPE__DTYPE_F32;
	p->metas[i].n_shape = 4;
	p->shapes[i][0] = o;
	p->shapes[i][1] = c;
	p->shapes[i][2] = h;
	p->shapes[i][3] = w;
	p->metas[i].shape = p->shapes[i];
	n->op = op;
	n->out = &p->metas[i];
	n->n_inputs = (size_t)nin;
	p->ins[i][0] = a;
	p->ins[i][1] = b;
	n->inputs = p->ins[i];
	n->n_iattrs = ni;
	n->iattrs = iattrs;
	if (op == GENIE__OP_TYPE__OP_INPUT) {
		p->handles[i][0] = (uint8_t)i;
		n->handle.data = p->handles[i];
		n->handle.len = 16;
	}
	p->np[i] = n;
	return i;
}

/* Decode p's nodes, with these outputs, into a plan (or fail the test). */
static struct gn_plan *make_plan(const struct pb *p, uint32_t *outputs,
				 size_t nout)
{
	Genie__Plan pl = GENIE__PLAN__INIT;
	struct gn_plan *plan;

	pl.schema_version = GN_SCHEMA_VERSION;
	pl.n_nodes = p->n;
	pl.nodes = (Genie__Node **)p->np;
	pl.n_outputs = nout;
	pl.outputs = outputs;
	if (gn_plan_decode(&pl, &plan) != 0)
		fail_msg("decode: %s", gn_last_error());
	return plan;
}

static void test_resnet_chain_reuses_buffers(void **state)
{
	static int64_t conv[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
	static float xbuf[8 * 16 * 16], wbuf[8 * 8 * 3 * 3];
	static float out1[8 * 16 * 16], out2[8 * 16 * 16];
	struct gn_exec_input in[2];
	struct gn_exec_result r1, r2;
	struct gn_backend cpu;
	struct gn_pool *pool;
	struct gn_plan *plan;
	struct pb p = {0};
	uint32_t x, w, out;

	(void)state;
	for (size_t i = 0; i < sizeof(xbuf) / 4; i++)
		xbuf[i] = (float)((int)(i % 7) - 3) / 3.0f;
	for (size_t i = 0; i < sizeof(wbuf) / 4; i++)
		wbuf[i] = (float)((int)(i % 5) - 2) / 40.0f;
	x = add(&p, GENIE__OP_TYPE__OP_INPUT, 8, 16, 16, 1, 0, 0, 0, NULL, 0);
	w = add(&p, GENIE__OP_TYPE__OP_INPUT, 8, 3, 3, 8, 0, 0, 0, NULL, 0);
	/* Four residual blocks: relu(conv(relu(conv(x))) + x). */
	for (int blk = 0; blk < 4; blk++) {
		uint32_t c1 = add(&p, GENIE__OP_TYPE__OP_CONV2D, 8, 16, 16, 1,
				  x, w, 2, conv, 9);
		uint32_t r = add(&p, GENIE__OP_TYPE__OP_RELU, 8, 16, 16, 1, c1,
				 0, 1, NULL, 0);
		uint32_t c2 = add(&p, GENIE__OP_TYPE__OP_CONV2D, 8, 16, 16, 1,
				  r, w, 2, conv, 9);
		uint32_t s = add(&p, GENIE__OP_TYPE__OP_ADD, 8, 16, 16, 1, c2,
				 x, 2, NULL, 0);

		x = add(&p, GENIE__OP_TYPE__OP_RELU, 8, 16, 16, 1, s, 0, 1,
			NULL, 0);
	}
	out = x;
	plan = make_plan(&p, &out, 1);
	in[0] = (struct gn_exec_input){
		.handle = p.handles[0], .data = xbuf, .len = sizeof(xbuf)};
	in[1] = (struct gn_exec_input){
		.handle = p.handles[1], .data = wbuf, .len = sizeof(wbuf)};
	assert_int_equal(gn_backend_open("cpu", &cpu), 0);
	pool = gn_pool_create(&cpu, NULL);
	assert_int_equal(gn_exec_run(&cpu, pool, plan, in, 2, &r1), 0);
	assert_int_equal(gn_exec_run(&cpu, NULL, plan, in, 2, &r2), 0);
	/*
	 * 20 computed tensors of 8 KiB; oneDNN fuses conv+relu and
	 * conv+add+relu, leaving 8 buffers; at most 3 alive at once.
	 */
	assert_int_equal(r1.fused_nodes, 12);
	assert_int_equal(r1.sum_intermediate_bytes, (20 - 12) * 8192);
	assert_true(r1.peak_intermediate_bytes <= 3 * 8192);
	assert_true(r1.peak_intermediate_bytes < r1.sum_intermediate_bytes);
	memcpy(out1, r1.payload, sizeof(out1));
	memcpy(out2, r2.payload, sizeof(out2));
	assert_memory_equal(out1, out2, sizeof(out1));
	{
		/* The fused oneDNN chain agrees with the plain C kernels. */
		struct gn_backend plain;
		struct gn_exec_result r3;
		const float *ref;
		double worst = 0;

		setenv("GENIE_CPU_DNNL", "0", 1);
		assert_int_equal(gn_backend_open("cpu", &plain), 0);
		unsetenv("GENIE_CPU_DNNL");
		assert_int_equal(gn_exec_run(&plain, NULL, plan, in, 2, &r3),
				 0);
		assert_int_equal(r3.fused_nodes, 0);
		assert_int_equal(r3.sum_intermediate_bytes, 20 * 8192);
		ref = (const float *)r3.payload;
		for (size_t i = 0; i < sizeof(out1) / 4; i++) {
			double e = fabs(out1[i] - ref[i]) /
				   (fabs(ref[i]) > 1 ? fabs(ref[i]) : 1);

			worst = e > worst ? e : worst;
		}
		if (worst > 1e-5)
			fail_msg("fused vs plain: relative error %g", worst);
		gn_exec_result_fini(&r3);
		gn_backend_close(&plain);
	}
	gn_exec_result_fini(&r1);
	gn_exec_result_fini(&r2);
	{
		struct gn_pool_stats st;

		gn_pool_get_stats(pool, &st);
		assert_int_equal(st.in_use_bytes, 0); /* all given back */
		assert_true(st.reuses > 0);
	}
	gn_pool_destroy(&pool);
	gn_plan_free(&plan);
	gn_backend_close(&cpu);
}

/*
 * A device backend with one kernel (same-shape f32 add) and memory of its
 * own: every other node must run on its cpu fallback.
 */
static int fake_adds;

static int fake_init(void **ctx)
{
	*ctx = NULL;
	return 0;
}

static void fake_fini(void *ctx)
{
	(void)ctx;
}

static const char *fake_describe(void *ctx)
{
	(void)ctx;
	return "test device with an add kernel only";
}

/* The fake device's live blocks, for a fake driver that calls them CUDA. */
#define FAKE_MAX 64
static void *fake_blocks[FAKE_MAX];
static int fake_frees;

static void *fake_alloc(void *ctx, size_t size)
{
	void *p = malloc(size);

	(void)ctx;
	for (int i = 0; p != NULL && i < FAKE_MAX; i++)
		if (fake_blocks[i] == NULL) {
			fake_blocks[i] = p;
			break;
		}
	return p;
}

static void fake_free(void *ctx, void *p)
{
	(void)ctx;
	for (int i = 0; i < FAKE_MAX; i++)
		if (fake_blocks[i] == p && p != NULL)
			fake_blocks[i] = NULL;
	fake_frees++;
	free(p);
}

static enum gn_mem_kind fake_kind_of(const void *p)
{
	for (int i = 0; i < FAKE_MAX; i++)
		if (fake_blocks[i] == p && p != NULL)
			return GN_MEM_CUDA;
	return GN_MEM_HOST;
}

static int fake_copy(void *ctx, void *dst, const void *src, size_t n)
{
	(void)ctx;
	memcpy(dst, src, n);
	return 0;
}

static int fake_sync(void *ctx)
{
	(void)ctx;
	return 0;
}

static int fake_run(void *ctx, enum gn_op op, const struct gn_op_attrs *attrs,
		    const struct gn_tensor_meta *const *im,
		    const void *const *in, int nin,
		    const struct gn_tensor_meta *om, void *out)
{
	(void)ctx;
	(void)attrs;
	(void)im;
	if (op != GN_OP_ADD || nin != 2)
		return gn_error_set(-EOPNOTSUPP, "fake: no %s kernel",
				    gn_op_name(op));
	for (uint64_t i = 0; i < gn_meta_numel(om); i++)
		((float *)out)[i] =
			((const float *)in[0])[i] + ((const float *)in[1])[i];
	fake_adds++;
	return 0;
}

static const struct gn_backend_ops fake_ops = {
	.name = "fakedev",
	.init = fake_init,
	.fini = fake_fini,
	.describe = fake_describe,
	.alloc = fake_alloc,
	.free = fake_free,
	.upload = fake_copy,
	.download = fake_copy,
	.run = fake_run,
	.sync = fake_sync,
};

GN_BACKEND_REGISTER(fake_ops)

static void test_device_falls_back_to_host(void **state)
{
	static int64_t conv[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
	static float xbuf[4 * 6 * 6], wbuf[4 * 4 * 3 * 3];
	struct gn_exec_input in[2];
	struct gn_exec_result rd, rc;
	struct gn_backend dev, cpu;
	struct gn_plan *plan;
	struct pb p = {0};
	uint32_t x, w, out;

	(void)state;
	for (size_t i = 0; i < sizeof(xbuf) / 4; i++)
		xbuf[i] = (float)((int)(i % 7) - 3) / 3.0f;
	for (size_t i = 0; i < sizeof(wbuf) / 4; i++)
		wbuf[i] = (float)((int)(i % 5) - 2) / 20.0f;
	x = add(&p, GENIE__OP_TYPE__OP_INPUT, 4, 6, 6, 1, 0, 0, 0, NULL, 0);
	w = add(&p, GENIE__OP_TYPE__OP_INPUT, 4, 3, 3, 4, 0, 0, 0, NULL, 0);
	for (int blk = 0; blk < 2; blk++) {
		uint32_t c1 = add(&p, GENIE__OP_TYPE__OP_CONV2D, 4, 6, 6, 1, x,
				  w, 2, conv, 9);
		uint32_t r = add(&p, GENIE__OP_TYPE__OP_RELU, 4, 6, 6, 1, c1, 0,
				 1, NULL, 0);

		x = add(&p, GENIE__OP_TYPE__OP_ADD, 4, 6, 6, 1, r, x, 2, NULL,
			0);
	}
	out = x;
	plan = make_plan(&p, &out, 1);
	in[0] = (struct gn_exec_input){
		.handle = p.handles[0], .data = xbuf, .len = sizeof(xbuf)};
	in[1] = (struct gn_exec_input){
		.handle = p.handles[1], .data = wbuf, .len = sizeof(wbuf)};
	assert_int_equal(gn_backend_open("fakedev", &dev), 0);
	assert_non_null(dev.host);
	assert_string_equal(dev.host->ops->name, "cpu");
	assert_int_equal(gn_backend_open("cpu", &cpu), 0);
	assert_null(cpu.host);
	fake_adds = 0;
	if (gn_exec_run(&dev, NULL, plan, in, 2, &rd) != 0)
		fail_msg("device run: %s", gn_last_error());
	assert_int_equal(gn_exec_run(&cpu, NULL, plan, in, 2, &rc), 0);
	assert_int_equal(fake_adds, 2);	    /* adds on the device */
	assert_int_equal(rd.host_nodes, 4); /* convs and relus on the host */
	assert_int_equal(rd.payload_len, rc.payload_len);
	for (size_t i = 0; i < rd.payload_len / 4; i++)
		assert_float_equal(((float *)rd.payload)[i],
				   ((float *)rc.payload)[i], 1e-6);
	gn_exec_result_fini(&rd);
	gn_exec_result_fini(&rc);
	gn_plan_free(&plan);
	gn_backend_close(&dev);
	gn_backend_close(&cpu);
}

/* The iov pieces of r laid end to end, compared with a copied payload. */
static void assert_pieces_equal(const struct gn_exec_result *r,
				const uint8_t *want, uint64_t len)
{
	uint64_t at = 0;

	for (int i = 0; i < r->iovcnt; i++) {
		assert_true(at + r->iov[i].iov_len <= len);
		assert_memory_equal(r->iov[i].iov_base, want + at,
				    r->iov[i].iov_len);
		at += r->iov[i].iov_len;
	}
	assert_int_equal(at, len);
	assert_int_equal(r->payload_len, len);
}

/* Whether p points into r's copied payload, `copied` bytes. */
static int in_payload(const struct gn_exec_result *r, const void *p,
		      uint64_t copied)
{
	const uint8_t *b = p;

	return b >= r->payload && b < r->payload + copied;
}

/*
 * gn_exec_run_lend: large computed outputs go out from the blocks they
 * were computed in, everything else (small ones, an input passed through,
 * the second naming of one output) is copied, the pieces laid end to end
 * are exactly gn_exec_run's payload, and freeing the result gives every
 * lent block back to the pool.
 */
static void test_lend_outputs(void **state)
{
	enum { BIG = 128 * 128, SMALL = 16, COPIED = (SMALL + 2 * BIG) * 4 };
	static float xbuf[BIG], sbuf[SMALL];
	struct gn_exec_input in[2];
	struct gn_exec_result rc, rl;
	struct gn_pool_stats st;
	struct gn_backend cpu;
	struct gn_pool *pool;
	struct gn_plan *plan;
	struct pb p = {0};
	uint32_t out[6];

	(void)state;
	for (size_t i = 0; i < BIG; i++)
		xbuf[i] = (float)((int)(i % 11) - 5);
	for (size_t i = 0; i < SMALL; i++)
		sbuf[i] = (float)i - 8;
	uint32_t x = add(&p, GENIE__OP_TYPE__OP_INPUT, 1, 128, 128, 1, 0, 0, 0,
			 NULL, 0);
	uint32_t sm = add(&p, GENIE__OP_TYPE__OP_INPUT, 1, 1, 16, 1, 0, 0, 0,
			  NULL, 0);
	uint32_t r1 = add(&p, GENIE__OP_TYPE__OP_RELU, 1, 128, 128, 1, x, 0, 1,
			  NULL, 0);
	uint32_t r2 = add(&p, GENIE__OP_TYPE__OP_ADD, 1, 128, 128, 1, x, x, 2,
			  NULL, 0);
	uint32_t r3 = add(&p, GENIE__OP_TYPE__OP_RELU, 1, 1, 16, 1, sm, 0, 1,
			  NULL, 0);
	/* Outputs: big, small, an input, the first again, another big. */
	out[0] = r1;
	out[1] = r3;
	out[2] = x;
	out[3] = r1;
	out[4] = r2;
	plan = make_plan(&p, out, 5);
	in[0] = (struct gn_exec_input){
		.handle = p.handles[x], .data = xbuf, .len = sizeof(xbuf)};
	in[1] = (struct gn_exec_input){
		.handle = p.handles[sm], .data = sbuf, .len = sizeof(sbuf)};
	assert_int_equal(gn_backend_open("cpu", &cpu), 0);
	pool = gn_pool_create(&cpu, NULL);
	assert_int_equal(gn_exec_run(&cpu, pool, plan, in, 2, &rc), 0);
	assert_int_equal(rc.iovcnt, 1);
	assert_int_equal(rc.nlent, 0);
	assert_ptr_equal(rc.iov[0].iov_base, rc.payload);

	assert_int_equal(gn_exec_run_lend(&cpu, pool, plan, in, 2,
					  GN_EXEC_LEND_HOST, &rl),
			 0);
	assert_pieces_equal(&rl, rc.payload, rc.payload_len);
	/*
	 * r1 lent; r3 (64 B), x (an input, not the run's) and r1's second
	 * naming copied as one run; r2 lent: three pieces, two lent.
	 */
	assert_int_equal(rl.nlent, 2);
	assert_int_equal(rl.iovcnt, 3);
	assert_false(in_payload(&rl, rl.iov[0].iov_base, COPIED));
	assert_ptr_equal(rl.iov[1].iov_base, rl.payload);
	assert_int_equal(rl.iov[1].iov_len, COPIED);
	assert_false(in_payload(&rl, rl.iov[2].iov_base, COPIED));
	assert_ptr_equal(rl.lent[0], rl.iov[0].iov_base);
	assert_ptr_equal(rl.lent[1], rl.iov[2].iov_base);
	gn_pool_get_stats(pool, &st);
	assert_int_equal(st.in_use_bytes, 2 * sizeof(xbuf));
	gn_exec_result_fini(&rl);
	gn_pool_get_stats(pool, &st);
	assert_int_equal(st.in_use_bytes, 0);

	/* Without a pool the lent blocks go back to the backend. */
	assert_int_equal(gn_exec_run_lend(&cpu, NULL, plan, in, 2,
					  GN_EXEC_LEND_HOST, &rl),
			 0);
	assert_int_equal(rl.nlent, 2);
	assert_pieces_equal(&rl, rc.payload, rc.payload_len);
	gn_exec_result_fini(&rl);
	gn_exec_result_fini(&rc);
	gn_plan_free(&plan);
	gn_pool_destroy(&pool);
	gn_backend_close(&cpu);
}

/* More large outputs than pieces: the rest are copied, as one run. */
static void test_lend_caps_pieces(void **state)
{
	enum { BIG = 128 * 128, NOUT = 40 };
	static float xbuf[BIG];
	struct gn_exec_input in[1];
	struct gn_exec_result rc, rl;
	struct gn_backend cpu;
	struct gn_pool *pool;
	struct gn_plan *plan;
	struct pb p = {0};
	uint32_t out[NOUT];

	(void)state;
	for (size_t i = 0; i < BIG; i++)
		xbuf[i] = (float)((int)(i % 13) - 6);
	uint32_t x = add(&p, GENIE__OP_TYPE__OP_INPUT, 1, 128, 128, 1, 0, 0, 0,
			 NULL, 0);
	uint32_t prev = x;
	for (int k = 0; k < NOUT; k++) {
		/* x + prev: every output differs from the others. */
		prev = add(&p, GENIE__OP_TYPE__OP_ADD, 1, 128, 128, 1, x, prev,
			   2, NULL, 0);
		out[k] = prev;
	}
	plan = make_plan(&p, out, NOUT);
	in[0] = (struct gn_exec_input){
		.handle = p.handles[x], .data = xbuf, .len = sizeof(xbuf)};
	assert_int_equal(gn_backend_open("cpu", &cpu), 0);
	pool = gn_pool_create(&cpu, NULL);
	assert_int_equal(gn_exec_run(&cpu, pool, plan, in, 1, &rc), 0);
	assert_int_equal(gn_exec_run_lend(&cpu, pool, plan, in, 1,
					  GN_EXEC_LEND_HOST, &rl),
			 0);
	assert_pieces_equal(&rl, rc.payload, rc.payload_len);
	assert_int_equal(rl.iovcnt, GN_EXEC_MAX_PIECES);
	assert_int_equal(rl.nlent, GN_EXEC_MAX_PIECES - 1);
	assert_int_equal(rl.iov[GN_EXEC_MAX_PIECES - 1].iov_len,
			 (uint64_t)(NOUT - (GN_EXEC_MAX_PIECES - 1)) * BIG * 4);
	gn_exec_result_fini(&rl);
	gn_exec_result_fini(&rc);
	gn_plan_free(&plan);
	gn_pool_destroy(&pool);
	gn_backend_close(&cpu);
}

/*
 * A device backend's outputs are lent only to a caller that can send
 * device memory (GN_EXEC_LEND_DEVICE) and only where the driver calls
 * them CUDA memory; lent ones go back through the backend's free.
 */
static void test_lend_device_outputs(void **state)
{
	enum { N = 128 * 128 };
	static float xbuf[N];
	static const struct gn_gpu_driver drv = {.kind_of = fake_kind_of};
	struct gn_exec_input in[1];
	struct gn_exec_result rc, rl;
	struct gn_backend dev;
	struct gn_plan *plan;
	struct pb p = {0};
	uint32_t x, sum;
	int frees;

	(void)state;
	for (size_t i = 0; i < N; i++)
		xbuf[i] = (float)((int)(i % 9) - 4);
	x = add(&p, GENIE__OP_TYPE__OP_INPUT, 1, 128, 128, 1, 0, 0, 0, NULL, 0);
	sum = add(&p, GENIE__OP_TYPE__OP_ADD, 1, 128, 128, 1, x, x, 2, NULL, 0);
	plan = make_plan(&p, &sum, 1);
	in[0] = (struct gn_exec_input){
		.handle = p.handles[x], .data = xbuf, .len = sizeof(xbuf)};
	assert_int_equal(gn_backend_open("fakedev", &dev), 0);
	gn_gpu_mem_set_driver(&drv);
	assert_int_equal(gn_exec_run(&dev, NULL, plan, in, 1, &rc), 0);
	/* A transport that takes host memory only: downloaded. */
	assert_int_equal(gn_exec_run_lend(&dev, NULL, plan, in, 1,
					  GN_EXEC_LEND_HOST, &rl),
			 0);
	assert_int_equal(rl.nlent, 0);
	assert_ptr_equal(rl.iov[0].iov_base, rl.payload);
	gn_exec_result_fini(&rl);
	/* One that takes device memory: lent, and freed by the backend. */
	assert_int_equal(
		gn_exec_run_lend(&dev, NULL, plan, in, 1,
				 GN_EXEC_LEND_HOST | GN_EXEC_LEND_DEVICE, &rl),
		0);
	assert_int_equal(rl.nlent, 1);
	assert_int_equal(rl.iovcnt, 1);
	assert_int_equal(fake_kind_of(rl.iov[0].iov_base), GN_MEM_CUDA);
	assert_pieces_equal(&rl, rc.payload, rc.payload_len);
	frees = fake_frees;
	gn_exec_result_fini(&rl);
	assert_int_equal(fake_frees, frees + 1);
	/* Memory the driver does not call CUDA memory is not lent. */
	gn_gpu_mem_set_driver(NULL);
	assert_int_equal(
		gn_exec_run_lend(&dev, NULL, plan, in, 1,
				 GN_EXEC_LEND_HOST | GN_EXEC_LEND_DEVICE, &rl),
		0);
	assert_int_equal(rl.nlent, 0);
	assert_pieces_equal(&rl, rc.payload, rc.payload_len);
	gn_exec_result_fini(&rl);
	gn_exec_result_fini(&rc);
	gn_plan_free(&plan);
	gn_backend_close(&dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resnet_chain_reuses_buffers),
		cmocka_unit_test(test_device_falls_back_to_host),
		cmocka_unit_test(test_lend_outputs),
		cmocka_unit_test(test_lend_caps_pieces),
		cmocka_unit_test(test_lend_device_outputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
