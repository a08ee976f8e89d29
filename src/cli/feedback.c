/*
 * feedback.c - `pwb feedback import`: JSONL feedback events (DESIGN §4.3)
 * into a store, in transactional batches.
 */
#include "cli/cli.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static const char feedback_usage[] =
    "Usage: pwb feedback import --db URL --org ID [options] FILE.jsonl|-\n"
    "\n"
    "Run 'pwb feedback import --help' for its options.\n";

static const char import_usage[] =
    "Usage: pwb feedback import --db URL --org ID [options] FILE.jsonl|-\n"
    "\n"
    "Stores the feedback events of FILE (one JSON object a line, DESIGN\n"
    "§4.3; '-' reads standard input) for the users of an org, with their\n"
    "rater provenance. Events are committed in batches, each one\n"
    "transaction: at a bad line the import stops, its batch is rolled\n"
    "back whole, and the batches before it stay. An event whose \"id\" is\n"
    "already stored is skipped, so a file can be imported again after a\n"
    "failure.\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (docs/store.md)\n"
    "  --org ID             the organisation the users belong to\n"
    "  --policies DIR       read the org's learning restrictions: when\n"
    "                       they say store_texts: false, no text is written\n"
    "  --features-only      never write texts (prompts, responses)\n"
    "  --batch N            events per transaction (default 1000)\n"
    "  --verbose            print a line after each committed batch\n"
    "                       (what it names is on disk)\n"
    "  --now SECONDS        the arrival time to record (default: now)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 when every line was imported, 1 at a bad line or a\n"
    "store error (naming the line), 2 on a usage error.\n";

typedef struct import_stats {
	uint64_t stored, duplicates, batches;
	int first_line; /* of the open batch */
} import_stats;

/* Prints the store's message as FILE:LINE: error: message. */
static void print_at(const char *file, int line, pwb_status st,
		     const pwb_diag *d)
{
	const char *msg = d->n ? d->entries[0].message : pwb_status_str(st);
	fprintf(stderr, "%s:%d: error: %s\n", file, line, msg);
}

/*
 * Commits the open batch, with its audit row in the same transaction when
 * it stored events: an auditor sees every batch that came in, and never
 * one that did not.
 */
static pwb_status commit_batch(pwb_store *s, const char *org,
			       pwb_store_texts texts, uint64_t stored,
			       uint64_t dups, int first, int last, int64_t now,
			       pwb_diag *d)
{
	pwb_status st = PWB_OK;
	if (stored) {
		char detail[256];
		snprintf(detail, sizeof(detail),
			 "{\"events\":%llu,\"duplicates\":%llu,"
			 "\"texts\":\"%s\",\"lines\":[%d,%d]}",
			 (unsigned long long)stored, (unsigned long long)dups,
			 texts == PWB_STORE_TEXTS ? "kept" : "not stored",
			 first, last);
		st = pwb_store_audit_append(s, org, "feedback.imported", NULL,
					    detail, now, NULL, d);
	}
	if (st) {
		pwb_store_rollback(s);
		return st;
	}
	return pwb_store_commit(s, d);
}

/* The features of an event's texts (a pair's two, a rating's one), as the
 * bytes a store keeps instead of the texts. */
static pwb_status event_features(const pwb_prefs_model *m,
				 const pwb_feedback *ev, void **data,
				 size_t *len, pwb_diag *d)
{
	pwb_prefs_features *f = malloc(2 * sizeof(*f));
	if (!f)
		return PWB_ENOMEM;
	bool pair = ev->kind == PWB_FEEDBACK_PAIR;
	const char *a = pair ? ev->chosen : ev->response;
	pwb_status st =
	    pwb_prefs_features_compute(&f[0], m, a, strlen(a), NULL, NULL, d);
	if (!st && pair)
		st = pwb_prefs_features_compute(&f[1], m, ev->rejected,
						strlen(ev->rejected), NULL,
						NULL, d);
	if (!st)
		st = pwb_prefs_features_pack(m, &f[0], pair ? &f[1] : NULL,
					     data, len);
	free(f);
	return st;
}

/* One import, from its options to its counts. */
typedef struct importer {
	const char *db, *org, *policies, *file;
	bool features_only, verbose;
	uint64_t batch;
	int64_t now;
	/* Whether texts are stored, and why (for the summary). */
	pwb_store_texts texts;
	const char *why;
	char why_buf[512];
	pwb_feedback_reader *rd;
	pwb_prefs_model *layout; /* the features' layout, without texts */
	pwb_store *s;
	pwb_diag d;
	cli_progress bar; /* drawn when the input's size is known */
	uint64_t total;
	import_stats stats;
	uint64_t in_batch, batch_stored, batch_dups;
	bool open_tx;
} importer;

/* Whether texts are stored: not with --features-only, nor where the org's
 * learning restrictions (with --policies) say store_texts: false. */
static int import_texts(importer *im, cli_args *a)
{
	im->texts =
	    im->features_only ? PWB_STORE_FEATURES_ONLY : PWB_STORE_TEXTS;
	im->why = im->features_only ? "--features-only" : "default";
	if (!im->policies)
		return CLI_OK;
	cli_resolve res = {0};
	res.policies = im->policies;
	res.org = im->org;
	int rc = cli_resolve_run(&res, a);
	if (rc) {
		cli_resolve_release(&res);
		return rc;
	}
	const pwb_eff_learning *l = pwb_effective_learning(res.effective);
	if (!l->store_texts) {
		im->texts = PWB_STORE_FEATURES_ONLY;
		snprintf(
		    im->why_buf, sizeof(im->why_buf), "store_texts: false, %s",
		    l->store_texts_set_by.source ? l->store_texts_set_by.source
						 : "policy");
		im->why = im->why_buf;
	}
	cli_resolve_release(&res);
	return CLI_OK;
}

/* Frees what an import holds. */
static void import_close(importer *im)
{
	pwb_store_free(im->s);
	pwb_prefs_model_free(im->layout);
	pwb_feedback_close(im->rd);
	pwb_diag_release(&im->d);
}

/* Opens the input, the features' layout (when texts are not stored) and
 * the store; prints the error and returns CLI_FAIL when one fails. */
static int import_open(importer *im)
{
	pwb_diag_init(&im->d);
	pwb_status st = pwb_feedback_open(&im->rd, im->file, &im->d);
	if (st) {
		cli_report(im->file, st, &im->d);
		import_close(im);
		return CLI_FAIL;
	}
	/* Without texts, the events keep their features (docs/store.md),
	 * laid out for a preference model of the default parameters. */
	if (im->texts == PWB_STORE_FEATURES_ONLY &&
	    (st = pwb_prefs_model_new(&im->layout, NULL, &im->d))) {
		fprintf(stderr, "pwb feedback import: %s\n",
			im->d.n ? im->d.entries[0].message
				: pwb_status_str(st));
		import_close(im);
		return CLI_FAIL;
	}
	if (!(im->s = cli_store_open(im->db))) {
		import_close(im);
		return CLI_FAIL;
	}
	if ((im->total = pwb_feedback_bytes_total(im->rd)))
		cli_progress_start(&im->bar, "import", (size_t)im->total);
	return CLI_OK;
}

/* Ends the progress bar, before an error is printed. */
static void import_bar_end(importer *im)
{
	if (im->total)
		cli_progress_end(&im->bar);
}

/* Adds one event to the store, with its features when texts are not
 * stored; *id is 0 when its "id" was already stored. */
static pwb_status store_event(importer *im, const pwb_feedback *ev, int64_t *id)
{
	const char *role = pwb_rater_role_name(ev->rater_role);
	bool pair = ev->kind == PWB_FEEDBACK_PAIR;
	pwb_store_feedback fb = {
	    .kind = pair ? PWB_STORE_FB_PAIR : PWB_STORE_FB_RATING,
	    .user = ev->user,
	    .event_id = ev->id,
	    .ts = ev->has_ts ? ev->ts : 0,
	    .prompt = ev->prompt && ev->prompt[0] ? ev->prompt : NULL,
	    .chosen = ev->chosen,
	    .rejected = ev->rejected,
	    .response = ev->response,
	    .rating = ev->rating,
	    .scale_lo = ev->scale_lo,
	    .scale_hi = ev->scale_hi,
	    .rater_role = role && role[0] ? role : NULL,
	    .rater_attrs = ev->rater_attrs,
	};
	void *feat = NULL;
	pwb_status st;
	if (im->layout && (st = event_features(im->layout, ev, &feat,
					       &fb.features_len, &im->d)))
		return st;
	fb.features = feat;
	st = pwb_store_feedback_add(im->s, im->org, &fb, im->texts, im->now, id,
				    &im->d);
	free(feat);
	return st;
}

/* Commits the open batch ending at line `last` and counts it; names it
 * on standard output with --verbose. */
static pwb_status end_batch(importer *im, int last)
{
	im->open_tx = false;
	pwb_status st = commit_batch(
	    im->s, im->org, im->texts, im->batch_stored, im->batch_dups,
	    im->stats.first_line, last, im->now, &im->d);
	if (st)
		return st;
	im->stats.stored += im->batch_stored;
	im->stats.duplicates += im->batch_dups;
	im->stats.batches++;
	im->in_batch = im->batch_stored = im->batch_dups = 0;
	if (im->verbose) {
		printf("committed lines %d-%d\n", im->stats.first_line, last);
		fflush(stdout);
	}
	return PWB_OK;
}

/* Stores one event in the open batch (opening one first) and commits the
 * batch once it is full; prints the error and returns CLI_FAIL. */
static int import_event(importer *im, const pwb_feedback *ev)
{
	pwb_status st;
	if (!im->open_tx) {
		if ((st = pwb_store_begin(im->s, &im->d))) {
			print_at(im->file, ev->line, st, &im->d);
			return CLI_FAIL;
		}
		im->open_tx = true;
		im->stats.first_line = ev->line;
	}
	if (!ev->user || !ev->user[0]) {
		import_bar_end(im);
		fprintf(stderr, "%s:%d: error: the event names no \"user\"\n",
			im->file, ev->line);
		return CLI_FAIL;
	}
	int64_t id = 0;
	if ((st = store_event(im, ev, &id))) {
		import_bar_end(im);
		print_at(im->file, ev->line, st, &im->d);
		return CLI_FAIL;
	}
	im->in_batch++;
	if (id)
		im->batch_stored++;
	else
		im->batch_dups++;
	if (im->in_batch == im->batch && (st = end_batch(im, ev->line))) {
		import_bar_end(im);
		print_at(im->file, ev->line, st, &im->d);
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* Reads and imports every event, then commits the last batch; stops at
 * the first error, printed. */
static int import_events(importer *im)
{
	for (;;) {
		pwb_feedback ev;
		bool done = false;
		pwb_diag_clear(&im->d);
		pwb_status st = pwb_feedback_next(im->rd, &ev, &done, &im->d);
		if (st) {
			/* The reader's message names the file and line. */
			import_bar_end(im);
			cli_print_diag(&im->d);
			return CLI_FAIL;
		}
		if (done)
			break;
		if (import_event(im, &ev))
			return CLI_FAIL;
		if (im->total)
			cli_progress_update(
			    &im->bar, (size_t)pwb_feedback_bytes_read(im->rd));
	}
	int last = pwb_feedback_line(im->rd);
	pwb_status st;
	if (im->open_tx && (st = end_batch(im, last))) {
		print_at(im->file, last, st, &im->d);
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* What was imported; after an error, from which line on nothing was. */
static void import_summary(importer *im, int rc)
{
	if (rc == CLI_OK) {
		import_bar_end(im);
		printf("imported %llu events into org %s (%llu already stored, "
		       "skipped) in %llu batches; texts: %s (%s)\n",
		       (unsigned long long)im->stats.stored, im->org,
		       (unsigned long long)im->stats.duplicates,
		       (unsigned long long)im->stats.batches,
		       im->texts == PWB_STORE_TEXTS ? "kept" : "not stored",
		       im->why);
	} else {
		printf("imported %llu events into org %s in %llu committed "
		       "batches before the error; nothing from line %d on was "
		       "written\n",
		       (unsigned long long)im->stats.stored, im->org,
		       (unsigned long long)im->stats.batches,
		       im->open_tx || im->in_batch ? im->stats.first_line
						   : pwb_feedback_line(im->rd));
	}
}

/* `pwb feedback import`: the options, then the steps above. */
static int cmd_import(cli_args *a)
{
	importer im = {.batch = 1000, .now = cli_time_now()};
	cli_list pos = {0};
	const cli_spec spec[] = {
	    CLI_OPT_NEED("db", im.db, "URL"),
	    CLI_OPT_NEED("org", im.org, "ID"),
	    CLI_OPT_STR("policies", im.policies),
	    CLI_OPT_FLAG("features-only", im.features_only),
	    CLI_OPT_UINT("batch", im.batch, 1, 1000000),
	    CLI_OPT_NOW(im.now),
	    CLI_OPT_FLAG("verbose", im.verbose)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), import_usage, &pos);
	if (r)
		return cli_parsed(r);
	if (pos.n > 1)
		return cli_usage_error(a, "give one FILE");
	if (!pos.n)
		return cli_usage_error(a, "give the FILE.jsonl to import, or "
					  "'-' for standard input");
	im.file = pos.v[0];
	int rc = import_texts(&im, a);
	if (rc || (rc = import_open(&im)))
		return rc;
	rc = import_events(&im);
	if (im.open_tx)
		pwb_store_rollback(im.s);
	import_summary(&im, rc);
	import_close(&im);
	return rc;
}

int cli_feedback(int argc, char **argv)
{
	static const cli_sub subs[] = {{"import", cmd_import}};
	return cli_dispatch(argc, argv, "feedback", feedback_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
