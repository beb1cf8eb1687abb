#!/usr/bin/env bash
# Quality of the fast simulations against the cascade (issue 6): `calopt surrogate evaluate` for
# gflash, library, the shipped surrogate and any checkpoints given as arguments, against a
# photon reference sample, with a second independent cascade sample as the floor. Writes
# studies/output/surrogates/<model>.json and prints a table.
#
#   REF="ref.h5 [ref-b.h5 ...]" FLOOR="ref2.h5 [...]" studies/run_surrogate_study.sh [MODEL.pt ...]
#
# (several files in REF or FLOOR are joined). The samples: calopt simulate --technology
# lhcb-shashlik --particle gamma --energy-range 1 100 --log-uniform --theta-max 0.3 --n N --seed S
# (the notes of issue 6 used 6000 photons, seeds 12 (2000) + 16 (4000), as REF and 2000, seed 13,
# as FLOOR). About 2 minutes per model on one core.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${REF:?set REF to a cascade photon sample}" "${FLOOR:?set FLOOR to a second, independent one}"
out=studies/output/surrogates
mkdir -p "$out"
for m in gflash library surrogate "$@"; do
  name=$(basename "$m" .pt)
  args=()
  for f in $REF; do args+=(--reference "$f"); done
  for f in $FLOOR; do args+=(--floor "$f"); done
  calopt surrogate evaluate "$m" "${args[@]}" --seed 1 --json > "$out/$name.json"
done
python - "$out" gflash library surrogate "$@" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"{'model':<22}{'AUC feat':>9}{'AUC cells':>10}{'FPD':>8}{'KPD':>8}  {'worst separation':<22}{'response ratio':>16}"
      f"{'resolution ratio':>18}  worst AUC of one feature")
rows = []
for m in sys.argv[2:]:
    d = json.load(open(out / f"{Path(m).stem}.json"))
    rows.append((Path(m).stem, d))
rows.append(("floor (cascade)", rows[0][1]["floor"]))
for name, d in rows:
    resp = [b["response_ratio"] for b in d["energy_bins"]]
    reso = [b["resolution_ratio"] for b in d["energy_bins"]]
    w = d["worst_separation_power"][0]
    print(f"{name:<22}{d['auc_features']:>9.3f}{d.get('auc_cells', float('nan')):>10.3f}{d['fpd']['value']:>8.2f}"
          f"{d['kpd']['value']:>8.3f}  {w[0] + ' ' + format(w[1], '.3f'):<22}{min(resp):>8.3f}-{max(resp):.3f}"
          f"{min(reso):>10.3f}-{max(reso):.3f}  {max(d['auc_per_feature'].items(), key=lambda kv: kv[1])}")
PY
