/*
 * NumPy .npy reading and writing for genie-run (see npy.h for the format).
 *
 * The reader parses the header dict as the small Python literal numpy
 * writes rather than searching it for substrings, so keys may come in any
 * order with any spacing and an optional trailing comma, and anything that
 * is not exactly a dict of the three keys is refused with what was seen.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gn_error.h"
#include "npy.h"

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* The numpy type codes Genie maps, and the byte size each implies. */
static const struct npy_type {
	const char *code;
	enum gn_dtype dtype;
	size_t size;
} npy_types[] = {
	{"f4", GN_DTYPE_F32, 4},  {"f2", GN_DTYPE_F16, 2},
	{"i8", GN_DTYPE_I64, 8},  {"i4", GN_DTYPE_I32, 4},
	{"i1", GN_DTYPE_I8, 1},	  {"u1", GN_DTYPE_U8, 1},
	{"b1", GN_DTYPE_BOOL, 1},
};

#define NPY_ACCEPTED "'<f4' '<f2' '<i8' '<i4' '|i1' '|u1' '|b1'"

const char *gn_npy_descr(enum gn_dtype dtype)
{
	switch (dtype) {
	case GN_DTYPE_F32: return "<f4";
	case GN_DTYPE_F16: return "<f2";
	case GN_DTYPE_I64: return "<i8";
	case GN_DTYPE_I32: return "<i4";
	case GN_DTYPE_I8: return "|i1";
	case GN_DTYPE_U8: return "|u1";
	case GN_DTYPE_BOOL: return "|b1";
	default: return NULL;
	}
}

/* "f32[2,3]" into buf; "f32[]" for 0-d. */
static const char *fmt_shape(char *buf, size_t len, enum gn_dtype dtype,
			     int ndim, const int64_t *shape)
{
	size_t off;

	off = (size_t)snprintf(buf, len, "%s[", gn_dtype_name(dtype));
	for (int i = 0; i < ndim && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%lld",
					i ? "," : "", (long long)shape[i]);
	if (off < len)
		snprintf(buf + off, len - off, "]");
	return buf;
}

/*
 * Up to 24 bytes at p as printable text for an error message: what the
 * parser saw where it stopped. Non-printable bytes become \xNN.
 */
static const char *fmt_seen(char *buf, size_t len, const char *p,
			    const char *end)
{
	size_t off = 0;
	int n = 0;

	if (p >= end)
		return "the end of the header";
	buf[off++] = '"';
	for (; p < end && n < 24 && off + 6 < len; p++, n++) {
		unsigned char c = (unsigned char)*p;

		if (c >= 0x20 && c < 0x7f && c != '"')
			buf[off++] = (char)c;
		else
			off += (size_t)snprintf(buf + off, len - off, "\\x%02x",
						c);
	}
	if (p < end && off + 4 < len) {
		memcpy(buf + off, "...", 3);
		off += 3;
	}
	buf[off++] = '"';
	buf[off] = '\0';
	return buf;
}

/* The header dict parser: a cursor over the header text. */
struct hdr_parser {
	const char *p;
	const char *end;
	const char *name; /* the file, for messages */
};

static void skip_ws(struct hdr_parser *hp)
{
	while (hp->p < hp->end && (*hp->p == ' ' || *hp->p == '\t' ||
				   *hp->p == '\n' || *hp->p == '\r'))
		hp->p++;
}

static int hdr_fail(struct hdr_parser *hp, const char *expected)
{
	char seen[128];

	return gn_error_set(
		-EBADMSG, "%s: bad .npy header: expected %s, saw %s", hp->name,
		expected, fmt_seen(seen, sizeof(seen), hp->p, hp->end));
}

static int expect_char(struct hdr_parser *hp, char c, const char *what)
{
	skip_ws(hp);
	if (hp->p >= hp->end || *hp->p != c)
		return hdr_fail(hp, what);
	hp->p++;
	return 0;
}

/* A '...' or "..." literal without escapes, into buf (NUL-terminated). */
static int parse_string(struct hdr_parser *hp, char *buf, size_t len,
			const char *what)
{
	const char *start;
	char quote;

	skip_ws(hp);
	if (hp->p >= hp->end || (*hp->p != '\'' && *hp->p != '"'))
		return hdr_fail(hp, what);
	quote = *hp->p;
	start = hp->p + 1;
	for (const char *q = start; q < hp->end; q++) {
		if (*q == '\\' || *q == '\n' || *q == '\0')
			break;
		if (*q == quote) {
			size_t n = (size_t)(q - start);

			if (n >= len)
				break;
			memcpy(buf, start, n);
			buf[n] = '\0';
			hp->p = q + 1;
			return 0;
		}
	}
	return hdr_fail(hp, what);
}

static bool take_word(struct hdr_parser *hp, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(hp->end - hp->p) < n || memcmp(hp->p, word, n) != 0)
		return false;
	/* "Trueish" is not True. */
	if ((size_t)(hp->end - hp->p) > n &&
	    (hp->p[n] == '_' || (hp->p[n] >= 'a' && hp->p[n] <= 'z') ||
	     (hp->p[n] >= 'A' && hp->p[n] <= 'Z') ||
	     (hp->p[n] >= '0' && hp->p[n] <= '9')))
		return false;
	hp->p += n;
	return true;
}

static int parse_bool(struct hdr_parser *hp, bool *out)
{
	skip_ws(hp);
	if (take_word(hp, "True"))
		*out = true;
	else if (take_word(hp, "False"))
		*out = false;
	else
		return hdr_fail(hp, "True or False for 'fortran_order'");
	return 0;
}

static int parse_dim(struct hdr_parser *hp, int64_t *out)
{
	int64_t v = 0;

	skip_ws(hp);
	if (hp->p >= hp->end || *hp->p < '0' || *hp->p > '9')
		return hdr_fail(hp, "a non-negative integer dimension in "
				    "'shape'");
	while (hp->p < hp->end && *hp->p >= '0' && *hp->p <= '9') {
		if (v > (INT64_MAX - (*hp->p - '0')) / 10)
			return gn_error_set(-EBADMSG,
					    "%s: bad .npy header: a dimension "
					    "in 'shape' exceeds 2^63-1",
					    hp->name);
		v = v * 10 + (*hp->p - '0');
		hp->p++;
	}
	/* Python 2 era files wrote longs as 3L; numpy still reads them. */
	if (hp->p < hp->end && *hp->p == 'L')
		hp->p++;
	*out = v;
	return 0;
}

static int parse_shape(struct hdr_parser *hp, int *ndim, int64_t *shape)
{
	int n = 0, rc;
	bool comma = false;

	rc = expect_char(hp, '(', "a tuple '(...)' for 'shape'");
	if (rc)
		return rc;
	skip_ws(hp);
	while (hp->p < hp->end && *hp->p != ')') {
		int64_t d = 0;

		rc = parse_dim(hp, &d);
		if (rc)
			return rc;
		if (n == GN_MAX_DIMS)
			return gn_error_set(-EOPNOTSUPP,
					    "%s: 'shape' has more than %d "
					    "dims; Genie tensors have at most "
					    "%d",
					    hp->name, GN_MAX_DIMS, GN_MAX_DIMS);
		shape[n++] = d;
		skip_ws(hp);
		comma = false;
		if (hp->p < hp->end && *hp->p == ',') {
			hp->p++;
			comma = true;
			skip_ws(hp);
		} else if (hp->p >= hp->end || *hp->p != ')') {
			return hdr_fail(hp, "',' or ')' in 'shape'");
		}
	}
	if (hp->p >= hp->end)
		return hdr_fail(hp, "')' closing 'shape'");
	/* (5) is the integer 5 in Python; a 1-d shape is written (5,). */
	if (n == 1 && !comma)
		return gn_error_set(-EBADMSG,
				    "%s: bad .npy header: 'shape' (%lld) is "
				    "not a tuple; expected (%lld,)",
				    hp->name, (long long)shape[0],
				    (long long)shape[0]);
	hp->p++;
	*ndim = n;
	return 0;
}

/* Map a descr string to a Genie dtype, refusing what Genie cannot take. */
static int map_descr(const char *name, const char *descr, enum gn_dtype *out)
{
	char order = '\0';
	const char *code = descr;

	if (*code == '<' || *code == '>' || *code == '|' || *code == '=')
		order = *code++;
	for (size_t i = 0; i < sizeof(npy_types) / sizeof(npy_types[0]); i++) {
		const struct npy_type *t = &npy_types[i];

		if (strcmp(code, t->code) != 0)
			continue;
		if (t->size > 1 && order == '>')
			return gn_error_set(-EOPNOTSUPP,
					    "%s: big-endian dtype '%s' is not "
					    "supported; expected little-endian "
					    "'<%s' (numpy: a.astype('<%s'))",
					    name, descr, t->code, t->code);
		if (t->size > 1 && order != '<')
			return gn_error_set(-EOPNOTSUPP,
					    "%s: dtype '%s' has no byte order "
					    "Genie can take; expected '<%s'",
					    name, descr, t->code);
		*out = t->dtype;
		return 0;
	}
	if (strcmp(code, "f8") == 0)
		return gn_error_set(-EOPNOTSUPP,
				    "%s: dtype '%s' (float64) is not "
				    "supported; Genie takes " NPY_ACCEPTED
				    " (numpy: a.astype(np.float32))",
				    name, descr);
	return gn_error_set(-EOPNOTSUPP,
			    "%s: dtype '%s' is not supported; Genie "
			    "takes " NPY_ACCEPTED,
			    name, descr);
}

struct npy_header {
	enum gn_dtype dtype;
	bool fortran_order;
	int ndim;
	int64_t shape[GN_MAX_DIMS];
};

static int parse_dict(struct hdr_parser *hp, struct npy_header *h)
{
	bool have_descr = false, have_order = false, have_shape = false;
	char key[32], descr[32];
	int rc;

	rc = expect_char(hp, '{', "'{' opening the header dict");
	if (rc)
		return rc;
	for (;;) {
		skip_ws(hp);
		if (hp->p < hp->end && *hp->p == '}')
			break;
		rc = parse_string(hp, key, sizeof(key),
				  "a key 'descr', 'fortran_order' or 'shape'");
		if (rc)
			return rc;
		rc = expect_char(hp, ':', "':' after a key");
		if (rc)
			return rc;
		if (strcmp(key, "descr") == 0 && !have_descr) {
			skip_ws(hp);
			if (hp->p < hp->end && *hp->p == '[')
				return gn_error_set(-EOPNOTSUPP,
						    "%s: structured dtypes "
						    "are not supported; Genie "
						    "takes " NPY_ACCEPTED,
						    hp->name);
			rc = parse_string(hp, descr, sizeof(descr),
					  "a dtype string like '<f4' for "
					  "'descr'");
			have_descr = true;
		} else if (strcmp(key, "fortran_order") == 0 && !have_order) {
			rc = parse_bool(hp, &h->fortran_order);
			have_order = true;
		} else if (strcmp(key, "shape") == 0 && !have_shape) {
			rc = parse_shape(hp, &h->ndim, h->shape);
			have_shape = true;
		} else if (strcmp(key, "descr") == 0 ||
			   strcmp(key, "fortran_order") == 0 ||
			   strcmp(key, "shape") == 0) {
			return gn_error_set(-EBADMSG,
					    "%s: bad .npy header: key '%s' "
					    "appears twice",
					    hp->name, key);
		} else {
			return gn_error_set(-EBADMSG,
					    "%s: bad .npy header: unexpected "
					    "key '%s'; expected only 'descr', "
					    "'fortran_order' and 'shape'",
					    hp->name, key);
		}
		if (rc)
			return rc;
		skip_ws(hp);
		if (hp->p < hp->end && *hp->p == ',') {
			hp->p++;
			continue;
		}
		if (hp->p < hp->end && *hp->p == '}')
			break;
		return hdr_fail(hp, "',' or '}' after a value");
	}
	hp->p++; /* the '}' */
	skip_ws(hp);
	if (hp->p != hp->end)
		return hdr_fail(hp, "only padding after the header dict");
	if (!have_descr || !have_order || !have_shape)
		return gn_error_set(-EBADMSG,
				    "%s: bad .npy header: no '%s' key; "
				    "expected 'descr', 'fortran_order' and "
				    "'shape'",
				    hp->name,
				    !have_descr	  ? "descr"
				    : !have_order ? "fortran_order"
						  : "shape");
	return map_descr(hp->name, descr, &h->dtype);
}

/*
 * Check the preamble and header of the `len` bytes at `b` and work out
 * where the data starts and how long it is. Fills `out` but its data.
 */
static int parse_npy(const uint8_t *b, size_t len, const char *name,
		     struct gn_npy *out, size_t *data_off)
{
	struct npy_header h = {0};
	struct hdr_parser hp;
	size_t pre, hlen, numel = 1, nbytes, have;
	int rc, big_dims = 0;
	char seen[64], sh[160];

	if (len < sizeof(npy_magic) || memcmp(b, npy_magic, 6) != 0)
		return gn_error_set(
			-EBADMSG,
			"%s: not a .npy file: expected magic "
			"\"\\x93NUMPY\", saw %s",
			name,
			len ? fmt_seen(seen, sizeof(seen), (const char *)b,
				       (const char *)b + (len < 8 ? len : 8))
			    : "an empty file");
	if (len < 8)
		return gn_error_set(-EBADMSG,
				    "%s: truncated .npy preamble: %zu bytes, "
				    "expected at least 10",
				    name, len);
	if ((b[6] != 1 && b[6] != 2 && b[6] != 3) || b[7] != 0)
		return gn_error_set(-EOPNOTSUPP,
				    "%s: .npy format version %u.%u is not "
				    "supported; expected 1.0, 2.0 or 3.0",
				    name, b[6], b[7]);
	pre = b[6] == 1 ? 10 : 12;
	if (len < pre)
		return gn_error_set(-EBADMSG,
				    "%s: truncated .npy preamble: %zu bytes, "
				    "version %u.0 needs %zu",
				    name, len, b[6], pre);
	if (b[6] == 1)
		hlen = (size_t)b[8] | (size_t)b[9] << 8;
	else
		hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 |
		       (size_t)b[11] << 24;
	if (hlen > GN_NPY_MAX_HEADER)
		return gn_error_set(-EBADMSG,
				    "%s: .npy header length %zu bytes is "
				    "absurd; expected at most %u",
				    name, hlen, GN_NPY_MAX_HEADER);
	if (len - pre < hlen)
		return gn_error_set(-EBADMSG,
				    "%s: truncated .npy header: the preamble "
				    "says %zu bytes, the file has %zu after it",
				    name, hlen, len - pre);
	if (memchr(b + pre, '\0', hlen) != NULL)
		return gn_error_set(-EBADMSG,
				    "%s: bad .npy header: it contains a NUL "
				    "byte",
				    name);

	hp.p = (const char *)b + pre;
	hp.end = hp.p + hlen;
	hp.name = name;
	rc = parse_dict(&hp, &h);
	if (rc)
		return rc;

	for (int i = 0; i < h.ndim; i++) {
		if (h.shape[i] > 1)
			big_dims++;
		if (numel != 0 &&
		    __builtin_mul_overflow(numel, (size_t)h.shape[i], &numel))
			return gn_error_set(-EBADMSG,
					    "%s: shape %s has more elements "
					    "than memory can hold",
					    name,
					    fmt_shape(sh, sizeof(sh), h.dtype,
						      h.ndim, h.shape));
	}
	/* Order only matters when two dims have more than one element. */
	if (h.fortran_order && big_dims > 1 && numel != 0)
		return gn_error_set(
			-EOPNOTSUPP,
			"%s: Fortran-order array %s is not "
			"supported; expected C order (numpy: "
			"np.ascontiguousarray(a))",
			name,
			fmt_shape(sh, sizeof(sh), h.dtype, h.ndim, h.shape));
	if (__builtin_mul_overflow(numel, gn_dtype_size(h.dtype), &nbytes))
		return gn_error_set(
			-EBADMSG,
			"%s: shape %s has more bytes than memory "
			"can hold",
			name,
			fmt_shape(sh, sizeof(sh), h.dtype, h.ndim, h.shape));
	have = len - pre - hlen;
	if (have < nbytes)
		return gn_error_set(
			-EBADMSG,
			"%s: truncated .npy data: %s needs %zu "
			"bytes, the file has %zu",
			name,
			fmt_shape(sh, sizeof(sh), h.dtype, h.ndim, h.shape),
			nbytes, have);
	if (have > nbytes)
		return gn_error_set(
			-EBADMSG,
			"%s: .npy data does not match its shape: "
			"%s is %zu bytes, the file has %zu",
			name,
			fmt_shape(sh, sizeof(sh), h.dtype, h.ndim, h.shape),
			nbytes, have);

	out->dtype = h.dtype;
	out->ndim = h.ndim;
	memcpy(out->shape, h.shape, sizeof(h.shape));
	out->nbytes = nbytes;
	*data_off = pre + hlen;
	return 0;
}

int gn_npy_read_buffer(const void *buf, size_t len, const char *name,
		       struct gn_npy *out)
{
	size_t off;
	int rc;

	if (out == NULL)
		return gn_error_set(-EINVAL, "npy: NULL output");
	memset(out, 0, sizeof(*out));
	if (name == NULL)
		name = "<buffer>";
	if (buf == NULL && len != 0)
		return gn_error_set(-EINVAL, "%s: NULL buffer of %zu bytes",
				    name, len);
	rc = parse_npy(buf, len, name, out, &off);
	if (rc)
		goto fail;
	out->data = malloc(out->nbytes ? out->nbytes : 1);
	if (out->data == NULL) {
		rc = gn_error_set(-ENOMEM, "%s: cannot allocate %zu bytes",
				  name, out->nbytes);
		goto fail;
	}
	if (out->nbytes)
		memcpy(out->data, (const uint8_t *)buf + off, out->nbytes);
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return rc;
}

/* Read all of fd into a malloc'd buffer (a regular file or a pipe). */
static int read_all(int fd, const char *path, uint8_t **bufp, size_t *lenp)
{
	struct stat st;
	size_t cap, len = 0;
	uint8_t *buf;

	if (fstat(fd, &st) != 0)
		return gn_error_set(-errno, "%s: stat: %s", path,
				    strerror(errno));
	if (S_ISDIR(st.st_mode))
		return gn_error_set(-EISDIR,
				    "%s: is a directory, expected a "
				    ".npy file",
				    path);
	cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1
						    : 1 << 16;
	buf = malloc(cap);
	if (buf == NULL)
		return gn_error_set(-ENOMEM, "%s: cannot allocate %zu bytes",
				    path, cap);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			uint8_t *nb;

			if (cap > SIZE_MAX / 2) {
				free(buf);
				return gn_error_set(-EFBIG, "%s: too large",
						    path);
			}
			nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				return gn_error_set(-ENOMEM,
						    "%s: cannot allocate %zu "
						    "bytes",
						    path, cap * 2);
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			free(buf);
			return gn_error_set(-err, "%s: read: %s", path,
					    strerror(err));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

int gn_npy_read(const char *path, struct gn_npy *out)
{
	uint8_t *buf = NULL;
	size_t len = 0, off;
	void *shrunk;
	int fd, rc;

	if (out == NULL)
		return gn_error_set(-EINVAL, "npy: NULL output");
	memset(out, 0, sizeof(*out));
	if (path == NULL)
		return gn_error_set(-EINVAL, "npy: NULL path");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gn_error_set(-errno, "%s: cannot open: %s", path,
				    strerror(errno));
	rc = read_all(fd, path, &buf, &len);
	close(fd);
	if (rc)
		return rc;
	rc = parse_npy(buf, len, path, out, &off);
	if (rc) {
		free(buf);
		memset(out, 0, sizeof(*out));
		return rc;
	}
	/*
	 * Keep the file's buffer: slide the data to its start, where it is
	 * aligned for any element type, and give back the rest.
	 */
	memmove(buf, buf + off, out->nbytes);
	shrunk = realloc(buf, out->nbytes ? out->nbytes : 1);
	out->data = shrunk ? shrunk : buf;
	return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len) {
		ssize_t n = write(fd, p, len > (1u << 30) ? (1u << 30) : len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int gn_npy_write(const char *path, enum gn_dtype dtype, int ndim,
		 const int64_t *shape, const void *data)
{
	char hdr[512], *tmp = NULL;
	const char *descr = gn_npy_descr(dtype);
	size_t numel = 1, nbytes, hlen, pad;
	int off, fd, rc;

	if (path == NULL)
		return gn_error_set(-EINVAL, "npy: NULL path");
	if (descr == NULL && dtype == GN_DTYPE_BF16)
		return gn_error_set(-EOPNOTSUPP,
				    "%s: numpy has no bf16 dtype; convert to "
				    "f32 first",
				    path);
	if (descr == NULL)
		return gn_error_set(-EINVAL, "%s: unknown dtype %d", path,
				    (int)dtype);
	if (ndim < 0 || ndim > GN_MAX_DIMS || (ndim > 0 && shape == NULL))
		return gn_error_set(-EINVAL,
				    "%s: %d dims; expected 0 to %d with a "
				    "shape",
				    path, ndim, GN_MAX_DIMS);
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return gn_error_set(-EINVAL,
					    "%s: dim %d is %lld; expected "
					    "a size >= 0",
					    path, i, (long long)shape[i]);
		if (numel != 0 &&
		    __builtin_mul_overflow(numel, (size_t)shape[i], &numel))
			return gn_error_set(-EINVAL,
					    "%s: shape overflows size_t", path);
	}
	if (__builtin_mul_overflow(numel, gn_dtype_size(dtype), &nbytes))
		return gn_error_set(-EINVAL, "%s: shape overflows size_t",
				    path);
	if (data == NULL && nbytes != 0)
		return gn_error_set(-EINVAL, "%s: NULL data for %zu bytes",
				    path, nbytes);

	/* The dict exactly as numpy.save writes it, then its padding. */
	off = snprintf(hdr + 10, sizeof(hdr) - 10,
		       "{'descr': '%s', 'fortran_order': False, 'shape': (",
		       descr);
	for (int i = 0; i < ndim; i++)
		off += snprintf(hdr + 10 + off, sizeof(hdr) - 10 - (size_t)off,
				"%s%lld", i ? ", " : "", (long long)shape[i]);
	off += snprintf(hdr + 10 + off, sizeof(hdr) - 10 - (size_t)off,
			"%s), }", ndim == 1 ? "," : "");
	hlen = (size_t)off + 1; /* and the '\n' */
	pad = (64 - (10 + hlen) % 64) % 64;
	/* 8 dims of 19 digits and the padding take under 300 bytes. */
	memset(hdr + 10 + off, ' ', pad);
	hlen += pad;
	hdr[10 + hlen - 1] = '\n';
	memcpy(hdr, npy_magic, 6);
	hdr[6] = 1;
	hdr[7] = 0;
	hdr[8] = (char)(hlen & 0xff);
	hdr[9] = (char)(hlen >> 8);

	tmp = malloc(strlen(path) + 32);
	if (tmp == NULL)
		return gn_error_set(-ENOMEM, "%s: out of memory", path);
	sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = gn_error_set(-errno, "%s: cannot create: %s", tmp,
				  strerror(errno));
		goto out;
	}
	rc = write_all(fd, hdr, 10 + hlen);
	if (rc == 0)
		rc = write_all(fd, data, nbytes);
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc) {
		gn_error_set(rc, "%s: cannot write: %s", path, strerror(-rc));
		unlink(tmp);
	}
out:
	free(tmp);
	return rc;
}

void gn_npy_free(struct gn_npy *npy)
{
	if (npy == NULL)
		return;
	free(npy->data);
	memset(npy, 0, sizeof(*npy));
}
