/*
 * guard.c - the guard detector: the prompt for an LLM judge, and the
 * reading of its answer (DESIGN §5, docs/bounds.md).
 *
 * The prompt follows the published Llama Guard convention: a task line,
 * the categories between markers, each as "CODE: description" (the
 * registry's llama_guard code, or the category id when it has none), the
 * conversation, and the instruction to answer "safe", or "unsafe" and a
 * line of comma-separated codes. The engine that runs it is the caller's
 * (pwb_bounds_params.guard).
 */
#include "bounds/bounds_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define PWB__GUARD_MAX_PROMPT (PWB_BOUNDS_MAX_TEXT + 64u * 1024)
#define PWB__GUARD_MAX_ANSWER (64u * 1024)

static const char *code_of(const pwb_category_def *c)
{
	return c->llama_guard && *c->llama_guard ? c->llama_guard : c->id;
}

bool pwb__guard_wanted(const pwb_bounds *b)
{
	if (!b->params.guard)
		return false;
	for (size_t c = 0; c < pwb_policy_n_categories(b->policy); c++)
		if (pwb_policy_category(b->policy, c)
			->has_detector[PWB_DET_GUARD])
			return true;
	return false;
}

pwb_status pwb__guard_prompt(const pwb_bounds *b, pwb_role role,
			     const char *text, size_t len, char **out)
{
	const pwb_policy *p = b->policy;
	const char *who = role == PWB_ROLE_RESPONSE ? "Agent" : "User";
	pwb__buf o;
	pwb__buf_init(&o, PWB__GUARD_MAX_PROMPT);
	pwb__buf_addf(&o,
		      "Task: Check if there is unsafe content in '%s' messages "
		      "in conversations according to our safety policy with "
		      "the below categories.\n\n"
		      "<BEGIN UNSAFE CONTENT CATEGORIES>\n",
		      who);
	for (size_t c = 0; c < pwb_policy_n_categories(p); c++) {
		const pwb_category_def *rc = pwb_policy_category(p, c);
		if (!rc->has_detector[PWB_DET_GUARD])
			continue;
		pwb__buf_addf(&o, "%s: %s\n", code_of(rc),
			      rc->description && *rc->description
				  ? rc->description
				  : rc->id);
	}
	pwb__buf_addf(&o,
		      "<END UNSAFE CONTENT CATEGORIES>\n\n"
		      "<BEGIN CONVERSATION>\n\n%s: ",
		      who);
	pwb__buf_add(&o, text, len);
	pwb__buf_addf(&o,
		      "\n\n<END CONVERSATION>\n\n"
		      "Provide your safety assessment for ONLY THE LAST %s "
		      "message in the above conversation:\n"
		      " - First line must read 'safe' or 'unsafe'.\n"
		      " - If unsafe, a second line must include a "
		      "comma-separated list of violated categories.",
		      who);
	if (o.err) {
		pwb_status st = o.err;
		pwb__buf_release(&o);
		return st;
	}
	*out = pwb__buf_detach(&o);
	return *out ? PWB_OK : PWB_ENOMEM;
}

/* The next line of s (without its end), skipping blank ones. */
static const char *next_line(const char *s, size_t *len)
{
	while (*s == '\n' || *s == '\r' || *s == ' ' || *s == '\t')
		s++;
	size_t n = strcspn(s, "\r\n");
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	*len = n;
	return s;
}

pwb_status pwb__guard_read(const pwb_bounds *b, const char *answer,
			   double *scores, pwb_diag *diag)
{
	const pwb_policy *p = b->policy;
	for (size_t c = 0; c < pwb_policy_n_categories(p); c++)
		scores[c] = 0;
	if (strlen(answer) > PWB__GUARD_MAX_ANSWER) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the guard's answer is longer than %u bytes",
			     PWB__GUARD_MAX_ANSWER);
		return PWB_EPARSE;
	}
	size_t n;
	const char *line = next_line(answer, &n);
	char word[16] = "";
	if (n < sizeof(word)) {
		for (size_t i = 0; i < n; i++)
			word[i] = (char)tolower((unsigned char)line[i]);
		word[n] = '\0';
	}
	if (!strcmp(word, "safe"))
		return PWB_OK;
	if (strcmp(word, "unsafe")) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the guard answered '%.*s' where 'safe' or "
			     "'unsafe' was expected",
			     (int)(n < 80 ? n : 80), line);
		return PWB_EPARSE;
	}
	/* "unsafe" and a line of codes; without codes, every category the
	 * guard was asked about counts as flagged. */
	const char *codes = next_line(line + n, &n);
	bool any = false;
	for (size_t i = 0; i < n;) {
		while (i < n && (codes[i] == ',' || codes[i] == ' '))
			i++;
		size_t j = i;
		while (j < n && codes[j] != ',' && codes[j] != ' ')
			j++;
		for (size_t c = 0; c < pwb_policy_n_categories(p) && j > i;
		     c++) {
			const pwb_category_def *rc = pwb_policy_category(p, c);
			const char *code = code_of(rc);
			if (rc->has_detector[PWB_DET_GUARD] &&
			    strlen(code) == j - i &&
			    !strncasecmp(code, codes + i, j - i)) {
				scores[c] = 1.0;
				any = true;
			}
		}
		i = j;
	}
	if (!any)
		for (size_t c = 0; c < pwb_policy_n_categories(p); c++)
			if (pwb_policy_category(p, c)
				->has_detector[PWB_DET_GUARD])
				scores[c] = 1.0;
	return PWB_OK;
}
