/* cond.c - the condition language: lexer, parser, checks, evaluation. */
#include "policy/cond.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- values ---- */

void pwb__value_release(pwb__value *v)
{
	free(v->str);
	for (size_t i = 0; i < v->n; i++)
		pwb__value_release(&v->items[i]);
	free(v->items);
	memset(v, 0, sizeof(*v));
}

const char *pwb__value_type_name(pwb_value_type t)
{
	switch (t) {
	case PWB_VAL_NULL:
		return "null";
	case PWB_VAL_BOOL:
		return "bool";
	case PWB_VAL_NUMBER:
		return "number";
	case PWB_VAL_STRING:
		return "string";
	case PWB_VAL_LIST:
		return "list";
	}
	return "?";
}

static void canon_string(const char *s, pwb__buf *b)
{
	pwb__buf_addc(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			pwb__buf_addc(b, '\\');
			pwb__buf_addc(b, (char)c);
		} else if (c < 0x20) {
			pwb__buf_addf(b, "\\u%04x", c);
		} else {
			pwb__buf_addc(b, (char)c);
		}
	}
	pwb__buf_addc(b, '"');
}

void pwb__value_canon(const pwb__value *v, pwb__buf *b)
{
	char num[40];
	switch (v->type) {
	case PWB_VAL_NULL:
		pwb__buf_adds(b, "null");
		break;
	case PWB_VAL_BOOL:
		pwb__buf_adds(b, v->b ? "true" : "false");
		break;
	case PWB_VAL_NUMBER:
		pwb__fmt_double(num, sizeof(num), v->num);
		pwb__buf_adds(b, num);
		break;
	case PWB_VAL_STRING:
		canon_string(v->str, b);
		break;
	case PWB_VAL_LIST:
		pwb__buf_addc(b, '[');
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				pwb__buf_addc(b, ',');
			pwb__value_canon(&v->items[i], b);
		}
		pwb__buf_addc(b, ']');
		break;
	}
}

/* ---- lexer ---- */

typedef enum tok_kind {
	T_END,
	T_PATH,
	T_NUM,
	T_STR,
	T_TRUE,
	T_FALSE,
	T_NULL,
	T_AND,
	T_OR,
	T_NOT,
	T_EQ,
	T_NE,
	T_LT,
	T_LE,
	T_GT,
	T_GE,
	T_IN,
	T_LPAREN,
	T_RPAREN,
	T_LBRACK,
	T_RBRACK,
	T_COMMA,
	T_ERR
} tok_kind;

typedef struct parser {
	const char *src;
	size_t pos; /* next unread byte */
	tok_kind tok;
	size_t tok_pos;
	size_t tok_len;
	double num;
	char *str; /* T_STR / T_PATH text, owned until taken */
	int depth;
	pwb_diag *diag;
	pwb_status rc; /* the first failure; only it is reported */
} parser;

static void fail(parser *p, size_t pos, const char *fmt, const char *arg)
{
	if (p->rc)
		return;
	p->rc = PWB_EPARSE;
	pwb_diag_add(p->diag, NULL, 0, (int)pos + 1, fmt, arg);
}

static void oom(parser *p)
{
	if (!p->rc) {
		p->rc = PWB_ENOMEM;
		pwb_diag_add(p->diag, NULL, 0, 0, "out of memory");
	}
}

static const char *tok_text(tok_kind k)
{
	static const char *const names[] = {"end of condition",
					    "attribute",
					    "number",
					    "string",
					    "true",
					    "false",
					    "null",
					    "'&&'",
					    "'||'",
					    "'!'",
					    "'=='",
					    "'!='",
					    "'<'",
					    "'<='",
					    "'>'",
					    "'>='",
					    "'in'",
					    "'('",
					    "')'",
					    "'['",
					    "']'",
					    "','",
					    "invalid character"};
	return names[k];
}

static bool is_ident_start(int c)
{
	return isalpha(c) || c == '_';
}

static bool is_ident(int c)
{
	return isalnum(c) || c == '_';
}

static void lex_string(parser *p)
{
	char q = p->src[p->pos];
	size_t start = p->pos++;
	pwb__buf b;
	pwb__buf_init(&b, PWB__COND_MAX_LEN);
	for (;;) {
		char c = p->src[p->pos];
		if (c == '\0') {
			pwb__buf_release(&b);
			fail(p, start, "unterminated string%s", "");
			p->tok = T_ERR;
			return;
		}
		p->pos++;
		if (c == q)
			break;
		if (c == '\\') {
			char e = p->src[p->pos];
			if (e == '\\' || e == '"' || e == '\'') {
				pwb__buf_addc(&b, e);
				p->pos++;
				continue;
			}
			if (e == 'n') {
				pwb__buf_addc(&b, '\n');
				p->pos++;
				continue;
			}
			pwb__buf_release(&b);
			fail(p, p->pos - 1, "unknown escape in string%s", "");
			p->tok = T_ERR;
			return;
		}
		pwb__buf_addc(&b, c);
	}
	p->str = pwb__buf_detach(&b);
	if (!p->str) {
		oom(p);
		p->tok = T_ERR;
		return;
	}
	p->tok = T_STR;
}

static void next(parser *p)
{
	free(p->str);
	p->str = NULL;
	while (p->src[p->pos] == ' ' || p->src[p->pos] == '\t' ||
	       p->src[p->pos] == '\n' || p->src[p->pos] == '\r')
		p->pos++;
	p->tok_pos = p->pos;
	const char *s = p->src + p->pos;
	char c = *s;
	if (c == '\0') {
		p->tok = T_END;
		return;
	}
	static const struct {
		const char *text;
		tok_kind kind;
	} ops[] = {
	    {"&&", T_AND},   {"||", T_OR},    {"==", T_EQ},    {"!=", T_NE},
	    {"<=", T_LE},    {">=", T_GE},    {"<", T_LT},     {">", T_GT},
	    {"!", T_NOT},    {"(", T_LPAREN}, {")", T_RPAREN}, {"[", T_LBRACK},
	    {"]", T_RBRACK}, {",", T_COMMA},
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(ops); i++) {
		size_t n = strlen(ops[i].text);
		if (strncmp(s, ops[i].text, n) == 0) {
			p->tok = ops[i].kind;
			p->pos += n;
			p->tok_len = n;
			return;
		}
	}
	if (c == '"' || c == '\'') {
		lex_string(p);
		return;
	}
	if (isdigit((unsigned char)c) ||
	    (c == '-' && isdigit((unsigned char)s[1])) ||
	    (c == '.' && isdigit((unsigned char)s[1]))) {
		char *end;
		errno = 0;
		double v = strtod(s, &end);
		if (errno == ERANGE || !isfinite(v) ||
		    is_ident((unsigned char)*end) || *end == '.') {
			fail(p, p->pos, "malformed number%s", "");
			p->tok = T_ERR;
			return;
		}
		p->num = v;
		p->tok = T_NUM;
		p->pos += (size_t)(end - s);
		return;
	}
	if (is_ident_start((unsigned char)c)) {
		size_t n = 0;
		for (;;) {
			while (is_ident((unsigned char)s[n]))
				n++;
			if (s[n] == '.' &&
			    is_ident_start((unsigned char)s[n + 1])) {
				n++;
				continue;
			}
			break;
		}
		if (s[n] == '.') {
			fail(p, p->pos + n, "expected a name after '.'%s", "");
			p->tok = T_ERR;
			return;
		}
		p->pos += n;
		p->tok_len = n;
		if (n == 4 && strncmp(s, "true", 4) == 0)
			p->tok = T_TRUE;
		else if (n == 5 && strncmp(s, "false", 5) == 0)
			p->tok = T_FALSE;
		else if (n == 4 && strncmp(s, "null", 4) == 0)
			p->tok = T_NULL;
		else if (n == 2 && strncmp(s, "in", 2) == 0)
			p->tok = T_IN;
		else if (n == 3 && strncmp(s, "and", 3) == 0) {
			fail(p, p->tok_pos, "use '&&' for and%s", "");
			p->tok = T_ERR;
		} else if (n == 2 && strncmp(s, "or", 2) == 0) {
			fail(p, p->tok_pos, "use '||' for or%s", "");
			p->tok = T_ERR;
		} else {
			p->str = pwb__strndup(s, n);
			if (!p->str) {
				oom(p);
				p->tok = T_ERR;
				return;
			}
			p->tok = T_PATH;
		}
		return;
	}
	if (c == '=') {
		fail(p, p->pos, "use '==' to compare%s", "");
	} else if (c == '&' || c == '|') {
		fail(p, p->pos, "use '&&' and '||'%s", "");
	} else {
		char what[8];
		if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
			snprintf(what, sizeof(what), "'%c'", c);
		else
			snprintf(what, sizeof(what), "0x%02x",
				 (unsigned char)c);
		fail(p, p->pos, "unexpected character %s", what);
	}
	p->tok = T_ERR;
}

/* ---- parser ---- */

static pwb__cond *node(parser *p, pwb__cond_kind k, size_t pos)
{
	pwb__cond *c = pwb__calloc(1, sizeof(*c));
	if (!c) {
		oom(p);
		return NULL;
	}
	c->kind = k;
	c->pos = (int)pos;
	return c;
}

void pwb__cond_free(pwb__cond *c)
{
	if (!c)
		return;
	pwb__cond_free(c->a);
	pwb__cond_free(c->b);
	pwb__value_release(&c->lit);
	free(c->path);
	free(c);
}

static void expected(parser *p, const char *what)
{
	char msg[96];
	snprintf(msg, sizeof(msg), "expected %s, found %s", what,
		 tok_text(p->tok));
	fail(p, p->tok_pos, "%s", msg);
}

static bool valid_path(const char *s)
{
	return (strncmp(s, "user.", 5) == 0 || strncmp(s, "org.", 4) == 0 ||
		strncmp(s, "request.", 8) == 0);
}

static pwb_status literal(parser *p, pwb__value *v)
{
	memset(v, 0, sizeof(*v));
	switch (p->tok) {
	case T_NUM:
		v->type = PWB_VAL_NUMBER;
		v->num = p->num;
		break;
	case T_STR:
		v->type = PWB_VAL_STRING;
		v->str = p->str;
		p->str = NULL;
		break;
	case T_TRUE:
	case T_FALSE:
		v->type = PWB_VAL_BOOL;
		v->b = p->tok == T_TRUE;
		break;
	case T_NULL:
		v->type = PWB_VAL_NULL;
		break;
	default:
		expected(p, "a number, string, true, false or null");
		return PWB_EPARSE;
	}
	next(p);
	return PWB_OK;
}

static pwb__cond *parse_or(parser *p);

static pwb__cond *parse_primary(parser *p)
{
	size_t pos = p->tok_pos;
	pwb__cond *c = NULL;
	switch (p->tok) {
	case T_LPAREN:
		if (++p->depth > PWB__COND_MAX_DEPTH) {
			fail(p, pos, "condition nested too deeply%s", "");
			return NULL;
		}
		next(p);
		c = parse_or(p);
		if (!c)
			return NULL;
		if (p->tok != T_RPAREN) {
			expected(p, "')'");
			pwb__cond_free(c);
			return NULL;
		}
		p->depth--;
		next(p);
		return c;
	case T_PATH:
		if (!valid_path(p->str)) {
			fail(p, pos,
			     "'%s' is not an attribute: attributes start "
			     "with user., org. or request.",
			     p->str);
			return NULL;
		}
		if (!(c = node(p, PWB__C_PATH, pos)))
			return NULL;
		c->path = p->str;
		p->str = NULL;
		next(p);
		return c;
	case T_LBRACK: {
		if (!(c = node(p, PWB__C_LIT, pos)))
			return NULL;
		c->lit.type = PWB_VAL_LIST;
		size_t cap = 0;
		next(p);
		while (p->tok != T_RBRACK) {
			if (c->lit.n > 0) {
				if (p->tok != T_COMMA) {
					expected(p, "',' or ']'");
					pwb__cond_free(c);
					return NULL;
				}
				next(p);
			}
			if (pwb__grow((void **)&c->lit.items, &cap,
				      c->lit.n + 1, sizeof(pwb__value))) {
				oom(p);
				pwb__cond_free(c);
				return NULL;
			}
			if (literal(p, &c->lit.items[c->lit.n])) {
				pwb__cond_free(c);
				return NULL;
			}
			c->lit.n++;
		}
		next(p);
		return c;
	}
	case T_NUM:
	case T_STR:
	case T_TRUE:
	case T_FALSE:
	case T_NULL:
		if (!(c = node(p, PWB__C_LIT, pos)))
			return NULL;
		if (literal(p, &c->lit)) {
			pwb__cond_free(c);
			return NULL;
		}
		return c;
	default:
		expected(p, "an attribute, a literal or '('");
		return NULL;
	}
}

static pwb__cond *parse_cmp(parser *p)
{
	pwb__cond *l = parse_primary(p);
	if (!l)
		return NULL;
	pwb__cmp_op op;
	switch (p->tok) {
	case T_EQ:
		op = PWB__OP_EQ;
		break;
	case T_NE:
		op = PWB__OP_NE;
		break;
	case T_LT:
		op = PWB__OP_LT;
		break;
	case T_LE:
		op = PWB__OP_LE;
		break;
	case T_GT:
		op = PWB__OP_GT;
		break;
	case T_GE:
		op = PWB__OP_GE;
		break;
	case T_IN:
		op = PWB__OP_IN;
		break;
	default:
		return l;
	}
	size_t pos = p->tok_pos;
	next(p);
	pwb__cond *r = parse_primary(p);
	if (!r) {
		pwb__cond_free(l);
		return NULL;
	}
	pwb__cond *c = node(p, PWB__C_CMP, pos);
	if (!c) {
		pwb__cond_free(l);
		pwb__cond_free(r);
		return NULL;
	}
	c->op = op;
	c->a = l;
	c->b = r;
	if (op == PWB__OP_IN &&
	    !(r->kind == PWB__C_LIT && r->lit.type == PWB_VAL_LIST) &&
	    r->kind != PWB__C_PATH) {
		fail(p, (size_t)r->pos, "'in' needs a list on its right%s", "");
		pwb__cond_free(c);
		return NULL;
	}
	switch (p->tok) {
	case T_EQ:
	case T_NE:
	case T_LT:
	case T_LE:
	case T_GT:
	case T_GE:
	case T_IN:
		fail(p, p->tok_pos,
		     "comparisons do not chain; use '&&' and parentheses%s",
		     "");
		pwb__cond_free(c);
		return NULL;
	default:
		break;
	}
	return c;
}

static pwb__cond *parse_unary(parser *p)
{
	if (p->tok != T_NOT)
		return parse_cmp(p);
	size_t pos = p->tok_pos;
	if (++p->depth > PWB__COND_MAX_DEPTH) {
		fail(p, pos, "condition nested too deeply%s", "");
		return NULL;
	}
	next(p);
	pwb__cond *a = parse_unary(p);
	p->depth--;
	if (!a)
		return NULL;
	pwb__cond *c = node(p, PWB__C_NOT, pos);
	if (!c) {
		pwb__cond_free(a);
		return NULL;
	}
	c->a = a;
	return c;
}

static pwb__cond *parse_binary(parser *p, tok_kind t, pwb__cond_kind k,
			       pwb__cond *(*sub)(parser *))
{
	pwb__cond *l = sub(p);
	while (l && p->tok == t) {
		size_t pos = p->tok_pos;
		next(p);
		pwb__cond *r = sub(p);
		if (!r) {
			pwb__cond_free(l);
			return NULL;
		}
		pwb__cond *c = node(p, k, pos);
		if (!c) {
			pwb__cond_free(l);
			pwb__cond_free(r);
			return NULL;
		}
		c->a = l;
		c->b = r;
		l = c;
	}
	return l;
}

static pwb__cond *parse_and(parser *p)
{
	return parse_binary(p, T_AND, PWB__C_AND, parse_unary);
}

static pwb__cond *parse_or(parser *p)
{
	return parse_binary(p, T_OR, PWB__C_OR, parse_and);
}

pwb_status pwb__cond_parse(pwb__cond **out, const char *src, pwb_diag *diag)
{
	*out = NULL;
	parser p = {.src = src, .diag = diag};
	size_t len = strlen(src);
	if (len > PWB__COND_MAX_LEN) {
		pwb_diag_add(diag, NULL, 0, 1,
			     "condition too long (%zu characters; the limit is "
			     "%d)",
			     len, PWB__COND_MAX_LEN);
		return PWB_EPARSE;
	}
	next(&p);
	pwb__cond *c = NULL;
	if (p.tok == T_END && !p.rc)
		fail(&p, 0, "empty condition%s", "");
	else if (!p.rc)
		c = parse_or(&p);
	if (c && !p.rc && p.tok != T_END)
		expected(&p, "'&&', '||' or the end");
	free(p.str);
	if (p.rc) {
		pwb__cond_free(c);
		return p.rc;
	}
	*out = c;
	return PWB_OK;
}

/* ---- evaluation ---- */

const pwb__value *pwb__attrs_get(const pwb_attrs *a, const char *key)
{
	if (!a)
		return NULL;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].key, key) == 0)
			return &a->v[i].val;
	return NULL;
}

static const pwb__value null_value = {.type = PWB_VAL_NULL};

static const pwb__value *operand(const pwb__cond *c, const pwb_attrs *attrs)
{
	if (c->kind == PWB__C_LIT)
		return &c->lit;
	if (c->kind == PWB__C_PATH) {
		const pwb__value *v = pwb__attrs_get(attrs, c->path);
		return v ? v : &null_value;
	}
	return NULL;
}

static bool value_eq(const pwb__value *a, const pwb__value *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case PWB_VAL_BOOL:
		return a->b == b->b;
	case PWB_VAL_NUMBER:
		return a->num == b->num;
	case PWB_VAL_STRING:
		return strcmp(a->str, b->str) == 0;
	case PWB_VAL_LIST:
		if (a->n != b->n)
			return false;
		for (size_t i = 0; i < a->n; i++)
			if (!value_eq(&a->items[i], &b->items[i]))
				return false;
		return true;
	case PWB_VAL_NULL:
		return false;
	}
	return false;
}

static bool compare(pwb__cmp_op op, const pwb__value *a, const pwb__value *b)
{
	if (a->type == PWB_VAL_NULL || b->type == PWB_VAL_NULL)
		return false;
	switch (op) {
	case PWB__OP_EQ:
		return value_eq(a, b);
	case PWB__OP_NE:
		return !value_eq(a, b);
	case PWB__OP_IN:
		if (b->type != PWB_VAL_LIST)
			return false;
		for (size_t i = 0; i < b->n; i++)
			if (value_eq(a, &b->items[i]))
				return true;
		return false;
	default:
		break;
	}
	int cmp;
	if (a->type == PWB_VAL_NUMBER && b->type == PWB_VAL_NUMBER) {
		if (a->num != a->num || b->num != b->num)
			return false;
		cmp = a->num < b->num ? -1 : a->num > b->num ? 1 : 0;
	} else if (a->type == PWB_VAL_STRING && b->type == PWB_VAL_STRING) {
		cmp = strcmp(a->str, b->str);
	} else {
		return false;
	}
	switch (op) {
	case PWB__OP_LT:
		return cmp < 0;
	case PWB__OP_LE:
		return cmp <= 0;
	case PWB__OP_GT:
		return cmp > 0;
	case PWB__OP_GE:
		return cmp >= 0;
	default:
		return false;
	}
}

bool pwb__cond_eval(const pwb__cond *c, const pwb_attrs *attrs)
{
	switch (c->kind) {
	case PWB__C_LIT:
		return c->lit.type == PWB_VAL_BOOL && c->lit.b;
	case PWB__C_PATH: {
		const pwb__value *v = operand(c, attrs);
		return v->type == PWB_VAL_BOOL && v->b;
	}
	case PWB__C_NOT:
		return !pwb__cond_eval(c->a, attrs);
	case PWB__C_AND:
		return pwb__cond_eval(c->a, attrs) &&
		       pwb__cond_eval(c->b, attrs);
	case PWB__C_OR:
		return pwb__cond_eval(c->a, attrs) ||
		       pwb__cond_eval(c->b, attrs);
	case PWB__C_CMP: {
		const pwb__value *a = operand(c->a, attrs);
		const pwb__value *b = operand(c->b, attrs);
		/* A nested boolean as an operand: compare its truth value. */
		pwb__value ta = {.type = PWB_VAL_BOOL}, tb = ta;
		if (!a) {
			ta.b = pwb__cond_eval(c->a, attrs);
			a = &ta;
		}
		if (!b) {
			tb.b = pwb__cond_eval(c->b, attrs);
			b = &tb;
		}
		return compare(c->op, a, b);
	}
	}
	return false;
}

/* ---- canonical form and implication ---- */

static const char *op_text(pwb__cmp_op op)
{
	static const char *const t[] = {"==", "!=", "<", "<=", ">", ">=", "in"};
	return t[op];
}

void pwb__cond_canon(const pwb__cond *c, pwb__buf *b)
{
	switch (c->kind) {
	case PWB__C_LIT:
		pwb__value_canon(&c->lit, b);
		break;
	case PWB__C_PATH:
		pwb__buf_adds(b, c->path);
		break;
	case PWB__C_NOT:
		/* Parenthesised as a whole, so that a negation used as an
		 * operand of a comparison reads unambiguously. */
		pwb__buf_adds(b, "(!");
		pwb__cond_canon(c->a, b);
		pwb__buf_addc(b, ')');
		break;
	case PWB__C_AND:
	case PWB__C_OR:
	case PWB__C_CMP:
		pwb__buf_addc(b, '(');
		pwb__cond_canon(c->a, b);
		pwb__buf_addf(b, " %s ",
			      c->kind == PWB__C_AND  ? "&&"
			      : c->kind == PWB__C_OR ? "||"
						     : op_text(c->op));
		pwb__cond_canon(c->b, b);
		pwb__buf_addc(b, ')');
		break;
	}
}

/* Does the &&-tree `a` contain a term whose canonical text is `term`? */
static bool has_term(const pwb__cond *a, const char *term)
{
	if (a->kind == PWB__C_AND)
		return has_term(a->a, term) || has_term(a->b, term);
	pwb__buf b;
	pwb__buf_init(&b, 0);
	pwb__cond_canon(a, &b);
	bool eq = b.s && strcmp(b.s, term) == 0;
	pwb__buf_release(&b);
	return eq;
}

static bool all_terms_in(const pwb__cond *b, const pwb__cond *a)
{
	if (b->kind == PWB__C_AND)
		return all_terms_in(b->a, a) && all_terms_in(b->b, a);
	pwb__buf t;
	pwb__buf_init(&t, 0);
	pwb__cond_canon(b, &t);
	bool ok = t.s && has_term(a, t.s);
	pwb__buf_release(&t);
	return ok;
}

bool pwb__cond_implies(const pwb__cond *a, const pwb__cond *b)
{
	if (!b)
		return true;
	if (!a)
		return false;
	return all_terms_in(b, a);
}

/* ---- static checks ---- */

typedef struct checker {
	pwb__attr_type_fn type_of;
	pwb__cond_report_fn report;
	void *ud;
} checker;

/* The static type of an operand: a path's declared type, a literal's own;
 * returns false when unknown (an unknown path was already reported). */
static bool static_type(checker *ck, const pwb__cond *c, pwb_value_type *t)
{
	if (c->kind == PWB__C_LIT) {
		*t = c->lit.type;
		return true;
	}
	if (c->kind == PWB__C_PATH)
		return ck->type_of(ck->ud, c->path, t);
	*t = PWB_VAL_BOOL;
	return true;
}

static void check_node(checker *ck, const pwb__cond *c)
{
	char msg[256];
	switch (c->kind) {
	case PWB__C_PATH: {
		pwb_value_type t;
		if (!ck->type_of(ck->ud, c->path, &t)) {
			/* type_of reports unknown paths itself (with a
			 * suggestion); nothing more to say here. */
		}
		break;
	}
	case PWB__C_NOT:
		check_node(ck, c->a);
		break;
	case PWB__C_AND:
	case PWB__C_OR:
		check_node(ck, c->a);
		check_node(ck, c->b);
		break;
	case PWB__C_CMP: {
		/* Operands are values here, not conditions of their own;
		 * static_type() looks paths up (and reports unknown ones). */
		if (c->a->kind != PWB__C_LIT && c->a->kind != PWB__C_PATH)
			check_node(ck, c->a);
		if (c->b->kind != PWB__C_LIT && c->b->kind != PWB__C_PATH)
			check_node(ck, c->b);
		pwb_value_type ta, tb;
		if (!static_type(ck, c->a, &ta) || !static_type(ck, c->b, &tb))
			break;
		if (ta == PWB_VAL_NULL || tb == PWB_VAL_NULL) {
			ck->report(ck->ud, c->pos,
				   "comparing with null is always false; "
				   "an unset attribute is already null");
			break;
		}
		if (c->op == PWB__OP_IN) {
			if (tb != PWB_VAL_LIST) {
				snprintf(msg, sizeof(msg),
					 "'in' needs a list on its right, "
					 "not a %s",
					 pwb__value_type_name(tb));
				ck->report(ck->ud, c->b->pos, msg);
			} else if (c->b->kind == PWB__C_LIT) {
				for (size_t i = 0; i < c->b->lit.n; i++) {
					if (c->b->lit.items[i].type == ta)
						continue;
					snprintf(msg, sizeof(msg),
						 "list element %zu is a %s, "
						 "the left side a %s",
						 i + 1,
						 pwb__value_type_name(
						     c->b->lit.items[i].type),
						 pwb__value_type_name(ta));
					ck->report(ck->ud, c->b->pos, msg);
					break;
				}
			}
			break;
		}
		if (ta != tb) {
			snprintf(msg, sizeof(msg),
				 "compares a %s with a %s; the result is "
				 "always %s",
				 pwb__value_type_name(ta),
				 pwb__value_type_name(tb),
				 c->op == PWB__OP_NE ? "true" : "false");
			ck->report(ck->ud, c->pos, msg);
			break;
		}
		if (c->op != PWB__OP_EQ && c->op != PWB__OP_NE &&
		    ta != PWB_VAL_NUMBER && ta != PWB_VAL_STRING) {
			snprintf(msg, sizeof(msg),
				 "'%s' orders numbers and strings, not a %s",
				 op_text(c->op), pwb__value_type_name(ta));
			ck->report(ck->ud, c->pos, msg);
		}
		break;
	}
	case PWB__C_LIT:
		if (c->lit.type != PWB_VAL_BOOL) {
			snprintf(msg, sizeof(msg),
				 "a %s on its own is not a condition",
				 pwb__value_type_name(c->lit.type));
			ck->report(ck->ud, c->pos, msg);
		}
		break;
	}
}

void pwb__cond_check(const pwb__cond *c, pwb__attr_type_fn type_of,
		     pwb__cond_report_fn report, void *ud)
{
	checker ck = {type_of, report, ud};
	check_node(&ck, c);
}

/* ---- attributes ---- */

pwb_status pwb__value_from_text(pwb__value *out, const char *text)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(text, "null") == 0) {
		out->type = PWB_VAL_NULL;
		return PWB_OK;
	}
	if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) {
		out->type = PWB_VAL_BOOL;
		out->b = text[0] == 't';
		return PWB_OK;
	}
	/* A JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
	const char *s = text;
	if (*s == '-')
		s++;
	bool json_num = false;
	if (*s == '0' || (*s >= '1' && *s <= '9')) {
		if (*s == '0')
			s++;
		else
			while (isdigit((unsigned char)*s))
				s++;
		json_num = true;
		if (*s == '.') {
			s++;
			json_num = isdigit((unsigned char)*s);
			while (isdigit((unsigned char)*s))
				s++;
		}
		if (json_num && (*s == 'e' || *s == 'E')) {
			s++;
			if (*s == '+' || *s == '-')
				s++;
			json_num = isdigit((unsigned char)*s);
			while (isdigit((unsigned char)*s))
				s++;
		}
		json_num = json_num && *s == '\0';
	}
	if (json_num) {
		errno = 0;
		double v = strtod(text, NULL);
		if (errno != ERANGE && isfinite(v)) {
			out->type = PWB_VAL_NUMBER;
			out->num = v;
			return PWB_OK;
		}
	}
	size_t len = strlen(text);
	out->type = PWB_VAL_STRING;
	/* A JSON string literal: take its content (simple escapes only). */
	if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
		pwb__buf b;
		pwb__buf_init(&b, 0);
		for (size_t i = 1; i + 1 < len; i++) {
			if (text[i] == '\\' && i + 2 < len)
				i++;
			pwb__buf_addc(&b, text[i]);
		}
		out->str = pwb__buf_detach(&b);
	} else {
		out->str = pwb__strdup(text);
	}
	return out->str ? PWB_OK : PWB_ENOMEM;
}

pwb_status pwb_attrs_text(const pwb_attrs *a, const char *key, char *buf,
			  size_t size)
{
	const pwb__value *v = a && key ? pwb__attrs_get(a, key) : NULL;
	if (size)
		buf[0] = '\0';
	if (!v || v->type == PWB_VAL_NULL || v->type == PWB_VAL_LIST)
		return PWB_ENOTFOUND;
	int n = 0;
	if (v->type == PWB_VAL_STRING)
		n = snprintf(buf, size, "%s", v->str);
	else if (v->type == PWB_VAL_NUMBER)
		n = snprintf(buf, size, "%.15g", v->num);
	else
		n = snprintf(buf, size, "%s", v->b ? "true" : "false");
	if (n < 0 || (size_t)n >= size) {
		if (size)
			buf[0] = '\0';
		return PWB_ETOOLARGE;
	}
	return PWB_OK;
}

pwb_status pwb_attrs_new(pwb_attrs **out)
{
	*out = pwb__calloc(1, sizeof(**out));
	return *out ? PWB_OK : PWB_ENOMEM;
}

void pwb_attrs_free(pwb_attrs *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].key);
		pwb__value_release(&a->v[i].val);
	}
	free(a->v);
	free(a);
}

/* Takes ownership of *v whether it succeeds or not. */
static pwb_status attrs_put(pwb_attrs *a, const char *key, pwb__value *v)
{
	if (!a || !key || !*key) {
		pwb__value_release(v);
		return PWB_EINVAL;
	}
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->v[i].key, key) == 0) {
			pwb__value_release(&a->v[i].val);
			a->v[i].val = *v;
			return PWB_OK;
		}
	}
	char *k = pwb__strdup(key);
	if (!k || pwb__grow((void **)&a->v, &a->cap, a->n + 1, sizeof(*a->v))) {
		free(k);
		pwb__value_release(v);
		return PWB_ENOMEM;
	}
	a->v[a->n].key = k;
	a->v[a->n].val = *v;
	a->n++;
	return PWB_OK;
}

pwb_status pwb_attrs_set_null(pwb_attrs *a, const char *key)
{
	pwb__value v = {.type = PWB_VAL_NULL};
	return attrs_put(a, key, &v);
}

pwb_status pwb_attrs_set_bool(pwb_attrs *a, const char *key, bool b)
{
	pwb__value v = {.type = PWB_VAL_BOOL, .b = b};
	return attrs_put(a, key, &v);
}

pwb_status pwb_attrs_set_number(pwb_attrs *a, const char *key, double x)
{
	if (!isfinite(x))
		return PWB_EINVAL;
	pwb__value v = {.type = PWB_VAL_NUMBER, .num = x};
	return attrs_put(a, key, &v);
}

pwb_status pwb_attrs_set_string(pwb_attrs *a, const char *key, const char *s)
{
	pwb__value v = {.type = PWB_VAL_STRING, .str = pwb__strdup(s)};
	if (!v.str)
		return PWB_ENOMEM;
	return attrs_put(a, key, &v);
}

pwb_status pwb_attrs_set_text(pwb_attrs *a, const char *key, const char *text)
{
	pwb__value v;
	pwb_status rc = pwb__value_from_text(&v, text);
	if (rc)
		return rc;
	return attrs_put(a, key, &v);
}
