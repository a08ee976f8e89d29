/*
 * resolve.c - effective = law(chain) ⊓ org ⊓ user, with provenance, the
 * policy hash and the resolve cache.
 */
#include "policy/policy_int.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PWB__MAX_KEY_BYTES (256 * 1024)

const char *pwb_permission_str(pwb_permission p)
{
	static const char *const names[] = {"forbid", "opt_in", "opt_out",
					    "allow"};
	return (unsigned)p < 4 ? names[p] : "?";
}

bool pwb_permission_parse(const char *s, pwb_permission *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, pwb_permission_str((pwb_permission)i)) == 0) {
			*out = (pwb_permission)i;
			return true;
		}
	}
	return false;
}

const char *pwb_tier_str(pwb_tier t)
{
	static const char *const names[] = {"law", "org", "user", "registry"};
	return (unsigned)t < 4 ? names[t] : "?";
}

/* ---- the state of one cold resolve ---- */

typedef struct rstate {
	pwb_policy *p;
	const pwb_resolve_params *rp;
	pwb_diag *diag;
	pwb_effective *e;
	int files[PWB__MAX_RESOLVE_FILES];
	size_t n_files;
	const char *path[PWB__MAX_RESOLVE_FILES];   /* arena copies */
	const char *source[PWB__MAX_RESOLVE_FILES]; /* arena copies */
	pwb_attrs attrs; /* org.* then request attributes; borrowed values */
	bool oom;
} rstate;

static const char *dup(rstate *st, const char *s)
{
	return pwb__arena_strdup(&st->e->arena, s, &st->oom);
}

static pwb_provenance prov_rule(rstate *st, size_t k, int line,
				const char *basis)
{
	const pwb__file *f = &st->p->files[st->files[k]];
	return (pwb_provenance){f->tier, st->source[k], st->path[k], line,
				dup(st, basis)};
}

static pwb_provenance prov_registry(rstate *st, int line)
{
	return (pwb_provenance){PWB_TIER_REGISTRY, "registry",
				dup(st, st->p->registry_path), line, NULL};
}

static const pwb_provenance prov_user = {PWB_TIER_USER, "user", NULL, 0, NULL};

/* "tier org, source org:x, rule org/x.yaml:9, basis "..."" */
static void rule_text(char *buf, size_t size, const pwb_provenance *pv)
{
	int n;
	if (pv->file)
		n = snprintf(buf, size, "tier %s, source %s, rule %s:%d",
			     pwb_tier_str(pv->tier), pv->source, pv->file,
			     pv->line);
	else
		n = snprintf(buf, size, "tier %s, source %s",
			     pwb_tier_str(pv->tier), pv->source);
	if (pv->basis && n > 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, ", basis \"%s\"",
			 pv->basis);
}

/* ---- attributes ---- */

static pwb_status add_attr(rstate *st, const char *key, const pwb__value *v)
{
	pwb_attrs *a = &st->attrs;
	if (pwb__grow((void **)&a->v, &a->cap, a->n + 1, sizeof(*a->v)))
		return PWB_ENOMEM;
	/* Borrowed: the key and value stay owned by their source. */
	a->v[a->n].key = (char *)key;
	a->v[a->n].val = *v;
	a->n++;
	return PWB_OK;
}

static pwb_status build_attrs(rstate *st, int org, pwb__value *org_id)
{
	pwb_policy *p = st->p;
	org_id->type = PWB_VAL_STRING;
	org_id->str = p->files[org].id;
	pwb_status rc = add_attr(st, "org.id", org_id);
	for (int f = org; !rc && f >= 0; f = p->files[f].parent)
		for (size_t i = 0; !rc && i < p->files[f].org_attrs.n; i++)
			rc = add_attr(st, p->files[f].org_attrs.v[i].key,
				      &p->files[f].org_attrs.v[i].val);
	const pwb_attrs *ra = st->rp->attrs;
	for (size_t i = 0; !rc && ra && i < ra->n; i++) {
		const char *key = ra->v[i].key;
		const pwb__value *v = &ra->v[i].val;
		int a = pwb__find_attr(p, key);
		bool org_own = pwb__attrs_get(&st->attrs, key) != NULL;
		if (a < 0 && !org_own) {
			pwb__hint h = pwb__hint_in(p, key, PWB__NAMES_ATTRS);
			pwb_diag_add(st->diag, NULL, 0, 0,
				     "unknown attribute '%s'%s", key, h.text);
			return PWB_EINVAL;
		}
		if (a >= 0 && v->type != PWB_VAL_NULL &&
		    v->type != p->attrs[a].type) {
			pwb_diag_add(st->diag, NULL, 0, 0,
				     "attribute '%s' is a %s, not a %s", key,
				     pwb__value_type_name(p->attrs[a].type),
				     pwb__value_type_name(v->type));
			return PWB_EINVAL;
		}
		if (!org_own)
			rc = add_attr(st, key, v);
	}
	return rc;
}

/* ---- categories ---- */

typedef struct binding {
	int k; /* index in st->files, -1 for the registry */
	const pwb__cat_rule *rule;
	bool else_branch;
	long rank; /* lower wins ties */
} binding;

static int find_cat_setting(const pwb_settings *s, const char *id)
{
	for (size_t i = 0; s && i < s->n_cats; i++)
		if (strcmp(s->cats[i].id, id) == 0)
			return (int)i;
	return -1;
}

static pwb_status resolve_cats(rstate *st)
{
	pwb_policy *p = st->p;
	pwb_effective *e = st->e;
	const pwb_settings *us = st->rp->settings;
	size_t n = p->n_cats;
	e->n_cats = n;
	e->cats = pwb__arena_alloc(&e->arena, (n ? n : 1) * sizeof(*e->cats));
	binding *b = pwb__calloc(n ? n : 1, sizeof(*b));
	bool *own = pwb__calloc(n ? n : 1, sizeof(*own));
	pwb_status rc = PWB_OK;
	if (!e->cats || !b || !own) {
		rc = PWB_ENOMEM;
		goto out;
	}
	/* Settings must name known categories. */
	for (size_t i = 0; us && i < us->n_cats; i++) {
		if (pwb__find_cat(p, us->cats[i].id) >= 0)
			continue;
		pwb__hint h = pwb__hint_in(p, us->cats[i].id, PWB__NAMES_CATS);
		pwb_diag_add(st->diag, NULL, 0, 0,
			     "unknown category '%s' in the user settings%s",
			     us->cats[i].id, h.text);
		rc = PWB_EINVAL;
		goto out;
	}
	for (size_t oi = 0; oi < n; oi++) {
		int c = p->cat_order[oi];
		const pwb__reg_cat *rc_ = &p->cats[c];
		pwb_eff_category *ec = &e->cats[c];
		pwb_permission perm = PWB_ALLOW;
		binding bd = {.k = -1, .rank = 1L << 40};
		int par = rc_->parent;
		if (par >= 0) {
			/* Inherit the parent's bound; it ranks as "via the
			 * parent" so that an own rule of the same file wins
			 * a tie. */
			perm = e->cats[par].permission;
			bd = b[par];
			bd.rank |= 1;
		}
		for (size_t k = 0; k < st->n_files; k++) {
			const pwb__file *f = &p->files[st->files[k]];
			int ri = f->cat_index ? f->cat_index[c] : -1;
			if (ri < 0)
				continue;
			const pwb__cat_rule *r = &f->cat_rules[ri];
			bool holds =
			    !r->when || pwb__cond_eval(r->when, &st->attrs);
			pwb_permission rp = holds ? r->perm : r->else_perm;
			long rank = ((long)f->tier << 20) + ((long)k << 1);
			if (pwb_permission_looser(perm, rp) ||
			    (rp == perm && rank < bd.rank)) {
				perm = pwb_permission_meet(perm, rp);
				bd = (binding){(int)k, r, !holds, rank};
			}
		}
		b[c] = bd;
		ec->id = dup(st, rc_->id);
		ec->parent = par >= 0 ? e->cats[par].id : NULL;
		ec->permission = perm;
		if (bd.k < 0 && bd.rule == NULL)
			ec->set_by = prov_registry(st, rc_->line);
		else
			ec->set_by = prov_rule(st, (size_t)bd.k, bd.rule->line,
					       bd.rule->basis);
		if (bd.rule && bd.rule->when) {
			ec->condition = dup(st, bd.rule->when_src);
			ec->condition_holds = !bd.else_branch;
		}
		/* The user's setting: own, else inherited from the parent. */
		int si = find_cat_setting(us, rc_->id);
		if (si >= 0) {
			ec->user_setting = us->cats[si].on;
			own[c] = true;
		} else {
			ec->user_setting =
			    par >= 0 ? e->cats[par].user_setting : -1;
		}
		ec->active = pwb_permission_on(perm, ec->user_setting);
		if (own[c] && ec->user_setting == 1 && perm == PWB_FORBID) {
			char why[1024], cond[512] = "";
			rule_text(why, sizeof(why), &ec->set_by);
			if (ec->condition)
				snprintf(cond, sizeof(cond),
					 "; its condition \"%s\" does not "
					 "hold",
					 ec->condition);
			pwb_diag_add(st->diag, NULL, 0, 0,
				     "user setting '%s: on' is outside the "
				     "bounds: '%s' is forbid (%s)%s",
				     rc_->id, rc_->id, why, cond);
			rc = PWB_EBOUNDS;
			goto out;
		}
	}
out:
	free(b);
	free(own);
	return rc;
}

/* ---- dimensions ---- */

static const pwb__dim_setting *find_dim_setting(const pwb_settings *s,
						const char *id)
{
	for (size_t i = 0; s && i < s->n_dims; i++)
		if (strcmp(s->dims[i].id, id) == 0)
			return &s->dims[i];
	return NULL;
}

static bool has_str(const char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* The range (numeric) or the allowed list (enum) of dimension d: the
 * intersection over every file of the resolve, each end with its rule. */
static pwb_status dim_bounds(rstate *st, size_t d)
{
	pwb_policy *p = st->p;
	pwb_effective *e = st->e;
	const pwb__reg_dim *rd = &p->dims[d];
	pwb_eff_dimension *ed = &e->dims[d];
	const char **allowed = NULL;
	size_t n_allowed = 0;
	bool any = true;
	if (!rd->numeric && rd->values) {
		allowed = (const char **)rd->values;
		n_allowed = rd->n_values;
		any = false;
	}
	ed->lo = 0;
	ed->hi = 1;
	for (size_t k = 0; k < st->n_files; k++) {
		const pwb__file *f = &p->files[st->files[k]];
		int ri = f->dim_index ? f->dim_index[d] : -1;
		if (ri < 0)
			continue;
		const pwb__dim_rule *r = &f->dim_rules[ri];
		pwb_provenance pv = prov_rule(st, k, r->line, r->basis);
		if (r->has_range) {
			if (r->lo > ed->lo ||
			    (r->lo == ed->lo &&
			     ed->lo_set_by.tier == PWB_TIER_REGISTRY))
				ed->lo = r->lo, ed->lo_set_by = pv;
			if (r->hi < ed->hi ||
			    (r->hi == ed->hi &&
			     ed->hi_set_by.tier == PWB_TIER_REGISTRY))
				ed->hi = r->hi, ed->hi_set_by = pv;
			ed->set_by = pv;
		}
		if (r->has_allowed) {
			const char **next = pwb__arena_alloc(
			    &e->arena,
			    (r->n_allowed ? r->n_allowed : 1) * sizeof(char *));
			if (!next)
				return PWB_ENOMEM;
			size_t m = 0;
			for (size_t i = 0; i < r->n_allowed; i++)
				if (any ||
				    has_str(allowed, n_allowed, r->allowed[i]))
					next[m++] = dup(st, r->allowed[i]);
			allowed = next;
			n_allowed = m;
			any = false;
			ed->set_by = pv;
		}
		if (r->adjustable == 0 && ed->user_adjustable) {
			ed->user_adjustable = false;
			ed->adjustable_set_by = pv;
		}
	}
	if ((rd->numeric && ed->lo > ed->hi) || (!any && n_allowed == 0)) {
		pwb_diag_add(st->diag, NULL, 0, 0,
			     "the jurisdictions of this resolve leave "
			     "dimension '%s' empty (run pwb policy check)",
			     rd->id);
		return PWB_EPOLICY;
	}
	if (!any && allowed == (const char **)rd->values) {
		/* Copy the registry's list so e owns every string. */
		const char **copy = pwb__arena_alloc(
		    &e->arena, (n_allowed ? n_allowed : 1) * sizeof(char *));
		if (!copy)
			return PWB_ENOMEM;
		for (size_t i = 0; i < n_allowed; i++)
			copy[i] = dup(st, allowed[i]);
		allowed = copy;
	}
	ed->allowed = any ? NULL : allowed;
	ed->n_allowed = any ? 0 : n_allowed;
	return PWB_OK;
}

/* Whether an enum value lies in the effective list (NULL: any string). */
static bool dim_allows(const pwb_eff_dimension *ed, const char *s)
{
	return !ed->allowed || has_str(ed->allowed, ed->n_allowed, s);
}

/* The default of dimension d: the lowest tier's default inside the bounds,
 * else the nearest point of the bounds to the lowest tier's default. */
static void dim_default(rstate *st, size_t d, const pwb_provenance *reg)
{
	pwb_policy *p = st->p;
	const pwb__reg_dim *rd = &p->dims[d];
	pwb_eff_dimension *ed = &st->e->dims[d];
	bool found = false, have_cand = false;
	double cand = rd->def;
	const char *cand_s = rd->def_str;
	pwb_provenance cand_pv = *reg;
	for (size_t k = st->n_files; k-- > 0 && !found;) {
		const pwb__file *f = &p->files[st->files[k]];
		int ri = f->dim_index ? f->dim_index[d] : -1;
		if (ri < 0 || !f->dim_rules[ri].has_default)
			continue;
		const pwb__dim_rule *r = &f->dim_rules[ri];
		pwb_provenance pv = prov_rule(st, k, r->line, r->basis);
		if (!have_cand) {
			have_cand = true;
			cand = r->def;
			cand_s = r->def_str;
			cand_pv = pv;
		}
		bool in = rd->numeric ? (r->def >= ed->lo && r->def <= ed->hi)
				      : dim_allows(ed, r->def_str);
		if (in) {
			found = true;
			ed->def = r->def;
			ed->def_str = dup(st, r->def_str);
			ed->default_set_by = pv;
		}
	}
	if (!found) {
		ed->default_set_by = cand_pv;
		if (rd->numeric) {
			ed->def = cand;
			if (cand < ed->lo)
				ed->def = ed->lo,
				ed->default_set_by = ed->lo_set_by;
			else if (cand > ed->hi)
				ed->def = ed->hi,
				ed->default_set_by = ed->hi_set_by;
		} else if (!ed->allowed || (cand_s && dim_allows(ed, cand_s))) {
			ed->def_str = dup(st, cand_s);
		} else {
			ed->def_str = ed->allowed[0];
			ed->default_set_by = ed->set_by;
		}
	}
	ed->value = ed->def;
	ed->value_str = ed->def_str;
	ed->value_set_by = ed->default_set_by;
}

/* Refuses an enum value outside the effective list, naming the highest
 * rule whose list lacks it and the values allowed. */
static pwb_status refuse_enum_value(rstate *st, size_t d, const char *shown,
				    const char *value)
{
	const pwb_policy *p = st->p;
	const pwb_eff_dimension *ed = &st->e->dims[d];
	pwb_provenance pv = ed->set_by;
	for (size_t k = 0; k < st->n_files; k++) {
		const pwb__file *f = &p->files[st->files[k]];
		int ri = f->dim_index ? f->dim_index[d] : -1;
		if (ri < 0 || !f->dim_rules[ri].has_allowed ||
		    has_str((const char *const *)f->dim_rules[ri].allowed,
			    f->dim_rules[ri].n_allowed, value))
			continue;
		pv = prov_rule(st, k, f->dim_rules[ri].line,
			       f->dim_rules[ri].basis);
		break;
	}
	char why[1024];
	rule_text(why, sizeof(why), &pv);
	char list[512] = "";
	size_t used = 0;
	for (size_t i = 0; i < ed->n_allowed && used < sizeof(list); i++) {
		int w = snprintf(list + used, sizeof(list) - used, "%s%s",
				 i ? ", " : "", ed->allowed[i]);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	pwb_diag_add(st->diag, NULL, 0, 0,
		     "user setting '%s' is outside the bounds: '%s' is not "
		     "allowed; the allowed values are %s (%s)",
		     shown, value, list, why);
	return PWB_EBOUNDS;
}

/* The user's own value of dimension d: refused, never clamped, when out
 * of bounds. */
static pwb_status dim_value(rstate *st, size_t d, const pwb__dim_setting *us)
{
	const pwb__reg_dim *rd = &st->p->dims[d];
	pwb_eff_dimension *ed = &st->e->dims[d];
	char why[1024], shown[300];
	if (us->numeric)
		snprintf(shown, sizeof(shown), "%s: %g", rd->id, us->num);
	else
		snprintf(shown, sizeof(shown), "%s: %s", rd->id, us->str);
	if (us->numeric != rd->numeric) {
		pwb_diag_add(st->diag, NULL, 0, 0,
			     "user setting '%s': dimension '%s' takes %s",
			     shown, rd->id,
			     rd->numeric ? "a number in [0, 1]" : "a string");
		return PWB_EINVAL;
	}
	if (!ed->user_adjustable) {
		rule_text(why, sizeof(why), &ed->adjustable_set_by);
		pwb_diag_add(st->diag, NULL, 0, 0,
			     "user setting '%s' is outside the bounds: '%s' "
			     "is not user adjustable (%s)",
			     shown, rd->id, why);
		return PWB_EBOUNDS;
	}
	if (rd->numeric) {
		if (us->num < ed->lo || us->num > ed->hi) {
			const pwb_provenance *pv =
			    us->num < ed->lo ? &ed->lo_set_by : &ed->hi_set_by;
			rule_text(why, sizeof(why), pv);
			pwb_diag_add(st->diag, NULL, 0, 0,
				     "user setting '%s' is outside the "
				     "bounds: the range is [%g, %g] (%s)",
				     shown, ed->lo, ed->hi, why);
			return PWB_EBOUNDS;
		}
		ed->value = us->num;
	} else {
		if (rd->values && !has_str((const char *const *)rd->values,
					   rd->n_values, us->str)) {
			pwb_diag_add(st->diag, NULL, 0, 0,
				     "user setting '%s': '%s' is not a value "
				     "of dimension '%s'",
				     shown, us->str, rd->id);
			return PWB_EINVAL;
		}
		if (!dim_allows(ed, us->str))
			return refuse_enum_value(st, d, shown, us->str);
		ed->value_str = dup(st, us->str);
	}
	ed->value_set_by = prov_user;
	return PWB_OK;
}

/* Dimension d: its bounds, its default, then the user's value. */
static pwb_status resolve_dim(rstate *st, size_t d)
{
	const pwb__reg_dim *rd = &st->p->dims[d];
	pwb_eff_dimension *ed = &st->e->dims[d];
	ed->id = dup(st, rd->id);
	ed->numeric = rd->numeric;
	pwb_provenance reg = prov_registry(st, rd->line);
	ed->set_by = ed->lo_set_by = ed->hi_set_by = reg;
	ed->adjustable_set_by = reg;
	ed->user_adjustable = true;
	pwb_status rc = dim_bounds(st, d);
	if (rc)
		return rc;
	dim_default(st, d, &reg);
	const pwb__dim_setting *us = find_dim_setting(st->rp->settings, rd->id);
	return us ? dim_value(st, d, us) : PWB_OK;
}

static pwb_status resolve_dims(rstate *st)
{
	pwb_policy *p = st->p;
	pwb_effective *e = st->e;
	const pwb_settings *us = st->rp->settings;
	for (size_t i = 0; us && i < us->n_dims; i++) {
		if (pwb__find_dim(p, us->dims[i].id) >= 0)
			continue;
		pwb__hint h = pwb__hint_in(p, us->dims[i].id, PWB__NAMES_DIMS);
		pwb_diag_add(st->diag, NULL, 0, 0,
			     "unknown dimension '%s' in the user settings%s",
			     us->dims[i].id, h.text);
		return PWB_EINVAL;
	}
	e->n_dims = p->n_dims;
	e->dims = pwb__arena_alloc(&e->arena, (p->n_dims ? p->n_dims : 1) *
						  sizeof(*e->dims));
	if (!e->dims)
		return PWB_ENOMEM;
	for (size_t d = 0; d < p->n_dims; d++) {
		pwb_status rc = resolve_dim(st, d);
		if (rc)
			return rc;
	}
	return PWB_OK;
}

/* ---- obligations, learning, the rest ---- */

/*
 * The cohort attribute: the nearest org file that names one, unless a
 * file of this resolve forbids learning from it. A file that forbids it
 * and requires consent allows it with the user's consent naming it; one
 * that does not refuses it. (A static policy with such a refusal fails
 * `pwb policy check`; a request's own jurisdictions can still bring one.)
 */
static void resolve_cohort(rstate *st, int org)
{
	pwb_policy *p = st->p;
	pwb_eff_learning *l = &st->e->learning;
	int from = -1;
	for (int f = org; f >= 0 && from < 0; f = p->files[f].parent)
		if (p->files[f].learning.cohort)
			from = f;
	if (from < 0)
		return;
	const char *name = p->files[from].learning.cohort;
	for (size_t k = 0; k < st->n_files; k++)
		if (st->files[k] == from)
			l->cohort_set_by =
			    prov_rule(st, k, p->files[from].learning.cohort_line,
				      p->files[from].learning.basis);
	for (size_t k = 0; k < st->n_files; k++) {
		const pwb__learning *fl = &p->files[st->files[k]].learning;
		if (!fl->present ||
		    !has_str((const char **)fl->forbid, fl->n_forbid, name))
			continue;
		if (fl->requires_consent != 1) {
			l->cohort_limited_by =
			    prov_rule(st, k, fl->line, fl->basis);
			l->cohort_refused = dup(st, name);
			l->cohort_attribute = NULL;
			l->cohort_named_consent = false;
			return;
		}
		if (!l->cohort_named_consent) {
			l->cohort_limited_by =
			    prov_rule(st, k, fl->line, fl->basis);
			l->cohort_named_consent = true;
		}
	}
	l->cohort_attribute = dup(st, name);
}

static pwb_status resolve_rest(rstate *st, int org)
{
	pwb_policy *p = st->p;
	pwb_effective *e = st->e;
	size_t total = 0;
	for (size_t k = 0; k < st->n_files; k++)
		total += p->files[st->files[k]].n_obligations;
	e->obligations = pwb__arena_alloc(
	    &e->arena, (total ? total : 1) * sizeof(*e->obligations));
	if (!e->obligations)
		return PWB_ENOMEM;
	pwb_eff_learning *l = &e->learning;
	size_t n_forbid = 0;
	for (size_t k = 0; k < st->n_files; k++)
		n_forbid += p->files[st->files[k]].learning.n_forbid;
	const char **forbid = pwb__arena_alloc(
	    &e->arena, (n_forbid ? n_forbid : 1) * sizeof(char *));
	if (!forbid)
		return PWB_ENOMEM;
	l->store_texts = true;
	l->set_by =
	    (pwb_provenance){PWB_TIER_REGISTRY, "registry", NULL, 0, NULL};
	l->requires_consent_set_by = l->store_texts_set_by =
	    l->retention_set_by = l->cohort_set_by = l->cohort_limited_by =
		l->set_by;
	bool have_learning = false;
	for (size_t k = 0; k < st->n_files; k++) {
		const pwb__file *f = &p->files[st->files[k]];
		for (size_t i = 0; i < f->n_obligations; i++) {
			const pwb__obligation *o = &f->obligations[i];
			bool seen = false;
			for (size_t j = 0; j < e->n_obligations && !seen; j++)
				seen = strcmp(e->obligations[j].id, o->id) == 0;
			if (seen)
				continue;
			pwb_eff_obligation *eo =
			    &e->obligations[e->n_obligations++];
			eo->id = dup(st, o->id);
			eo->kind = dup(st, o->kind);
			eo->category = o->cat >= 0 ? e->cats[o->cat].id : NULL;
			eo->text = dup(st, o->text);
			eo->set_by = prov_rule(st, k, o->line, o->basis);
		}
		const pwb__learning *fl = &f->learning;
		if (!fl->present)
			continue;
		if (!have_learning) {
			have_learning = true;
			l->set_by = prov_rule(st, k, fl->line, fl->basis);
		}
		for (size_t i = 0; i < fl->n_forbid; i++)
			if (!has_str(forbid, l->n_forbid_attributes,
				     fl->forbid[i]))
				forbid[l->n_forbid_attributes++] =
				    dup(st, fl->forbid[i]);
		/* Each field names the first (highest) rule that made it what
		 * it is: the first to require consent, to forbid storing texts,
		 * the one with the shortest retention. */
		if (fl->requires_consent == 1 && !l->requires_consent) {
			l->requires_consent = true;
			l->requires_consent_set_by =
			    prov_rule(st, k, fl->consent_line, fl->basis);
		}
		if (fl->store_texts == 0 && l->store_texts) {
			l->store_texts = false;
			l->store_texts_set_by =
			    prov_rule(st, k, fl->store_line, fl->basis);
		}
		if (fl->retention_days &&
		    (!l->retention_days ||
		     fl->retention_days < l->retention_days)) {
			l->retention_days = fl->retention_days;
			l->retention_set_by =
			    prov_rule(st, k, fl->retention_line, fl->basis);
		}
	}
	l->forbid_attributes = forbid;
	resolve_cohort(st, org);
	e->candidates = 1;
	for (int f = org; f >= 0; f = p->files[f].parent) {
		if (p->files[f].candidates) {
			e->candidates = p->files[f].candidates;
			break;
		}
	}
	for (int f = org; f >= 0 && !e->system_prompt; f = p->files[f].parent)
		if (p->files[f].system_prompt)
			e->system_prompt = dup(st, p->files[f].system_prompt);
	e->org = dup(st, p->files[org].id);
	/* Refusal templates: the most derived org file that gives one for a
	 * language wins. */
	size_t n_ref = 0;
	for (int f = org; f >= 0; f = p->files[f].parent)
		n_ref += p->files[f].refusals.n;
	e->refusal_lang =
	    pwb__arena_alloc(&e->arena, (n_ref ? n_ref : 1) * sizeof(char *));
	e->refusal_text =
	    pwb__arena_alloc(&e->arena, (n_ref ? n_ref : 1) * sizeof(char *));
	if (!e->refusal_lang || !e->refusal_text)
		return PWB_ENOMEM;
	for (int f = org; f >= 0; f = p->files[f].parent) {
		const pwb_attrs *r = &p->files[f].refusals;
		for (size_t i = 0; i < r->n; i++) {
			if (pwb_effective_refusal_template(e, r->v[i].key))
				continue;
			e->refusal_lang[e->n_refusals] = dup(st, r->v[i].key);
			e->refusal_text[e->n_refusals] =
			    dup(st, r->v[i].val.str);
			e->n_refusals++;
		}
	}
	size_t n_laws = 0;
	for (size_t k = 0; k < st->n_files; k++)
		n_laws += p->files[st->files[k]].tier == PWB_TIER_LAW;
	e->jurisdictions =
	    pwb__arena_alloc(&e->arena, (n_laws ? n_laws : 1) * sizeof(char *));
	if (!e->jurisdictions)
		return PWB_ENOMEM;
	for (size_t k = 0; k < st->n_files; k++)
		if (p->files[st->files[k]].tier == PWB_TIER_LAW)
			e->jurisdictions[e->n_jurisdictions++] =
			    dup(st, p->files[st->files[k]].id);
	return PWB_OK;
}

static void compute_hash(rstate *st, const pwb__buf *key)
{
	pwb_policy *p = st->p;
	crypto_generichash_state hs;
	unsigned char out[PWB__DIGEST];
	static const char tag[] = "pwb-policy-hash-v1";
	crypto_generichash_init(&hs, NULL, 0, sizeof(out));
	crypto_generichash_update(&hs, (const unsigned char *)tag, sizeof(tag));
	crypto_generichash_update(&hs, p->registry_digest, PWB__DIGEST);
	for (size_t k = 0; k < st->n_files; k++)
		crypto_generichash_update(&hs, p->files[st->files[k]].digest,
					  PWB__DIGEST);
	crypto_generichash_update(&hs, (const unsigned char *)key->s, key->len);
	crypto_generichash_final(&hs, out, sizeof(out));
	sodium_bin2hex(st->e->hash, sizeof(st->e->hash), out, sizeof(out));
}

pwb_effective *pwb_effective_ref(const pwb_effective *e)
{
	/* Effectives are immutable once made; a reference is not a change
	 * to their content, only to their lifetime. */
	pwb_effective *m = (pwb_effective *)e;
	atomic_fetch_add(&m->refs, 1);
	return m;
}

void pwb_effective_free(pwb_effective *e)
{
	if (!e || atomic_fetch_sub(&e->refs, 1) != 1)
		return;
	pwb__arena_release(&e->arena);
	free(e);
}

static pwb_status resolve_cold(pwb_effective **out, pwb_policy *p,
			       const pwb_resolve_params *rp,
			       const pwb__buf *key, pwb_diag *diag)
{
	rstate *st = pwb__calloc(1, sizeof(*st));
	if (!st)
		return PWB_ENOMEM;
	st->p = p;
	st->rp = rp;
	st->diag = diag;
	pwb_status rc = PWB_OK;
	pwb__value org_id;
	if (p->registry_errors) {
		pwb_diag_add(diag, p->registry_path, 0, 0,
			     "the registry has %d error(s); run pwb policy "
			     "check",
			     p->registry_errors);
		rc = PWB_EPOLICY;
		goto out;
	}
	int org = pwb__find_file(p, PWB_TIER_ORG, rp->org);
	if (org < 0) {
		pwb__hint h = pwb__hint_in(p, rp->org, PWB__NAMES_ORGS);
		pwb_diag_add(diag, NULL, 0, 0, "unknown org '%s'%s", rp->org,
			     h.text);
		rc = PWB_ENOTFOUND;
		goto out;
	}
	int nf =
	    pwb__resolve_files(p, org, rp->jurisdictions, rp->n_jurisdictions,
			       st->files, PWB__MAX_RESOLVE_FILES, diag);
	if (nf < 0) {
		rc = PWB_ENOTFOUND;
		goto out;
	}
	st->n_files = (size_t)nf;
	for (size_t k = 0; k < st->n_files; k++) {
		const pwb__file *f = &p->files[st->files[k]];
		if (f->n_errors) {
			pwb_diag_add(diag, f->path, 0, 0,
				     "%d error(s) in this file; run pwb policy "
				     "check",
				     f->n_errors);
			rc = PWB_EPOLICY;
		}
	}
	if (rc)
		goto out;
	if (!(st->e = pwb__calloc(1, sizeof(*st->e)))) {
		rc = PWB_ENOMEM;
		goto out;
	}
	atomic_init(&st->e->refs, 1);
	pwb__arena_init(&st->e->arena);
	for (size_t k = 0; k < st->n_files; k++) {
		st->path[k] = dup(st, p->files[st->files[k]].path);
		st->source[k] = dup(st, p->files[st->files[k]].source);
	}
	if ((rc = build_attrs(st, org, &org_id)) || (rc = resolve_cats(st)) ||
	    (rc = resolve_dims(st)) || (rc = resolve_rest(st, org)))
		goto out;
	if (st->oom) {
		rc = PWB_ENOMEM;
		goto out;
	}
	compute_hash(st, key);
out:
	free(st->attrs.v);
	if (rc) {
		pwb_effective_free(st->e);
	} else {
		*out = st->e;
	}
	free(st);
	return rc;
}

/* ---- the cache ---- */

void pwb__cache_clear(pwb_policy *p)
{
	for (size_t i = 0; i < p->cache_size; i++) {
		pwb__cache_slot *s = &p->cache[i];
		if (!s->eff)
			continue;
		pwb_effective_free(s->eff);
		free(s->key);
		memset(s, 0, sizeof(*s));
	}
	p->cache_used = 0;
}

static pwb__cache_slot *cache_find(pwb_policy *p, uint64_t h, const char *key,
				   size_t len)
{
	size_t mask = p->cache_size - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		pwb__cache_slot *s = &p->cache[i];
		if (!s->eff)
			return s;
		if (s->hash == h && s->key_len == len &&
		    memcmp(s->key, key, len) == 0)
			return s;
	}
}

static void cache_put(pwb_policy *p, uint64_t h, const pwb__buf *key,
		      pwb_effective *e)
{
	if (!p->cache_size)
		return;
	/* Keep the table at most half full: when the bound is reached, start
	 * over (live effectives are reference counted and stay valid). */
	if (p->cache_used >= p->params.cache_entries ||
	    p->cache_used * 2 >= p->cache_size)
		pwb__cache_clear(p);
	pwb__cache_slot *s = cache_find(p, h, key->s, key->len);
	if (s->eff)
		return;
	char *k = pwb__malloc(key->len);
	if (!k)
		return;
	memcpy(k, key->s, key->len);
	atomic_fetch_add(&e->refs, 1);
	*s = (pwb__cache_slot){h, k, key->len, e};
	p->cache_used++;
}

pwb_status pwb_policy_resolve(pwb_effective **out, pwb_policy *p,
			      const pwb_resolve_params *rp, pwb_diag *diag)
{
	*out = NULL;
	if (!p || !rp || !rp->org ||
	    (rp->n_jurisdictions && !rp->jurisdictions))
		return PWB_EINVAL;
	/* The key: every input of the resolve, in canonical form. */
	char stack[512];
	pwb__buf key;
	pwb__buf_init_with(&key, stack, sizeof(stack), PWB__MAX_KEY_BYTES);
	pwb__buf_add(&key, rp->org, strlen(rp->org) + 1);
	for (size_t i = 0; i < rp->n_jurisdictions; i++)
		pwb__buf_add(&key, rp->jurisdictions[i],
			     strlen(rp->jurisdictions[i]) + 1);
	pwb__settings_key(rp->settings, &key);
	pwb__attrs_key(rp->attrs, &key);
	if (key.err) {
		pwb_status rc = key.err;
		pwb__buf_release(&key);
		return rc;
	}
	uint64_t h = pwb__fnv1a(PWB__FNV_INIT, key.s, key.len);
	if (p->cache_size) {
		pthread_mutex_lock(&p->lock);
		pwb__cache_slot *s = cache_find(p, h, key.s, key.len);
		if (s->eff) {
			atomic_fetch_add(&s->eff->refs, 1);
			*out = s->eff;
		}
		pthread_mutex_unlock(&p->lock);
		if (*out) {
			pwb__buf_release(&key);
			return PWB_OK;
		}
	}
	pwb_effective *e = NULL;
	pwb_status rc = resolve_cold(&e, p, rp, &key, diag);
	if (!rc && p->cache_size) {
		pthread_mutex_lock(&p->lock);
		cache_put(p, h, &key, e);
		pthread_mutex_unlock(&p->lock);
	}
	pwb__buf_release(&key);
	*out = e;
	return rc;
}

/* ---- getters ---- */

const char *pwb_effective_org(const pwb_effective *e)
{
	return e->org;
}

const char *pwb_effective_hash(const pwb_effective *e)
{
	return e->hash;
}

size_t pwb_effective_n_jurisdictions(const pwb_effective *e)
{
	return e->n_jurisdictions;
}

const char *pwb_effective_jurisdiction(const pwb_effective *e, size_t i)
{
	return i < e->n_jurisdictions ? e->jurisdictions[i] : NULL;
}

int pwb_effective_candidates(const pwb_effective *e)
{
	return e->candidates;
}

const char *pwb_effective_system_prompt(const pwb_effective *e)
{
	return e->system_prompt;
}

size_t pwb_effective_n_categories(const pwb_effective *e)
{
	return e->n_cats;
}

const pwb_eff_category *pwb_effective_category(const pwb_effective *e, size_t i)
{
	return i < e->n_cats ? &e->cats[i] : NULL;
}

const pwb_eff_category *pwb_effective_find_category(const pwb_effective *e,
						    const char *id)
{
	for (size_t i = 0; i < e->n_cats; i++)
		if (strcmp(e->cats[i].id, id) == 0)
			return &e->cats[i];
	return NULL;
}

size_t pwb_effective_n_dimensions(const pwb_effective *e)
{
	return e->n_dims;
}

const pwb_eff_dimension *pwb_effective_dimension(const pwb_effective *e,
						 size_t i)
{
	return i < e->n_dims ? &e->dims[i] : NULL;
}

const pwb_eff_dimension *pwb_effective_find_dimension(const pwb_effective *e,
						      const char *id)
{
	for (size_t i = 0; i < e->n_dims; i++)
		if (strcmp(e->dims[i].id, id) == 0)
			return &e->dims[i];
	return NULL;
}

size_t pwb_effective_n_obligations(const pwb_effective *e)
{
	return e->n_obligations;
}

const pwb_eff_obligation *pwb_effective_obligation(const pwb_effective *e,
						   size_t i)
{
	return i < e->n_obligations ? &e->obligations[i] : NULL;
}

const pwb_eff_learning *pwb_effective_learning(const pwb_effective *e)
{
	return &e->learning;
}

const char *pwb_effective_refusal_template(const pwb_effective *e,
					   const char *lang)
{
	for (size_t i = 0; i < e->n_refusals; i++)
		if (e->refusal_lang[i] && !strcmp(e->refusal_lang[i], lang))
			return e->refusal_text[i];
	return NULL;
}
