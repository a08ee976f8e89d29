/*
 * sweep.h - the threshold sweep of `pwb eval bounds --sweep` (sweep.c).
 */
#ifndef PWB_CLI_SWEEP_H
#define PWB_CLI_SWEEP_H

#include <jansson.h>

#include "cli/cli.h"

/* Per text: the largest score/threshold of a category the org would
 * block, and whether the text is out of bounds. */
typedef struct cli_sweep {
	double *score;
	bool *unsafe;
	size_t n, cap, cap_unsafe;
} cli_sweep;

/* Adds a checked text; false when out of memory. */
bool cli_sweep_add(cli_sweep *w, const pwb_decision *d, bool unsafe);
void cli_sweep_release(cli_sweep *w);

/* The curve: every threshold scaled by 0.10, 0.15, ..., 2.00, each point
 * {scale, precision, recall, false_block_rate, f1} (null where a ratio
 * has no texts). NULL when out of memory. */
json_t *cli_sweep_json(const cli_sweep *w);

/* The precision-recall curve of those points as an SVG file, written
 * atomically; false (with the error printed) on failure. */
bool cli_sweep_svg(const json_t *pts, const char *path, const char *title);

#endif
