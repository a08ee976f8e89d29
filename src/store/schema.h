/* schema.h - the store's migrations (schema.c), in order of version. */
#ifndef PWB_STORE_SCHEMA_H
#define PWB_STORE_SCHEMA_H

typedef struct pwb__migration {
	int version;
	const char *sqlite;
	const char *postgres;
} pwb__migration;

extern const pwb__migration pwb__migrations[];
extern const int pwb__n_migrations;

#endif
