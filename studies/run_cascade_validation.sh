#!/usr/bin/env bash
# Full validation of the cascade Monte Carlo against published numbers (about 30-40 min on one
# core). Writes studies/output/validation.json, one figure per technology, and summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
out=studies/output
mkdir -p "$out"
calopt validate --technology lhcb-shashlik --technology spacal-w --technology spacal-pb --out "$out" --seed 1 \
  | tee "$out/summary.txt"
