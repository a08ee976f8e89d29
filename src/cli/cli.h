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

int cli_policy(int argc, char **argv);

#endif
