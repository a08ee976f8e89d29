/* main.c - the pwb command: dispatch to a subcommand. */
#include "cli/cli.h"
#include "util/util.h"

#include <string.h>

/* One line per subcommand: tests/cli/help.sh reads the list from here and
 * checks it against the commands pwb runs (--list-commands). */
static const char usage[] =
    "Usage: pwb COMMAND [SUBCOMMAND] [options] [ARGS]\n"
    "\n"
    "pwb personalises LLM behaviour to each user within three tiers of\n"
    "bounds: law, the deploying organisation, and the user.\n"
    "\n"
    "Commands:\n"
    "  ask ... PROMPT           answer a prompt: personalised, in bounds\n"
    "  chat ...                 a terminal chat with A/B choices\n"
    "  serve ...                the OpenAI-compatible gateway (HTTP)\n"
    "  policy check PATH...     check policy files and folders\n"
    "  policy resolve ...       the effective policy for an org and user\n"
    "  policy explain ...       the same, as readable text with provenance\n"
    "  bounds check ... TEXT    check a text: categories, verdict, refusal\n"
    "  bounds train ...         train the linear detector on labelled texts\n"
    "  eval bounds ...          blocking quality on labelled texts (JSONL)\n"
    "  eval prefs ...           preference accuracy on feedback (JSONL)\n"
    "  prefs train ...          learn a preference model from feedback\n"
    "  prefs explain ...        what a model learned about a user, in words\n"
    "  prefs reset ...          forget what a model learned about a user\n"
    "  simulate prefs ...       simulated users' feedback, for trying it\n"
    "  simulate db ...          a store with an org's simulated history\n"
    "  feedback import ...      store feedback events (JSONL)\n"
    "  feedback give ...        prefer an alternative, or rate an answer\n"
    "  audit verify --db URL    check the audit chain\n"
    "  user export ...          all of a user's stored data, as JSON\n"
    "  user erase ...           erase a user's stored data\n"
    "  user consent ...         record a user's consent to learning\n"
    "  user settings ... FILE   store a user's own settings, in bounds\n"
    "  user reset ...           forget what was learnt about a user\n"
    "  keys create ...          make an API key (stored as a keyed hash)\n"
    "  keys revoke ... KEY_ID   revoke an API key\n"
    "  store gc --db URL ...    remove feedback past its retention\n"
    "  report datasheet ...     whose feedback the models are aligned to\n"
    "  report risks ...         benefits and risks, with traffic lights\n"
    "\n"
    "Run 'pwb COMMAND SUBCOMMAND --help' for the options of each.\n"
    "\n"
    "Options:\n"
    "  -h, --help               show this help (also after any command)\n"
    "  --version                show the version\n"
    "\n"
    "Environment:\n"
    "  PWB_CACHE_DIR            the cache of the compiled lexicon database\n"
    "                           (default $XDG_CACHE_HOME/pwb, else\n"
    "                           ~/.cache/pwb)\n"
    "  PWB_KEY_SECRET           the secret that keys stored API key hashes\n"
    "  PWB_DEBUG                set: print the library's debug messages\n"
    "\n"
    "Example:\n"
    "  pwb policy explain --policies policies --org acme-tutor\n"
    "\n"
    "Exit status: 0 on success, 1 when the input is invalid or refused (or\n"
    "on another error), 2 on a usage error.\n"
    "\n"
    "Documentation: README.md and docs/ in the source tree.\n";

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	bool single; /* a command without subcommands */
} commands[] = {
    {"policy", cli_policy, false},     {"bounds", cli_bounds, false},
    {"eval", cli_eval, false},	       {"prefs", cli_prefs, false},
    {"simulate", cli_simulate, false}, {"feedback", cli_feedback, false},
    {"audit", cli_audit, false},       {"user", cli_user, false},
    {"keys", cli_keys, false},	       {"store", cli_store, false},
    {"ask", cli_ask, true},	       {"chat", cli_chat, true},
    {"serve", cli_serve, true},	       {"report", cli_reports, false},
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") ||
	    (!strcmp(cmd, "help") && argc == 2)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	/* "pwb help ask", "pwb help user consent": that command's help. */
	char *help_argv[8];
	if (!strcmp(cmd, "help") && argc <= 6) {
		int k = 0;
		help_argv[k++] = argv[0];
		for (int i = 2; i < argc; i++)
			help_argv[k++] = argv[i];
		help_argv[k++] = (char *)"--help";
		help_argv[k] = NULL;
		argc = k;
		argv = help_argv;
		cmd = argv[1];
	}
	if (!strcmp(cmd, "--version")) {
		printf("pwb %s\n", PWB_VERSION);
		return CLI_OK;
	}
	if (!strcmp(cmd, "--list-commands")) {
		/* Hidden: every subcommand, from the dispatch tables. */
		for (size_t i = 0; i < PWB_ARRAY_LEN(commands); i++) {
			if (commands[i].single) {
				printf("%s\n", commands[i].name);
				continue;
			}
			char *list[] = {(char *)commands[i].name,
					(char *)"--list-commands", NULL};
			commands[i].run(2, list);
		}
		return CLI_OK;
	}
	const char *names[PWB_ARRAY_LEN(commands)];
	for (size_t i = 0; i < PWB_ARRAY_LEN(commands); i++) {
		if (!strcmp(cmd, commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
		names[i] = commands[i].name;
	}
	pwb__hint h = cli_hint_for(cmd, names, PWB_ARRAY_LEN(commands));
	fprintf(stderr, "pwb: unknown command '%s'%s\nTry 'pwb --help'.\n", cmd,
		h.text);
	return CLI_USAGE;
}
