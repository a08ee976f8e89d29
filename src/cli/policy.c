/* policy.c - `pwb policy check|resolve|explain`. */
#include "cli/cli.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char policy_usage[] =
    "Usage: pwb policy check PATH... [--registry FILE]\n"
    "       pwb policy resolve --policies DIR --org ID [options]\n"
    "       pwb policy explain --policies DIR --org ID [options]\n"
    "\n"
    "Run 'pwb policy SUBCOMMAND --help' for the options of each.\n";

static const char check_usage[] =
    "Usage: pwb policy check PATH... [--registry FILE]\n"
    "\n"
    "Checks policy folders and files and reports every problem, one per\n"
    "line, as 'file:line:col: error: message': loosening attempts,\n"
    "empty intersections, defaults out of range, unknown categories,\n"
    "dimensions, attributes and keys, extends cycles and missing parents,\n"
    "duplicate ids and malformed conditions.\n"
    "\n"
    "A PATH is a policy folder (with categories.yaml), or a file or folder\n"
    "inside one: it is checked together with the rest of that policy\n"
    "folder, and only its own problems are reported.\n"
    "\n"
    "Options:\n"
    "  --registry FILE   check PATHs as a set of their own against this\n"
    "                    category registry\n"
    "  -h, --help        show this help\n"
    "\n"
    "Example:\n"
    "  pwb policy check policies\n"
    "\n"
    "Exit status: 0 valid (nothing printed), 1 errors, 2 usage error.\n";

#define RESOLVE_USAGE(cmd, what, options, example)                             \
	"Usage: pwb policy " cmd " --policies DIR --org ID [options]\n"        \
	"\n" what "\n"                                                         \
	"Options:\n" CLI_RESOLVE_HELP options                                  \
	"  -h, --help           show this help\n"                              \
	"\n"                                                                   \
	"A user setting outside the bounds is refused (exit 1) with the "      \
	"tier,\n"                                                              \
	"source, rule and basis that stop it; it is never clamped.\n"          \
	"\n"                                                                   \
	"Example:\n"                                                           \
	"  " example "\n"                                                      \
	"\n"                                                                   \
	"Exit status: 0 when the policy resolved, 1 when a policy file or "    \
	"the\n"                                                                \
	"settings are invalid or a setting is refused, 2 on a usage "          \
	"error.\n"

static const char resolve_usage[] = RESOLVE_USAGE(
    "resolve",
    "Prints the effective policy: law ⊓ org ⊓ user, with provenance.\n",
    "  --json               print the JSON of docs/policy.md\n",
    "pwb policy resolve --policies policies --org acme-tutor --json");

static const char explain_usage[] = RESOLVE_USAGE(
    "explain",
    "Explains the effective policy in words: every category, dimension,\n"
    "obligation and learning restriction, with the tier, source, file,\n"
    "line and basis that bounds it. For JSON, use 'pwb policy resolve\n"
    "--json'.\n",
    "",
    "pwb policy explain --policies policies --org open-studio "
    "--attr user.age=30");

/* ---- check ---- */

typedef struct root_set {
	char *root;	/* the policy folder, or NULL for --registry sets */
	char **filters; /* realpaths whose errors are reported */
	size_t n_filters, cap_filters;
} root_set;

static bool has_registry(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/categories.yaml", dir);
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The nearest folder at or above path holding categories.yaml, as a path
 * spelled from path itself (so that reported file names read naturally). */
static char *find_root(const char *path, bool is_dir)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	size_t len = strlen(buf);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	if (!is_dir) {
		char *slash = strrchr(buf, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(buf, sizeof(buf), ".");
	}
	for (int depth = 0; depth < 16; depth++) {
		if (has_registry(buf))
			return strdup(buf);
		char *slash = strrchr(buf, '/');
		if (slash && slash != buf) {
			*slash = '\0';
		} else {
			/* Go on upwards with "..". */
			char real[PATH_MAX];
			if (!realpath(buf, real) || strcmp(real, "/") == 0)
				return NULL;
			char up[PATH_MAX];
			int n = snprintf(up, sizeof(up), "%s/..", buf);
			if (n < 0 || (size_t)n >= sizeof(up))
				return NULL;
			memcpy(buf, up, (size_t)n + 1);
		}
	}
	return NULL;
}

static bool under(const char *real, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(real, prefix, n) == 0 &&
	       (real[n] == '\0' || real[n] == '/' || prefix[n - 1] == '/');
}

/* path with "." components, repeated and trailing slashes removed, so
 * that two spellings of one path compare equal ("a/./b/" and "a//b"). */
static void tidy(const char *path, char *out, size_t size)
{
	size_t o = 0;
	const char *s = path;
	if (*s == '/' && o + 1 < size)
		out[o++] = '/';
	while (*s) {
		while (*s == '/')
			s++;
		size_t n = strcspn(s, "/");
		bool dot = n == 1 && s[0] == '.';
		if (n && !dot) {
			if (o && out[o - 1] != '/' && o + 1 < size)
				out[o++] = '/';
			for (size_t i = 0; i < n && o + 1 < size; i++)
				out[o++] = s[i];
		}
		s += n;
	}
	if (!o && size > 1)
		out[o++] = '.';
	out[o < size ? o : size - 1] = '\0';
}

static void collect_yaml(const char *dir, char ***files, size_t *n, size_t *cap,
			 int depth)
{
	DIR *d = opendir(dir);
	if (!d || depth > 8) {
		if (d)
			closedir(d);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		struct stat st;
		size_t len = strlen(de->d_name);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			collect_yaml(path, files, n, cap, depth + 1);
		} else if ((len > 5 &&
			    !strcmp(de->d_name + len - 5, ".yaml")) ||
			   (len > 4 && !strcmp(de->d_name + len - 4, ".yml"))) {
			if (*n >= 4096 || pwb__grow((void **)files, cap, *n + 1,
						    sizeof(char *)))
				break;
			(*files)[(*n)++] = strdup(path);
		}
	}
	closedir(d);
}

/* Checks one path inside its policy folder: loads the whole folder and
 * adds to all the errors of path itself (and of the registry). */
static void check_in_root(const char *path, bool is_dir,
			  const pwb_policy_params *pp, pwb_diag *all)
{
	char *root = find_root(path, is_dir);
	if (!root) {
		pwb_diag_add(all, path, 0, 0,
			     "no categories.yaml in this folder "
			     "or above it; pass --registry "
			     "FILE");
		return;
	}
	char real_path[PATH_MAX], real_root[PATH_MAX];
	if (!realpath(path, real_path) || !realpath(root, real_root)) {
		pwb_diag_add(all, path, 0, 0, "cannot resolve the path: %s",
			     strerror(errno));
		free(root);
		return;
	}
	/* Load the whole policy folder; keep only the errors
	 * of the named path (and of the registry). */
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_policy *p = NULL;
	pwb_status ls = pwb_policy_load(&p, root, pp, &d);
	if (ls && ls != PWB_EPOLICY && !d.n)
		pwb_diag_add(&d, root, 0, 0, "%s", pwb_status_str(ls));
	pwb_policy_free(p);
	char reg[PATH_MAX + 32], real_reg[PATH_MAX] = "";
	snprintf(reg, sizeof(reg), "%s/categories.yaml", real_root);
	if (!realpath(reg, real_reg))
		real_reg[0] = '\0';
	/* An error belongs to the named path when its file lies under it,
	 * as spelled (a file reached through a link inside the folder is
	 * the folder's, wherever the link points) or as resolved. */
	char tidy_path[PATH_MAX], tidy_e[PATH_MAX];
	tidy(path, tidy_path, sizeof(tidy_path));
	for (size_t k = 0; k < d.n; k++) {
		pwb_diag_entry *e = &d.entries[k];
		char real_e[PATH_MAX];
		bool keep = true;
		if (e->file) {
			tidy(e->file, tidy_e, sizeof(tidy_e));
			keep = under(tidy_e, tidy_path) ||
			       (realpath(e->file, real_e) &&
				(under(real_e, real_path) ||
				 !strcmp(real_e, real_reg)));
		}
		/* Skip files already reported by an earlier
		 * path of this command. */
		for (size_t j = 0; keep && j < all->n; j++)
			keep = !(all->entries[j].file && e->file &&
				 !strcmp(all->entries[j].file, e->file) &&
				 all->entries[j].line == e->line &&
				 all->entries[j].col == e->col &&
				 !strcmp(all->entries[j].message, e->message));
		if (keep)
			pwb_diag_add(all, e->file, e->line, e->col, "%s",
				     e->message);
	}
	/* Errors past the cap were counted, not kept: whose they were is
	 * not known, so they are all said to be not shown. */
	all->dropped += d.dropped;
	pwb_diag_release(&d);
	free(root);
}

static int cmd_check(cli_args *a)
{
	const char *registry = NULL;
	cli_list paths = {0};
	const cli_spec spec[] = {CLI_OPT_STR("registry", registry)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), check_usage, &paths);
	if (r)
		return cli_parsed(r);
	if (!paths.n)
		return cli_usage_error(a, "name at least one policy file or "
					  "folder");
	pwb_diag all;
	pwb_diag_init(&all);
	int rc = CLI_OK;
	pwb_policy_params pp = pwb_policy_default_params();
	pp.cache_entries = 0;
	/* With --registry, the files named (and found under the folders
	 * named) form one set of their own. */
	char **files = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < paths.n; i++) {
		struct stat st;
		if (stat(paths.v[i], &st) != 0) {
			pwb_diag_add(&all, paths.v[i], 0, 0, "cannot read: %s",
				     strerror(errno));
		} else if (!registry) {
			check_in_root(paths.v[i], S_ISDIR(st.st_mode), &pp,
				      &all);
		} else if (S_ISDIR(st.st_mode)) {
			collect_yaml(paths.v[i], &files, &n, &cap, 0);
		} else if (!pwb__grow((void **)&files, &cap, n + 1,
				      sizeof(char *))) {
			files[n++] = strdup(paths.v[i]);
		}
	}
	if (registry) {
		pwb_policy *p = NULL;
		pwb_status st = pwb_policy_load_files(
		    &p, registry, (const char *const *)files, n, &pp, &all);
		if (st && st != PWB_EPOLICY)
			pwb_diag_add(&all, NULL, 0, 0, "%s",
				     pwb_status_str(st));
		pwb_policy_free(p);
	}
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	if (all.n || all.dropped) {
		cli_print_diag(&all);
		rc = CLI_FAIL;
	}
	pwb_diag_release(&all);
	return rc;
}

/* ---- resolve and explain ---- */

static void print_prov(const pwb_provenance *pv)
{
	if (pv->file)
		printf("%s, %s:%d", pv->source, pv->file, pv->line);
	else
		printf("%s", pv->source);
	if (pv->basis)
		printf(": %s", pv->basis);
}

static void print_value(double v)
{
	char buf[40];
	pwb__fmt_double(buf, sizeof(buf), v);
	fputs(buf, stdout);
}

static void explain(const pwb_effective *e, bool brief)
{
	printf("Effective policy for org %s\n", pwb_effective_org(e));
	printf("  jurisdictions:");
	for (size_t i = 0; i < pwb_effective_n_jurisdictions(e); i++)
		printf("%s %s", i ? "," : "", pwb_effective_jurisdiction(e, i));
	printf("\n  policy hash:   %s\n", pwb_effective_hash(e));
	printf("  candidates:    %d per request\n",
	       pwb_effective_candidates(e));
	printf("\nCategories (permission, on/off for this user, and the rule "
	       "that bounds it)\n");
	for (size_t i = 0; i < pwb_effective_n_categories(e); i++) {
		const pwb_eff_category *c = pwb_effective_category(e, i);
		printf("  %-32s %-8s %-4s", c->id,
		       pwb_permission_str(c->permission),
		       c->active ? "on" : "off");
		if (brief) {
			printf(" %s\n", c->set_by.source);
			continue;
		}
		printf("  ");
		print_prov(&c->set_by);
		printf("\n");
		if (c->condition)
			printf("  %32s when %s: %s\n", "", c->condition,
			       c->condition_holds ? "holds" : "does not hold");
		if (c->user_setting >= 0)
			printf("  %32s your setting: %s%s\n", "",
			       c->user_setting ? "on" : "off",
			       c->permission == PWB_FORBID
				   ? " (no effect: forbidden)"
			       : c->permission == PWB_ALLOW && c->user_setting
				   ? " (already on)"
				   : "");
		else if (c->permission == PWB_OPT_IN)
			printf("  %32s off until you turn it on\n", "");
		else if (c->permission == PWB_OPT_OUT)
			printf("  %32s on until you turn it off\n", "");
	}
	printf("\nDimensions\n");
	for (size_t i = 0; i < pwb_effective_n_dimensions(e); i++) {
		const pwb_eff_dimension *d = pwb_effective_dimension(e, i);
		printf("  %-16s ", d->id);
		if (d->numeric) {
			printf("range [");
			print_value(d->lo);
			printf(", ");
			print_value(d->hi);
			printf("], default ");
			print_value(d->def);
			printf(", value ");
			print_value(d->value);
		} else {
			printf("allowed ");
			if (!d->allowed)
				printf("any");
			for (size_t k = 0; d->allowed && k < d->n_allowed; k++)
				printf("%s%s", k ? ", " : "", d->allowed[k]);
			printf("; default %s, value %s", d->def_str,
			       d->value_str);
		}
		printf("%s%s\n",
		       d->value_set_by.tier == PWB_TIER_USER ? " (yours)" : "",
		       d->user_adjustable ? "" : ", fixed");
		if (brief)
			continue;
		printf("  %16s  bounds: ", "");
		print_prov(&d->set_by);
		printf("\n");
		if (!d->user_adjustable) {
			printf("  %16s  fixed by: ", "");
			print_prov(&d->adjustable_set_by);
			printf("\n");
		}
	}
	printf("\nObligations\n");
	if (!pwb_effective_n_obligations(e))
		printf("  none\n");
	for (size_t i = 0; i < pwb_effective_n_obligations(e); i++) {
		const pwb_eff_obligation *o = pwb_effective_obligation(e, i);
		printf("  %-20s %s", o->id, o->kind);
		if (o->category)
			printf(" on %s", o->category);
		printf(" (");
		print_prov(&o->set_by);
		printf(")\n");
		if (o->text && !brief)
			printf("  %20s \"%s\"\n", "", o->text);
	}
	const pwb_eff_learning *l = pwb_effective_learning(e);
	printf("\nLearning from your feedback\n");
	printf("  never uses:       ");
	if (!l->n_forbid_attributes)
		printf("(no restriction)");
	for (size_t i = 0; i < l->n_forbid_attributes; i++)
		printf("%s%s", i ? ", " : "", l->forbid_attributes[i]);
	printf("\n  %-18s ", "");
	print_prov(&l->set_by);
	printf("\n  learns only with your consent: %s",
	       l->requires_consent ? "yes (" : "no");
	if (l->requires_consent) {
		print_prov(&l->requires_consent_set_by);
		printf(")");
	}
	printf("\n  stores texts:     %s",
	       l->store_texts ? "yes" : "no, feature vectors only (");
	if (!l->store_texts) {
		print_prov(&l->store_texts_set_by);
		printf(")");
	}
	if (l->retention_days) {
		printf("\n  keeps feedback:   %d days (", l->retention_days);
		print_prov(&l->retention_set_by);
		printf(")\n");
	} else {
		printf("\n  keeps feedback:   no limit set\n");
	}
	if (l->cohort_attribute) {
		printf("  groups users by:  %s, with their consent (",
		       l->cohort_attribute);
		print_prov(&l->cohort_set_by);
		printf(")\n");
		if (l->cohort_named_consent) {
			printf("  %-18s only a consent that names '%s' counts "
			       "(",
			       "", l->cohort_attribute);
			print_prov(&l->cohort_limited_by);
			printf(")\n");
		}
	} else if (l->cohort_refused) {
		printf("  groups users by:  nothing: '%s' is refused (",
		       l->cohort_refused);
		print_prov(&l->cohort_limited_by);
		printf(")\n");
	} else {
		printf("  groups users by:  nothing (no cohort_attribute)\n");
	}
}

static int cmd_resolve(cli_args *a, bool is_explain)
{
	cli_resolve ra = {0};
	bool json = false;
	const cli_spec spec[] = {
	    CLI_RESOLVE_SPEC(&ra),
	    is_explain ? (cli_spec)CLI_OPT_REFUSE("json",
						  "explain prints text; use "
						  "'pwb policy resolve --json' "
						  "for JSON")
		       : (cli_spec)CLI_OPT_FLAG("json", json)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec),
			  is_explain ? explain_usage : resolve_usage, NULL);
	if (r)
		return cli_parsed(r);
	int rc = cli_resolve_run(&ra, a);
	if (rc)
		goto out;
	rc = CLI_FAIL;
	if (json) {
		char *text;
		if (pwb_effective_to_json(ra.effective, &text)) {
			fprintf(stderr, "error: out of memory\n");
			goto out;
		}
		printf("%s\n", text);
		free(text);
	} else {
		explain(ra.effective, !is_explain);
	}
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	cli_resolve_release(&ra);
	return rc;
}

static int cmd_resolve_json(cli_args *a)
{
	return cmd_resolve(a, false);
}

static int cmd_explain(cli_args *a)
{
	return cmd_resolve(a, true);
}

int cli_policy(int argc, char **argv)
{
	static const cli_sub subs[] = {{"check", cmd_check},
				       {"resolve", cmd_resolve_json},
				       {"explain", cmd_explain}};
	return cli_dispatch(argc, argv, "policy", policy_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
