/*
 * feedback.c - `pwb feedback import`: JSONL feedback events (DESIGN §4.3)
 * into a store, in transactional batches. Into a store that is not there
 * yet, the whole input is checked first, and the store made only when it
 * passes (docs/store.md, "pwb feedback import").
 */
#include "cli/cli.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char feedback_usage[] =
    "Usage: pwb feedback SUBCOMMAND [options]\n"
    "\n"
    "Subcommands:\n"
    "  import    store feedback events (JSONL)\n"
    "  give      prefer an alternative of a decision, or rate it\n"
    "\n"
    "Run 'pwb feedback SUBCOMMAND --help' for the options of each.\n";

static const char import_usage[] =
    "Usage: pwb feedback import --db URL --org ID [options] FILE.jsonl|-\n"
    "\n"
    "Stores the feedback events of FILE (one JSON object a line, DESIGN\n"
    "§4.3; '-' reads standard input) for the users of an org, with their\n"
    "rater provenance. Events are committed in batches, each one\n"
    "transaction: at a bad line the import stops, its batch is rolled\n"
    "back whole, and the batches before it stay. An event already stored\n"
    "(by its \"id\", or without one by its content: docs/store.md) is\n"
    "skipped, so importing a file again stores nothing twice. Into a store\n"
    "that does not exist yet, the whole input is checked first and the\n"
    "store is made only when it passes. The org must be one of the\n"
    "policies' orgs.\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (docs/store.md)\n"
    "  --org ID             the organisation the users belong to\n"
    "  --policies DIR       the policy folder: it must know the org, and\n"
    "                       when its learning restrictions say\n"
    "                       store_texts: false, no text is written\n"
    "                       (default: the folder the store recorded)\n"
    "  --features-only      never write texts (prompts, responses)\n"
    "  --batch N            events per transaction (default 1000)\n"
    "  --verbose            print a line after each committed batch\n"
    "                       (what it names is on disk)\n"
    "  --now SECONDS        the arrival time to record (default: now)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb feedback import --db sqlite:pwb.db --org acme-tutor \\\n"
    "      --policies policies feedback.jsonl\n"
    "\n"
    "Exit status: 0 when every line was imported, 1 at a bad line or a\n"
    "store error (naming the line), 2 on a usage error.\n";

typedef struct import_stats {
	uint64_t stored, duplicates, batches;
	int first_line; /* of the open batch */
} import_stats;

/* "s" for a count other than 1. */
static const char *plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

static const char *batches(uint64_t n)
{
	return n == 1 ? "batch" : "batches";
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
	char *policy_dir; /* --policies, or the folder the store recorded */
	/* What the reader opens: file, or a copy of it (/dev/fd/N) when it
	 * cannot be read twice and the store is new. */
	const char *input;
	char spool[32];
	int spool_fd;
	bool new_store; /* no store at --db yet: made after the check */
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

/*
 * The org's policy, from --policies or else the folder the store recorded
 * (the store is opened here to read it): resolving it checks that the
 * policies know the org (docs/store.md, "Orgs and policies"), and says
 * whether texts are stored: not with --features-only, nor where the org's
 * learning restrictions say store_texts: false.
 */
static int import_policies(importer *im, cli_args *a)
{
	im->texts =
	    im->features_only ? PWB_STORE_FEATURES_ONLY : PWB_STORE_TEXTS;
	im->why = im->features_only ? "--features-only" : "default";
	bool missing = false;
	if (!im->policies &&
	    !(im->s =
		  cli_store_open_mode(im->db, PWB_STORE_EXISTING, &missing)) &&
	    !missing)
		return CLI_FAIL;
	int rc =
	    cli_store_policies_for(a, im->s, im->policies, &im->policy_dir);
	if (rc)
		return rc;
	cli_resolve res = {0};
	res.policies = im->policy_dir;
	res.org = im->org;
	rc = cli_resolve_run(&res, a);
	if (rc) {
		if (!im->policies)
			fprintf(stderr,
				"%s: note: the policies read are those of %s, "
				"the folder the store recorded; give "
				"--policies DIR for others\n",
				a->cmd, im->policy_dir);
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
	if (im->spool_fd >= 0)
		close(im->spool_fd);
	free(im->policy_dir);
	pwb_diag_release(&im->d);
}

/* The reader's messages about a copy of the input name the input. */
static void relabel(importer *im)
{
	for (size_t i = 0; im->input != im->file && i < im->d.n; i++) {
		pwb_diag_entry *e = &im->d.entries[i];
		char *f;
		if (e->file && !strcmp(e->file, im->input) &&
		    (f = strdup(im->file))) {
			free(e->file);
			e->file = f;
		}
	}
}

/* Whether the input can be read a second time from its start: a file,
 * not standard input or a pipe. (What cannot be opened goes to the
 * reader, which says why.) */
static bool rereadable(const char *file)
{
	struct stat st;
	return strcmp(file, "-") &&
	       (stat(file, &st) || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode));
}

/* A line longer than this ends the copy: the reader refuses far shorter
 * ones (16 MiB; it gives up on a line after 80), so that it, and not the
 * copy, says what is wrong with the line. */
#define SPOOL_MAX_LINE (128u << 20)

/*
 * Copies an input that cannot be read twice into a temporary file (in
 * $TMPDIR, else /tmp), unlinked at once and read as /dev/fd/N, so that it
 * can be checked whole before a new store is made; prints the error and
 * returns CLI_FAIL when it cannot.
 */
static int spool_input(importer *im)
{
	bool std = !strcmp(im->file, "-");
	int in = std ? STDIN_FILENO : open(im->file, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		fprintf(stderr, "%s: error: cannot read: %s\n", im->file,
			strerror(errno));
		return CLI_FAIL;
	}
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/pwb-import-XXXXXX",
		 dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path), rc = CLI_OK;
	if (fd < 0) {
		fprintf(stderr,
			"%s: error: cannot make a copy of %s to check before "
			"the store is made: %s\n",
			path, im->file, strerror(errno));
		rc = CLI_FAIL;
	} else {
		unlink(path);
	}
	static char buf[1 << 16];
	uint64_t line = 0; /* bytes of the last line so far */
	while (!rc && line <= SPOOL_MAX_LINE) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "%s: error: read error: %s\n", im->file,
				strerror(errno));
			rc = CLI_FAIL;
		} else if (n == 0) {
			break;
		} else if ((errno = pwb__write_all(fd, buf, (size_t)n))) {
			fprintf(stderr,
				"%s: error: cannot copy %s to check it: %s\n",
				path, im->file, strerror(errno));
			rc = CLI_FAIL;
		} else {
			const char *nl = memrchr(buf, '\n', (size_t)n);
			line = nl ? (uint64_t)(buf + n - nl - 1)
				  : line + (uint64_t)n;
		}
	}
	if (!std)
		close(in);
	if (rc) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	im->spool_fd = fd;
	snprintf(im->spool, sizeof(im->spool), "/dev/fd/%d", fd);
	im->input = im->spool;
	return CLI_OK;
}

/*
 * Opens the store unless open already (one that is not there is made only
 * after the check: new_store), the input (a copy of it when the store is
 * new and it cannot be read twice) and the features' layout (when texts
 * are not stored); prints the error and returns CLI_FAIL when one fails.
 */
static int import_open(importer *im)
{
	bool missing = false;
	if (!im->s &&
	    !(im->s =
		  cli_store_open_mode(im->db, PWB_STORE_EXISTING, &missing)) &&
	    !missing)
		return CLI_FAIL;
	im->new_store = missing;
	im->input = im->file;
	int rc;
	if (im->new_store && !rereadable(im->file) && (rc = spool_input(im)))
		return rc;
	pwb_status st = pwb_feedback_open(&im->rd, im->input, &im->d);
	if (st) {
		relabel(im);
		cli_report(im->file, st, &im->d);
		return CLI_FAIL;
	}
	/* Without texts, the events keep their features (docs/store.md),
	 * laid out for a preference model of the default parameters. */
	if (im->texts == PWB_STORE_FEATURES_ONLY &&
	    (st = pwb_prefs_model_new(&im->layout, NULL, &im->d))) {
		fprintf(stderr, "pwb feedback import: %s\n",
			im->d.n ? im->d.entries[0].message
				: pwb_status_str(st));
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* Ends the progress bar, before an error is printed. */
static void import_bar_end(importer *im)
{
	if (im->total)
		cli_progress_end(&im->bar);
	im->total = 0;
}

/*
 * Prints why the event at `line` was not stored: what the store refuses
 * in the event as FILE:LINE: error: ...; a failure of the store itself
 * (I/O, a read-only or full database), where the line is not at fault, as
 * the store's.
 */
static void report_at(importer *im, int line, pwb_status st)
{
	import_bar_end(im);
	if (st == PWB_EIO || st == PWB_ENOMEM) {
		char doing[600];
		snprintf(doing, sizeof(doing), "store line %d of %s", line,
			 im->file);
		cli_store_report(im->s, doing, st, &im->d);
		return;
	}
	const char *msg =
	    im->d.n ? im->d.entries[0].message : pwb_status_str(st);
	fprintf(stderr, "%s:%d: error: %s\n", im->file, line, msg);
}

/* The event as the store takes it, without features. */
static pwb_store_feedback event_fb(const pwb_feedback *ev)
{
	const char *role = pwb_rater_role_name(ev->rater_role);
	bool pair = ev->kind == PWB_FEEDBACK_PAIR;
	return (pwb_store_feedback){
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
}

/* An event must name its user; prints the error when it does not. */
static int event_has_user(importer *im, const pwb_feedback *ev)
{
	if (ev->user && ev->user[0])
		return CLI_OK;
	import_bar_end(im);
	fprintf(stderr, "%s:%d: error: the event names no \"user\"\n", im->file,
		ev->line);
	return CLI_FAIL;
}

/*
 * Reads every event of the input with a progress bar labelled `label`,
 * handing each to fn; stops at the first error (the reader's, printed
 * here with its file and line, or fn's, which prints its own).
 */
static int walk_events(importer *im, const char *label,
		       int (*fn)(importer *im, const pwb_feedback *ev))
{
	if ((im->total = pwb_feedback_bytes_total(im->rd)))
		cli_progress_start(&im->bar, label, (size_t)im->total);
	for (;;) {
		pwb_feedback ev;
		bool done = false;
		pwb_diag_clear(&im->d);
		if (pwb_feedback_next(im->rd, &ev, &done, &im->d)) {
			import_bar_end(im);
			relabel(im);
			cli_print_diag(&im->d);
			return CLI_FAIL;
		}
		if (done)
			return CLI_OK;
		if (fn(im, &ev))
			return CLI_FAIL;
		if (im->total)
			cli_progress_update(
			    &im->bar, (size_t)pwb_feedback_bytes_read(im->rd));
	}
}

/* One event checked as the import will check it, writing nothing. */
static int check_event(importer *im, const pwb_feedback *ev)
{
	if (event_has_user(im, ev))
		return CLI_FAIL;
	pwb_store_feedback fb = event_fb(ev);
	pwb_status st =
	    pwb_store_feedback_check(im->org, &fb, im->texts, &im->d);
	if (st) {
		report_at(im, ev->line, st);
		return CLI_FAIL;
	}
	return CLI_OK;
}

/*
 * Before a new store is made: reads every event and checks it as the
 * import will (its user, then the store's own checks), writing nothing;
 * then opens the input again for the import. Prints the first error and
 * returns CLI_FAIL.
 */
static int import_check(importer *im)
{
	if (walk_events(im, "check", check_event))
		return CLI_FAIL;
	import_bar_end(im);
	pwb_status st;
	pwb_feedback_close(im->rd);
	im->rd = NULL;
	pwb_diag_clear(&im->d);
	if ((st = pwb_feedback_open(&im->rd, im->input, &im->d))) {
		relabel(im);
		cli_report(im->file, st, &im->d);
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* Adds one event to the store, with its features when texts are not
 * stored, and its content id when it has no "id"; *id is 0 when it was
 * already stored. */
static pwb_status store_event(importer *im, const pwb_feedback *ev, int64_t *id)
{
	pwb_store_feedback fb = event_fb(ev);
	char cid[PWB_STORE_CONTENT_ID_SIZE];
	if (!fb.event_id) {
		pwb_store_feedback_content_id(im->s, &fb, cid);
		fb.event_id = cid;
	}
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
			report_at(im, ev->line, st);
			return CLI_FAIL;
		}
		im->open_tx = true;
		im->stats.first_line = ev->line;
	}
	if (event_has_user(im, ev))
		return CLI_FAIL;
	int64_t id = 0;
	if ((st = store_event(im, ev, &id))) {
		report_at(im, ev->line, st);
		return CLI_FAIL;
	}
	im->in_batch++;
	if (id)
		im->batch_stored++;
	else
		im->batch_dups++;
	if (im->in_batch == im->batch && (st = end_batch(im, ev->line))) {
		report_at(im, ev->line, st);
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* Reads and imports every event, then commits the last batch; stops at
 * the first error, printed. */
static int import_events(importer *im)
{
	if (walk_events(im, "import", import_event))
		return CLI_FAIL;
	int last = pwb_feedback_line(im->rd);
	pwb_status st;
	if (im->open_tx && (st = end_batch(im, last))) {
		report_at(im, last, st);
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* What was imported (and what was there already); after an error, from
 * which line on nothing was written. */
static void import_summary(importer *im, int rc)
{
	unsigned long long n = im->stats.stored, dups = im->stats.duplicates,
			   b = im->stats.batches;
	if (rc == CLI_OK) {
		import_bar_end(im);
		if (!n && !dups)
			printf("imported 0 events into org %s: the input "
			       "holds none\n",
			       im->org);
		else if (!n)
			printf("imported 0 events into org %s; %llu event%s "
			       "already stored, skipped: nothing new was "
			       "written\n",
			       im->org, dups, plural(dups));
		else {
			printf("imported %llu event%s into org %s in %llu %s",
			       n, plural(n), im->org, b, batches(b));
			if (dups)
				printf(" (%llu event%s already stored, "
				       "skipped)",
				       dups, plural(dups));
			printf("; texts: %s (%s)\n",
			       im->texts == PWB_STORE_TEXTS ? "kept"
							    : "not stored",
			       im->why);
		}
	} else if (im->new_store && !im->s) {
		printf("imported 0 events into org %s; nothing was written: "
		       "a new store is made only once its whole input is "
		       "valid, and none was made\n",
		       im->org);
	} else if (!b) {
		printf("imported 0 events into org %s before the error; "
		       "nothing was written\n",
		       im->org);
	} else {
		printf("imported %llu event%s into org %s in %llu committed "
		       "%s before the error; nothing from line %d on was "
		       "written\n",
		       n, plural(n), im->org, b, batches(b),
		       im->open_tx || im->in_batch ? im->stats.first_line
						   : pwb_feedback_line(im->rd));
	}
}

/* `pwb feedback import`: the options, then the steps above. */
static int cmd_import(cli_args *a)
{
	importer im = {.batch = 1000, .now = cli_time_now(), .spool_fd = -1};
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
	pwb_diag_init(&im.d);
	int rc = import_policies(&im, a);
	if (!rc)
		rc = import_open(&im);
	if (!rc && im.new_store) {
		/* The store is made only once the whole input is valid. */
		if ((rc = import_check(&im)))
			import_summary(&im, rc);
		else if (!(im.s = cli_store_open(im.db)))
			rc = CLI_FAIL;
	}
	if (rc) {
		import_close(&im);
		return rc;
	}
	if (im.policies &&
	    (rc = cli_store_record_policies(im.s, im.policies))) {
		import_close(&im);
		return rc;
	}
	rc = import_events(&im);
	if (im.open_tx)
		pwb_store_rollback(im.s);
	import_summary(&im, rc);
	import_close(&im);
	return rc;
}

static const char give_usage[] =
    "Usage: pwb feedback give --db URL --org ID --user ID --decision ID\n"
    "           (--choose ALT | --rating R [--alt ALT] | --prefer ALT "
    "--over ALT)\n"
    "           [--policies DIR] [--prefs MODEL] [--json]\n"
    "\n"
    "Feedback on one decision of 'pwb ask' (docs/pipeline.md): the user\n"
    "prefers an alternative over the others (--choose), over one other\n"
    "(--prefer A --over B), or rates the answer they got from 1 to 5\n"
    "(--rating; above 3 prefers it over the other alternatives, below 3\n"
    "the others over it). The decision must be the user's own and not\n"
    "blocked. The event is stored with its rater, the user's model learns\n"
    "from it within their bounds, and its version goes up. Where the law\n"
    "needs the user's consent to learn and they have not given it,\n"
    "nothing is stored or learnt.\n"
    "\n"
    "Options:\n"
    "  --db URL             the store the decision was recorded in\n"
    "  --policies DIR       the policy folder (default: the folder the\n"
    "                       store recorded)\n"
    "  --org ID             the organisation\n"
    "  --user ID            the user giving the feedback\n"
    "  --decision ID        the decision (from 'pwb ask --db')\n"
    "  --choose ALT         prefer alternative ALT (A, B, ...)\n"
    "  --rating R           rate the answer given, 1 to 5\n"
    "  --alt ALT            with --rating: rate this alternative instead\n"
    "  --prefer ALT         prefer ALT ...\n"
    "  --over ALT           ... over this one\n"
    "  --prefs MODEL        the population model 'pwb ask' used, if any\n"
    "  --json               print the result as JSON\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb feedback give --db sqlite:pwb.db --policies policies "
    "--org acme-tutor --user u1 --decision dec_0123 --choose B\n"
    "\n"
    "Exit status: 0 when stored (or when consent is missing: then it says\n"
    "so), 1 when refused (another user's decision, an unknown\n"
    "alternative, a blocked decision) or on an error, 2 on a usage error.\n";

typedef struct give_opts {
	const char *db, *policies, *org, *user, *decision, *choose, *alt;
	const char *prefer, *over, *prefs;
	double rating;
	bool json;
} give_opts;

static int give_kind(cli_args *a, const give_opts *o, pwb_feedback_give *fb)
{
	int kinds = !!o->choose + (o->rating > 0) + !!(o->prefer || o->over);
	if (kinds != 1)
		return cli_usage_error(a, "give one of --choose ALT, --rating R "
					  "and --prefer ALT --over ALT");
	if ((o->prefer || o->over) && !(o->prefer && o->over))
		return cli_usage_error(a, "--prefer and --over go together");
	if (o->alt && o->rating <= 0)
		return cli_usage_error(a, "--alt goes with --rating");
	if (o->choose)
		*fb = (pwb_feedback_give){.kind = PWB_FB_CHOOSE, .alt = o->choose};
	else if (o->prefer)
		*fb = (pwb_feedback_give){
		    .kind = PWB_FB_PAIR, .alt = o->prefer, .other = o->over};
	else
		*fb = (pwb_feedback_give){
		    .kind = PWB_FB_RATING, .alt = o->alt, .rating = o->rating};
	fb->org = o->org;
	fb->user = o->user;
	fb->decision_id = o->decision;
	return CLI_OK;
}

static int give_run(cli_args *a, const give_opts *o, pwb_feedback_give *fb)
{
	pwb_store *s = cli_store_open_mode(o->db, PWB_STORE_EXISTING, NULL);
	char *dir = NULL;
	int rc = s ? cli_store_policies_for(a, s, o->policies, &dir) : CLI_FAIL;
	if (!rc)
		rc = cli_store_org(s, o->org);
	pwb_policy *pol = NULL;
	pwb_pipeline *pl = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = PWB_OK;
	bool failed = false;
	if (!rc) {
		pwb_policy_params pp = pwb_policy_default_params();
		if ((st = pwb_policy_load(&pol, dir, &pp, &d)))
			cli_report(dir, st, &d);
	}
	pwb_feedback_result res;
	if (!rc && !st) {
		pwb_pipeline_params pp = pwb_pipeline_default_params();
		pp.policy = pol;
		pp.store = s;
		pp.prefs = cli_prefs_open(o->prefs, &failed);
		if (!failed && !(st = pwb_pipeline_new(&pl, &pp, &d)) &&
		    (st = pwb_pipeline_feedback(pl, fb, &res, &d)) &&
		    d.n > 1) {
			/* One feedback fails for one reason: the last message
			 * says it for the decision (a model of another layout
			 * also leaves the reader's own words before it). */
			pwb_diag_entry last = d.entries[d.n - 1];
			d.entries[d.n - 1] = d.entries[0];
			d.entries[0] = last;
			pwb__diag_rewind(&d, 1);
		}
		if (st)
			cli_report(NULL, st, &d);
	}
	if (!rc)
		rc = st || failed ? CLI_FAIL : CLI_OK;
	if (!rc && o->json)
		printf("{\"decision_id\": \"%s\", \"pairs_learnt\": %zu, "
		       "\"model_version\": %lld, \"consent_needed\": %s}\n",
		       o->decision, res.pairs_learnt,
		       (long long)res.model_version,
		       res.consent_needed ? "true" : "false");
	else if (!rc && res.consent_needed)
		printf("not stored: learning from user '%s' needs their "
		       "consent (pwb user consent --grant, when they give "
		       "it)\n",
		       o->user);
	else if (!rc)
		printf("stored: %zu pair%s learnt, model version %lld\n",
		       res.pairs_learnt, res.pairs_learnt == 1 ? "" : "s",
		       (long long)res.model_version);
	pwb_pipeline_free(pl);
	pwb_policy_free(pol);
	pwb_store_free(s);
	free(dir);
	pwb_diag_release(&d);
	return rc;
}

static int cmd_give(cli_args *a)
{
	give_opts o = {0};
	const cli_spec spec[] = {
	    CLI_OPT_STR("db", o.db),	      CLI_OPT_STR("policies", o.policies),
	    CLI_OPT_STR("org", o.org),	      CLI_OPT_STR("user", o.user),
	    CLI_OPT_STR("decision", o.decision),
	    CLI_OPT_STR("choose", o.choose),  CLI_OPT_NUM("rating", o.rating, 1, 5),
	    CLI_OPT_STR("alt", o.alt),	      CLI_OPT_STR("prefer", o.prefer),
	    CLI_OPT_STR("over", o.over),      CLI_OPT_STR("prefs", o.prefs),
	    CLI_OPT_FLAG("json", o.json),
	};
	int rc = cli_parse(a, spec, PWB_ARRAY_LEN(spec), give_usage, NULL);
	if (rc)
		return cli_parsed(rc);
	if (!o.db || !o.org || !o.user || !o.decision)
		return cli_usage_error(a, "--db, --org, --user and --decision "
					  "are required");
	if ((rc = cli_check_id(a, "--user", o.user)))
		return rc;
	if (o.prefs && (rc = cli_check_readable(a, "prefs", o.prefs)))
		return rc;
	pwb_feedback_give fb;
	if ((rc = give_kind(a, &o, &fb)))
		return rc;
	return give_run(a, &o, &fb);
}

int cli_feedback(int argc, char **argv)
{
	static const cli_sub subs[] = {{"import", cmd_import},
				       {"give", cmd_give}};
	return cli_dispatch(argc, argv, "feedback", feedback_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
