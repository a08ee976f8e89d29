/* util.c - helpers shared by the pwb subcommands. */
#include "util/util.h"
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void cli_print_diag(pwb_diag *d)
{
	pwb_diag_sort(d);
	char line[4096];
	for (size_t i = 0; i < d->n; i++) {
		pwb_diag_format(&d->entries[i], line, sizeof(line));
		fprintf(stderr, "%s\n", line);
	}
	if (d->dropped)
		fprintf(stderr, "error: %zu more errors not shown\n",
			d->dropped);
}

void cli_report(const char *where, pwb_status st, pwb_diag *d)
{
	if (!d->n)
		fprintf(stderr, "%s%serror: %s\n", where ? where : "",
			where ? ": " : "", pwb_status_str(st));
	cli_print_diag(d);
}

/* Whether a is b with two neighbouring characters swapped. */
static bool transposed(const char *a, const char *b)
{
	size_t n = strlen(a), i = 0;
	if (n != strlen(b) || n < 2)
		return false;
	while (i < n && a[i] == b[i])
		i++;
	return i + 1 < n && a[i] == b[i + 1] && a[i + 1] == b[i] &&
	       !strcmp(a + i + 2, b + i + 2);
}

pwb__hint cli_hint_for(const char *name, const char *const *cands, size_t n)
{
	pwb__hint h = pwb__hint_for(name, cands, n);
	for (size_t i = 0; !h.text[0] && i < n; i++)
		if (transposed(name, cands[i]))
			h = pwb__hint_text(cands[i]);
	return h;
}

int cli_usage_error(const cli_args *a, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", a->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", a->cmd);
	return CLI_USAGE;
}

/* The hint for an argument that looks like an option but may be meant as
 * a positional one (a TEXT "-x"), for commands that take those. */
#define DASHDASH_HINT                                                          \
	"; to pass an argument that starts with '-', put '--' before it"

static int unknown_option(cli_args *a, const cli_spec *spec, size_t n,
			  const char *body, size_t len, bool takes_pos)
{
	const char *names[64] = {"help"};
	size_t k = 1;
	for (size_t i = 0; i < n && k < PWB_ARRAY_LEN(names); i++)
		if (spec[i].kind != CLI_REFUSED)
			names[k++] = spec[i].name;
	char want[256];
	snprintf(want, sizeof(want), "%.*s", (int)len, body);
	const char *s = pwb__suggest(want, names, k);
	for (size_t i = 0; !s && i < k; i++)
		if (transposed(want, names[i]))
			s = names[i];
	if (s)
		return cli_usage_error(
		    a, "unknown option '--%s' (did you mean '--%s'?)", want, s);
	return cli_usage_error(a, "unknown option '--%s'%s", want,
			       takes_pos ? DASHDASH_HINT : "");
}

/* --list-options: what spec accepts, one a line (cli.h). */
static void list_options(const cli_spec *spec, size_t n)
{
	static const char *const kinds[] = {[CLI_STR] = "value",
					    [CLI_FLAG] = "flag",
					    [CLI_LIST] = "list",
					    [CLI_UINT] = "number",
					    [CLI_NUM] = "number"};
	puts("--help flag");
	for (size_t i = 0; i < n; i++)
		if (spec[i].kind != CLI_REFUSED)
			printf("--%s %s\n", spec[i].name, kinds[spec[i].kind]);
}

/* A number of o's kind in [lo, hi] into o's target. */
static bool set_number(const cli_spec *o, const char *v)
{
	char *end;
	errno = 0;
	if (o->kind == CLI_NUM) {
		double d = strtod(v, &end);
		if (!*v || *end || errno || !(d >= o->lo && d <= o->hi))
			return false;
		*(double *)o->target = d;
		return true;
	}
	if (*v < '0' || *v > '9')
		return false;
	unsigned long long u = strtoull(v, &end, 10);
	if (*end || errno || (double)u < o->lo || (double)u > o->hi)
		return false;
	if (o->size == sizeof(uint32_t)) {
		uint32_t u32 = (uint32_t)u;
		memcpy(o->target, &u32, sizeof(u32));
	} else {
		uint64_t u64 = u;
		memcpy(o->target, &u64, sizeof(u64));
	}
	return true;
}

/* "--name must be WHAT, not 'v'" for a number option's bad value. */
static void number_why(const cli_spec *o, const char *v, char *why,
		       size_t size)
{
	char what[128];
	if (o->what)
		snprintf(what, sizeof(what), "%s", o->what);
	else if (o->kind == CLI_UINT && o->hi >= 1e15)
		snprintf(what, sizeof(what), "a whole number >= %.0f", o->lo);
	else if (o->kind == CLI_UINT)
		snprintf(what, sizeof(what), "a whole number in %.0f..%.0f",
			 o->lo, o->hi);
	else
		snprintf(what, sizeof(what), "a number in %g..%g", o->lo, o->hi);
	snprintf(why, size, "--%s must be %s, not '%s'", o->name, what, v);
}

bool cli_value_ok(const cli_spec *o, const char *v, char *why, size_t size)
{
	if (o->kind != CLI_UINT && o->kind != CLI_NUM)
		return true;
	uint64_t scratch = 0;
	double d = 0;
	cli_spec c = *o;
	c.target = o->kind == CLI_NUM ? (void *)&d : (void *)&scratch;
	if (set_number(&c, v))
		return true;
	number_why(o, v, why, size);
	return false;
}

static int set_value(cli_args *a, const cli_spec *o, const char *v)
{
	if (o->kind == CLI_STR) {
		*(const char **)o->target = v;
	} else if (o->kind == CLI_LIST) {
		cli_list *l = o->target;
		if (l->n >= CLI_MAX_LIST)
			return cli_usage_error(a, "too many --%s", o->name);
		l->v[l->n++] = v;
	} else if (!set_number(o, v)) {
		char why[600];
		number_why(o, v, why, sizeof(why));
		return cli_usage_error(a, "%s", why);
	}
	return CLI_OK;
}

int cli_parse(cli_args *a, const cli_spec *spec, size_t n, const char *usage,
	      cli_list *pos)
{
	bool only_pos = false; /* after "--" */
	while (a->i < a->argc) {
		const char *arg = a->argv[a->i++];
		if (only_pos || arg[0] != '-' || !strcmp(arg, "-")) {
			if (!pos)
				return cli_usage_error(
				    a, "unexpected argument '%s'", arg);
			if (pos->n >= CLI_MAX_LIST)
				return cli_usage_error(a, "too many arguments");
			pos->v[pos->n++] = arg;
			continue;
		}
		if (!strcmp(arg, "--")) {
			only_pos = true;
			continue;
		}
		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			fputs(usage, stdout);
			return CLI_HELP;
		}
		if (!strcmp(arg, "--list-options")) {
			list_options(spec, n);
			return CLI_HELP;
		}
		if (strncmp(arg, "--", 2) != 0)
			return cli_usage_error(a, "unknown option '%s'%s", arg,
					       pos ? DASHDASH_HINT : "");
		const char *body = arg + 2, *eq = strchr(body, '=');
		size_t len = eq ? (size_t)(eq - body) : strlen(body);
		const cli_spec *o = NULL;
		for (size_t k = 0; k < n && !o; k++)
			if (strlen(spec[k].name) == len &&
			    !strncmp(spec[k].name, body, len))
				o = &spec[k];
		if (!o && len == 4 && !strncmp(body, "help", 4))
			return cli_usage_error(a, "--help takes no value");
		if (!o)
			return unknown_option(a, spec, n, body, len, pos);
		if (o->kind == CLI_REFUSED)
			return cli_usage_error(a, "%s", o->what);
		if (o->kind == CLI_FLAG) {
			if (eq)
				return cli_usage_error(a, "--%s takes no value",
						       o->name);
			*(bool *)o->target = true;
			continue;
		}
		const char *v = eq		 ? eq + 1
				: a->i < a->argc ? a->argv[a->i++]
						 : NULL;
		if (!v)
			return cli_usage_error(a, "--%s needs a value",
					       o->name);
		int rc = set_value(a, o, v);
		if (rc)
			return rc;
	}
	for (size_t k = 0; k < n; k++)
		if (spec[k].need && !*(const char **)spec[k].target)
			return cli_usage_error(a, "--%s %s is required",
					       spec[k].name, spec[k].need);
	return CLI_OK;
}

char *cli_read_file(const char *path, size_t max, size_t *len)
{
	char *data = NULL;
	if (strcmp(path, "-") == 0) {
		pwb__buf b;
		pwb__buf_init(&b, max);
		char chunk[4096];
		size_t n;
		/* Stops at the cap: endless input fails, it does not hang. */
		while (!b.err &&
		       (n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
			pwb__buf_add(&b, chunk, n);
		if (b.err) {
			fprintf(
			    stderr, "-: error: %s\n",
			    b.err == PWB_ETOOLARGE
				? "standard input is larger than the limit; "
				  "reading stopped there"
				: pwb_status_str(b.err));
			pwb__buf_release(&b);
			return NULL;
		}
		*len = b.len;
		return pwb__buf_detach(&b);
	}
	pwb_diag diag;
	pwb_diag_init(&diag);
	if (pwb__read_file(path, max, &data, len, &diag))
		cli_print_diag(&diag);
	pwb_diag_release(&diag);
	return data;
}

/* ---- progress ---- */

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, const char *label, size_t total)
{
	p->label = label;
	p->total = total;
	p->tty = isatty(STDERR_FILENO);
	p->last = 0;
	cli_progress_update(p, 0);
}

void cli_progress_update(cli_progress *p, size_t done)
{
	if (!p->tty)
		return;
	double now = mono_now();
	if (done && done < p->total && now - p->last < 0.1)
		return;
	p->last = now;
	double frac = p->total ? (double)done / (double)p->total : 1.0;
	if (frac > 1)
		frac = 1;
	int width = 30, fill = (int)(frac * width);
	fprintf(stderr, "\r%s [", p->label);
	for (int i = 0; i < width; i++)
		fputc(i < fill ? '=' : i == fill ? '>' : ' ', stderr);
	fprintf(stderr, "] %3d%% %zu/%zu", (int)(frac * 100), done, p->total);
	fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
	if (!p->tty)
		return;
	cli_progress_update(p, p->total);
	fputc('\n', stderr);
}

/* ---- the cache folder ---- */

static bool mkdir_p(char *path)
{
	for (char *c = path + 1; *c; c++) {
		if (*c != '/')
			continue;
		*c = '\0';
		bool ok = mkdir(path, 0755) == 0 || errno == EEXIST;
		*c = '/';
		if (!ok)
			return false;
	}
	return mkdir(path, 0755) == 0 || errno == EEXIST;
}

void cli_log(void *user, pwb_log_level level, const char *msg)
{
	(void)user;
	static const char *const names[] = {"debug", "note", "warning",
					    "error"};
	/* Notes say what takes time, like a progress bar: on a terminal
	 * only. Warnings and errors always. */
	if ((level == PWB_LOG_DEBUG && !getenv("PWB_DEBUG")) ||
	    (level == PWB_LOG_INFO && !isatty(STDERR_FILENO)))
		return;
	fprintf(stderr, "pwb: %s: %s\n",
		(unsigned)level < 4 ? names[level] : "note", msg);
}

const char *cli_cache_dir(void)
{
	static char dir[4096];
	const char *env = getenv("PWB_CACHE_DIR"), *xdg, *home;
	int n;
	if (env && *env)
		n = snprintf(dir, sizeof(dir), "%s", env);
	else if ((xdg = getenv("XDG_CACHE_HOME")) && *xdg)
		n = snprintf(dir, sizeof(dir), "%s/pwb", xdg);
	else if ((home = getenv("HOME")) && *home)
		n = snprintf(dir, sizeof(dir), "%s/.cache/pwb", home);
	else {
		fprintf(stderr, "pwb: warning: no cache folder (neither "
				"PWB_CACHE_DIR, XDG_CACHE_HOME nor HOME is "
				"set): the lexicon database is compiled on "
				"every run\n");
		return NULL;
	}
	if (n < 0 || (size_t)n >= sizeof(dir) || !mkdir_p(dir)) {
		fprintf(stderr,
			"pwb: warning: cannot use the cache folder %s: %s; the "
			"lexicon database is compiled on every run\n",
			dir,
			n < 0 || (size_t)n >= sizeof(dir)
			    ? "the path is too long"
			    : strerror(errno));
		return NULL;
	}
	return dir;
}

/* ---- subcommands ---- */

int cli_dispatch(int argc, char **argv, const char *group, const char *usage,
		 const cli_sub *subs, size_t n)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (!strcmp(argv[1], "--list-commands")) {
		for (size_t i = 0; i < n; i++)
			printf("%s %s\n", group, subs[i].name);
		return CLI_OK;
	}
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "pwb %s %s", group, argv[1]);
	cli_args a = {argc, argv, 2, cmd};
	const char *names[16];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].run(&a);
		if (k < PWB_ARRAY_LEN(names))
			names[k++] = subs[i].name;
	}
	pwb__hint h = cli_hint_for(argv[1], names, k);
	fprintf(stderr,
		"pwb %s: unknown subcommand '%s'%s\nTry 'pwb %s --help'.\n",
		group, argv[1], h.text, group);
	return CLI_USAGE;
}

bool cli_print_json(const json_t *j)
{
	char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
					JSON_REAL_PRECISION(4))
		    : NULL;
	if (!s)
		return false;
	puts(s);
	free(s);
	return true;
}

/* ---- the options of the generating commands ---- */

uint64_t cli_random_seed(void)
{
	uint64_t seed = 0;
	unsigned char *p = (unsigned char *)&seed;
	size_t got = 0;
	while (got < sizeof(seed)) {
		ssize_t n = getrandom(p + got, sizeof(seed) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < sizeof(seed)) {
		/* No getrandom (an old kernel): the clock's nanoseconds and
		 * the process id, spread over all 64 bits. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = pwb__mix64((uint64_t)ts.tv_sec * 1000000000u +
				  (uint64_t)ts.tv_nsec) ^
		       pwb__mix64((uint64_t)getpid());
	}
	return seed ? seed : 1;
}

int cli_check_id(cli_args *a, const char *opt, const char *id)
{
	if (!*id)
		return cli_usage_error(a, "%s is empty", opt);
	for (const unsigned char *c = (const unsigned char *)id; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			return cli_usage_error(
			    a,
			    "%s must not contain control characters (a "
			    "newline, tab or escape); byte %zu is 0x%02x",
			    opt, (size_t)(c - (const unsigned char *)id), *c);
	return CLI_OK;
}

int cli_check_readable(cli_args *a, const char *opt, const char *path)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK);
	struct stat st;
	const char *why = NULL;
	if (fd < 0)
		why = strerror(errno);
	else if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
		why = "it is a folder";
	if (fd >= 0)
		close(fd);
	if (!why)
		return CLI_OK;
	fprintf(stderr, "%s: --%s: cannot open %s: %s\n", a->cmd, opt, path,
		why);
	return CLI_FAIL;
}

int cli_gen_check(cli_args *a, cli_gen_opts *o)
{
	if (!o->user)
		return cli_usage_error(a, "--user ID is required");
	int rc = cli_check_id(a, "--user", o->user);
	if (!rc && o->ra.org)
		rc = cli_check_id(a, "--org", o->ra.org);
	if (rc)
		return rc;
	if (o->eo.upstream_model && !o->eo.upstream)
		return cli_usage_error(a, "--upstream-model names the model "
					  "sent to --upstream URL; it does not "
					  "go with --model FILE.gguf");
	const struct {
		const char *opt, *path;
	} files[] = {{"model", o->eo.model},
		     {"guard-model", o->eo.guard_model},
		     {"prefs", o->prefs},
		     {"detector", o->detector}};
	for (size_t i = 0; i < PWB_ARRAY_LEN(files); i++)
		if (files[i].path &&
		    (rc = cli_check_readable(a, files[i].opt, files[i].path)))
			return rc;
	if (!o->seed)
		o->seed = cli_random_seed();
	return CLI_OK;
}

void cli_report_request(const cli_gen_opts *o, pwb_status st, pwb_diag *d)
{
	if (st != PWB_EBOUNDS || !d->n) {
		cli_report(NULL, st, d);
		return;
	}
	/* One line per setting: whose it is, why, and how to replace it. */
	pwb_diag_sort(d);
	char line[4096];
	for (size_t i = 0; i < d->n; i++) {
		pwb_diag_format(&d->entries[i], line, sizeof(line));
		fprintf(stderr,
			"%s (the stored settings of user '%s' of org '%s'; "
			"replace them with 'pwb user settings --db URL --org "
			"%s --user %s FILE')\n",
			line, o->user, o->ra.org, o->ra.org, o->user);
	}
	if (d->dropped)
		fprintf(stderr, "error: %zu more errors not shown\n",
			d->dropped);
}

void cli_say_reset(const char *org, const char *user, bool learnt,
		   int64_t version)
{
	if (learnt)
		printf("user %s of org %s: learnt preferences forgotten (model "
		       "version %lld); the population model serves them\n",
		       user, org, (long long)version);
	else
		printf("user %s of org %s: nothing learnt, nothing to reset\n",
		       user, org);
}
