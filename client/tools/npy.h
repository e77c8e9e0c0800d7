/*
 * NumPy .npy files for genie-run (internal to the tool, not libgenie API).
 *
 * A .npy file is a 6-byte magic "\x93NUMPY", a version byte pair, a header
 * length (2 bytes little-endian in version 1.0, 4 bytes in 2.0 and 3.0), a
 * Python dict literal such as
 *
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *
 * padded with spaces and ended by '\n', then the raw elements. The reader
 * takes versions 1.0, 2.0 and 3.0 (whose header is utf-8; Genie's dtypes
 * never need more than ASCII), little-endian or byte-order-free descrs of
 * the types Genie has (f4 f2 i8 i4 i1 u1 b1), C order, up to GN_MAX_DIMS
 * dims including 0-d and zero-size arrays. Everything else is refused with
 * gn_last_error() naming the file, what was expected and what was seen.
 *
 * Errors: -EBADMSG for a file that is not a well-formed .npy (bad magic,
 * truncated or garbled header, absurd header length, data shorter or longer
 * than the shape says); -EOPNOTSUPP for a well-formed file Genie cannot
 * take (big-endian, float64 or another dtype Genie lacks, structured
 * dtypes, Fortran order, more than GN_MAX_DIMS dims, an unknown format
 * version); -ENOMEM; the -errno of open/read/write.
 *
 * The writer emits version 1.0 headers padded to a multiple of 64 bytes,
 * as numpy.save does, so numpy.load reads them back.
 */
#ifndef GN_TOOLS_NPY_H
#define GN_TOOLS_NPY_H

#include <stddef.h>
#include <stdint.h>

#include <genie/types.h>

/* Longest header the reader accepts (numpy.load's own default is 10000). */
#define GN_NPY_MAX_HEADER (1u << 16)

/* An array read from a .npy file. */
struct gn_npy {
	enum gn_dtype dtype;
	int ndim;
	int64_t shape[GN_MAX_DIMS];
	size_t nbytes; /* elements times gn_dtype_size(dtype) */
	/*
	 * Row-major elements, malloc'd and owned by the struct: never NULL
	 * after a successful read, even for zero-size arrays. Freed by
	 * gn_npy_free().
	 */
	void *data;
};

/*
 * Read the .npy file at `path` into `out`. Returns 0, or a negative errno
 * (see above) with gn_last_error() naming `path`; `out` is then zeroed and
 * owns nothing.
 */
int gn_npy_read(const char *path, struct gn_npy *out);

/*
 * As gn_npy_read() from the `len` bytes at `buf` (copied; the caller keeps
 * `buf`). `name` stands for the source in error messages.
 */
int gn_npy_read_buffer(const void *buf, size_t len, const char *name,
		       struct gn_npy *out);

/*
 * Write `ndim` dims of `shape` of `dtype` from `data` (row-major,
 * elements times gn_dtype_size(dtype) bytes; may be NULL when that is 0)
 * as a version 1.0 .npy file at `path`, replacing it. The file is written
 * beside and renamed into place, so a reader never sees half of it.
 * Returns 0, -EINVAL for a bad dtype, ndim or negative dim, -EOPNOTSUPP
 * for bf16 (numpy has no such dtype: convert first), or the -errno of the
 * failing system call, with gn_last_error() naming `path`.
 */
int gn_npy_write(const char *path, enum gn_dtype dtype, int ndim,
		 const int64_t *shape, const void *data);

/* The numpy descr for `dtype` ("<f4"), or NULL where numpy has none. */
const char *gn_npy_descr(enum gn_dtype dtype);

/* Free what `npy` owns and zero it; NULL or an empty struct is a no-op. */
void gn_npy_free(struct gn_npy *npy);

#endif /* GN_TOOLS_NPY_H */
