/*
 * feedback.c - feedback events (DESIGN §4.3): one parser for JSONL files,
 * streamed or whole, and for single JSON bodies.
 */
#include "util/util.h"

#include "pwb/prefs.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PWB__FEEDBACK_MAX_LINE (16u * 1024 * 1024)
#define PWB__FEEDBACK_MAX_EVENTS 50000000
#define PWB__FEEDBACK_MAX_ID 256
#define PWB__FEEDBACK_MAX_ATTRS 64

struct pwb_feedback_set {
	pwb__arena arena;
	pwb_feedback *ev;
	size_t n, cap;
};

static const char *const role_names[] = {"", "end_user", "crowdworker",
					 "expert"};
static const char *const keys[] = {"user",     "prompt", "chosen", "rejected",
				   "response", "rating", "scale",  "ts",
				   "rater",    "id"};

const char *pwb_rater_role_name(pwb_rater_role r)
{
	return (unsigned)r < PWB_ARRAY_LEN(role_names) ? role_names[r] : "";
}

pwb_status pwb_feedback_set_new(pwb_feedback_set **out)
{
	*out = pwb__calloc(1, sizeof(**out));
	if (!*out)
		return PWB_ENOMEM;
	pwb__arena_init(&(*out)->arena);
	return PWB_OK;
}

void pwb_feedback_set_free(pwb_feedback_set *s)
{
	if (!s)
		return;
	pwb__arena_release(&s->arena);
	free(s->ev);
	free(s);
}

/* Empties the set and its strings, keeping the event array. */
static void set_clear(pwb_feedback_set *s)
{
	pwb__arena_release(&s->arena);
	pwb__arena_init(&s->arena);
	s->n = 0;
}

size_t pwb_feedback_n(const pwb_feedback_set *s)
{
	return s->n;
}

const pwb_feedback *pwb_feedback_get(const pwb_feedback_set *s, size_t i)
{
	return i < s->n ? &s->ev[i] : NULL;
}

/* The parse of one line: where it is and what it fills. */
typedef struct parse {
	pwb_feedback_set *s;
	const char *file;
	int line;
	pwb_diag *diag;
	bool oom;
} parse;

static pwb_status bad(parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static pwb_status bad(parse *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pwb_diag_add(p->diag, p->file, p->line, 1, "%s", msg);
	return PWB_EPARSE;
}

/* Reports running out of memory on the line being parsed. */
static pwb_status out_of_memory(parse *p)
{
	pwb_diag_add(p->diag, p->file, p->line, 0, "out of memory");
	return PWB_ENOMEM;
}

/* A copy of a JSON string in the set's arena. */
static const char *copy_str(parse *p, json_t *v)
{
	size_t n = json_string_length(v);
	char *t = pwb__arena_alloc(&p->s->arena, n + 1);
	if (!t) {
		p->oom = true;
		return NULL;
	}
	memcpy(t, json_string_value(v), n);
	t[n] = '\0';
	return t;
}

/*
 * A text field: absent (NULL, fine unless required), or a string, which
 * must not be empty when `nonempty`.
 */
static pwb_status text_field(parse *p, json_t *obj, const char *key,
			     bool nonempty, const char **out)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v)
		return PWB_OK;
	if (!json_is_string(v))
		return bad(p, "'%s' must be a string", key);
	if (nonempty && json_string_length(v) == 0)
		return bad(p, "'%s' is empty", key);
	*out = copy_str(p, v);
	return p->oom ? PWB_ENOMEM : PWB_OK;
}

static pwb_status parse_rater(parse *p, json_t *r, pwb_feedback *ev)
{
	if (!json_is_object(r))
		return bad(p, "'rater' must be an object with 'role' and "
			      "'attributes'");
	const char *key;
	json_t *v;
	json_object_foreach(r, key, v)
	{
		if (strcmp(key, "role") && strcmp(key, "attributes")) {
			static const char *const rk[] = {"role", "attributes"};
			return bad(p, "unknown key 'rater.%s'%s", key,
				   pwb__hint_for(key, rk, 2).text);
		}
	}
	json_t *role = json_object_get(r, "role");
	if (role) {
		const char *name = json_string_value(role);
		for (size_t i = 1; name && i < PWB_ARRAY_LEN(role_names); i++)
			if (!strcmp(name, role_names[i]))
				ev->rater_role = (pwb_rater_role)i;
		if (ev->rater_role == PWB_RATER_NONE)
			return bad(
			    p,
			    "'rater.role' must be \"end_user\", "
			    "\"crowdworker\" or \"expert\"%s",
			    name ? pwb__hint_for(name, role_names + 1, 3).text
				 : "");
	}
	json_t *attrs = json_object_get(r, "attributes");
	if (attrs) {
		if (!json_is_object(attrs))
			return bad(p, "'rater.attributes' must be an object");
		if (json_object_size(attrs) > PWB__FEEDBACK_MAX_ATTRS)
			return bad(p,
				   "'rater.attributes' has more than %d "
				   "keys",
				   PWB__FEEDBACK_MAX_ATTRS);
		json_object_foreach(attrs, key, v)
		{
			if (json_is_object(v) || json_is_array(v))
				return bad(p,
					   "'rater.attributes.%s' must be a "
					   "string, number or boolean",
					   key);
		}
		char *j = json_dumps(attrs, JSON_COMPACT | JSON_SORT_KEYS);
		if (!j) {
			p->oom = true;
			return PWB_ENOMEM;
		}
		ev->rater_attrs = pwb__arena_strdup(&p->s->arena, j, &p->oom);
		free(j);
		if (p->oom)
			return PWB_ENOMEM;
	}
	return PWB_OK;
}

static pwb_status parse_rating(parse *p, json_t *j, pwb_feedback *ev)
{
	json_t *rating = json_object_get(j, "rating");
	json_t *scale = json_object_get(j, "scale");
	if (!ev->response)
		return bad(p, "a rating needs the rated text in 'response'");
	if (!rating)
		return bad(p, "'response' needs a 'rating' (and a 'scale')");
	if (!json_is_number(rating))
		return bad(p, "'rating' must be a number");
	if (!scale)
		return bad(p, "'rating' needs a 'scale', e.g. [1, 5]");
	if (!json_is_array(scale) || json_array_size(scale) != 2 ||
	    !json_is_number(json_array_get(scale, 0)) ||
	    !json_is_number(json_array_get(scale, 1)))
		return bad(p, "'scale' must be two numbers [lowest, highest]");
	ev->kind = PWB_FEEDBACK_RATING;
	ev->rating = json_number_value(rating);
	ev->scale_lo = json_number_value(json_array_get(scale, 0));
	ev->scale_hi = json_number_value(json_array_get(scale, 1));
	if (!(ev->scale_lo < ev->scale_hi) ||
	    !isfinite(ev->scale_hi - ev->scale_lo))
		return bad(p,
			   "'scale' must go from low to high, within the range "
			   "of numbers, not [%g, %g]",
			   ev->scale_lo, ev->scale_hi);
	if (!(ev->rating >= ev->scale_lo && ev->rating <= ev->scale_hi))
		return bad(p, "'rating' %g is outside its scale [%g, %g]",
			   ev->rating, ev->scale_lo, ev->scale_hi);
	return PWB_OK;
}

static pwb_status parse_ts(parse *p, json_t *ts, pwb_feedback *ev)
{
	if (!ts)
		return PWB_OK;
	if (json_is_integer(ts)) {
		ev->ts = (int64_t)json_integer_value(ts);
	} else if (json_is_real(ts)) {
		double d = json_real_value(ts);
		/* 2^53: beyond it a double no longer holds every integer. */
		if (!(d == floor(d) && fabs(d) <= 9007199254740992.0))
			return bad(p, "'ts' must be a whole number (seconds "
				      "or any increasing count)");
		ev->ts = (int64_t)d;
	} else {
		return bad(p, "'ts' must be a number");
	}
	ev->has_ts = true;
	return PWB_OK;
}

static pwb_status parse_obj(parse *p, json_t *j, pwb_feedback *ev)
{
	if (!json_is_object(j))
		return bad(p, "a feedback event must be a JSON object");
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v)
	{
		bool known = false;
		for (size_t i = 0; i < PWB_ARRAY_LEN(keys) && !known; i++)
			known = !strcmp(key, keys[i]);
		if (!known)
			return bad(
			    p, "unknown key '%s'%s", key,
			    pwb__hint_for(key, keys, PWB_ARRAY_LEN(keys)).text);
	}
	pwb_status st;
	const char *user, *prompt, *id;
	if ((st = text_field(p, j, "user", true, &user)) ||
	    (st = text_field(p, j, "prompt", false, &prompt)) ||
	    (st = text_field(p, j, "id", true, &id)) ||
	    (st = text_field(p, j, "chosen", true, &ev->chosen)) ||
	    (st = text_field(p, j, "rejected", true, &ev->rejected)) ||
	    (st = text_field(p, j, "response", true, &ev->response)))
		return st;
	ev->user = user ? user : "";
	ev->prompt = prompt ? prompt : "";
	ev->id = id;
	if (id && strlen(id) > PWB__FEEDBACK_MAX_ID)
		return bad(p, "'id' is longer than %d bytes",
			   PWB__FEEDBACK_MAX_ID);
	if (user && strlen(user) > PWB__FEEDBACK_MAX_ID)
		return bad(p, "'user' is longer than %d bytes",
			   PWB__FEEDBACK_MAX_ID);
	bool pair = ev->chosen || ev->rejected;
	bool rated = ev->response || json_object_get(j, "rating") ||
		     json_object_get(j, "scale");
	if (pair && rated)
		return bad(p, "an event is either a pair ('chosen', "
			      "'rejected') or a rating ('response', 'rating', "
			      "'scale'), not both");
	if (pair) {
		if (!ev->chosen || !ev->rejected)
			return bad(p, "a pair needs both 'chosen' and "
				      "'rejected'");
		if (!strcmp(ev->chosen, ev->rejected))
			return bad(p, "'chosen' and 'rejected' are the same "
				      "text");
		ev->kind = PWB_FEEDBACK_PAIR;
	} else if (rated) {
		if ((st = parse_rating(p, j, ev)))
			return st;
	} else {
		return bad(p, "expected 'chosen' and 'rejected' (a pair), or "
			      "'response', 'rating' and 'scale' (a rating)");
	}
	if ((st = parse_ts(p, json_object_get(j, "ts"), ev)))
		return st;
	json_t *rater = json_object_get(j, "rater");
	if (rater && (st = parse_rater(p, rater, ev)))
		return st;
	return PWB_OK;
}

static pwb_status parse_into(parse *p, const char *json, size_t len)
{
	if (len > PWB__FEEDBACK_MAX_LINE)
		return bad(p, "line longer than %u bytes",
			   PWB__FEEDBACK_MAX_LINE);
	if (p->s->n >= PWB__FEEDBACK_MAX_EVENTS)
		return bad(p, "more than %d events", PWB__FEEDBACK_MAX_EVENTS);
	json_error_t err;
	json_t *j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
	if (!j) {
		pwb_diag_add(p->diag, p->file, p->line,
			     err.column > 0 ? err.column : 1,
			     "malformed JSON: %s", err.text);
		return PWB_EPARSE;
	}
	pwb_feedback ev;
	memset(&ev, 0, sizeof(ev));
	ev.line = p->line;
	pwb_status st = parse_obj(p, j, &ev);
	json_decref(j);
	if (p->oom)
		return out_of_memory(p);
	if (st)
		return st;
	if (pwb__grow((void **)&p->s->ev, &p->s->cap, p->s->n + 1, sizeof(ev)))
		return out_of_memory(p);
	p->s->ev[p->s->n++] = ev;
	return PWB_OK;
}

pwb_status pwb_feedback_parse(pwb_feedback_set *into, const char *json,
			      size_t len, const char *file, int line,
			      pwb_diag *diag)
{
	parse p = {into, file, line, diag, false};
	return parse_into(&p, json, len);
}

/* ---- streaming ---- */

struct pwb_feedback_reader {
	FILE *f;
	bool own; /* close f at the end (not stdin) */
	char *path;
	char *buf;
	size_t cap;
	int line;
	uint64_t read, total;
	pwb_feedback_set *cur; /* holds the strings of the last event */
};

pwb_status pwb_feedback_open(pwb_feedback_reader **out, const char *path,
			     pwb_diag *diag)
{
	*out = NULL;
	pwb_feedback_reader *r = pwb__calloc(1, sizeof(*r));
	if (!r || !(r->path = pwb__strdup(path)) ||
	    pwb_feedback_set_new(&r->cur)) {
		pwb_feedback_close(r);
		pwb_diag_add(diag, path, 0, 0, "out of memory");
		return PWB_ENOMEM;
	}
	if (!strcmp(path, "-")) {
		r->f = stdin;
	} else {
		struct stat st;
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			pwb_diag_add(diag, path, 0, 0,
				     "is a folder, not a JSONL file");
			pwb_feedback_close(r);
			return PWB_EIO;
		}
		r->f = fopen(path, "r");
		if (!r->f) {
			pwb_diag_add(diag, path, 0, 0, "cannot read: %s",
				     strerror(errno));
			pwb_feedback_close(r);
			return PWB_EIO;
		}
		r->own = true;
	}
	struct stat st;
	if (fstat(fileno(r->f), &st) == 0 && S_ISREG(st.st_mode))
		r->total = (uint64_t)st.st_size;
	*out = r;
	return PWB_OK;
}

/*
 * Reads the next line that is not blank into r->buf (its length without
 * the line end in *len), or sets *done at the end of the input.
 */
static pwb_status next_line(pwb_feedback_reader *r, size_t *len, bool *done,
			    pwb_diag *diag)
{
	*done = false;
	for (;;) {
		size_t l;
		bool too_long;
		ssize_t n =
		    pwb__read_line(r->f, &r->buf, &r->cap,
				   PWB__FEEDBACK_MAX_LINE, &l, &too_long);
		if (n < 0) {
			int e = errno ? errno : EIO;
			if (e == EFBIG) {
				pwb_diag_add(
				    diag, r->path, r->line + 1, 0,
				    "a line of more than %u MiB with "
				    "no end; reading stops here",
				    (unsigned)((PWB__FEEDBACK_MAX_LINE +
						PWB__LINE_SKIP_MAX) >>
					       20));
				return PWB_ETOOLARGE;
			}
			pwb_diag_add(diag, r->path, r->line + 1, 0,
				     "read error: %s", strerror(e));
			return e == ENOMEM ? PWB_ENOMEM : PWB_EIO;
		}
		if (n == 0) {
			*done = true;
			return PWB_OK;
		}
		r->line++;
		r->read += (uint64_t)n;
		if (too_long) {
			/* Kept only up to the cap: parse_into() refuses it. */
			*len = PWB__FEEDBACK_MAX_LINE + 1;
			return PWB_OK;
		}
		while (l && (r->buf[l - 1] == '\n' || r->buf[l - 1] == '\r'))
			l--;
		for (size_t i = 0; i < l; i++) {
			if (r->buf[i] != ' ' && r->buf[i] != '\t') {
				*len = l;
				return PWB_OK;
			}
		}
		/* blank lines separate nothing */
	}
}

pwb_status pwb_feedback_next(pwb_feedback_reader *r, pwb_feedback *ev,
			     bool *done, pwb_diag *diag)
{
	set_clear(r->cur);
	size_t len;
	pwb_status st = next_line(r, &len, done, diag);
	if (st || *done)
		return st;
	parse p = {r->cur, r->path, r->line, diag, false};
	if ((st = parse_into(&p, r->buf, len)))
		return st;
	*ev = r->cur->ev[0];
	return PWB_OK;
}

uint64_t pwb_feedback_bytes_read(const pwb_feedback_reader *r)
{
	return r->read;
}

uint64_t pwb_feedback_bytes_total(const pwb_feedback_reader *r)
{
	return r->total;
}

int pwb_feedback_line(const pwb_feedback_reader *r)
{
	return r->line;
}

void pwb_feedback_close(pwb_feedback_reader *r)
{
	if (!r)
		return;
	if (r->f && r->own)
		fclose(r->f);
	free(r->buf);
	free(r->path);
	pwb_feedback_set_free(r->cur);
	free(r);
}

/* ---- whole files ---- */

pwb_status pwb_feedback_load(pwb_feedback_set **out, const char *path,
			     pwb_diag *diag)
{
	*out = NULL;
	pwb_feedback_reader *r;
	pwb_status st = pwb_feedback_open(&r, path, diag);
	if (st)
		return st;
	pwb_feedback_set *s;
	if (pwb_feedback_set_new(&s)) {
		pwb_feedback_close(r);
		pwb_diag_add(diag, path, 0, 0, "out of memory");
		return PWB_ENOMEM;
	}
	pwb_status rc = PWB_OK;
	for (;;) {
		size_t len;
		bool done;
		pwb_status lst = next_line(r, &len, &done, diag);
		if (lst || done) {
			rc = lst ? lst : rc;
			break;
		}
		/* Straight into s: its arena keeps every event's strings. */
		parse p = {s, r->path, r->line, diag, false};
		lst = parse_into(&p, r->buf, len);
		if (lst == PWB_ENOMEM) {
			rc = lst;
			break;
		}
		if (lst && !rc)
			rc = lst;
	}
	pwb_feedback_close(r);
	if (rc) {
		pwb_feedback_set_free(s);
		return rc;
	}
	*out = s;
	return PWB_OK;
}
