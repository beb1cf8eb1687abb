#!/usr/bin/env bash
# Captures the candidates of lhcb-run3 and upgrade2-like at mu = 0, 20, 50 (EVENTS, default 1000;
# also writes the "after" evaluate JSONs of run_pileup_study.sh) and compares the pi0 window rules.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p studies/output
events=${EVENTS:-1000}
for mu in ${MUS:-20 50 0}; do
  for design in lhcb-run3 src/calopt/detector/designs/upgrade2-like.toml; do
    name=$(basename "$design" .toml)
    [ -s "studies/output/cands-$name-mu$mu-n$events.npz" ] || python studies/pi0_window_study.py capture "$design" "$mu" "$events"
  done
done
python studies/pi0_window_study.py compare
