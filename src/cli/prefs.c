/*
 * prefs.c - `pwb prefs train|explain|reset` and `pwb eval prefs`: the
 * preference learner from the command line (docs/prefs.md).
 */
#include "cli/cli.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char prefs_usage[] =
    "Usage: pwb prefs SUBCOMMAND [options]\n"
    "\n"
    "Subcommands:\n"
    "  train     learn a preference model from feedback (JSONL)\n"
    "  explain   a user's learned preferences, in words\n"
    "  reset     forget a user's learned preferences in a model file\n"
    "\n"
    "Run 'pwb prefs SUBCOMMAND --help' for the options of each.\n";

static const char train_usage[] =
    "Usage: pwb prefs train --data FILE.jsonl --out MODEL [options]\n"
    "\n"
    "Learns the population model and every user's deviation from\n"
    "feedback events (pairs and ratings, docs/prefs.md), in time order,\n"
    "and writes the model file atomically. The shrinkage strength k of\n"
    "the deviations is first chosen by cross-validation across the users\n"
    "with 5 events or more, and stored in the model.\n"
    "\n"
    "Options:\n"
    "  --data FILE          feedback events (JSONL; '-' for stdin)\n"
    "  --out MODEL          where to write the model\n"
    "  --hash-bits N        hashed n-gram space 2^N (10..24; default 18)\n"
    "  --max-weights N      non-zeros per user (default 192)\n"
    "  --json               print counts as JSON\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb prefs train --data sim.jsonl --out prefs.pwbp\n"
    "\n"
    "Exit status: 0 when the model was written, 1 on an error (a bad line\n"
    "of FILE, naming it; nothing is written), 2 on a usage error.\n";

static const char explain_usage[] =
    "Usage: pwb prefs explain (--model MODEL | --data FILE.jsonl) "
    "--user ID [--json]\n"
    "\n"
    "States what the model learned about a user, in dimension words with\n"
    "the weights of their deviation from the population model, e.g.\n"
    "\"you prefer shorter (\u22120.42), more formal (+0.31) answers\" (the\n"
    "minus is U+2212). With --data the model is trained from the feedback\n"
    "file first.\n"
    "\n"
    "Options:\n"
    "  --model MODEL        a model file from 'pwb prefs train'\n"
    "  --data FILE          feedback events to learn from instead\n"
    "  --user ID            the user\n"
    "  --json               the explanation and every weight as JSON\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb prefs explain --model prefs.pwbp --user u00001\n"
    "\n"
    "Exit status: 0 on success, 1 on an error (an unknown user, a bad\n"
    "model or feedback file), 2 on a usage error.\n";

static const char reset_usage[] =
    "Usage: pwb prefs reset --model MODEL --user ID\n"
    "\n"
    "Forgets what the model learned about the user: they start again at\n"
    "the population model. The file is rewritten atomically.\n"
    "\n"
    "Options:\n"
    "  --model MODEL        the model file\n"
    "  --user ID            the user\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb prefs reset --model prefs.pwbp --user u00001\n"
    "\n"
    "Exit status: 0 on success, 1 on an error (an unknown user, a bad\n"
    "model file, which is then left as it was), 2 on a usage error.\n";

/* Loads a feedback file and prints every error. */
static pwb_feedback_set *load_feedback(const char *path)
{
	pwb_diag diag;
	pwb_diag_init(&diag);
	pwb_feedback_set *set = NULL;
	pwb_status st = pwb_feedback_load(&set, path, &diag);
	if (st) {
		cli_report(path, st, &diag);
	}
	pwb_diag_release(&diag);
	return set;
}

typedef struct progress_ctx {
	cli_progress bar;
	void *inner; /* the eval's own context, for user bounds */
} progress_ctx;

static void on_progress(void *ctx, size_t done, size_t total)
{
	progress_ctx *p = ctx;
	p->bar.total = total;
	cli_progress_update(&p->bar, done);
}

/* k as JSON: a number, or the string "infinity" (population only). */
static json_t *k_json(double k)
{
	if (isinf(k))
		return json_string("infinity");
	/* The grid's values are whole numbers: printed whole, not rounded
	 * to the four digits of the other reals. */
	if (k == floor(k) && k < 9e15)
		return json_integer((json_int_t)k);
	return json_real(k);
}

static const char *k_text(double k, char *buf, size_t len)
{
	if (isinf(k))
		return "infinity (population only)";
	snprintf(buf, len, "%g", k);
	return buf;
}

/* Trains from a feedback file; prints errors. */
static pwb_prefs_model *train_file(const char *data,
				   const pwb_prefs_eval_params *ep,
				   pwb_prefs_eval_result *res)
{
	pwb_feedback_set *set = load_feedback(data);
	if (!set)
		return NULL;
	pwb_prefs_eval_params p = *ep;
	progress_ctx pc;
	cli_progress_start(&pc.bar, "training", pwb_feedback_n(set));
	p.progress = on_progress;
	p.ctx = &pc;
	pwb_diag diag;
	pwb_diag_init(&diag);
	pwb_prefs_model *m = NULL;
	pwb_status st = pwb_prefs_train(&m, res, set, data, &p, &diag);
	cli_progress_end(&pc.bar);
	if (st) {
		cli_report(data, st, &diag);
	}
	pwb_diag_release(&diag);
	pwb_feedback_set_free(set);
	return m;
}

static int cmd_train(cli_args *a)
{
	const char *data = NULL, *outp = NULL;
	bool as_json = false;
	pwb_prefs_eval_params ep = pwb_prefs_eval_default_params();
	const cli_spec spec[] = {
	    CLI_OPT_NEED("data", data, "FILE.jsonl"),
	    CLI_OPT_NEED("out", outp, "MODEL"),
	    CLI_OPT_UINT("hash-bits", ep.model.hash_bits, 10, 24),
	    CLI_OPT_UINT("max-weights", ep.model.max_user_weights, 1, 4096),
	    CLI_OPT_FLAG("json", as_json)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), train_usage, NULL);
	if (r)
		return cli_parsed(r);
	pwb_prefs_eval_result res;
	pwb_prefs_model *m = train_file(data, &ep, &res);
	if (!m)
		return CLI_FAIL;
	pwb_diag diag;
	pwb_diag_init(&diag);
	int rc = CLI_OK;
	if (pwb_prefs_save(m, outp, &diag)) {
		cli_print_diag(&diag);
		rc = CLI_FAIL;
	} else if (as_json) {
		json_t *o =
		    json_pack("{s:I, s:I, s:I, s:I, s:s}", "events",
			      (json_int_t)res.n_events, "users",
			      (json_int_t)pwb_prefs_n_users(m), "train_pairs",
			      (json_int_t)res.n_train_pairs, "ties_dropped",
			      (json_int_t)res.n_ties_dropped, "model", outp);
		if (o)
			json_object_set_new(o, "shrink_k",
					    k_json(res.shrink_k));
		char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (!js) {
			fprintf(stderr, "error: cannot write the counts as "
					"JSON (is --out valid UTF-8?)\n");
			rc = CLI_FAIL;
		} else {
			printf("%s\n", js);
			free(js);
		}
	} else {
		char kb[32];
		printf("trained on %zu events (%zu pairs, %zu ties dropped) "
		       "from %zu users; shrinkage k = %s (%s); wrote %s\n",
		       res.n_events, res.n_train_pairs, res.n_ties_dropped,
		       pwb_prefs_n_users(m),
		       k_text(res.shrink_k, kb, sizeof(kb)),
		       res.shrink_by_cv ? "by cross-validation" : "the default",
		       outp);
	}
	pwb_diag_release(&diag);
	pwb_prefs_model_free(m);
	return rc;
}

static pwb_prefs_model *load_model(const char *path)
{
	pwb_diag diag;
	pwb_diag_init(&diag);
	pwb_prefs_model *m = NULL;
	pwb_status st = pwb_prefs_load(&m, path, &diag);
	if (st) {
		cli_report(path, st, &diag);
	}
	pwb_diag_release(&diag);
	return m;
}

static int cmd_explain(cli_args *a)
{
	const char *model = NULL, *data = NULL, *user = NULL;
	bool as_json = false;
	const cli_spec spec[] = {
	    CLI_OPT_STR("model", model), CLI_OPT_STR("data", data),
	    CLI_OPT_STR("user", user), CLI_OPT_FLAG("json", as_json)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), explain_usage, NULL);
	if (r)
		return cli_parsed(r);
	if (!model == !data)
		return cli_usage_error(a, "give one of --model MODEL or --data "
					  "FILE.jsonl");
	if (!user || !*user)
		return cli_usage_error(a, "--user ID is required");
	pwb_prefs_eval_params ep = pwb_prefs_eval_default_params();
	pwb_prefs_model *m =
	    model ? load_model(model)
		  : train_file(data, &ep, &(pwb_prefs_eval_result){0});
	if (!m)
		return CLI_FAIL;
	pwb_diag diag;
	pwb_diag_init(&diag);
	char *text = NULL;
	int rc = CLI_FAIL;
	pwb_status st = pwb_prefs_explain(m, user, &text, &diag);
	if (st == PWB_ENOTFOUND) {
		fprintf(stderr,
			"%s: error: unknown user '%s' (the model "
			"has %zu users)\n",
			model ? model : data, user, pwb_prefs_n_users(m));
		goto out;
	}
	if (st) {
		cli_print_diag(&diag);
		goto out;
	}
	if (as_json) {
		json_t *o = json_object(), *d = json_object();
		json_object_set_new(o, "user", json_string(user));
		json_object_set_new(
		    o, "updates",
		    json_integer((json_int_t)pwb_prefs_user_events(m, user)));
		json_object_set_new(o, "explanation", json_string(text));
		/* How much the deviation counts in their scores, n/(n + k). */
		json_object_set_new(o, "weight",
				    json_real(pwb_prefs_user_weight(m, user)));
		for (int k = 0; k < PWB_PREFS_N_DIMS; k++)
			json_object_set_new(
			    d, pwb_prefs_dim_name(k),
			    json_real(pwb_prefs_user_dim(m, user, k)));
		json_object_set_new(o, "deviation", d);
		json_object_set_new(
		    o, "non_zeros",
		    json_integer((json_int_t)pwb_prefs_user_nnz(m, user)));
		bool printed = cli_print_json(o);
		json_decref(o);
		if (!printed)
			goto out;
	} else {
		printf("%s: %s\n", user, text);
	}
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	free(text);
	pwb_diag_release(&diag);
	pwb_prefs_model_free(m);
	return rc;
}

static int cmd_reset(cli_args *a)
{
	const char *model = NULL, *user = NULL;
	const cli_spec spec[] = {CLI_OPT_NEED("model", model, "MODEL"),
				 CLI_OPT_STR("user", user)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), reset_usage, NULL);
	if (r)
		return cli_parsed(r);
	if (!user || !*user)
		return cli_usage_error(a, "--user ID is required");
	pwb_prefs_model *m = load_model(model);
	if (!m)
		return CLI_FAIL;
	pwb_diag diag;
	pwb_diag_init(&diag);
	int rc = CLI_FAIL;
	if (pwb_prefs_reset(m, user, &diag)) {
		fprintf(stderr, "%s: error: unknown user '%s'\n", model, user);
		goto out;
	}
	if (pwb_prefs_save(m, model, &diag)) {
		cli_print_diag(&diag);
		goto out;
	}
	printf("%s: reset; they start again at the population model\n", user);
	rc = CLI_OK;
out:
	pwb_diag_release(&diag);
	pwb_prefs_model_free(m);
	return rc;
}

int cli_prefs(int argc, char **argv)
{
	static const cli_sub subs[] = {{"train", cmd_train},
				       {"explain", cmd_explain},
				       {"reset", cmd_reset}};
	return cli_dispatch(argc, argv, "prefs", prefs_usage, subs,
			    PWB_ARRAY_LEN(subs));
}

/* ---- pwb eval prefs ---- */

static const char eval_usage[] =
    "Usage: pwb eval prefs --data FILE.jsonl [options]\n"
    "\n"
    "Pairwise accuracy of the preference learner on feedback events\n"
    "(docs/prefs.md): per user, the last 30 % of their events (by ts, then\n"
    "file order) are held out; users with fewer than 5 events, and lines\n"
    "without a user, only train the population model. Ratings become\n"
    "pairs within a user, ties dropped. Reports the population model, the\n"
    "personalised model and, with --settings-dir, explicit settings alone,\n"
    "each as a mean over users with a 95 % bootstrap interval (1000\n"
    "resamples of users, seed 1); how many users personalising helped,\n"
    "left equal and hurt; and a learning curve, personal and population.\n"
    "The shrinkage k of the personal deviations is first chosen by\n"
    "cross-validation across users on their training events. Without any\n"
    "user of 5 events, the last 30 % of the anonymous pairs test the\n"
    "population model.\n"
    "\n"
    "Options:\n"
    "  --data FILE          feedback events (JSONL; '-' for stdin)\n"
    "  --settings-dir DIR   each user's settings, DIR/<user>.json\n"
    "                       (explicit targets; one user's --settings is\n"
    "                       not taken here); needs --policies and --org,\n"
    "                       and each is resolved against "
    "them\n" CLI_RESOLVE_HELP_POLICY CLI_RESOLVE_HELP_ATTRS
    "  --test-fraction F    held-out share of each user's events (0.3)\n"
    "  --min-events N       events for a user to be evaluated (5)\n"
    "  --seed S             bootstrap seed (1)\n"
    "  --shrink K           the shrinkage strength k of the personal\n"
    "                       deviations (default: chosen by cross-\n"
    "                       validation across users)\n"
    "  --cohort-attr KEY    group raters by this attribute (one they\n"
    "                       consented to): each value is a cohort whose\n"
    "                       model a member starts from; with --policies\n"
    "                       and --org, an attribute their learning\n"
    "                       restrictions forbid is refused\n"
    "  --json               print the results as JSON\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb eval prefs --data sim.jsonl --settings-dir settings \\\n"
    "      --policies policies --org acme-tutor\n"
    "\n"
    "Exit status: 0 on success, 1 on an error (a bad line of FILE or a\n"
    "bad settings file, naming it; or nothing to evaluate: an empty FILE,\n"
    "no user with enough events, every held-out rating tied), 2 on a\n"
    "usage error.\n";

typedef struct settings_ctx {
	cli_resolve *ra;
	const char *dir;
	bool failed;
} settings_ctx;

/* The bounds of one user: DIR/<user>.json resolved against the policy.
 * A user without a file has none; a bad file stops the evaluation. */
static bool user_bounds(void *ctx, const char *user, pwb_prefs_bounds *b)
{
	progress_ctx *pc = ctx;
	settings_ctx *sc = pc->inner;
	if (!sc || sc->failed)
		return false;
	if (strchr(user, '/') || user[0] == '.')
		return false;
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.json", sc->dir, user) >=
	    sizeof(path))
		return false;
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	fclose(f);
	size_t len;
	char *data = cli_read_file(path, CLI_SETTINGS_MAX, &len);
	if (!data) {
		sc->failed = true;
		return false;
	}
	pwb_diag diag;
	pwb_diag_init(&diag);
	pwb_settings *s = NULL;
	pwb_effective *e = NULL;
	bool ok = false;
	if (pwb_settings_parse(&s, data, len, path, &diag))
		goto out;
	pwb_resolve_params rp = {sc->ra->org, sc->ra->jur.v, sc->ra->jur.n, s,
				 sc->ra->attrs};
	if (pwb_policy_resolve(&e, sc->ra->policy, &rp, &diag)) {
		for (size_t i = 0; i < diag.n; i++)
			if (!diag.entries[i].file)
				diag.entries[i].file = strdup(path);
		goto out;
	}
	/* The model has no categories in the evaluation: targets only. */
	pwb_prefs_bounds_init(b);
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++) {
		const pwb_eff_dimension *d =
		    pwb_effective_find_dimension(e, pwb_prefs_dim_name(k));
		if (d && d->numeric && d->value_set_by.tier == PWB_TIER_USER) {
			b->has_target[k] = true;
			b->target[k] = (float)d->value;
		}
	}
	ok = true;
out:
	if (!ok) {
		cli_print_diag(&diag);
		sc->failed = true;
	}
	pwb_effective_free(e);
	pwb_settings_free(s);
	pwb_diag_release(&diag);
	free(data);
	return ok;
}

static json_t *ci_json(const pwb_prefs_ci *c)
{
	if (!c->n)
		return json_null();
	json_t *o = json_object(), *ci = json_array();
	json_object_set_new(o, "mean", json_real(c->mean));
	json_array_append_new(ci, json_real(c->lo));
	json_array_append_new(ci, json_real(c->hi));
	json_object_set_new(o, "ci95", ci);
	json_object_set_new(o, "n", json_integer((json_int_t)c->n));
	return o;
}

/* The choice of the shrinkage, the per-user comparison and the cohorts,
 * added to the results' JSON. */
static void add_json_extras(json_t *root, const pwb_prefs_eval_result *res,
			    const char *cohort_attr, bool given)
{
	json_t *sh = json_object(), *cv = json_object();
	json_object_set_new(sh, "k", k_json(res->shrink_k));
	json_object_set_new(sh, "chosen_by",
			    json_string(res->shrink_by_cv ? "cross-validation"
					: given		  ? "given"
							  : "default"));
	json_object_set_new(sh, "cv_users",
			    json_integer((json_int_t)res->cv_n));
	json_t *cl = json_object();
	for (int g = 0; res->cv_n && g < PWB_PREFS_SHRINK_GRID_N; g++) {
		char key[32];
		double k = pwb_prefs_shrink_grid[g];
		if (isinf(k))
			snprintf(key, sizeof(key), "infinity");
		else
			snprintf(key, sizeof(key), "%g", k);
		json_object_set_new(cv, key, json_real(res->cv_accuracy[g]));
		json_object_set_new(cl, key,
				    json_real(res->cv_log_likelihood[g]));
	}
	json_object_set_new(sh, "cv_accuracy", cv);
	json_object_set_new(sh, "cv_log_likelihood", cl);
	json_object_set_new(root, "shrinkage", sh);
	json_t *pu = json_object();
	json_object_set_new(pu, "wins", json_integer((json_int_t)res->wins));
	json_object_set_new(pu, "ties", json_integer((json_int_t)res->ties));
	json_object_set_new(pu, "losses",
			    json_integer((json_int_t)res->losses));
	json_object_set_new(pu, "win_share", ci_json(&res->win_share));
	json_object_set_new(pu, "tie_share", ci_json(&res->tie_share));
	json_object_set_new(pu, "hurt_share", ci_json(&res->loss_share));
	json_object_set_new(pu, "gain", ci_json(&res->gain));
	json_object_set_new(root, "per_user", pu);
	json_t *cp = json_object();
	for (int q = 0; q < PWB_PREFS_CURVE_N; q++) {
		char key[24];
		snprintf(key, sizeof(key), "%zu", res->curve_k[q]);
		json_object_set_new(cp, key,
				    ci_json(&res->curve_population[q]));
	}
	json_object_set_new(root, "learning_curve_population", cp);
	if (!cohort_attr)
		return;
	json_t *co = json_object(), *with = json_object(),
	       *without = json_object();
	json_object_set_new(co, "attribute", json_string(cohort_attr));
	json_object_set_new(co, "n_cohorts",
			    json_integer((json_int_t)res->n_cohorts));
	json_object_set_new(co, "n_users",
			    json_integer((json_int_t)res->n_users_in_cohorts));
	for (int q = 0; q < PWB_PREFS_CURVE_N; q++) {
		char key[24];
		snprintf(key, sizeof(key), "%zu", res->curve_k[q]);
		json_object_set_new(with, key, ci_json(&res->cohort_curve[q]));
		json_object_set_new(without, key,
				    ci_json(&res->cohort_base[q]));
	}
	json_object_set_new(co, "learning_curve_with_cohort", with);
	json_object_set_new(co, "learning_curve_without_cohort", without);
	json_object_set_new(root, "cohorts", co);
}

static void print_ci(const char *label, const pwb_prefs_ci *c)
{
	if (!c->n)
		printf("  %-14s -\n", label);
	else
		printf("  %-14s %.3f  [%.3f, %.3f]  (%zu)\n", label, c->mean,
		       c->lo, c->hi, c->n);
}

/* Whether the org's learning restrictions allow grouping raters by the
 * attribute (a forbidden one is an error naming the rule's file and
 * line). Without --policies, the caller vouches for the raters' consent. */
static bool cohort_allowed(const cli_resolve *ra, const char *attr)
{
	if (!attr)
		return true;
	const pwb_eff_learning *l = pwb_effective_learning(ra->effective);
	for (size_t i = 0; i < l->n_forbid_attributes; i++) {
		if (strcmp(l->forbid_attributes[i], attr))
			continue;
		const pwb_provenance *p = &l->set_by;
		if (p->file)
			fprintf(stderr, "%s:%d: ", p->file, p->line);
		fprintf(stderr,
			"error: --cohort-attr %s: the learning restrictions "
			"(%s) forbid learning from the attribute '%s'\n",
			attr, p->source ? p->source : "policy", attr);
		return false;
	}
	return true;
}

/* The per-user comparison, the shrinkage, the learning curve and the
 * cohorts, as text. */
static void print_text_extras(const pwb_prefs_eval_result *res,
			      const char *cohort_attr, bool given)
{
	char kb[32];
	if (res->n_users_tested == 1)
		printf("note: one user tested: each interval is that user's "
		       "number (there is nothing to resample)\n");
	if (res->n_users_tested) {
		printf("per user, personal against population: %zu better, "
		       "%zu equal, %zu worse\n",
		       res->wins, res->ties, res->losses);
		print_ci("gain", &res->gain);
		print_ci("better", &res->win_share);
		print_ci("hurt", &res->loss_share);
	}
	if (res->shrink_by_cv)
		printf("shrinkage: k = %s, chosen by cross-validation over %zu "
		       "users' held-back training events\n",
		       k_text(res->shrink_k, kb, sizeof(kb)), res->cv_n);
	else if (given)
		printf("shrinkage: k = %s, as given by --shrink\n",
		       k_text(res->shrink_k, kb, sizeof(kb)));
	else
		printf("shrinkage: k = %s, the default: cross-validation "
		       "needs 2 users with held-back pairs, and %zu had\n",
		       k_text(res->shrink_k, kb, sizeof(kb)), res->cv_n);
	printf("learning curve, by the user's training events (personal; "
	       "population on the same users):\n");
	for (int q = 0; q < PWB_PREFS_CURVE_N; q++) {
		char label[32];
		snprintf(label, sizeof(label), "%zu events", res->curve_k[q]);
		print_ci(label, &res->curve[q]);
		print_ci("  population", &res->curve_population[q]);
	}
	if (!cohort_attr)
		return;
	printf("cohorts by '%s': %zu, %zu tested users in one; their "
	       "learning curve with the cohort's prior, and without:\n",
	       cohort_attr, res->n_cohorts, res->n_users_in_cohorts);
	for (int q = 0; q < PWB_PREFS_CURVE_N; q++) {
		char label[32];
		snprintf(label, sizeof(label), "%zu events", res->curve_k[q]);
		print_ci(label, &res->cohort_curve[q]);
		print_ci("  without", &res->cohort_base[q]);
	}
}

int cli_eval_prefs(cli_args *a)
{
	cli_resolve ra = {0};
	const char *data = NULL, *sdir = NULL;
	bool as_json = false;
	pwb_prefs_eval_params ep = pwb_prefs_eval_default_params();
	const cli_spec spec[] = {
	    CLI_RESOLVE_SPEC_NO_SETTINGS(&ra),
	    CLI_OPT_REFUSE("settings", "--settings is one user's; give each "
				       "user's in --settings-dir DIR"),
	    CLI_OPT_NEED("data", data, "FILE.jsonl"),
	    CLI_OPT_STR("settings-dir", sdir),
	    CLI_OPT_NUM("test-fraction", ep.test_fraction, 0.01, 0.99),
	    CLI_OPT_UINT("min-events", ep.min_user_events, 2, 1e9),
	    CLI_OPT_UINT("seed", ep.seed, 0, INT64_MAX),
	    CLI_OPT_NUM("shrink", ep.shrink_k, 0, 1e12),
	    CLI_OPT_STR("cohort-attr", ep.cohort_attr),
	    CLI_OPT_FLAG("json", as_json)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), eval_usage, NULL);
	if (r)
		return cli_parsed(r);
	if (sdir && (!ra.policies || !ra.org))
		return cli_usage_error(a, "--settings-dir needs --policies DIR "
					  "and --org ID");
	if (!sdir && !ep.cohort_attr && (ra.policies || ra.org))
		return cli_usage_error(a,
				       "--policies and --org are used with "
				       "--settings-dir or --cohort-attr only");
	if (ep.cohort_attr && !*ep.cohort_attr)
		return cli_usage_error(a, "--cohort-attr needs an attribute");
	if (!sdir && (!ra.policies != !ra.org))
		return cli_usage_error(a, "--policies and --org go together");
	settings_ctx sc = {&ra, sdir, false};
	if (sdir) {
		DIR *d = opendir(sdir);
		if (!d) {
			fprintf(stderr, "%s: error: %s\n", sdir,
				strerror(errno));
			return CLI_FAIL;
		}
		closedir(d);
	}
	if (ra.policies) {
		int rc = cli_resolve_run(&ra, a);
		if (!rc && !cohort_allowed(&ra, ep.cohort_attr))
			rc = CLI_FAIL;
		if (rc) {
			cli_resolve_release(&ra);
			return rc;
		}
	}
	int rc = CLI_FAIL;
	pwb_diag diag;
	pwb_diag_init(&diag);
	json_t *root = NULL;
	pwb_feedback_set *set = load_feedback(data);
	if (!set)
		goto out;
	progress_ctx pc = {.inner = sdir ? &sc : NULL};
	cli_progress_start(&pc.bar, "evaluating", 3 * pwb_feedback_n(set));
	ep.progress = on_progress;
	ep.ctx = &pc;
	if (sdir)
		ep.user_bounds = user_bounds;
	pwb_prefs_eval_result res;
	pwb_status st = pwb_prefs_evaluate(&res, set, data, &ep, &diag);
	cli_progress_end(&pc.bar);
	if (st || sc.failed) {
		/* A failed evaluation always says why; a bad settings file
		 * was reported as it was read. */
		cli_print_diag(&diag);
		goto out;
	}
	root = json_object();
	json_object_set_new(root, "n_events",
			    json_integer((json_int_t)res.n_events));
	json_object_set_new(root, "n_users",
			    json_integer((json_int_t)res.n_users_tested));
	json_object_set_new(root, "n_population_users",
			    json_integer((json_int_t)res.n_population_users));
	json_object_set_new(root, "n_anonymous_events",
			    json_integer((json_int_t)res.n_anonymous_events));
	json_object_set_new(root, "n_train_pairs",
			    json_integer((json_int_t)res.n_train_pairs));
	json_object_set_new(root, "n_test_pairs",
			    json_integer((json_int_t)res.n_test_pairs));
	json_object_set_new(root, "n_ties_dropped",
			    json_integer((json_int_t)res.n_ties_dropped));
	json_t *acc = json_object();
	json_object_set_new(acc, "population", ci_json(&res.population));
	json_object_set_new(acc, "personal", ci_json(&res.personal));
	if (sdir) {
		json_object_set_new(acc, "explicit_only",
				    ci_json(&res.explicit_only));
		json_object_set_new(
		    root, "n_users_with_settings",
		    json_integer((json_int_t)res.n_users_with_settings));
	}
	json_object_set_new(root, "accuracy", acc);
	json_t *curve = json_object();
	for (int q = 0; q < PWB_PREFS_CURVE_N; q++) {
		char key[24];
		snprintf(key, sizeof(key), "%zu", res.curve_k[q]);
		json_object_set_new(curve, key, ci_json(&res.curve[q]));
	}
	json_object_set_new(root, "learning_curve", curve);
	if (res.n_anonymous_test_pairs) {
		json_t *an = json_object();
		json_object_set_new(
		    an, "n_test_pairs",
		    json_integer((json_int_t)res.n_anonymous_test_pairs));
		json_object_set_new(an, "population",
				    ci_json(&res.anonymous_population));
		json_object_set_new(root, "anonymous", an);
	}
	json_object_set_new(root, "bootstrap",
			    json_pack("{s:I, s:I}", "resamples",
				      (json_int_t)ep.bootstrap, "seed",
				      (json_int_t)ep.seed));
	add_json_extras(root, &res, ep.cohort_attr, ep.shrink_k >= 0);
	if (as_json) {
		bool printed = cli_print_json(root);
		if (!printed)
			goto out;
	} else {
		printf("events: %zu; users evaluated: %zu (%zu with fewer "
		       "events, %zu anonymous events train the population)\n",
		       res.n_events, res.n_users_tested, res.n_population_users,
		       res.n_anonymous_events);
		printf("pairs: %zu training, %zu test (%zu rating ties "
		       "dropped)\n",
		       res.n_train_pairs, res.n_test_pairs, res.n_ties_dropped);
		printf(
		    "pairwise accuracy, mean over users [95%% CI] (users):\n");
		print_ci("population", &res.population);
		print_ci("personal", &res.personal);
		if (sdir)
			print_ci("explicit only", &res.explicit_only);
		if (res.n_anonymous_test_pairs) {
			printf("anonymous held-out pairs: %zu\n",
			       res.n_anonymous_test_pairs);
			print_ci("population", &res.anonymous_population);
		}
		print_text_extras(&res, ep.cohort_attr, ep.shrink_k >= 0);
	}
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	json_decref(root);
	pwb_feedback_set_free(set);
	pwb_diag_release(&diag);
	cli_resolve_release(&ra);
	return rc;
}
