/*
 * prompt.c - the personalised system prompt (docs/pipeline.md): one
 * sentence per dimension from the user's effective values, the
 * obligations that speak to the model, then the org's own text.
 *
 * A numeric dimension falls in one of five bands of [0, 1] (below 0.2,
 * 0.4, 0.6, 0.8, and the rest), each with its own sentence; a dimension
 * the table does not know gets a generic sentence naming its id and
 * value, so that a deployer's own dimensions still reach the model.
 */
#include "pipeline/pipeline_int.h"

#include <stdlib.h>
#include <string.h>

#define BANDS 5

typedef struct dim_template {
	const char *id;
	const char *band[BANDS];
} dim_template;

static const dim_template numeric[] = {
    {"verbosity",
     {"Answer in as few words as possible.", "Keep answers short.",
      "Give answers of moderate length.",
      "Give full answers with some detail.",
      "Give long, thorough answers that cover every aspect."}},
    {"formality",
     {"Write casually, as among friends.", "Write in a relaxed register.",
      "Write in a neutral register.", "Write in a formal register.",
      "Write very formally and precisely."}},
    {"humour",
     {"Do not joke.", "Keep humour rare and light.",
      "A little humour is welcome where it fits.",
      "Be playful and use humour often.",
      "Be very playful and jokey."}},
    {"warmth",
     {"Be neutral and impersonal.", "Be polite but reserved.",
      "Be friendly.", "Be warm and encouraging.",
      "Be very warm, encouraging and empathetic."}},
    {"directness",
     {"Be diplomatic and hedge where there is doubt.",
      "Be tactful, with the answer after the context.",
      "Balance tact and directness.", "Be direct: the answer first.",
      "Be blunt: the answer first, without softening."}},
    {"reading_level",
     {"Use very simple words and short sentences, for young readers.",
      "Use simple words and short sentences.",
      "Write for a general adult reader.",
      "Write for an educated reader; technical terms are fine.",
      "Write for experts; academic prose is fine."}},
    {"emoji",
     {"Use no emoji.", "Use emoji rarely.", "Use an emoji now and then.",
      "Use emoji freely.", "Use many emoji."}},
    {"creativity",
     {"Be conventional and literal.", "Stay close to the usual answers.",
      "Be somewhat inventive where it helps.",
      "Be inventive and original.",
      "Be highly imaginative and unusual."}},
};

/* Enum dimensions: one sentence per value; %s is the value. */
typedef struct enum_template {
	const char *id, *value, *text;
} enum_template;

static const enum_template enums[] = {
    {"viewpoint", "balanced",
     "On contested questions, present the main views fairly and do not "
     "take sides."},
    {"viewpoint", "as_requested",
     "On contested questions, you may take the perspective the user asks "
     "for."},
    {"persona", "assistant", "You are a helpful general assistant."},
    {"persona", "tutor",
     "You are a patient tutor: explain step by step and help the learner "
     "think for themselves rather than giving solutions to copy."},
    {"persona", "writer", "You are a creative writing partner."},
    {"persona", "clinician_info",
     "You give general clinical information, never a diagnosis or a "
     "treatment plan, and refer to a professional."},
};

/* Language codes pwb names in words; others are named by their code. */
static const char *const languages[][2] = {
    {"en", "English"},	   {"de", "German"},	{"fr", "French"},
    {"es", "Spanish"},	   {"it", "Italian"},	{"nl", "Dutch"},
    {"pl", "Polish"},	   {"pt", "Portuguese"}, {"sv", "Swedish"},
    {"da", "Danish"},	   {"fi", "Finnish"},	{"cs", "Czech"},
    {"el", "Greek"},	   {"tr", "Turkish"},	{"ja", "Japanese"},
    {"zh", "Chinese"},	   {"ar", "Arabic"},	{"uk", "Ukrainian"},
};

static int band(double v)
{
	int b = (int)(v * BANDS);
	return b < 0 ? 0 : b >= BANDS ? BANDS - 1 : b;
}

static void add_numeric(pwb__buf *o, const pwb_eff_dimension *d)
{
	for (size_t i = 0; i < PWB_ARRAY_LEN(numeric); i++)
		if (!strcmp(numeric[i].id, d->id)) {
			pwb__buf_addf(o, "%s\n", numeric[i].band[band(d->value)]);
			return;
		}
	pwb__buf_addf(o, "Keep '%s' at %.2f on a scale from 0 to 1.\n", d->id,
		      d->value);
}

/* Bytes of a setting's own value quoted in a sentence. */
#define PWB__QUOTE_MAX 64

/* Whether the character at s (k bytes) may stand in a quoted value:
 * ASCII letters, digits, '-' and '_', and letters of other scripts; not
 * punctuation (a quote or a full stop would end the phrase), nor a
 * control character or a line or paragraph separator. */
static bool value_char(const unsigned char *s, size_t k)
{
	if (k == 1)
		return (s[0] >= 'a' && s[0] <= 'z') ||
		       (s[0] >= 'A' && s[0] <= 'Z') ||
		       (s[0] >= '0' && s[0] <= '9') || s[0] == '-' ||
		       s[0] == '_';
	if (k == 2 && s[0] == 0xC2 && s[1] < 0xC0)
		return false; /* U+0080..U+00BF: C1 controls, NEL, signs */
	if (k == 3 && s[0] == 0xE2 && s[1] == 0x80)
		return false; /* U+2000..U+203F: spaces, separators, quotes */
	return true;
}

/* A value a user set, quoted: one phrase (anything but letters, digits,
 * '-' and '_' becomes a space), at most PWB__QUOTE_MAX bytes cut at a
 * character boundary, so that a setting can neither end the quote, nor
 * add sentences of its own to pwb's system message, nor crowd it out. */
static void add_value(pwb__buf *o, const char *v)
{
	size_t n = strlen(v), at = 0;
	pwb__buf_addc(o, '\'');
	while (at < n && at < PWB__QUOTE_MAX) {
		const unsigned char *c = (const unsigned char *)v + at;
		size_t k = pwb__utf8_seq(c, n - at);
		if (!k || at + k > PWB__QUOTE_MAX)
			break;
		if (value_char(c, k))
			pwb__buf_add(o, v + at, k);
		else
			pwb__buf_addc(o, ' ');
		at += k;
	}
	if (at < n)
		pwb__buf_adds(o, "…");
	pwb__buf_addc(o, '\'');
}

static void add_language(pwb__buf *o, const char *code)
{
	for (size_t i = 0; i < PWB_ARRAY_LEN(languages); i++)
		if (!strcmp(languages[i][0], code)) {
			pwb__buf_addf(o, "Answer in %s.\n", languages[i][1]);
			return;
		}
	pwb__buf_adds(o, "Answer in the language with the code ");
	add_value(o, code);
	pwb__buf_adds(o, ".\n");
}

static void add_enum(pwb__buf *o, const pwb_eff_dimension *d)
{
	const char *v = d->value_str ? d->value_str : d->def_str;
	if (!v)
		return;
	if (!strcmp(d->id, "language")) {
		add_language(o, v);
		return;
	}
	for (size_t i = 0; i < PWB_ARRAY_LEN(enums); i++)
		if (!strcmp(enums[i].id, d->id) && !strcmp(enums[i].value, v)) {
			pwb__buf_addf(o, "%s\n", enums[i].text);
			return;
		}
	pwb__buf_addf(o, "Keep '%s' as ", d->id);
	add_value(o, v);
	pwb__buf_adds(o, ".\n");
}

/* Obligations the model itself must follow (the others are applied to
 * its answer by the pipeline). */
static void add_obligations(pwb__buf *o, const pwb_effective *e)
{
	for (size_t i = 0; i < pwb_effective_n_obligations(e); i++) {
		const pwb_eff_obligation *ob = pwb_effective_obligation(e, i);
		if (!strcmp(ob->kind, "disclose_ai")) {
			pwb__buf_adds(o, "You are an AI system. Never claim or "
					 "imply that you are a human.\n");
			return;
		}
	}
}

pwb_status pwb_pipeline_system_prompt(const pwb_effective *e, char **out)
{
	*out = NULL;
	pwb__buf o;
	pwb__buf_init(&o, 0);
	/* The persona first: it frames everything else. */
	const pwb_eff_dimension *persona =
	    pwb_effective_find_dimension(e, "persona");
	if (persona && !persona->numeric)
		add_enum(&o, persona);
	for (size_t i = 0; i < pwb_effective_n_dimensions(e); i++) {
		const pwb_eff_dimension *d = pwb_effective_dimension(e, i);
		if (d == persona)
			continue;
		if (d->numeric)
			add_numeric(&o, d);
		else
			add_enum(&o, d);
	}
	add_obligations(&o, e);
	const char *org = pwb_effective_system_prompt(e);
	if (org && *org)
		pwb__buf_addf(&o, "\n%s\n", org);
	/* No trailing newline: the chat template adds its own. */
	while (o.len && o.s[o.len - 1] == '\n')
		o.s[--o.len] = '\0';
	if (o.err || !o.len) {
		pwb_status st = o.err ? o.err : PWB_OK;
		pwb__buf_release(&o);
		if (!st)
			*out = pwb__strdup("");
		return st ? st : (*out ? PWB_OK : PWB_ENOMEM);
	}
	*out = pwb__buf_detach(&o);
	return *out ? PWB_OK : PWB_ENOMEM;
}
