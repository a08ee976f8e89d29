/*
 * chat.c - `pwb chat`: a chat in the terminal for trying pwb out
 * (docs/pipeline.md). Each turn goes through the pipeline; with two or
 * more answers, the best two are shown side by side and the user's pick
 * is recorded as feedback. /why shows the last decision's bounds and
 * provenance, /reset forgets what was learnt. Ctrl-C while answers are
 * made cancels them; at the prompt it ends the chat.
 */
#include "cli/cli.h"
#include "util/util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define HISTORY_TURNS 3 /* exchanges kept as context */
#define LINE_MAX_BYTES (64 * 1024)

static const char chat_usage[] =
    "Usage: pwb chat --policies DIR --org ID --user ID "
    "(--model FILE.gguf | --upstream URL) [options]\n"
    "\n"
    "A chat in the terminal, for trying pwb out: each message goes through\n"
    "the pipeline (docs/pipeline.md). With two or more answers, the best\n"
    "two are shown side by side, each as you would see it; type the\n"
    "letter of the one you prefer (it is recorded as feedback, and pwb\n"
    "learns from it), or Enter to go on with pwb's pick and record\n"
    "nothing. The commands below work there too, and the question comes\n"
    "back after them. Without --db the feedback is kept in a temporary\n"
    "store for this chat only, removed when the chat ends (also on\n"
    "Ctrl-C). With one candidate (--n 1) the answer is shown as it is\n"
    "made. Ctrl-C while answers are made cancels them and goes back to\n"
    "the prompt; Ctrl-C at the prompt ends the chat.\n"
    "\n"
    "Commands in the chat:\n"
    "  /why                 the last answer's bounds and provenance\n"
    "  /reset               forget what pwb learnt about you\n"
    "  /consent             consent to pwb learning from your choices\n"
    "                       (where the law asks for it)\n"
    "  /help                these commands\n"
    "  /quit                end the chat (also end of input)\n"
    "\n"
    "Options:\n" CLI_HELP_GEN
    "  -h, --help           show this help\n"
    "\n" CLI_HELP_CACHE_ENV CLI_HELP_ENGINE_ENV "\n"
    "Example:\n"
    "  pwb chat --policies policies --org open-studio --user ana "
    "--model stories260K.gguf --n 2\n"
    "\n"
    "Exit status: 0 at the end of the chat, 1 when it cannot start (an\n"
    "engine or store error, an erased user), 2 on a usage error.\n";

static const char chat_help[] =
    "/why    the last answer's bounds and provenance\n"
    "/reset  forget what pwb learnt about you\n"
    "/consent  consent to pwb learning from your choices\n"
    "/help   these commands\n"
    "/quit   end the chat\n"
    "At the choice between two answers: the letter of the better one, or\n"
    "Enter for pwb's pick; the commands work there too.\n";

typedef struct chat {
	cli_gen_opts *o;
	cli_gen g;
	bool tty;
	int width;
	char *tmpdir; /* the temporary store's folder, without --db */
	pwb_response *last;
	char *history[2 * HISTORY_TURNS]; /* user, assistant, ... */
	size_t n_history;
	bool told_consent;
	bool told_ai;
	char *line;
	size_t line_cap;
	bool quit;	 /* /quit, also at the a/b question */
	bool seed_given; /* --seed: every turn samples with it */
	bool streamed;	 /* this turn's answer is on the screen */
} chat;

/* ---- reading ---- */

/* Set by SIGINT, SIGTERM and SIGHUP: the chat ends (and removes its
 * temporary store) at the next read or after the turn in progress. A
 * SIGINT while a turn is generating only cancels that turn. */
static volatile sig_atomic_t stop_asked, cancel_asked, generating;

static void on_signal(int sig)
{
	if (generating)
		cancel_asked = 1;
	if (sig != SIGINT || !generating)
		stop_asked = 1;
}

/* Without SA_RESTART, so that a read waiting for input returns. */
static void catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* The next line of input, without its end; NULL at the end of input or
 * when the chat is asked to stop. */
static const char *read_line(chat *c, const char *prompt)
{
	if (stop_asked)
		return NULL;
	if (c->tty) {
		fputs(prompt, stdout);
		fflush(stdout);
	}
	size_t len = 0;
	bool too_long = false;
	ssize_t n = pwb__read_line(stdin, &c->line, &c->line_cap,
				   LINE_MAX_BYTES, &len, &too_long);
	if (n <= 0 || stop_asked) { /* 0: the end of input */
		if (c->tty)
			putchar('\n');
		return NULL;
	}
	if (too_long) {
		fprintf(stderr, "pwb: that line is longer than %d bytes; it "
				"was skipped\n",
			LINE_MAX_BYTES);
		return "";
	}
	while (len && (c->line[len - 1] == '\n' || c->line[len - 1] == '\r'))
		c->line[--len] = '\0';
	if (memchr(c->line, '\0', len)) {
		fprintf(stderr, "pwb: that line holds a NUL byte; it was "
				"skipped\n");
		return "";
	}
	return c->line;
}

/* ---- showing ---- */

/* The bytes of the next line of at most `width` characters of s, broken
 * at a space where one is; *next is where the line after starts. */
static size_t wrap(const char *s, int width, const char **next)
{
	size_t i = 0, brk = 0;
	int chars = 0;
	while (s[i] && s[i] != '\n' && chars < width) {
		if (s[i] == ' ')
			brk = i;
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			chars++;
		i++;
		while (((unsigned char)s[i] & 0xC0) == 0x80)
			i++;
	}
	if (s[i] && s[i] != '\n' && brk)
		i = brk;
	*next = s + i + (s[i] == ' ' || s[i] == '\n');
	return i;
}

static int chars_of(const char *s, size_t n)
{
	int k = 0;
	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xC0) != 0x80;
	return k;
}

static void side_by_side(const char *l, const char *r, int width)
{
	int col = (width - 3) / 2;
	while (*l || *r) {
		const char *nl = l, *nr = r;
		size_t a = *l ? wrap(l, col, &nl) : 0;
		size_t b = *r ? wrap(r, col, &nr) : 0;
		printf("%.*s%*s | %.*s\n", (int)a, l, col - chars_of(l, a), "",
		       (int)b, r);
		l = nl;
		r = nr;
	}
}

/* The two best allowed alternatives: pwb's pick, then the runner-up. */
static bool best_two(const pwb_response *r, size_t *x, size_t *y)
{
	*x = r->chosen;
	*y = SIZE_MAX;
	for (size_t i = 0; i < r->n_alts; i++)
		if (i != *x && r->alts[i].verdict != PWB_VERDICT_BLOCK &&
		    (*y == SIZE_MAX || r->alts[i].score > r->alts[*y].score))
			*y = i;
	return *x != SIZE_MAX && *y != SIZE_MAX;
}

/* Each alternative as the user would see it: with its obligations'
 * texts (a disclaimer before or after it). */
static void show_pair(chat *c, const pwb_alternative *a,
		      const pwb_alternative *b)
{
	char ha[64], hb[64], *sa = NULL, *sb = NULL;
	snprintf(ha, sizeof(ha), "[%s] (pwb's pick)", a->id);
	snprintf(hb, sizeof(hb), "[%s]", b->id);
	/* Out of memory: the bare contents rather than nothing. */
	const char *ta = pwb_alternative_shown(a, &sa) ? a->content : sa;
	const char *tb = pwb_alternative_shown(b, &sb) ? b->content : sb;
	if (c->tty && c->width >= 40) {
		side_by_side(ha, hb, c->width);
		side_by_side(ta, tb, c->width);
	} else {
		printf("%s\n%s\n\n%s\n%s\n", ha, ta, hb, tb);
	}
	free(sa);
	free(sb);
}

static void show_why(const pwb_response *r)
{
	if (!r) {
		puts("Nothing asked yet.");
		return;
	}
	printf("decision %s: %s\n", r->decision_id, pwb_verdict_str(r->verdict));
	printf("policy %s (org %s)\n", pwb_effective_hash(r->effective),
	       pwb_effective_org(r->effective));
	if (r->blocked) {
		const pwb_blocked_by *b = &r->blocked_by;
		printf("refused on the %s: %s, bounded by %s (%s)", b->on,
		       b->category, pwb_tier_str(b->tier), b->source);
		if (b->file)
			printf(" at %s:%d", b->file, b->line);
		printf("\n  basis: %s\n", b->basis ? b->basis : "(none given)");
	}
	for (size_t i = 0; i < r->n_alts; i++) {
		const pwb_alternative *a = &r->alts[i];
		const pwb_cat_decision *cb =
		    a->verdict == PWB_VERDICT_BLOCK
			? pwb_decision_blocked_by(a->check)
			: NULL;
		printf("  %s %s: %s, score %.3f%s%s\n", a->id,
		       i == r->chosen ? "(chosen)" : "        ",
		       pwb_verdict_str(a->verdict), a->score,
		       cb ? ", blocked: " : "", cb ? cb->category : "");
	}
	printf("ranked by %s model; %s\n",
	       r->personal ? "your own" : "the population",
	       r->learns ? "your feedback is learnt"
			 : "nothing is learnt from you");
	if (r->cohort && r->cohort_prior)
		printf("you started from the model of users with %s\n",
		       r->cohort);
	else if (r->cohort)
		printf("your cohort %s has learnt nothing yet: it did not "
		       "count\n",
		       r->cohort);
	printf("system prompt:\n%s\n", r->system_prompt ? r->system_prompt
							: "(none: refused)");
}

/* ---- one turn ---- */

static void remember(chat *c, const char *user, const char *assistant)
{
	if (c->n_history == 2 * HISTORY_TURNS) {
		free(c->history[0]);
		free(c->history[1]);
		memmove(c->history, c->history + 2,
			(2 * HISTORY_TURNS - 2) * sizeof(char *));
		c->n_history -= 2;
	}
	c->history[c->n_history++] = strdup(user);
	c->history[c->n_history++] = strdup(assistant);
	if (!c->history[c->n_history - 1] || !c->history[c->n_history - 2])
		c->n_history -= 2; /* out of memory: forget this turn */
}

static void forget_history(chat *c)
{
	for (size_t i = 0; i < c->n_history; i++)
		free(c->history[i]);
	c->n_history = 0;
}

/* Streaming: prints what the output rails passed as it comes; a
 * Ctrl-C cancels the rest. */
static int stream_text(void *user, const char *text, size_t len,
		       bool refusal)
{
	chat *c = user;
	(void)refusal;
	if (cancel_asked || stop_asked)
		return 1; /* nothing more of this answer is shown */
	fwrite(text, 1, len, stdout);
	fflush(stdout);
	c->streamed = true;
	return cancel_asked || stop_asked;
}

static int cancel_polled(void *user)
{
	(void)user;
	return cancel_asked || stop_asked;
}

static pwb_response *ask_turn(chat *c, const char *text, pwb_diag *d)
{
	pwb_chat_msg msgs[2 * HISTORY_TURNS + 1];
	size_t n = 0;
	for (size_t i = 0; i < c->n_history; i++)
		msgs[n++] = (pwb_chat_msg){i % 2 ? "assistant" : "user",
					   c->history[i]};
	msgs[n++] = (pwb_chat_msg){"user", text};
	pwb_request req = {
	    .org = c->o->ra.org,
	    .user = c->o->user,
	    .jurisdictions = c->o->ra.jur.v,
	    .n_jurisdictions = c->o->ra.jur.n,
	    .attrs = c->o->ra.attrs,
	    .msgs = msgs,
	    .n_msgs = n,
	    .n = c->o->n,
	    /* Without --seed, each turn samples afresh. */
	    .seed = c->seed_given ? c->o->seed : cli_random_seed(),
	};
	/* Ctrl-C cancels the generation (also while an endpoint is silent);
	 * one candidate is streamed as it passes the rails. */
	req.cancel = cancel_polled;
	int org_n = pwb_effective_candidates(c->o->ra.effective);
	if ((c->o->n ? c->o->n : (size_t)(org_n > 0 ? org_n : 1)) == 1) {
		req.on_text = stream_text;
		req.on_text_user = c;
	}
	c->streamed = false;
	pwb_response *r = NULL;
	generating = 1;
	pwb_status st = pwb_pipeline_chat(c->g.pipeline, &req, &r, d);
	generating = 0;
	if (st == PWB_ETOOLARGE && c->n_history) {
		/* The history no longer fits: start afresh, once. */
		printf("(the conversation no longer fits the model's context: "
		       "starting afresh)\n");
		forget_history(c);
		pwb_diag_clear(d);
		return ask_turn(c, text, d);
	}
	if (st) {
		cli_report_request(c->o, st, d);
	} else if (cli_gen_served(&c->g)) {
		pwb_response_free(r);
		r = NULL;
	}
	return r;
}

static void give_choice(chat *c, const pwb_response *r, const char *alt)
{
	pwb_feedback_give fb = {.org = c->o->ra.org,
				.user = c->o->user,
				.decision_id = r->decision_id,
				.kind = PWB_FB_CHOOSE,
				.alt = alt};
	pwb_feedback_result res;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_pipeline_feedback(c->g.pipeline, &fb, &res, &d);
	if (st)
		cli_report(NULL, st, &d);
	else if (res.consent_needed && !c->told_consent) {
		printf("(not learnt: the law here lets pwb learn from you only "
		       "with your consent: /consent gives it)\n");
		c->told_consent = true;
	} else if (res.consent_needed)
		printf("(not learnt: no consent)\n");
	else
		printf("(noted: alternative %s; your model is at version "
		       "%lld)\n",
		       alt, (long long)res.model_version);
	pwb_diag_release(&d);
}

/* Whether a reply names alternative a (its id, in either case). */
static bool names_alt(const char *reply, const pwb_alternative *a)
{
	return reply[0] && !reply[1] &&
	       (reply[0] == a->id[0] || reply[0] - 'a' + 'A' == a->id[0]);
}

/* What the deploying system must show with an answer (the AI
 * disclosure, where a law asks for it), once per chat. */
static void show_system_obligations(chat *c, const pwb_response *r)
{
	const pwb_decision *d =
	    r->chosen != SIZE_MAX ? r->alts[r->chosen].check : r->prompt_check;
	for (size_t i = 0; !c->told_ai && d &&
			   i < pwb_decision_n_obligations(d);
	     i++) {
		const pwb_dec_obligation *o = pwb_decision_obligation(d, i);
		if (o->placement == PWB_PLACE_SYSTEM && o->text) {
			printf("(%s)\n", o->text);
			c->told_ai = true;
		}
	}
}

static bool command(chat *c, const char *line, const pwb_response *r);

/* Shows the answer, asks which of two is better; returns the text kept
 * in the history. At the question, a command is run and the question
 * asked again; so is it after a reply that is neither a letter nor
 * Enter. */
static const char *show_answer(chat *c, const pwb_response *r)
{
	size_t x, y;
	if (c->streamed) { /* already on the screen, obligations too */
		putchar('\n');
		show_system_obligations(c, r);
		return r->chosen != SIZE_MAX ? r->alts[r->chosen].content
					     : r->content;
	}
	show_system_obligations(c, r);
	if (r->blocked || !best_two(r, &x, &y)) {
		printf("%s\n", r->content);
		return r->chosen != SIZE_MAX ? r->alts[r->chosen].content
					     : r->content;
	}
	show_pair(c, &r->alts[x], &r->alts[y]);
	char question[64];
	snprintf(question, sizeof(question),
		 "Which is better? %s or %s (Enter: no choice) ",
		 r->alts[x].id, r->alts[y].id);
	for (;;) {
		const char *pick = read_line(c, question);
		if (!pick || !*pick)
			break; /* pwb's pick, nothing recorded */
		if (names_alt(pick, &r->alts[y])) {
			give_choice(c, r, r->alts[y].id);
			return r->alts[y].content;
		}
		if (names_alt(pick, &r->alts[x])) {
			give_choice(c, r, r->alts[x].id);
			break;
		}
		if (pick[0] == '/' && command(c, pick, r)) {
			if (c->quit)
				break;
		} else {
			printf("Type %s or %s for the better answer, Enter for "
			       "no choice, or a command (/help).\n",
			       r->alts[x].id, r->alts[y].id);
		}
		fflush(stdout);
	}
	return r->alts[x].content;
}

static void say_redacted(void)
{
	printf("(your message was redacted before the model saw it: "
	       "personal data)\n");
}

static void turn(chat *c, const char *text)
{
	pwb_diag d;
	pwb_diag_init(&d);
	char *mine = strdup(text);
	pwb_response *r = mine ? ask_turn(c, mine, &d) : NULL;
	if (r && cancel_asked) {
		/* Ctrl-C: what was streamed stays on the screen; nothing of
		 * this turn goes into the history. */
		printf("%s\n", c->streamed	   ? "\n(cancelled)"
			       : r->n_alts > 1 ? "(cancelled: the answers are "
						 "not shown)"
					       : "(cancelled)");
		cancel_asked = 0;
		pwb_response_free(c->last);
		c->last = r;
	} else if (r) {
		/* Said before the answer, or right after a streamed one (on
		 * its own line: the verdict is known at the end). */
		bool redacted =
		    r->prompt_check &&
		    pwb_decision_verdict(r->prompt_check) == PWB_VERDICT_REDACT;
		if (redacted && !c->streamed)
			say_redacted();
		const char *kept = show_answer(c, r);
		if (redacted && c->streamed)
			say_redacted();
		/* The history holds the turn as the model saw it: personal
		 * data redacted, never in clear on a later turn. */
		const char *seen =
		    r->prompt_check &&
			    pwb_decision_verdict(r->prompt_check) ==
				PWB_VERDICT_REDACT
			? pwb_decision_redacted(r->prompt_check)
			: mine;
		if (!r->blocked)
			remember(c, seen, kept);
		pwb_response_free(c->last);
		c->last = r;
	}
	cancel_asked = 0; /* a Ctrl-C after the answer was made */
	free(mine);
	pwb_diag_release(&d);
}

/* The user's stored model: whether there is one, and its version. */
static pwb_status stored_model(chat *c, bool *learnt, int64_t *version,
			       pwb_diag *d)
{
	pwb_store_user row;
	*learnt = false;
	*version = 0;
	size_t keep = d->n;
	pwb_status st =
	    pwb_store_user_get(c->g.store, c->o->ra.org, c->o->user, &row, d);
	if (st == PWB_ENOTFOUND) {
		pwb__diag_rewind(d, keep);
		return PWB_OK;
	}
	if (st)
		return st;
	*learnt = row.model_len > 0;
	*version = row.model_version;
	pwb_store_user_release(&row);
	return PWB_OK;
}

/* Says what `pwb user reset` says for the same reset. */
static void reset(chat *c)
{
	pwb_diag d;
	pwb_diag_init(&d);
	bool learnt, after;
	int64_t version;
	pwb_status st = stored_model(c, &learnt, &version, &d);
	if (!st)
		st = pwb_pipeline_reset(c->g.pipeline, c->o->ra.org,
					c->o->user, &d);
	if (!st)
		st = stored_model(c, &after, &version, &d);
	if (st)
		cli_report(NULL, st, &d);
	else
		cli_say_reset(c->o->ra.org, c->o->user, learnt, version);
	pwb_diag_release(&d);
}

static void consent(chat *c)
{
	pwb_diag d;
	pwb_diag_init(&d);
	int64_t now = cli_time_now();
	/* Consent to learning; a consent to being grouped stays. */
	pwb_store_user row = {0};
	char *json = NULL;
	pwb_status st =
	    pwb_store_user_get(c->g.store, c->o->ra.org, c->o->user, &row, &d);
	if (st == PWB_ENOTFOUND) {
		pwb_diag_clear(&d);
		st = PWB_OK;
	}
	if (!st)
		st = pwb_consent_update(row.consent, 1, NULL, now, &json);
	pwb_store_user_release(&row);
	if (!st)
		st = pwb_store_user_set_consent(c->g.store, c->o->ra.org,
						c->o->user, json, now, &d);
	free(json);
	if (st)
		cli_report(NULL, st, &d);
	else
		puts("Recorded: pwb may learn from your choices.");
	pwb_diag_release(&d);
}

/* ---- the chat ---- */

/* Runs a chat command; false when line is not one. /why shows r. */
static bool command(chat *c, const char *line, const pwb_response *r)
{
	if (!strcmp(line, "/quit") || !strcmp(line, "/exit"))
		c->quit = true;
	else if (!strcmp(line, "/why"))
		show_why(r);
	else if (!strcmp(line, "/reset"))
		reset(c);
	else if (!strcmp(line, "/consent"))
		consent(c);
	else if (!strcmp(line, "/help"))
		fputs(chat_help, stdout);
	else
		return false;
	return true;
}

/* The disclosure a law asks for (disclose_ai), before any answer: the
 * obligations of a check of nothing are the policy's own. */
static void tell_ai_first(chat *c)
{
	pwb_decision *d = NULL;
	pwb_diag dg;
	pwb_diag_init(&dg);
	if (!pwb_bounds_check(&d, c->g.bounds, c->o->ra.effective,
			      PWB_ROLE_PROMPT, "", 0, &dg)) {
		for (size_t i = 0; i < pwb_decision_n_obligations(d); i++) {
			const pwb_dec_obligation *o =
			    pwb_decision_obligation(d, i);
			if (o->placement == PWB_PLACE_SYSTEM && o->text) {
				printf("(%s)\n", o->text);
				c->told_ai = true;
			}
		}
	}
	pwb_decision_free(d);
	pwb_diag_release(&dg);
}

static void chat_loop(chat *c)
{
	if (c->tty)
		printf("Chat as %s with %s. /help for commands, /quit to end.\n",
		       c->o->user, pwb_engine_name(c->g.engine));
	tell_ai_first(c);
	while (!c->quit) {
		const char *line = read_line(c, "you> ");
		if (!line)
			break;
		/* A blank line is no message (pwb ask refuses an empty
		 * PROMPT): nothing is sent. */
		if (!line[strspn(line, " \t")])
			continue;
		if (line[0] == '/' && !command(c, line, c->last))
			printf("unknown command '%s'; /help lists them\n",
			       line);
		else if (line[0] != '/')
			turn(c, line);
		fflush(stdout);
	}
}

/* An erased user is not served: the chat does not start. */
static int check_user(chat *c)
{
	pwb_store_user row;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st =
	    pwb_store_user_get(c->g.store, c->o->ra.org, c->o->user, &row, &d);
	bool erased = !st && row.erased;
	if (!st)
		pwb_store_user_release(&row);
	if (st && st != PWB_ENOTFOUND)
		cli_store_report(c->g.store, "read the user", st, &d);
	else if (erased)
		fprintf(stderr,
			"pwb chat: user '%s' of org '%s' was erased: pwb "
			"answers and stores nothing more for them\n",
			c->o->user, c->o->ra.org);
	pwb_diag_release(&d);
	return (st && st != PWB_ENOTFOUND) || erased ? CLI_FAIL : CLI_OK;
}

/* Without --db: a store in a temporary folder, removed at the end. */
static int temp_store(chat *c)
{
	const char *base = getenv("TMPDIR");
	pwb__buf b;
	pwb__buf_init(&b, 0);
	pwb__buf_addf(&b, "%s/pwb-chat.XXXXXX", base && *base ? base : "/tmp");
	if (b.err || !mkdtemp(b.s)) {
		perror("pwb chat: cannot make a temporary folder");
		pwb__buf_release(&b);
		return CLI_FAIL;
	}
	c->tmpdir = pwb__buf_detach(&b);
	pwb__buf_init(&b, 0);
	pwb__buf_addf(&b, "sqlite:%s/chat.db", c->tmpdir);
	c->o->db = b.err ? NULL : pwb__buf_detach(&b);
	return c->o->db ? CLI_OK : CLI_FAIL;
}

static void temp_store_remove(chat *c)
{
	if (!c->tmpdir)
		return;
	static const char *const files[] = {"chat.db", "chat.db-wal",
					    "chat.db-shm"};
	char path[4200];
	for (size_t i = 0; i < PWB_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", c->tmpdir, files[i]);
		unlink(path);
	}
	rmdir(c->tmpdir);
	free(c->tmpdir);
	free((char *)c->o->db);
}

int cli_chat(int argc, char **argv)
{
	cli_gen_opts o = {.temperature = -1};
	cli_args a = {argc, argv, 1, "pwb chat"};
	const cli_spec spec[] = {CLI_GEN_SPEC(&o)};
	int rc = cli_parse(&a, spec, PWB_ARRAY_LEN(spec), chat_usage, NULL);
	if (rc)
		return cli_parsed(rc);
	bool seed_given = o.seed != 0;
	if ((rc = cli_gen_check(&a, &o)))
		return rc;
	if ((rc = cli_resolve_run(&o.ra, &a))) {
		cli_resolve_release(&o.ra);
		return rc;
	}
	chat c = {.o = &o,
		  .tty = isatty(0) && isatty(1),
		  .width = 80,
		  .seed_given = seed_given};
	struct winsize ws;
	if (c.tty && !ioctl(1, TIOCGWINSZ, &ws) && ws.ws_col)
		c.width = ws.ws_col;
	rc = o.db ? CLI_OK : temp_store(&c);
	if (!rc)
		rc = cli_gen_open(&a, &o, &c.g);
	if (!rc)
		rc = check_user(&c);
	if (!rc) {
		catch_signals();
		chat_loop(&c);
	}
	pwb_response_free(c.last);
	forget_history(&c);
	free(c.line);
	cli_gen_close(&c.g);
	temp_store_remove(&c);
	cli_resolve_release(&o.ra);
	return rc;
}
