/*
 * simulate_db.c - `pwb simulate db`: a store filled with a plausible org's
 * history, so that the reports and the web UI can be tried at once
 * (docs/report.md, "Demo data").
 *
 * Users with a long-tailed activity (a Pareto weight each: a few raters
 * give much of the feedback, as in real feedback sets), of whom most
 * consent to learning and, where the org groups users (its
 * learning.cohort_attribute), some to being grouped by age band; a few
 * expert raters; feedback between a longer and a shorter answer that
 * each user leans towards or away from, learnt into their own model
 * exactly as `pwb serve` learns it; decisions over the days, a share of
 * them blocked by the tier that forbids the category (law or org, from
 * the org's effective policy) or by a user's own setting. The same seed
 * gives the same store.
 */
#include "cli/cli.h"
#include "util/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char db_usage[] =
    "Usage: pwb simulate db --db URL --org ID [options]\n"
    "\n"
    "Fills a store with a plausible history of an org, for trying the\n"
    "reports (pwb report datasheet) and the gateway's pages: users with a\n"
    "long-tailed activity (a few raters give much of the feedback), most\n"
    "consenting to learning and some to being grouped by age band (where\n"
    "the org groups users), a few expert raters, feedback learnt into\n"
    "each user's own model as pwb serve learns it, and decisions over the\n"
    "days, some blocked by the law, the org or the user's own settings.\n"
    "The same --seed gives the same store. Feedback texts are kept only\n"
    "where the org's policy keeps texts.\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (made if missing)\n"
    "  --org ID             the organisation (its policy shapes the data)\n"
    "  --policies DIR       the policy folder (default: the one the store\n"
    "                       recorded)\n"
    "  --users N            users (default 200)\n"
    "  --days D             days of history before now (default 30)\n"
    "  --events N           feedback events per user on average (default 8)\n"
    "  --seed S             random seed (default 1)\n"
    "  --now SECONDS        the end of the history (default: now)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb simulate db --db sqlite:demo.db --org open-studio \\\n"
    "      --policies policies --users 500 --days 60\n"
    "\n"
    "Exit status: 0 when everything was stored, 1 on an error, 2 on a\n"
    "usage error.\n";

/* splitmix64: small, fast, and the same everywhere. */
static uint64_t next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static double unit(uint64_t *s)
{
	return (double)(next(s) >> 11) / 9007199254740992.0;
}

static const char *const bands[] = {"13-17", "18-24", "25-34", "35-54",
				    "55+"};

/* Two answers to one prompt: a short one and a long, warmer one. */
static const char *const prompts[] = {
    "Explain photosynthesis.", "How do tides work?",
    "Why is the sky blue?", "What is a prime number?",
    "How does a vaccine work?"};
static const char *const shorts[] = {
    "Plants turn light, water and CO2 into sugar and oxygen.",
    "The moon's pull raises the sea twice a day.",
    "Air scatters blue light more than red.",
    "A number with no divisors but 1 and itself.",
    "It trains the immune system with a harmless copy."};
static const char *const longs[] = {
    "Great question! Plants catch sunlight in their leaves and use it to "
    "turn water and carbon dioxide into sugar, which feeds them, and they "
    "release the oxygen we breathe. Isn't that lovely?",
    "Happy to explain! The moon pulls on the oceans, so the water bulges "
    "towards it and on the far side too; as the earth turns, each coast "
    "passes through two bulges a day, and that is the tide.",
    "What a nice thing to wonder about! Sunlight holds every colour, and "
    "the tiny molecules of the air scatter the short blue waves far more "
    "than the red ones, so blue comes at us from all over the sky.",
    "Sure! A prime number is a whole number above 1 that only 1 and "
    "itself divide: 2, 3, 5, 7, 11 and so on. Every other whole number is "
    "a product of primes, which is why they matter so much.",
    "Glad you asked! A vaccine shows your immune system a harmless piece "
    "or copy of a germ, so that it learns to recognise it; if the real "
    "germ comes later, your body is ready and fights it off quickly."};

typedef struct sim {
	pwb_store *s;
	const char *org;
	pwb_effective *e;
	pwb_prefs_model *m;
	pwb_prefs_features fs[5], fl[5];
	bool texts;
	uint64_t rng;
	int64_t start, span;
	const char *hash;
	/* blocked categories, by the tier that forbids them */
	const char *law[32], *org_cats[32], *user_cats[32];
	size_t n_law, n_org, n_user;
	pwb_diag d;
} sim;

static int64_t when(sim *x)
{
	return x->start + (int64_t)(unit(&x->rng) * (double)x->span);
}

/* One user: consent, feedback learnt into their model, decisions. */
static pwb_status one_user(sim *x, size_t u, double share, size_t total)
{
	char user[32], attrs[160], dec[96];
	snprintf(user, sizeof(user), "user%05zu", u + 1);
	const pwb_eff_learning *l = pwb_effective_learning(x->e);
	bool consents = unit(&x->rng) < 0.75;
	bool grouped = consents && l->cohort_attribute && unit(&x->rng) < 0.6;
	const char *band = bands[next(&x->rng) % PWB_ARRAY_LEN(bands)];
	bool expert = u % 50 == 7;
	/* Each user leans towards the long answers or away from them. */
	double lean = unit(&x->rng) < 0.55 ? 0.8 : 0.2;
	size_t events = (size_t)llround(share * (double)total);
	pwb_status st = PWB_OK;
	if (consents) {
		char *c = NULL;
		st = pwb_consent_update(NULL, 1,
					grouped ? l->cohort_attribute : NULL, 0,
					&c);
		if (!st)
			st = pwb_store_user_set_consent(x->s, x->org, user, c,
							x->start, &x->d);
		free(c);
	}
	attrs[0] = '\0';
	if (grouped)
		snprintf(attrs, sizeof(attrs), "{\"%s\":\"%s\"}",
			 l->cohort_attribute, band);
	pwb_prefs_bounds b;
	pwb_prefs_bounds_init(&b);
	b.consented = true;
	for (size_t k = 0; !st && k < events; k++) {
		size_t p = next(&x->rng) % PWB_ARRAY_LEN(prompts);
		bool long_won = unit(&x->rng) < lean;
		const pwb_prefs_features *win = long_won ? &x->fl[p] : &x->fs[p];
		const pwb_prefs_features *lose = long_won ? &x->fs[p] : &x->fl[p];
		void *feat = NULL;
		size_t flen = 0;
		st = pwb_prefs_features_pack(x->m, win, lose, &feat, &flen);
		int64_t ts = when(x);
		snprintf(dec, sizeof(dec), "dec_sim%05zu_%04zu_f", u + 1, k);
		pwb_store_decision dd = {.id = dec,
					 .user = user,
					 .ts = ts,
					 .policy_hash = x->hash,
					 .verdict = "allow"};
		if (!st)
			st = pwb_store_decision_add(x->s, x->org, &dd, &x->d);
		pwb_store_feedback f = {
		    .kind = PWB_STORE_FB_PAIR,
		    .user = user,
		    .ts = ts + 30,
		    .prompt = prompts[p],
		    .chosen = long_won ? longs[p] : shorts[p],
		    .rejected = long_won ? shorts[p] : longs[p],
		    .features = feat,
		    .features_len = flen,
		    .rater_role = expert ? "expert" : "end_user",
		    .rater_attrs = grouped ? attrs : NULL,
		    .decision_id = dec};
		if (!st)
			st = pwb_store_feedback_add(
			    x->s, x->org, &f,
			    x->texts ? PWB_STORE_TEXTS : PWB_STORE_FEATURES_ONLY,
			    ts + 30, NULL, &x->d);
		free(feat);
		if (!st && consents)
			st = pwb_prefs_update_user_pair(x->m, user, win, lose,
							&b);
	}
	if (!st && consents && pwb_prefs_has_user(x->m, user)) {
		void *blob = NULL;
		size_t len = 0;
		st = pwb_prefs_user_save_mem(x->m, user, &blob, &len);
		if (!st)
			st = pwb_store_user_set_model(x->s, x->org, user, blob,
						      len, -1, NULL,
						      x->start + x->span, &x->d);
		free(blob);
		pwb_prefs_reset(x->m, user, NULL);
	}
	/* Decisions without feedback, a share of them blocked. */
	size_t more = 2 + (size_t)llround(share * (double)total * 0.5);
	for (size_t k = 0; !st && k < more; k++) {
		const char *tier = NULL, *cat = NULL;
		double r = unit(&x->rng);
		if (r < 0.04 && x->n_law) {
			tier = "law";
			cat = x->law[next(&x->rng) % x->n_law];
		} else if (r < 0.08 && x->n_org) {
			tier = "org";
			cat = x->org_cats[next(&x->rng) % x->n_org];
		} else if (r < 0.10 && x->n_user) {
			tier = "user";
			cat = x->user_cats[next(&x->rng) % x->n_user];
		}
		snprintf(dec, sizeof(dec), "dec_sim%05zu_%04zu_d", u + 1, k);
		pwb_store_decision dd = {.id = dec,
					 .user = user,
					 .ts = when(x),
					 .policy_hash = x->hash,
					 .verdict = tier ? "block" : "allow",
					 .blocked_tier = tier,
					 .blocked_category = cat};
		st = pwb_store_decision_add(x->s, x->org, &dd, &x->d);
	}
	return st;
}

/* The categories a decision can be blocked in, by the tier that
 * forbids them; those a user may switch are the user's. */
static void categories(sim *x)
{
	for (size_t i = 0; i < pwb_effective_n_categories(x->e); i++) {
		const pwb_eff_category *c = pwb_effective_category(x->e, i);
		if (c->permission == PWB_FORBID && c->set_by.tier == PWB_TIER_LAW &&
		    x->n_law < PWB_ARRAY_LEN(x->law))
			x->law[x->n_law++] = c->id;
		else if (c->permission == PWB_FORBID &&
			 x->n_org < PWB_ARRAY_LEN(x->org_cats))
			x->org_cats[x->n_org++] = c->id;
		else if (c->permission != PWB_FORBID &&
			 c->permission != PWB_ALLOW &&
			 x->n_user < PWB_ARRAY_LEN(x->user_cats))
			x->user_cats[x->n_user++] = c->id;
	}
}

int cli_simulate_db(cli_args *a)
{
	const char *db = NULL, *org = NULL, *policies = NULL;
	size_t users = 200, days = 30, events = 8;
	uint64_t seed = 1;
	int64_t now = cli_time_now();
	const cli_spec spec[] = {
	    CLI_OPT_NEED("db", db, "URL"),
	    CLI_OPT_NEED("org", org, "ID"),
	    CLI_OPT_STR("policies", policies),
	    CLI_OPT_UINT("users", users, 1, 1000000),
	    CLI_OPT_UINT("days", days, 1, 3650),
	    CLI_OPT_UINT("events", events, 0, 10000),
	    CLI_OPT_UINT("seed", seed, 0, 1e18),
	    CLI_OPT_NOW(now)};
	int rc = cli_parse(a, spec, PWB_ARRAY_LEN(spec), db_usage, NULL);
	if (rc)
		return cli_parsed(rc);
	pwb_store *s = cli_store_open(db);
	if (!s)
		return CLI_FAIL;
	sim x = {.s = s, .org = org, .rng = seed};
	pwb_diag_init(&x.d);
	char *dir = NULL;
	cli_resolve r = {0};
	double *w = NULL;
	rc = cli_store_policies_for(a, s, policies, &dir);
	if (!rc) {
		r.policies = dir;
		r.org = org;
		rc = cli_resolve_run(&r, a);
	}
	if (!rc && policies)
		rc = cli_store_record_policies(s, policies);
	pwb_status st = PWB_OK;
	if (!rc) {
		x.e = r.effective;
		x.hash = pwb_effective_hash(x.e);
		x.texts = pwb_effective_learning(x.e)->store_texts;
		x.span = (int64_t)days * 86400;
		x.start = now - x.span;
		categories(&x);
		st = pwb_pipeline_default_prefs(r.policy, &x.m, &x.d);
		for (size_t p = 0; !st && p < PWB_ARRAY_LEN(prompts); p++) {
			st = pwb_prefs_features_compute(&x.fs[p], x.m, shorts[p],
							strlen(shorts[p]), NULL,
							NULL, &x.d);
			if (!st)
				st = pwb_prefs_features_compute(
				    &x.fl[p], x.m, longs[p], strlen(longs[p]),
				    NULL, NULL, &x.d);
		}
		/* Pareto(1.2) activity weights: a long tail of raters. */
		double sum = 0;
		if (!st && !(w = pwb__calloc(users, sizeof(*w))))
			st = PWB_ENOMEM;
		for (size_t u = 0; !st && u < users; u++)
			sum += w[u] = pow(1 - unit(&x.rng), -1 / 1.2);
		cli_progress pr;
		cli_progress_start(&pr, "users", users);
		/* One transaction a hundred users: a big store fills fast. */
		for (size_t u = 0; !st && u < users; u++) {
			if (u % 100 == 0)
				st = pwb_store_begin(s, &x.d);
			if (!st)
				st = one_user(&x, u, w[u] / sum,
					      users * events);
			if (!st && (u % 100 == 99 || u + 1 == users))
				st = pwb_store_commit(s, &x.d);
			cli_progress_update(&pr, u + 1);
		}
		cli_progress_end(&pr);
		if (st) {
			pwb_store_rollback(s);
			cli_store_report(s, "fill the store", st, &x.d);
			rc = CLI_FAIL;
		} else {
			printf("%s: %zu users of org %s over %zu days\n", db,
			       users, org, days);
		}
	}
	free(w);
	pwb_prefs_model_free(x.m);
	cli_resolve_release(&r);
	free(dir);
	pwb_store_free(s);
	pwb_diag_release(&x.d);
	return rc;
}
