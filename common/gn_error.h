/*
 * Internal side of Genie errors: setting the calling thread's detail.
 *
 * A failing function calls gn_error_set(rc, "what was expected, what was
 * seen") and returns rc; the public gn_last_error() reads it back. Keep the
 * message specific: name the object, the expected value and the seen one.
 */
#ifndef GN_COMMON_ERROR_H
#define GN_COMMON_ERROR_H

#include <genie/error.h>

#include <errno.h>

/*
 * Record `rc` (a negative errno) and a printf-style detail for this thread.
 * Returns `rc`, so a caller can write `return gn_error_set(-EINVAL, ...)`.
 */
int gn_error_set(int rc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Forget this thread's last error. */
void gn_error_clear(void);

#endif /* GN_COMMON_ERROR_H */
