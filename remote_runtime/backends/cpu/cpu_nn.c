/*
 * Neural-network kernels in f32: convolution, pooling, batch and layer
 * norm, softmax and scaled dot-product attention. Direct loops: this is
 * the reference the faster backends are checked against.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "gn_error.h"

static int conv2d(const struct cpu_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0], *wm = c->im[1];
	const int64_t *a = c->a->i;
	int64_t N = xm->shape[0], C = xm->shape[1], H = xm->shape[2],
		W = xm->shape[3];
	int64_t O = wm->shape[0], Cg = wm->shape[1], KH = wm->shape[2],
		KW = wm->shape[3];
	int64_t Ho = c->om->shape[2], Wo = c->om->shape[3], G = a[8];
	int64_t Og = O / G;
	const float *x = c->in[0], *w = c->in[1];
	const float *b = c->nin == 3 ? c->in[2] : NULL;
	float *y = c->out;

	for (int64_t n = 0; n < N; n++)
		for (int64_t o = 0; o < O; o++) {
			int64_t g = o / Og;
			float *yo = y + ((n * O + o) * Ho) * Wo;

			for (int64_t i = 0; i < Ho * Wo; i++)
				yo[i] = b ? b[o] : 0.0f;
			for (int64_t ci = 0; ci < Cg; ci++) {
				const float *xc =
					x + ((n * C + g * Cg + ci) * H) * W;

				for (int64_t ky = 0; ky < KH; ky++)
					for (int64_t kx = 0; kx < KW; kx++) {
						float wv =
							w[((o * Cg + ci) * KH +
							   ky) * KW +
							  kx];

						for (int64_t oy = 0; oy < Ho;
						     oy++) {
							int64_t iy = oy * a[0] -
								     a[2] +
								     ky * a[6];

							if (iy < 0 || iy >= H)
								continue;
							for (int64_t ox = 0;
							     ox < Wo; ox++) {
								int64_t ix =
									ox * a[1] -
									a[3] +
									kx * a[7];

								if (ix >= 0 &&
								    ix < W)
									yo[oy * Wo +
									   ox] +=
										wv *
										xc[iy * W +
										   ix];
							}
						}
					}
			}
		}
	(void)C;
	return 0;
}

static int pool2d(const struct cpu_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	const int64_t *a = c->a->i;
	int64_t NC = xm->shape[0] * xm->shape[1], H = xm->shape[2],
		W = xm->shape[3];
	int64_t Ho = c->om->shape[2], Wo = c->om->shape[3];
	int is_max = c->op == GN_OP_MAXPOOL2D;
	int incl = !is_max && a[9];
	const float *x = c->in[0];
	float *y = c->out;

	for (int64_t p = 0; p < NC; p++)
		for (int64_t oy = 0; oy < Ho; oy++)
			for (int64_t ox = 0; ox < Wo; ox++) {
				int64_t hs = oy * a[2] - a[4],
					ws = ox * a[3] - a[5];
				int64_t he = hs + a[0], we = ws + a[1];
				/* PyTorch counts padding, not the ceil
				 * overhang. */
				int64_t hp = he < H + a[6] ? he : H + a[6];
				int64_t wp = we < W + a[7] ? we : W + a[7];
				int64_t area = (hp - hs) * (wp - ws);
				double acc = is_max ? -INFINITY : 0;
				int64_t cnt = 0;

				hs = hs < 0 ? 0 : hs;
				ws = ws < 0 ? 0 : ws;
				he = he > H ? H : he;
				we = we > W ? W : we;
				for (int64_t iy = hs; iy < he; iy++)
					for (int64_t ix = ws; ix < we; ix++) {
						float v = x[(p * H + iy) * W +
							    ix];

						if (is_max)
							acc = v > acc || v != v
								      ? v
								      : acc;
						else
							acc += v;
						cnt++;
					}
				if (!is_max)
					acc /= (double)(incl ? area : cnt);
				y[(p * Ho + oy) * Wo + ox] = (float)acc;
			}
	return 0;
}

static int global_avgpool(const struct cpu_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	int64_t NC = xm->shape[0] * xm->shape[1],
		HW = xm->shape[2] * xm->shape[3];
	const float *x = c->in[0];
	float *y = c->out;

	for (int64_t p = 0; p < NC; p++) {
		double s = 0;

		for (int64_t i = 0; i < HW; i++)
			s += x[p * HW + i];
		y[p] = HW ? (float)(s / (double)HW) : NAN;
	}
	return 0;
}

static int batchnorm(const struct cpu_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	int64_t N = xm->shape[0], C = xm->shape[1], inner = 1;
	const float *x = c->in[0], *mean = c->in[1], *var = c->in[2],
		    *gm = c->in[3], *bt = c->in[4];
	float *y = c->out;

	for (int d = 2; d < xm->ndim; d++)
		inner *= xm->shape[d];
	for (int64_t ch = 0; ch < C; ch++) {
		double s = gm[ch] / sqrt((double)var[ch] + c->a->f[0]);
		double sh = bt[ch] - mean[ch] * s;

		for (int64_t n = 0; n < N; n++) {
			const float *xs = x + (n * C + ch) * inner;
			float *ys = y + (n * C + ch) * inner;

			for (int64_t i = 0; i < inner; i++)
				ys[i] = (float)(xs[i] * s + sh);
		}
	}
	return 0;
}

static int layernorm(const struct cpu_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	int64_t k = c->a->i[0], inner = 1;
	uint64_t rows;
	const float *x = c->in[0], *gm = c->in[1], *bt = c->in[2];
	float *y = c->out;

	for (int d = xm->ndim - (int)k; d < xm->ndim; d++)
		inner *= xm->shape[d];
	rows = inner ? gn_meta_numel(xm) / (uint64_t)inner : 0;
	for (uint64_t r = 0; r < rows; r++) {
		const float *xr = x + r * (uint64_t)inner;
		float *yr = y + r * (uint64_t)inner;
		double mean = 0, var = 0, inv;

		for (int64_t i = 0; i < inner; i++)
			mean += xr[i];
		mean /= (double)inner;
		for (int64_t i = 0; i < inner; i++)
			var += (xr[i] - mean) * (xr[i] - mean);
		var /= (double)inner;
		inv = 1.0 / sqrt(var + c->a->f[0]);
		for (int64_t i = 0; i < inner; i++)
			yr[i] = (float)((xr[i] - mean) * inv * gm[i] + bt[i]);
	}
	return 0;
}

static int softmax(const struct cpu_call *c)
{
	const struct gn_tensor_meta *xm = c->im[0];
	int64_t ax = c->a->i[0], outer = 1, len = xm->shape[ax], inner = 1;
	const float *x = c->in[0];
	float *y = c->out;
	int logf_ = c->op == GN_OP_LOG_SOFTMAX;

	for (int d = 0; d < ax; d++)
		outer *= xm->shape[d];
	for (int d = (int)ax + 1; d < xm->ndim; d++)
		inner *= xm->shape[d];
	for (int64_t o = 0; o < outer; o++)
		for (int64_t in = 0; in < inner; in++) {
			const float *xs = x + o * len * inner + in;
			float *ys = y + o * len * inner + in;
			double mx = -INFINITY, sum = 0;

			for (int64_t i = 0; i < len; i++)
				mx = xs[i * inner] > mx ? xs[i * inner] : mx;
			for (int64_t i = 0; i < len; i++)
				sum += exp(xs[i * inner] - mx);
			for (int64_t i = 0; i < len; i++)
				ys[i * inner] =
					(float)(logf_ ? xs[i * inner] - mx -
								log(sum)
						      : exp(xs[i * inner] -
							    mx) /
								sum);
		}
	return 0;
}

static int sdpa(const struct cpu_call *c)
{
	const struct gn_tensor_meta *qm = c->im[0], *km = c->im[1],
				    *vm = c->im[2];
	const struct gn_tensor_meta *mm = c->nin == 4 ? c->im[3] : NULL;
	int64_t L = qm->shape[qm->ndim - 2], E = qm->shape[qm->ndim - 1];
	int64_t S = km->shape[km->ndim - 2], Ev = vm->shape[vm->ndim - 1];
	struct gn_tensor_meta ob = *c->om, qb = *qm, kb = *km, vb = *vm, sm;
	int64_t sq[GN_MAX_DIMS], sk[GN_MAX_DIMS], sv[GN_MAX_DIMS],
		smask[GN_MAX_DIMS], idx[GN_MAX_DIMS] = {0};
	double scale = c->a->f[0] > 0 ? c->a->f[0] : 1.0 / sqrt((double)E);
	double *p = malloc(sizeof(double) * (size_t)(S ? S : 1));
	uint64_t batches;
	int64_t oq = 0, ok = 0, ov = 0, om_ = 0;

	if (p == NULL)
		return gn_error_set(-ENOMEM, "cpu: sdpa: out of memory");
	ob.ndim -= 2;
	qb.ndim -= 2;
	kb.ndim -= 2;
	vb.ndim -= 2;
	gn_cpu_bstrides(&qb, ob.ndim, sq);
	gn_cpu_bstrides(&kb, ob.ndim, sk);
	gn_cpu_bstrides(&vb, ob.ndim, sv);
	/* The mask broadcasts against the scores [batch..., L, S]. */
	sm = ob;
	sm.shape[sm.ndim++] = L;
	sm.shape[sm.ndim++] = S;
	if (mm)
		gn_cpu_bstrides(mm, sm.ndim, smask);
	batches = gn_meta_numel(&ob);
	for (uint64_t t = 0; t < batches; t++) {
		const float *q = (const float *)c->in[0] + oq * L * E;
		const float *k = (const float *)c->in[1] + ok * S * E;
		const float *v = (const float *)c->in[2] + ov * S * Ev;
		float *o = (float *)c->out + (int64_t)t * L * Ev;

		for (int64_t i = 0; i < L; i++) {
			double mx = -INFINITY, sum = 0;

			for (int64_t j = 0; j < S; j++) {
				double s = 0;

				for (int64_t e = 0; e < E; e++)
					s += (double)q[i * E + e] *
					     k[j * E + e];
				s *= scale;
				if (c->a->i[0] && j > i)
					s = -INFINITY;
				if (mm) {
					int64_t mo = om_ +
						     i * smask[sm.ndim - 2] +
						     j * smask[sm.ndim - 1];

					if (mm->dtype == GN_DTYPE_BOOL)
						s = ((const uint8_t *)
							     c->in[3])[mo]
							    ? s
							    : -INFINITY;
					else
						s += ((const float *)
							      c->in[3])[mo];
				}
				p[j] = s;
				mx = s > mx ? s : mx;
			}
			for (int64_t j = 0; j < S; j++) {
				p[j] = exp(p[j] - mx);
				sum += p[j];
			}
			for (int64_t e = 0; e < Ev; e++) {
				double acc = 0;

				for (int64_t j = 0; j < S; j++)
					acc += p[j] * v[j * Ev + e];
				o[i * Ev + e] = (float)(acc / sum);
			}
		}
		for (int d = ob.ndim - 1; d >= 0; d--) {
			oq += sq[d];
			ok += sk[d];
			ov += sv[d];
			if (mm)
				om_ += smask[d];
			if (++idx[d] < ob.shape[d])
				break;
			oq -= sq[d] * ob.shape[d];
			ok -= sk[d] * ob.shape[d];
			ov -= sv[d] * ob.shape[d];
			if (mm)
				om_ -= smask[d] * ob.shape[d];
			idx[d] = 0;
		}
	}
	free(p);
	return 0;
}

int gn_cpu_nn(const struct cpu_call *c)
{
	if (c->om->dtype != GN_DTYPE_F32 || c->im[0]->dtype != GN_DTYPE_F32)
		return gn_cpu_unsupported(c, c->im[0]->dtype);
	switch (c->op) {
	case GN_OP_CONV2D: return conv2d(c);
	case GN_OP_MAXPOOL2D:
	case GN_OP_AVGPOOL2D: return pool2d(c);
	case GN_OP_GLOBAL_AVGPOOL: return global_avgpool(c);
	case GN_OP_BATCHNORM: return batchnorm(c);
	case GN_OP_LAYERNORM: return layernorm(c);
	case GN_OP_SOFTMAX:
	case GN_OP_LOG_SOFTMAX: return softmax(c);
	case GN_OP_SDPA: return sdpa(c);
	default: return gn_cpu_unsupported(c, c->om->dtype);
	}
}
