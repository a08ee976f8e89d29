/*
 * check.c - checks across files: extends chains, jurisdictions, duplicate
 * ids, and the rule that no lower tier or file may loosen a higher one.
 */
#include "policy/policy_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- chains ---- */

static bool push_unique(int *out, size_t *n, size_t cap, int v)
{
	for (size_t i = 0; i < *n; i++)
		if (out[i] == v)
			return true;
	if (*n >= cap)
		return false;
	out[(*n)++] = v;
	return true;
}

typedef enum chain_rc { CHAIN_OK, CHAIN_TOO_LONG, CHAIN_NO_ROOM } chain_rc;

/* Pushes f's extends chain, root first (f included); *at is the file
 * whose chain is too long. */
static chain_rc push_chain(const pwb_policy *p, int f, int *out, size_t *n,
			   size_t cap, int *at)
{
	int chain[PWB__MAX_CHAIN];
	size_t k = 0;
	for (int c = f; c >= 0; c = p->files[c].parent) {
		if (k == PWB_ARRAY_LEN(chain)) {
			*at = f; /* check reports such chains too */
			return CHAIN_TOO_LONG;
		}
		chain[k++] = c;
	}
	while (k > 0)
		if (!push_unique(out, n, cap, chain[--k]))
			return CHAIN_NO_ROOM;
	return CHAIN_OK;
}

/* " (did you mean 'x'?)", else " (the law files are: a, b, ...)". */
static void law_hint(const pwb_policy *p, const char *id, char *buf,
		     size_t size)
{
	pwb__hint h = pwb__hint_in(p, id, PWB__NAMES_LAWS);
	if (h.text[0] || !size) {
		snprintf(buf, size, "%s", h.text);
		return;
	}
	size_t o = 0, n = 0;
	int w = snprintf(buf, size, " (the law files are: ");
	o = w > 0 && (size_t)w < size ? (size_t)w : 0;
	for (size_t i = 0; i < p->n_files && o < size; i++) {
		if (!p->files[i].parsed || p->files[i].tier != PWB_TIER_LAW)
			continue;
		w = snprintf(buf + o, size - o, "%s%s", n++ ? ", " : "",
			     p->files[i].id);
		o += w > 0 ? (size_t)w : 0;
	}
	if (!n)
		snprintf(buf, size, " (there are no law files)");
	else if (o < size)
		snprintf(buf + o, size - o, ")");
}

static int find_law(const pwb_policy *p, const char *id, pwb_diag *diag)
{
	int j = pwb__find_file(p, PWB_TIER_LAW, id);
	if (j < 0 && diag) {
		char hint[512];
		law_hint(p, id, hint, sizeof(hint));
		pwb_diag_add(diag, NULL, 0, 0, "unknown jurisdiction '%s'%s",
			     id, hint);
	}
	return j;
}

int pwb__resolve_files(const pwb_policy *p, int org, const char *const *extra,
		       size_t n_extra, int *out, size_t out_cap, pwb_diag *diag)
{
	size_t n = 0;
	int orgs[PWB__MAX_CHAIN];
	size_t n_orgs = 0;
	int at = org;
	chain_rc cr =
	    push_chain(p, org, orgs, &n_orgs, PWB_ARRAY_LEN(orgs), &at);
	if (cr)
		goto too_many;
	for (size_t i = 0; i < n_orgs; i++) {
		const pwb__file *f = &p->files[orgs[i]];
		for (size_t j = 0; j < f->n_jurisdictions; j++) {
			int law = pwb__find_file(p, PWB_TIER_LAW,
						 f->jurisdictions[j]);
			if (law < 0) {
				/* Without a diag (the checks) skip it: check
				 * reports unknown jurisdictions on its own. */
				if (!diag)
					continue;
				char hint[512];
				law_hint(p, f->jurisdictions[j], hint,
					 sizeof(hint));
				pwb_diag_add(diag, f->path, f->jur_line,
					     f->jur_col,
					     "unknown jurisdiction '%s'%s",
					     f->jurisdictions[j], hint);
				return -1;
			}
			if ((cr = push_chain(p, law, out, &n, out_cap, &at)))
				goto too_many;
		}
	}
	for (size_t i = 0; i < n_extra; i++) {
		int law = find_law(p, extra[i], diag);
		if (law < 0)
			return -1;
		if ((cr = push_chain(p, law, out, &n, out_cap, &at)))
			goto too_many;
	}
	for (size_t i = 0; i < n_orgs; i++)
		if (!push_unique(out, &n, out_cap, orgs[i])) {
			cr = CHAIN_NO_ROOM;
			goto too_many;
		}
	return (int)n;
too_many:
	if (cr == CHAIN_TOO_LONG) {
		pwb_diag_add(diag, p->files[at].path, 0, 0,
			     "the extends chain of '%s' has more than %d "
			     "files",
			     p->files[at].id, PWB__MAX_CHAIN);
		return -2;
	}
	pwb_diag_add(diag, p->files[org].path, 0, 0,
		     "a resolve of org '%s' needs more than %zu policy files",
		     p->files[org].id, out_cap);
	return -1;
}

/* The files strictly above f: its extends chain and, for an org, the law
 * chains of its jurisdictions. Reports sets too large to resolve. */
static size_t files_above(pwb_policy *p, int f, int *out, size_t cap)
{
	size_t n = 0;
	if (p->files[f].tier == PWB_TIER_ORG) {
		int r = pwb__resolve_files(p, f, NULL, 0, out, cap, NULL);
		/* -2, a chain too long, is reported by check_structure. */
		if (r == -1)
			pwb__ferr(p, f, p->files[f].jur_line,
				  p->files[f].jur_col,
				  "a resolve of this org needs more than %zu "
				  "policy files",
				  cap);
		n = r < 0 ? 0 : (size_t)r;
	} else if (push_chain(p, f, out, &n, cap, &(int){0})) {
		n = 0; /* a chain too long: reported by check_structure */
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (out[i] != f)
			out[k++] = out[i];
	return k;
}

/* ---- structure: ids, extends, cycles, jurisdictions ---- */

/* Is there a file of this tier's folder, named <id>.yaml, that failed to
 * load? Then a reference to id is not "unknown": its own errors say it. */
static bool broken_file_named(const pwb_policy *p, pwb_tier tier,
			      const char *id)
{
	for (size_t i = 0; i < p->n_files; i++) {
		const pwb__file *f = &p->files[i];
		if (f->parsed ||
		    (f->folder_tier >= 0 && f->folder_tier != (int)tier))
			continue;
		const char *base = strrchr(f->path, '/');
		base = base ? base + 1 : f->path;
		size_t n = strlen(id);
		if (!strncmp(base, id, n) &&
		    (!strcmp(base + n, ".yaml") || !strcmp(base + n, ".yml")))
			return true;
	}
	return false;
}

static void check_structure(pwb_policy *p)
{
	for (size_t j = 0; j < p->n_files; j++) {
		pwb__file *b = &p->files[j];
		if (!b->parsed)
			continue;
		for (size_t i = 0; i < j; i++) {
			pwb__file *a = &p->files[i];
			if (a->parsed && a->tier == b->tier &&
			    strcmp(a->id, b->id) == 0) {
				pwb__ferr(p, (int)j, b->id_line, b->id_col,
					  "duplicate id '%s': %s:%d already "
					  "has it",
					  b->id, a->path, a->id_line);
				break;
			}
		}
	}
	for (size_t i = 0; i < p->n_files; i++) {
		pwb__file *f = &p->files[i];
		if (!f->parsed || !f->extends)
			continue;
		int par = pwb__find_file(p, f->tier, f->extends);
		if (par == (int)i) {
			pwb__ferr(p, (int)i, f->extends_line, f->extends_col,
				  "'%s' extends itself", f->id);
			continue;
		}
		if (par >= 0) {
			f->parent = par;
			continue;
		}
		pwb_tier other =
		    f->tier == PWB_TIER_LAW ? PWB_TIER_ORG : PWB_TIER_LAW;
		if (broken_file_named(p, f->tier, f->extends))
			continue;
		if (pwb__find_file(p, other, f->extends) >= 0) {
			pwb__ferr(p, (int)i, f->extends_line, f->extends_col,
				  "'%s' extends '%s', %s file: %s file "
				  "extends only %s files",
				  f->id, f->extends,
				  other == PWB_TIER_LAW ? "a law" : "an org",
				  f->tier == PWB_TIER_LAW ? "a law" : "an org",
				  pwb_tier_str(f->tier));
			continue;
		}
		pwb__hint h =
		    pwb__hint_in(p, f->extends,
				 f->tier == PWB_TIER_LAW ? PWB__NAMES_LAWS
							 : PWB__NAMES_ORGS);
		pwb__ferr(p, (int)i, f->extends_line, f->extends_col,
			  "'%s' extends '%s', which is not in the policy "
			  "folder%s",
			  f->id, f->extends, h.text);
	}
	/* Cycles: report each file on a cycle, then cut the cycle so that
	 * every later walk up a chain ends. */
	bool *on_cycle = pwb__calloc(p->n_files ? p->n_files : 1, 1);
	if (!on_cycle)
		return;
	for (size_t i = 0; i < p->n_files; i++) {
		int c = p->files[i].parent;
		size_t steps = 0;
		while (c >= 0 && c != (int)i && steps++ <= p->n_files)
			c = p->files[c].parent;
		if (c != (int)i)
			continue;
		on_cycle[i] = true;
		char path[512];
		int len = snprintf(path, sizeof(path), "%s", p->files[i].id);
		for (c = p->files[i].parent; len < (int)sizeof(path);
		     c = p->files[c].parent) {
			len += snprintf(path + len, sizeof(path) - (size_t)len,
					" -> %s", p->files[c].id);
			if (c == (int)i)
				break;
		}
		pwb__file *f = &p->files[i];
		pwb__ferr(p, (int)i, f->extends_line, f->extends_col,
			  "extends cycle: %s", path);
	}
	for (size_t i = 0; i < p->n_files; i++)
		if (on_cycle[i])
			p->files[i].parent = -1;
	free(on_cycle);
	for (size_t i = 0; i < p->n_files; i++) {
		size_t len = 1;
		for (int c = p->files[i].parent; c >= 0; c = p->files[c].parent)
			len++;
		if (len > PWB__MAX_CHAIN)
			pwb__ferr(
			    p, (int)i, p->files[i].extends_line,
			    p->files[i].extends_col,
			    "the extends chain of '%s' has %zu files; the "
			    "limit is %d",
			    p->files[i].id, len, PWB__MAX_CHAIN);
	}
	for (size_t i = 0; i < p->n_files; i++) {
		pwb__file *f = &p->files[i];
		for (size_t j = 0; j < f->n_jurisdictions; j++) {
			if (pwb__find_file(p, PWB_TIER_LAW,
					   f->jurisdictions[j]) >= 0 ||
			    broken_file_named(p, PWB_TIER_LAW,
					      f->jurisdictions[j]))
				continue;
			pwb__hint h = pwb__hint_in(p, f->jurisdictions[j],
						   PWB__NAMES_LAWS);
			pwb__ferr(p, (int)i, f->jur_item_line[j],
				  f->jur_item_col[j],
				  "unknown jurisdiction '%s': no law file has "
				  "this id%s",
				  f->jurisdictions[j], h.text);
		}
	}
}

/* ---- loosening ---- */

/* "law:de at law/de.yaml:7 (StGB §130)" */
static void describe(char *buf, size_t size, const pwb__file *f, int line,
		     const char *basis)
{
	if (basis)
		snprintf(buf, size, "%s at %s:%d (%s)", f->source, f->path,
			 line, basis);
	else
		snprintf(buf, size, "%s at %s:%d", f->source, f->path, line);
}

/*
 * Can lower rule r give a looser permission than upper rule s for some
 * attributes? Conditions are opaque except for syntactic implication, so
 * every pair of branches is possible unless implication rules it out.
 */
static bool loosens(const pwb__cat_rule *r, const pwb__cat_rule *s,
		    pwb_permission *rp, pwb_permission *sp)
{
	bool r_imp_s = pwb__cond_implies(r->when, s->when);
	bool s_imp_r = pwb__cond_implies(s->when, r->when);
	for (int cr = 1; cr >= 0; cr--) {
		if (!cr && !r->when)
			continue;
		for (int cs = 1; cs >= 0; cs--) {
			if (!cs && !s->when)
				continue;
			if (cr && !cs && r_imp_s)
				continue;
			if (!cr && cs && s_imp_r)
				continue;
			pwb_permission a = cr ? r->perm : r->else_perm;
			pwb_permission b = cs ? s->perm : s->else_perm;
			if (pwb_permission_looser(a, b)) {
				*rp = a;
				*sp = b;
				return true;
			}
		}
	}
	return false;
}

static void check_cat_rule(pwb_policy *p, int fi, const pwb__cat_rule *r,
			   const int *above, size_t n_above)
{
	const pwb__file *f = &p->files[fi];
	const char *cid = p->cats[r->cat].id;
	char where[1024];
	pwb_permission rp, sp;
	/* Against the files above, on the category and its ancestors. */
	for (size_t i = 0; i < n_above; i++) {
		const pwb__file *g = &p->files[above[i]];
		if (!g->cat_index)
			continue;
		for (int c = r->cat; c >= 0; c = p->cats[c].parent) {
			int si = g->cat_index[c];
			if (si < 0)
				continue;
			const pwb__cat_rule *s = &g->cat_rules[si];
			if (!loosens(r, s, &rp, &sp))
				continue;
			describe(where, sizeof(where), g, s->line, s->basis);
			char on[256] = "";
			if (c != r->cat)
				snprintf(on, sizeof(on), " on its parent '%s'",
					 p->cats[c].id);
			pwb__ferr(p, fi, r->line, r->col,
				  "%s loosens '%s': %s here, but %s%s sets "
				  "%s%s",
				  f->source, cid, pwb_permission_str(rp), where,
				  on, pwb_permission_str(sp),
				  (r->when || s->when) ? " (some request "
							 "attributes would "
							 "see the looser "
							 "permission)"
						       : "");
			return;
		}
	}
	/* Against its own ancestors in the same file. */
	for (int c = p->cats[r->cat].parent; c >= 0; c = p->cats[c].parent) {
		int si = f->cat_index[c];
		if (si < 0)
			continue;
		const pwb__cat_rule *s = &f->cat_rules[si];
		if (!loosens(r, s, &rp, &sp))
			continue;
		pwb__ferr(p, fi, r->line, r->col,
			  "'%s' is %s, looser than its parent '%s' (%s at "
			  "line %d): a child may only be stricter",
			  cid, pwb_permission_str(rp), p->cats[c].id,
			  pwb_permission_str(sp), s->line);
		return;
	}
}

static bool list_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

static void check_dim_rule(pwb_policy *p, int fi, const pwb__dim_rule *r,
			   const int *above, size_t n_above)
{
	const pwb__file *f = &p->files[fi];
	const char *did = p->dims[r->dim].id;
	char where[1024];
	for (size_t i = 0; i < n_above; i++) {
		const pwb__file *g = &p->files[above[i]];
		if (!g->dim_index || g->dim_index[r->dim] < 0)
			continue;
		const pwb__dim_rule *s = &g->dim_rules[g->dim_index[r->dim]];
		describe(where, sizeof(where), g, s->line, s->basis);
		if (r->has_range && s->has_range) {
			if (r->hi < s->lo || r->lo > s->hi)
				pwb__ferr(p, fi, r->line, r->col,
					  "empty intersection for '%s': "
					  "range [%g, %g] here and [%g, %g] "
					  "from %s share no value",
					  did, r->lo, r->hi, s->lo, s->hi,
					  where);
			else if (r->lo < s->lo || r->hi > s->hi)
				pwb__ferr(p, fi, r->line, r->col,
					  "%s loosens '%s': range [%g, %g] "
					  "is wider than [%g, %g] set by %s",
					  f->source, did, r->lo, r->hi, s->lo,
					  s->hi, where);
		} else if (r->has_default && !r->has_range && s->has_range &&
			   (r->def < s->lo || r->def > s->hi)) {
			pwb__ferr(p, fi, r->line, r->col,
				  "default %g for '%s' is outside the range "
				  "[%g, %g] set by %s",
				  r->def, did, s->lo, s->hi, where);
		}
		if (r->has_allowed && s->has_allowed) {
			size_t common = 0;
			const char *extra = NULL;
			for (size_t k = 0; k < r->n_allowed; k++) {
				if (list_has(s->allowed, s->n_allowed,
					     r->allowed[k]))
					common++;
				else if (!extra)
					extra = r->allowed[k];
			}
			if (!common)
				pwb__ferr(p, fi, r->line, r->col,
					  "empty intersection for '%s': no "
					  "value allowed here is allowed by "
					  "%s",
					  did, where);
			else if (extra)
				pwb__ferr(p, fi, r->line, r->col,
					  "%s loosens '%s': allows '%s', "
					  "which %s does not",
					  f->source, did, extra, where);
		} else if (r->has_default && !r->has_allowed &&
			   s->has_allowed && r->def_str &&
			   !list_has(s->allowed, s->n_allowed, r->def_str)) {
			pwb__ferr(p, fi, r->line, r->col,
				  "default '%s' for '%s' is not allowed by %s",
				  r->def_str, did, where);
		}
		if (r->adjustable == 1 && s->adjustable == 0)
			pwb__ferr(p, fi, r->line, r->col,
				  "%s loosens '%s': user_adjustable: true, but "
				  "%s fixes it",
				  f->source, did, where);
	}
}

static void check_learning(pwb_policy *p, int fi, const int *above,
			   size_t n_above)
{
	const pwb__file *f = &p->files[fi];
	const pwb__learning *l = &f->learning;
	char where[1024];
	if (!l->present)
		return;
	if (l->cohort && l->requires_consent != 1 &&
	    list_has(l->forbid, l->n_forbid, l->cohort))
		pwb__ferr(p, fi, l->cohort_line, l->cohort_col,
			  "%s groups users by '%s' (cohort_attribute), but its "
			  "own forbid_attributes forbid learning from it",
			  f->source, l->cohort);
	for (size_t i = 0; i < n_above; i++) {
		const pwb__file *g = &p->files[above[i]];
		const pwb__learning *s = &g->learning;
		if (!s->present)
			continue;
		if (l->requires_consent == 0 && s->requires_consent == 1) {
			describe(where, sizeof(where), g, s->consent_line,
				 s->basis);
			pwb__ferr(p, fi, l->consent_line, l->consent_col,
				  "%s loosens learning: requires_consent: "
				  "false, but %s requires consent",
				  f->source, where);
		}
		if (l->store_texts == 1 && s->store_texts == 0) {
			describe(where, sizeof(where), g, s->store_line,
				 s->basis);
			pwb__ferr(p, fi, l->store_line, l->store_col,
				  "%s loosens learning: store_texts: true, but "
				  "%s allows feature vectors only",
				  f->source, where);
		}
		if (l->cohort && s->requires_consent != 1 &&
		    list_has(s->forbid, s->n_forbid, l->cohort)) {
			describe(where, sizeof(where), g, s->line, s->basis);
			pwb__ferr(p, fi, l->cohort_line, l->cohort_col,
				  "%s groups users by '%s' (cohort_attribute), "
				  "but %s forbids learning from it and does "
				  "not allow it with consent",
				  f->source, l->cohort, where);
		}
		if (l->retention_days && s->retention_days &&
		    l->retention_days > s->retention_days) {
			describe(where, sizeof(where), g, s->retention_line,
				 s->basis);
			pwb__ferr(p, fi, l->retention_line, l->retention_col,
				  "%s loosens learning: retention_days %d is "
				  "longer than %d set by %s",
				  f->source, l->retention_days,
				  s->retention_days, where);
		}
	}
}

static void check_obligations(pwb_policy *p, int fi, const int *above,
			      size_t n_above)
{
	const pwb__file *f = &p->files[fi];
	char where[1024];
	for (size_t k = 0; k < f->n_obligations; k++) {
		const pwb__obligation *o = &f->obligations[k];
		for (size_t i = 0; i < n_above; i++) {
			const pwb__file *g = &p->files[above[i]];
			for (size_t j = 0; j < g->n_obligations; j++) {
				const pwb__obligation *u = &g->obligations[j];
				if (strcmp(o->id, u->id) != 0)
					continue;
				if (strcmp(o->kind, u->kind) == 0 &&
				    o->cat == u->cat)
					continue;
				describe(where, sizeof(where), g, u->line,
					 u->basis);
				pwb__ferr(p, fi, o->line, o->col,
					  "obligation '%s' changes the one "
					  "set by %s; a lower tier may add "
					  "obligations under new ids but "
					  "not change one",
					  o->id, where);
			}
		}
	}
}

/* Two jurisdictions of one org whose laws leave a dimension empty. */
static void check_org_laws(pwb_policy *p, int fi, const int *above,
			   size_t n_above)
{
	const pwb__file *f = &p->files[fi];
	for (size_t d = 0; d < p->n_dims; d++) {
		const pwb__dim_rule *lo_r = NULL, *hi_r = NULL;
		const pwb__file *lo_f = NULL, *hi_f = NULL;
		double lo = 0, hi = 1;
		for (size_t i = 0; i < n_above; i++) {
			const pwb__file *g = &p->files[above[i]];
			if (g->tier != PWB_TIER_LAW || !g->dim_index ||
			    g->dim_index[d] < 0)
				continue;
			const pwb__dim_rule *s = &g->dim_rules[g->dim_index[d]];
			if (!s->has_range)
				continue;
			if (!lo_r || s->lo > lo)
				lo = s->lo, lo_r = s, lo_f = g;
			if (!hi_r || s->hi < hi)
				hi = s->hi, hi_r = s, hi_f = g;
		}
		if (lo_r && hi_r && lo > hi)
			pwb__ferr(p, fi, f->jur_line, f->jur_col,
				  "jurisdictions leave '%s' empty: %s (%s:%d) "
				  "sets lo %g, %s (%s:%d) sets hi %g",
				  p->dims[d].id, lo_f->source, lo_f->path,
				  lo_r->line, lo, hi_f->source, hi_f->path,
				  hi_r->line, hi);
		/* Enum lists: is any value allowed by every law's list? */
		const pwb__dim_rule *first = NULL;
		const pwb__file *first_f = NULL;
		bool some = true;
		for (size_t i = 0; i < n_above && some; i++) {
			const pwb__file *g = &p->files[above[i]];
			if (g->tier != PWB_TIER_LAW || !g->dim_index ||
			    g->dim_index[d] < 0 ||
			    !g->dim_rules[g->dim_index[d]].has_allowed)
				continue;
			const pwb__dim_rule *s = &g->dim_rules[g->dim_index[d]];
			if (!first) {
				first = s;
				first_f = g;
				continue;
			}
			some = false;
			for (size_t v = 0; v < first->n_allowed && !some; v++) {
				bool in_all = true;
				for (size_t j = 0; j < n_above && in_all; j++) {
					const pwb__file *h =
					    &p->files[above[j]];
					if (h->tier != PWB_TIER_LAW ||
					    !h->dim_index ||
					    h->dim_index[d] < 0 ||
					    !h->dim_rules[h->dim_index[d]]
						 .has_allowed)
						continue;
					const pwb__dim_rule *t =
					    &h->dim_rules[h->dim_index[d]];
					in_all =
					    list_has(t->allowed, t->n_allowed,
						     first->allowed[v]);
				}
				some = in_all;
			}
			if (!some)
				pwb__ferr(p, fi, f->jur_line, f->jur_col,
					  "jurisdictions leave '%s' empty: "
					  "no value allowed by %s (%s:%d) is "
					  "allowed by %s (%s:%d)",
					  p->dims[d].id, first_f->source,
					  first_f->path, first->line, g->source,
					  g->path, s->line);
		}
	}
}

void pwb__check_all(pwb_policy *p)
{
	check_structure(p);
	int above[PWB__MAX_RESOLVE_FILES];
	for (size_t i = 0; i < p->n_files; i++) {
		pwb__file *f = &p->files[i];
		if (!f->parsed)
			continue;
		size_t n = files_above(p, (int)i, above, PWB_ARRAY_LEN(above));
		for (size_t k = 0; k < f->n_cat_rules; k++)
			check_cat_rule(p, (int)i, &f->cat_rules[k], above, n);
		for (size_t k = 0; k < f->n_dim_rules; k++)
			check_dim_rule(p, (int)i, &f->dim_rules[k], above, n);
		check_learning(p, (int)i, above, n);
		check_obligations(p, (int)i, above, n);
		if (f->tier == PWB_TIER_ORG)
			check_org_laws(p, (int)i, above, n);
	}
}
