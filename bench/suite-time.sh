#!/usr/bin/env bash
# Like-for-like suite wall time: the test files that existed BEFORE issue 10's work (the parent of the
# commit that added biome.json) run at BEFORE, and their successors (same path, or where git followed a
# rename) run at the current checkout, interleaved A/B/A/B on the same machine so that load from other
# processes falls on both alike. BEFORE is checked out into a temporary git worktree (npm ci there)
# that is removed at the end.
#
#   bash bench/suite-time.sh [ROUNDS]        # default 2 rounds; each round runs A then B
#   BEFORE=<rev> bash bench/suite-time.sh    # another baseline
#   FULL=1 bash bench/suite-time.sh 1        # B also runs the whole current suite (npm test) once
#   ONLY=test/unit/plan bash bench/suite-time.sh 1   # only the files matching (a trial of the script)
#
# Per side it prints the load average before and after, the wall time of each step (A: npm test, which
# was vitest alone at BEFORE; B: tsc, Biome and vitest on the successors: what npm test runs now), the
# duration vitest reports, and per-file durations (from vitest's JSON reporter) into $OUT.
# Vitest's result cache is removed before every run on both sides, so files are ordered as in a fresh
# clone (CI). CPU is user + system time of the step and all it waited for. Needs Dovecot and moto_server like the suite itself.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${1:-2}
BEFORE=${BEFORE:-$(git rev-parse "$(git log --diff-filter=A --format=%H -- biome.json | tail -1)^")}
OUT=${OUT:-$ROOT/.tmp/suite-time}
WT=$(mktemp -d "${TMPDIR:-/tmp}/suite-before.XXXXXX")
mkdir -p "$OUT"

cleanup() {
  git worktree remove --force "$WT" >/dev/null 2>&1 || rm -rf "$WT"
  git worktree prune
}
trap cleanup EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }

# Test files at BEFORE and their successors here: the same path, or the end of the rename chain.
mapfile -t A_FILES < <(git ls-tree -r --name-only "$BEFORE" -- test | grep '\.test\.ts$' | grep -E -- "${ONLY:-.}" | sort)
RENAMES=$(git log --reverse --format= --name-status -M30% "$BEFORE"..HEAD -- test | awk '$1 ~ /^R/ {print $2, $3}')
B_FILES=()
{
  echo "BEFORE $BEFORE ($(git log -1 --format='%ad %s' --date=short "$BEFORE" | cut -c1-80))"
  echo "AFTER  $(git rev-parse HEAD) (working tree of $ROOT)"
  echo "file mapping (${#A_FILES[@]} files at BEFORE):"
} | tee "$OUT/mapping.txt"
for f in "${A_FILES[@]}"; do
  g=$f
  while [ ! -e "$g" ]; do
    next=$(awk -v p="$g" '$1 == p {print $2}' <<<"$RENAMES" | tail -1)
    [ -n "$next" ] || { echo "no successor for $f" >&2; exit 1; }
    g=$next
  done
  B_FILES+=("$g")
  if [ "$g" != "$f" ]; then echo "  $f -> $g" | tee -a "$OUT/mapping.txt"; fi
done
echo "  (the other $(( ${#A_FILES[@]} - $(grep -c -- ' -> ' "$OUT/mapping.txt" || true) )) keep their path)" | tee -a "$OUT/mapping.txt"

echo "==> worktree $WT at $BEFORE, npm ci"
git worktree add --detach "$WT" "$BEFORE" >/dev/null
(cd "$WT" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# step LABEL DIR CMD...: wall time of CMD in DIR, the load around it; output in $OUT/LABEL.log
step() {
  local label=$1 dir=$2
  shift 2
  local l0 t0 t1 rc=0
  l0=$(load)
  t0=$(date +%s.%N)
  # a shell function runs in a child bash (time(1) runs programs), exported for it
  if declare -F "$1" >/dev/null; then set -- bash -c "$1 \"\$@\"" "$@"; fi
  (cd "$dir" && /usr/bin/time -f '%U %S' -o "$OUT/$label.cpu" "$@") >"$OUT/$label.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  local vt
  vt=$(sed 's/\x1b\[[0-9;]*m//g' "$OUT/$label.log" | grep -aoE 'Duration +[0-9.]+ ?m?s' | tail -1 | awk '{print $2}' || true)
  # CPU: user + system of the step and everything it waited for (workers, Dovecot, moto_server)
  local cpu
  cpu=$(awk '{printf "%.0f", $1 + $2}' "$OUT/$label.cpu" 2>/dev/null || echo '?')
  printf '%-22s wall %6.1f s  vitest %-8s cpu %5s s  rc %d  load %s -> %s\n' \
    "$label" "$(echo "$t1 - $t0" | bc)" "${vt:--}" "$cpu" "$rc" "$l0" "$(load)" | tee -a "$OUT/summary.txt"
}

vitest_run() { # DIR JSON FILES...: a fresh-clone ordering (no result cache), default + JSON reporters
  local dir=$1 json=$2
  shift 2
  rm -rf "$dir/node_modules/.vite/vitest"
  (cd "$dir" && npx vitest run --reporter=default --reporter=json --outputFile="$json" "$@")
}
export -f vitest_run

: >"$OUT/summary.txt"
for r in $(seq 1 "$ROUNDS"); do
  step "r$r-A-vitest" "$WT" vitest_run "$WT" "$OUT/r$r-A.json" "${A_FILES[@]}"
  rm -rf "$ROOT/node_modules/.cache/tsc" # a fresh clone has no incremental build info
  step "r$r-B-tsc" "$ROOT" npm run -s typecheck
  step "r$r-B-biome" "$ROOT" npm run -s lint
  step "r$r-B-vitest" "$ROOT" vitest_run "$ROOT" "$OUT/r$r-B.json" "${B_FILES[@]}"
done
if [ -n "${FULL:-}" ]; then
  rm -rf node_modules/.vite/vitest
  step "full-B-npm-test" "$ROOT" npm test
fi

echo "==> per-file seconds (A | B), from vitest's JSON reporter"
node -e '
  const fs = require("node:fs");
  const [out, rounds] = process.argv.slice(1);
  const per = (f) => {
    if (!fs.existsSync(f)) return {};
    const j = JSON.parse(fs.readFileSync(f, "utf8"));
    return Object.fromEntries(j.testResults.map((t) => [t.name.replace(/^.*?\/test\//, "test/"), (t.endTime - t.startTime) / 1000]));
  };
  const mapping = Object.fromEntries(fs.readFileSync(`${out}/mapping.txt`, "utf8").split("\n")
    .filter((l) => l.includes(" -> ")).map((l) => l.trim().split(" -> ")));
  for (let r = 1; r <= Number(rounds); r++) {
    const a = per(`${out}/r${r}-A.json`), b = per(`${out}/r${r}-B.json`);
    const rows = Object.keys(a).map((f) => [f, a[f], b[mapping[f] ?? f]]).sort((x, y) => y[1] - x[1]);
    console.log(`round ${r}: sum of files A ${rows.reduce((s, x) => s + x[1], 0).toFixed(0)} s, B ${rows.reduce((s, x) => s + (x[2] ?? 0), 0).toFixed(0)} s`);
    for (const [f, x, y] of rows) console.log(`  ${x.toFixed(1).padStart(6)} | ${(y ?? NaN).toFixed(1).padStart(6)}  ${f}`);
  }
' "$OUT" "$ROUNDS" | tee "$OUT/per-file.txt"
echo "==> summary"
cat "$OUT/summary.txt"
