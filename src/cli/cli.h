/*
 * cli.h - the pwb command: shared helpers of its subcommands. The CLI is a
 * thin layer over libpwb: it parses arguments, calls the library, prints.
 */
#ifndef PWB_CLI_H
#define PWB_CLI_H

#include "pwb/pwb.h"

#include <stdio.h>

/* Exit codes: 0 success, 1 the input is invalid or refused, 2 usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Prints every entry of d to stderr, sorted, one per line. */
void cli_print_diag(pwb_diag *d);

/*
 * A small long-option parser: `--name value`, `--name=value` and flags.
 * cli_opt_next() returns the option name (without dashes) or NULL at a
 * positional argument or the end; *value gets the value for options that
 * take one.
 */
typedef struct cli_args {
	int argc;
	char **argv;
	int i;
	const char *cmd; /* "pwb policy resolve", for messages */
} cli_args;

typedef struct cli_opt {
	const char *name;
	bool has_value;
} cli_opt;

/*
 * Returns 1 with *name and *value set for an option, 0 for a positional
 * argument (in *value), -1 at the end and -2 after printing a usage error.
 */
int cli_next(cli_args *a, const cli_opt *opts, size_t n_opts, const char **name,
	     const char **value);

/* Prints "pwb policy resolve: msg" and a hint to --help; returns 2. */
int cli_usage_error(const cli_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads a whole file (capped) for the CLI; prints the error itself. */
char *cli_read_file(const char *path, size_t max, size_t *len);

#define CLI_MAX_LIST 256
#define CLI_SETTINGS_MAX (256 * 1024)

/*
 * The options every command that resolves a policy takes (--policies,
 * --org, --jurisdiction, --settings, --attr, --registry), and the resolve
 * itself, with every error printed the same way for all of them.
 */
#define CLI_RESOLVE_OPTS                                                       \
	{"policies", true}, {"org", true}, {"jurisdiction", true},             \
	    {"settings", true}, {"attr", true},                                \
	{                                                                      \
		"registry", true                                               \
	}

/* Their lines of --help. */
#define CLI_RESOLVE_HELP                                                       \
	"  --policies DIR       the policy folder (categories.yaml, law/, "    \
	"org/)\n"                                                              \
	"  --org ID             the deploying organisation\n"                  \
	"  --jurisdiction J     add a jurisdiction to the org's own; "         \
	"repeatable\n"                                                         \
	"  --settings FILE      the user's settings as JSON ('-' for "         \
	"stdin):\n"                                                            \
	"                       {\"categories\": {\"profanity\": "             \
	"\"on\"},\n"                                                           \
	"                        \"dimensions\": {\"humour\": 0.5}}\n"         \
	"  --attr KEY=VALUE     a request attribute for conditions, e.g.\n"    \
	"                       user.age=15; VALUE is read as a JSON "         \
	"scalar\n"                                                             \
	"                       where it can be, else as a string; "           \
	"repeatable\n"                                                         \
	"  --registry FILE      use this registry instead of\n"                \
	"                       DIR/categories.yaml\n"

typedef struct cli_resolve {
	const char *policies, *org, *registry, *settings;
	const char *jur[CLI_MAX_LIST];
	size_t n_jur;
	const char *attr[CLI_MAX_LIST];
	size_t n_attr;
	/* Filled by cli_resolve_run(), freed by cli_resolve_release(). */
	pwb_policy *policy;
	pwb_effective *effective;
	pwb_settings *user_settings;
	pwb_attrs *attrs;
	char *settings_data;
} cli_resolve;

/* Takes one of CLI_RESOLVE_OPTS; returns 0, or 2 after a usage error. */
int cli_resolve_opt(cli_resolve *r, cli_args *a, const char *name,
		    const char *value);
/* Loads the policy folder and resolves; prints every error. Returns
 * CLI_OK, CLI_FAIL or CLI_USAGE. */
int cli_resolve_run(cli_resolve *r, cli_args *a);
void cli_resolve_release(cli_resolve *r);

/*
 * A progress bar on standard error, drawn only when it is a terminal (and
 * at most ten times a second); nothing at all when output is piped.
 */
typedef struct cli_progress {
	const char *label;
	size_t total;
	bool tty;
	double last;
} cli_progress;

void cli_progress_start(cli_progress *p, const char *label, size_t total);
void cli_progress_update(cli_progress *p, size_t done);
void cli_progress_end(cli_progress *p);

/*
 * The folder for caches (the compiled Vectorscan database): $PWB_CACHE_DIR,
 * else $XDG_CACHE_HOME/pwb, else $HOME/.cache/pwb, created when missing.
 * NULL when none can be made (the caller then works without a cache).
 */
const char *cli_cache_dir(void);

/* A subcommand: its name and the function that runs it. */
typedef struct cli_sub {
	const char *name;
	int (*run)(cli_args *a);
} cli_sub;

/*
 * Runs the subcommand argv[1] of command `group` ("policy"), or prints
 * usage (on --help, to stdout; without a subcommand, to stderr).
 */
int cli_dispatch(int argc, char **argv, const char *group, const char *usage,
		 const cli_sub *subs, size_t n);

/*
 * Builds the detectors for a resolved policy: lexicons from `lexicons`, or
 * <policies>/lexicons; an optional model; the cache folder. Prints every
 * error; returns NULL on failure.
 */
pwb_bounds *cli_bounds_open(const cli_resolve *r, const char *lexicons,
			    const char *model);

/*
 * The storage commands: the store named by --db (keyed by $PWB_KEY_SECRET
 * when set), printing every error; NULL on failure.
 */
pwb_store *cli_store_open(const char *url);
/* --now SECONDS; returns 0, or 2 after a usage error. */
int cli_parse_now(cli_args *a, const char *value, int64_t *now);
int64_t cli_time_now(void);

int cli_policy(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_bounds(int argc, char **argv);
int cli_prefs(int argc, char **argv);
int cli_simulate(int argc, char **argv);
/* `pwb eval prefs` (prefs.c), dispatched from eval.c. */
int cli_eval_prefs(cli_args *a);
int cli_store(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_user(int argc, char **argv);
int cli_keys(int argc, char **argv);
int cli_feedback(int argc, char **argv);

#endif
