/*
 * sweep.c - the threshold sweep of `pwb eval bounds --sweep` and its
 * precision-recall curve as SVG (docs/EVALUATION.md).
 *
 * Each text gets one number: the largest score/threshold over the
 * categories the org would block (the detector each category reports,
 * which ranks fired detectors first, so a text is blocked exactly when
 * that number is >= 1). Scaling every threshold by m then blocks exactly
 * the texts whose number is >= m, so one pass over the data gives the
 * whole curve. m = 1 is the operating point as trained and configured;
 * the curve shows what other thresholds would give and is never used to
 * choose them (that happens on validation data, in `pwb bounds train`).
 */
#include "cli/sweep.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

#define SWEEP_LO_PCT 10
#define SWEEP_STEP_PCT 5
#define SWEEP_N 39 /* 0.10, 0.15, ..., 2.00 */

bool cli_sweep_add(cli_sweep *w, const pwb_decision *d, bool unsafe)
{
	double s = 0;
	for (size_t c = 0; c < pwb_decision_n_categories(d); c++) {
		const pwb_cat_decision *cd = pwb_decision_category(d, c);
		if (!cd->detector || !strcmp(cd->detector, "pii") ||
		    pwb_permission_on(cd->permission, cd->active ? 1 : 0))
			continue;
		double r = cd->threshold > 0 ? cd->score / cd->threshold
					     : (cd->score > 0 ? 1e9 : 0);
		if (r > s)
			s = r;
	}
	if (pwb__grow((void **)&w->score, &w->cap, w->n + 1,
		      sizeof(*w->score)) ||
	    pwb__grow((void **)&w->unsafe, &w->cap_unsafe, w->n + 1,
		      sizeof(*w->unsafe)))
		return false;
	w->score[w->n] = s;
	w->unsafe[w->n] = unsafe;
	w->n++;
	return true;
}

void cli_sweep_release(cli_sweep *w)
{
	free(w->score);
	free(w->unsafe);
	memset(w, 0, sizeof(*w));
}

static json_t *maybe(size_t a, size_t b)
{
	return b ? json_real((double)a / (double)b) : json_null();
}

json_t *cli_sweep_json(const cli_sweep *w)
{
	json_t *pts = json_array();
	if (!pts)
		return NULL;
	for (int k = 0; k < SWEEP_N; k++) {
		double m = (SWEEP_LO_PCT + SWEEP_STEP_PCT * k) / 100.0;
		size_t tp = 0, fp = 0, fn = 0, tn = 0;
		for (size_t i = 0; i < w->n; i++) {
			bool blocked = w->score[i] >= m - 1e-9;
			if (w->unsafe[i])
				blocked ? tp++ : fn++;
			else
				blocked ? fp++ : tn++;
		}
		json_t *p = json_pack(
		    "{s:f, s:o, s:o, s:o, s:o}", "scale", m, "precision",
		    maybe(tp, tp + fp), "recall", maybe(tp, tp + fn),
		    "false_block_rate", maybe(fp, fp + tn), "f1",
		    tp ? json_real(2.0 * (double)tp /
				   (double)(2 * tp + fp + fn))
		       : (tp + fp + fn ? json_real(0) : json_null()));
		if (!p || json_array_append_new(pts, p)) {
			json_decref(pts);
			return NULL;
		}
	}
	return pts;
}

/* ---- the SVG ---- */

#define W 520
#define H 400
#define X0 60 /* the plot's left edge */
#define Y0 30 /* its top */
#define PW 420
#define PH 300

static double num(const json_t *p, const char *key, bool *ok)
{
	const json_t *v = json_object_get(p, key);
	*ok = json_is_number(v);
	return *ok ? json_number_value(v) : 0;
}

static void xml_text(pwb__buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			pwb__buf_adds(b, "&lt;");
		else if (*s == '>')
			pwb__buf_adds(b, "&gt;");
		else if (*s == '&')
			pwb__buf_adds(b, "&amp;");
		else if (*s == '"')
			pwb__buf_adds(b, "&quot;");
		else
			pwb__buf_addc(b, *s);
	}
}

static void draw(pwb__buf *b, const json_t *pts, const char *title)
{
	pwb__buf_addf(b,
		      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		      "height=\"%d\" viewBox=\"0 0 %d %d\" "
		      "font-family=\"sans-serif\" font-size=\"12\">\n"
		      "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n"
		      "<text x=\"%d\" y=\"18\" font-size=\"14\">",
		      W, H, W, H, W, H, X0);
	xml_text(b, title);
	pwb__buf_adds(b, "</text>\n");
	for (int g = 0; g <= 5; g++) {
		double f = g / 5.0;
		int x = X0 + (int)(f * PW), y = Y0 + PH - (int)(f * PH);
		pwb__buf_addf(b,
			      "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
			      "stroke=\"#ddd\"/>\n"
			      "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
			      "stroke=\"#ddd\"/>\n"
			      "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">"
			      "%.1f</text>\n"
			      "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">"
			      "%.1f</text>\n",
			      x, Y0, x, Y0 + PH, X0, y, X0 + PW, y, x,
			      Y0 + PH + 16, f, X0 - 6, y + 4, f);
	}
	pwb__buf_addf(b,
		      "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
		      "fill=\"none\" stroke=\"black\"/>\n"
		      "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">recall "
		      "(out-of-bounds texts blocked)</text>\n"
		      "<text transform=\"translate(16 %d) rotate(-90)\" "
		      "text-anchor=\"middle\">precision</text>\n"
		      "<polyline fill=\"none\" stroke=\"#1f5fa8\" "
		      "stroke-width=\"2\" points=\"",
		      X0, Y0, PW, PH, X0 + PW / 2, Y0 + PH + 34,
		      Y0 + PH / 2);
	size_t i;
	const json_t *p;
	bool ok_r, ok_p;
	json_array_foreach(pts, i, p)
	{
		double r = num(p, "recall", &ok_r), pr = num(p, "precision",
							     &ok_p);
		if (ok_r && ok_p)
			pwb__buf_addf(b, "%.1f,%.1f ", X0 + r * PW,
				      Y0 + PH - pr * PH);
	}
	pwb__buf_adds(b, "\"/>\n");
	json_array_foreach(pts, i, p)
	{
		double m = num(p, "scale", &ok_r);
		double r = num(p, "recall", &ok_r), pr = num(p, "precision",
							     &ok_p);
		if (!ok_r || !ok_p || m < 1 - 1e-9 || m > 1 + 1e-9)
			continue;
		int x = X0 + (int)(r * PW), y = Y0 + PH - (int)(pr * PH);
		pwb__buf_addf(b,
			      "<circle cx=\"%d\" cy=\"%d\" r=\"5\" "
			      "fill=\"#c0392b\"/>\n"
			      "<text x=\"%d\" y=\"%d\">thresholds as set "
			      "(recall %.2f, precision %.2f)</text>\n",
			      x, y, x > X0 + PW - 200 ? x - 230 : x + 8,
			      y < Y0 + 20 ? y + 16 : y - 8, r, pr);
	}
	pwb__buf_adds(b, "</svg>\n");
}

typedef struct svg_out {
	const char *s;
	size_t len;
} svg_out;

static int write_svg(void *user, int fd)
{
	const svg_out *o = user;
	for (size_t at = 0; at < o->len;) {
		ssize_t k = write(fd, o->s + at, o->len - at);
		if (k < 0)
			return errno;
		at += (size_t)k;
	}
	return 0;
}

bool cli_sweep_svg(const json_t *pts, const char *path, const char *title)
{
	pwb__buf b;
	pwb__buf_init(&b, 0);
	draw(&b, pts, title);
	if (b.err) {
		pwb__buf_release(&b);
		fprintf(stderr, "error: out of memory\n");
		return false;
	}
	pwb_diag d;
	pwb_diag_init(&d);
	svg_out o = {b.s, b.len};
	pwb_status st = pwb__replace_file(path, write_svg, &o, &d);
	if (st)
		cli_print_diag(&d);
	pwb_diag_release(&d);
	pwb__buf_release(&b);
	return !st;
}
