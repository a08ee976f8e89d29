/* resolve.c - the policy options shared by every resolving command. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

int cli_resolve_run(cli_resolve *r, cli_args *a)
{
	if (!r->policies)
		return cli_usage_error(a, "--policies DIR is required");
	if (!r->org)
		return cli_usage_error(a, "--org ID is required");

	int rc = CLI_FAIL;
	pwb_diag load_diag, diag;
	pwb_diag_init(&load_diag);
	pwb_diag_init(&diag);
	if (pwb_attrs_new(&r->attrs))
		goto out;
	for (size_t i = 0; i < r->attr.n; i++) {
		const char *kv = r->attr.v[i], *eq = strchr(kv, '=');
		if (!eq || eq == kv) {
			rc = cli_usage_error(
			    a, "--attr takes KEY=VALUE, not '%s'", kv);
			goto out;
		}
		char key[256];
		snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
		if (pwb_attrs_set_text(r->attrs, key, eq + 1)) {
			fprintf(stderr, "error: cannot set attribute '%s'\n",
				key);
			goto out;
		}
	}
	if (r->settings) {
		size_t len;
		if (!(r->settings_data =
			  cli_read_file(r->settings, CLI_SETTINGS_MAX, &len)))
			goto out;
		if (pwb_settings_parse(&r->user_settings, r->settings_data, len,
				       r->settings, &diag)) {
			cli_print_diag(&diag);
			goto out;
		}
	}
	pwb_policy_params pp = pwb_policy_default_params();
	pp.registry = r->registry;
	pwb_status st =
	    pwb_policy_load(&r->policy, r->policies, &pp, &load_diag);
	if (!r->policy) {
		if (!load_diag.n)
			fprintf(stderr, "%s: error: %s\n", r->policies,
				pwb_status_str(st));
		cli_print_diag(&load_diag);
		goto out;
	}
	pwb_resolve_params rp = {r->org, r->jur.v, r->jur.n, r->user_settings,
				 r->attrs};
	st = pwb_policy_resolve(&r->effective, r->policy, &rp, &diag);
	if (st) {
		if (st == PWB_EPOLICY) {
			/* Show the errors of the files the resolve needs,
			 * in place of its one-line summary of each. */
			pwb_diag show;
			pwb_diag_init(&show);
			for (size_t k = 0; k < diag.n; k++) {
				bool shown = false;
				for (size_t i = 0; i < load_diag.n; i++) {
					pwb_diag_entry *le =
					    &load_diag.entries[i];
					if (!le->file ||
					    !diag.entries[k].file ||
					    strcmp(le->file,
						   diag.entries[k].file))
						continue;
					pwb_diag_add(&show, le->file, le->line,
						     le->col, "%s",
						     le->message);
					shown = true;
				}
				if (!shown)
					pwb_diag_add(&show,
						     diag.entries[k].file,
						     diag.entries[k].line,
						     diag.entries[k].col, "%s",
						     diag.entries[k].message);
			}
			cli_print_diag(&show);
			pwb_diag_release(&show);
			goto out;
		}
		/* A refused or unknown user setting is a fault of the
		 * settings file: name it. */
		for (size_t i = 0; i < diag.n; i++) {
			pwb_diag_entry *de = &diag.entries[i];
			if (de->file)
				continue;
			if (r->settings &&
			    (st == PWB_EBOUNDS ||
			     strstr(de->message, "user setting")))
				de->file = strdup(r->settings);
			else if (!strncmp(de->message, "attribute ", 10) ||
				 !strncmp(de->message, "unknown attribute ",
					  18))
				de->file = strdup("--attr");
		}
		cli_print_diag(&diag);
		goto out;
	}
	rc = CLI_OK;
out:
	pwb_diag_release(&load_diag);
	pwb_diag_release(&diag);
	return rc;
}

void cli_resolve_release(cli_resolve *r)
{
	pwb_effective_free(r->effective);
	pwb_policy_free(r->policy);
	pwb_settings_free(r->user_settings);
	pwb_attrs_free(r->attrs);
	free(r->settings_data);
	r->effective = NULL;
	r->policy = NULL;
	r->user_settings = NULL;
	r->attrs = NULL;
	r->settings_data = NULL;
}
