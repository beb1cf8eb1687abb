#!/usr/bin/env bash
# Pile-up-aware photon regressors (issue 4): evaluate lhcb-run3 and the Upgrade-II-like layout
# with (after) and without (before: --no-pileup-aware-regressors) regressors trained with
# pile-up. WHICH=before|after, MUS (default "20 50"), EVENTS (default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
out=studies/output
mkdir -p "$out"
events=${EVENTS:-1000}
which=${WHICH:-after}
flag=$([ "$which" = before ] && echo "--no-pileup-aware-regressors" || echo "--pileup-aware-regressors")
for mu in ${MUS:-20 50}; do
  for design in lhcb-run3 src/calopt/detector/designs/upgrade2-like.toml; do
    name=$(basename "$design" .toml)
    f="$out/$which-$name-mu$mu-n$events.json"
    [ -s "$f" ] && continue
    python -m calopt.cli.main evaluate "$design" --pileup "$mu" --events "$events" --seed 1 $flag --json > "$f.tmp"
    mv "$f.tmp" "$f"
  done
done
