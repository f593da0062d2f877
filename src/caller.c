/*
 * Who called: the identity of a client connection's peer, resolved once
 * when the connection is accepted (never per request), formatted once for
 * the audit records, and shared by reference with each of its requests.
 *
 * Unix socket: SO_PEERCRED (uid, gid, pid). Loopback TCP: the kernel's
 * socket table (NETLINK_SOCK_DIAG, inet_diag by the connection's exact
 * 4-tuple) names the client socket's owning uid and inode; the pid is
 * found by scanning /proc/PID/fd of that uid's processes for
 * socket:[inode] (bounded by CALLER_SCAN_MAX links), the gid from
 * /proc/PID/status. Whatever cannot be found stays unknown, with
 * c_error saying why: nothing is guessed.
 */

#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include <event2/buffer.h>

#include "xdrproxy.h"

/* At most this many /proc/PID/fd links are read per connection. */
#define CALLER_SCAN_MAX	200000

static void caller_why(struct caller *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
caller_why(struct caller *c, const char *fmt, ...)
{
	va_list	 ap;

	if (c->c_error[0] != '\0')
		return;		/* the first reason */
	va_start(ap, fmt);
	vsnprintf(c->c_error, sizeof(c->c_error), fmt, ap);
	va_end(ap);
}

void
caller_unknown(struct caller *c, const char *why)
{
	memset(c, 0, sizeof(*c));
	c->c_uid = c->c_gid = c->c_pid = -1;
	if (why[0] != '\0')
		caller_why(c, "%s", why);
}

static void
caller_names(struct caller *c)
{
	struct passwd	 pw, *pwp = NULL;
	struct group	 gr, *grp = NULL;
	char		 buf[4096];

	if (c->c_uid >= 0) {
		if (getpwuid_r((uid_t)c->c_uid, &pw, buf, sizeof(buf), &pwp) ==
		    0 && pwp != NULL)
			snprintf(c->c_user, sizeof(c->c_user), "%s",
			    pw.pw_name);
		else
			caller_why(c, "%s", "uid has no user name");
	}
	if (c->c_gid >= 0) {
		if (getgrgid_r((gid_t)c->c_gid, &gr, buf, sizeof(buf), &grp) ==
		    0 && grp != NULL)
			snprintf(c->c_group, sizeof(c->c_group), "%s",
			    gr.gr_name);
		else
			caller_why(c, "%s", "gid has no group name");
	}
}

static void
caller_exe(struct caller *c)
{
	char	 path[64];
	ssize_t	 n;

	snprintf(path, sizeof(path), "/proc/%ld/exe", c->c_pid);
	n = readlink(path, c->c_exe, sizeof(c->c_exe) - 1);
	if (n < 0 || (size_t)n >= sizeof(c->c_exe) - 1) {
		c->c_exe[0] = '\0';
		snprintf(path, sizeof(path), "%ld", c->c_pid);
		caller_why(c, "exe not visible: /proc/%s/exe not readable",
		    path);
		return;
	}
	c->c_exe[n] = '\0';
}

/* The effective gid of c_pid, from /proc/PID/status. */
static void
caller_proc_gid(struct caller *c)
{
	char	 path[64], line[256];
	FILE	*f;
	long	 real, eff;

	snprintf(path, sizeof(path), "/proc/%ld/status", c->c_pid);
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(path, sizeof(path), "%ld", c->c_pid);
		caller_why(c, "gid not visible: /proc/%s/status not readable",
		    path);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "Gid: %ld %ld", &real, &eff) == 2) {
			c->c_gid = eff;
			break;
		}
	}
	fclose(f);
	if (c->c_gid < 0)
		caller_why(c, "%s", "gid not found in /proc status");
}

static int
caller_is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
		    sin6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

/* A v4-mapped IPv6 address as the AF_INET one the client's socket has. */
static void
caller_unmap(struct sockaddr_storage *ss)
{
	struct sockaddr_in6	 sin6;
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;

	if (ss->ss_family != AF_INET6)
		return;
	memcpy(&sin6, ss, sizeof(sin6));
	if (!IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr))
		return;
	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = sin6.sin6_port;
	memcpy(&sin->sin_addr, &sin6.sin6_addr.s6_addr[12], 4);
}

static void
caller_addr(const struct sockaddr_storage *ss, __be16 *port, __be32 *addr)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET) {
		*port = sin->sin_port;
		memcpy(addr, &sin->sin_addr, 4);
	} else {
		*port = sin6->sin6_port;
		memcpy(addr, &sin6->sin6_addr, 16);
	}
}

/*
 * The client's socket: source the client's address, destination ours.
 * 0 with uid and inode, or -1 with c_error set.
 */
static int
caller_diag(struct caller *c, const struct sockaddr_storage *peer,
    const struct sockaddr_storage *local, unsigned long *inode)
{
	struct {
		struct nlmsghdr		nlh;
		struct inet_diag_req_v2	req;
	}			 q;
	struct sockaddr_nl	 nl;
	union {
		struct nlmsghdr	nlh;
		char		buf[8192];
	}			 r;
	struct inet_diag_msg	*m;
	struct nlmsgerr		*e;
	ssize_t			 n;
	int			 fd;

	memset(&q, 0, sizeof(q));
	q.nlh.nlmsg_len = sizeof(q);
	q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.nlh.nlmsg_flags = NLM_F_REQUEST;
	q.nlh.nlmsg_seq = 1;
	q.req.sdiag_family = (unsigned char)peer->ss_family;
	q.req.sdiag_protocol = IPPROTO_TCP;
	q.req.idiag_states = ~0U;
	caller_addr(peer, &q.req.id.idiag_sport, q.req.id.idiag_src);
	caller_addr(local, &q.req.id.idiag_dport, q.req.id.idiag_dst);
	q.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	q.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	memset(&nl, 0, sizeof(nl));
	nl.nl_family = AF_NETLINK;

	if ((fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC,
	    NETLINK_SOCK_DIAG)) == -1) {
		caller_why(c, "inet_diag: socket: %s", strerror(errno));
		return -1;
	}
	if (sendto(fd, &q, sizeof(q), 0, (struct sockaddr *)&nl,
	    sizeof(nl)) != (ssize_t)sizeof(q)) {
		caller_why(c, "inet_diag: send: %s", strerror(errno));
		close(fd);
		return -1;
	}
	n = recv(fd, &r, sizeof(r), 0);
	close(fd);
	if (n < 0) {
		caller_why(c, "inet_diag: recv: %s", strerror(errno));
		return -1;
	}
	if (!NLMSG_OK(&r.nlh, (size_t)n)) {
		caller_why(c, "%s", "inet_diag: short answer");
		return -1;
	}
	if (r.nlh.nlmsg_type == NLMSG_ERROR) {
		e = NLMSG_DATA(&r.nlh);
		caller_why(c, "inet_diag: %s", e->error == -ENOENT ?
		    "the client's socket is not in the kernel's table "
		    "(not a local client?)" : strerror(-e->error));
		return -1;
	}
	if (r.nlh.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    r.nlh.nlmsg_len < NLMSG_LENGTH(sizeof(*m))) {
		caller_why(c, "%s", "inet_diag: unexpected answer");
		return -1;
	}
	m = NLMSG_DATA(&r.nlh);
	c->c_uid = (long)m->idiag_uid;
	*inode = m->idiag_inode;
	return 0;
}

/* The pid holding socket:[inode], among the processes of c_uid. */
static void
caller_find_pid(struct caller *c, unsigned long inode)
{
	DIR		*proc, *fds;
	struct dirent	*de, *fe;
	struct stat	 st;
	char		 path[64], want[64], link[64], denied[32] = "";
	unsigned long	 links = 0;
	ssize_t		 n;
	char		*end;
	long		 pid;

	if (inode == 0) {
		caller_why(c, "%s", "pid not visible: the client's socket has "
		    "no inode (closed?)");
		return;
	}
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	if ((proc = opendir("/proc")) == NULL) {
		caller_why(c, "pid not visible: /proc: %s", strerror(errno));
		return;
	}
	while (c->c_pid < 0 && (de = readdir(proc)) != NULL) {
		pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid <= 0)
			continue;
		/* Only the socket owner's processes can hold it (mostly). */
		if (fstatat(dirfd(proc), de->d_name, &st, 0) == -1 ||
		    (long)st.st_uid != c->c_uid)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		if ((fds = opendir(path)) == NULL) {
			if (denied[0] == '\0' && (errno == EACCES ||
			    errno == EPERM))
				snprintf(denied, sizeof(denied), "%ld", pid);
			continue;
		}
		while ((fe = readdir(fds)) != NULL) {
			if (fe->d_name[0] == '.')
				continue;
			if (++links > CALLER_SCAN_MAX)
				break;
			n = readlinkat(dirfd(fds), fe->d_name, link,
			    sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strcmp(link, want) == 0) {
				c->c_pid = pid;
				break;
			}
		}
		closedir(fds);
		if (links > CALLER_SCAN_MAX)
			break;
	}
	closedir(proc);
	if (c->c_pid >= 0)
		return;
	if (links > CALLER_SCAN_MAX)
		caller_why(c, "%s", "pid not found: /proc scan limit reached");
	else if (denied[0] != '\0')
		caller_why(c, "pid not visible: /proc/%s/fd not readable",
		    denied);
	else
		caller_why(c, "%s", "pid not found: no visible process holds "
		    "the client's socket");
}

void
caller_resolve(int fd, struct caller *c)
{
	struct sockaddr_storage	 peer, local;
	socklen_t		 plen = sizeof(peer), llen = sizeof(local);
	struct ucred		 uc;
	socklen_t		 uclen = sizeof(uc);
	unsigned long		 inode = 0;

	caller_unknown(c, "");
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == -1 ||
	    getpeername(fd, (struct sockaddr *)&peer, &plen) == -1) {
		caller_why(c, "socket address: %s", strerror(errno));
		return;
	}
	if (local.ss_family == AF_UNIX) {
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &uclen) ==
		    -1) {
			caller_why(c, "SO_PEERCRED: %s", strerror(errno));
			return;
		}
		c->c_uid = (long)uc.uid;
		c->c_gid = (long)uc.gid;
		c->c_pid = uc.pid > 0 ? (long)uc.pid : -1;
		if (c->c_pid < 0)
			caller_why(c, "%s", "SO_PEERCRED: no pid");
	} else {
		if (!caller_is_loopback(&peer)) {
			caller_why(c, "%s", "not a loopback connection");
			return;
		}
		caller_unmap(&peer);
		caller_unmap(&local);
		if (caller_diag(c, &peer, &local, &inode) == -1)
			return;
		caller_find_pid(c, inode);
		if (c->c_pid >= 0)
			caller_proc_gid(c);
	}
	if (c->c_pid >= 0)
		caller_exe(c);
	caller_names(c);
}

#define CALLER_LIT(b, s)	evbuffer_add((b), (s), sizeof(s) - 1)

static void	caller_format(struct evbuffer *, const struct caller *);

/* For a connection xdrproxy could not track (out of memory). */
struct caller caller_untracked = {
	.c_uid = -1, .c_gid = -1, .c_pid = -1,
	.c_error = "connection not tracked"
};

/*
 * The caller of the client connection on fd, with one reference, its
 * audit fragment formatted; NULL if out of memory.
 */
struct caller *
caller_new(int fd)
{
	struct caller	*c;
	struct evbuffer	*b;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	caller_resolve(fd, c);
	c->c_refs = 1;
	if ((b = evbuffer_new()) != NULL) {
		caller_format(b, c);
		c->c_jsonlen = evbuffer_get_length(b);
		if ((c->c_json = malloc(c->c_jsonlen)) != NULL)
			evbuffer_copyout(b, c->c_json, c->c_jsonlen);
		evbuffer_free(b);
	}
	return c;
}

struct caller *
caller_ref(struct caller *c)
{
	if (c->c_refs != 0)
		c->c_refs++;
	return c;
}

void
caller_unref(struct caller *c)
{
	if (c == NULL || c->c_refs == 0 || --c->c_refs != 0)
		return;
	free(c->c_json);
	free(c);
}

/* ,"caller":{...},"caller_error":... for an audit record. */
void
caller_json(struct evbuffer *b, const struct caller *c)
{
	if (c->c_json != NULL)
		evbuffer_add(b, c->c_json, c->c_jsonlen);
	else
		caller_format(b, c);
}

/* The fragment from the fields: literals, no printf. */
static void
caller_format(struct evbuffer *b, const struct caller *c)
{
	CALLER_LIT(b, ",\"caller\":{\"uid\":");
	json_add_id(b, c->c_uid);
	CALLER_LIT(b, ",\"user\":");
	json_add_cstring(b, c->c_user[0] != '\0' ? c->c_user : NULL);
	CALLER_LIT(b, ",\"gid\":");
	json_add_id(b, c->c_gid);
	CALLER_LIT(b, ",\"group\":");
	json_add_cstring(b, c->c_group[0] != '\0' ? c->c_group : NULL);
	CALLER_LIT(b, ",\"pid\":");
	json_add_id(b, c->c_pid);
	CALLER_LIT(b, ",\"exe\":");
	json_add_cstring(b, c->c_exe[0] != '\0' ? c->c_exe : NULL);
	CALLER_LIT(b, "},\"caller_error\":");
	json_add_cstring(b, c->c_error[0] != '\0' ? c->c_error : NULL);
}
