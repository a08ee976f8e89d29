/* util.c - helpers shared by the pwb subcommands. */
#include "util/util.h"
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
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
		char what[128];
		if (o->what)
			snprintf(what, sizeof(what), "%s", o->what);
		else if (o->kind == CLI_UINT && o->hi >= 1e15)
			snprintf(what, sizeof(what), "a whole number >= %.0f",
				 o->lo);
		else if (o->kind == CLI_UINT)
			snprintf(what, sizeof(what),
				 "a whole number in %.0f..%.0f", o->lo, o->hi);
		else
			snprintf(what, sizeof(what), "a number in %g..%g",
				 o->lo, o->hi);
		return cli_usage_error(a, "--%s must be %s, not '%s'", o->name,
				       what, v);
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
	pwb__hint h = pwb__hint_for(argv[1], names, k);
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
