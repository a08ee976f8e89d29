/*
 * mock_upstream.h - tests/engine/mock_openai.py run as a child process,
 * for the tests of the upstream engine and of the pipeline over it: a real
 * OpenAI-compatible server on a real socket whose answers the test
 * chooses through the model name (the mock's header lists its flags).
 */
#ifndef PWB_TEST_MOCK_UPSTREAM_H
#define PWB_TEST_MOCK_UPSTREAM_H

#include <jansson.h>

/* Starts the mock (PWB_MOCK_OPENAI is its path), after clearing proxy
 * variables and setting MOCK_OPENAI_KEY to key (NULL: none); its port, or
 * -1 with a message on stderr. The mock dies with the test. */
int mock_start(const char *key);
void mock_stop(void);

/* The port, and the base URL "http://127.0.0.1:PORT/v1". */
int mock_port(void);
const char *mock_url(void);

/* The number of chat requests the mock saw for a model name; -1 when it
 * cannot be asked. */
int mock_count(const char *model);

/* The JSON body of the last chat request for a model name, or NULL
 * (json_decref() it). */
json_t *mock_last(const char *model);

#endif
