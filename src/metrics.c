/*
 * metrics.c: what xdrproxy counts, and its Prometheus text exposition
 * (format 0.0.4) for GET /metrics (admin.c).
 *
 * Each worker has its own counters (struct metrics_worker), written by its
 * thread alone with metrics_add(): a relaxed load and store, so the request
 * path takes no lock and no locked instruction. The main thread sums them
 * over every worker when it renders a scrape. Counters are per tenant,
 * kept by tenant name in a registry of slots that only the main thread
 * changes (metrics_tenant_slot()): a configuration loaded later that names
 * a tenant again finds its slot, and its counts, again. A worker's block
 * for a slot is allocated by that worker on its first request there and
 * published with a release store; the registry never shrinks, so a slot's
 * number stays valid for the process's life.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "xdrproxy.h"

/* Histogram buckets, in us and as le="..." labels (seconds). */
static const uint64_t metrics_bounds_us[METRICS_NBUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000, 120000000
};
static const char *const metrics_bounds_le[METRICS_NBUCKETS] = {
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
	"0.5", "1", "2.5", "5", "10", "30", "60", "120"
};


/*
 * Requests by (status, outcome): a small table per tenant and worker,
 * found by a linear search (the first entries, 200 and ok, are the common
 * ones). A key, once set, never changes. Past METRICS_NCODES pairs, the
 * last four entries count per outcome with code="other".
 */
#define METRICS_NCODES		48
#define METRICS_CODE_OTHER	1000
#define METRICS_NOUTCOMES	4
#define METRICS_KEY(code, o)	((uint32_t)(((code) << 2 | (o)) + 1))

struct metrics_code {
	_Atomic uint32_t	 mc_key;	/* METRICS_KEY(); 0: free */
	_Atomic uint64_t	 mc_n;
};

/* One tenant's counters in one worker. */
struct metrics_tenant {
	_Atomic uint64_t	 mt_started;
	_Atomic uint64_t	 mt_done;	/* stored with release */
	_Atomic uint64_t	 mt_bytes_in;
	_Atomic uint64_t	 mt_bytes_out;
	_Atomic uint64_t	 mt_conns;
	_Atomic uint64_t	 mt_tls;
	_Atomic uint64_t	 mt_policy_denied;	/* policy.c's 403s */
	struct metrics_hist	 mt_duration;
	struct metrics_hist	 mt_upstream;
	struct metrics_code	 mt_codes[METRICS_NCODES];
};

struct metrics_worker {
	_Atomic(struct metrics_tenant *) mw_tenant[METRICS_MAX_TENANTS];
};

/* The rest is the main thread's alone. */
static char			*metrics_names[METRICS_MAX_TENANTS];
static int			 metrics_nnames;
static int			 metrics_full_warned;
static struct worker		**metrics_workers;
static size_t			 metrics_nworkers;
/* What workers that were removed had counted. */
static struct metrics_worker	 metrics_retired;
static uint64_t			 metrics_retired_refused;
static uint64_t			 metrics_retired_timeouts;
static uint64_t			 metrics_retired_malformed;
static uint64_t			 metrics_reloads_ok;
static uint64_t			 metrics_reloads_failed;
static uint64_t			 metrics_start_ms;
static uint64_t			 metrics_last_ok_ms;

static uint64_t
metrics_wall_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The slot of tenant name, added if new; -1 once METRICS_MAX_TENANTS
 * names are known. Main thread only, workers running or not: they read
 * the slot from struct tenant, never the registry.
 */
int
metrics_tenant_slot(const char *name)
{
	int	 i;

	for (i = 0; i < metrics_nnames; i++)
		if (strcmp(metrics_names[i], name) == 0)
			return i;
	if (metrics_nnames == METRICS_MAX_TENANTS ||
	    (metrics_names[metrics_nnames] = strdup(name)) == NULL)
		return -1;
	return metrics_nnames++;
}

/* Give every tenant of cf its slot (a configuration just loaded). */
void
metrics_register(struct config *cf)
{
	struct tenant	*tn;

	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		tn->tn_metrics_slot = metrics_tenant_slot(tn->tn_name);
		if (tn->tn_metrics_slot == -1 && !metrics_full_warned) {
			metrics_full_warned = 1;
			log_warnx("tenant %s: not counted in metrics: more "
			    "than %d tenant names since the start",
			    tn->tn_name, METRICS_MAX_TENANTS);
		}
	}
}

/*
 * At start, once the configuration is loaded: the start time, which is
 * also the time of the last successful load (the first load counts as
 * no reload), and the tenants' slots.
 */
int
metrics_init(struct config *cf)
{
	metrics_start_ms = metrics_wall_ms();
	metrics_last_ok_ms = metrics_start_ms;
	metrics_register(cf);
	return 0;
}

/* A reload was tried (main thread): ok, or refused and nothing changed. */
void
metrics_reload_result(int ok)
{
	if (ok) {
		metrics_reloads_ok++;
		metrics_last_ok_ms = metrics_wall_ms();
	} else
		metrics_reloads_failed++;
}

static struct metrics_tenant *
metrics_tenant_new(void)
{
	struct metrics_tenant	*mt;
	int			 o;

	if ((mt = calloc(1, sizeof(*mt))) == NULL)
		return NULL;
	for (o = 0; o < METRICS_NOUTCOMES; o++)
		atomic_init(&mt->mt_codes[METRICS_NCODES - METRICS_NOUTCOMES +
		    o].mc_key, METRICS_KEY(METRICS_CODE_OTHER, o));
	return mt;
}

/*
 * The block of req's tenant in its worker, allocated there on first use;
 * NULL if it cannot be (not counted). In the worker's thread.
 */
static struct metrics_tenant *
metrics_tenant_of(const struct request *req)
{
	struct metrics_worker	*mw = req->req_worker->w_metrics;
	struct metrics_tenant	*mt;
	int			 slot = req->req_tenant->tn_metrics_slot;

	if (mw == NULL || slot < 0 || slot >= METRICS_MAX_TENANTS)
		return NULL;
	/* Only this thread stores it: a relaxed load sees its own store. */
	mt = atomic_load_explicit(&mw->mw_tenant[slot], memory_order_relaxed);
	if (mt != NULL)
		return mt;
	if ((mt = metrics_tenant_new()) == NULL)
		return NULL;
	/* Published whole: the scraper loads it with acquire. */
	atomic_store_explicit(&mw->mw_tenant[slot], mt, memory_order_release);
	return mt;
}

static void	metrics_render_syslog(struct evbuffer *);

void
metrics_observe(struct metrics_hist *mh, uint64_t us)
{
	size_t	 i;

	for (i = 0; i < METRICS_NBUCKETS && us > metrics_bounds_us[i]; i++)
		;
	metrics_add(&mh->mh_bucket[i], 1);
	metrics_add(&mh->mh_sum_us, us);
}

/* Add n to the (code, outcome) pair key; by its single writer. */
static void
metrics_code_add(struct metrics_tenant *mt, uint32_t key, uint64_t n)
{
	struct metrics_code	*mc;
	uint32_t		 k;
	size_t			 i;

	for (i = 0; i < METRICS_NCODES - METRICS_NOUTCOMES; i++) {
		mc = &mt->mt_codes[i];
		k = atomic_load_explicit(&mc->mc_key, memory_order_relaxed);
		if (k == key)
			break;
		if (k == 0) {
			/* mc_n is 0; the key goes out after it. */
			atomic_store_explicit(&mc->mc_key, key,
			    memory_order_release);
			break;
		}
	}
	if (i == METRICS_NCODES - METRICS_NOUTCOMES)
		mc = &mt->mt_codes[i + ((key - 1) & 3)];
	metrics_add(&mc->mc_n, n);
}

/* A request came in (request_new()). */
void
metrics_request_start(struct request *req)
{
	struct metrics_tenant	*mt;

	if ((mt = metrics_tenant_of(req)) != NULL)
		metrics_add(&mt->mt_started, 1);
}

/* A request is over (request_close(), req_end_mono_us set). */
void
metrics_request_done(struct request *req)
{
	struct metrics_tenant	*mt;
	uint32_t		 code;

	if ((mt = metrics_tenant_of(req)) == NULL)
		return;
	code = req->req_status >= 0 && req->req_status < METRICS_CODE_OTHER ?
	    (uint32_t)req->req_status : METRICS_CODE_OTHER;
	metrics_code_add(mt, METRICS_KEY(code, (uint32_t)req->req_outcome &
	    3), 1);
	metrics_observe(&mt->mt_duration, req->req_end_mono_us -
	    req->req_start_mono_us);
	metrics_add(&mt->mt_bytes_in, req->req_bytes_in);
	metrics_add(&mt->mt_bytes_out, req->req_bytes_out);
	/* After the rest: a scraper that sees it done sees it started. */
	atomic_store_explicit(&mt->mt_done, atomic_load_explicit(&mt->mt_done,
	    memory_order_relaxed) + 1, memory_order_release);
}

/* The tenant's policy denied a request (policy.c). */
void
metrics_policy_denied(struct request *req)
{
	struct metrics_tenant	*mt;

	if ((mt = metrics_tenant_of(req)) != NULL)
		metrics_add(&mt->mt_policy_denied, 1);
}

/*
 * A transfer to the tenant ended, done or cancelled (upstream_detach()):
 * its time to the first byte if the tenant's status line came, new
 * connections and completed TLS handshakes. libcurl still holds the
 * transfer's figures.
 */
void
metrics_upstream_done(struct request *req, CURL *easy)
{
	struct metrics_tenant	*mt;
	curl_off_t		 t = 0;
	long			 n = 0;

	if ((mt = metrics_tenant_of(req)) == NULL)
		return;
	/* libcurl notes a closed connection's EOF as its first byte too. */
	if (req->req_upstream_status > 0 && curl_easy_getinfo(easy,
	    CURLINFO_STARTTRANSFER_TIME_T, &t) == CURLE_OK && t > 0)
		metrics_observe(&mt->mt_upstream, (uint64_t)t);
	if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &n) != CURLE_OK ||
	    n <= 0)
		return;
	metrics_add(&mt->mt_conns, (uint64_t)n);
	t = 0;
	if (curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &t) ==
	    CURLE_OK && t > 0)
		metrics_add(&mt->mt_tls, 1);
}

/* Count w's requests from now on (worker_init(), main thread). */
int
metrics_worker_add(struct worker *w)
{
	struct worker	**v;

	v = reallocarray(metrics_workers, metrics_nworkers + 1, sizeof(*v));
	if (v == NULL)
		return -1;
	metrics_workers = v;
	if ((w->w_metrics = calloc(1, sizeof(*w->w_metrics))) == NULL)
		return -1;
	metrics_workers[metrics_nworkers++] = w;
	return 0;
}

/* Fold src (no longer written) into dst; main thread. */
static void
metrics_tenant_fold(struct metrics_tenant *dst,
    const struct metrics_tenant *src)
{
	uint32_t	 key;
	size_t		 i;

	metrics_add(&dst->mt_started, metrics_get(&src->mt_started));
	metrics_add(&dst->mt_done, metrics_get(&src->mt_done));
	metrics_add(&dst->mt_bytes_in, metrics_get(&src->mt_bytes_in));
	metrics_add(&dst->mt_bytes_out, metrics_get(&src->mt_bytes_out));
	metrics_add(&dst->mt_conns, metrics_get(&src->mt_conns));
	metrics_add(&dst->mt_tls, metrics_get(&src->mt_tls));
	metrics_add(&dst->mt_policy_denied,
	    metrics_get(&src->mt_policy_denied));
	for (i = 0; i <= METRICS_NBUCKETS; i++) {
		metrics_add(&dst->mt_duration.mh_bucket[i],
		    metrics_get(&src->mt_duration.mh_bucket[i]));
		metrics_add(&dst->mt_upstream.mh_bucket[i],
		    metrics_get(&src->mt_upstream.mh_bucket[i]));
	}
	metrics_add(&dst->mt_duration.mh_sum_us,
	    metrics_get(&src->mt_duration.mh_sum_us));
	metrics_add(&dst->mt_upstream.mh_sum_us,
	    metrics_get(&src->mt_upstream.mh_sum_us));
	for (i = 0; i < METRICS_NCODES; i++) {
		key = atomic_load_explicit(&src->mt_codes[i].mc_key,
		    memory_order_relaxed);
		if (key != 0 && metrics_get(&src->mt_codes[i].mc_n) > 0)
			metrics_code_add(dst, key,
			    metrics_get(&src->mt_codes[i].mc_n));
	}
}

/*
 * The worker is going away, its thread ended (worker_free()): what it
 * counted stays in the totals, so counters never go down.
 */
void
metrics_worker_remove(struct worker *w)
{
	struct metrics_tenant	*mt, *rt;
	size_t			 i;
	int			 s;

	if (w->w_metrics == NULL)
		return;
	for (s = 0; s < METRICS_MAX_TENANTS; s++) {
		mt = atomic_load_explicit(&w->w_metrics->mw_tenant[s],
		    memory_order_acquire);
		if (mt == NULL)
			continue;
		rt = atomic_load_explicit(&metrics_retired.mw_tenant[s],
		    memory_order_relaxed);
		if (rt == NULL && (rt = metrics_tenant_new()) != NULL)
			atomic_store_explicit(&metrics_retired.mw_tenant[s], rt,
			    memory_order_relaxed);
		if (rt != NULL)
			metrics_tenant_fold(rt, mt);
		free(mt);
	}
	metrics_retired_refused += metrics_get(&w->w_clients_refused);
	metrics_retired_timeouts += metrics_get(&w->w_header_timeouts);
	metrics_retired_malformed += metrics_get(&w->w_libevent_answers);
	free(w->w_metrics);
	w->w_metrics = NULL;
	for (i = 0; i < metrics_nworkers; i++) {
		if (metrics_workers[i] != w)
			continue;
		memmove(&metrics_workers[i], &metrics_workers[i + 1],
		    (metrics_nworkers - i - 1) * sizeof(*metrics_workers));
		metrics_nworkers--;
		break;
	}
}

void
metrics_free(void)
{
	struct metrics_tenant	*mt;
	int			 s;

	for (s = 0; s < METRICS_MAX_TENANTS; s++) {
		mt = atomic_load_explicit(&metrics_retired.mw_tenant[s],
		    memory_order_relaxed);
		free(mt);
		atomic_store_explicit(&metrics_retired.mw_tenant[s], NULL,
		    memory_order_relaxed);
	}
	for (s = 0; s < metrics_nnames; s++)
		free(metrics_names[s]);
	metrics_nnames = 0;
	free(metrics_workers);
	metrics_workers = NULL;
	metrics_nworkers = 0;
}

/* ---- Rendering, in the main thread: sums over the workers. ---- */

/* One tenant's sums. */
struct metrics_sum {
	uint64_t	 ms_started, ms_done, ms_bytes_in, ms_bytes_out;
	uint64_t	 ms_conns, ms_tls, ms_policy_denied;
	uint64_t	 ms_duration[METRICS_NBUCKETS + 1], ms_duration_us;
	uint64_t	 ms_upstream[METRICS_NBUCKETS + 1], ms_upstream_us;
};

static void
metrics_sum_block(struct metrics_sum *sum, const struct metrics_tenant *mt)
{
	uint64_t	 done;
	size_t		 i;

	/* Done first (acquire): the started it counts are seen too. */
	done = atomic_load_explicit(&mt->mt_done, memory_order_acquire);
	sum->ms_done += done;
	sum->ms_started += metrics_get(&mt->mt_started);
	sum->ms_bytes_in += metrics_get(&mt->mt_bytes_in);
	sum->ms_bytes_out += metrics_get(&mt->mt_bytes_out);
	sum->ms_conns += metrics_get(&mt->mt_conns);
	sum->ms_tls += metrics_get(&mt->mt_tls);
	sum->ms_policy_denied += metrics_get(&mt->mt_policy_denied);
	for (i = 0; i <= METRICS_NBUCKETS; i++) {
		sum->ms_duration[i] +=
		    metrics_get(&mt->mt_duration.mh_bucket[i]);
		sum->ms_upstream[i] +=
		    metrics_get(&mt->mt_upstream.mh_bucket[i]);
	}
	sum->ms_duration_us += metrics_get(&mt->mt_duration.mh_sum_us);
	sum->ms_upstream_us += metrics_get(&mt->mt_upstream.mh_sum_us);
}

/* Call fn for slot s's block in every worker and in the retired totals. */
static void
metrics_blocks(int s, void (*fn)(void *, const struct metrics_tenant *),
    void *arg)
{
	const struct metrics_tenant	*mt;
	size_t				 i;

	for (i = 0; i <= metrics_nworkers; i++) {
		mt = atomic_load_explicit(i < metrics_nworkers ?
		    &metrics_workers[i]->w_metrics->mw_tenant[s] :
		    &metrics_retired.mw_tenant[s], memory_order_acquire);
		if (mt != NULL)
			fn(arg, mt);
	}
}

static void
metrics_sum_cb(void *arg, const struct metrics_tenant *mt)
{
	metrics_sum_block(arg, mt);
}

/* The (code, outcome) pairs of one tenant, summed. */
struct metrics_codes {
	struct {
		uint32_t	 key;
		uint64_t	 n;
	}		*mcs_v;
	size_t		 mcs_n, mcs_max;
};

static void
metrics_codes_cb(void *arg, const struct metrics_tenant *mt)
{
	struct metrics_codes	*mcs = arg;
	uint32_t		 key;
	uint64_t		 n;
	size_t			 i, j;

	for (i = 0; i < METRICS_NCODES; i++) {
		key = atomic_load_explicit(&mt->mt_codes[i].mc_key,
		    memory_order_acquire);
		if (key == 0 || (n = metrics_get(&mt->mt_codes[i].mc_n)) == 0)
			continue;
		for (j = 0; j < mcs->mcs_n; j++)
			if (mcs->mcs_v[j].key == key)
				break;
		if (j == mcs->mcs_n) {
			if (mcs->mcs_n == mcs->mcs_max)
				continue;
			mcs->mcs_v[mcs->mcs_n].key = key;
			mcs->mcs_v[mcs->mcs_n++].n = 0;
		}
		mcs->mcs_v[j].n += n;
	}
}

static int
metrics_key_cmp(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * A label value, escaped as the text format wants: backslash, double
 * quote and newline.
 */
void
metrics_label_value(struct evbuffer *b, const char *s)
{
	size_t	 n;

	while (*s != '\0') {
		n = strcspn(s, "\\\"\n");
		evbuffer_add(b, s, n);
		s += n;
		if (*s == '\0')
			break;
		evbuffer_add(b, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" :
		    "\\n", 2);
		s++;
	}
}

void
metrics_family(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* name{tenant="..."[,extra]} */
void
metrics_tenant_sample(struct evbuffer *b, const char *name, int s,
    const char *extra)
{
	evbuffer_add_printf(b, "%s{tenant=\"", name);
	metrics_label_value(b, metrics_names[s]);
	evbuffer_add_printf(b, "\"%s%s} ", extra != NULL ? "," : "",
	    extra != NULL ? extra : "");
}

/* us as seconds, exactly: "12.000345". */
static void
metrics_add_seconds(struct evbuffer *b, uint64_t us)
{
	evbuffer_add_printf(b, "%" PRIu64 ".%06" PRIu64 "\n", us / 1000000,
	    us % 1000000);
}

void
metrics_histogram(struct evbuffer *b, const char *name, int s,
    const uint64_t *bucket, uint64_t sum_us)
{
	char		 le[32], full[128];
	uint64_t	 cum = 0;
	size_t		 i;

	snprintf(full, sizeof(full), "%s_bucket", name);
	for (i = 0; i <= METRICS_NBUCKETS; i++) {
		cum += bucket[i];
		snprintf(le, sizeof(le), "le=\"%s\"", i < METRICS_NBUCKETS ?
		    metrics_bounds_le[i] : "+Inf");
		metrics_tenant_sample(b, full, s, le);
		evbuffer_add_printf(b, "%" PRIu64 "\n", cum);
	}
	snprintf(full, sizeof(full), "%s_sum", name);
	metrics_tenant_sample(b, full, s, NULL);
	metrics_add_seconds(b, sum_us);
	snprintf(full, sizeof(full), "%s_count", name);
	metrics_tenant_sample(b, full, s, NULL);
	/* The +Inf bucket's: consistent with the buckets read. */
	evbuffer_add_printf(b, "%" PRIu64 "\n", cum);
}

/*
 * HOOK for the clock skew measurement (issue 7, section 3), which lives
 * in struct tenant. Not there yet: until it is, no tenant has a known
 * skew and xdrproxy_tenant_clock_skew_seconds has no samples. Connect it
 * as "return clock_skew_get(tn, ms);". Returns 0 with the skew in ms
 * (tenant's clock minus ours), or -1 when none is known. Main thread, at
 * scrape time.
 */
static int
metrics_clock_skew(const struct tenant *tn, int64_t *ms)
{
	return clock_skew_get(tn, ms);
}

static void
metrics_render_info(struct evbuffer *b)
{
	const curl_version_info_data	*cv;

	cv = curl_version_info(CURLVERSION_NOW);
	metrics_family(b, "xdrproxy_build_info", "gauge", "Versions of "
	    "xdrproxy and the libraries it runs with; always 1.");
	evbuffer_add_printf(b, "xdrproxy_build_info{version=\"");
	metrics_label_value(b, PACKAGE_VERSION);
	evbuffer_add_printf(b, "\",libcurl=\"");
	metrics_label_value(b, cv->version);
	evbuffer_add_printf(b, "\",openssl=\"");
	metrics_label_value(b, OpenSSL_version(OPENSSL_VERSION_STRING));
	evbuffer_add_printf(b, "\",libevent=\"");
	metrics_label_value(b, event_get_version());
	evbuffer_add_printf(b, "\"} 1\n");

	metrics_family(b, "process_start_time_seconds", "gauge", "When "
	    "xdrproxy started, in seconds since the epoch.");
	evbuffer_add_printf(b, "process_start_time_seconds %" PRIu64 ".%03"
	    PRIu64 "\n", metrics_start_ms / 1000, metrics_start_ms % 1000);
	metrics_family(b, "xdrproxy_config_reloads_total", "counter",
	    "Configuration reloads, by result; the load at start is not "
	    "one.");
	evbuffer_add_printf(b, "xdrproxy_config_reloads_total{result="
	    "\"success\"} %" PRIu64 "\n", metrics_reloads_ok);
	evbuffer_add_printf(b, "xdrproxy_config_reloads_total{result="
	    "\"failure\"} %" PRIu64 "\n", metrics_reloads_failed);
	metrics_family(b, "xdrproxy_config_last_reload_success_timestamp_"
	    "seconds", "gauge", "When the configuration in force was loaded "
	    "(at start, or by the last successful reload), in seconds since "
	    "the epoch.");
	evbuffer_add_printf(b, "xdrproxy_config_last_reload_success_timestamp_"
	    "seconds %" PRIu64 ".%03" PRIu64 "\n", metrics_last_ok_ms / 1000,
	    metrics_last_ok_ms % 1000);
}

static void
metrics_render_requests(struct evbuffer *b)
{
	struct metrics_codes	 mcs;
	char			 extra[96];
	uint32_t		 code;
	size_t			 i;
	int			 s;

	metrics_family(b, "xdrproxy_requests_total", "counter", "Requests "
	    "answered (audited), by tenant, the status the client got and "
	    "the audit record's outcome.");
	mcs.mcs_max = (metrics_nworkers + 1) * METRICS_NCODES;
	if ((mcs.mcs_v = calloc(mcs.mcs_max, sizeof(*mcs.mcs_v))) == NULL)
		return;
	for (s = 0; s < metrics_nnames; s++) {
		mcs.mcs_n = 0;
		metrics_blocks(s, metrics_codes_cb, &mcs);
		/* key first in each element: sorted by code, then outcome. */
		qsort(mcs.mcs_v, mcs.mcs_n, sizeof(*mcs.mcs_v),
		    metrics_key_cmp);
		for (i = 0; i < mcs.mcs_n; i++) {
			code = (mcs.mcs_v[i].key - 1) >> 2;
			if (code == METRICS_CODE_OTHER)
				snprintf(extra, sizeof(extra),
				    "code=\"other\"");
			else
				snprintf(extra, sizeof(extra), "code=\"%u\"",
				    code);
			snprintf(extra + strlen(extra), sizeof(extra) -
			    strlen(extra), ",outcome=\"%s\"",
			    audit_outcome_name((enum outcome)
			    ((mcs.mcs_v[i].key - 1) & 3)));
			metrics_tenant_sample(b, "xdrproxy_requests_total", s,
			    extra);
			evbuffer_add_printf(b, "%" PRIu64 "\n",
			    mcs.mcs_v[i].n);
		}
	}
	free(mcs.mcs_v);
}

static void
metrics_render_tenants(struct evbuffer *b)
{
	struct metrics_sum	*sums;
	int			 s;

	if ((sums = calloc((size_t)(metrics_nnames > 0 ? metrics_nnames : 1),
	    sizeof(*sums))) == NULL)
		return;
	for (s = 0; s < metrics_nnames; s++)
		metrics_blocks(s, metrics_sum_cb, &sums[s]);

	metrics_family(b, "xdrproxy_request_duration_seconds", "histogram",
	    "Time from a request's arrival to the end of its answer.");
	for (s = 0; s < metrics_nnames; s++)
		metrics_histogram(b, "xdrproxy_request_duration_seconds", s,
		    sums[s].ms_duration, sums[s].ms_duration_us);
	metrics_family(b, "xdrproxy_upstream_duration_seconds", "histogram",
	    "Time from the start of a transfer to the tenant (waiting for a "
	    "free connection included) to its first response byte; only "
	    "transfers that got a status line are observed.");
	for (s = 0; s < metrics_nnames; s++)
		metrics_histogram(b, "xdrproxy_upstream_duration_seconds", s,
		    sums[s].ms_upstream, sums[s].ms_upstream_us);
	metrics_family(b, "xdrproxy_requests_in_flight", "gauge", "Requests "
	    "received and not yet answered and audited.");
	for (s = 0; s < metrics_nnames; s++) {
		metrics_tenant_sample(b, "xdrproxy_requests_in_flight", s,
		    NULL);
		evbuffer_add_printf(b, "%" PRIu64 "\n", sums[s].ms_started >
		    sums[s].ms_done ? sums[s].ms_started - sums[s].ms_done : 0);
	}
#define METRICS_TENANT_COUNTER(name, help, field) do {			\
	metrics_family(b, name, "counter", help);			\
	for (s = 0; s < metrics_nnames; s++) {				\
		metrics_tenant_sample(b, name, s, NULL);		\
		evbuffer_add_printf(b, "%" PRIu64 "\n", sums[s].field);	\
	}								\
} while (0)
	METRICS_TENANT_COUNTER("xdrproxy_upstream_connections_opened_total",
	    "New connections to the tenant.", ms_conns);
	METRICS_TENANT_COUNTER("xdrproxy_upstream_tls_handshakes_total",
	    "TLS handshakes completed with the tenant (full or resumed), one "
	    "per new connection.", ms_tls);
	METRICS_TENANT_COUNTER("xdrproxy_bytes_received_total",
	    "Request body bytes received from clients.", ms_bytes_in);
	METRICS_TENANT_COUNTER("xdrproxy_bytes_sent_total",
	    "Response body bytes sent to clients (the tenant's, or "
	    "xdrproxy's error bodies).", ms_bytes_out);
	METRICS_TENANT_COUNTER("xdrproxy_policy_denied_total",
	    "Requests the tenant's allow/deny rules denied (403 "
	    "policy_denied).", ms_policy_denied);
#undef METRICS_TENANT_COUNTER
	free(sums);
}

static void
metrics_render_skew(struct evbuffer *b, const struct config *cf)
{
	const struct tenant	*tn;
	int64_t			 ms;
	uint64_t		 a;

	metrics_family(b, "xdrproxy_tenant_clock_skew_seconds", "gauge",
	    "The tenant's clock minus xdrproxy's, from its last Date header; "
	    "no sample while unknown.");
	if (cf == NULL)
		return;
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		if (tn->tn_metrics_slot < 0 ||
		    metrics_clock_skew(tn, &ms) == -1)
			continue;
		metrics_tenant_sample(b, "xdrproxy_tenant_clock_skew_seconds",
		    tn->tn_metrics_slot, NULL);
		a = ms < 0 ? (uint64_t)-(ms + 1) + 1 : (uint64_t)ms;
		evbuffer_add_printf(b, "%s%" PRIu64 ".%03" PRIu64 "\n", ms < 0 ?
		    "-" : "", a / 1000, a % 1000);
	}
}

/* key_expires (or the store's expiry), for tenants that have one. */
static void
metrics_render_key_expiry(struct evbuffer *b, const struct config *cf)
{
	const struct tenant	*tn;

	metrics_family(b, "xdrproxy_key_expiry_timestamp_seconds", "gauge",
	    "When the tenant's API key expires (the start of its key_expires "
	    "day, UTC); no sample for a key without an expiry.");
	if (cf == NULL)
		return;
	TAILQ_FOREACH(tn, &cf->cf_tenants, tn_entry) {
		if (tn->tn_metrics_slot < 0 || tn->tn_key_expires == 0)
			continue;
		metrics_tenant_sample(b,
		    "xdrproxy_key_expiry_timestamp_seconds",
		    tn->tn_metrics_slot, NULL);
		evbuffer_add_printf(b, "%" PRId64 "\n", tn->tn_key_expires);
	}
}

static void
metrics_render_worker_counters(struct evbuffer *b)
{
	uint64_t	 refused = metrics_retired_refused;
	uint64_t	 timeouts = metrics_retired_timeouts;
	uint64_t	 malformed = metrics_retired_malformed;
	size_t		 i;

	for (i = 0; i < metrics_nworkers; i++) {
		refused += metrics_get(&metrics_workers[i]->w_clients_refused);
		timeouts += metrics_get(&metrics_workers[i]->w_header_timeouts);
		malformed += metrics_get(
		    &metrics_workers[i]->w_libevent_answers);
	}
	metrics_family(b, "xdrproxy_client_connections", "gauge", "Client "
	    "connections open now, over all workers.");
	evbuffer_add_printf(b, "xdrproxy_client_connections %ld\n",
	    server_clients());
	metrics_family(b, "xdrproxy_client_connections_refused_total",
	    "counter", "Client connections closed at once: max_clients "
	    "were open.");
	evbuffer_add_printf(b, "xdrproxy_client_connections_refused_total %"
	    PRIu64 "\n", refused);
	metrics_family(b, "xdrproxy_client_header_timeouts_total", "counter",
	    "Client connections closed because a request head did not "
	    "arrive within client_header_timeout.");
	evbuffer_add_printf(b, "xdrproxy_client_header_timeouts_total %"
	    PRIu64 "\n", timeouts);
	metrics_family(b, "xdrproxy_malformed_requests_total", "counter",
	    "Requests refused before they were parsed whole (libevent's own "
	    "answers, rewritten); not in xdrproxy_requests_total.");
	evbuffer_add_printf(b, "xdrproxy_malformed_requests_total %" PRIu64
	    "\n", malformed);
	metrics_family(b, "xdrproxy_audit_write_errors_total", "counter",
	    "Audit records that could not be written.");
	evbuffer_add_printf(b, "xdrproxy_audit_write_errors_total %" PRIu64
	    "\n", audit_write_errors());
	metrics_family(b, "xdrproxy_audit_unavailable_total", "counter",
	    "Requests refused (503 audit_unavailable, not forwarded) because "
	    "their request record could not be written (audit_fail = "
	    "closed).");
	evbuffer_add_printf(b, "xdrproxy_audit_unavailable_total %" PRIu64
	    "\n", audit_unavailable_total());
	metrics_render_syslog(b);
}

/* The syslog audit sinks (sink.c), one series each, by spec. */
static void
metrics_render_syslog(struct evbuffer *b)
{
	static const char *const fam[3][3] = {
		{ "xdrproxy_audit_syslog_dropped_total", "counter",
		    "Audit messages a syslog sink dropped (queue full, too "
		    "big for a datagram)." },
		{ "xdrproxy_audit_syslog_queue", "gauge",
		    "Audit messages queued for a syslog sink, not yet sent." },
		{ "xdrproxy_audit_syslog_up", "gauge",
		    "1 if the syslog sink is connected (usable), else 0." }
	};
	struct sink_stat	 st;
	size_t			 i;
	int			 f;

	if (sink_count() == 0)
		return;
	for (f = 0; f < 3; f++) {
		metrics_family(b, fam[f][0], fam[f][1], fam[f][2]);
		for (i = 0; sink_stat(i, &st) == 0; i++)
			evbuffer_add_printf(b, "%s{sink=\"%s\"} %" PRIu64 "\n",
			    fam[f][0], st.ss_spec, f == 0 ? st.ss_dropped :
			    f == 1 ? (uint64_t)st.ss_queued :
			    (uint64_t)st.ss_up);
	}
}

/*
 * The whole exposition, appended to b. cf is the configuration in force
 * (for what lives in struct tenant), or NULL.
 */
void
metrics_render(struct evbuffer *b, const struct config *cf)
{
	metrics_render_info(b);
	metrics_render_requests(b);
	metrics_render_tenants(b);
	metrics_render_skew(b, cf);
	metrics_render_key_expiry(b, cf);
	metrics_render_worker_counters(b);
	governor_render(b);
}
