/*
 * Element access for every dtype, half-precision conversions, and the
 * stride helpers the kernels share.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "cpu_internal.h"
#include "gn_error.h"

float gn_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f,
		 man = h & 0x3ff, bits;
	float f;

	if (exp == 0) {
		/* Zero or subnormal: value is man * 2^-24. */
		f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t gn_f32_to_f16(float f)
{
	uint32_t x, sign, man;
	int32_t exp;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
	man = x & 0x7fffff;
	if (((x >> 23) & 0xff) == 0xff) /* inf or nan */
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
	if (exp >= 31)
		return (uint16_t)(sign | 0x7c00);
	if (exp <= 0) {
		/* Subnormal half (or zero): shift in the implicit bit. */
		if (exp < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		uint32_t shift = (uint32_t)(14 - exp);
		uint32_t half = man >> shift, rem = man & ((1u << shift) - 1);
		uint32_t mid = 1u << (shift - 1);

		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
	uint32_t rem = man & 0x1fff;

	/* Round to nearest even; a carry may roll into the exponent. */
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;
	return (uint16_t)h;
}

float gn_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;

	memcpy(&f, &bits, 4);
	return f;
}

uint16_t gn_f32_to_bf16(float f)
{
	uint32_t x;

	memcpy(&x, &f, 4);
	if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffff))
		return (uint16_t)((x >> 16) | 0x40); /* keep nan a nan */
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

double gn_cpu_load(enum gn_dtype dt, const void *p, uint64_t i)
{
	switch (dt) {
	case GN_DTYPE_F32: return ((const float *)p)[i];
	case GN_DTYPE_F16: return gn_f16_to_f32(((const uint16_t *)p)[i]);
	case GN_DTYPE_BF16: return gn_bf16_to_f32(((const uint16_t *)p)[i]);
	case GN_DTYPE_I64: return (double)((const int64_t *)p)[i];
	case GN_DTYPE_I32: return ((const int32_t *)p)[i];
	case GN_DTYPE_I8: return ((const int8_t *)p)[i];
	case GN_DTYPE_U8: return ((const uint8_t *)p)[i];
	case GN_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
	default: return 0;
	}
}

/* Integers saturate instead of invoking undefined conversions. */
static int64_t to_int(double v, double lo, double hi)
{
	if (v != v)
		return 0;
	if (v < lo)
		return (int64_t)lo;
	if (v > hi)
		return (int64_t)hi;
	return (int64_t)v;
}

void gn_cpu_store(enum gn_dtype dt, void *p, uint64_t i, double v)
{
	switch (dt) {
	case GN_DTYPE_F32: ((float *)p)[i] = (float)v; break;
	case GN_DTYPE_F16: ((uint16_t *)p)[i] = gn_f32_to_f16((float)v); break;
	case GN_DTYPE_BF16:
		((uint16_t *)p)[i] = gn_f32_to_bf16((float)v);
		break;
	case GN_DTYPE_I64:
		((int64_t *)p)[i] = to_int(v, -9.2233720368547758e18,
					   9.2233720368547748e18);
		break;
	case GN_DTYPE_I32:
		((int32_t *)p)[i] = (int32_t)to_int(v, INT32_MIN, INT32_MAX);
		break;
	case GN_DTYPE_I8:
		((int8_t *)p)[i] = (int8_t)to_int(v, INT8_MIN, INT8_MAX);
		break;
	case GN_DTYPE_U8:
		((uint8_t *)p)[i] = (uint8_t)to_int(v, 0, UINT8_MAX);
		break;
	case GN_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; break;
	default: break;
	}
}

void gn_cpu_bstrides(const struct gn_tensor_meta *m, int nd, int64_t *st)
{
	int64_t s = 1;

	for (int i = nd - 1; i >= 0; i--) {
		int im = m->ndim - nd + i;

		if (im < 0 || m->shape[im] == 1) {
			st[i] = 0;
		} else {
			st[i] = s;
			s *= m->shape[im];
		}
	}
}

void gn_cpu_strides(const struct gn_tensor_meta *m, int64_t *st)
{
	int64_t s = 1;

	for (int i = m->ndim - 1; i >= 0; i--) {
		st[i] = s;
		s *= m->shape[i];
	}
}

int gn_cpu_unsupported(const struct cpu_call *c, enum gn_dtype dt)
{
	return gn_error_set(-EOPNOTSUPP, "cpu: %s on %s not supported",
			    gn_op_name(c->op), gn_dtype_name(dt));
}
