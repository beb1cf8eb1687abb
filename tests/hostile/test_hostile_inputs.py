"""The hostile-input suite: every subcommand through each class of bad input or fault
(issue #19). A case passes when calopt exits with code 2 and one line ``calopt: error: ...``
naming what was wrong (no traceback, no segfault), writes nothing and changes no file.

Classes: 1 outputs that cannot be written; 2 numbers out of range, non-finite or too large to
run; 3 a file of another kind in an output's place; 4 files of the right format with broken
insides; 7 messages that must say what the input is and what was expected. Interrupts (5) and
two runs on one output (6) are in ``test_faults.py``."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.hostile.conftest import LONG_NAME, run_calopt, snapshot

SIM = ["simulate", "--technology", "lhcb-shashlik", "--particle", "gamma", "--energy", "10", "--n", "5"]
EVENTS = ["events", "generate", "--process", "gun", "--n", "5"]
SAMPLE = ["surrogate", "sample", "{d}/ckpt.pt", "--particle", "gamma", "--energy", "10", "--n", "5"]
TRAIN = ["surrogate", "train", "--model", "flow", "--data", "{d}/showers.h5", "--steps", "1"]
CALIBRATE = ["surrogate", "calibrate", "{d}/ckpt.pt", "--data", "{d}/showers.h5"]
SEVAL = ["surrogate", "evaluate", "gflash", "--reference", "{d}/showers.h5"]
BIG_SEED = str(2**64)
TIMING = ["timing", "study", "--technology", "spacal-pb"]
EXPORT = ["showers", "export", "{d}/showers.h5", "--format", "calochallenge"]
IMPORT = ["showers", "import", "{d}/cc_lengths.h5"]


@dataclass(frozen=True)
class Case:
    id: str
    klass: int
    argv: tuple[str, ...]
    message: str | None = None  # a regular expression the error line must match
    forbid: str | None = None  # a text the error line must not hold


def c(id: str, klass: int, argv: list[str], message: str | None = None, forbid: str | None = None) -> Case:
    return Case(id, klass, tuple(argv), message, forbid)


# fmt: off
CASES = [
    # 1. output places that cannot be written
    c("simulate-out-proc", 1, [*SIM, "--out", "/proc/s.h5"], r"/proc"),
    c("simulate-out-under-file", 1, [*SIM, "--out", "{d}/afile/s.h5"], r"afile"),
    c("simulate-out-long-name", 1, [*SIM, "--out", f"{{d}}/{LONG_NAME}.h5"], r"xxxx"),
    c("simulate-out-missing-folder", 1, [*SIM, "--out", "{d}/nowhere/s.h5"], r"nowhere"),
    c("events-out-proc", 1, [*EVENTS, "--out", "/proc/e.h5"], r"/proc"),
    c("events-out-long-name", 1, [*EVENTS, "--out", f"{{d}}/{LONG_NAME}.h5"], r"xxxx"),
    c("sample-out-proc", 1, [*SAMPLE, "--out", "/proc/s.h5"], r"/proc"),
    c("sample-out-under-file", 1, [*SAMPLE, "--out", "{d}/afile/s.h5"], r"afile"),
    c("train-out-proc", 1, [*TRAIN, "--out", "/proc/m.pt"], r"/proc"),
    c("train-out-long-name", 1, [*TRAIN, "--out", f"{{d}}/{LONG_NAME}.pt"], r"xxxx"),
    c("calibrate-out-proc", 1, [*CALIBRATE, "--out", "/proc/c.pt"], r"/proc"),
    c("calibrate-out-under-file", 1, [*CALIBRATE, "--out", "{d}/afile/c.pt"], r"afile"),
    c("evaluate-plots-is-file", 1, ["evaluate", "lhcb-run3", "--plots", "{d}/afile"], r"afile"),
    c("evaluate-plots-proc", 1, ["evaluate", "lhcb-run3", "--plots", "/proc/plots"], r"/proc"),
    c("evaluate-plots-long-name", 1, ["evaluate", "lhcb-run3", "--plots", f"{{d}}/{LONG_NAME}"], r"xxxx"),
    c("validate-out-is-file", 1, ["validate", "--quick", "--out", "{d}/afile"], r"afile"),
    c("validate-out-proc", 1, ["validate", "--quick", "--out", "/proc/v"], r"/proc"),
    c("surrogate-evaluate-plots-proc", 1, [*SEVAL, "--plots", "/proc/p"], r"/proc"),
    c("surrogate-evaluate-plots-is-file", 1, [*SEVAL, "--plots", "{d}/afile"], r"afile"),
    c("optimize-out-is-file", 1, ["optimize", "{d}/quick.toml", "--out", "{d}/afile"], r"afile"),
    c("optimize-out-proc", 1, ["optimize", "{d}/quick.toml", "--out", "/proc/camp"], r"/proc"),
    c("optimize-out-long-name", 1, ["optimize", "{d}/quick.toml", "--out", f"{{d}}/{LONG_NAME}"], r"xxxx"),
    c("report-out-proc", 1, ["report", "{d}/campaign", "--out", "/proc/r.html"], r"/proc"),
    c("report-out-under-file", 1, ["report", "{d}/campaign", "--out", "{d}/afile/r.html"], r"afile"),
    c("report-out-is-folder", 1, ["report", "{d}/campaign", "--out", "{d}/campaign"], r"folder"),
    c("layout-png-proc", 1, ["layout", "show", "lhcb-run3", "--png", "/proc/x.png"], r"/proc"),
    c("layout-png-long-name", 1, ["layout", "show", "lhcb-run3", "--png", f"{{d}}/{LONG_NAME}.png"], r"xxxx"),
    c("demo-out-is-file", 1, ["demo", "--out", "{d}/afile"], r"afile"),
    c("demo-out-proc", 1, ["demo", "--out", "/proc/demo"], r"/proc"),
    # 2. numbers: ranges, finiteness, sizes
    c("simulate-seed-65-bits", 2, [*SIM, "--out", "{d}/s.h5", "--seed", BIG_SEED], r"seed"),
    c("simulate-seed-negative", 2, [*SIM, "--out", "{d}/s.h5", "--seed", "-1"], r"seed"),
    c("evaluate-seed-65-bits", 2, ["evaluate", "lhcb-run3", "--seed", BIG_SEED], r"seed"),
    c("demo-seed-65-bits", 2, ["demo", "--out", "{d}/demo", "--seed", BIG_SEED], r"seed"),
    c("validate-seed-65-bits", 2, ["validate", "--quick", "--seed", BIG_SEED], r"seed"),
    c("evaluate-n-resolution-0", 2, ["evaluate", "lhcb-run3", "--n-resolution", "0"], r"n-resolution"),
    c("evaluate-events-0", 2, ["evaluate", "lhcb-run3", "--events", "0"], r"events"),
    c("evaluate-events-1e13", 2, ["evaluate", "lhcb-run3", "--events", "10000000000000"], r"events"),
    c("evaluate-pileup-nan", 2, ["evaluate", "lhcb-run3", "--pileup", "nan"], r"pileup"),
    c("evaluate-pileup-negative", 2, ["evaluate", "lhcb-run3", "--pileup", "-1"], r"pileup"),
    c("evaluate-pileup-1e9", 2, ["evaluate", "lhcb-run3", "--pileup", "1e9"], r"pileup"),
    c("evaluate-precision-nan", 2, ["evaluate", "lhcb-run3", "--precision", "nan"], r"precision"),
    c("evaluate-precision-1.5", 2, ["evaluate", "lhcb-run3", "--precision", "1.5"], r"precision"),
    c("events-sigma-t-inf", 2, [*EVENTS, "--out", "{d}/e.h5", "--sigma-t", "inf"], r"sigma-t"),
    c("events-sigma-z-nan", 2, [*EVENTS, "--out", "{d}/e.h5", "--sigma-z", "nan"], r"sigma-z"),
    c("events-gun-energy-1e308", 2, [*EVENTS, "--out", "{d}/e.h5", "--gun-energy-range", "1", "1e308"], r"energy"),
    c("events-pileup-4e4", 2, ["events", "generate", "--process", "minbias", "--pileup", "40000", "--n", "5",
                               "--out", "{d}/e.h5"], r"pileup"),
    c("events-pileup-1e9", 2, ["events", "generate", "--process", "minbias", "--pileup", "1e9", "--n", "5",
                               "--out", "{d}/e.h5"], r"pileup"),
    c("events-pileup-nan", 2, [*EVENTS, "--out", "{d}/e.h5", "--pileup", "nan"], r"pileup"),
    c("events-n-0", 2, ["events", "generate", "--process", "gun", "--n", "0", "--out", "{d}/e.h5"], r"n"),
    c("events-n-1e13", 2, ["events", "generate", "--process", "gun", "--n", "10000000000000", "--out", "{d}/e.h5"],
      r"n"),
    c("events-chunk-size-0", 2, [*EVENTS, "--out", "{d}/e.h5", "--chunk-size", "0"], r"chunk-size"),
    c("simulate-n-1e12", 2, [*SIM[:-2], "--n", "1000000000000", "--out", "{d}/s.h5"], r"n"),
    c("simulate-n-negative", 2, [*SIM[:-2], "--n", "-5", "--out", "{d}/s.h5"], r"n"),
    c("simulate-energy-nan", 2, [*SIM[:-4], "--energy", "nan", "--n", "5", "--out", "{d}/s.h5"], r"energy"),
    c("simulate-energy-inf", 2, [*SIM[:-4], "--energy", "inf", "--n", "5", "--out", "{d}/s.h5"], r"energy"),
    c("simulate-energy-negative", 2, [*SIM[:-4], "--energy", "-5", "--n", "5", "--out", "{d}/s.h5"], r"energy"),
    c("simulate-energy-range-1e308", 2, [*SIM[:-4], "--energy-range", "1", "1e308", "--n", "5", "--out",
                                         "{d}/s.h5"], r"energy"),
    c("simulate-theta-nan", 2, [*SIM, "--theta-max", "nan", "--out", "{d}/s.h5"], r"theta"),
    c("simulate-chunk-size-0", 2, [*SIM, "--chunk-size", "0", "--out", "{d}/s.h5"], r"chunk-size"),
    c("simulate-workers-0", 2, [*SIM, "--workers", "0", "--out", "{d}/s.h5"], r"workers"),
    c("surrogate-evaluate-n-0", 2, [*SEVAL, "--n", "0"], r"n"),
    c("train-steps-0", 2, [*TRAIN[:-2], "--steps", "0", "--out", "{d}/m.pt"], r"steps"),
    c("train-steps-1e15", 2, [*TRAIN[:-2], "--steps", "1000000000000000", "--out", "{d}/m.pt"], r"steps"),
    c("train-crop-0", 2, [*TRAIN, "--crop", "0", "--out", "{d}/m.pt"], r"crop"),
    c("train-crop-1e6", 2, [*TRAIN, "--crop", "1000000", "--out", "{d}/m.pt"], r"crop"),
    c("train-energy-range-nan", 2, [*TRAIN, "--energy-range", "nan", "10", "--out", "{d}/m.pt"], r"energy"),
    c("train-theta-inf", 2, [*TRAIN, "--theta-max", "inf", "--out", "{d}/m.pt"], r"theta"),
    c("train-components-0", 2, [*TRAIN[:4], "--model", "adagan", "--components", "0", "--out", "{d}/m.pt",
                                "--data", "{d}/showers.h5"], r"components"),
    c("sample-n-0", 2, [*SAMPLE[:-2], "--n", "0", "--out", "{d}/s.h5"], r"n"),
    c("sample-n-1e12", 2, [*SAMPLE[:-2], "--n", "1000000000000", "--out", "{d}/s.h5"], r"n"),
    c("sample-energy-nan", 2, [*SAMPLE[:-4], "--energy", "nan", "--n", "5", "--out", "{d}/s.h5"], r"energy"),
    c("demo-workers-0", 2, ["demo", "--out", "{d}/demo", "--workers", "0"], r"workers"),
    c("optimize-workers-0", 2, ["optimize", "{d}/quick.toml", "--out", "{d}/c", "--workers", "0"], r"workers"),
    c("design-wall-pitch-nan", 2, ["layout", "show", "{d}/pitch_nan.toml"], r"pitch"),
    c("design-wall-1e9-modules", 2, ["layout", "show", "{d}/wall_huge.toml"], r"n[xy]"),
    c("design-cost-inf", 2, ["layout", "show", "{d}/cost_inf.toml"], r"module"),
    c("design-half-x-inf", 2, ["layout", "show", "{d}/half_inf.toml"], r"half_x"),
    c("design-cell-size-nan", 2, ["layout", "show", "{d}/cell_nan.toml"], r"cell_size"),
    c("design-timing-nan", 2, ["layout", "show", "{d}/timing_nan.toml"], r"timing"),
    c("evaluate-design-pitch-nan", 2, ["evaluate", "{d}/pitch_nan.toml"], r"pitch"),
    c("campaign-events-1e13", 2, ["optimize", "{d}/events_huge.toml", "--out", "{d}/c"], r"events"),
    c("campaign-seed-65-bits", 2, ["optimize", "{d}/seed_huge.toml", "--out", "{d}/c"], r"seed"),
    c("campaign-pileup-4e4", 2, ["optimize", "{d}/pileup_huge.toml", "--out", "{d}/c"], r"pileup"),
    # 3. a file of another kind where an output goes, even with --overwrite
    c("train-over-campaign", 3, [*TRAIN, "--out", "{d}/campaign/campaign.sqlite", "--overwrite"], r"campaign"),
    c("train-over-showers", 3, [*TRAIN, "--out", "{d}/showers.h5", "--overwrite"], r"calopt-showers"),
    c("train-over-notes", 3, [*TRAIN, "--out", "{d}/notes.txt", "--overwrite"], r"notes"),
    c("calibrate-over-showers", 3, [*CALIBRATE, "--out", "{d}/showers.h5", "--overwrite"], r"calopt-showers"),
    c("calibrate-over-notes", 3, [*CALIBRATE, "--out", "{d}/notes.txt", "--overwrite"], r"notes"),
    c("sample-over-checkpoint", 3, [*SAMPLE, "--out", "{d}/ckpt.pt", "--overwrite"], r"checkpoint"),
    c("simulate-over-campaign", 3, [*SIM, "--out", "{d}/campaign/campaign.sqlite", "--overwrite"], r"campaign"),
    c("events-over-showers", 3, [*EVENTS, "--out", "{d}/showers.h5", "--overwrite"], r"showers"),
    c("report-over-showers", 3, ["report", "{d}/campaign", "--out", "{d}/showers.h5"], r"showers"),
    c("report-over-notes", 3, ["report", "{d}/campaign", "--out", "{d}/notes.txt"], r"notes"),
    c("report-over-checkpoint", 3, ["report", "{d}/campaign", "--out", "{d}/ckpt.pt"], r"checkpoint"),
    c("layout-png-over-hdf5", 3, ["layout", "show", "lhcb-run3", "--png", "{d}/fake.png"], r"fake.png"),
    # 4. files of the right format with broken insides
    *[c(f"reference-{name}", 4, [*SEVAL[:3], "--reference", f"{{d}}/{name}.h5"], name)
      for name in ("no_showers", "short_energies", "bad_dtype", "bad_ndim", "no_attr", "truncated", "empty")],
    c("train-data-short-energies", 4, [*TRAIN[:4], "--data", "{d}/short_energies.h5", "--out", "{d}/m.pt"],
      r"short_energies"),
    c("train-data-bad-ndim", 4, [*TRAIN[:4], "--data", "{d}/bad_ndim.h5", "--out", "{d}/m.pt"], r"bad_ndim"),
    c("calibrate-data-no-showers", 4, [*CALIBRATE[:3], "--data", "{d}/no_showers.h5", "--out", "{d}/c.pt"],
      r"no_showers"),
    c("sample-truncated-checkpoint", 4, [*SAMPLE[:2], "{d}/truncated.pt", *SAMPLE[3:], "--out", "{d}/s.h5"],
      r"truncated"),
    c("sample-garbage-checkpoint", 4, [*SAMPLE[:2], "{d}/garbage.pt", *SAMPLE[3:], "--out", "{d}/s.h5"],
      r"garbage"),
    c("evaluate-fastsim-truncated", 4, ["evaluate", "lhcb-run3", "--fastsim", "{d}/truncated.pt"], r"truncated"),
    c("simulate-backend-garbage", 4, [*SIM[:5], "--backend", "{d}/garbage.pt", *SIM[5:], "--out", "{d}/s.h5"],
      r"garbage"),
    c("report-garbage-database", 4, ["report", "{d}/campaign_garbage"], r"campaign"),
    c("report-other-database", 4, ["report", "{d}/campaign_other"], r"campaign"),
    c("resume-garbage-database", 4, ["optimize", "{d}/quick.toml", "--out", "{d}/campaign_garbage", "--resume"],
      r"campaign"),
    c("layout-broken-toml", 4, ["layout", "show", "{d}/broken.toml"], r"broken.toml"),
    c("layout-binary-toml", 4, ["layout", "show", "{d}/binary.toml"], r"binary.toml"),
    c("optimize-broken-toml", 4, ["optimize", "{d}/broken.toml", "--out", "{d}/c"], r"broken.toml"),
    c("optimize-binary-toml", 4, ["optimize", "{d}/binary.toml", "--out", "{d}/c"], r"binary.toml"),
    # 7. messages that say what the input is and what was expected
    c("report-on-toml", 7, ["report", "{d}/quick.toml"], r"campaign folder", forbid="output folder"),
    c("report-on-showers", 7, ["report", "{d}/showers.h5"], r"campaign folder", forbid="output folder"),
    c("report-on-missing", 7, ["report", "{d}/nowhere"], r"campaign folder.*does not exist"),
    c("sample-showers-as-checkpoint", 7, [*SAMPLE[:2], "{d}/showers.h5", *SAMPLE[3:], "--out", "{d}/s.h5"],
      r"calopt-showers.*checkpoint", forbid="weights_only"),
    c("evaluate-showers-as-fastsim", 7, ["evaluate", "lhcb-run3", "--fastsim", "{d}/showers.h5"],
      r"calopt-showers.*checkpoint", forbid="weights_only"),
    c("calibrate-showers-as-checkpoint", 7, [*CALIBRATE[:2], "{d}/showers.h5", *CALIBRATE[3:], "--out", "{d}/c.pt"],
      r"calopt-showers.*checkpoint", forbid="weights_only"),
    c("simulate-showers-as-backend", 7, [*SIM[:5], "--backend", "{d}/showers.h5", *SIM[5:], "--out", "{d}/s.h5"],
      r"calopt-showers.*checkpoint", forbid="weights_only"),
    c("reference-is-checkpoint", 7, [*SEVAL[:3], "--reference", "{d}/ckpt.pt"], r"checkpoint.*calopt-showers"),
    c("train-data-is-campaign", 7, [*TRAIN[:4], "--data", "{d}/campaign/campaign.sqlite", "--out", "{d}/m.pt"],
      r"campaign.*calopt-showers"),
    c("layout-campaign-as-design", 7, ["layout", "show", "{d}/quick.toml"], r"campaign"),
    c("optimize-design-as-campaign", 7, ["optimize", "{d}/design.toml", "--out", "{d}/c"], r"design"),
    c("evaluate-showers-as-design", 7, ["evaluate", "{d}/showers.h5"], r"calopt-showers"),
    # the module design space (#21): points, estimators, budgets
    c("module-thickness-zero", 2, ["module", "show", "{d}/module_thin.toml"], r"absorber_thickness_mm = 0 is outside"),
    c("module-thickness-negative", 2, ["module", "show", "{d}/module_negative.toml"],
      r"absorber_thickness_mm = -1.5 is outside"),
    c("module-thickness-nan", 2, ["module", "show", "{d}/module_nan.toml"], r"absorber_thickness_mm = nan"),
    c("module-unknown-material", 2, ["module", "show", "{d}/module_material.toml"], r"unobtainium"),
    c("module-too-deep", 2, ["module", "show", "{d}/module_deep.toml"], r"beyond the 835 mm"),
    c("module-too-deep-x0", 2, ["module", "gradient", "{d}/module_deep_x0.toml"], r"beyond the 835 mm"),
    c("module-cell-not-tiling", 2, ["module", "show", "{d}/module_cell.toml"], r"cell_size_mm = 50"),
    c("module-simulate-deep", 2, ["simulate", "--module", "{d}/module_deep.toml", *SIM[3:], "--out", "{d}/m.h5"],
      r"beyond the 835 mm"),
    c("module-unknown-estimator", 2, ["module", "gradient", "{d}/module.toml", "--estimator", "oracle"], r"oracle"),
    c("module-budget-too-small", 2, ["module", "gradient", "{d}/module.toml", "--budget", "30"],
      r"--budget 30 is too small"),
    c("module-energy-nan", 2, ["module", "gradient", "{d}/module.toml", "--energy", "nan"], r"--energy"),
    c("module-energy-zero", 2, ["module", "gradient", "{d}/module.toml", "--energy", "0"], r"--energy"),
    c("module-unknown-objective", 2, ["module", "gradient", "{d}/module.toml", "--objective", "beauty"], r"beauty"),
    c("module-optimize-box-bad", 2, ["module", "optimize", "{d}/module.toml", "--box", "absorber_thickness_mm=3:1",
      "--log", "{d}/log.jsonl"], r"box of absorber_thickness_mm"),
    c("module-optimize-log-is-notes", 7, ["module", "optimize", "{d}/module.toml", "--box",
      "absorber_thickness_mm=1:4", "--log", "{d}/notes.txt"], r"not a calopt descent log"),
    c("module-missing-spec", 7, ["module", "show", "{d}/nowhere.toml"], r"does not exist"),
    c("module-design-as-module", 7, ["module", "show", "{d}/design.toml"], r"design.toml"),
    # waveform timing (#22): rates, technologies, energies, sizes
    c("timing-rate-zero", 2, [*TIMING, "--sampling-rate", "0", "--plots", "{d}/p"], r"--sampling-rate.*got 0"),
    c("timing-rate-negative", 2, [*TIMING, "--sampling-rate", "-1"], r"--sampling-rate.*got -1"),
    c("timing-rate-nan", 2, [*TIMING, "--sampling-rate", "nan"], r"--sampling-rate"),
    c("timing-unknown-technology", 2, ["timing", "study", "--technology", "unobtainium", "--plots", "{d}/p"],
      r"unobtainium"),
    c("timing-no-energies", 2, [*TIMING, "--energies"], r"--energies"),
    c("timing-n-too-small", 2, [*TIMING, "--n", "99", "--plots", "{d}/p"], r"--n must be in \[100"),
    # CaloChallenge files and protocol (#23)
    c("export-out-proc", 1, [*EXPORT, "--out", "/proc/cc.h5"], r"/proc"),
    c("export-out-under-file", 1, [*EXPORT, "--out", "{d}/afile/cc.h5"], r"afile"),
    c("import-out-long-name", 1, [*IMPORT, "--out", f"{{d}}/{LONG_NAME}.h5"], r"xxxx"),
    c("export-over-showers", 3, [*EXPORT, "--out", "{d}/showers.h5", "--overwrite"], r"calopt-showers"),
    c("export-over-notes", 3, [*EXPORT, "--out", "{d}/notes.txt", "--overwrite"], r"notes"),
    c("import-over-checkpoint", 3, [*IMPORT, "--out", "{d}/ckpt.pt", "--overwrite"], r"checkpoint"),
    c("import-no-energies", 4, ["showers", "import", "{d}/cc_no_energies.h5", "--out", "{d}/i.h5"],
      r"'incident_energies' is missing"),
    c("import-lengths", 4, [*IMPORT, "--out", "{d}/i.h5"], r"10 showers but 7 incident energies"),
    c("import-truncated", 4, ["showers", "import", "{d}/truncated.h5", "--out", "{d}/i.h5"], r"truncated"),
    c("export-notes", 7, [*EXPORT[:2], "{d}/notes.txt", *EXPORT[3:], "--out", "{d}/cc.h5"],
      r"notes.txt.*calopt-showers"),
    c("export-checkpoint", 7, [*EXPORT[:2], "{d}/ckpt.pt", *EXPORT[3:], "--out", "{d}/cc.h5"],
      r"checkpoint.*calopt-showers"),
    c("export-unknown-format", 2, [*EXPORT[:4], "root", "--out", "{d}/cc.h5"], r"--format 'root'"),
    c("import-showers-file", 7, ["showers", "import", "{d}/showers.h5", "--out", "{d}/i.h5"],
      r"calopt-showers file, not a CaloChallenge file"),
    c("surrogate-evaluate-protocol-unknown", 2, [*SEVAL, "--protocol", "lhco"], r"--protocol 'lhco'"),
    c("surrogate-evaluate-cc-epochs-0", 2, [*SEVAL, "--protocol", "calochallenge", "--cc-epochs", "0"],
      r"cc-epochs"),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=[x.id for x in CASES])
def test_hostile_input(case: Case, case_dir, hostile_env):
    before = snapshot(case_dir)
    argv = [a.replace("{d}", str(case_dir)) for a in case.argv]
    rc, out, err = run_calopt(argv, case_dir, hostile_env, timeout=60)
    assert "Traceback" not in err, err[-3000:]
    assert rc == 2, f"exit code {rc}; stderr: {err[-2000:]}"
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("calopt: error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], err[-2000:]
    if case.message is not None:
        assert re.search(case.message, errors[0]), errors[0]
    if case.forbid is not None:
        assert case.forbid not in errors[0], errors[0]
    assert out == "", out
    assert snapshot(case_dir) == before, "files were written or changed"
