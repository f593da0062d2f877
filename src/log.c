/*
 * log.c: diagnostics on stderr, one line each, with a UTC timestamp and a
 * level. Untrusted bytes (paths, header values) go through log_escape first.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xdrproxy.h"

static int	log_verbosity;

static void	log_vwrite(const char *, const char *, va_list, const char *)
		    __attribute__((format(printf, 2, 0)));

void
log_init(int verbosity)
{
	log_verbosity = verbosity;
}

static void
log_vwrite(const char *level, const char *fmt, va_list ap, const char *err)
{
	char		 msg[1024], stamp[32];
	struct timespec	 ts;
	struct tm	 tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (err != NULL)
		fprintf(stderr, "%s.%03ldZ %s: %s: %s: %s\n", stamp,
		    ts.tv_nsec / 1000000, XDRPROXY_NAME, level, msg, err);
	else
		fprintf(stderr, "%s.%03ldZ %s: %s: %s\n", stamp,
		    ts.tv_nsec / 1000000, XDRPROXY_NAME, level, msg);
	fflush(stderr);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_vwrite("warning", fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite("warning", fmt, ap, NULL);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite("info", fmt, ap, NULL);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (log_verbosity < 1)
		return;
	va_start(ap, fmt);
	log_vwrite("debug", fmt, ap, NULL);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_vwrite("fatal", fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite("fatal", fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

/*
 * Copy len bytes of src into dst as printable ASCII: control characters,
 * backslash and bytes >= 0x7f become \xNN. Truncates with "..." when dst is
 * too small; dst is always NUL-terminated.
 */
void
log_escape(char *dst, size_t size, const char *src, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i, o = 0;
	unsigned char		 c;

	if (size == 0)
		return;
	for (i = 0; i < len; i++) {
		c = (unsigned char)src[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= size)
				goto trunc;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= size)
				goto trunc;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		}
	}
	dst[o] = '\0';
	return;
trunc:
	if (size >= 4) {
		o = o > size - 4 ? size - 4 : o;
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o < size ? o : size - 1] = '\0';
}
