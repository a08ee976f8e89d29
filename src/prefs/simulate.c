/*
 * simulate.c - simulated users for the preference learner: hidden
 * preference vectors over the measured dimensions, candidate responses
 * built from templates (so their measured features differ), and noisy
 * Bradley–Terry choices, written as DESIGN §4.3 JSONL (docs/prefs.md).
 */
#include "prefs/prefs_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pwb_prefs_sim_params pwb_prefs_sim_default_params(void)
{
	pwb_prefs_sim_params p = {0};
	p.users = 100;
	p.events = 40;
	p.seed = 1;
	p.spread = 1.0;
	p.gain = 4.0;
	p.rating_fraction = 0.2;
	p.cohort_spread = 1.0;
	return p;
}

/* ---- random numbers: splitmix64, reproducible everywhere ---- */

static double unif(uint64_t *s)
{
	return (double)(pwb__rng_next(s) >> 11) * 0x1.0p-53;
}

static size_t pick(uint64_t *s, size_t n)
{
	return (size_t)(unif(s) * (double)n);
}

static double gauss(uint64_t *s)
{
	double u = unif(s), v = unif(s);
	if (u < 1e-300)
		u = 1e-300;
	return sqrt(-2 * log(u)) * cos(2 * 3.14159265358979323846 * v);
}

/* ---- hidden preferences ----
 *
 * The population's mean taste (most people like answers of some length,
 * few emoji, little hedging), and each user's deviation from it:
 * theta_k = mean_k + spread * N(0, 1) on the dimensions the templates
 * vary.
 */

static const double pop_mean[PWB_PREFS_N_DIMS] = {
    [PWB_PREFS_VERBOSITY] = 0.5,  [PWB_PREFS_FORMALITY] = 0.3,
    [PWB_PREFS_HUMOUR] = -0.2,	  [PWB_PREFS_WARMTH] = 0.3,
    [PWB_PREFS_DIRECTNESS] = 0.2, [PWB_PREFS_EMOJI] = -0.5,
    [PWB_PREFS_LISTS] = 0.2,	  [PWB_PREFS_QUESTIONS] = -0.1,
    [PWB_PREFS_HEDGING] = -0.3,	  [PWB_PREFS_EXCLAMATION] = -0.2,
    [PWB_PREFS_MARKDOWN] = 0.1,
};

void pwb_prefs_sim_user(const pwb_prefs_sim_params *p, size_t u,
			double theta[PWB_PREFS_N_DIMS])
{
	uint64_t s =
	    p->seed * 0x2545f4914f6cdd1dULL + u * 0x9e3779b97f4a7c15ULL;
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++) {
		double g = gauss(&s);
		theta[k] = k == PWB_PREFS_READING_LEVEL
			       ? 0
			       : pop_mean[k] + p->spread * g;
	}
	if (!p->cohorts)
		return;
	/* The cohort's own offset, from a stream of its own, so that the
	 * users' draws are those of a run without cohorts. */
	uint64_t c = (uint64_t)(u % p->cohorts);
	uint64_t sc =
	    p->seed * 0x9fb21c651e98df25ULL + (c + 1) * 0xc2b2ae3d27d4eb4fULL;
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++) {
		double g = gauss(&sc);
		if (k != PWB_PREFS_READING_LEVEL)
			theta[k] += p->cohort_spread * g;
	}
}

/* ---- responses from templates ---- */

static const char *const topics[] = {
    "tea",  "the moon", "bicycles", "sourdough",   "volcanoes", "chess",
    "bees", "rainbows", "compost",  "lighthouses", "glaciers",	"origami",
};

static const char *const facts[] = {
    "%s has a long history that many people find interesting",
    "experts agree that %s rewards patience and practice",
    "the basics of %s can be learned in an afternoon",
    "there are several common mistakes people make with %s",
    "a good book about %s is a fine place to start",
    "local clubs often welcome beginners who are curious about %s",
    "the science behind %s is surprisingly elegant",
    "many families have their own traditions around %s",
};

static const char *const open_formal[] = {
    "Thank you for your question regarding %s.",
    "Regarding %s, please consider the following.",
};
static const char *const open_casual[] = {
    "Hey, so %s is cool stuff.",
    "Okay, %s, yeah, let's go.",
};
static const char *const open_warm[] = {
    "I'm so glad you asked about %s, I hope this helps!",
    "What a lovely thing to wonder about: %s. Happy to help.",
};

typedef struct style {
	int sentences; /* 1 to 6 */
	bool formal, casual, warm, humour, hedge, direct, emoji, list, question,
	    exclaim, markdown;
} style;

static void random_style(style *st, uint64_t *s)
{
	st->sentences = 1 + (int)pick(s, 6);
	st->formal = unif(s) < 0.35;
	st->casual = !st->formal && unif(s) < 0.5;
	st->warm = unif(s) < 0.35;
	st->humour = unif(s) < 0.25;
	st->hedge = unif(s) < 0.35;
	st->direct = !st->hedge && unif(s) < 0.4;
	st->emoji = unif(s) < 0.3;
	st->list = st->sentences > 2 && unif(s) < 0.35;
	st->question = unif(s) < 0.3;
	st->exclaim = unif(s) < 0.25;
	st->markdown = unif(s) < 0.2;
}

static void build(pwb__buf *b, const style *st, const char *topic, uint64_t *s)
{
	if (st->markdown)
		pwb__buf_adds(b, "**Answer:** ");
	if (st->formal)
		pwb__buf_addf(b, open_formal[pick(s, 2)], topic);
	else if (st->casual)
		pwb__buf_addf(b, open_casual[pick(s, 2)], topic);
	else if (st->warm)
		pwb__buf_addf(b, open_warm[pick(s, 2)], topic);
	else
		pwb__buf_addf(b, "About %s.", topic);
	if (st->warm && (st->formal || st->casual))
		pwb__buf_adds(b, " I hope you enjoy it.");
	if (st->humour)
		pwb__buf_adds(b, " Haha, no joke, it is a funny subject.");
	size_t first = pick(s, PWB_ARRAY_LEN(facts));
	for (int k = 0; k < st->sentences; k++) {
		pwb__buf_adds(b, st->list ? "\n- " : " ");
		const char *lead = "";
		if (st->hedge)
			lead = k % 2 ? "Perhaps " : "It seems that maybe ";
		else if (st->direct)
			lead = k % 2 ? "Clearly, " : "Definitely: ";
		else if (st->formal && k)
			lead = k % 2 ? "Furthermore, " : "Moreover, ";
		else if (st->casual && k)
			lead = "Also, ";
		pwb__buf_adds(b, lead);
		char sent[256];
		snprintf(sent, sizeof(sent),
			 facts[(first + (size_t)k) % PWB_ARRAY_LEN(facts)],
			 topic);
		if (!*lead && sent[0] >= 'a' && sent[0] <= 'z')
			sent[0] = (char)(sent[0] - 32);
		pwb__buf_adds(b, sent);
		pwb__buf_adds(b, st->exclaim && k == 0 ? "!" : ".");
		if (st->emoji && k == 0)
			pwb__buf_adds(b, " \xf0\x9f\x98\x8a"); /* U+1F60A */
	}
	if (st->emoji)
		pwb__buf_adds(b, " \xf0\x9f\x91\x8d"); /* U+1F44D */
	if (st->question)
		pwb__buf_adds(b, st->formal ? "\nMay I assist with anything "
					      "further?"
					    : "\nDoes that help? Any other "
					      "questions?");
}

/* ---- events ---- */

#define PWB__SIM_EPOCH 1767225600 /* 2026-01-01T00:00:00Z */

static double utility(const double *theta, const float *dims)
{
	double u = 0;
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++)
		u += theta[k] * dims[k];
	return u;
}

static pwb_status
emit_json(json_t *o, int (*emit)(void *ctx, const char *line, size_t len),
	  void *ctx)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return PWB_ENOMEM;
	int r = emit(ctx, s, strlen(s));
	free(s);
	return r ? PWB_EIO : PWB_OK;
}

pwb_status pwb_prefs_simulate(const pwb_prefs_sim_params *params,
			      int (*emit)(void *ctx, const char *line,
					  size_t len),
			      void *ctx, pwb_diag *diag)
{
	pwb_prefs_sim_params p =
	    params ? *params : pwb_prefs_sim_default_params();
	if (!emit || p.users < 1 || p.users > 10000000 || p.events < 1 ||
	    p.events > 100000 || !(p.spread >= 0) || !isfinite(p.spread) ||
	    !(p.gain > 0) || !isfinite(p.gain) ||
	    !(p.rating_fraction >= 0 && p.rating_fraction <= 1) ||
	    p.cohorts > 1000000 || !(p.cohort_spread >= 0) ||
	    !isfinite(p.cohort_spread)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "simulation parameters out of range");
		return PWB_EINVAL;
	}
	pwb__buf a, b;
	pwb__buf_init(&a, 1 << 16);
	pwb__buf_init(&b, 1 << 16);
	pwb_status st = PWB_OK;
	/* Unix seconds from 2026-01-01T00:00:00Z, one event a minute: real
	 * times, so that stores apply their retention to simulated feedback
	 * as to any other. */
	int64_t ts = PWB__SIM_EPOCH;
	double theta[PWB_PREFS_N_DIMS];
	/* Users take turns, so that time interleaves them as in a real log. */
	for (size_t e = 0; e < p.events && !st; e++) {
		for (size_t u = 0; u < p.users && !st; u++) {
			pwb_prefs_sim_user(&p, u, theta);
			uint64_t s = p.seed ^ (u * 0xd1b54a32d192ed03ULL) ^
				     (e * 0x8cb92ba72f3d8dd7ULL);
			pwb__rng_next(&s);
			const char *topic =
			    topics[pick(&s, PWB_ARRAY_LEN(topics))];
			char uid[32], prompt[128];
			snprintf(uid, sizeof(uid), "u%05zu", u);
			snprintf(prompt, sizeof(prompt), "Tell me about %s.",
				 topic);
			bool rating = unif(&s) < p.rating_fraction;
			style sa, sb;
			float da[PWB_PREFS_N_DIMS], db[PWB_PREFS_N_DIMS];
			int tries = 0;
			do {
				pwb__buf_release(&a);
				pwb__buf_release(&b);
				pwb__buf_init(&a, 1 << 16);
				pwb__buf_init(&b, 1 << 16);
				random_style(&sa, &s);
				random_style(&sb, &s);
				build(&a, &sa, topic, &s);
				build(&b, &sb, topic, &s);
			} while (!a.err && !b.err && a.len == b.len &&
				 !memcmp(a.s, b.s, a.len) && ++tries < 8);
			if (a.err || b.err) {
				st = PWB_ENOMEM;
				break;
			}
			pwb__prefs_measure(a.s, a.len, da);
			pwb__prefs_measure(b.s, b.len, db);
			double ua = utility(theta, da), ub = utility(theta, db);
			json_t *o = json_object();
			if (!o) {
				st = PWB_ENOMEM;
				break;
			}
			json_object_set_new(o, "user", json_string(uid));
			json_object_set_new(o, "prompt", json_string(prompt));
			if (rating) {
				/* A 1-5 rating: the utility through a noisy
				 * logistic, cut into five bands. */
				double q =
				    1 /
				    (1 + exp(-p.gain * (ua - 0.5) + gauss(&s)));
				int r = 1 + (int)(q * 5);
				json_object_set_new(o, "response",
						    json_string(a.s));
				json_object_set_new(
				    o, "rating", json_integer(r > 5 ? 5 : r));
				json_t *sc = json_array();
				json_array_append_new(sc, json_integer(1));
				json_array_append_new(sc, json_integer(5));
				json_object_set_new(o, "scale", sc);
			} else {
				/* Bradley–Terry: a chosen over b with
				 * probability σ(gain (U(a) − U(b))). */
				double pa = 1 / (1 + exp(-p.gain * (ua - ub)));
				bool a_wins = unif(&s) < pa;
				json_object_set_new(
				    o, "chosen",
				    json_string(a_wins ? a.s : b.s));
				json_object_set_new(
				    o, "rejected",
				    json_string(a_wins ? b.s : a.s));
			}
			if (p.cohorts) {
				char cid[32];
				snprintf(cid, sizeof(cid), "c%zu",
					 u % p.cohorts);
				json_t *r = json_pack("{s:s, s:{s:s}}", "role",
						      "end_user", "attributes",
						      "cohort", cid);
				json_object_set_new(o, "rater", r);
			}
			json_object_set_new(o, "ts", json_integer(ts));
			ts += 60;
			st = emit_json(o, emit, ctx);
		}
	}
	pwb__buf_release(&a);
	pwb__buf_release(&b);
	if (st == PWB_EIO)
		pwb_diag_add(diag, NULL, 0, 0, "cannot write an event");
	else if (st)
		pwb_diag_add(diag, NULL, 0, 0, "out of memory");
	return st;
}

/* The fewest significant digits (1..17) that print v so that it reads
 * back as v, for JSON_REAL_PRECISION: 0.9 is written "0.9", not
 * jansson's default "0.90000000000000002". */
static int shortest_digits(double v)
{
	char buf[40];
	for (int p = 1; p < 17; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, v);
		if (strtod(buf, NULL) == v)
			return p;
	}
	return 17;
}

/* A user's stated settings: targets on the policy dimensions they feel
 * most strongly about (the two largest |theta| among verbosity,
 * formality and humour), as settings JSON. *out freed with free(). */
pwb_status pwb_prefs_sim_settings(const pwb_prefs_sim_params *p, size_t u,
				  char **out)
{
	*out = NULL;
	double theta[PWB_PREFS_N_DIMS];
	pwb_prefs_sim_user(p, u, theta);
	static const int dims[] = {PWB_PREFS_VERBOSITY, PWB_PREFS_FORMALITY,
				   PWB_PREFS_HUMOUR};
	int best = 0, second = 1;
	if (fabs(theta[dims[1]]) > fabs(theta[dims[0]])) {
		best = 1;
		second = 0;
	}
	if (fabs(theta[dims[2]]) > fabs(theta[dims[best]])) {
		second = best;
		best = 2;
	} else if (fabs(theta[dims[2]]) > fabs(theta[dims[second]])) {
		second = 2;
	}
	json_t *o = json_object(), *d = json_object();
	if (!o || !d) {
		json_decref(o);
		json_decref(d);
		return PWB_ENOMEM;
	}
	int pick2[2] = {dims[best], dims[second]}, digits = 1;
	for (int k = 0; k < 2; k++) {
		double t = theta[pick2[k]] > 0 ? 0.9 : 0.1;
		json_object_set_new(d, pwb_prefs_dim_name(pick2[k]),
				    json_real(t));
		if (shortest_digits(t) > digits)
			digits = shortest_digits(t);
	}
	json_object_set_new(o, "dimensions", d);
	*out = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(digits));
	json_decref(o);
	return *out ? PWB_OK : PWB_ENOMEM;
}
