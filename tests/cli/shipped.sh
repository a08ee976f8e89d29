#!/usr/bin/env bash
# The shipped policy set passes its own check, every org resolves and
# explains, and the facts a reader of policies/ expects hold.
#
#   bash shipped.sh PATH/TO/pwb PATH/TO/policies
#
# Prints `ok NAME` or `FAIL NAME: why` per case, then `N passed, M failed`.
# Exits 1 when a case failed, 2 on a usage error. Needs bash and python3.
set -u

if [ $# -ne 2 ]; then
	echo "usage: bash shipped.sh PATH/TO/pwb PATH/TO/policies" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" shipped.sh
pwb=$(pwb_path "$1") || exit 2
pol=$2
if [ ! -f "$pol/categories.yaml" ]; then
	echo "shipped.sh: $pol has no categories.yaml" >&2
	exit 2
fi
need_python
# The first line of a file, for messages.
first() {
	head -n 1 "$1" | cut -c 1-300
}

# The category ids of the registry: the keys indented by two spaces under
# the top-level `categories:` (no YAML library needed).
python3 - "$pol/categories.yaml" >"$tmp/categories" <<'EOF'
import re, sys
section = None
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"^([A-Za-z_]+):", line)
    if m:
        section = m.group(1)
        continue
    m = re.match(r"^  ([a-z0-9_.-]+):", line)
    if m and section == "categories":
        print(m.group(1))
EOF
if [ ! -s "$tmp/categories" ]; then
	echo "shipped.sh: no categories found in $pol/categories.yaml" >&2
	exit 2
fi

# Checks an effective policy (JSON in $1): it parses, names every registry
# category with a permission and an active flag, and every set_by (at any
# depth, e.g. range_set_by.lo) has a tier and a source. Prints the first
# problem; silent when all is well.
check_json='
import json, sys
try:
    doc = json.load(open(sys.argv[1], encoding="utf-8"))
except ValueError as e:
    print("the output is not JSON: %s" % e)
    sys.exit(1)
cats = doc.get("categories")
if not isinstance(cats, dict):
    print("no \"categories\" object")
    sys.exit(1)
for cid in open(sys.argv[2]).read().split():
    c = cats.get(cid)
    if not isinstance(c, dict):
        print("category %s is missing" % cid)
        sys.exit(1)
    if c.get("permission") not in ("forbid", "opt_in", "opt_out", "allow"):
        print("category %s has no valid permission" % cid)
        sys.exit(1)
    if not isinstance(c.get("active"), bool):
        print("category %s has no active flag" % cid)
        sys.exit(1)
def walk(v, path):
    if isinstance(v, dict):
        for k, x in v.items():
            p = path + "." + k if path else k
            provs = []
            if k == "range_set_by" and isinstance(x, dict):
                provs = [(p + "." + b, y) for b, y in x.items()]
                if not provs:
                    return "%s is empty" % p
            elif k.endswith("set_by"):
                provs = [(p, x)]
            for q, y in provs:
                if not (isinstance(y, dict) and isinstance(y.get("tier"), str)
                        and isinstance(y.get("source"), str)):
                    return "%s has no tier and source" % q
            r = walk(x, p)
            if r:
                return r
    elif isinstance(v, list):
        for i, x in enumerate(v):
            r = walk(x, "%s[%d]" % (path, i))
            if r:
                return r
    return None
r = walk(doc, "")
if r:
    print(r)
    sys.exit(1)
'
json_problem() {
	python3 -c "$check_json" "$1" "$tmp/categories"
}

# Evaluates a Python expression over the JSON in $1 (bound to d); prints
# nothing when it is true, else the value of the second expression.
json_expect() {
	python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1], encoding="utf-8"))
except ValueError as e:
    print("the output is not JSON: %s" % e)
    sys.exit(0)
try:
    good = eval("(" + sys.argv[2] + "\n)")
except Exception as e:
    good = False
if not good:
    try:
        print(eval("(" + sys.argv[3] + "\n)"))
    except Exception as e:
        print("%s: %s" % (type(e).__name__, e))
EOF
}

# ---- the whole folder passes its own check ----

run policy check "$pol"
if [ "$rc" -ne 0 ]; then
	fail check "exit $rc: $(first "$tmp/err")"
elif [ -s "$tmp/err" ] || [ -s "$tmp/out" ]; then
	fail check "exit 0 but printed: $(cat "$tmp/err" "$tmp/out" | head -n 1)"
else
	ok check
fi

# ---- every org explains and resolves ----

orgs=()
for f in "$pol"/org/*.yaml "$pol"/org/*.yml; do
	[ -f "$f" ] || continue
	id=$(sed -n 's/^id:[[:space:]]*["'\'']\{0,1\}\([a-z0-9_-]*\).*/\1/p' "$f" |
		head -n 1)
	if [ -z "$id" ]; then
		fail "org-id $(basename "$f")" "no 'id:' line"
		continue
	fi
	orgs+=("$id")
done
if [ ${#orgs[@]} -eq 0 ]; then
	fail orgs "no org files in $pol/org"
fi

for org in "${orgs[@]}"; do
	run policy explain --policies "$pol" --org "$org"
	if [ "$rc" -ne 0 ]; then
		fail "explain $org" "exit $rc: $(first "$tmp/err")"
	elif [ -s "$tmp/err" ]; then
		fail "explain $org" "stderr: $(first "$tmp/err")"
	elif ! grep -q "$org" "$tmp/out"; then
		fail "explain $org" "the explanation does not name the org"
	else
		ok "explain $org"
	fi

	# $tmp/ORG.json is kept only for a good resolve.
	run policy resolve --policies "$pol" --org "$org" --json
	cp "$tmp/out" "$tmp/candidate.json"
	if [ "$rc" -ne 0 ]; then
		fail "resolve $org" "exit $rc: $(first "$tmp/err")"
		continue
	fi
	if [ -s "$tmp/err" ]; then
		fail "resolve $org" "stderr: $(first "$tmp/err")"
		continue
	fi
	if ! python3 -m json.tool "$tmp/candidate.json" >/dev/null \
		2>"$tmp/jerr"; then
		fail "resolve $org" "not JSON: $(tail -n 1 "$tmp/jerr")"
		continue
	fi
	why=$(json_problem "$tmp/candidate.json")
	if [ -n "$why" ]; then
		fail "resolve $org" "$why"
		continue
	fi
	ok "resolve $org"
	mv "$tmp/candidate.json" "$tmp/$org.json"

	# The same inputs give the same policy and hash.
	run policy resolve --policies "$pol" --org "$org" --json
	if [ "$rc" -eq 0 ] && cmp -s "$tmp/out" "$tmp/$org.json"; then
		ok "resolve $org deterministic"
	else
		fail "resolve $org deterministic" "a second resolve differs"
	fi

	# Every jurisdiction forbids these, so every org must.
	why=$(json_expect "$tmp/$org.json" \
		'all(d["categories"][c]["permission"] == "forbid" and
		     d["categories"][c]["set_by"]["tier"] == "law"
		     for c in ("child_sexual_exploitation",
			       "indiscriminate_weapons"))' \
		'[(c, d["categories"][c]["permission"],
		   d["categories"][c]["set_by"]["source"])
		  for c in ("child_sexual_exploitation",
			    "indiscriminate_weapons")]')
	if [ -n "$why" ]; then
		fail "$org forbids csam and weapons by law" "$why"
	else
		ok "$org forbids csam and weapons by law"
	fi
done

# ---- facts of the shipped set ----

# acme-tutor serves minors: sexual content is forbidden, by law or org.
if [ -f "$tmp/acme-tutor.json" ]; then
	why=$(json_expect "$tmp/acme-tutor.json" \
		'd["categories"]["sexual_content"]["permission"] == "forbid"
		 and not d["categories"]["sexual_content"]["active"]
		 and d["categories"]["sexual_content"]["set_by"]["tier"]
		     in ("law", "org")' \
		'd["categories"]["sexual_content"]')
	if [ -n "$why" ]; then
		fail "acme-tutor forbids sexual_content" "$why"
	else
		ok "acme-tutor forbids sexual_content"
	fi
else
	fail "acme-tutor forbids sexual_content" "acme-tutor did not resolve"
fi

# open-studio: a verified adult who turns sexual content on gets it.
echo '{"categories": {"sexual_content": "on"}}' >"$tmp/on.json"
run policy resolve --policies "$pol" --org open-studio \
	--attr user.age=30 --attr user.age_verified=true \
	--settings "$tmp/on.json" --json
if [ "$rc" -ne 0 ]; then
	fail "open-studio adult opts in" "exit $rc: $(first "$tmp/err")"
else
	cp "$tmp/out" "$tmp/adult.json"
	why=$(json_expect "$tmp/adult.json" \
		'd["categories"]["sexual_content"]["active"] is True and
		 d["categories"]["sexual_content"].get("user_setting") == "on"' \
		'd["categories"]["sexual_content"]')
	if [ -n "$why" ]; then
		fail "open-studio adult opts in" "$why"
	else
		ok "open-studio adult opts in"
	fi
fi

# ... and a 16-year-old with the same settings is refused, with the rule.
run policy resolve --policies "$pol" --org open-studio \
	--attr user.age=16 --attr user.age_verified=true \
	--settings "$tmp/on.json" --json
if [ "$rc" -ne 1 ]; then
	fail "open-studio minor refused" "exit $rc, want 1"
elif [ -s "$tmp/out" ]; then
	fail "open-studio minor refused" "printed a policy on stdout"
elif ! grep -q "sexual_content" "$tmp/err"; then
	fail "open-studio minor refused" \
		"the message does not name the category: $(first "$tmp/err")"
elif ! grep -Eq 'rule [^ ]+\.ya?ml:[0-9]+' "$tmp/err"; then
	fail "open-studio minor refused" \
		"the message does not name the rule (file:line): $(first "$tmp/err")"
elif [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
	fail "open-studio minor refused" \
		"$(wc -l <"$tmp/err") lines on stderr, want 1"
else
	ok "open-studio minor refused"
fi

# Without an age nothing is known: the condition does not hold either.
run policy resolve --policies "$pol" --org open-studio \
	--settings "$tmp/on.json" --json
if [ "$rc" -eq 1 ] && grep -q "sexual_content" "$tmp/err"; then
	ok "open-studio unknown age refused"
else
	fail "open-studio unknown age refused" \
		"exit $rc: $(first "$tmp/err")"
fi

# clinic-info puts a disclaimer on health information.
if [ -f "$tmp/clinic-info.json" ]; then
	why=$(json_expect "$tmp/clinic-info.json" \
		'any(o.get("kind") == "disclaimer" and
		     o.get("category") == "specialized_advice.health" and
		     o.get("text")
		     for o in d["obligations"])' \
		'd["obligations"]')
	if [ -n "$why" ]; then
		fail "clinic-info health disclaimer" "$why"
	else
		ok "clinic-info health disclaimer"
	fi
else
	fail "clinic-info health disclaimer" "clinic-info did not resolve"
fi

finish
