/*
 * Error codes and the per-thread error detail.
 *
 * Codes are plain negative errno values so they compose with system calls;
 * the words for the ones Genie uses say what they mean in Genie's terms.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gn_error.h"

static __thread char t_msg[512];
static __thread int t_code;

const char *gn_strerror(int rc)
{
	if (rc == INT_MIN)
		return "unknown error";
	if (rc < 0)
		rc = -rc;
	switch (rc) {
	case 0: return "success";
	case EINVAL:
		return "invalid argument (wrong shape, dtype, option or "
		       "address)";
	case ENOMEM:
		return "out of memory (host allocation or device pool "
		       "exhausted)";
	case EMSGSIZE: return "message exceeds the configured frame size cap";
	case EBADMSG:
		return "malformed input (a frame, protobuf, model or file "
		       "that does not parse)";
	case EPROTO:
		return "protocol error (truncated frame or message out of "
		       "sequence)";
	case EPROTONOSUPPORT:
		return "unsupported protocol (unknown transport scheme or "
		       "schema version)";
	case ECONNREFUSED:
		return "connection refused (no runtime listening at that "
		       "address)";
	case ECONNRESET: return "connection closed by peer";
	case ETIMEDOUT: return "timed out waiting for the peer";
	case EOPNOTSUPP:
		return "operation not supported by this backend or op table";
	case ENODEV: return "device not present";
	case ENOENT: return "no such object (unknown file, name or handle)";
	case EALREADY: return "already initialised";
	case ENOSPC: return "no space left in the given buffer";
	case ESTALE:
		return "stale reference (the runtime no longer holds that "
		       "plan)";
	default: {
		/* strerror() may return a per-call buffer for unknown codes;
		 * the codes Genie returns are all known to libc. */
		return strerror(rc);
	}
	}
}

int gn_error_set(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t_msg, sizeof(t_msg), fmt, ap);
	va_end(ap);
	t_code = rc;
	return rc;
}

void gn_error_clear(void)
{
	t_msg[0] = '\0';
	t_code = 0;
}

const char *gn_last_error(void)
{
	return t_msg;
}

int gn_last_error_code(void)
{
	return t_code;
}
