/*
 * notify.c: systemd's readiness protocol (Type=notify) without libsystemd:
 * one datagram of "KEY=value" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET, a path or, with a leading '@', an abstract name.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xdrproxy.h"

/*
 * Send msg to the service manager. Returns 0 (also when there is none to
 * tell), or -1 with *cause set.
 */
int
notify_send(const char *msg, char **cause)
{
	struct sockaddr_un	 sun;
	const char		*path;
	socklen_t		 len;
	size_t			 plen;
	int			 fd, saved;

	*cause = NULL;
	if ((path = getenv("NOTIFY_SOCKET")) == NULL || *path == '\0')
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sun.sun_path)) {
		if (asprintf(cause, "NOTIFY_SOCKET: not a socket path or "
		    "abstract name") == -1)
			*cause = NULL;
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail;
	}
	close(fd);
	return 0;
fail:
	if (asprintf(cause, "NOTIFY_SOCKET %s: %s", path, strerror(errno)) ==
	    -1)
		*cause = NULL;
	return -1;
}
