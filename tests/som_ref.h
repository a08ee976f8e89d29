/*
 * som_ref.h - the reference for where lexicon matches start (tests only):
 * one lexicon entry compiled alone by Vectorscan with start-of-match
 * tracking, and the leftmost start it reports for a match ending at a
 * given offset. test_starts and fuzz_bounds compare pwb__lexicon_start()
 * with it.
 */
#ifndef PWB_TESTS_SOM_REF_H
#define PWB_TESTS_SOM_REF_H

#include "bounds/bounds_int.h"

#include <stdlib.h>

/* The entry compiled alone, as the lexicon compiles it plus start
 * tracking, and *scratch grown for it; NULL when it does not compile
 * alone. */
static hs_database_t *som_ref_compile(const pwb__lex_entry *e,
				      hs_scratch_t **scratch)
{
	char *pat = pwb__lexicon_regex(e);
	if (!pat)
		return NULL;
	unsigned flags = HS_FLAG_UTF8 | HS_FLAG_SOM_LEFTMOST |
			 (e->kind == PWB__LEX_REGEX ? HS_FLAG_CASELESS : 0);
	hs_database_t *db = NULL;
	hs_compile_error_t *err = NULL;
	if (hs_compile(pat, flags, HS_MODE_BLOCK, NULL, &db, &err) !=
		HS_SUCCESS ||
	    hs_alloc_scratch(db, scratch) != HS_SUCCESS) {
		hs_free_compile_error(err);
		hs_free_database(db);
		db = NULL;
	}
	free(pat);
	return db;
}

typedef struct som_ref_leftmost {
	unsigned long long end, start;
	bool found;
} som_ref_leftmost;

static int som_ref_on_match(unsigned id, unsigned long long from,
			    unsigned long long to, unsigned flags, void *user)
{
	(void)id;
	(void)flags;
	som_ref_leftmost *l = user;
	if (to == l->end && (!l->found || from < l->start)) {
		l->start = from;
		l->found = true;
	}
	return 0;
}

/* The leftmost start of db's matches that end at end; false when none
 * does (or the scan fails). */
static bool som_ref_start(hs_database_t *db, hs_scratch_t *scratch,
			  const char *text, size_t len, size_t end,
			  unsigned long long *start)
{
	som_ref_leftmost l = {end, 0, false};
	if (hs_scan(db, len ? text : "", (unsigned)len, 0, scratch,
		    som_ref_on_match, &l) != HS_SUCCESS)
		return false;
	*start = l.start;
	return l.found;
}

#endif
