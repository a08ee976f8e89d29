#!/usr/bin/env bash
# The limits and reach of `pwb policy check` and `resolve`, each a promise
# of docs/policy.md: files reached through links are checked, errors past
# the cap are counted, the extends chain and the files of one resolve have
# limits named as such, the file size cap is exact, unknown jurisdictions
# list the known ones, and the order of request attributes does not change
# the policy hash.
#
#   bash policy_limits.sh PATH/TO/pwb PATH/TO/policies
set -u
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" policy_limits.sh
pwb=$(pwb_path "$1") || exit 2
policies=$2

# A folder with the shipped registry and law files, and no orgs.
fresh() {
	rm -rf "$tmp/p"
	mkdir -p "$tmp/p/org"
	cp "$policies/categories.yaml" "$tmp/p/"
	cp -r "$policies/law" "$tmp/p/"
}

# ---- a loosening file reached through a link is checked ----
fresh
mkdir -p "$tmp/elsewhere"
cat >"$tmp/elsewhere/ext.yaml" <<'YAML'
tier: org
id: ext
jurisdictions: [de]
categories:
  sexual_content: {permission: allow}
YAML
ln -s "$tmp/elsewhere/ext.yaml" "$tmp/p/org/ext.yaml"
run policy check "$tmp/p"
if [ "$rc" = 1 ] && grep -q "org/ext.yaml:5:3: error: org:ext loosens 'sexual_content'" "$tmp/err"; then
	ok "check DIR: a linked loosening file is reported"
else
	fail "check DIR: a linked loosening file is reported" "exit $rc: $(shown)"
fi
mkdir -p "$tmp/elsewhere/orgs"
mv "$tmp/elsewhere/ext.yaml" "$tmp/elsewhere/orgs/"
rm "$tmp/p/org/ext.yaml"
ln -s "$tmp/elsewhere/orgs" "$tmp/p/org/linked"
run policy check "$tmp/p"
if [ "$rc" = 1 ] && grep -q "org/linked/ext.yaml:5:3: error: org:ext loosens" "$tmp/err"; then
	ok "check DIR: a loosening file in a linked folder is reported"
else
	fail "check DIR: a loosening file in a linked folder is reported" "exit $rc: $(shown)"
fi

# ---- errors past the cap are counted, not dropped silently ----
fresh
{
	printf 'tier: org\nid: many\ncategories:\n'
	for i in $(seq 1 10005); do printf '  nosuch%d: {permission: forbid}\n' "$i"; done
} >"$tmp/p/org/many.yaml"
run policy check "$tmp/p"
n=$(grep -c "many.yaml:[0-9]*:[0-9]*: error: " "$tmp/err")
if [ "$rc" = 1 ] && [ "$n" = 10000 ] && grep -qE '^error: [0-9]+ more errors not shown$' "$tmp/err"; then
	ok "check: 10,000 errors shown, the rest counted"
else
	fail "check: 10,000 errors shown, the rest counted" "exit $rc, $n shown: $(tail -n 1 "$tmp/err")"
fi

# ---- the extends chain: 32 files pass, 33 are named as a chain ----
chain() { # N: org files c1 <- c2 <- ... <- cN
	fresh
	printf 'tier: org\nid: c1\njurisdictions: [de]\n' >"$tmp/p/org/c1.yaml"
	for i in $(seq 2 "$1"); do
		printf 'tier: org\nid: c%d\nextends: c%d\n' "$i" $((i - 1)) >"$tmp/p/org/c$i.yaml"
	done
}
chain 32
run policy check "$tmp/p"
if [ "$rc" = 0 ]; then ok "an extends chain of 32 files passes check"; else fail "an extends chain of 32 files passes check" "$(shown)"; fi
run policy resolve --policies "$tmp/p" --org c32 --json
if [ "$rc" = 0 ]; then ok "an extends chain of 32 files resolves"; else fail "an extends chain of 32 files resolves" "$(shown)"; fi
chain 33
run policy check "$tmp/p"
if [ "$rc" = 1 ] && grep -q "c33.yaml:3:10: error: the extends chain of 'c33' has 33 files; the limit is 32" "$tmp/err"; then
	ok "an extends chain of 33 files fails check"
else
	fail "an extends chain of 33 files fails check" "exit $rc: $(shown)"
fi
if grep -q "policy files" "$tmp/err"; then
	fail "a chain too long is not called too many policy files" "$(shown)"
else
	ok "a chain too long is not called too many policy files"
fi

# ---- one resolve reads at most 128 files ----
many_laws() { # N: law files l1..lN, an org naming all of them
	fresh
	rm -rf "$tmp/p/law"
	mkdir -p "$tmp/p/law"
	local list=""
	for i in $(seq 1 "$1"); do
		printf 'tier: law\nid: l%d\n' "$i" >"$tmp/p/law/l$i.yaml"
		list="$list${list:+, }l$i"
	done
	printf 'tier: org\nid: wide\njurisdictions: [%s]\n' "$list" >"$tmp/p/org/wide.yaml"
}
many_laws 127
run policy resolve --policies "$tmp/p" --org wide --json
if [ "$rc" = 0 ]; then ok "a resolve of 128 files passes"; else fail "a resolve of 128 files passes" "$(shown)"; fi
many_laws 128
run policy resolve --policies "$tmp/p" --org wide --json
if [ "$rc" = 1 ] && grep -q "a resolve of org 'wide' needs more than 128 policy files" "$tmp/err"; then
	ok "a resolve of 129 files is refused, naming the limit"
else
	fail "a resolve of 129 files is refused, naming the limit" "exit $rc: $(shown)"
fi

# ---- the file size cap is 1 MiB exactly ----
sized() { # BYTES: an org file of exactly BYTES bytes (a comment pads it)
	fresh
	local head='tier: org
id: big
jurisdictions: [de]
'
	printf '%s#' "$head" >"$tmp/p/org/big.yaml"
	local have
	have=$(wc -c <"$tmp/p/org/big.yaml")
	head -c $(($1 - have - 1)) /dev/zero | tr '\0' 'x' >>"$tmp/p/org/big.yaml"
	printf '\n' >>"$tmp/p/org/big.yaml"
}
sized 1048576
run policy check "$tmp/p"
if [ "$rc" = 0 ]; then ok "a policy file of exactly 1 MiB is read"; else fail "a policy file of exactly 1 MiB is read" "$(shown)"; fi
sized 1048577
run policy check "$tmp/p"
if [ "$rc" = 1 ] && grep -q "big.yaml" "$tmp/err"; then
	ok "a policy file of 1 MiB + 1 byte is refused"
else
	fail "a policy file of 1 MiB + 1 byte is refused" "exit $rc: $(shown)"
fi

# ---- an unknown jurisdiction lists the known ones ----
run policy resolve --policies "$policies" --org acme-tutor --jurisdiction germany
if [ "$rc" = 1 ] && grep -q "unknown jurisdiction 'germany' (the law files are: .*de.*eu" "$tmp/err"; then
	ok "an unknown jurisdiction lists the law files"
else
	fail "an unknown jurisdiction lists the law files" "exit $rc: $(shown)"
fi
run policy resolve --policies "$policies" --org acme-tutor --jurisdiction dee
if [ "$rc" = 1 ] && grep -q "unknown jurisdiction 'dee' (did you mean 'de'?)" "$tmp/err"; then
	ok "a misspelt jurisdiction gets a suggestion"
else
	fail "a misspelt jurisdiction gets a suggestion" "exit $rc: $(shown)"
fi

# ---- a folder that is not a policy folder says so ----
run policy resolve --policies "$policies/org" --org acme-tutor
if [ "$rc" = 1 ] && grep -q "org: error: not a policy folder: it has no categories.yaml" "$tmp/err"; then
	ok "--policies naming a folder without categories.yaml says it is not a policy folder"
else
	fail "--policies naming a folder without categories.yaml says it is not a policy folder" "exit $rc: $(shown)"
fi

# ---- the policy hash does not depend on the order of attributes ----
hash_of() {
	run policy resolve --policies "$policies" --org open-studio "$@" --json
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["policy_hash"])' "$tmp/out"
}
need_python
h1=$(hash_of --attr user.age=30 --attr user.age_verified=true)
h2=$(hash_of --attr user.age_verified=true --attr user.age=30)
h3=$(hash_of --attr user.age=31 --attr user.age_verified=true)
if [ -n "$h1" ] && [ "$h1" = "$h2" ] && [ "$h1" != "$h3" ]; then
	ok "the policy hash ignores the order of attributes, not their values"
else
	fail "the policy hash ignores the order of attributes, not their values" "$h1 / $h2 / $h3"
fi

finish
