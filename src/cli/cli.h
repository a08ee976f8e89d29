/*
 * cli.h - the pwb command: shared helpers of its subcommands. The CLI is a
 * thin layer over libpwb: it parses arguments, calls the library, prints.
 */
#ifndef PWB_CLI_H
#define PWB_CLI_H

#include "pwb/pwb.h"
#include "util/util.h"

#include <jansson.h>
#include <stdio.h>

/* Exit codes: 0 success, 1 the input is invalid or refused, 2 usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Prints every entry of d to stderr, sorted, one per line. */
void cli_print_diag(pwb_diag *d);
/* The same for a call that failed with st: when d is empty, prints
 * "WHERE: error: <status>" (just "error: ..." when where is NULL). */
void cli_report(const char *where, pwb_status st, pwb_diag *d);

/* The arguments of one subcommand, and its name for messages. */
typedef struct cli_args {
	int argc;
	char **argv;
	int i;
	const char *cmd; /* "pwb policy resolve", for messages */
} cli_args;

#define CLI_MAX_LIST 256
#define CLI_SETTINGS_MAX (256 * 1024)

/* The values of a repeatable option, or the positional arguments. */
typedef struct cli_list {
	const char *v[CLI_MAX_LIST];
	size_t n;
} cli_list;

typedef enum cli_kind {
	CLI_STR,     /* const char *: the last one given wins */
	CLI_FLAG,    /* bool: set to true; takes no value */
	CLI_LIST,    /* cli_list: repeatable, at most CLI_MAX_LIST */
	CLI_UINT,    /* an unsigned or non-negative integer of `size` bytes */
	CLI_NUM,     /* double */
	CLI_REFUSED, /* known, but refused: a usage error saying `what` */
} cli_kind;

/*
 * One option of a subcommand: --name VALUE (or --name=VALUE) into *target.
 * A target keeps its value when the option is not given, so it holds the
 * default. CLI_UINT and CLI_NUM take numbers in [lo, hi]; a bad one is a
 * usage error "--name must be WHAT, not 'x'", WHAT being `what` or "a
 * (whole) number in lo..hi" (">= lo" when hi is 1e15 or more). `need`
 * makes the option required: "--name NEED is required".
 */
typedef struct cli_spec {
	const char *name; /* without dashes */
	cli_kind kind;
	void *target;
	const char *need;
	double lo, hi;
	size_t size; /* CLI_UINT: sizeof the target */
	const char *what;
} cli_spec;

/* Whether v is a value the option takes (numbers in range; any text for
 * the others); when not, why is "--name must be WHAT, not 'v'". */
bool cli_value_ok(const cli_spec *o, const char *v, char *why, size_t size);

/* The entries of a spec table, by kind; x is the target lvalue, and
 * CLI__AT(T, x) makes the compiler check that it is a T. */
#define CLI__AT(T, x) (1 ? &(x) : (T *)0)
/* sizeof(x), which must be 4 or 8 (else the array size is negative). */
#define CLI__UINT_SIZE(x)                                                      \
	(sizeof(x) +                                                           \
	 0 * sizeof(char[sizeof(x) == 4 || sizeof(x) == 8 ? 1 : -1]))
#define CLI_OPT_STR(n, x)                                                      \
	{                                                                      \
		.name = (n), .kind = CLI_STR,                                  \
		.target = CLI__AT(const char *, x)                             \
	}
#define CLI_OPT_NEED(n, x, arg)                                                \
	{                                                                      \
		.name = (n), .kind = CLI_STR,                                  \
		.target = CLI__AT(const char *, x), .need = (arg)              \
	}
#define CLI_OPT_FLAG(n, x)                                                     \
	{                                                                      \
		.name = (n), .kind = CLI_FLAG, .target = CLI__AT(bool, x)      \
	}
#define CLI_OPT_LIST(n, x)                                                     \
	{                                                                      \
		.name = (n), .kind = CLI_LIST, .target = CLI__AT(cli_list, x)  \
	}
#define CLI_OPT_UINT(n, x, l, h)                                               \
	{                                                                      \
		.name = (n), .kind = CLI_UINT, .target = &(x), .lo = (l),      \
		.hi = (double)(h), .size = CLI__UINT_SIZE(x)                   \
	}
#define CLI_OPT_NUM(n, x, l, h)                                                \
	{                                                                      \
		.name = (n), .kind = CLI_NUM, .target = CLI__AT(double, x),    \
		.lo = (l), .hi = (h)                                           \
	}
/* An option refused with the message why (see CLI_REFUSED). */
#define CLI_OPT_REFUSE(n, why)                                                 \
	{                                                                      \
		.name = (n), .kind = CLI_REFUSED, .what = (why)                \
	}
/* --now SECONDS into the int64_t x (which holds the default, the time). */
#define CLI_OPT_NOW(x)                                                         \
	{                                                                      \
		.name = "now", .kind = CLI_UINT,                               \
		.target = CLI__AT(int64_t, x), .hi = 9e18,                     \
		.size = CLI__UINT_SIZE(x),                                     \
		.what = "unix seconds (a whole number >= 0)"                   \
	}

enum { CLI_HELP = -1 };

/*
 * Parses all of a's arguments against spec[0..n): options into their
 * targets, positional arguments ('-' is one; so is everything after
 * "--") into *pos, or a usage error "unexpected argument" when pos is
 * NULL. -h and --help print `usage` to stdout and return CLI_HELP (the
 * caller then returns CLI_OK); so does the hidden --list-options, which
 * prints every option spec accepts, one a line, as "--name KIND" (KIND
 * flag, value, list or number; --help included), for tests/cli/help.sh.
 * Returns CLI_OK to go on, or CLI_USAGE after printing the usage error (an
 * unknown option with a did-you-mean hint, or with a hint to put '--'
 * before an argument that starts with '-'; a refused option; a missing
 * value, a value for a flag, a bad number, too many values, a required
 * option not given).
 */
int cli_parse(cli_args *a, const cli_spec *spec, size_t n, const char *usage,
	      cli_list *pos);

/* What a command returns for a cli_parse() result other than CLI_OK. */
static inline int cli_parsed(int rc)
{
	return rc == CLI_HELP ? CLI_OK : rc;
}

/* The did-you-mean hint for a misspelt name among cands: pwb__hint_for,
 * and also two neighbouring letters swapped ("aks" for "ask"). */
pwb__hint cli_hint_for(const char *name, const char *const *cands, size_t n);

/* Prints "pwb policy resolve: msg" and a hint to --help; returns 2. */
int cli_usage_error(const cli_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints j on standard output as the JSON of the --json options:
 * indented, keys in the order they were set, reals to 4 significant
 * digits. False when out of memory. */
bool cli_print_json(const json_t *j);

/* Reads a whole file (capped) for the CLI; prints the error itself. */
char *cli_read_file(const char *path, size_t max, size_t *len);

/*
 * The options every command that resolves a policy takes (--policies,
 * --org, --jurisdiction, --settings, --attr, --registry), and the resolve
 * itself, with every error printed the same way for all of them.
 * CLI_RESOLVE_SPEC_NO_SETTINGS is the same without --settings.
 */
#define CLI_RESOLVE_SPEC_NO_SETTINGS(r)                                        \
	CLI_OPT_STR("policies", (r)->policies), CLI_OPT_STR("org", (r)->org),  \
	    CLI_OPT_LIST("jurisdiction", (r)->jur),                            \
	    CLI_OPT_LIST("attr", (r)->attr),                                   \
	    CLI_OPT_STR("registry", (r)->registry)
#define CLI_RESOLVE_SPEC(r)                                                    \
	CLI_RESOLVE_SPEC_NO_SETTINGS(r), CLI_OPT_STR("settings", (r)->settings)

/* Their lines of --help: CLI_RESOLVE_HELP is all of them, in three parts
 * (the policy and org; the user's settings; attributes and registry). */
#define CLI_RESOLVE_HELP_POLICY                                                \
	"  --policies DIR       the policy folder (categories.yaml, law/, "    \
	"org/)\n"                                                              \
	"  --org ID             the deploying organisation\n"                  \
	"  --jurisdiction J     add a jurisdiction to the org's own; "         \
	"repeatable\n"
#define CLI_RESOLVE_HELP_SETTINGS                                              \
	"  --settings FILE      the user's settings as JSON ('-' for "         \
	"stdin):\n"                                                            \
	"                       {\"categories\": {\"profanity\": "             \
	"\"on\"},\n"                                                           \
	"                        \"dimensions\": {\"humour\": 0.5}}\n"
#define CLI_RESOLVE_HELP_ATTRS                                                 \
	"  --attr KEY=VALUE     a request attribute for conditions, e.g.\n"    \
	"                       user.age=15; VALUE is read as a JSON "         \
	"scalar\n"                                                             \
	"                       where it can be, else as a string; "           \
	"repeatable\n"                                                         \
	"  --registry FILE      use this registry instead of\n"                \
	"                       DIR/categories.yaml\n"
#define CLI_RESOLVE_HELP                                                       \
	CLI_RESOLVE_HELP_POLICY CLI_RESOLVE_HELP_SETTINGS CLI_RESOLVE_HELP_ATTRS

typedef struct cli_resolve {
	const char *policies, *org, *registry, *settings;
	cli_list jur, attr;
	/* Filled by cli_resolve_run(), freed by cli_resolve_release(). */
	pwb_policy *policy;
	pwb_effective *effective;
	pwb_settings *user_settings;
	pwb_attrs *attrs;
	char *settings_data;
} cli_resolve;

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

/* The library's log callback for the CLI: warnings on stderr ("pwb:
 * warning: ..."), notes ("pwb: note: ...") only when stderr is a
 * terminal, debug messages only when PWB_DEBUG is set. */
void cli_log(void *user, pwb_log_level level, const char *msg);

/* The Environment section of the help of commands that compile the
 * lexicons (cli_cache_dir() reads it). */
#define CLI_HELP_CACHE_ENV                                                     \
	"Environment:\n"                                                       \
	"  PWB_CACHE_DIR        where the compiled lexicon database is kept\n" \
	"                       (default $XDG_CACHE_HOME/pwb, else "           \
	"~/.cache/pwb)\n"
/*
 * The folder for caches (the compiled Vectorscan database): $PWB_CACHE_DIR,
 * else $XDG_CACHE_HOME/pwb, else $HOME/.cache/pwb, created when missing.
 * NULL when none can be made (the caller then works without a cache).
 */
const char *cli_cache_dir(void);

/* The engine options of every generating command (ask, chat, serve). */
typedef struct cli_engine_opts {
	const char *model, *upstream, *upstream_model, *api_key_env;
	size_t threads, ctx, contexts;
	size_t seqs; /* candidates decoded together (set from --n and the org) */
	/* The guard detector's judge (a Llama Guard model): embedded or
	 * upstream; none when both are NULL. */
	const char *guard_model, *guard_upstream, *guard_upstream_model;
} cli_engine_opts;

/* The guard's options alone (bounds check, eval bounds). */
#define CLI_GUARD_SPEC(e)                                                      \
	CLI_OPT_STR("api-key-env", (e)->api_key_env),                          \
	    CLI_OPT_UINT("threads", (e)->threads, 0, 256),                     \
	    CLI_OPT_STR("guard-model", (e)->guard_model),                      \
	    CLI_OPT_STR("guard-upstream", (e)->guard_upstream),                \
	    CLI_OPT_STR("guard-upstream-model", (e)->guard_upstream_model)
#define CLI_ENGINE_SPEC(e)                                                     \
	CLI_OPT_STR("model", (e)->model),                                      \
	    CLI_OPT_STR("upstream", (e)->upstream),                            \
	    CLI_OPT_STR("upstream-model", (e)->upstream_model),                \
	    CLI_OPT_UINT("ctx", (e)->ctx, 0, 1 << 20), CLI_GUARD_SPEC(e)
#define CLI_HELP_GUARD_JUDGE                                                   \
	"  --guard-model FILE.gguf  a Llama Guard model for the guard\n"       \
	"                       detector (docs/bounds.md), embedded\n"         \
	"  --guard-upstream URL  or at an OpenAI-compatible endpoint\n"        \
	"  --guard-upstream-model NAME  the model name sent to it\n"
/* The help of CLI_GUARD_SPEC. */
#define CLI_HELP_GUARD                                                         \
	CLI_HELP_GUARD_JUDGE                                                   \
	"  --api-key-env VAR    the environment variable holding the\n"        \
	"                       guard endpoint's API key (never logged)\n"     \
	"  --threads N          embedded guard: CPU threads (default: all\n"   \
	"                       cores)\n"
#define CLI_HELP_ENGINE                                                        \
	"  --model FILE.gguf    generate with this model, embedded "           \
	"(llama.cpp)\n"                                                        \
	"  --upstream URL       or with an OpenAI-compatible endpoint, e.g.\n" \
	"                       http://127.0.0.1:8080/v1\n"                    \
	"  --upstream-model NAME  the model name sent upstream (default:\n"   \
	"                       \"default\")\n"                                \
	"  --api-key-env VAR    the environment variable holding the\n"        \
	"                       upstream's API key (never logged)\n"           \
	"  --threads N          embedded: CPU threads per answer generated\n"  \
	"                       (default or 0: the cores, shared by the\n"     \
	"                       answers generated at once; on a busy\n"        \
	"                       machine, fewer is faster)\n"                   \
	"  --ctx N              embedded: context tokens (default or 0: the\n" \
	"                       model's, at most 4096)\n"                      \
	CLI_HELP_GUARD_JUDGE
#define CLI_HELP_ENGINE_ENV                                                    \
	"  PWB_LLAMA_BACKENDS   the folder of llama.cpp's CPU backends\n"      \
	"                       (libggml-cpu-*.so; default: the build's)\n"
/* Opens the engine the options name; prints why it cannot. CLI_OK,
 * CLI_FAIL or a usage error. */
/* The engine options' usage errors alone (one of --model and --upstream,
 * not empty; the guard's), before anything is opened. */
int cli_engine_usage(cli_args *a, const cli_engine_opts *o);
int cli_engine_open(cli_args *a, const cli_engine_opts *o, pwb_engine **out,
		    pwb_engine **guard);
/* The guard's judge alone, or *guard NULL when no guard option is given;
 * CLI_OK, CLI_FAIL (printed) or a usage error. */
int cli_guard_open(cli_args *a, const cli_engine_opts *o, pwb_engine **guard);
/* A preference model file, or NULL when path is NULL (then *failed is
 * false); prints why it cannot be read. */
pwb_prefs_model *cli_prefs_open(const char *path, bool *failed);

/* The options of every generating command (ask, chat): bounds, engine,
 * store and sampling. temperature < 0: the pipeline's default. */
typedef struct cli_gen_opts {
	cli_resolve ra;
	cli_engine_opts eo;
	const char *user, *db, *prefs, *lexicons, *detector;
	size_t n, max_tokens;
	uint64_t seed;
	double temperature;
} cli_gen_opts;

/* --seed S into the uint64_t x: 1..2^64-1 (0 is refused: the pipeline
 * reads it as "no seed given"). */
#define CLI_SEED_WHAT                                                          \
	"a whole number in 1..18446744073709551615 (leave --seed out for a "   \
	"random one)"
#define CLI_OPT_SEED(x)                                                        \
	{                                                                      \
		.name = "seed", .kind = CLI_UINT,                              \
		.target = CLI__AT(uint64_t, x), .lo = 1,                       \
		.hi = 18446744073709551615.0, .size = CLI__UINT_SIZE(x),       \
		.what = CLI_SEED_WHAT                                          \
	}

#define CLI_GEN_SPEC(o)                                                        \
	CLI_RESOLVE_SPEC_NO_SETTINGS(&(o)->ra), CLI_ENGINE_SPEC(&(o)->eo),     \
	    CLI_OPT_STR("user", (o)->user), CLI_OPT_STR("db", (o)->db),        \
	    CLI_OPT_STR("prefs", (o)->prefs),                                  \
	    CLI_OPT_STR("lexicons", (o)->lexicons),                            \
	    CLI_OPT_STR("detector", (o)->detector),                            \
	    CLI_OPT_UINT("n", (o)->n, 1, PWB_ENGINE_MAX_N),                    \
	    CLI_OPT_SEED((o)->seed),                                           \
	    CLI_OPT_UINT("max-tokens", (o)->max_tokens, 1,                     \
			 PWB_ENGINE_MAX_TOKENS),                               \
	    CLI_OPT_NUM("temperature", (o)->temperature, 0, 10)
#define CLI_HELP_GEN                                                           \
	CLI_RESOLVE_HELP_POLICY CLI_RESOLVE_HELP_ATTRS                         \
	"  --user ID            the end user\n"                                \
	"  --db URL             the store (sqlite:PATH or postgres://...):\n"  \
	"                       the user's settings, consent and model, and\n" \
	"                       where decisions are recorded\n" CLI_HELP_ENGINE \
	"  --prefs MODEL        the population preference model\n"            \
	"                       (from 'pwb prefs train'); default: zeros\n"    \
	"  --n N                candidates (1..16; default: the org's)\n"      \
	"  --seed S             sampling seed, 1..2^64-1; candidate i samples\n" \
	"                       with S+i (default: a random seed from the\n"   \
	"                       system for each request)\n"                    \
	"  --max-tokens N       per candidate (default 256)\n"                 \
	"  --temperature T      0 for greedy (default 0.8)\n"                  \
	"  --lexicons DIR       lexicons (default DIR/lexicons)\n"             \
	"  --detector FILE      a linear detector from 'pwb bounds train'\n"

/*
 * The checks of a generating command's options before anything is opened
 * (usage errors): --user is a usable id, --upstream-model goes with
 * --upstream only, and the files named by --model, --prefs, --detector
 * and --guard-model can be opened (else "--prefs: cannot open FILE: why",
 * CLI_FAIL). Without --seed, o->seed gets a random one (cli_random_seed).
 */
int cli_gen_check(cli_args *a, cli_gen_opts *o);

/* A seed from the system's random source (getrandom), never 0. */
uint64_t cli_random_seed(void);

/*
 * A usage error unless id (the value of --opt) is a usable identifier:
 * not empty, without control characters (newlines, tabs, escapes).
 */
int cli_check_id(cli_args *a, const char *opt, const char *id);

/* CLI_OK when the file given by --opt can be opened for reading, else
 * prints "CMD: --opt: cannot open PATH: why" and returns CLI_FAIL. */
int cli_check_readable(cli_args *a, const char *opt, const char *path);

/*
 * Prints a failed request of `pwb ask` or `pwb chat` (cli_report); for
 * PWB_EBOUNDS, names the user and org whose stored settings lie outside
 * the bounds and how to replace them.
 */
void cli_report_request(const cli_gen_opts *o, pwb_status st, pwb_diag *d);

/* What `pwb user reset` and the chat's /reset print: the user's learnt
 * preferences forgotten (and the model's version), or nothing to do. */
void cli_say_reset(const char *org, const char *user, bool learnt,
		   int64_t version);

/* What a generating command has open; each NULL until opened. */
typedef struct cli_gen {
	pwb_bounds *bounds;
	pwb_engine *engine;
	pwb_engine *guard_engine; /* the guard's judge, or NULL */
	pwb_engine_guard guard;
	pwb_store *store;
	pwb_pipeline *pipeline;
	const char *policies; /* recorded in the store by cli_gen_served() */
	bool recorded;
} cli_gen;

/* Opens engine, bounds, store and pipeline for options whose policy is
 * resolved (cli_resolve_run); prints why it cannot. CLI_OK, CLI_FAIL or a
 * usage error; cli_gen_close() in every case. */
int cli_gen_open(cli_args *a, cli_gen_opts *o, cli_gen *g);
void cli_gen_close(cli_gen *g);
/* After the first request served: the store records the policy folder
 * for the commands that come after (feedback give, user ...), so that a
 * failed request records nothing. CLI_OK or CLI_FAIL (printed). */
int cli_gen_served(cli_gen *g);

/* A subcommand: its name and the function that runs it. */
typedef struct cli_sub {
	const char *name;
	int (*run)(cli_args *a);
} cli_sub;

/*
 * Runs the subcommand argv[1] of command `group` ("policy"), or prints
 * usage (on --help, to stdout; without a subcommand, to stderr). An
 * unknown subcommand is a usage error with a did-you-mean hint. The hidden
 * --list-commands prints "group sub" for every subcommand, one a line
 * (`pwb --list-commands` prints them all, for tests/cli/help.sh).
 */
int cli_dispatch(int argc, char **argv, const char *group, const char *usage,
		 const cli_sub *subs, size_t n);

/*
 * Builds the detectors for a resolved policy: lexicons from `lexicons`, or
 * <policies>/lexicons; an optional model; the cache folder. Prints every
 * error; returns NULL on failure.
 */
pwb_bounds *cli_bounds_open(const cli_resolve *r, const char *lexicons,
			    const char *model, pwb_engine_guard *guard);

/*
 * The storage commands: the store named by --db (keyed by $PWB_KEY_SECRET
 * when set), printing every error; NULL on failure.
 */
pwb_store *cli_store_open(const char *url);
/* The same, as mode allows (pwb/store.h); with missing non-NULL a store
 * that is not there is no error: NULL, *missing set, nothing printed. */
pwb_store *cli_store_open_mode(const char *url, pwb_store_mode mode,
			       bool *missing);
/* Prints a failed store call naming the store and what it was doing. */
void cli_store_report(const pwb_store *s, const char *doing, pwb_status st,
		      pwb_diag *d);
/* CLI_OK when the store holds org, else prints why (with a did you mean)
 * and returns CLI_FAIL. */
int cli_store_org(pwb_store *s, const char *org);
/* The policy folder for an org check: given, else the one the store
 * recorded; a usage error when neither (docs/store.md, "Orgs and
 * policies"). *dir is the caller's to free. */
int cli_store_policies_for(cli_args *a, pwb_store *s, const char *given,
			   char **dir);
/* Records the policy folder the store's orgs are checked against. */
int cli_store_record_policies(pwb_store *s, const char *dir);
int64_t cli_time_now(void);

int cli_policy(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_bounds(int argc, char **argv);
int cli_prefs(int argc, char **argv);
int cli_simulate(int argc, char **argv);
/* `pwb simulate db` (simulate_db.c), dispatched from simulate.c. */
int cli_simulate_db(cli_args *a);
int cli_reports(int argc, char **argv);
/* `pwb eval prefs` (prefs.c), dispatched from eval.c. */
int cli_eval_prefs(cli_args *a);
int cli_store(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_user(int argc, char **argv);
int cli_keys(int argc, char **argv);
int cli_feedback(int argc, char **argv);
/* Commands without subcommands. */
int cli_ask(int argc, char **argv);
int cli_chat(int argc, char **argv);
int cli_serve(int argc, char **argv);

#endif
