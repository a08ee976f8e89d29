/*
 * bounds.c - checking a text: one Vectorscan pass for lexicons and PII
 * candidates, validators, the linear model, and the decision per category
 * with its verdict, spans and transparent refusal.
 */
#include "bounds/bounds_int.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *pwb_verdict_str(pwb_verdict v)
{
	static const char *const names[] = {"allow", "annotate", "redact",
					    "block"};
	return (unsigned)v < 4 ? names[v] : "?";
}

const char *pwb_role_str(pwb_role r)
{
	return r == PWB_ROLE_RESPONSE ? "response" : "prompt";
}

bool pwb_role_parse(const char *s, pwb_role *out)
{
	if (!strcmp(s, "prompt"))
		*out = PWB_ROLE_PROMPT;
	else if (!strcmp(s, "response"))
		*out = PWB_ROLE_RESPONSE;
	else
		return false;
	return true;
}

pwb_bounds_params pwb_bounds_default_params(void)
{
	pwb_bounds_params bp = {0};
	bp.max_text_bytes = PWB_BOUNDS_MAX_TEXT;
	bp.linear_window = PWB_BOUNDS_LINEAR_WINDOW;
	return bp;
}

void pwb__bounds_log(const pwb_bounds *b, pwb_log_level level, const char *fmt,
		     ...)
{
	va_list ap;
	va_start(ap, fmt);
	pwb__vlogf(b->params.log, b->params.log_user, level, fmt, ap);
	va_end(ap);
}

/* ---- scratch spaces: one per concurrent scan ---- */

static hs_scratch_t *scratch_get(pwb__scratch_pool *sp)
{
	hs_scratch_t *s = NULL;
	pthread_mutex_lock(&sp->lock);
	if (sp->n_free)
		s = sp->free[--sp->n_free];
	pthread_mutex_unlock(&sp->lock);
	if (!s && hs_clone_scratch(sp->proto, &s) != HS_SUCCESS)
		s = NULL;
	return s;
}

static void scratch_put(pwb__scratch_pool *sp, hs_scratch_t *s)
{
	pthread_mutex_lock(&sp->lock);
	if (sp->n_free < 64 && !pwb__grow((void **)&sp->free, &sp->cap,
					  sp->n_free + 1, sizeof(*sp->free))) {
		sp->free[sp->n_free++] = s;
		s = NULL;
	}
	pthread_mutex_unlock(&sp->lock);
	if (s)
		hs_free_scratch(s);
}

/* ---- building ---- */

void pwb_bounds_free(pwb_bounds *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n_entries; i++) {
		free(b->entries[i].entry);
		free(b->entries[i].note);
		free(b->entries[i].lowers);
	}
	free(b->entries);
	for (size_t i = 0; i < b->n_lex_files; i++)
		free(b->lex_files[i]);
	free(b->lex_files);
	for (size_t i = 0; i < b->scratch.n_free; i++)
		hs_free_scratch(b->scratch.free[i]);
	free(b->scratch.free);
	hs_free_scratch(b->scratch.proto);
	pthread_mutex_destroy(&b->scratch.lock);
	hs_free_database(b->db);
	pwb__lexicon_free_re(b);
	pwb__linear_free(b->model);
	free(b->model_cat);
	free(b);
}

pwb_status pwb_bounds_new(pwb_bounds **out, const pwb_policy *policy,
			  const pwb_bounds_params *params, pwb_diag *diag)
{
	*out = NULL;
	size_t mark = pwb__diag_mark(diag);
	if (!policy)
		return pwb__diag_fail(diag, mark, PWB_EINVAL,
				      "detectors without a policy");
	pwb_bounds *b = pwb__calloc(1, sizeof(*b));
	if (!b)
		return pwb__diag_fail(diag, mark, PWB_ENOMEM, "detectors");
	if (pthread_mutex_init(&b->scratch.lock, NULL) != 0) {
		free(b);
		return pwb__diag_fail(diag, mark, PWB_ENOMEM, "detectors");
	}
	b->policy = policy;
	b->params = params ? *params : pwb_bounds_default_params();
	if (!b->params.max_text_bytes)
		b->params.max_text_bytes = PWB_BOUNDS_MAX_TEXT;
	if (!b->params.linear_window)
		b->params.linear_window = PWB_BOUNDS_LINEAR_WINDOW;
	pwb_status rc = PWB_OK;
	if (b->params.lexicon_dir)
		rc = pwb__lexicon_load(b, b->params.lexicon_dir, diag);
	if (!rc)
		rc = pwb__lexicon_compile(b, diag);
	if (!rc && b->params.model) {
		rc = pwb__linear_load(&b->model, b->params.model, diag);
		if (!rc) {
			size_t nl = pwb__linear_n_labels(b->model);
			b->model_cat = pwb__calloc(nl ? nl : 1, sizeof(int));
			if (!b->model_cat)
				rc = PWB_ENOMEM;
			for (size_t i = 0; !rc && i < nl; i++)
				b->model_cat[i] = pwb_policy_find_category(
				    policy, pwb__linear_label(b->model, i));
		}
	}
	if (rc) {
		pwb_bounds_free(b);
		return pwb__diag_fail(diag, mark, rc, "detectors");
	}
	*out = b;
	return PWB_OK;
}

size_t pwb_bounds_n_lexicon_entries(const pwb_bounds *b)
{
	return b->n_entries;
}

/* ---- the scan ---- */

/*
 * The text as Vectorscan sees it: same length and offsets, ASCII and
 * Latin-1 letters lowercased, NUL bytes and invalid UTF-8 as spaces.
 */
static void normalise(const unsigned char *in, size_t len, unsigned char *out)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = in[i];
		if (c < 0x80) {
			out[i++] = c == 0 ? ' '
				   : (c >= 'A' && c <= 'Z')
				       ? (unsigned char)(c + 32)
				       : c;
			continue;
		}
		size_t need = (c & 0xe0) == 0xc0   ? 1
			      : (c & 0xf0) == 0xe0 ? 2
			      : (c & 0xf8) == 0xf0 ? 3
						   : 0;
		bool ok = need != 0;
		uint32_t cp = need == 1	  ? c & 0x1f
			      : need == 2 ? c & 0x0f
					  : c & 0x07;
		for (size_t k = 1; ok && k <= need; k++) {
			if (i + k >= len || (in[i + k] & 0xc0) != 0x80)
				ok = false;
			else
				cp = (cp << 6) | (in[i + k] & 0x3f);
		}
		static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
		if (ok && (cp < min[need] || cp > 0x10ffff ||
			   (cp >= 0xd800 && cp <= 0xdfff)))
			ok = false;
		if (!ok) {
			out[i++] = ' ';
			continue;
		}
		memcpy(out + i, in + i, need + 1);
		/* Latin-1 capitals À..Þ (but ×) to their small letters. */
		if (need == 1 && c == 0xc3 && in[i + 1] >= 0x80 &&
		    in[i + 1] <= 0x9e && in[i + 1] != 0x97)
			out[i + 1] = (unsigned char)(in[i + 1] + 0x20);
		i += need + 1;
	}
}

static bool is_word_byte(unsigned char c)
{
	return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

typedef struct pii_hit {
	size_t start, end;
	pwb__pii_kind kind;
} pii_hit;

typedef struct lex_hit {
	size_t start, end;
	unsigned entry;
} lex_hit;

typedef struct scan_ctx {
	const pwb_bounds *b;
	const unsigned char *text; /* the original bytes */
	const unsigned char *norm;
	size_t len;
	unsigned char *entry_seen; /* one byte per lexicon entry */
	lex_hit *lex;
	size_t n_lex, cap_lex;
	pii_hit *pii;
	size_t n_pii, cap_pii;
	pwb__start_ctx starts;
	pwb_status err;
} scan_ctx;

static int on_match(unsigned id, unsigned long long from, unsigned long long to,
		    unsigned flags, void *user)
{
	(void)flags;
	scan_ctx *sc = user;
	const pwb_bounds *b = sc->b;
	size_t start = (size_t)from, end = (size_t)to;
	if (id < b->n_entries) {
		/* Whole words only, for every kind of entry: a match that
		 * starts (ends) with a word character must not have one just
		 * before (after) it. Vectorscan reports every end offset, so
		 * a longer match at a word's end still gets through. The end
		 * is checked first: it costs nothing, the start a search. */
		if (end == 0 || (is_word_byte(sc->norm[end - 1]) &&
				 end < sc->len && is_word_byte(sc->norm[end])))
			return 0;
		if (sc->entry_seen[id] && sc->n_lex >= PWB__MAX_MATCHES)
			return 0; /* nothing more to learn from it */
		if (!pwb__lexicon_start(b, id, sc->norm, end, &sc->starts,
					&start)) {
			if (sc->starts.oom) {
				sc->err = PWB_ENOMEM;
				return 1;
			}
			/* Unknown (a hostile text spent the budget): the
			 * match counts, as an empty span at its end. */
			start = end;
		} else if (end <= start ||
			   (is_word_byte(sc->norm[start]) && start > 0 &&
			    is_word_byte(sc->norm[start - 1]))) {
			return 0;
		}
		sc->entry_seen[id] = 1;
		if (sc->n_lex >= PWB__MAX_MATCHES)
			return 0;
		if (pwb__grow((void **)&sc->lex, &sc->cap_lex, sc->n_lex + 1,
			      sizeof(*sc->lex))) {
			sc->err = PWB_ENOMEM;
			return 1;
		}
		sc->lex[sc->n_lex++] = (lex_hit){start, end, id};
		return 0;
	}
	pwb__pii_kind k = (pwb__pii_kind)(id - b->n_entries);
	if (!pwb__pii_validate(k, (const char *)sc->text + start,
			       end - start) ||
	    !pwb__pii_context_ok(k, (const char *)sc->text, sc->len, start,
				 end))
		return 0;
	/* Vectorscan reports the same start at growing ends: keep the
	 * longest valid candidate only. */
	if (sc->n_pii && sc->pii[sc->n_pii - 1].kind == k &&
	    sc->pii[sc->n_pii - 1].start == start) {
		sc->pii[sc->n_pii - 1].end = end;
		return 0;
	}
	if (sc->n_pii >= PWB__MAX_MATCHES)
		return 0;
	if (pwb__grow((void **)&sc->pii, &sc->cap_pii, sc->n_pii + 1,
		      sizeof(*sc->pii))) {
		sc->err = PWB_ENOMEM;
		return 1;
	}
	sc->pii[sc->n_pii++] = (pii_hit){start, end, k};
	return 0;
}

static int cmp_pii(const void *a, const void *b)
{
	const pii_hit *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->end > y->end ? -1 : x->end < y->end;
}

static int cmp_lex(const void *a, const void *b)
{
	const lex_hit *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

/* Keeps, among overlapping PII spans, the longest (the first at a tie). */
static void dedupe_pii(scan_ctx *sc)
{
	if (sc->n_pii > 1)
		qsort(sc->pii, sc->n_pii, sizeof(*sc->pii), cmp_pii);
	size_t k = 0;
	for (size_t i = 0; i < sc->n_pii; i++) {
		if (k && sc->pii[i].start < sc->pii[k - 1].end) {
			size_t li = sc->pii[i].end - sc->pii[i].start;
			size_t lk = sc->pii[k - 1].end - sc->pii[k - 1].start;
			if (li > lk)
				sc->pii[k - 1] = sc->pii[i];
			continue;
		}
		sc->pii[k++] = sc->pii[i];
	}
	sc->n_pii = k;
}

/* ---- decisions ---- */

struct pwb_decision {
	pwb__arena arena;
	/* A reference to the effective policy: the category ids and the
	 * provenance strings are its own, borrowed, not copied per check. */
	pwb_effective *effective;
	pwb_role role;
	pwb_verdict verdict;
	const char *org;
	const char *policy_hash;
	pwb_cat_decision *cats;
	size_t n_cats;
	const pwb_cat_decision *blocked_by;
	const pwb_cat_decision **blocking; /* the most binding first */
	size_t n_blocking;
	const char *refusal;
	pwb_dec_help *help;
	size_t n_help;
	pwb_dec_obligation *obligations;
	size_t n_obligations;
	const char *redacted;
	size_t redacted_len;
	/* the redacted spans: input [start, end) became rstart.. in redacted */
	struct red_span {
		size_t start, end, rstart, rlen;
	} *red_spans;
	size_t n_red_spans;
	char lang[17]; /* the user's language: the primary subtag */
};

void pwb_decision_free(pwb_decision *d)
{
	if (!d)
		return;
	pwb_effective_free(d->effective);
	pwb__arena_release(&d->arena);
	free(d);
}

pwb_verdict pwb_decision_verdict(const pwb_decision *d)
{
	return d->verdict;
}

size_t pwb_decision_n_categories(const pwb_decision *d)
{
	return d->n_cats;
}

const pwb_cat_decision *pwb_decision_category(const pwb_decision *d, size_t i)
{
	return i < d->n_cats ? &d->cats[i] : NULL;
}

const pwb_cat_decision *pwb_decision_blocked_by(const pwb_decision *d)
{
	return d->blocked_by;
}

const char *pwb_decision_refusal(const pwb_decision *d)
{
	return d->refusal;
}

size_t pwb_decision_n_blocking(const pwb_decision *d)
{
	return d->n_blocking;
}

const pwb_cat_decision *pwb_decision_blocking(const pwb_decision *d, size_t i)
{
	return i < d->n_blocking ? d->blocking[i] : NULL;
}

size_t pwb_decision_n_help(const pwb_decision *d)
{
	return d->n_help;
}

const pwb_dec_help *pwb_decision_help(const pwb_decision *d, size_t i)
{
	return i < d->n_help ? &d->help[i] : NULL;
}

const char *pwb_placement_str(pwb_placement p)
{
	static const char *const names[] = {"prepend", "append", "system"};
	return (unsigned)p < 3 ? names[p] : "?";
}

size_t pwb_decision_n_obligations(const pwb_decision *d)
{
	return d->n_obligations;
}

const pwb_dec_obligation *pwb_decision_obligation(const pwb_decision *d,
						  size_t i)
{
	return i < d->n_obligations ? &d->obligations[i] : NULL;
}

const char *pwb_decision_redacted(const pwb_decision *d)
{
	return d->redacted;
}

size_t pwb_decision_redacted_len(const pwb_decision *d)
{
	return d->redacted ? d->redacted_len : 0;
}

size_t pwb_decision_redacted_offset(const pwb_decision *d, size_t at)
{
	if (!d->redacted)
		return at;
	long long shift = 0; /* redacted minus input, before `at` */
	for (size_t i = 0; i < d->n_red_spans; i++) {
		const struct red_span *sp = &d->red_spans[i];
		if (at <= sp->start)
			break;
		if (at < sp->end) /* inside: the whole replacement */
			return sp->rstart;
		shift = (long long)(sp->rstart + sp->rlen) - (long long)sp->end;
	}
	long long r = (long long)at + shift;
	if (r < 0)
		r = 0;
	return (size_t)r > d->redacted_len ? d->redacted_len : (size_t)r;
}

/* Is registry category `anc` category c or one of its ancestors? */
static bool is_or_under(const pwb_policy *p, size_t c, const char *anc)
{
	for (int a = (int)c; a >= 0;
	     a = pwb_policy_category(p, (size_t)a)->parent)
		if (!strcmp(pwb_policy_category(p, (size_t)a)->id, anc))
			return true;
	return false;
}

/* Does an obligation ask for a disclaimer on category c (or a parent)? */
static bool has_disclaimer(const pwb_policy *p, const pwb_effective *e,
			   size_t c)
{
	for (size_t i = 0; i < pwb_effective_n_obligations(e); i++) {
		const pwb_eff_obligation *o = pwb_effective_obligation(e, i);
		if (!strcmp(o->kind, "disclaimer") && o->category &&
		    is_or_under(p, c, o->category))
			return true;
	}
	return false;
}

pwb_tier pwb_cat_decision_block_tier(const pwb_cat_decision *c)
{
	if (c->permission != PWB_FORBID)
		return PWB_TIER_USER;
	return c->set_by.tier == PWB_TIER_LAW ? PWB_TIER_LAW : PWB_TIER_ORG;
}

static pwb_tier block_tier(const pwb_cat_decision *c)
{
	return pwb_cat_decision_block_tier(c);
}

/* ---- what pwb says, per language: refusals, help, obligations ---- */

typedef struct wording {
	const char *lang;
	const char *tmpl;    /* the refusal */
	const char *tier[3]; /* law, org, user */
	const char *how_fixed;
	const char *how_user;
	const char *help; /* before the help resources */
	const char *disclose_ai;
	const char *age_verification;
} wording;

static const wording wordings[] = {
    {"en",
     "I can't help with that: the category “{category}” is not "
     "allowed here, by {tier} ({source}){basis}. {how}",
     {"the law", "this service's policy", "your own settings"},
     "This cannot be changed in your settings.",
     "You can turn “{category}” on in your settings.",
     "Help is available: ",
     "You are talking to an AI system, not a person.",
     "This content is only for users whose age has been verified."},
    {"de",
     "Dabei kann ich nicht helfen: Die Kategorie „{category}“ "
     "ist hier nicht erlaubt, durch {tier} ({source}){basis}. {how}",
     {"das Gesetz", "die Richtlinie dieses Dienstes",
      "deine eigenen Einstellungen"},
     "Das lässt sich in den Einstellungen nicht ändern.",
     "Du kannst „{category}“ in deinen Einstellungen "
     "einschalten.",
     "Hier findest du Hilfe: ",
     "Du sprichst mit einem KI-System, nicht mit einem Menschen.",
     "Diese Inhalte gibt es nur für Nutzer, deren Alter geprüft wurde."},
    {"fr",
     "Je ne peux pas vous aider : la catégorie « {category} » n'est pas "
     "autorisée ici, par {tier} ({source}){basis}. {how}",
     {"la loi", "la politique de ce service", "vos propres réglages"},
     "Cela ne peut pas être modifié dans vos réglages.",
     "Vous pouvez activer « {category} » dans vos réglages.",
     "De l'aide est disponible : ",
     "Vous échangez avec un système d'IA, pas avec une personne.",
     "Ce contenu est réservé aux utilisateurs dont l'âge a été vérifié."},
};

/* The wording for lang (a primary subtag), or NULL when pwb has none. */
static const wording *wording_for(const char *lang)
{
	for (size_t i = 0; i < PWB_ARRAY_LEN(wordings); i++)
		if (!strcmp(wordings[i].lang, lang))
			return &wordings[i];
	return NULL;
}

/* The user's language: the primary subtag of the effective `language`
 * dimension ("de" of "de-AT"), "en" when there is none. */
static void user_lang(const pwb_effective *e, char lang[17])
{
	const pwb_eff_dimension *ld =
	    pwb_effective_find_dimension(e, "language");
	snprintf(lang, 17, "%s",
		 ld && ld->value_str && *ld->value_str ? ld->value_str : "en");
	lang[strcspn(lang, "-_")] = '\0';
}

/* Fills the placeholders of tmpl; values are taken as they are. */
static void render(pwb__buf *out, const char *tmpl, const char *const vals[5])
{
	static const char *const keys[] = {"{category}", "{tier}", "{source}",
					   "{basis}", "{how}"};
	for (const char *c = tmpl; *c; c++) {
		size_t k = 0;
		while (k < 5 && strncmp(c, keys[k], strlen(keys[k])) != 0)
			k++;
		if (k < 5) {
			pwb__buf_adds(out, vals[k]);
			c += strlen(keys[k]) - 1;
		} else {
			pwb__buf_addc(out, *c);
		}
	}
}

/*
 * The refusal for the binding block: the org's template or pwb's, with
 * the category's display name in the user's language, then the help
 * resources (d->help) after it.
 */
static const char *make_refusal(pwb_decision *d, const pwb_policy *p,
				const pwb_effective *e, bool *oom)
{
	const pwb_cat_decision *c = d->blocked_by;
	const wording *w = wording_for(d->lang);
	if (!w)
		w = &wordings[0];
	const char *tmpl = pwb_effective_refusal_template(e, d->lang);
	if (!tmpl)
		tmpl = w->tmpl;
	pwb_tier tier = block_tier(c);
	bool fixed = tier != PWB_TIER_USER;
	char basis[1024] = "";
	if (fixed && c->set_by.basis)
		snprintf(basis, sizeof(basis), ": %s", c->set_by.basis);
	const char *source = fixed ? c->set_by.source : "user";
	const char *name = pwb_category_name(
	    pwb_policy_category(p, (size_t)(c - d->cats)), d->lang);
	/* {how} may name the category: fill it first. */
	const char *vals[5] = {name, w->tier[tier], source, basis, ""};
	pwb__buf how, out;
	pwb__buf_init(&how, 4096);
	pwb__buf_init(&out, 64 * 1024);
	render(&how, fixed ? w->how_fixed : w->how_user, vals);
	vals[4] = how.s ? how.s : "";
	render(&out, tmpl, vals);
	for (size_t i = 0; i < d->n_help; i++) {
		pwb__buf_adds(&out, i ? "; " : " ");
		if (!i)
			pwb__buf_adds(&out, w->help);
		pwb__buf_adds(&out, d->help[i].text);
	}
	if (d->n_help)
		pwb__buf_addc(&out, '.');
	const char *s =
	    out.err || how.err
		? NULL
		: pwb__arena_strdup(&d->arena, out.s ? out.s : "", oom);
	if (out.err || how.err)
		*oom = true;
	pwb__buf_release(&how);
	pwb__buf_release(&out);
	return s;
}

/* Is jurisdiction i of e named earlier in its list? (Chains share their
 * roots; the help of each jurisdiction is given once.) */
static bool named_earlier(const pwb_effective *e, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (!strcmp(pwb_effective_jurisdiction(e, k),
			    pwb_effective_jurisdiction(e, i)))
			return true;
	return false;
}

/*
 * The help resources of the blocking categories: per category (in
 * blocking order), its registry help for each jurisdiction in force, the
 * most specific first (the list runs from each chain's root, so it is
 * read backwards: de before eu).
 */
static pwb_status make_help(pwb_decision *d, const pwb_policy *p,
			    const pwb_effective *e)
{
	size_t nj = pwb_effective_n_jurisdictions(e), n = 0;
	for (int pass = 0; pass < 2; pass++) {
		size_t k = 0;
		for (size_t b = 0; b < d->n_blocking; b++) {
			const pwb_cat_decision *c = d->blocking[b];
			const pwb_category_def *def =
			    pwb_policy_category(p, (size_t)(c - d->cats));
			for (size_t j = nj; j-- > 0;) {
				const char *jur =
				    pwb_effective_jurisdiction(e, j);
				if (named_earlier(e, j))
					continue;
				for (size_t h = 0; h < def->n_help; h++) {
					const pwb_help_resource *r =
					    &def->help[h];
					if (strcmp(r->jurisdiction, jur))
						continue;
					if (pass == 0) {
						k++;
						continue;
					}
					bool oom = false;
					const char *t = pwb_lang_text_pick(
					    r->text, r->n_text, d->lang, NULL);
					d->help[k++] = (pwb_dec_help){
					    c->category, jur,
					    pwb__arena_strdup(&d->arena,
							      t ? t : "", &oom),
					    pwb__arena_strdup(&d->arena,
							      r->source, &oom)};
					if (oom)
						return PWB_ENOMEM;
				}
			}
		}
		if (pass == 0) {
			if (!(n = k))
				return PWB_OK;
			d->help =
			    pwb__arena_alloc(&d->arena, n * sizeof(*d->help));
			if (!d->help)
				return PWB_ENOMEM;
		}
	}
	d->n_help = n;
	return PWB_OK;
}

/* pwb's own text for an obligation kind in wording w, or NULL (a
 * disclaimer's words are always the policy's). */
static const char *kind_text(const wording *w, const char *kind)
{
	if (!strcmp(kind, "disclose_ai"))
		return w->disclose_ai;
	if (!strcmp(kind, "age_verification"))
		return w->age_verification;
	return NULL;
}

/*
 * The obligations the decision triggers (pwb_decision_n_obligations):
 * disclose_ai always, a disclaimer or age check when its category or a
 * child of it is detected and on, unless the decision blocks. The text is
 * pwb's for the kind in the user's language, else the obligation's own,
 * else pwb's English one.
 */
static pwb_status make_obligations(pwb_decision *d, const pwb_policy *p,
				   const pwb_effective *e)
{
	size_t n = pwb_effective_n_obligations(e);
	d->obligations =
	    pwb__arena_alloc(&d->arena, (n ? n : 1) * sizeof(*d->obligations));
	if (!d->obligations)
		return PWB_ENOMEM;
	const wording *w = wording_for(d->lang);
	for (size_t i = 0; i < n; i++) {
		const pwb_eff_obligation *o = pwb_effective_obligation(e, i);
		bool due = !strcmp(o->kind, "disclose_ai");
		for (size_t c = 0;
		     !due && o->category && d->verdict != PWB_VERDICT_BLOCK &&
		     c < d->n_cats;
		     c++) {
			const pwb_cat_decision *cd = &d->cats[c];
			due = cd->detected &&
			      (cd->verdict == PWB_VERDICT_ALLOW ||
			       cd->verdict == PWB_VERDICT_ANNOTATE) &&
			      is_or_under(p, c, o->category);
		}
		if (!due)
			continue;
		pwb_dec_obligation *r = &d->obligations[d->n_obligations++];
		r->id = o->id;
		r->kind = o->kind;
		r->category = o->category;
		r->set_by = o->set_by;
		r->placement = !strcmp(o->kind, "disclaimer")
				   ? PWB_PLACE_PREPEND
				   : PWB_PLACE_SYSTEM;
		if (w && kind_text(w, o->kind)) {
			r->text = kind_text(w, o->kind);
			r->lang = w->lang;
		} else if (o->text) {
			r->text = o->text;
		} else {
			r->text = kind_text(&wordings[0], o->kind);
			r->lang = wordings[0].lang;
			if (PWB_NEVER(!r->text))
				r->text = "";
		}
	}
	return PWB_OK;
}

/* ---- check: scan, score, decide, redact ---- */

/* One check, from the scan of the text to its decision. */
typedef struct check_ctx {
	pwb_bounds *b;
	const pwb_effective *e;
	pwb_role role;
	const char *text;
	size_t len;
	pwb_diag *diag;
	size_t n_cats;
	scan_ctx sc;
	unsigned char *norm;
	double *lex; /* per category: the lexicon's noisy-or score */
	double *lin; /* per category: the linear model's score */
	/* per category: the context factor (1: none), and the lexicon and
	 * model scores before context lowered them */
	double *ctx, *lex_plain, *lin_plain;
	double *guard; /* per category: the judge's score; NULL unless asked */
	pwb_decision *d;
} check_ctx;

/* The one Vectorscan pass: lexicon matches and validated PII, each
 * ordered by start. */
static pwb_status scan(check_ctx *cc)
{
	const pwb_bounds *b = cc->b;
	scan_ctx *sc = &cc->sc;
	normalise((const unsigned char *)cc->text, cc->len, cc->norm);
	sc->norm = cc->norm;
	hs_scratch_t *scratch = scratch_get(&cc->b->scratch);
	if (!scratch) {
		pwb_diag_add(cc->diag, NULL, 0, 0,
			     "no scratch space for the scan: %s",
			     pwb_status_str(PWB_ENOMEM));
		return PWB_ENOMEM;
	}
	hs_error_t hr = hs_scan(b->db, cc->len ? (const char *)cc->norm : "",
				(unsigned)cc->len, 0, scratch, on_match, sc);
	scratch_put(&cc->b->scratch, scratch);
	if (sc->err)
		return sc->err;
	if (hr != HS_SUCCESS && hr != HS_SCAN_TERMINATED) {
		pwb_diag_add(cc->diag, NULL, 0, 0, "the scan failed (error %d)",
			     (int)hr);
		return PWB_EINVAL;
	}
	dedupe_pii(sc);
	/* Vectorscan reports in order of match end; spans read by start. */
	if (sc->n_lex)
		qsort(sc->lex, sc->n_lex, sizeof(*sc->lex), cmp_lex);
	/* Context: per category, the lowest factor of the context entries
	 * seen that concern it. */
	for (size_t c = 0; c < cc->n_cats; c++)
		cc->ctx[c] = 1.0;
	for (size_t i = 0; i < b->n_entries; i++) {
		const pwb__lex_entry *le = &b->entries[i];
		if (!sc->entry_seen[i] || le->cat >= 0)
			continue;
		for (size_t c = 0; c < cc->n_cats; c++)
			if (le->lowers[c] && le->weight < cc->ctx[c])
				cc->ctx[c] = le->weight;
	}
	/* Lexicon: a noisy-or of the weights of the entries seen, the
	 * strong ones (each reaches the threshold alone: a request, a
	 * plan) apart from the topic words, which context lowers:
	 * 1 - (1 - strong)(1 - factor * topic). */
	double *strong = cc->lex, *topic = cc->lex_plain;
	for (size_t c = 0; c < cc->n_cats; c++)
		strong[c] = topic[c] = 1.0;
	for (size_t i = 0; i < b->n_entries; i++) {
		const pwb__lex_entry *le = &b->entries[i];
		if (!sc->entry_seen[i] || le->cat < 0)
			continue;
		const pwb_category_def *def =
		    pwb_policy_category(b->policy, (size_t)le->cat);
		double th = def->has_detector[PWB_DET_LEXICON]
				? def->threshold[PWB_DET_LEXICON]
				: 0.5;
		if (le->weight >= th)
			strong[le->cat] *= 1.0 - le->weight;
		else
			topic[le->cat] *= 1.0 - le->weight;
	}
	for (size_t c = 0; c < cc->n_cats; c++) {
		double s = strong[c], t = topic[c];
		cc->lex_plain[c] = 1.0 - s * t;
		cc->lex[c] = 1.0 - s * (1.0 - cc->ctx[c] * (1.0 - t));
	}
	return PWB_OK;
}

/* The linear model's score per category (the highest of its labels that
 * map to it). */
static pwb_status score_model(check_ctx *cc)
{
	const pwb_bounds *b = cc->b;
	if (!b->model)
		return PWB_OK;
	size_t nl = pwb__linear_n_labels(b->model);
	double *ms = pwb__calloc(nl ? nl : 1, sizeof(double));
	if (!ms)
		return PWB_ENOMEM;
	pwb__linear_score_windows(b->model, cc->text, cc->len,
				  b->params.linear_window, ms);
	for (size_t i = 0; i < nl; i++)
		if (b->model_cat[i] >= 0 && ms[i] > cc->lin[b->model_cat[i]])
			cc->lin[b->model_cat[i]] = ms[i];
	free(ms);
	/* Context lowers the model's score by the category's factor, in
	 * texts up to one window: a longer text scores by its most harmful
	 * window, which a frame elsewhere in the text need not explain. */
	bool short_text = cc->len <= b->params.linear_window;
	for (size_t c = 0; c < cc->n_cats; c++) {
		cc->lin_plain[c] = cc->lin[c];
		if (short_text)
			cc->lin[c] *= cc->ctx[c];
	}
	return PWB_OK;
}

/* The guard judge's score per category, when one is set and wanted. */
static pwb_status score_guard(check_ctx *cc)
{
	const pwb_bounds *b = cc->b;
	if (!pwb__guard_wanted(b))
		return PWB_OK;
	char *prompt = NULL, *answer = NULL;
	if (!(cc->guard = pwb__calloc(cc->n_cats, sizeof(double))) ||
	    pwb__guard_prompt(b, cc->role, cc->text, cc->len, &prompt)) {
		pwb_diag_add(cc->diag, NULL, 0, 0,
			     "no room for the guard judge's prompt: %s",
			     pwb_status_str(PWB_ENOMEM));
		return PWB_ENOMEM;
	}
	pwb_diag why;
	pwb_diag_init(&why);
	double t0 = pwb__now();
	pwb_status gs =
	    b->params.guard(b->params.guard_user, prompt, &answer, &why);
	double secs = pwb__now() - t0;
	free(prompt);
	if (secs >= PWB__GUARD_SLOW_S)
		pwb__bounds_log(b, PWB_LOG_WARN,
				"the guard judge took %.1f s to answer", secs);
	if (gs || !answer) {
		pwb_diag_add(cc->diag, NULL, 0, 0, "the guard judge failed: %s",
			     why.n ? why.entries[0].message
				   : pwb_status_str(gs ? gs : PWB_EIO));
		pwb_diag_release(&why);
		free(answer);
		return PWB_EIO;
	}
	pwb_diag_release(&why);
	pwb_status rc = pwb__guard_read(b, answer, cc->guard, cc->diag);
	free(answer);
	return rc;
}

/* Whether context lowered a score of category c enough to report: its
 * lexicon score or its model score by PWB__CONTEXT_SHOWN or more (a
 * model scores every text a little; a lowering too small to matter is
 * not listed). */
#define PWB__CONTEXT_SHOWN 0.05
static bool context_lowered(const check_ctx *cc, size_t c)
{
	return cc->ctx[c] < 1.0 &&
	       (cc->lex_plain[c] - cc->lex[c] >= PWB__CONTEXT_SHOWN ||
		cc->lin_plain[c] - cc->lin[c] >= PWB__CONTEXT_SHOWN);
}

/* Category c's score, threshold, detector and verdict from the scores of
 * every detector it uses; fired[] tells which reached their threshold. */
static void decide_category(const check_ctx *cc, size_t c, pwb_cat_decision *cd)
{
	const pwb_category_def *def = pwb_policy_category(cc->b->policy, c);
	double scores[PWB_DET_N] = {0};
	bool used[PWB_DET_N] = {0};
	scores[PWB_DET_LEXICON] = cc->lex[c];
	used[PWB_DET_LEXICON] = def->has_detector[PWB_DET_LEXICON];
	scores[PWB_DET_PII] =
	    def->has_detector[PWB_DET_PII] && cc->sc.n_pii ? 1.0 : 0.0;
	used[PWB_DET_PII] = def->has_detector[PWB_DET_PII];
	scores[PWB_DET_LINEAR] = cc->lin[c];
	used[PWB_DET_LINEAR] = cc->lin[c] > 0;
	scores[PWB_DET_GUARD] = cc->guard ? cc->guard[c] : 0;
	used[PWB_DET_GUARD] = cc->guard && def->has_detector[PWB_DET_GUARD];
	bool fired[PWB_DET_N] = {0};
	double best = -1;
	for (int k = 0; k < PWB_DET_N; k++) {
		if (!used[k])
			continue;
		double th = def->has_detector[k] ? def->threshold[k] : 0.5;
		fired[k] = scores[k] >= th && scores[k] > 0;
		/* Report the detector that fired, else the one closest to
		 * firing. */
		double rank =
		    scores[k] / (th > 0 ? th : 1) + (fired[k] ? 10 : 0);
		if (rank > best) {
			best = rank;
			cd->score = scores[k];
			cd->threshold = th;
			cd->detector = scores[k] > 0
					   ? pwb_detector_str((pwb_detector)k)
					   : NULL;
		}
		cd->detected |= fired[k];
	}
	cd->context_factor = 1.0;
	cd->score_without_context = cd->score;
	if (context_lowered(cc, c)) {
		cd->context_factor = cc->ctx[c];
		/* The reported detector's score before context; the
		 * detector that would have fired without it may be
		 * another one, so report the higher of the two. */
		double was = cd->score;
		if (cc->lex_plain[c] > was)
			was = cc->lex_plain[c];
		if (cc->lin_plain[c] > was)
			was = cc->lin_plain[c];
		cd->score_without_context = was;
	}
	cd->verdict = PWB_VERDICT_ALLOW;
	if (!cd->detected)
		return;
	bool only_pii = fired[PWB_DET_PII] && !fired[PWB_DET_LEXICON] &&
			!fired[PWB_DET_LINEAR] && !fired[PWB_DET_GUARD];
	if (!pwb_permission_on(cd->permission, cd->active ? 1 : 0))
		cd->verdict = only_pii ? PWB_VERDICT_REDACT : PWB_VERDICT_BLOCK;
	else if (has_disclaimer(cc->b->policy, cc->e, c))
		cd->verdict = PWB_VERDICT_ANNOTATE;
}

/* The spans of category c, at most PWB__MAX_SPANS_PER_CAT: its lexicon
 * matches and, when context lowered its score, the context matches that
 * concern it, in order of start; then the PII found when it has a pii
 * detector; n counts them all, and those past the cap are counted as
 * omitted. */
static bool category_spans(check_ctx *cc, size_t c, size_t n,
			   pwb_cat_decision *cd)
{
	const pwb_bounds *b = cc->b;
	const scan_ctx *sc = &cc->sc;
	pwb_decision *d = cc->d;
	bool pii = pwb_policy_category(b->policy, c)->has_detector[PWB_DET_PII];
	size_t ns = n < PWB__MAX_SPANS_PER_CAT ? n : PWB__MAX_SPANS_PER_CAT;
	pwb_span *sp = pwb__arena_alloc(&d->arena, (ns ? ns : 1) * sizeof(*sp));
	if (!sp)
		return false;
	bool oom = false;
	size_t k = 0;
	bool ctx = context_lowered(cc, c);
	for (size_t i = 0; i < sc->n_lex && k < ns; i++) {
		const pwb__lex_entry *le = &b->entries[sc->lex[i].entry];
		bool mine = le->cat == (int)c;
		if (mine || (ctx && le->cat < 0 && le->lowers[c]))
			sp[k++] = (pwb_span){
			    sc->lex[i].start, sc->lex[i].end,
			    mine ? "lexicon" : "context",
			    pwb__arena_strdup(&d->arena, le->note, &oom)};
	}
	for (size_t i = 0; pii && i < sc->n_pii && k < ns; i++)
		sp[k++] = (pwb_span){sc->pii[i].start, sc->pii[i].end, "pii",
				     pwb__pii_name(sc->pii[i].kind)};
	cd->spans = sp;
	cd->n_spans = k;
	cd->n_spans_omitted = n > k ? n - k : 0;
	return !oom;
}

/* Blocks, the most binding first: law, org, the user's own setting; then
 * the highest score; then registry order (the order of d->cats). */
static int cmp_blocking(const void *a, const void *b)
{
	const pwb_cat_decision *x = *(const pwb_cat_decision *const *)a;
	const pwb_cat_decision *y = *(const pwb_cat_decision *const *)b;
	pwb_tier tx = block_tier(x), ty = block_tier(y);
	if (tx != ty)
		return tx < ty ? -1 : 1;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Every category's decision, the decision's verdict, every block in
 * order (the first binds), the help resources, the obligations it
 * triggers and the refusal. */
static pwb_status decide(check_ctx *cc)
{
	pwb_decision *d = cc->d;
	size_t n = cc->n_cats;
	d->n_cats = n;
	d->cats = pwb__arena_alloc(&d->arena, (n ? n : 1) * sizeof(*d->cats));
	size_t *n_spans = pwb__calloc(n ? n : 1, sizeof(size_t));
	if (!d->cats || !n_spans) {
		free(n_spans);
		return PWB_ENOMEM;
	}
	for (size_t i = 0; i < cc->sc.n_lex; i++) {
		const pwb__lex_entry *le = &cc->b->entries[cc->sc.lex[i].entry];
		if (le->cat >= 0)
			n_spans[le->cat]++;
		for (size_t c = 0; le->cat < 0 && c < n; c++)
			n_spans[c] += le->lowers[c] && context_lowered(cc, c);
	}
	for (size_t c = 0; c < n; c++)
		if (pwb_policy_category(cc->b->policy, c)
			->has_detector[PWB_DET_PII])
			n_spans[c] += cc->sc.n_pii;
	pwb_status rc = PWB_OK;
	for (size_t c = 0; c < n && !rc; c++) {
		const pwb_eff_category *ec = pwb_effective_category(cc->e, c);
		pwb_cat_decision *cd = &d->cats[c];
		cd->category = ec->id;
		cd->permission = ec->permission;
		cd->active = ec->active;
		cd->set_by = ec->set_by;
		decide_category(cc, c, cd);
		if (cd->verdict > d->verdict)
			d->verdict = cd->verdict;
		if (!category_spans(cc, c, n_spans[c], cd))
			rc = PWB_ENOMEM;
	}
	free(n_spans);
	if (rc)
		return rc;
	for (size_t c = 0; c < n; c++)
		d->n_blocking += d->cats[c].verdict == PWB_VERDICT_BLOCK;
	if (d->n_blocking) {
		d->blocking = pwb__arena_alloc(
		    &d->arena, d->n_blocking * sizeof(*d->blocking));
		if (!d->blocking)
			return PWB_ENOMEM;
		size_t k = 0;
		for (size_t c = 0; c < n; c++)
			if (d->cats[c].verdict == PWB_VERDICT_BLOCK)
				d->blocking[k++] = &d->cats[c];
		qsort(d->blocking, k, sizeof(*d->blocking), cmp_blocking);
		d->blocked_by = d->blocking[0];
	}
	const pwb_policy *p = cc->b->policy;
	if ((rc = make_help(d, p, cc->e)) ||
	    (rc = make_obligations(d, p, cc->e)))
		return rc;
	bool oom = false;
	if (d->blocked_by)
		d->refusal = make_refusal(d, p, cc->e, &oom);
	return oom ? PWB_ENOMEM : PWB_OK;
}

/* The text with every PII span replaced by [kind], for a redact verdict. */
static pwb_status redact(check_ctx *cc)
{
	pwb_decision *d = cc->d;
	if (d->verdict != PWB_VERDICT_REDACT)
		return PWB_OK;
	const scan_ctx *sc = &cc->sc;
	pwb__buf r;
	pwb__buf_init(&r, 0);
	size_t at = 0;
	d->red_spans = sc->n_pii ? pwb__arena_alloc(
					 &d->arena, sc->n_pii * sizeof(*d->red_spans))
				 : NULL;
	if (sc->n_pii && !d->red_spans)
		return PWB_ENOMEM;
	for (size_t i = 0; i < sc->n_pii; i++) {
		pwb__buf_add(&r, cc->text + at, sc->pii[i].start - at);
		size_t rstart = r.len;
		pwb__buf_addf(&r, "[%s]", pwb__pii_name(sc->pii[i].kind));
		d->red_spans[i] = (struct red_span){
		    sc->pii[i].start, sc->pii[i].end, rstart, r.len - rstart};
		at = sc->pii[i].end;
	}
	d->n_red_spans = sc->n_pii;
	pwb__buf_add(&r, cc->text + at, cc->len - at);
	/* The input's bytes as they are, NUL bytes too: copied by length. */
	char *s = r.err ? NULL : pwb__arena_alloc(&d->arena, r.len + 1);
	if (s) {
		if (r.len)
			memcpy(s, r.s, r.len);
		d->redacted = s;
		d->redacted_len = r.len;
	}
	pwb__buf_release(&r);
	return s ? PWB_OK : PWB_ENOMEM;
}

/* The buffers of one check and its decision, holding a reference on e. */
static pwb_status check_init(check_ctx *cc)
{
	size_t n = cc->n_cats ? cc->n_cats : 1;
	cc->sc = (scan_ctx){.b = cc->b,
			    .text = (const unsigned char *)cc->text,
			    .len = cc->len};
	pwb__start_init(&cc->sc.starts);
	cc->norm = pwb__malloc(cc->len ? cc->len : 1);
	cc->sc.entry_seen =
	    pwb__calloc(cc->b->n_entries ? cc->b->n_entries : 1, 1);
	cc->lex = pwb__calloc(n, sizeof(double));
	cc->lin = pwb__calloc(n, sizeof(double));
	cc->ctx = pwb__calloc(n, sizeof(double));
	cc->lex_plain = pwb__calloc(n, sizeof(double));
	cc->lin_plain = pwb__calloc(n, sizeof(double));
	cc->d = pwb__calloc(1, sizeof(*cc->d));
	if (!cc->norm || !cc->sc.entry_seen || !cc->lex || !cc->lin ||
	    !cc->ctx || !cc->lex_plain || !cc->lin_plain || !cc->d)
		return PWB_ENOMEM;
	pwb__arena_init(&cc->d->arena);
	cc->d->effective = pwb_effective_ref(cc->e);
	cc->d->role = cc->role;
	cc->d->org = pwb_effective_org(cc->e);
	cc->d->policy_hash = pwb_effective_hash(cc->e);
	user_lang(cc->e, cc->d->lang);
	return PWB_OK;
}

static void check_release(check_ctx *cc)
{
	free(cc->norm);
	free(cc->sc.entry_seen);
	free(cc->sc.lex);
	free(cc->sc.pii);
	pwb__start_release(&cc->sc.starts);
	free(cc->lex);
	free(cc->lin);
	free(cc->ctx);
	free(cc->lex_plain);
	free(cc->lin_plain);
	free(cc->guard);
}

pwb_status pwb_bounds_check(pwb_decision **out, pwb_bounds *b,
			    const pwb_effective *e, pwb_role role,
			    const char *text, size_t len, pwb_diag *diag)
{
	*out = NULL;
	if (!b || !e || (!text && len)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "bounds check: no detectors, policy or text");
		return PWB_EINVAL;
	}
	if (len > b->params.max_text_bytes) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the text is %zu bytes; the limit is %zu", len,
			     b->params.max_text_bytes);
		return PWB_ETOOLARGE;
	}
	size_t n = pwb_policy_n_categories(b->policy);
	if (pwb_effective_n_categories(e) != n) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the effective policy has %zu categories, the "
			     "detectors' registry %zu: it was resolved from "
			     "another policy set",
			     pwb_effective_n_categories(e), n);
		return PWB_EINVAL;
	}
	size_t mark = pwb__diag_mark(diag);
	check_ctx cc = {.b = b,
			.e = e,
			.role = role,
			.text = text,
			.len = len,
			.diag = diag,
			.n_cats = n};
	pwb_status rc = check_init(&cc);
	if (!rc)
		rc = scan(&cc);
	if (!rc)
		rc = score_model(&cc);
	if (!rc)
		rc = score_guard(&cc);
	if (!rc)
		rc = decide(&cc);
	if (!rc)
		rc = redact(&cc);
	check_release(&cc);
	if (rc) {
		pwb_decision_free(cc.d);
		return pwb__diag_fail(diag, mark, rc, "bounds check");
	}
	*out = cc.d;
	return PWB_OK;
}

/* ---- JSON ---- */

static json_t *prov(const pwb_provenance *pv)
{
	json_t *o = json_object();
	json_object_set_new(o, "tier", json_string(pwb_tier_str(pv->tier)));
	json_object_set_new(o, "source", json_string(pv->source));
	if (pv->file) {
		json_object_set_new(o, "file", json_string(pv->file));
		json_object_set_new(o, "line", json_integer(pv->line));
	}
	if (pv->basis)
		json_object_set_new(o, "basis", json_string(pv->basis));
	return o;
}

/* Any bytes as a JSON string: valid UTF-8 as it is (NUL as \u0000), and
 * U+FFFD for each byte that is not part of a valid sequence. */
static json_t *json_bytes(const char *s, size_t len)
{
	pwb__buf b;
	pwb__buf_init(&b, 0);
	pwb__utf8_fix(&b, s, len, true);
	json_t *j = b.err ? NULL : json_stringn(b.s ? b.s : "", b.len);
	pwb__buf_release(&b);
	return j;
}

/* A blocking category: tier, source, category, and for a rule its basis
 * and place. */
static json_t *block_json(const pwb_cat_decision *c, bool score)
{
	json_t *bb = json_object();
	pwb_tier tier = block_tier(c);
	bool fixed = tier != PWB_TIER_USER;
	json_object_set_new(bb, "tier", json_string(pwb_tier_str(tier)));
	json_object_set_new(bb, "source",
			    json_string(fixed ? c->set_by.source : "user"));
	json_object_set_new(bb, "category", json_string(c->category));
	if (fixed) {
		if (c->set_by.basis)
			json_object_set_new(bb, "basis",
					    json_string(c->set_by.basis));
		if (c->set_by.file) {
			json_object_set_new(bb, "file",
					    json_string(c->set_by.file));
			json_object_set_new(bb, "line",
					    json_integer(c->set_by.line));
		}
	}
	if (score)
		json_object_set_new(bb, "score", json_real(c->score));
	return bb;
}

pwb_status pwb_decision_to_json(const pwb_decision *d, char **out)
{
	*out = NULL;
	json_t *root = json_object();
	json_t *cats = json_object();
	if (!root || !cats) {
		json_decref(root);
		json_decref(cats);
		return PWB_ENOMEM;
	}
	json_object_set_new(root, "verdict",
			    json_string(pwb_verdict_str(d->verdict)));
	json_object_set_new(root, "role", json_string(pwb_role_str(d->role)));
	json_object_set_new(root, "org", json_string(d->org));
	json_object_set_new(root, "policy_hash", json_string(d->policy_hash));
	json_object_set_new(root, "blocked_by",
			    d->blocked_by ? block_json(d->blocked_by, false)
					  : json_null());
	json_t *blocking = json_array();
	for (size_t i = 0; i < d->n_blocking; i++)
		json_array_append_new(blocking,
				      block_json(d->blocking[i], true));
	json_object_set_new(root, "blocking", blocking);
	json_object_set_new(root, "refusal",
			    d->refusal ? json_string(d->refusal) : json_null());
	json_t *help = json_array();
	for (size_t i = 0; i < d->n_help; i++) {
		const pwb_dec_help *h = &d->help[i];
		json_t *o = json_object();
		json_object_set_new(o, "category", json_string(h->category));
		json_object_set_new(o, "jurisdiction",
				    json_string(h->jurisdiction));
		json_object_set_new(o, "text", json_string(h->text));
		json_object_set_new(o, "source", json_string(h->source));
		json_array_append_new(help, o);
	}
	json_object_set_new(root, "help", help);
	json_t *obls = json_array();
	for (size_t i = 0; i < d->n_obligations; i++) {
		const pwb_dec_obligation *ob = &d->obligations[i];
		json_t *o = json_object();
		json_object_set_new(o, "id", json_string(ob->id));
		json_object_set_new(o, "kind", json_string(ob->kind));
		if (ob->category)
			json_object_set_new(o, "category",
					    json_string(ob->category));
		json_object_set_new(o, "text", json_string(ob->text));
		json_object_set_new(
		    o, "lang", ob->lang ? json_string(ob->lang) : json_null());
		json_object_set_new(
		    o, "placement",
		    json_string(pwb_placement_str(ob->placement)));
		json_object_set_new(o, "set_by", prov(&ob->set_by));
		json_array_append_new(obls, o);
	}
	json_object_set_new(root, "obligations", obls);
	if (d->redacted) {
		json_t *r = json_bytes(d->redacted, d->redacted_len);
		if (!r) {
			json_decref(root);
			json_decref(cats);
			return PWB_ENOMEM;
		}
		json_object_set_new(root, "redacted", r);
	}
	for (size_t i = 0; i < d->n_cats; i++) {
		const pwb_cat_decision *c = &d->cats[i];
		json_t *o = json_object();
		json_object_set_new(o, "score", json_real(c->score));
		json_object_set_new(o, "threshold", json_real(c->threshold));
		json_object_set_new(o, "detector",
				    c->detector ? json_string(c->detector)
						: json_null());
		json_object_set_new(o, "detected", json_boolean(c->detected));
		json_object_set_new(
		    o, "permission",
		    json_string(pwb_permission_str(c->permission)));
		json_object_set_new(o, "active", json_boolean(c->active));
		json_object_set_new(o, "verdict",
				    json_string(pwb_verdict_str(c->verdict)));
		json_object_set_new(o, "set_by", prov(&c->set_by));
		if (c->context_factor < 1.0) {
			json_t *cx = json_object();
			json_object_set_new(cx, "factor",
					    json_real(c->context_factor));
			json_object_set_new(
			    cx, "score_without",
			    json_real(c->score_without_context));
			json_object_set_new(o, "context", cx);
		}
		json_t *spans = json_array();
		for (size_t k = 0; k < c->n_spans; k++) {
			json_t *s = json_object();
			json_object_set_new(
			    s, "start",
			    json_integer((json_int_t)c->spans[k].start));
			json_object_set_new(
			    s, "end",
			    json_integer((json_int_t)c->spans[k].end));
			json_object_set_new(s, "detector",
					    json_string(c->spans[k].detector));
			json_object_set_new(s, "what",
					    json_string(c->spans[k].what));
			json_array_append_new(spans, s);
		}
		json_object_set_new(o, "spans", spans);
		json_object_set_new(
		    o, "spans_omitted",
		    json_integer((json_int_t)c->n_spans_omitted));
		json_object_set_new(cats, c->category, o);
	}
	json_object_set_new(root, "categories", cats);
	*out = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
	json_decref(root);
	return *out ? PWB_OK : PWB_ENOMEM;
}
