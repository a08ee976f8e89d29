/* main.c - the pwb command: dispatch to a subcommand. */
#include "cli/cli.h"

#include <string.h>

static const char usage[] =
    "Usage: pwb COMMAND [ARGS]\n"
    "\n"
    "pwb personalises LLM behaviour to each user within three tiers of\n"
    "bounds: law, the deploying organisation, and the user.\n"
    "\n"
    "Commands:\n"
    "  policy check PATH...     check policy files and folders\n"
    "  policy resolve ...       the effective policy for an org and user\n"
    "  policy explain ...       the same, as readable text with provenance\n"
    "  bounds check ... TEXT    check a text: categories, verdict, refusal\n"
    "  eval bounds ...          blocking quality on labelled texts (JSONL)\n"
    "  eval prefs ...           preference accuracy on feedback (JSONL)\n"
    "  prefs train|explain|reset  learn, explain and reset preferences\n"
    "  simulate prefs ...       simulated users' feedback, for trying it\n"
    "  feedback import ...      store feedback events (JSONL)\n"
    "  audit verify --db URL    check the audit chain\n"
    "  user export|erase ...    a user's data: all of it as JSON, or erased\n"
    "  keys create|revoke ...   API keys (stored as keyed hashes)\n"
    "  store gc --db URL ...    remove feedback past its retention\n"
    "\n"
    "Options:\n"
    "  -h, --help               show this help (also after any command)\n"
    "  --version                show the version\n"
    "\n"
    "Documentation: README.md and docs/ in the source tree.\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return CLI_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") ||
	    !strcmp(cmd, "help")) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	if (!strcmp(cmd, "--version")) {
		printf("pwb %s\n", PWB_VERSION);
		return CLI_OK;
	}
	if (!strcmp(cmd, "policy"))
		return cli_policy(argc - 1, argv + 1);
	if (!strcmp(cmd, "bounds"))
		return cli_bounds(argc - 1, argv + 1);
	if (!strcmp(cmd, "eval"))
		return cli_eval(argc - 1, argv + 1);
	if (!strcmp(cmd, "prefs"))
		return cli_prefs(argc - 1, argv + 1);
	if (!strcmp(cmd, "simulate"))
		return cli_simulate(argc - 1, argv + 1);
	if (!strcmp(cmd, "store"))
		return cli_store(argc - 1, argv + 1);
	if (!strcmp(cmd, "audit"))
		return cli_audit(argc - 1, argv + 1);
	if (!strcmp(cmd, "user"))
		return cli_user(argc - 1, argv + 1);
	if (!strcmp(cmd, "keys"))
		return cli_keys(argc - 1, argv + 1);
	if (!strcmp(cmd, "feedback"))
		return cli_feedback(argc - 1, argv + 1);
	fprintf(stderr, "pwb: unknown command '%s'\nTry 'pwb --help'.\n", cmd);
	return CLI_USAGE;
}
