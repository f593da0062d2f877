/*
 * governor.c: each tenant's budget, shared by every worker. A request
 * that would go over it waits in a queue instead of failing, and goes as
 * soon as the budget allows.
 *
 * A request passes up to three gates, each a FIFO of small tickets
 * (struct gov_ticket, inside the request):
 *   lane   its call's own limit (limit = GLOB RATE), one queue per line,
 *          so a call waiting on its own limit holds up no other call;
 *   xql    start_xql_query waits for one of xql_max_running slots;
 *   main   the tenant's rate_limit (GCRA, with burst) and max_concurrent,
 *          served round-robin across callers (uid, else address), so one
 *          busy script cannot starve the others.
 *
 * Who does what. Everything below is under gov_mu, one small lock that
 * no system call is made under but a wake-up byte. A worker admits its
 * request (governor_admit): when nothing waits and the budget allows, it
 * takes the budget itself and goes on at once; otherwise the ticket is
 * queued and the governor's thread is woken. That thread owns the timing:
 * it moves tickets through the gates as budget frees up (gov_run), and
 * hands each granted ticket to its worker's w_granted list with a
 * WORKER_GRANTED byte on the worker's control pipe; the worker then
 * sends it (governor_take -> proxy_granted). A worker releases what a
 * request holds when the request (or one attempt of it) ends
 * (governor_done), wherever it was: queued, granted but not taken, or in
 * flight.
 *
 * The state lives by tenant name for the process's life, outside the
 * configuration generations: a reload changes the settings, never the
 * budget already used.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "xdrproxy.h"

#define GOV_MAX_TENANTS		METRICS_MAX_TENANTS
/* AIMD: after a 429 from the tenant, hold the lowered rate this long, then
   grow it back by GOV_AIMD_STEP of the configured rate each second. */
#define GOV_AIMD_HOLD_US	(5 * 1000000ULL)
#define GOV_AIMD_STEP		0.05
#define GOV_AIMD_FLOOR		(1.0 / 64)
/* One cut per this long: the 429s of requests already sent count once. */
#define GOV_AIMD_CUT_GAP_US	(1000000ULL)
/* With XQL slots in Redis, how often a start waiting for one asks again. */
#define GOV_SLOT_POLL_US	(250 * 1000ULL)
/* Retry budget: retries at most this share of requests over the window. */
#define GOV_RETRY_WINDOW	10	/* seconds */
#define GOV_RETRY_RATIO		0.2
#define GOV_RETRY_FLOOR		3

/*
 * Counts per second over the retry budget's window. Requests are counted
 * by the workers without the lock (relaxed atomics: a count lost to a
 * race at a second's turn does not matter to a budget).
 */
struct gov_tally {
	_Atomic uint64_t	 ty_sec;
	_Atomic uint32_t	 ty_n;
};

/* A call's own limit, and the tickets waiting on it. */
struct gov_lane {
	TAILQ_ENTRY(gov_lane)	 gl_entry;
	struct gov_tenant	*gl_tenant;
	char			*gl_glob;
	char			*gl_key;	/* Redis: xdrproxy:{T}:lane:GLOB */
	int			 gl_asking;	/* Redis asked, no answer yet */
	uint64_t		 gl_remote_at;	/* Redis said: not before */
	uint64_t		 gl_interval_us;
	unsigned int		 gl_burst;
	uint64_t		 gl_tat_us;	/* GCRA: theoretical arrival */
	size_t			 gl_n;	/* waiting in gl_queue */
	int			 gl_active;	/* in the configuration in force */
	struct gov_tickets	 gl_queue;
};
TAILQ_HEAD(gov_lanes, gov_lane);

/* A caller's tickets in the main queue; in the ring while it has some. */
struct gov_caller {
	TAILQ_ENTRY(gov_caller)	 gc_entry;
	struct gov_tickets	 gc_queue;
	char			 gc_key[48];
	int			 gc_static;	/* the tenant's own: not freed */
};
TAILQ_HEAD(gov_callers, gov_caller);

/* An XQL slot: a start_xql_query in flight (holder), or a running query. */
struct gov_slot {
	TAILQ_ENTRY(gov_slot)	 gs_entry;
	struct gov_ticket	*gs_holder;	/* NULL once the id is known */
	int			 gs_remote;	/* also held in Redis, as gs_id */
	uint64_t		 gs_expires_us;
	char			 gs_id[128];
};
TAILQ_HEAD(gov_slots, gov_slot);

/* What a worker leaves for the governor's thread to tell Redis. */
struct gov_op {
	TAILQ_ENTRY(gov_op)	 go_entry;
	char			*go_key;
	char			*go_member;
	char			*go_id;	/* NULL: give the slot back */
	uint64_t		 go_lifetime_us;	/* of the renamed slot */
};
TAILQ_HEAD(gov_ops, gov_op);

struct gov_tenant {
	char			*gt_name;
	int			 gt_mslot;	/* metrics.c's slot, or -1 */
	char			*gt_key;	/* Redis: xdrproxy:{T}:rate */
	char			*gt_xql_key;	/* Redis: xdrproxy:{T}:xql */
	int			 gt_asking;	/* the rate: Redis asked */
	uint64_t		 gt_remote_at;
	int			 gt_xql_asking;	/* a slot: Redis asked */
	uint64_t		 gt_xql_remote_at;
	char			 gt_xql_member[64];	/* the slot asked for */
	/* The settings in force (governor_configure). */
	uint64_t		 gt_interval_us;	/* 0: no rate limit */
	int			 gt_burst;
	long			 gt_max_conc;
	size_t			 gt_queue_max;
	unsigned int		 gt_queue_timeout_ms;
	int			 gt_xql_max;
	unsigned int		 gt_xql_timeout_ms;
	/* The budget. */
	uint64_t		 gt_tat_us;
	long			 gt_inflight;
	struct gov_lanes	 gt_lanes;
	struct gov_tickets	 gt_xqlq;
	size_t			 gt_xqln;
	struct gov_callers	 gt_ring;
	size_t			 gt_mainn;	/* waiting in the ring */
	struct gov_caller	 gt_spare;	/* when a caller cannot be made */
	size_t			 gt_queued;
	struct gov_slots	 gt_slots;
	int			 gt_nslots;
	/* AIMD: the share of gt_interval_us's rate in use now. */
	double			 gt_factor;
	uint64_t		 gt_cut_us;
	uint64_t		 gt_grow_us;
	/* Retry budget: requests and retries per second, last 10 s. */
	struct gov_tally	 gt_reqs[GOV_RETRY_WINDOW];
	struct gov_tally	 gt_retries[GOV_RETRY_WINDOW];
	/* Counters, for /metrics. */
	uint64_t		 gt_paced;
	uint64_t		 gt_full;
	uint64_t		 gt_timedout;
	uint64_t		 gt_429;
	uint64_t		 gt_retried;
	uint64_t		 gt_retry_denied;
	struct metrics_hist	 gt_wait;
};

static pthread_mutex_t		 gov_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gov_tenant	*gov_tenants[GOV_MAX_TENANTS];
static int			 gov_ntenants;
/* The governor's thread and how to wake it. */
static struct event_base	*gov_base;
static struct event		*gov_wake_ev;
static struct event		*gov_timer;
static int			 gov_pipe[2] = { -1, -1 };
static pthread_t		 gov_thread;
static int			 gov_started;
static atomic_int		 gov_stopping;
/*
 * The fleet's budget in Redis (fleet.c): gov_remote while it is up;
 * gov_share, the fleet_size to divide the rate by while a configured
 * backend is down (1 without one). Under gov_mu.
 */
static int			 gov_remote;
static int			 gov_backend;
static int			 gov_share = 1;
static struct gov_ops		 gov_ops = TAILQ_HEAD_INITIALIZER(gov_ops);
static uint64_t			 gov_instance;	/* names our XQL slots */
static uint64_t			 gov_member_seq;

static uint64_t
gov_now_us(void)
{
	return request_clock_us(CLOCK_MONOTONIC);
}

/* Wake the governor's thread; from any thread. */
static void
gov_wake(void)
{
	unsigned char	 c = 1;

	if (gov_pipe[1] == -1)
		return;
	while (write(gov_pipe[1], &c, 1) == -1 && errno == EINTR)
		;
}

/* a * b, or UINT64_MAX past it: times here can be long ones many times. */
static uint64_t
gov_mul(uint64_t a, uint64_t b)
{
	return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* a + b, or UINT64_MAX past it. */
static uint64_t
gov_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* GCRA: when the next request conforms (tat less the burst's tolerance). */
static uint64_t
gov_ready_us(uint64_t tat, uint64_t interval, unsigned int burst)
{
	uint64_t	 tau = gov_mul(interval, burst > 0 ? burst - 1 : 0);

	return tat > tau ? tat - tau : 0;
}

/* GCRA: one request goes at now. */
static uint64_t
gov_take(uint64_t tat, uint64_t now, uint64_t interval)
{
	return gov_add(tat > now ? tat : now, interval);
}

/*
 * The tenant's interval now: the configured one, stretched while AIMD
 * has the rate lowered. Grows the rate back as time passes.
 */
static uint64_t
gov_interval(struct gov_tenant *gt, uint64_t now)
{
	uint64_t	 steps;

	if (gt->gt_factor < 1.0 && now > gt->gt_cut_us + GOV_AIMD_HOLD_US) {
		if (gt->gt_grow_us < gt->gt_cut_us + GOV_AIMD_HOLD_US)
			gt->gt_grow_us = gt->gt_cut_us + GOV_AIMD_HOLD_US;
		steps = (now - gt->gt_grow_us) / 1000000ULL;
		if (steps > 0) {
			gt->gt_factor += GOV_AIMD_STEP * (double)steps;
			gt->gt_grow_us += steps * 1000000ULL;
			if (gt->gt_factor >= 1.0) {
				gt->gt_factor = 1.0;
				log_info("tenant %s: no 429 from the tenant for a "
				    "while; rate back to %.2f/s", gt->gt_name,
				    gov_rate_per_s(gt->gt_interval_us));
			}
		}
	}
	return (uint64_t)((double)gt->gt_interval_us / gt->gt_factor);
}

/*
 * The pace when this instance decides alone: the tenant's interval, or,
 * while a configured rate backend is down, its local share of the budget
 * (rate_limit / fleet_size).
 */
static uint64_t
gov_local(uint64_t interval)
{
	return gov_backend && !gov_remote ? gov_mul(interval,
	    (uint64_t)gov_share) : interval;
}

/* One more in second sec of a tally. */
static void
gov_tally_add(struct gov_tally *v, uint64_t sec)
{
	struct gov_tally	*t = &v[sec % GOV_RETRY_WINDOW];

	if (atomic_load_explicit(&t->ty_sec, memory_order_relaxed) != sec) {
		atomic_store_explicit(&t->ty_n, 0, memory_order_relaxed);
		atomic_store_explicit(&t->ty_sec, sec, memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&t->ty_n, 1, memory_order_relaxed);
}

/* A tally over the window ending at second sec. */
static uint64_t
gov_tally_sum(struct gov_tally *v, uint64_t sec)
{
	uint64_t	 n = 0, t;
	size_t		 i;

	for (i = 0; i < GOV_RETRY_WINDOW; i++) {
		t = atomic_load_explicit(&v[i].ty_sec, memory_order_relaxed);
		if (t <= sec && sec - t < GOV_RETRY_WINDOW)
			n += atomic_load_explicit(&v[i].ty_n,
			    memory_order_relaxed);
	}
	return n;
}

/* Fairness: the caller's uid when known, else its address (no port). */
static void
gov_key(const struct request *req, char *key, size_t size)
{
	const char	*c = req->req_client, *end;

	if (req->req_caller != NULL && req->req_caller->c_uid >= 0) {
		snprintf(key, size, "uid:%ld", req->req_caller->c_uid);
		return;
	}
	if (c[0] == '[' && (end = strchr(c, ']')) != NULL)
		end++;
	else if ((end = strrchr(c, ':')) == NULL)
		end = c + strlen(c);
	snprintf(key, size, "addr:%.*s", (int)(end - c), c);
}

/* ---- The main queue: round-robin across callers. ---- */

static void
gov_main_push(struct gov_tenant *gt, struct gov_ticket *tk)
{
	struct gov_caller	*gc;

	TAILQ_FOREACH(gc, &gt->gt_ring, gc_entry)
		if (strcmp(gc->gc_key, tk->gk_key) == 0)
			break;
	if (gc == NULL) {
		if ((gc = calloc(1, sizeof(*gc))) == NULL) {
			gc = &gt->gt_spare;
			if (TAILQ_EMPTY(&gc->gc_queue))
				TAILQ_INSERT_TAIL(&gt->gt_ring, gc, gc_entry);
		} else {
			TAILQ_INIT(&gc->gc_queue);
			snprintf(gc->gc_key, sizeof(gc->gc_key), "%s",
			    tk->gk_key);
			TAILQ_INSERT_TAIL(&gt->gt_ring, gc, gc_entry);
		}
	}
	TAILQ_INSERT_TAIL(&gc->gc_queue, tk, gk_entry);
	tk->gk_caller = gc;
	tk->gk_state = GK_MAIN;
	gt->gt_mainn++;
}

/* Take tk out of its caller's queue; the caller goes when it is empty. */
static void
gov_main_remove(struct gov_tenant *gt, struct gov_ticket *tk)
{
	struct gov_caller	*gc = tk->gk_caller;

	TAILQ_REMOVE(&gc->gc_queue, tk, gk_entry);
	tk->gk_caller = NULL;
	gt->gt_mainn--;
	if (!TAILQ_EMPTY(&gc->gc_queue))
		return;
	TAILQ_REMOVE(&gt->gt_ring, gc, gc_entry);
	if (!gc->gc_static)
		free(gc);
}

/* The next ticket in turn: the first caller's first; it goes to the end. */
static struct gov_ticket *
gov_main_pop(struct gov_tenant *gt)
{
	struct gov_caller	*gc = TAILQ_FIRST(&gt->gt_ring);
	struct gov_ticket	*tk = TAILQ_FIRST(&gc->gc_queue);

	TAILQ_REMOVE(&gc->gc_queue, tk, gk_entry);
	tk->gk_caller = NULL;
	gt->gt_mainn--;
	TAILQ_REMOVE(&gt->gt_ring, gc, gc_entry);
	if (!TAILQ_EMPTY(&gc->gc_queue))
		TAILQ_INSERT_TAIL(&gt->gt_ring, gc, gc_entry);
	else if (!gc->gc_static)
		free(gc);
	return tk;
}

/* ---- XQL slots. ---- */

/* Queries that ran past xql_slot_timeout give their slot back. */
static void
gov_slots_expire(struct gov_tenant *gt, uint64_t now)
{
	struct gov_slot	*gs, *next;

	for (gs = TAILQ_FIRST(&gt->gt_slots); gs != NULL; gs = next) {
		next = TAILQ_NEXT(gs, gs_entry);
		if (gs->gs_holder != NULL || gs->gs_expires_us > now)
			continue;
		log_info("tenant %s: XQL query %s gave no final status within "
		    "xql_slot_timeout; its slot is free again", gt->gt_name,
		    gs->gs_id);
		TAILQ_REMOVE(&gt->gt_slots, gs, gs_entry);
		gt->gt_nslots--;
		free(gs);
	}
}

static int
gov_slot_free(struct gov_tenant *gt)
{
	int	 max = gt->gt_xql_max;

	/* A configured backend is down: our share of the slots. */
	if (gov_backend && !gov_remote && max > 0 &&
	    (max /= gov_share) < 1)
		max = 1;
	return gt->gt_xql_max == 0 || gt->gt_nslots < max;
}

/* tk takes a slot (without one if out of memory: never stuck). */
static void
gov_slot_take(struct gov_tenant *gt, struct gov_ticket *tk, uint64_t now)
{
	struct gov_slot	*gs;

	if ((gs = calloc(1, sizeof(*gs))) == NULL)
		return;
	gs->gs_holder = tk;
	gs->gs_expires_us = now + (uint64_t)gt->gt_xql_timeout_ms * 1000;
	snprintf(gs->gs_id, sizeof(gs->gs_id), "(starting)");
	TAILQ_INSERT_TAIL(&gt->gt_slots, gs, gs_entry);
	gt->gt_nslots++;
	tk->gk_slot = gs;
}

/* Something for the governor's thread to tell Redis (gov_ops_flush). */
static void
gov_op_add(const char *key, const char *member, const char *id,
    uint64_t lifetime_us)
{
	struct gov_op	*op;

	if ((op = calloc(1, sizeof(*op))) == NULL ||
	    (op->go_key = strdup(key)) == NULL ||
	    (op->go_member = strdup(member)) == NULL ||
	    (id != NULL && (op->go_id = strdup(id)) == NULL)) {
		/* Lost: Redis expires the slot by itself. */
		if (op != NULL) {
			free(op->go_key);
			free(op->go_member);
			free(op);
		}
		return;
	}
	op->go_lifetime_us = lifetime_us;
	TAILQ_INSERT_TAIL(&gov_ops, op, go_entry);
}

static void
gov_slot_release(struct gov_tenant *gt, struct gov_slot *gs)
{
	if (gs->gs_remote) {
		gov_op_add(gt->gt_xql_key, gs->gs_id, NULL, 0);
		gt->gt_xql_remote_at = 0;	/* ours is free: ask at once */
	}
	TAILQ_REMOVE(&gt->gt_slots, gs, gs_entry);
	gt->gt_nslots--;
	free(gs);
}

/* The earliest time a slot frees itself, or UINT64_MAX. */
static uint64_t
gov_slots_next(const struct gov_tenant *gt)
{
	const struct gov_slot	*gs;
	uint64_t		 t = UINT64_MAX;

	TAILQ_FOREACH(gs, &gt->gt_slots, gs_entry)
		if (gs->gs_holder == NULL && gs->gs_expires_us < t)
			t = gs->gs_expires_us;
	return t;
}

/* ---- Granting. ---- */

/* Workers to tell, collected under the lock, told after it. */
struct gov_wakes {
	struct worker	*gw_v[64];
	size_t		 gw_n;
};

static void
gov_grant(struct gov_tenant *gt, struct gov_ticket *tk, uint64_t now,
    struct gov_wakes *gw)
{
	struct worker	*w = tk->gk_req->req_worker;
	uint64_t	 waited = now - tk->gk_queued_us;
	size_t		 i;

	gt->gt_queued--;
	gt->gt_inflight++;
	tk->gk_inflight = 1;
	tk->gk_queued_us = waited;	/* from now on: how long it waited */
	gt->gt_paced++;
	metrics_observe(&gt->gt_wait, waited);
	tk->gk_state = GK_GRANTED;
	TAILQ_INSERT_TAIL(&w->w_granted, tk, gk_entry);
	for (i = 0; i < gw->gw_n; i++)
		if (gw->gw_v[i] == w)
			return;
	if (gw->gw_n < sizeof(gw->gw_v) / sizeof(gw->gw_v[0]))
		gw->gw_v[gw->gw_n++] = w;
	else
		worker_wake(w);
}

/* After its lane (or at once): the XQL gate, or the main queue. */
static void
gov_after_lane(struct gov_tenant *gt, struct gov_ticket *tk)
{
	if (tk->gk_xql) {
		TAILQ_INSERT_TAIL(&gt->gt_xqlq, tk, gk_entry);
		gt->gt_xqln++;
		tk->gk_state = GK_XQL;
	} else
		gov_main_push(gt, tk);
}

static void	gov_schedule(void);
static void	gov_answer_lane(void *, int, uint64_t);
static void	gov_answer_xql(void *, int, uint64_t);
static void	gov_answer_rate(void *, int, uint64_t);

/*
 * Redis would not take the question (it is going away): try again in a
 * moment, when fleet.c has said whether it is down, rather than pace
 * alone at the whole fleet's rate.
 */
static void
gov_later(uint64_t now, uint64_t *next)
{
	if (now + 50000 < *next)
		*next = now + 50000;
}

/* A name for one XQL slot of ours in Redis, until its query id is known. */
static void
gov_member(char *buf, size_t size)
{
	snprintf(buf, size, "starting:%016" PRIx64 ":%" PRIu64, gov_instance,
	    ++gov_member_seq);
}

/*
 * Move what can move through gt's gates at now; *next is lowered to when
 * a gate that holds a ticket back opens by itself. With the fleet's
 * budget in Redis, a gate asks Redis for its head ticket (one question
 * at a time per gate) and gov_answer_*() moves it on.
 */
static void
gov_dispatch(struct gov_tenant *gt, uint64_t now, uint64_t *next,
    struct gov_wakes *gw)
{
	struct gov_lane		*gl;
	struct gov_ticket	*tk;
	uint64_t		 t, interval;
	char			 member[64];

	TAILQ_FOREACH(gl, &gt->gt_lanes, gl_entry) {
		while ((tk = TAILQ_FIRST(&gl->gl_queue)) != NULL) {
			if (gl->gl_active && gl->gl_interval_us > 0) {
				if (gov_remote) {
					if (gl->gl_asking)
						break;
					if (gl->gl_remote_at > now) {
						if (gl->gl_remote_at < *next)
							*next = gl->gl_remote_at;
						break;
					}
					if (fleet_gcra(gl->gl_key,
					    gl->gl_interval_us, gl->gl_burst,
					    gov_answer_lane, gl) == 0)
						gl->gl_asking = 1;
					else
						gov_later(now, next);
					break;
				}
				interval = gov_local(gl->gl_interval_us);
				t = gov_ready_us(gl->gl_tat_us, interval,
				    gl->gl_burst);
				if (t > now) {
					if (t < *next)
						*next = t;
					break;
				}
				gl->gl_tat_us = gov_take(gl->gl_tat_us, now,
				    interval);
			}
			TAILQ_REMOVE(&gl->gl_queue, tk, gk_entry);
			gl->gl_n--;
			gov_after_lane(gt, tk);
		}
	}
	gov_slots_expire(gt, now);
	while ((tk = TAILQ_FIRST(&gt->gt_xqlq)) != NULL) {
		if (gov_remote && gt->gt_xql_max > 0) {
			if (gt->gt_xql_asking)
				break;
			if (gt->gt_xql_remote_at > now) {
				if (gt->gt_xql_remote_at < *next)
					*next = gt->gt_xql_remote_at;
				break;
			}
			gov_member(member, sizeof(member));
			if (fleet_slot_take(gt->gt_xql_key, gt->gt_xql_max,
			    (uint64_t)gt->gt_xql_timeout_ms * 1000, member,
			    gov_answer_xql, gt) == 0) {
				snprintf(gt->gt_xql_member,
				    sizeof(gt->gt_xql_member), "%s", member);
				gt->gt_xql_asking = 1;
			} else
				gov_later(now, next);
			break;
		}
		if (!gov_slot_free(gt)) {
			if ((t = gov_slots_next(gt)) < *next)
				*next = t;
			break;
		}
		TAILQ_REMOVE(&gt->gt_xqlq, tk, gk_entry);
		gt->gt_xqln--;
		gov_slot_take(gt, tk, now);
		gov_main_push(gt, tk);
	}
	while (!TAILQ_EMPTY(&gt->gt_ring)) {
		/* A request that ends wakes the thread again. */
		if (gt->gt_max_conc > 0 && gt->gt_inflight >= gt->gt_max_conc)
			break;
		if (gt->gt_interval_us > 0) {
			interval = gov_interval(gt, now);
			if (gov_remote) {
				if (gt->gt_asking)
					break;
				if (gt->gt_remote_at > now) {
					if (gt->gt_remote_at < *next)
						*next = gt->gt_remote_at;
					break;
				}
				if (fleet_gcra(gt->gt_key, interval,
				    (unsigned int)gt->gt_burst, gov_answer_rate,
				    gt) == 0)
					gt->gt_asking = 1;
				else
					gov_later(now, next);
				break;
			}
			interval = gov_local(interval);
			t = gov_ready_us(gt->gt_tat_us, interval,
			    (unsigned int)gt->gt_burst);
			if (t > now) {
				if (t < *next)
					*next = t;
				break;
			}
			gt->gt_tat_us = gov_take(gt->gt_tat_us, now, interval);
		}
		gov_grant(gt, gov_main_pop(gt), now, gw);
	}
}

/*
 * What workers left for Redis (slots renamed or given back), said on the
 * governor's thread, outside the lock.
 */
static void
gov_ops_flush(void)
{
	struct gov_ops	 ops;
	struct gov_op	*op;

	TAILQ_INIT(&ops);
	pthread_mutex_lock(&gov_mu);
	TAILQ_CONCAT(&ops, &gov_ops, go_entry);
	pthread_mutex_unlock(&gov_mu);
	while ((op = TAILQ_FIRST(&ops)) != NULL) {
		TAILQ_REMOVE(&ops, op, go_entry);
		if (op->go_id != NULL)
			fleet_slot_rename(op->go_key, op->go_member, op->go_id,
			    op->go_lifetime_us);
		else
			fleet_slot_release(op->go_key, op->go_member);
		free(op->go_key);
		free(op->go_member);
		free(op->go_id);
		free(op);
	}
}

/*
 * Run every tenant's gates, tell the workers what was granted, and set
 * the timer for the next gate that opens by itself. Governor's thread.
 */
static void
gov_schedule(void)
{
	struct gov_wakes	 gw;
	uint64_t		 now, next = UINT64_MAX, d;
	struct timeval		 tv;
	size_t			 i;
	int			 t;

	gov_ops_flush();
	gw.gw_n = 0;
	pthread_mutex_lock(&gov_mu);
	now = gov_now_us();
	for (t = 0; t < gov_ntenants; t++)
		if (gov_tenants[t]->gt_queued > 0)
			gov_dispatch(gov_tenants[t], now, &next, &gw);
	pthread_mutex_unlock(&gov_mu);
	for (i = 0; i < gw.gw_n; i++)
		worker_wake(gw.gw_v[i]);
	if (next == UINT64_MAX) {
		evtimer_del(gov_timer);
		return;
	}
	d = next > now ? next - now : 0;
	tv.tv_sec = (time_t)(d / 1000000);
	tv.tv_usec = (suseconds_t)(d % 1000000);
	evtimer_add(gov_timer, &tv);
}

/* The governor's thread: woken by a byte, or by its timer (fd -1). */
static void
gov_run(evutil_socket_t fd, short what, void *arg)
{
	unsigned char	 buf[64];

	(void)what;
	(void)arg;
	if (fd != -1)
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	if (atomic_load(&gov_stopping)) {
		event_base_loopbreak(gov_base);
		return;
	}
	gov_schedule();
}

/*
 * Redis answered about a rate (fleet.c, governor's thread): 1, the head
 * ticket may go; 0, not before wait us; -1, the backend failed (the gate
 * paces locally from now on). Then every gate runs again.
 */
static void
gov_answer_rate(void *arg, int verdict, uint64_t wait)
{
	struct gov_tenant	*gt = arg;
	struct gov_wakes	 gw;
	uint64_t		 now;
	size_t			 i;

	gw.gw_n = 0;
	pthread_mutex_lock(&gov_mu);
	now = gov_now_us();
	gt->gt_asking = 0;
	if (verdict == 1 && !TAILQ_EMPTY(&gt->gt_ring))
		gov_grant(gt, gov_main_pop(gt), now, &gw);
	else if (verdict == 0)
		gt->gt_remote_at = now + wait;
	pthread_mutex_unlock(&gov_mu);
	for (i = 0; i < gw.gw_n; i++)
		worker_wake(gw.gw_v[i]);
	if (!atomic_load(&gov_stopping))
		gov_schedule();
}

static void
gov_answer_lane(void *arg, int verdict, uint64_t wait)
{
	struct gov_lane		*gl = arg;
	struct gov_ticket	*tk;
	uint64_t		 now;

	pthread_mutex_lock(&gov_mu);
	now = gov_now_us();
	gl->gl_asking = 0;
	if (verdict == 1 && (tk = TAILQ_FIRST(&gl->gl_queue)) != NULL) {
		TAILQ_REMOVE(&gl->gl_queue, tk, gk_entry);
		gl->gl_n--;
		gov_after_lane(gl->gl_tenant, tk);
	} else if (verdict == 0)
		gl->gl_remote_at = now + wait;
	pthread_mutex_unlock(&gov_mu);
	if (!atomic_load(&gov_stopping))
		gov_schedule();
}

static void
gov_answer_xql(void *arg, int verdict, uint64_t wait)
{
	struct gov_tenant	*gt = arg;
	struct gov_ticket	*tk;
	uint64_t		 now;

	pthread_mutex_lock(&gov_mu);
	now = gov_now_us();
	gt->gt_xql_asking = 0;
	if (verdict == 1) {
		if ((tk = TAILQ_FIRST(&gt->gt_xqlq)) != NULL) {
			TAILQ_REMOVE(&gt->gt_xqlq, tk, gk_entry);
			gt->gt_xqln--;
			gov_slot_take(gt, tk, now);
			if (tk->gk_slot != NULL) {
				tk->gk_slot->gs_remote = 1;
				snprintf(tk->gk_slot->gs_id,
				    sizeof(tk->gk_slot->gs_id), "%s",
				    gt->gt_xql_member);
			} else
				gov_op_add(gt->gt_xql_key, gt->gt_xql_member,
				    NULL, 0);
			gov_main_push(gt, tk);
		} else	/* the start went away meanwhile */
			gov_op_add(gt->gt_xql_key, gt->gt_xql_member, NULL, 0);
	} else if (verdict == 0) {
		/*
		 * A slot frees when a query ends, on any instance: ask again
		 * soon rather than wait for the first one to expire.
		 */
		gt->gt_xql_remote_at = now + (wait < GOV_SLOT_POLL_US ? wait :
		    GOV_SLOT_POLL_US);
	}
	pthread_mutex_unlock(&gov_mu);
	if (!atomic_load(&gov_stopping))
		gov_schedule();
}

/* The rate backend went up (1) or down (0): fleet.c, governor's thread. */
static void
gov_fleet_changed(int up)
{
	struct gov_tenant	*gt;
	struct gov_lane		*gl;
	uint64_t		 now, full;
	int			 t;

	pthread_mutex_lock(&gov_mu);
	gov_remote = up;
	/*
	 * Down: the fleet has likely used the budget; each instance starts
	 * its share with an empty bucket, not a burst on top of the others'.
	 */
	now = gov_now_us();
	for (t = 0; !up && t < gov_ntenants; t++) {
		gt = gov_tenants[t];
		full = gov_add(now, gov_mul(gov_local(gov_interval(gt, now)),
		    (uint64_t)(gt->gt_burst > 0 ? gt->gt_burst : 1)));
		if (gt->gt_interval_us > 0 && gt->gt_tat_us < full)
			gt->gt_tat_us = full;
		TAILQ_FOREACH(gl, &gt->gt_lanes, gl_entry) {
			full = gov_add(now, gov_mul(gov_local(
			    gl->gl_interval_us), (uint64_t)gl->gl_burst));
			if (gl->gl_tat_us < full)
				gl->gl_tat_us = full;
		}
	}
	pthread_mutex_unlock(&gov_mu);
	if (!atomic_load(&gov_stopping))
		gov_schedule();
}

static void *
gov_main(void *arg)
{
	(void)arg;
	event_base_dispatch(gov_base);
	return NULL;
}

/*
 * The governor's thread, before any worker runs; cf's rate_backend and
 * fleet_size (a change waits for a restart).
 */
int
governor_start(struct config *cf, char **cause)
{
	struct event_config	*ec;

	*cause = NULL;
	if (RAND_bytes((unsigned char *)&gov_instance,
	    sizeof(gov_instance)) != 1)
		gov_instance = (uint64_t)getpid() << 32 ^ gov_now_us();
	if (pipe2(gov_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		if (asprintf(cause, "pipe: %s", strerror(errno)) == -1)
			*cause = NULL;
		return -1;
	}
	/* Microsecond timers: the pace of a fast rate is finer than 1 ms. */
	if ((ec = event_config_new()) == NULL)
		goto nomem;
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	gov_base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (gov_base == NULL ||
	    (gov_wake_ev = event_new(gov_base, gov_pipe[0],
	    EV_READ | EV_PERSIST, gov_run, NULL)) == NULL ||
	    event_add(gov_wake_ev, NULL) == -1 ||
	    (gov_timer = evtimer_new(gov_base, gov_run, NULL)) == NULL)
		goto nomem;
	gov_share = cf->cf_fleet_size > 0 ? cf->cf_fleet_size : 1;
	if (fleet_init(cf, gov_base, gov_fleet_changed, cause) == -1)
		return -1;
	gov_backend = fleet_status() != 0;
	if (pthread_create(&gov_thread, NULL, gov_main, NULL) != 0) {
		*cause = strdup("pthread_create failed");
		return -1;
	}
	gov_started = 1;
	return 0;
nomem:
	*cause = strdup("libevent: out of memory");
	return -1;
}

static void
gov_tenant_free(struct gov_tenant *gt)
{
	struct gov_lane		*gl;
	struct gov_caller	*gc;
	struct gov_slot		*gs;

	while ((gl = TAILQ_FIRST(&gt->gt_lanes)) != NULL) {
		TAILQ_REMOVE(&gt->gt_lanes, gl, gl_entry);
		free(gl->gl_glob);
		free(gl->gl_key);
		free(gl);
	}
	while ((gc = TAILQ_FIRST(&gt->gt_ring)) != NULL) {
		TAILQ_REMOVE(&gt->gt_ring, gc, gc_entry);
		if (!gc->gc_static)
			free(gc);
	}
	while ((gs = TAILQ_FIRST(&gt->gt_slots)) != NULL) {
		TAILQ_REMOVE(&gt->gt_slots, gs, gs_entry);
		free(gs);
	}
	free(gt->gt_name);
	free(gt->gt_key);
	free(gt->gt_xql_key);
	free(gt);
}

/*
 * At exit, the workers' loops ended: the governor's thread ends too, so
 * that it tells no worker anything more (its answers from Redis come
 * now, with nothing waiting for them).
 */
void
governor_stop(void)
{
	if (gov_started) {
		atomic_store(&gov_stopping, 1);
		gov_wake();
		pthread_join(gov_thread, NULL);
		gov_started = 0;
	}
	fleet_stop();
}

/* After the workers are freed (no ticket is left anywhere): the rest. */
void
governor_free(void)
{
	int	 t;

	gov_ops_flush();
	if (gov_timer != NULL)
		event_free(gov_timer);
	if (gov_wake_ev != NULL)
		event_free(gov_wake_ev);
	if (gov_base != NULL)
		event_base_free(gov_base);
	gov_timer = gov_wake_ev = NULL;
	gov_base = NULL;
	if (gov_pipe[0] != -1)
		close(gov_pipe[0]);
	if (gov_pipe[1] != -1)
		close(gov_pipe[1]);
	gov_pipe[0] = gov_pipe[1] = -1;
	for (t = 0; t < gov_ntenants; t++)
		gov_tenant_free(gov_tenants[t]);
	gov_ntenants = 0;
}

static struct gov_tenant *
gov_tenant_get(const struct tenant *tn)
{
	struct gov_tenant	*gt;
	int			 t;

	for (t = 0; t < gov_ntenants; t++)
		if (strcmp(gov_tenants[t]->gt_name, tn->tn_name) == 0)
			return gov_tenants[t];
	if (gov_ntenants == GOV_MAX_TENANTS ||
	    (gt = calloc(1, sizeof(*gt))) == NULL)
		return NULL;
	if ((gt->gt_name = strdup(tn->tn_name)) == NULL ||
	    asprintf(&gt->gt_key, "xdrproxy:{%s}:rate", tn->tn_name) == -1 ||
	    asprintf(&gt->gt_xql_key, "xdrproxy:{%s}:xql", tn->tn_name) ==
	    -1) {
		/* asprintf leaves its pointer undefined on failure. */
		free(gt->gt_name);
		free(gt);
		return NULL;
	}
	TAILQ_INIT(&gt->gt_lanes);
	TAILQ_INIT(&gt->gt_xqlq);
	TAILQ_INIT(&gt->gt_ring);
	TAILQ_INIT(&gt->gt_slots);
	TAILQ_INIT(&gt->gt_spare.gc_queue);
	snprintf(gt->gt_spare.gc_key, sizeof(gt->gt_spare.gc_key), "(spare)");
	gt->gt_spare.gc_static = 1;
	gt->gt_factor = 1.0;
	gt->gt_mslot = tn->tn_metrics_slot;
	gov_tenants[gov_ntenants++] = gt;
	return gt;
}

/*
 * A bucket's new rate: no later than a whole burst at that rate from
 * now, so a reload that speeds a limit up leaves no wait of the old one.
 */
static void
gov_clamp(uint64_t *tat, uint64_t interval, int burst)
{
	uint64_t	 most;

	most = gov_add(gov_now_us(), gov_mul(interval,
	    (uint64_t)(burst > 0 ? burst : 1)));
	if (*tat > most)
		*tat = most;
}

/* The lane of a limit line, made if new; NULL if out of memory. */
static struct gov_lane *
gov_lane_get(struct gov_tenant *gt, const struct gov_limit_conf *glc)
{
	struct gov_lane	*gl;

	TAILQ_FOREACH(gl, &gt->gt_lanes, gl_entry)
		if (strcmp(gl->gl_glob, glc->glc_glob) == 0)
			return gl;
	if ((gl = calloc(1, sizeof(*gl))) == NULL)
		return NULL;
	if ((gl->gl_glob = strdup(glc->glc_glob)) == NULL)
		goto fail;
	if (asprintf(&gl->gl_key, "xdrproxy:{%s}:lane:%s", gt->gt_name,
	    glc->glc_glob) == -1) {
		gl->gl_key = NULL;
		goto fail;
	}
	gl->gl_tenant = gt;
	TAILQ_INIT(&gl->gl_queue);
	TAILQ_INSERT_TAIL(&gt->gt_lanes, gl, gl_entry);
	return gl;
fail:
	free(gl->gl_glob);
	free(gl);
	return NULL;
}

/*
 * Main thread, before cf is put in force (at start, and on a reload, with
 * metrics_register() done): each tenant of cf finds its state by name and
 * gets cf's settings; each limit line finds its lane.
 */
int
governor_configure(struct config *cf, char **cause)
{
	struct tenant		*tn;
	struct gov_tenant	*gt;
	struct gov_lane		*gl;
	struct gov_limit_conf	*glc;
	size_t			 i;
	int			 rc = 0;

	*cause = NULL;
	pthread_mutex_lock(&gov_mu);
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		if ((gt = gov_tenant_get(tn)) == NULL) {
			rc = gov_ntenants == GOV_MAX_TENANTS ? -2 : -1;
			break;
		}
		tn->tn_gov_state = gt;
		gt->gt_mslot = tn->tn_metrics_slot;
		if (gt->gt_interval_us != tn->tn_gov.gc_rate.gr_interval_us) {
			gt->gt_factor = 1.0;
			/* A faster rate: no wait left over from the old one. */
			gov_clamp(&gt->gt_tat_us,
			    tn->tn_gov.gc_rate.gr_interval_us,
			    tn->tn_gov.gc_burst);
		}
		gt->gt_interval_us = tn->tn_gov.gc_rate.gr_interval_us;
		gt->gt_burst = tn->tn_gov.gc_burst;
		gt->gt_max_conc = tn->tn_gov.gc_max_concurrent;
		gt->gt_queue_max = tn->tn_gov.gc_queue_max;
		gt->gt_queue_timeout_ms = tn->tn_gov.gc_queue_timeout;
		gt->gt_xql_max = tn->tn_gov.gc_xql_max;
		gt->gt_xql_timeout_ms = tn->tn_gov.gc_xql_slot_timeout;
		TAILQ_FOREACH(gl, &gt->gt_lanes, gl_entry)
			gl->gl_active = 0;
		for (i = 0; i < tn->tn_gov.gc_nlimits; i++) {
			glc = &tn->tn_gov.gc_limits[i];
			if ((gl = gov_lane_get(gt, glc)) == NULL) {
				rc = -1;
				break;
			}
			/* The first line for a glob is the one that applies. */
			if (!gl->gl_active) {
				gl->gl_active = 1;
				if (gl->gl_interval_us !=
				    glc->glc_rate.gr_interval_us)
					gov_clamp(&gl->gl_tat_us,
					    glc->glc_rate.gr_interval_us,
					    (int)glc->glc_burst);
				gl->gl_interval_us = glc->glc_rate.gr_interval_us;
				gl->gl_burst = glc->glc_burst;
			}
			glc->glc_lane = gl;
		}
		if (rc == -1)
			break;
	}
	pthread_mutex_unlock(&gov_mu);
	if (rc == -2) {
		if (asprintf(cause, "more than %d tenant names since the start; "
		    "the governor keeps each name's budget until a restart",
		    GOV_MAX_TENANTS) == -1)
			*cause = NULL;
		return -1;
	}
	if (rc == -1) {
		*cause = strdup("governor: out of memory");
		return -1;
	}
	/* New settings may open a gate. */
	gov_wake();
	return 0;
}

/*
 * How long one more request would wait on a call's own limit: until it
 * is ready, and a turn for each one already waiting. Under the lock.
 */
static uint64_t
gov_lane_wait(const struct gov_lane *gl, uint64_t now)
{
	uint64_t	 interval, ready;

	if (!gl->gl_active || gl->gl_interval_us == 0)
		return 0;
	interval = gov_local(gl->gl_interval_us);
	/* Redis keeps the budget: the last it said, not our own bucket. */
	ready = gov_remote ? gl->gl_remote_at : gov_ready_us(gl->gl_tat_us,
	    interval, gl->gl_burst);
	return gov_add(ready > now ? ready - now : 0,
	    gov_mul((uint64_t)gl->gl_n, interval));
}

/* Seconds, rounded up, at least 1, for Retry-After. */
static unsigned int
gov_seconds(uint64_t us)
{
	us = gov_add(us, 999999) / 1000000;
	return us < 1 ? 1 : us > 86400 ? 86400 : (unsigned int)us;
}

/*
 * Retry-After for tk's 429 from where it waits: the tickets ahead of it
 * at its gate's pace. Under the lock.
 */
static unsigned int
gov_retry_after(struct gov_tenant *gt, const struct gov_ticket *tk,
    uint64_t now)
{
	uint64_t	 t;

	switch (tk->gk_state) {
	case GK_LANE:
		return gov_seconds(gov_lane_wait(tk->gk_lane, now));
	case GK_XQL:
		t = gov_slots_next(gt);
		return gov_seconds(t != UINT64_MAX && t > now ? t - now : 0);
	default:
		return gov_seconds(gov_mul((uint64_t)gt->gt_mainn,
		    gt->gt_interval_us > 0 ? gov_local(gov_interval(gt, now)) :
		    0));
	}
}

/*
 * Does req go now (budget taken), wait (queued: proxy_granted() later)
 * or find its queue full (GOV_FULL: why says so, req_retry_after is
 * set)? Worker thread; req_gov is set up here.
 */
enum gov_verdict
governor_admit(struct request *req, char *why, size_t whylen)
{
	struct tenant			*tn = req->req_tenant;
	struct gov_tenant		*gt = tn->tn_gov_state;
	struct gov_ticket		*tk = &req->req_gov;
	const struct gov_limit_conf	*glc;
	struct gov_lane			*gl;
	uint64_t			 now, interval = 0, lw;
	size_t				 ahead;
	int				 lane_ok, xql_ok, main_ok;

	memset(tk, 0, sizeof(*tk));
	tk->gk_req = req;
	if (gt == NULL)
		return GOV_GO;
	/* Every request counts for the retry budget, governed or not. */
	if (req->req_attempts == 0)
		gov_tally_add(gt->gt_reqs, req->req_start_mono_us / 1000000);
	/* A spelling policy_canon refuses: its own bytes, as written. */
	glc = req->req_canon != NULL ? gov_limit_find(&tn->tn_gov,
	    req->req_canon, req->req_canon_len) : gov_limit_find(&tn->tn_gov,
	    req->req_uri, req->req_path_len);
	gl = glc != NULL && glc->glc_rate.gr_interval_us > 0 ?
	    glc->glc_lane : NULL;
	tk->gk_xql = req->req_xql == XQL_START;	/* proxy_xql_begin() */
	if (gl == NULL && !tk->gk_xql &&
	    tn->tn_gov.gc_rate.gr_interval_us == 0 &&
	    tn->tn_gov.gc_max_concurrent == 0)
		return GOV_GO;	/* nothing to wait for: no lock taken */
	tk->gk_lane = gl;
	gov_key(req, tk->gk_key, sizeof(tk->gk_key));

	pthread_mutex_lock(&gov_mu);
	now = gov_now_us();
	tk->gk_tenant = gt;
	/* With the fleet's budget in Redis, only Redis says go. */
	lane_ok = gl == NULL || !gl->gl_active || gl->gl_interval_us == 0 ||
	    (!gov_remote && TAILQ_EMPTY(&gl->gl_queue) &&
	    gov_ready_us(gl->gl_tat_us, gov_local(gl->gl_interval_us),
	    gl->gl_burst) <= now);
	if (tk->gk_xql)
		gov_slots_expire(gt, now);
	xql_ok = !tk->gk_xql || (!gov_remote && TAILQ_EMPTY(&gt->gt_xqlq) &&
	    gov_slot_free(gt));
	main_ok = TAILQ_EMPTY(&gt->gt_ring) && (gt->gt_max_conc == 0 ||
	    gt->gt_inflight < gt->gt_max_conc);
	if (main_ok && gt->gt_interval_us > 0) {
		interval = gov_local(gov_interval(gt, now));
		main_ok = !gov_remote && gov_ready_us(gt->gt_tat_us, interval,
		    (unsigned int)gt->gt_burst) <= now;
	}
	if (lane_ok && xql_ok && main_ok) {
		if (gl != NULL && gl->gl_active && gl->gl_interval_us > 0)
			gl->gl_tat_us = gov_take(gl->gl_tat_us, now,
			    gov_local(gl->gl_interval_us));
		if (tk->gk_xql)
			gov_slot_take(gt, tk, now);
		if (gt->gt_interval_us > 0)
			gt->gt_tat_us = gov_take(gt->gt_tat_us, now, interval);
		gt->gt_inflight++;
		tk->gk_inflight = 1;
		tk->gk_state = GK_HELD;
		pthread_mutex_unlock(&gov_mu);
		return GOV_GO;
	}
	/*
	 * Each queue has its own bound, so one call's backlog refuses no
	 * other call. A call's own limit is a plain FIFO at a known pace: a
	 * request that would wait past queue_timeout is told at once.
	 */
	if (gl != NULL) {
		lw = gov_lane_wait(gl, now);
		if (gl->gl_n >= gt->gt_queue_max ||
		    lw > (uint64_t)gt->gt_queue_timeout_ms * 1000) {
			req->req_retry_after = gov_seconds(lw);
			snprintf(why, whylen, "%zu requests already wait for "
			    "this call's own limit (limit = %s %s): %s",
			    gl->gl_n, glc->glc_glob, glc->glc_rate.gr_text,
			    gl->gl_n >= gt->gt_queue_max ? "queue_max reached" :
			    "the wait would pass queue_timeout");
			goto full;
		}
	}
	/* Past its call's limit it joins these: their bound too. */
	{
		ahead = tk->gk_xql ? gt->gt_xqln : gt->gt_mainn;
		if (ahead >= gt->gt_queue_max) {
			tk->gk_state = tk->gk_xql ? GK_XQL : GK_MAIN;
			req->req_retry_after = gov_retry_after(gt, tk, now);
			tk->gk_state = GK_NONE;
			snprintf(why, whylen, "the tenant's queue%s is full "
			    "(queue_max = %zu requests waiting)", tk->gk_xql ?
			    " for an XQL slot" : "", gt->gt_queue_max);
			goto full;
		}
	}
	tk->gk_queued_us = now;
	gt->gt_queued++;
	if (gl != NULL) {
		TAILQ_INSERT_TAIL(&gl->gl_queue, tk, gk_entry);
		gl->gl_n++;
		tk->gk_state = GK_LANE;
	} else
		gov_after_lane(gt, tk);
	pthread_mutex_unlock(&gov_mu);
	gov_wake();
	return GOV_QUEUED;
full:
	gt->gt_full++;
	tk->gk_tenant = NULL;
	pthread_mutex_unlock(&gov_mu);
	return GOV_FULL;
}

/* Take tk out of whichever queue holds it. Under the lock. */
static void
gov_unqueue(struct gov_tenant *gt, struct gov_ticket *tk)
{
	switch (tk->gk_state) {
	case GK_LANE:
		TAILQ_REMOVE(&tk->gk_lane->gl_queue, tk, gk_entry);
		tk->gk_lane->gl_n--;
		break;
	case GK_XQL:
		TAILQ_REMOVE(&gt->gt_xqlq, tk, gk_entry);
		gt->gt_xqln--;
		break;
	case GK_MAIN:
		gov_main_remove(gt, tk);
		break;
	default:
		return;
	}
	gt->gt_queued--;
	if (tk->gk_slot != NULL) {
		gov_slot_release(gt, tk->gk_slot);
		tk->gk_slot = NULL;
	}
	tk->gk_state = GK_NONE;
}

/*
 * queue_timeout passed (worker thread): 0 if req was still waiting and
 * is out of the queue now; -1 if it was granted meanwhile.
 */
int
governor_cancel(struct request *req)
{
	struct gov_ticket	*tk = &req->req_gov;
	struct gov_tenant	*gt = tk->gk_tenant;
	uint64_t		 now;
	int			 rc = -1;

	if (gt == NULL)
		return -1;
	pthread_mutex_lock(&gov_mu);
	if (tk->gk_state == GK_LANE || tk->gk_state == GK_XQL ||
	    tk->gk_state == GK_MAIN) {
		now = gov_now_us();
		req->req_retry_after = gov_retry_after(gt, tk, now);
		gov_unqueue(gt, tk);
		req->req_queued_us += now - tk->gk_queued_us;
		gt->gt_timedout++;
		rc = 0;
	}
	pthread_mutex_unlock(&gov_mu);
	if (rc == 0)
		gov_wake();	/* the rest of the queue may move */
	return rc;
}

/*
 * A start_xql_query's slot when its request (or attempt) ends without a
 * query id read from the answer. Nothing sent, or the tenant refused it
 * (not 2xx): the slot is free. Otherwise the tenant may well run the
 * query (the client left, the answer broke off or could not be read):
 * the slot stays taken, nameless, until xql_slot_timeout. Under the lock.
 */
static void
gov_slot_end(struct gov_tenant *gt, const struct request *req,
    struct gov_slot *gs, int held)
{
	int	 status = req->req_upstream_status;
	int	 sent = req->req_xfer.ux_sent || status != 0;

	/* held: this attempt was sent (its ticket taken), not a queued one. */
	if (!held || req->req_attempts == 0 || !sent ||
	    (status != 0 && (status < 200 || status > 299))) {
		gov_slot_release(gt, gs);
		return;
	}
	gs->gs_holder = NULL;
	gs->gs_expires_us = gov_now_us() +
	    (uint64_t)gt->gt_xql_timeout_ms * 1000;
	if (!gs->gs_remote)
		snprintf(gs->gs_id, sizeof(gs->gs_id), "(no id: request %s)",
		    req->req_id);
}

/*
 * The request, or this attempt of it, is over (worker thread): give back
 * what it holds and take it out of any queue or grant list.
 */
void
governor_done(struct request *req)
{
	struct gov_ticket	*tk = &req->req_gov;
	struct gov_tenant	*gt = tk->gk_tenant;
	int			 wake, held;

	if (gt == NULL)
		return;
	pthread_mutex_lock(&gov_mu);
	held = tk->gk_state == GK_HELD;
	if (tk->gk_state == GK_GRANTED)
		TAILQ_REMOVE(&req->req_worker->w_granted, tk, gk_entry);
	else
		gov_unqueue(gt, tk);
	if (tk->gk_inflight) {
		gt->gt_inflight--;
		tk->gk_inflight = 0;
	}
	if (tk->gk_slot != NULL) {
		gov_slot_end(gt, req, tk->gk_slot, held);
		tk->gk_slot = NULL;
	}
	tk->gk_state = GK_NONE;
	tk->gk_tenant = NULL;
	wake = gt->gt_queued > 0 || !TAILQ_EMPTY(&gov_ops);
	pthread_mutex_unlock(&gov_mu);
	if (wake)
		gov_wake();
}

/* WORKER_GRANTED (worker thread): send what the governor granted. */
void
governor_take(struct worker *w)
{
	struct gov_tickets	 list;
	struct gov_ticket	*tk;

	TAILQ_INIT(&list);
	pthread_mutex_lock(&gov_mu);
	while ((tk = TAILQ_FIRST(&w->w_granted)) != NULL) {
		TAILQ_REMOVE(&w->w_granted, tk, gk_entry);
		tk->gk_state = GK_HELD;
		tk->gk_req->req_queued_us += tk->gk_queued_us;
		TAILQ_INSERT_TAIL(&list, tk, gk_entry);
	}
	pthread_mutex_unlock(&gov_mu);
	while ((tk = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, tk, gk_entry);
		proxy_granted(tk->gk_req);
	}
}

/*
 * The tenant's status for one attempt (worker thread, may be inside a
 * libcurl callback: no more than the lock). A 429 means others use the
 * same budget: halve the rate (AIMD), at most once a second.
 */
void
governor_observe(struct request *req, int status)
{
	struct gov_tenant	*gt = req->req_tenant->tn_gov_state;
	uint64_t		 now, interval;

	if (gt == NULL || status != 429)
		return;
	pthread_mutex_lock(&gov_mu);
	now = gov_now_us();
	gt->gt_429++;
	if (gt->gt_interval_us > 0 && now > gt->gt_cut_us +
	    GOV_AIMD_CUT_GAP_US) {
		interval = gov_interval(gt, now);
		gt->gt_factor /= 2;
		if (gt->gt_factor < GOV_AIMD_FLOOR)
			gt->gt_factor = GOV_AIMD_FLOOR;
		gt->gt_cut_us = now;
		gt->gt_grow_us = now;
		/*
		 * The tenant has no budget left: no burst now. The next
		 * request waits a whole new interval (the burst's tolerance
		 * grew with it).
		 */
		interval = gov_interval(gt, now);
		if (gt->gt_tat_us < gov_add(now, gov_mul(interval,
		    (uint64_t)gt->gt_burst)))
			gt->gt_tat_us = gov_add(now, gov_mul(interval,
			    (uint64_t)gt->gt_burst));
		log_warnx("tenant %s: the tenant answered 429 (its budget is "
		    "used by others too); rate lowered to %.2f/s for a while",
		    gt->gt_name, gov_rate_per_s(gt->gt_interval_us) *
		    gt->gt_factor);
	}
	pthread_mutex_unlock(&gov_mu);
}

/*
 * May req be retried? The retry budget: retries at most 20% of the
 * requests of the last 10 s, and at least 3. Counts the retry if so.
 */
int
governor_retry_take(struct request *req)
{
	struct gov_tenant	*gt = req->req_tenant->tn_gov_state;
	uint64_t		 sec, reqs, retries, allowed;
	int			 ok;

	if (gt == NULL)
		return 1;
	pthread_mutex_lock(&gov_mu);
	sec = gov_now_us() / 1000000;
	reqs = gov_tally_sum(gt->gt_reqs, sec);
	retries = gov_tally_sum(gt->gt_retries, sec);
	allowed = (uint64_t)((double)reqs * GOV_RETRY_RATIO);
	if (allowed < GOV_RETRY_FLOOR)
		allowed = GOV_RETRY_FLOOR;
	if ((ok = retries < allowed)) {
		gov_tally_add(gt->gt_retries, sec);
		gt->gt_retried++;
	} else
		gt->gt_retry_denied++;
	pthread_mutex_unlock(&gov_mu);
	return ok;
}

/* start_xql_query answered a query id: the slot is that query's now. */
void
governor_xql_started(struct request *req, const char *id, size_t len)
{
	struct gov_ticket	*tk = &req->req_gov;
	struct gov_tenant	*gt = req->req_tenant->tn_gov_state;
	struct gov_slot		*gs;
	char			 idbuf[sizeof(gs->gs_id)];
	int			 ops;

	if (gt == NULL)
		return;
	pthread_mutex_lock(&gov_mu);
	if ((gs = tk->gk_slot) != NULL) {
		gs->gs_holder = NULL;
		gs->gs_expires_us = gov_now_us() +
		    (uint64_t)gt->gt_xql_timeout_ms * 1000;
		if (len >= sizeof(gs->gs_id))
			len = sizeof(gs->gs_id) - 1;
		memcpy(idbuf, id, len);
		idbuf[len] = '\0';
		if (gs->gs_remote) {
			gov_op_add(gt->gt_xql_key, gs->gs_id, idbuf,
			    (uint64_t)gt->gt_xql_timeout_ms * 1000);
		}
		memcpy(gs->gs_id, idbuf, len + 1);
		tk->gk_slot = NULL;
	}
	ops = !TAILQ_EMPTY(&gov_ops);
	pthread_mutex_unlock(&gov_mu);
	if (ops)
		gov_wake();
}

/* get_query_results reported a final status for query id: its slot frees. */
void
governor_xql_final(struct request *req, const char *id, size_t len)
{
	struct gov_tenant	*gt = req->req_tenant->tn_gov_state;
	struct gov_slot		*gs;
	char			 idbuf[128];
	int			 wake = 0;

	if (gt == NULL)
		return;
	pthread_mutex_lock(&gov_mu);
	TAILQ_FOREACH(gs, &gt->gt_slots, gs_entry) {
		if (gs->gs_holder == NULL && strlen(gs->gs_id) == len &&
		    memcmp(gs->gs_id, id, len) == 0) {
			gov_slot_release(gt, gs);
			break;
		}
	}
	/* Started through another instance of the fleet: Redis knows it. */
	if (gs == NULL && gov_backend && len < 128) {
		memcpy(idbuf, id, len);
		idbuf[len] = '\0';
		gov_op_add(gt->gt_xql_key, idbuf, NULL, 0);
		gt->gt_xql_remote_at = 0;
	}
	wake = gt->gt_queued > 0 || !TAILQ_EMPTY(&gov_ops);
	pthread_mutex_unlock(&gov_mu);
	if (wake)
		gov_wake();
}

/* ---- /metrics (main thread). ---- */

struct gov_snap {
	int		 gs_mslot;
	uint64_t	 gs_queued, gs_paced, gs_full, gs_timedout, gs_429;
	uint64_t	 gs_retried, gs_retry_denied;
	int		 gs_nslots;
	double		 gs_rate;
	uint64_t	 gs_wait[METRICS_NBUCKETS + 1], gs_wait_us;
};

void
governor_render(struct evbuffer *b)
{
	struct gov_snap		*sn;
	struct gov_tenant	*gt;
	uint64_t		 now;
	int			 n, t, i, backend, up;

	pthread_mutex_lock(&gov_mu);
	backend = gov_backend;
	up = gov_remote;
	n = gov_ntenants;
	if ((sn = calloc((size_t)(n > 0 ? n : 1), sizeof(*sn))) == NULL) {
		pthread_mutex_unlock(&gov_mu);
		return;
	}
	now = gov_now_us();
	for (t = 0; t < n; t++) {
		gt = gov_tenants[t];
		sn[t].gs_mslot = gt->gt_mslot;
		sn[t].gs_queued = gt->gt_queued;
		sn[t].gs_paced = gt->gt_paced;
		sn[t].gs_full = gt->gt_full;
		sn[t].gs_timedout = gt->gt_timedout;
		sn[t].gs_429 = gt->gt_429;
		sn[t].gs_retried = gt->gt_retried;
		sn[t].gs_retry_denied = gt->gt_retry_denied;
		sn[t].gs_nslots = gt->gt_nslots;
		sn[t].gs_rate = gt->gt_interval_us == 0 ? 0 :
		    gov_rate_per_s(gov_local(gov_interval(gt, now)));
		for (i = 0; i <= METRICS_NBUCKETS; i++)
			sn[t].gs_wait[i] = metrics_get(
			    &gt->gt_wait.mh_bucket[i]);
		sn[t].gs_wait_us = metrics_get(&gt->gt_wait.mh_sum_us);
	}
	pthread_mutex_unlock(&gov_mu);

#define GOV_FAMILY(name, type, help, fmt, expr) do {			\
	metrics_family(b, name, type, help);				\
	for (t = 0; t < n; t++) {					\
		if (sn[t].gs_mslot < 0)					\
			continue;					\
		metrics_tenant_sample(b, name, sn[t].gs_mslot, NULL);	\
		evbuffer_add_printf(b, fmt "\n", expr);			\
	}								\
} while (0)
	GOV_FAMILY("xdrproxy_queue_depth", "gauge", "Requests waiting in "
	    "the governor's queues for the tenant's budget.", "%" PRIu64,
	    sn[t].gs_queued);
	metrics_family(b, "xdrproxy_queue_wait_seconds", "histogram",
	    "How long requests that waited for the tenant's budget waited.");
	for (t = 0; t < n; t++)
		if (sn[t].gs_mslot >= 0)
			metrics_histogram(b, "xdrproxy_queue_wait_seconds",
			    sn[t].gs_mslot, sn[t].gs_wait, sn[t].gs_wait_us);
	GOV_FAMILY("xdrproxy_requests_paced_total", "counter", "Requests "
	    "that waited in the governor's queue and were then sent.",
	    "%" PRIu64, sn[t].gs_paced);
	metrics_family(b, "xdrproxy_requests_rate_limited_total", "counter",
	    "Requests xdrproxy answered 429 rate_limited itself: the queue "
	    "was full (queue_max), or the wait passed queue_timeout.");
	for (t = 0; t < n; t++) {
		if (sn[t].gs_mslot < 0)
			continue;
		metrics_tenant_sample(b, "xdrproxy_requests_rate_limited_total",
		    sn[t].gs_mslot, "reason=\"queue_full\"");
		evbuffer_add_printf(b, "%" PRIu64 "\n", sn[t].gs_full);
		metrics_tenant_sample(b, "xdrproxy_requests_rate_limited_total",
		    sn[t].gs_mslot, "reason=\"queue_timeout\"");
		evbuffer_add_printf(b, "%" PRIu64 "\n", sn[t].gs_timedout);
	}
	GOV_FAMILY("xdrproxy_tenant_429_total", "counter", "429 answers "
	    "from the tenant itself (its budget is shared with others).",
	    "%" PRIu64, sn[t].gs_429);
	GOV_FAMILY("xdrproxy_rate_limit_current", "gauge", "The rate the "
	    "governor paces the tenant at now, in requests per second (AIMD "
	    "lowers it after 429s from the tenant); 0: no rate_limit.",
	    "%.3f", sn[t].gs_rate);
	GOV_FAMILY("xdrproxy_xql_slots_in_use", "gauge", "XQL queries "
	    "started through xdrproxy and not yet finished.", "%d",
	    sn[t].gs_nslots);
	GOV_FAMILY("xdrproxy_retries_total", "counter", "Attempts sent "
	    "again to the tenant (fresh signature each).", "%" PRIu64,
	    sn[t].gs_retried);
	GOV_FAMILY("xdrproxy_retries_denied_total", "counter", "Retries not "
	    "made because the retry budget (20% of requests over 10 s) was "
	    "spent.", "%" PRIu64, sn[t].gs_retry_denied);
#undef GOV_FAMILY
	free(sn);
	if (backend) {
		metrics_family(b, "xdrproxy_rate_backend_up", "gauge", "1 if "
		    "the rate backend (Redis) is up and the fleet shares the "
		    "budget through it; 0 while each instance paces at its "
		    "local share (rate_limit / fleet_size).");
		evbuffer_add_printf(b, "xdrproxy_rate_backend_up %d\n", up);
	}
}
