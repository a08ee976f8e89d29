/*
 * html.c - a report's JSON as one HTML page (docs/report.md): tables and
 * SVG charts drawn here, no JavaScript, readable printed. Every number on
 * the page comes from the JSON, so the two never disagree.
 */
#include "report/report_int.h"

#include "util/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Text for HTML and SVG: &, <, >, " escaped. */
static void esc(pwb__buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':
			pwb__buf_adds(b, "&amp;");
			break;
		case '<':
			pwb__buf_adds(b, "&lt;");
			break;
		case '>':
			pwb__buf_adds(b, "&gt;");
			break;
		case '"':
			pwb__buf_adds(b, "&quot;");
			break;
		default:
			pwb__buf_add(b, s, 1);
		}
	}
}

static double num(json_t *v)
{
	return json_is_number(v) ? json_number_value(v) : 0;
}

static json_t *at(json_t *j, const char *a, const char *b)
{
	json_t *v = json_object_get(j, a);
	return b ? json_object_get(v, b) : v;
}

/* "1,234" for counts, "0.412" for shares. */
static void add_num(pwb__buf *b, double v)
{
	if (v == floor(v) && fabs(v) < 1e15) {
		char digits[32];
		snprintf(digits, sizeof(digits), "%.0f", fabs(v));
		size_t n = strlen(digits);
		if (v < 0)
			pwb__buf_adds(b, "−");
		for (size_t i = 0; i < n; i++) {
			if (i && (n - i) % 3 == 0)
				pwb__buf_adds(b, ",");
			pwb__buf_add(b, digits + i, 1);
		}
	} else {
		pwb__buf_addf(b, "%.3f", v);
	}
}

static void rows_note(pwb__buf *b, json_t *fig)
{
	const char *rows = json_string_value(json_object_get(fig, "rows"));
	if (!rows)
		return;
	pwb__buf_adds(b, "<p class=\"rows\">Counts: ");
	esc(b, rows);
	pwb__buf_adds(b, ".</p>\n");
}

/* ---- charts ---- */

typedef struct bar {
	const char *label;
	double value;
} bar;

/* Horizontal bars, one a row, labelled, scaled to the largest. */
static void bars_svg(pwb__buf *b, const char *title, const bar *bars, size_t n)
{
	double max = 0;
	for (size_t i = 0; i < n; i++)
		if (bars[i].value > max)
			max = bars[i].value;
	int w = 640, left = 200, row = 22, h = (int)n * row + 10;
	pwb__buf_addf(b,
		      "<svg xmlns=\"http://www.w3.org/2000/svg\" "
		      "class=\"chart\" role=\"img\" viewBox=\"0 0 %d %d\" "
		      "width=\"%d\" height=\"%d\"><title>",
		      w, h, w, h);
	esc(b, title);
	pwb__buf_adds(b, "</title>\n");
	for (size_t i = 0; i < n; i++) {
		double len =
		    max > 0 ? bars[i].value / max * (w - left - 90) : 0;
		int y = (int)i * row + 5;
		pwb__buf_addf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">",
			      left - 8, y + 15);
		esc(b, bars[i].label);
		pwb__buf_addf(b,
			      "</text><rect x=\"%d\" y=\"%d\" width=\"%.1f\" "
			      "height=\"%d\" class=\"bar\"/><text x=\"%.1f\" "
			      "y=\"%d\">",
			      left, y + 3, len, row - 8, left + len + 6,
			      y + 15);
		add_num(b, bars[i].value);
		pwb__buf_adds(b, "</text>\n");
	}
	pwb__buf_adds(b, "</svg>\n");
}

/* The Lorenz curve of feedback per rater, with the line of equality. */
static void lorenz_svg(pwb__buf *b, json_t *points, double gini)
{
	int size = 320, pad = 40, plot = size - 2 * pad;
	pwb__buf_addf(b,
		      "<svg xmlns=\"http://www.w3.org/2000/svg\" "
		      "class=\"chart\" role=\"img\" viewBox=\"0 0 %d %d\" "
		      "width=\"%d\" height=\"%d\"><title>Lorenz curve of "
		      "feedback per rater, Gini %.3f</title>\n",
		      size, size, size, size, gini);
	pwb__buf_addf(b,
		      "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
		      "class=\"frame\"/>\n<line x1=\"%d\" y1=\"%d\" x2=\"%d\" "
		      "y2=\"%d\" class=\"equal\"/>\n<polyline class=\"line\" "
		      "points=\"",
		      pad, pad, plot, plot, pad, pad + plot, pad + plot, pad);
	size_t i;
	json_t *p;
	json_array_foreach(points, i, p)
	{
		double x = num(json_array_get(p, 0)),
		       y = num(json_array_get(p, 1));
		pwb__buf_addf(b, "%.1f,%.1f ", pad + x * plot,
			      pad + plot - y * plot);
	}
	pwb__buf_addf(
	    b,
	    "\"/>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">"
	    "share of raters, least active first</text>\n<text "
	    "x=\"12\" y=\"%d\" transform=\"rotate(-90 12 %d)\" "
	    "text-anchor=\"middle\">share of feedback</text>\n</svg>\n",
	    size / 2, size - 8, size / 2, size / 2);
}

/* An object of counts ({"law": 2, ...}, or {"x": {"key": n}}) as bars. */
static void object_bars(pwb__buf *b, const char *title, json_t *obj,
			const char *key)
{
	size_t n = json_object_size(obj), i = 0;
	if (!n) {
		pwb__buf_adds(b, "<p class=\"none\">None in the period.</p>\n");
		return;
	}
	bar *bars = pwb__calloc(n, sizeof(*bars));
	if (!bars)
		return;
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		bars[i].label = k;
		bars[i++].value = num(key ? json_object_get(v, key) : v);
	}
	bars_svg(b, title, bars, n);
	free(bars);
}

/* ---- the datasheet ---- */

static void datasheet_body(pwb__buf *b, json_t *j)
{
	json_t *users = at(j, "users", NULL), *raters = at(j, "raters", NULL);
	json_t *fpr = at(j, "feedback_per_rater", NULL);
	pwb__buf_adds(b, "<h2 id=\"raters\">Whose feedback</h2>\n<p>");
	add_num(b, num(at(fpr, "raters", NULL)));
	pwb__buf_adds(b, " raters gave ");
	add_num(b, num(at(fpr, "events", NULL)));
	pwb__buf_adds(b, " feedback events; the org has ");
	add_num(b, num(at(users, "users", NULL)));
	pwb__buf_adds(b, " users.</p>\n<h3>By role</h3>\n");
	object_bars(b, "Raters by role", at(raters, "by_role", NULL), "raters");
	pwb__buf_adds(b,
		      "<h3>By the attributes raters consented to store</h3>\n"
		      "<table><thead><tr><th scope=\"col\">attributes</th>"
		      "<th scope=\"col\">raters</th><th scope=\"col\">"
		      "events</th></tr></thead><tbody>\n");
	size_t i;
	json_t *row;
	json_array_foreach(at(raters, "by_attributes", NULL), i, row)
	{
		json_t *a = json_object_get(row, "attributes");
		pwb__buf_adds(b, "<tr><td>");
		if (!json_object_size(a))
			pwb__buf_adds(b, "none");
		const char *k;
		json_t *v;
		bool first = true;
		json_object_foreach(a, k, v)
		{
			if (!first)
				pwb__buf_adds(b, ", ");
			first = false;
			esc(b, k);
			pwb__buf_adds(b, " = ");
			esc(b, json_is_string(v) ? json_string_value(v) : "?");
		}
		pwb__buf_adds(b, "</td><td>");
		add_num(b, num(json_object_get(row, "raters")));
		pwb__buf_adds(b, "</td><td>");
		add_num(b, num(json_object_get(row, "events")));
		pwb__buf_adds(b, "</td></tr>\n");
	}
	pwb__buf_adds(b, "</tbody></table>\n");
	rows_note(b, raters);

	pwb__buf_adds(b, "<h2 id=\"concentration\">How concentrated</h2>\n<p>"
			 "Gini ");
	add_num(b, num(at(fpr, "gini", NULL)));
	pwb__buf_adds(b, "; the most active 1&#8239;% of raters gave ");
	pwb__buf_addf(b, "%.1f&#8239;%%",
		      100 * num(at(fpr, "top1_share", NULL)));
	pwb__buf_adds(b, " of the feedback, the most active 10&#8239;% ");
	pwb__buf_addf(b, "%.1f&#8239;%%",
		      100 * num(at(fpr, "top10_share", NULL)));
	pwb__buf_adds(b, "; events per rater: median ");
	add_num(b, num(at(fpr, "median", NULL)));
	pwb__buf_adds(b, ", most ");
	add_num(b, num(at(fpr, "max", NULL)));
	pwb__buf_adds(b, ".</p>\n");
	lorenz_svg(b, at(fpr, "lorenz", NULL), num(at(fpr, "gini", NULL)));
	rows_note(b, fpr);

	json_t *blocks = at(j, "blocks", NULL);
	pwb__buf_adds(b,
		      "<h2 id=\"blocks\">What was blocked, by whom</h2>\n<p>");
	add_num(b, num(at(blocks, "total", NULL)));
	pwb__buf_adds(b, " answers blocked.</p>\n<h3>By tier</h3>\n");
	object_bars(b, "Blocks by tier", at(blocks, "by_tier", NULL), NULL);
	pwb__buf_adds(b, "<h3>By category</h3>\n");
	object_bars(b, "Blocks by category", at(blocks, "by_category", NULL),
		    NULL);
	pwb__buf_adds(b, "<h3>By day</h3>\n<table><thead><tr><th scope=\"col\">"
			 "day</th><th scope=\"col\">tier</th><th scope=\"col\">"
			 "category</th><th scope=\"col\">blocks</th></tr>"
			 "</thead><tbody>\n");
	json_array_foreach(at(blocks, "by_day", NULL), i, row)
	{
		pwb__buf_adds(b, "<tr><td>");
		esc(b, json_string_value(json_object_get(row, "day")));
		pwb__buf_adds(b, "</td><td>");
		esc(b, json_string_value(json_object_get(row, "tier")));
		pwb__buf_adds(b, "</td><td>");
		esc(b, json_string_value(json_object_get(row, "category")));
		pwb__buf_adds(b, "</td><td>");
		add_num(b, num(json_object_get(row, "count")));
		pwb__buf_adds(b, "</td></tr>\n");
	}
	pwb__buf_adds(b, "</tbody></table>\n");
	rows_note(b, blocks);

	json_t *pers = at(j, "personalisation", NULL);
	pwb__buf_adds(b, "<h2 id=\"personalisation\">How far personal models "
			 "stray</h2>\n<p>");
	add_num(b, num(at(pers, "users", NULL)));
	pwb__buf_adds(b, " users have a model of their own; their distance "
			 "from the population model: median ");
	add_num(b, num(at(pers, "p50", NULL)));
	pwb__buf_adds(b, ", 90th percentile ");
	add_num(b, num(at(pers, "p90", NULL)));
	pwb__buf_adds(b, ", most ");
	add_num(b, num(at(pers, "max", NULL)));
	pwb__buf_adds(b, ".</p>\n<h3>90th percentile by dimension</h3>\n");
	object_bars(b,
		    "Distance from the population by dimension (90th "
		    "percentile)",
		    at(pers, "by_dimension", NULL), "p90");
	rows_note(b, pers);

	json_t *pol = at(j, "policies", NULL);
	pwb__buf_adds(b, "<h2 id=\"policies\">Policies in force</h2>\n<p>Now: "
			 "<code>");
	esc(b, json_string_value(at(at(pol, "in_force", NULL), "hash", NULL)));
	pwb__buf_adds(b, "</code></p>\n<table><thead><tr><th scope=\"col\">"
			 "policy hash</th><th scope=\"col\">first</th><th "
			 "scope=\"col\">last</th><th scope=\"col\">decisions"
			 "</th></tr></thead><tbody>\n");
	json_array_foreach(at(pol, "seen", NULL), i, row)
	{
		pwb__buf_adds(b, "<tr><td><code>");
		esc(b, json_string_value(json_object_get(row, "hash")));
		pwb__buf_adds(b, "</code></td><td>");
		esc(b, json_string_value(json_object_get(row, "first")));
		pwb__buf_adds(b, "</td><td>");
		esc(b, json_string_value(json_object_get(row, "last")));
		pwb__buf_adds(b, "</td><td>");
		add_num(b, num(json_object_get(row, "decisions")));
		pwb__buf_adds(b, "</td></tr>\n");
	}
	pwb__buf_adds(b, "</tbody></table>\n");
	rows_note(b, pol);
}

/* ---- the risk register ---- */

static void status_cell(pwb__buf *b, const char *st)
{
	pwb__buf_adds(b, "<td class=\"st ");
	esc(b, st);
	pwb__buf_adds(b, "\"><span class=\"dot\" aria-hidden=\"true\">"
			 "&#9679;</span> ");
	esc(b, st);
	pwb__buf_adds(b, "</td>");
}

static void cell(pwb__buf *b, json_t *obj, const char *key)
{
	pwb__buf_adds(b, "<td>");
	esc(b, json_string_value(json_object_get(obj, key)));
	pwb__buf_adds(b, "</td>");
}

static void indicators_table(pwb__buf *b, json_t *inds)
{
	pwb__buf_adds(b, "<table><thead><tr><th scope=\"col\">indicator</th>"
			 "<th scope=\"col\">value</th><th scope=\"col\">"
			 "amber</th><th scope=\"col\">red</th><th "
			 "scope=\"col\">status</th></tr></thead><tbody>\n");
	size_t k;
	json_t *ind;
	json_array_foreach(inds, k, ind)
	{
		json_t *t = json_object_get(ind, "threshold");
		pwb__buf_adds(b, "<tr><td>");
		esc(b, json_string_value(json_object_get(ind, "name")));
		pwb__buf_adds(b, "<br/><small>");
		esc(b, json_string_value(json_object_get(ind, "measures")));
		pwb__buf_adds(b, "; ");
		esc(b, json_string_value(json_object_get(t, "direction")));
		pwb__buf_adds(b, "</small></td><td>");
		add_num(b, num(json_object_get(ind, "value")));
		pwb__buf_adds(b, "</td><td>");
		add_num(b, num(json_object_get(t, "amber")));
		pwb__buf_adds(b, "</td><td>");
		add_num(b, num(json_object_get(t, "red")));
		pwb__buf_adds(b, "</td>");
		status_cell(b,
			    json_string_value(json_object_get(ind, "status")));
		pwb__buf_adds(b, "</tr>\n");
	}
	pwb__buf_adds(b, "</tbody></table>\n");
}

static void risks_body(pwb__buf *b, json_t *j)
{
	json_t *entries = json_object_get(j, "entries");
	pwb__buf_adds(b, "<h2 id=\"summary\">Summary</h2>\n<table><thead><tr>"
			 "<th scope=\"col\">entry</th><th scope=\"col\">"
			 "level</th><th scope=\"col\">kind</th><th "
			 "scope=\"col\">status</th></tr></thead><tbody>\n");
	size_t i;
	json_t *e;
	json_array_foreach(entries, i, e)
	{
		const char *id = json_string_value(json_object_get(e, "id"));
		pwb__buf_adds(b, "<tr><td><a href=\"#");
		esc(b, id);
		pwb__buf_adds(b, "\">");
		esc(b, id);
		pwb__buf_adds(b, "</a></td>");
		cell(b, e, "level");
		cell(b, e, "kind");
		status_cell(b, json_string_value(json_object_get(e, "status")));
		pwb__buf_adds(b, "</tr>\n");
	}
	pwb__buf_adds(b, "</tbody></table>\n");
	json_array_foreach(entries, i, e)
	{
		pwb__buf_adds(b, "<h2 id=\"");
		esc(b, json_string_value(json_object_get(e, "id")));
		pwb__buf_adds(b, "\">");
		esc(b, json_string_value(json_object_get(e, "id")));
		pwb__buf_adds(b, " <small>(");
		esc(b, json_string_value(json_object_get(e, "kind")));
		pwb__buf_adds(b, ", ");
		esc(b, json_string_value(json_object_get(e, "level")));
		pwb__buf_adds(b, ")</small></h2>\n<p>");
		esc(b, json_string_value(json_object_get(e, "description")));
		pwb__buf_adds(b, "</p>\n");
		indicators_table(b, json_object_get(e, "indicators"));
		pwb__buf_adds(b, "<p>Mitigations:</p>\n<ul>\n");
		size_t k;
		json_t *m;
		json_array_foreach(json_object_get(e, "mitigations"), k, m)
		{
			pwb__buf_adds(b, "<li>");
			esc(b, json_string_value(m));
			pwb__buf_adds(b, "</li>\n");
		}
		pwb__buf_adds(b, "</ul>\n");
	}
	rows_note(b, j);
}

static const char style[] =
    "body{font-family:system-ui,sans-serif;max-width:52rem;margin:1rem "
    "auto;padding:0 1rem;color:#111;line-height:1.45}"
    "h1,h2{border-bottom:1px solid #bbb}table{border-collapse:collapse;"
    "margin:.5rem 0}th,td{border:1px solid #999;padding:.2rem .5rem;"
    "text-align:left}.rows{color:#444;font-size:.9rem}"
    "svg.chart{max-width:100%;height:auto;display:block;margin:.5rem 0}"
    "svg text{font-size:12px;fill:#111}.bar{fill:#1f5f9f}"
    ".line{fill:none;stroke:#1f5f9f;stroke-width:2}.equal{stroke:#777;"
    "stroke-dasharray:4 3}.frame{fill:none;stroke:#999}"
    ".green .dot{color:#1a7f37}.amber .dot{color:#9a6700}"
    ".red .dot{color:#cf222e}.st{font-weight:600}"
    "@media print{body{max-width:none}h2{break-before:auto}"
    "svg.chart,table{break-inside:avoid}}";

pwb_status pwb_report_html(const char *json, char **html, pwb_diag *diag)
{
	*html = NULL;
	json_error_t e;
	json_t *j = json_loads(json, 0, &e);
	const char *name = json_string_value(json_object_get(j, "report"));
	bool risks = name && !strcmp(name, "risks");
	if (!j || !name || (strcmp(name, "datasheet") && !risks)) {
		pwb_diag_add(diag, NULL, e.line, e.column,
			     "not a report pwb knows how to draw%s%s",
			     j ? "" : ": ", j ? "" : e.text);
		json_decref(j);
		return PWB_EINVAL;
	}
	const char *title = risks ? "Risk register: " : "Alignment datasheet: ";
	const char *org = json_string_value(json_object_get(j, "org"));
	pwb__buf b;
	pwb__buf_init(&b, 0);
	json_t *period = json_object_get(j, "period");
	pwb__buf_adds(
	    &b, "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" "
		"lang=\"en\">\n<head>\n"
		"<meta charset=\"utf-8\"/>\n<meta name=\"viewport\" "
		"content=\"width=device-width, initial-scale=1\"/>\n<title>");
	pwb__buf_adds(&b, title);
	esc(&b, org);
	pwb__buf_addf(&b,
		      "</title>\n<style>%s</style>\n</head>\n<body>\n"
		      "<main>\n<h1>",
		      style);
	pwb__buf_adds(&b, title);
	esc(&b, org);
	pwb__buf_adds(&b, "</h1>\n<p>Period ");
	esc(&b, json_string_value(json_object_get(period, "since")));
	pwb__buf_adds(&b, " to ");
	esc(&b, json_string_value(json_object_get(period, "until")));
	pwb__buf_adds(&b, " (the end excluded); made ");
	esc(&b, json_string_value(json_object_get(j, "generated")));
	if (risks) {
		pwb__buf_adds(&b, " by pwb. The benefits and risks of "
				  "personalisation for individuals and for "
				  "society, each with the indicators pwb "
				  "computes from its store, a traffic light "
				  "against thresholds (docs/RISKS.md defines "
				  "each), and the policy settings that "
				  "mitigate it.</p>\n");
		risks_body(&b, j);
	} else {
		pwb__buf_adds(
		    &b, " by pwb. Whose feedback this org's models are "
			"aligned to, what its bounds blocked, and how far "
			"personalisation moved users from the population "
			"model; aggregates only, no user content.</p>\n"
			"<nav aria-label=\"Sections\"><ul><li><a href=\"#"
			"raters\">Whose feedback</a></li><li><a href=\"#"
			"concentration\">How concentrated</a></li><li><a "
			"href=\"#blocks\">What was blocked</a></li><li><a "
			"href=\"#personalisation\">How far models stray</a>"
			"</li><li><a href=\"#policies\">Policies</a></li>"
			"</ul></nav>\n");
		datasheet_body(&b, j);
	}
	pwb__buf_adds(&b, "</main>\n</body>\n</html>\n");
	json_decref(j);
	if (b.err) {
		pwb__buf_release(&b);
		return PWB_ENOMEM;
	}
	*html = pwb__buf_detach(&b);
	return *html ? PWB_OK : PWB_ENOMEM;
}
