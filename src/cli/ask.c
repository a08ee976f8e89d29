/* ask.c - `pwb ask`: one request through the pipeline, from the command
 * line (docs/pipeline.md). */
#include "cli/cli.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static const char ask_usage[] =
    "Usage: pwb ask --policies DIR --org ID --user ID "
    "(--model FILE.gguf | --upstream URL) [options] PROMPT|-\n"
    "\n"
    "Answers one prompt through the whole pipeline (docs/pipeline.md): the\n"
    "user's bounds are resolved, the prompt is checked, N candidates are\n"
    "generated with the personalised system prompt, each is checked, and\n"
    "the user's preference model picks the best. A prompt or answers out\n"
    "of bounds give the refusal, naming the tier, source, category and\n"
    "basis that bound it. With --db the decision is recorded, so that\n"
    "'pwb feedback give' can name one of its alternatives.\n"
    "\n"
    "Where the org groups users by an attribute (learning.cohort_attribute,\n"
    "e.g. age_band) and the user consented to it ('pwb user consent\n"
    "--grant-cohort'), --attr user.age_band=18-24 puts them in that cohort:\n"
    "they start from its model, and the decision records it\n"
    "(docs/prefs.md, \"Cohort priors\"). Its value must be 1 to 128 bytes\n"
    "without control characters.\n"
    "\n"
    "Options:\n" CLI_HELP_GEN
    "  --json               print the whole decision as JSON\n"
    "  -h, --help           show this help\n"
    "\n"
    "A PROMPT that starts with '-' goes after '--': ... -- '-x'.\n"
    "\n" CLI_HELP_CACHE_ENV CLI_HELP_ENGINE_ENV "\n"
    "Example:\n"
    "  pwb ask --policies policies --org acme-tutor --user u1 "
    "--model stories260K.gguf --n 2 --seed 1 \"Tell me a story\"\n"
    "\n"
    "Without --seed each request samples with a new random seed; give\n"
    "one to get the same alternatives again.\n"
    "\n"
    "Exit status: 0 when answered or refused (a refusal is an answer),\n"
    "1 on an error (engine down, bad input, stored settings out of\n"
    "bounds), 2 on a usage error (an empty PROMPT too).\n";

/* What `ask` prints without --json: the answer, then where it stands. */
static void print_response(const pwb_response *r, bool recorded)
{
	const pwb_decision *d =
	    r->chosen != SIZE_MAX ? r->alts[r->chosen].check : r->prompt_check;
	/* What the deploying system must show (the AI disclosure). */
	for (size_t i = 0; d && i < pwb_decision_n_obligations(d); i++) {
		const pwb_dec_obligation *o = pwb_decision_obligation(d, i);
		if (o->placement == PWB_PLACE_SYSTEM && o->text)
			fprintf(stderr, "pwb: %s\n", o->text);
	}
	printf("%s\n", r->content);
	if (r->prompt_check &&
	    pwb_decision_verdict(r->prompt_check) == PWB_VERDICT_REDACT)
		fprintf(stderr, "pwb: your prompt was redacted before the "
				"model saw it (personal data)\n");
	if (r->blocked) {
		const pwb_blocked_by *b = &r->blocked_by;
		fprintf(stderr,
			"pwb: refused on the %s: %s blocked by %s (%s)%s%s\n",
			b->on, b->category, pwb_tier_str(b->tier), b->source,
			b->basis ? ": " : "", b->basis ? b->basis : "");
	}
	fprintf(stderr, "pwb: decision %s%s, %s", r->decision_id,
		recorded ? "" : " (not recorded: no --db)",
		pwb_verdict_str(r->verdict));
	if (r->chosen != SIZE_MAX)
		fprintf(stderr, ", alternative %s of %zu (%s model)",
			r->alts[r->chosen].id, r->n_alts,
			r->personal ? "your" : "population");
	if (r->chosen != SIZE_MAX && r->cohort_prior)
		fprintf(stderr, ", starting from the model of users with %s",
			r->cohort);
	fprintf(stderr, "\n");
}

static int ask(cli_gen_opts *o, cli_gen *g, const char *prompt,
	       bool json_out)
{
	pwb_chat_msg m = {"user", prompt};
	pwb_request req = {
	    .org = o->ra.org,
	    .user = o->user,
	    .jurisdictions = o->ra.jur.v,
	    .n_jurisdictions = o->ra.jur.n,
	    .attrs = o->ra.attrs,
	    .msgs = &m,
	    .n_msgs = 1,
	    .n = o->n,
	    .seed = o->seed,
	};
	pwb_response *r = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_pipeline_chat(g->pipeline, &req, &r, &d);
	int rc = CLI_FAIL;
	char *json = NULL;
	if (st) {
		cli_report_request(o, st, &d);
	} else if (cli_gen_served(g)) {
		/* printed */
	} else if (json_out) {
		if (!pwb_response_to_json(r, &json)) {
			printf("%s\n", json);
			rc = CLI_OK;
		}
	} else {
		print_response(r, o->db != NULL);
		rc = CLI_OK;
	}
	if (!rc && fflush(stdout))
		rc = CLI_FAIL;
	free(json);
	pwb_response_free(r);
	pwb_diag_release(&d);
	return rc;
}

int cli_ask(int argc, char **argv)
{
	cli_gen_opts o = {.temperature = -1};
	bool json = false;
	cli_list pos = {0};
	cli_args a = {argc, argv, 1, "pwb ask"};
	const cli_spec spec[] = {CLI_GEN_SPEC(&o), CLI_OPT_FLAG("json", json)};
	int rc = cli_parse(&a, spec, PWB_ARRAY_LEN(spec), ask_usage, &pos);
	if (rc)
		return cli_parsed(rc);
	if ((rc = cli_gen_check(&a, &o)))
		return rc;
	if (pos.n != 1)
		return cli_usage_error(&a, "give one PROMPT (quote it) or '-' "
					   "to read it from standard input");
	if (!pos.v[0][strspn(pos.v[0], " \t\r\n")])
		return cli_usage_error(&a, "the PROMPT is empty");
	if ((rc = cli_resolve_run(&o.ra, &a))) {
		cli_resolve_release(&o.ra);
		return rc;
	}
	cli_gen g;
	size_t len = 0;
	char *prompt = strcmp(pos.v[0], "-")
			   ? strdup(pos.v[0])
			   : cli_read_file("-", PWB_BOUNDS_MAX_TEXT, &len);
	const char *nul = prompt && len ? memchr(prompt, '\0', len) : NULL;
	rc = prompt ? CLI_OK : CLI_FAIL;
	if (nul) {
		fprintf(stderr,
			"<stdin>: error: the prompt has a NUL byte at offset "
			"%zu\n",
			(size_t)(nul - prompt));
		rc = CLI_FAIL;
	} else if (prompt && !prompt[strspn(prompt, " \t\r\n")]) {
		/* The same usage error as an empty PROMPT argument. */
		rc = cli_usage_error(&a, "the PROMPT is empty");
	}
	if (rc) {
		free(prompt);
		prompt = NULL;
	}
	if (!rc)
		rc = cli_gen_open(&a, &o, &g);
	if (!rc)
		rc = ask(&o, &g, prompt, json);
	if (prompt)
		cli_gen_close(&g);
	free(prompt);
	cli_resolve_release(&o.ra);
	return rc;
}
