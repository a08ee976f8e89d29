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

static int cmd_import(cli_args *a)
{
	const char *db = NULL, *org = NULL, *policies = NULL;
	bool features_only = false, verbose = false;
	uint64_t batch = 1000;
	int64_t now = cli_time_now();
	cli_list pos = {0};
	const cli_spec spec[] = {CLI_OPT_NEED("db", db, "URL"),
				 CLI_OPT_NEED("org", org, "ID"),
				 CLI_OPT_STR("policies", policies),
				 CLI_OPT_FLAG("features-only", features_only),
				 CLI_OPT_UINT("batch", batch, 1, 1000000),
				 CLI_OPT_NOW(now),
				 CLI_OPT_FLAG("verbose", verbose)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), import_usage, &pos);
	if (r)
		return cli_parsed(r);
	if (pos.n > 1)
		return cli_usage_error(a, "give one FILE");
	if (!pos.n)
		return cli_usage_error(a, "give the FILE.jsonl to import, or "
					  "'-' for standard input");
	const char *file = pos.v[0];

	pwb_store_texts texts =
	    features_only ? PWB_STORE_FEATURES_ONLY : PWB_STORE_TEXTS;
	const char *why = features_only ? "--features-only" : "default";
	char why_buf[512];
	if (policies) {
		cli_resolve res = {0};
		res.policies = policies;
		res.org = org;
		int rc = cli_resolve_run(&res, a);
		if (rc) {
			cli_resolve_release(&res);
			return rc;
		}
		const pwb_eff_learning *l =
		    pwb_effective_learning(res.effective);
		if (!l->store_texts) {
			texts = PWB_STORE_FEATURES_ONLY;
			snprintf(why_buf, sizeof(why_buf),
				 "store_texts: false, %s",
				 l->store_texts_set_by.source
				     ? l->store_texts_set_by.source
				     : "policy");
			why = why_buf;
		}
		cli_resolve_release(&res);
	}

	pwb_diag d;
	pwb_diag_init(&d);
	pwb_feedback_reader *rd = NULL;
	pwb_status st = pwb_feedback_open(&rd, file, &d);
	if (st) {
		cli_report(file, st, &d);
		pwb_diag_release(&d);
		return CLI_FAIL;
	}
	/* Without texts, the events keep their features (docs/store.md),
	 * laid out for a preference model of the default parameters. */
	pwb_prefs_model *layout = NULL;
	if (texts == PWB_STORE_FEATURES_ONLY &&
	    pwb_prefs_model_new(&layout, NULL)) {
		fprintf(stderr, "pwb feedback import: out of memory\n");
		pwb_feedback_close(rd);
		pwb_diag_release(&d);
		return CLI_FAIL;
	}
	pwb_store *s = cli_store_open(db);
	if (!s) {
		pwb_prefs_model_free(layout);
		pwb_feedback_close(rd);
		pwb_diag_release(&d);
		return CLI_FAIL;
	}

	int rc = CLI_OK;
	import_stats stats = {0};
	uint64_t in_batch = 0, batch_stored = 0, batch_dups = 0;
	bool open_tx = false;
	cli_progress bar;
	uint64_t total = pwb_feedback_bytes_total(rd);
	if (total)
		cli_progress_start(&bar, "import", (size_t)total);
	for (;;) {
		pwb_feedback ev;
		bool done = false;
		pwb_diag_clear(&d);
		st = pwb_feedback_next(rd, &ev, &done, &d);
		if (st) {
			/* The reader's message names the file and line. */
			if (total)
				cli_progress_end(&bar);
			if (!d.n)
				fprintf(stderr, "%s:%d: error: %s\n", file,
					pwb_feedback_line(rd),
					pwb_status_str(st));
			cli_print_diag(&d);
			rc = CLI_FAIL;
			break;
		}
		if (done)
			break;
		if (!open_tx) {
			if ((st = pwb_store_begin(s, &d))) {
				print_at(file, ev.line, st, &d);
				rc = CLI_FAIL;
				break;
			}
			open_tx = true;
			stats.first_line = ev.line;
		}
		if (!ev.user || !ev.user[0]) {
			if (total)
				cli_progress_end(&bar);
			fprintf(stderr,
				"%s:%d: error: the event names no \"user\"\n",
				file, ev.line);
			rc = CLI_FAIL;
			break;
		}
		const char *role = pwb_rater_role_name(ev.rater_role);
		bool pair = ev.kind == PWB_FEEDBACK_PAIR;
		pwb_store_feedback fb = {
		    .kind = pair ? PWB_STORE_FB_PAIR : PWB_STORE_FB_RATING,
		    .user = ev.user,
		    .event_id = ev.id,
		    .ts = ev.has_ts ? ev.ts : 0,
		    .prompt = ev.prompt && ev.prompt[0] ? ev.prompt : NULL,
		    .chosen = ev.chosen,
		    .rejected = ev.rejected,
		    .response = ev.response,
		    .rating = ev.rating,
		    .scale_lo = ev.scale_lo,
		    .scale_hi = ev.scale_hi,
		    .rater_role = role && role[0] ? role : NULL,
		    .rater_attrs = ev.rater_attrs,
		};
		void *feat = NULL;
		if (layout && (st = event_features(layout, &ev, &feat,
						   &fb.features_len, &d))) {
			if (total)
				cli_progress_end(&bar);
			print_at(file, ev.line, st, &d);
			rc = CLI_FAIL;
			break;
		}
		fb.features = feat;
		int64_t id = 0;
		st = pwb_store_feedback_add(s, org, &fb, texts, now, &id, &d);
		free(feat);
		if (st) {
			if (total)
				cli_progress_end(&bar);
			print_at(file, ev.line, st, &d);
			rc = CLI_FAIL;
			break;
		}
		in_batch++;
		if (id)
			batch_stored++;
		else
			batch_dups++;
		if (in_batch == batch) {
			open_tx = false;
			if ((st = commit_batch(s, org, texts, batch_stored,
					       batch_dups, stats.first_line,
					       ev.line, now, &d))) {
				if (total)
					cli_progress_end(&bar);
				print_at(file, ev.line, st, &d);
				rc = CLI_FAIL;
				break;
			}
			stats.stored += batch_stored;
			stats.duplicates += batch_dups;
			stats.batches++;
			in_batch = batch_stored = batch_dups = 0;
			if (verbose) {
				printf("committed lines %d-%d\n",
				       stats.first_line, ev.line);
				fflush(stdout);
			}
		}
		if (total)
			cli_progress_update(
			    &bar, (size_t)pwb_feedback_bytes_read(rd));
	}
	if (rc == CLI_OK && open_tx) {
		open_tx = false;
		if ((st = commit_batch(s, org, texts, batch_stored, batch_dups,
				       stats.first_line, pwb_feedback_line(rd),
				       now, &d))) {
			print_at(file, pwb_feedback_line(rd), st, &d);
			rc = CLI_FAIL;
		} else {
			stats.stored += batch_stored;
			stats.duplicates += batch_dups;
			stats.batches++;
			in_batch = 0;
			if (verbose)
				printf("committed lines %d-%d\n",
				       stats.first_line, pwb_feedback_line(rd));
		}
	}
	if (open_tx)
		pwb_store_rollback(s);
	if (rc == CLI_OK) {
		if (total)
			cli_progress_end(&bar);
		printf("imported %llu events into org %s (%llu already stored, "
		       "skipped) in %llu batches; texts: %s (%s)\n",
		       (unsigned long long)stats.stored, org,
		       (unsigned long long)stats.duplicates,
		       (unsigned long long)stats.batches,
		       texts == PWB_STORE_TEXTS ? "kept" : "not stored", why);
	} else {
		printf("imported %llu events into org %s in %llu committed "
		       "batches before the error; nothing from line %d on was "
		       "written\n",
		       (unsigned long long)stats.stored, org,
		       (unsigned long long)stats.batches,
		       open_tx || in_batch ? stats.first_line
					   : pwb_feedback_line(rd));
	}
	pwb_store_free(s);
	pwb_prefs_model_free(layout);
	pwb_feedback_close(rd);
	pwb_diag_release(&d);
	return rc;
}

int cli_feedback(int argc, char **argv)
{
	static const cli_sub subs[] = {{"import", cmd_import}};
	return cli_dispatch(argc, argv, "feedback", feedback_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
