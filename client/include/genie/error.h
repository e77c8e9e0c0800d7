/*
 * Genie errors.
 *
 * Every Genie call that can fail returns 0 on success or a negative errno
 * value (-EINVAL, -EMSGSIZE, ...). Constructors return NULL and leave the
 * code behind. The code says what kind of failure it was; the calling
 * thread's last-error message says which one, in words that name what was
 * expected and what was seen ("matmul: inner dimensions differ: a is [2,3],
 * b is [4,5]").
 */
#ifndef GENIE_ERROR_H
#define GENIE_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Describe an error code. Accepts 0, a negative errno or a positive errno.
 * Returns a static string; never NULL. Thread-safe.
 */
const char *gn_strerror(int rc);

/*
 * The calling thread's most recent error detail, set by the last Genie call
 * that failed on this thread. Returns "" when none. The string belongs to the
 * thread and stays valid until its next failing Genie call.
 */
const char *gn_last_error(void);

/*
 * The code that went with gn_last_error() (a negative errno), or 0.
 */
int gn_last_error_code(void);

#ifdef __cplusplus
}
#endif

#endif /* GENIE_ERROR_H */
