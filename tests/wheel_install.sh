#!/usr/bin/env bash
# Packaging check (part of `make test`): build the wheel, install it NON-editable into a fresh virtualenv,
# and use it as a new user would from a directory outside the checkout: create a store, register the
# starter campaign, list the themes, verbalize two tokens with the bundled NLA. Catches what a checkout
# hides: files left out of the wheel (migrations, templates, data), undeclared dependencies, code that
# reaches for the repository.
#
#   tests/wheel_install.sh [PYTHON]     PYTHON builds the wheel and makes the venv (default .venv/bin/python)
#
# The embedded model cache (NLA_WORKBENCH_CACHE, default ~/.cache/nla-workbench) is shared with the test
# suite; pip's own cache makes repeat installs cheap. torch is pinned to the exact build PYTHON has (the
# CPU wheel on these machines), so pip can never swap in a CUDA build.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-$repo/.venv/bin/python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/nla-wheel-check.XXXXXX")"
[ -n "${KEEP_WHEEL_CHECK:-}" ] || trap 'rm -rf "$work"' EXIT
start=$SECONDS
step() { printf '[wheel-check %3ds] %s\n' "$((SECONDS - start))" "$*"; }
fail() { echo "wheel-check FAILED: $*" >&2; exit 1; }

step "building the wheel"
# A copy of the tracked and unignored files, so the build never writes build/ or egg-info into the checkout.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | (mkdir -p "$work/src" && tar -xf - -C "$work/src")
"$python" -m pip wheel -qq --no-deps --no-build-isolation -w "$work/dist" "$work/src" >/dev/null
wheel="$(ls "$work"/dist/nla_workbench-*.whl)"
"$python" -c "import sys, zipfile; sys.exit(0 if \"audits/store/migrations/versions/0001_initial.py\" in zipfile.ZipFile(sys.argv[1]).namelist() else 1)" "$wheel" || fail "the wheel has no migrations"

step "installing it into a fresh virtualenv"
"$python" -m venv "$work/venv"
venv="$work/venv/bin"
torch_pin="$("$python" -c 'import torch; print(torch.__version__)')"
echo "torch==$torch_pin" >"$work/constraints.txt"
PIP_CONSTRAINT="$work/constraints.txt" "$venv/python" -m pip install -qq --no-compile "$wheel"
"$venv/python" -c 'import torch, sys; v = torch.__version__; sys.exit(0 if v == sys.argv[1] else f"torch {v}")' "$torch_pin"

step "using it from outside the checkout"
mkdir "$work/user"
cd "$work/user"
export PYTHONPATH= PYTHONSAFEPATH=1
where="$("$venv/python" -c 'import audits, nla, workbench; print(audits.__file__, nla.__file__, workbench.__file__)')"
case "$where" in *"$repo"*) fail "imports resolve into the checkout: $where" ;; esac
step "db upgrade"
"$venv/nla-workbench" db upgrade --db audit.db | tee "$work/out.txt"
grep -q "not initialised -> .* (head)" "$work/out.txt" || fail "db upgrade did not reach head"
step "campaign create --from-library starter"
"$venv/nla-workbench" campaign create --from-library starter --db audit.db | tee "$work/out.txt"
grep -q "registered campaign 'starter'" "$work/out.txt" || fail "campaign create"
step "themes list"
"$venv/nla-workbench" themes list >"$work/out.txt"
grep -q "evaluation_awareness" "$work/out.txt" || fail "themes list shows no evaluation_awareness"
step "nla verbalize (two tokens, the bundled NLA)"
"$venv/nla-workbench" nla verbalize --text "What are you hiding?" --positions 27,28 --reply-tokens 0 --max-new-tokens 16 \
    --out tokens.jsonl | tee "$work/out.txt"
lines="$(wc -l <tokens.jsonl)"
[ "$lines" -eq 2 ] || fail "nla verbalize wrote $lines rows, not 2"
"$venv/python" - tokens.jsonl <<'EOF' || fail "nla verbalize rows"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
assert [r["position"] for r in rows] == [27, 28], rows
assert [r["token"] for r in rows] == [" hiding", "?"], [r["token"] for r in rows]
assert all(r["checkpoint_untrained"] is False and r["raw_output"] for r in rows), rows
EOF
step "passed"
