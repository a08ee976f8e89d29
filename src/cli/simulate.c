/* simulate.c - `pwb simulate prefs`: simulated users and their feedback. */
#include "cli/cli.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char simulate_usage[] =
    "Usage: pwb simulate prefs [options]\n"
    "       pwb simulate db --db URL --org ID [options]\n"
    "\n"
    "Run 'pwb simulate SUBCOMMAND --help' for the options of each.\n";

static const char prefs_usage[] =
    "Usage: pwb simulate prefs [--users N] [--events N] [--seed S] "
    "[--spread X]\n"
    "                          [--gain X] [--out FILE] "
    "[--settings-dir DIR]\n"
    "\n"
    "Simulates users with hidden preferences over the measured dimensions\n"
    "(population mean + spread x N(0, 1) each), candidate responses built\n"
    "from templates that vary length, register, warmth, humour, hedges,\n"
    "emoji, lists, questions and formatting, and noisy Bradley-Terry\n"
    "choices between them (a fifth of the events are 1-5 ratings). Writes\n"
    "feedback events as JSONL (docs/prefs.md); the same options give the\n"
    "same file.\n"
    "\n"
    "Options:\n"
    "  --users N            users (default 100)\n"
    "  --events N           events per user (default 40)\n"
    "  --seed S             random seed (default 1)\n"
    "  --spread X           how much users differ (default 1; 0: alike)\n"
    "  --gain X             how consistently they choose (default 4)\n"
    "  --out FILE           write here (atomically) instead of stdout\n"
    "  --settings-dir DIR   also write each user's stated settings,\n"
    "                       DIR/<user>.json, for 'pwb eval prefs', e.g.\n"
    "                       "
    "{\"dimensions\":{\"humour\":0.9,\"formality\":0.1}}\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb simulate prefs --users 100 --events 40 --out sim.jsonl \\\n"
    "      --settings-dir settings\n"
    "\n"
    "Exit status: 0 when every event was written, 1 on an error, 2 on a\n"
    "usage error.\n";

/* Where events go: a FILE (stdout), or the temporary file of
 * pwb__replace_file through a staging buffer (--out: streamed, and
 * renamed into place only once every event is written). */
typedef struct sink {
	FILE *f;
	int fd;
	int err; /* errno of the first failed write to fd */
	size_t len;
	char stage[65536];
} sink;

static void sink_flush(sink *s)
{
	if (!s->err && s->len)
		s->err = pwb__write_all(s->fd, s->stage, s->len);
	s->len = 0;
}

static void sink_put(sink *s, const char *data, size_t n)
{
	while (n && !s->err) {
		size_t k = sizeof(s->stage) - s->len;
		if (k > n)
			k = n;
		memcpy(s->stage + s->len, data, k);
		s->len += k;
		data += k;
		n -= k;
		if (s->len == sizeof(s->stage))
			sink_flush(s);
	}
}

static int emit(void *ctx, const char *line, size_t len)
{
	sink *s = ctx;
	if (!s->f) {
		sink_put(s, line, len);
		sink_put(s, "\n", 1);
		return s->err ? -1 : 0;
	}
	if (fwrite(line, 1, len, s->f) != len || fputc('\n', s->f) == EOF)
		return -1;
	return 0;
}

/* The simulation, run inside pwb__replace_file. */
typedef struct sim_job {
	const pwb_prefs_sim_params *p;
	sink *s;
	pwb_diag *diag;
	bool failed;
} sim_job;

static int simulate_to_fd(void *user, int fd)
{
	sim_job *j = user;
	j->s->fd = fd;
	if (pwb_prefs_simulate(j->p, emit, j->s, j->diag)) {
		j->failed = true;
		return j->s->err ? j->s->err : EIO;
	}
	sink_flush(j->s);
	return j->s->err;
}

static int write_buf(void *user, int fd)
{
	pwb__buf *b = user;
	return pwb__write_all(fd, b->s, b->len);
}

static int cmd_prefs(cli_args *a)
{
	pwb_prefs_sim_params p = pwb_prefs_sim_default_params();
	const char *outp = NULL, *sdir = NULL;
	const cli_spec spec[] = {CLI_OPT_UINT("users", p.users, 1, 10000000),
				 CLI_OPT_UINT("events", p.events, 1, 100000),
				 CLI_OPT_UINT("seed", p.seed, 0, INT64_MAX),
				 CLI_OPT_NUM("spread", p.spread, 0, 100),
				 CLI_OPT_NUM("gain", p.gain, 0.001, 1000),
				 CLI_OPT_STR("out", outp),
				 CLI_OPT_STR("settings-dir", sdir)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), prefs_usage, NULL);
	if (r)
		return cli_parsed(r);
	if ((double)p.users * (double)p.events > 50e6)
		return cli_usage_error(a, "--users x --events is over 50 "
					  "million events");
	sink *s = calloc(1, sizeof(*s));
	if (!s) {
		fprintf(stderr, "error: out of memory\n");
		return CLI_FAIL;
	}
	s->f = outp ? NULL : stdout;
	pwb_diag diag;
	pwb_diag_init(&diag);
	int rc = CLI_FAIL;
	if (sdir && mkdir(sdir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "%s: error: %s\n", sdir, strerror(errno));
		goto out;
	}
	for (size_t u = 0; sdir && u < p.users; u++) {
		char *json = NULL, path[4096];
		if (pwb_prefs_sim_settings(&p, u, &json)) {
			fprintf(stderr, "error: out of memory\n");
			goto out;
		}
		snprintf(path, sizeof(path), "%s/u%05zu.json", sdir, u);
		pwb__buf one = {json, strlen(json), 0, 0, PWB_OK, true};
		pwb_status st = pwb__replace_file(path, write_buf, &one, &diag);
		free(json);
		if (st) {
			cli_print_diag(&diag);
			goto out;
		}
	}
	if (outp) {
		/* The file's own failure apart from the simulation's. */
		pwb_diag fdiag;
		pwb_diag_init(&fdiag);
		sim_job job = {&p, s, &diag, false};
		if (pwb__replace_file(outp, simulate_to_fd, &job, &fdiag)) {
			if (job.failed && diag.n && !s->err)
				cli_print_diag(&diag);
			else
				cli_print_diag(&fdiag);
			pwb_diag_release(&fdiag);
			goto out;
		}
		pwb_diag_release(&fdiag);
	} else if (pwb_prefs_simulate(&p, emit, s, &diag)) {
		if (ferror(stdout))
			fprintf(stderr, "error: cannot write to standard "
					"output\n");
		else
			cli_print_diag(&diag);
		goto out;
	}
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	free(s);
	pwb_diag_release(&diag);
	return rc;
}

int cli_simulate(int argc, char **argv)
{
	static const cli_sub subs[] = {{"prefs", cmd_prefs},
				       {"db", cli_simulate_db}};
	return cli_dispatch(argc, argv, "simulate", simulate_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
