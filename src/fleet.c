/*
 * fleet.c: one budget for a fleet of xdrproxy instances, held in Redis
 * (rate_backend). Each request asks Redis once: a Lua script (EVALSHA)
 * runs GCRA on a key per tenant (and per call limit, and the XQL slots)
 * with Redis's own clock, as redis-cell and go-redis/redis_rate do, so
 * every instance draws on the same budget.
 *
 * hiredis, with its libevent adapter, on the governor's thread and event
 * loop: nothing here blocks, and nothing here is touched by another
 * thread. When Redis cannot be reached (connect fails, the connection
 * drops, or an answer is more than FLEET_TIMEOUT_MS late) the governor
 * paces each tenant at its local share (rate_limit / fleet_size) and
 * fleet.c tries again every second; the outage is logged once, and the
 * return.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/crypto.h>

#include "xdrproxy.h"

#define FLEET_RETRY_MS		1000	/* between connection attempts */
#define FLEET_TIMEOUT_MS	1000	/* an answer later than this: down */

/*
 * GCRA. KEYS[1] the budget; ARGV[1] the interval between requests (us),
 * ARGV[2] the burst. {1, 0}: go (the budget is taken); {0, us}: not
 * before us from now. Redis's clock, so the instances' clocks do not
 * matter; the key expires once the bucket is full again.
 */
static const char fleet_gcra_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local interval = tonumber(ARGV[1])\n"
	"local tau = interval * (tonumber(ARGV[2]) - 1)\n"
	"local tat = tonumber(redis.call('GET', KEYS[1]) or 0)\n"
	"if tat < now then tat = now end\n"
	"if tat - tau > now then return {0, tat - tau - now} end\n"
	"tat = tat + interval\n"
	"redis.call('SET', KEYS[1], tat, 'PX',"
	" math.floor((tat - now) / 1000) + 1000)\n"
	"return {1, 0}\n";

/*
 * XQL slots: a sorted set of queries by expiry. KEYS[1] the set; ARGV[1]
 * the most that may run, ARGV[2] the slot's lifetime (us), ARGV[3] the
 * member. {1, 0}: taken; {0, us}: the first slot frees itself in us.
 */
static const char fleet_slot_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
	"if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then\n"
	"  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])\n"
	"  local ttl = math.floor(tonumber(ARGV[2]) / 1000) + 1000\n"
	"  if redis.call('PTTL', KEYS[1]) < ttl then\n"
	"    redis.call('PEXPIRE', KEYS[1], ttl)\n"
	"  end\n"
	"  return {1, 0}\n"
	"end\n"
	"local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
	"return {0, math.max(tonumber(first[2]) - now, 1000)}\n";

/*
 * A slot's member renamed once the query id is known (ARGV[1] to
 * ARGV[2]); its lifetime (ARGV[3], us) counts from now, as the local
 * slots' does.
 */
static const char fleet_rename_lua[] =
	"if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"redis.call('ZREM', KEYS[1], ARGV[1])\n"
	"redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])\n"
	"local ttl = math.floor(tonumber(ARGV[3]) / 1000) + 1000\n"
	"if redis.call('PTTL', KEYS[1]) < ttl then\n"
	"  redis.call('PEXPIRE', KEYS[1], ttl)\n"
	"end\n"
	"return 1\n";

enum fleet_script { FS_GCRA, FS_SLOT, FS_RENAME, FS_N };
static const char *const fleet_lua[FS_N] = {
	fleet_gcra_lua, fleet_slot_lua, fleet_rename_lua
};

enum fleet_state {
	FL_OFF,		/* no rate_backend */
	FL_DOWN,	/* no connection; the next attempt on the timer */
	FL_CONNECTING,
	FL_PREPARING,	/* connected; AUTH, SELECT, SCRIPT LOAD under way */
	FL_UP
};

/* One command's context, freed by its callback (hiredis calls it once). */
struct fleet_cmd {
	fleet_cb	 fc_cb;
	void		*fc_arg;
	enum fleet_script fc_script;
	uint64_t	 fc_sent_us;
	TAILQ_ENTRY(fleet_cmd) fc_entry;
};
TAILQ_HEAD(fleet_cmds, fleet_cmd);

static enum fleet_state		 fleet_state = FL_OFF;
static struct gov_backend	 fleet_be;
static char			 fleet_spec[300];
static struct key		*fleet_pass;
static struct event_base	*fleet_base;
static redisAsyncContext	*fleet_ac;
static struct event		*fleet_timer;
static char			 fleet_sha[FS_N][41];
static int			 fleet_loaded;	/* scripts loaded so far */
static int			 fleet_ever_up;
static int			 fleet_outage_logged;
static struct fleet_cmds	 fleet_pending = TAILQ_HEAD_INITIALIZER(
				    fleet_pending);
static void			(*fleet_notify)(int);

static uint64_t
fleet_now_us(void)
{
	return request_clock_us(CLOCK_MONOTONIC);
}

static void	fleet_connect(void);

/* The backend is down (again): say so once per outage; try again later. */
static void
fleet_down(const char *why)
{
	int	 was_up = fleet_state == FL_UP;

	fleet_state = FL_DOWN;
	fleet_ac = NULL;
	fleet_loaded = 0;
	if (!fleet_outage_logged) {
		fleet_outage_logged = 1;
		log_warnx("rate backend %s: unreachable (%s); each tenant is "
		    "paced at its local share (rate_limit / fleet_size) until "
		    "it returns", fleet_spec, why);
	}
	if (was_up && fleet_notify != NULL)
		fleet_notify(0);
}

/* Drop the connection (a late answer, a bad reply): callbacks get NULL. */
static void
fleet_drop(const char *why)
{
	redisAsyncContext	*ac = fleet_ac;

	fleet_down(why);
	if (ac != NULL)
		redisAsyncFree(ac);
}

static void
fleet_up(void)
{
	fleet_state = FL_UP;
	if (!fleet_ever_up)
		log_info("rate backend %s: connected; tenants share their "
		    "budget through it", fleet_spec);
	else if (fleet_outage_logged)
		log_info("rate backend %s: back; tenants share their budget "
		    "through it again", fleet_spec);
	fleet_ever_up = 1;
	fleet_outage_logged = 0;
	if (fleet_notify != NULL)
		fleet_notify(1);
}

/* SCRIPT LOAD's answer: the script's SHA1; up once all are loaded. */
static void
fleet_loaded_cb(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*reply = r;
	size_t		 i = (size_t)(uintptr_t)arg;

	if (reply == NULL || ac != fleet_ac)
		return;
	if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
		fleet_drop(reply->type == REDIS_REPLY_ERROR ? reply->str :
		    "SCRIPT LOAD failed");
		return;
	}
	memcpy(fleet_sha[i], reply->str, 40);
	fleet_sha[i][40] = '\0';
	if (++fleet_loaded == FS_N)
		fleet_up();
}

/* AUTH's and SELECT's answers: OK, or the connection is no use. */
static void
fleet_setup_cb(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply	*reply = r;
	char		 why[160];

	if (reply == NULL || ac != fleet_ac)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "%s: %s", (const char *)arg,
		    reply->str);
		fleet_drop(why);
	}
}

static void
fleet_connected(const redisAsyncContext *cac, int status)
{
	redisAsyncContext	*ac = (redisAsyncContext *)(uintptr_t)cac;
	size_t			 i;

	if (ac != fleet_ac)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this. */
		fleet_down(ac->errstr[0] != '\0' ? ac->errstr :
		    "cannot connect");
		return;
	}
	fleet_state = FL_PREPARING;
	if (fleet_pass != NULL)
		redisAsyncCommand(ac, fleet_setup_cb, (void *)(uintptr_t)"AUTH",
		    "AUTH %b", fleet_pass->k_data, fleet_pass->k_len);
	if (fleet_be.gb_db != 0)
		redisAsyncCommand(ac, fleet_setup_cb,
		    (void *)(uintptr_t)"SELECT", "SELECT %d", fleet_be.gb_db);
	for (i = 0; i < FS_N; i++)
		redisAsyncCommand(ac, fleet_loaded_cb, (void *)(uintptr_t)i,
		    "SCRIPT LOAD %s", fleet_lua[i]);
}

static void
fleet_disconnected(const redisAsyncContext *ac, int status)
{
	if (ac != fleet_ac)
		return;
	fleet_down(status == REDIS_OK ? "connection closed" :
	    ac->errstr[0] != '\0' ? ac->errstr : "connection lost");
}

static void
fleet_connect(void)
{
	redisAsyncContext	*ac;

	if (fleet_be.gb_kind == GOV_BACKEND_UNIX)
		ac = redisAsyncConnectUnix(fleet_be.gb_host);
	else
		ac = redisAsyncConnect(fleet_be.gb_host, fleet_be.gb_port);
	if (ac == NULL) {
		fleet_down("out of memory");
		return;
	}
	if (ac->err != 0) {
		fleet_down(ac->errstr);
		redisAsyncFree(ac);
		return;
	}
	fleet_ac = ac;
	fleet_state = FL_CONNECTING;
	redisLibeventAttach(ac, fleet_base);
	redisAsyncSetConnectCallback(ac, fleet_connected);
	redisAsyncSetDisconnectCallback(ac, fleet_disconnected);
}

/*
 * Every FLEET_RETRY_MS: connect again if down; give up on a connection
 * whose answers (or connect) are too late.
 */
static void
fleet_tick(evutil_socket_t fd, short what, void *arg)
{
	static uint64_t		 connecting_since;
	struct fleet_cmd	*fc;
	uint64_t		 now = fleet_now_us();

	(void)fd;
	(void)what;
	(void)arg;
	switch (fleet_state) {
	case FL_DOWN:
		connecting_since = now;
		fleet_connect();
		break;
	case FL_CONNECTING:
	case FL_PREPARING:
		if (now - connecting_since > (uint64_t)FLEET_TIMEOUT_MS * 2000)
			fleet_drop("no answer to the connection");
		break;
	case FL_UP:
		fc = TAILQ_FIRST(&fleet_pending);
		if (fc != NULL && now - fc->fc_sent_us >
		    (uint64_t)FLEET_TIMEOUT_MS * 1000)
			fleet_drop("an answer took longer than 1 s");
		break;
	case FL_OFF:
		return;
	}
	timer_add_ms(fleet_timer, FLEET_RETRY_MS);
}

/*
 * Main thread, before the governor's thread runs: the backend of cf
 * (rate_backend, and the password read from redis_password_file).
 * notify is called on the governor's thread as the backend goes up (1)
 * or down (0).
 */
int
fleet_init(const struct config *cf, struct event_base *base,
    void (*notify)(int), char **cause)
{
	const char	*why;

	*cause = NULL;
	fleet_state = FL_OFF;
	if (cf->cf_rate_backend == NULL ||
	    strcmp(cf->cf_rate_backend, "local") == 0)
		return 0;
	if (gov_backend_parse(cf->cf_rate_backend, &fleet_be, &why) == -1) {
		*cause = strdup(why);
		return -1;
	}
	snprintf(fleet_spec, sizeof(fleet_spec), "%s", cf->cf_rate_backend);
	/* A copy of its own (locked, wiped on free): generations go. */
	if (cf->cf_redis_password != NULL &&
	    (fleet_pass = keystore_new(cf->cf_redis_password->k_data,
	    cf->cf_redis_password->k_len)) == NULL) {
		*cause = strdup("out of memory");
		return -1;
	}
	fleet_base = base;
	fleet_notify = notify;
	if ((fleet_timer = evtimer_new(base, fleet_tick, NULL)) == NULL) {
		*cause = strdup("libevent: out of memory");
		return -1;
	}
	fleet_state = FL_DOWN;
	/* The first attempt at once, on the governor's loop. */
	timer_add_ms(fleet_timer, 0);
	return 0;
}

/* Is a backend configured (1), and is it up now (2)? Governor's thread. */
int
fleet_status(void)
{
	return fleet_state == FL_OFF ? 0 : fleet_state == FL_UP ? 2 : 1;
}

/* An EVALSHA's answer: {1, 0} or {0, us}; hand it to the governor. */
static void
fleet_eval_cb(redisAsyncContext *ac, void *r, void *arg)
{
	redisReply		*reply = r;
	struct fleet_cmd	*fc = arg;
	int			 verdict = -1;
	uint64_t		 wait = 0;

	TAILQ_REMOVE(&fleet_pending, fc, fc_entry);
	/*
	 * hiredis ends the pending commands (NULL) before it reports the
	 * disconnection: down first, so that the governor, told now, does
	 * not take the answer for a question it may ask again.
	 */
	if (reply == NULL && ac == fleet_ac && fleet_state != FL_DOWN)
		fleet_down(ac->errstr[0] != '\0' ? ac->errstr :
		    "connection lost");
	if (reply != NULL && fc->fc_script == FS_RENAME &&
	    reply->type == REDIS_REPLY_INTEGER) {
		/* Renamed, or already expired: either is fine. */
	} else if (reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
	    reply->elements == 2 &&
	    reply->element[0]->type == REDIS_REPLY_INTEGER &&
	    reply->element[1]->type == REDIS_REPLY_INTEGER) {
		verdict = reply->element[0]->integer == 1;
		wait = reply->element[1]->integer > 0 ?
		    (uint64_t)reply->element[1]->integer : 0;
	} else if (reply != NULL && ac == fleet_ac) {
		fleet_drop(reply->type == REDIS_REPLY_ERROR ? reply->str :
		    "an unexpected answer");
	}
	if (fc->fc_cb != NULL)
		fc->fc_cb(fc->fc_arg, verdict, wait);
	free(fc);
}

static int
fleet_eval(enum fleet_script s, fleet_cb cb, void *arg, int argc,
    const char **argv, const size_t *argvlen)
{
	struct fleet_cmd	*fc;

	if (fleet_state != FL_UP)
		return -1;
	if ((fc = calloc(1, sizeof(*fc))) == NULL)
		return -1;
	fc->fc_cb = cb;
	fc->fc_arg = arg;
	fc->fc_script = s;
	fc->fc_sent_us = fleet_now_us();
	TAILQ_INSERT_TAIL(&fleet_pending, fc, fc_entry);
	if (redisAsyncCommandArgv(fleet_ac, fleet_eval_cb, fc, argc, argv,
	    argvlen) != REDIS_OK) {
		TAILQ_REMOVE(&fleet_pending, fc, fc_entry);
		free(fc);
		return -1;
	}
	return 0;
}

/*
 * EVALSHA of script s on key with up to 3 arguments (NULL-terminated);
 * cb as for fleet_gcra(), or NULL for an answer nobody waits for.
 */
static int
fleet_evalsha(enum fleet_script s, const char *key, const char *const *args,
    fleet_cb cb, void *arg)
{
	const char	*argv[7];
	size_t		 argvlen[7];
	int		 argc = 4, i;

	argv[0] = "EVALSHA";
	argv[1] = fleet_sha[s];
	argv[2] = "1";
	argv[3] = key;
	for (i = 0; args[i] != NULL && argc < 7; i++)
		argv[argc++] = args[i];
	for (i = 0; i < argc; i++)
		argvlen[i] = strlen(argv[i]);
	return fleet_eval(s, cb, arg, argc, argv, argvlen);
}

/*
 * Ask Redis whether one request of key's budget may go: cb(arg, 1, 0),
 * cb(arg, 0, us to wait) or cb(arg, -1, 0) (the backend failed). -1 when
 * the backend is not up (cb is not called). Governor's thread.
 */
int
fleet_gcra(const char *key, uint64_t interval_us, unsigned int burst,
    fleet_cb cb, void *arg)
{
	char		 iv[24], bu[16];
	const char	*args[] = { iv, bu, NULL };

	snprintf(iv, sizeof(iv), "%" PRIu64, interval_us);
	snprintf(bu, sizeof(bu), "%u", burst > 0 ? burst : 1);
	return fleet_evalsha(FS_GCRA, key, args, cb, arg);
}

/* Take an XQL slot in key's set for member (see fleet_gcra()). */
int
fleet_slot_take(const char *key, int max, uint64_t lifetime_us,
    const char *member, fleet_cb cb, void *arg)
{
	char		 mx[16], lt[24];
	const char	*args[] = { mx, lt, member, NULL };

	snprintf(mx, sizeof(mx), "%d", max);
	snprintf(lt, sizeof(lt), "%" PRIu64, lifetime_us);
	return fleet_evalsha(FS_SLOT, key, args, cb, arg);
}

/* A reply nobody waits for (a slot renamed or given back). */
static void
fleet_ignore_cb(redisAsyncContext *ac, void *r, void *arg)
{
	(void)ac;
	(void)r;
	(void)arg;
}

/* The slot of member is now the query's: rename it. Best effort. */
void
fleet_slot_rename(const char *key, const char *member, const char *id,
    uint64_t lifetime_us)
{
	char		 lt[24];
	const char	*args[] = { member, id, lt, NULL };

	snprintf(lt, sizeof(lt), "%" PRIu64, lifetime_us);
	(void)fleet_evalsha(FS_RENAME, key, args, NULL, NULL);
}

/* Give a slot back. Best effort: a lost one expires on its own. */
void
fleet_slot_release(const char *key, const char *member)
{
	if (fleet_state != FL_UP)
		return;
	redisAsyncCommand(fleet_ac, fleet_ignore_cb, NULL, "ZREM %s %s", key,
	    member);
}

/* At exit, on the main thread, the governor's thread ended. */
void
fleet_stop(void)
{
	redisAsyncContext	*ac = fleet_ac;

	fleet_notify = NULL;
	if (ac != NULL) {
		fleet_ac = NULL;
		redisAsyncFree(ac);
	}
	if (fleet_timer != NULL)
		event_free(fleet_timer);
	fleet_timer = NULL;
	keystore_free(fleet_pass);
	fleet_pass = NULL;
	fleet_state = FL_OFF;
}
