"""Campaigns: parsing, the database, resuming, parallel determinism, failures, the report and
the command line. Evaluations use the cheap stand-in of ``fake.py`` (the real pipeline runs in
test_campaign_end_to_end)."""

import json
import sqlite3
import tomllib
from dataclasses import asdict

import pytest

from calopt.errors import CaloptInputError
from calopt.optimize.campaign import Campaign, evaluate_design, run_campaign
from calopt.optimize.store import CampaignStore
from tests.helpers import run_cli
from tests.optimize.fake import fake_evaluate

CAMPAIGN = """
name = "t"
[evaluate]
events = 60
n_resolution = 200
seed = 3
[objective]
metrics = ["pi0_mass_width_mev"]
[[optimizers]]
name = "random"
evaluations = 6
batch = 3
seed = 1
[[optimizers]]
name = "bo"
evaluations = 5
batch = 2
seed = 0
options = { n_initial = 4 }
[space]
[[space.regions]]
name = "inner"
shape = "rectangle"
half_x = { min = 3, max = 10 }
half_y = { min = 3, max = 6 }
technology = "lhcb-shashlik"
cell_size = [40.4, 60.6]
[[space.regions]]
name = "middle"
shape = "rectangle"
half_x = 16
half_y = 10
technology = "lhcb-shashlik"
cell_size = 60.6
[[space.regions]]
name = "outer"
shape = "rest"
technology = "lhcb-shashlik"
cell_size = 121.2
"""


def campaign(text=CAMPAIGN):
    return Campaign.from_dict(tomllib.loads(text))


def rows(folder):
    with CampaignStore(folder / "campaign.sqlite") as st:
        return [(t.optimizer, t.batch, t.position, t.design_key, t.status, t.objectives) for t in st.trials()]


def test_campaign_runs_and_stores_every_trial(tmp_path):
    db = run_campaign(campaign(), tmp_path / "c", evaluator=fake_evaluate)
    with CampaignStore(db) as st:
        trials = st.trials()
        assert json.loads(st.get_meta("settings"))["name"] == "t"
    assert len(trials) == 11 and all(t.finished for t in trials)
    assert [t.optimizer for t in trials] == ["random"] * 6 + ["bo"] * 5
    failed = [t for t in trials if t.status == "failed"]
    # the stand-in fails for an inner half-width of 9 modules: recorded, and the campaign went on
    assert all(t.params["inner.half_x"] == 9 and "no peak" in t.error for t in failed)
    for t in trials:
        if t.status == "done":
            assert t.objectives == [t.metrics["pi0_mass_width_mev"]] and t.metrics["seed"] == 3
            assert t.cost > 0 and t.channels > 0
    # BO reuses the random trials' knowledge only through its own asks; a design evaluated twice is
    # copied, not recomputed
    keys = [t.design_key for t in trials]
    for t in trials:
        if t.cached:
            assert keys.index(t.design_key) < trials.index(t)
    assert (tmp_path / "c" / "campaign-settings.toml").is_file()


def test_interrupted_campaign_resumes_without_losing_or_repeating(tmp_path):
    reference = tmp_path / "ref"
    run_campaign(campaign(), reference, evaluator=fake_evaluate)
    calls = []

    def dying(doc, config):
        calls.append(doc)
        if len(calls) == 9:  # killed in the middle of a BO batch
            raise KeyboardInterrupt
        return fake_evaluate(doc, config)

    folder = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):
        run_campaign(campaign(), folder, evaluator=dying)
    partial = rows(folder)
    assert any(r[4] == "pending" for r in partial)
    finished_before = [r for r in partial if r[4] != "pending"]
    with pytest.raises(CaloptInputError, match="--resume"):
        run_campaign(campaign(), folder, evaluator=fake_evaluate)
    seen = []

    def counting(doc, config):
        seen.append(doc)
        return fake_evaluate(doc, config)

    run_campaign(campaign(), folder, resume=True, evaluator=counting)
    final = rows(folder)
    assert final == rows(reference)  # the same trials as without the interruption
    assert all(r in final for r in finished_before)
    assert len(seen) <= len(final) - len(finished_before)  # no finished trial evaluated again


def test_parallel_workers_give_the_same_trials(tmp_path):
    run_campaign(campaign(), tmp_path / "seq", evaluator=fake_evaluate)
    run_campaign(campaign(), tmp_path / "par", workers=2, evaluator=fake_evaluate)
    assert rows(tmp_path / "par") == rows(tmp_path / "seq")


def test_a_dying_worker_costs_a_retry(tmp_path, monkeypatch):
    from tests.optimize.fake import dies_once_evaluate

    marker = tmp_path / "marker"
    monkeypatch.setenv("CALOPT_TEST_MARKER", str(marker))
    text = CAMPAIGN.replace("half_x = { min = 3, max = 10 }", "half_x = { min = 5, max = 6 }")
    run_campaign(campaign(text), tmp_path / "par", workers=2, evaluator=dies_once_evaluate)
    assert marker.exists()  # a worker died...
    run_campaign(campaign(text), tmp_path / "seq", evaluator=fake_evaluate)
    assert rows(tmp_path / "par") == rows(tmp_path / "seq")  # ...and the campaign lost nothing


def test_two_objectives_and_soft_budget(tmp_path):
    text = CAMPAIGN.replace('metrics = ["pi0_mass_width_mev"]', 'metrics = ["significance", "channels"]')
    text = text.replace('name = "random"', 'name = "mobo"').replace('name = "bo"', 'name = "random"')
    text = text.replace("options = { n_initial = 4 }", "")
    db = run_campaign(campaign(text), tmp_path / "mo", evaluator=fake_evaluate)
    with CampaignStore(db) as st:
        done = [t for t in st.trials() if t.status == "done"]
    assert done and all(t.objectives == [-t.metrics["significance"], t.channels] for t in done)
    soft = campaign(CAMPAIGN.replace('metrics = ["pi0_mass_width_mev"]',
                                     'metrics = ["pi0_mass_width_mev"]\nbudget = 23000\npenalty = 1.5'))  # fmt: skip
    values, errors, _ = soft.objective.values({"pi0_mass_width_mev": 10.0, "pi0_mass_width_mev_err": 0.3,
                                               "cost": 23000 * 1.2})  # fmt: skip
    assert values == pytest.approx([10.0 + 1.5 * 2.0**2]) and errors == [0.3]  # the cost is exact
    values, errors, _ = soft.objective.values({"pi0_mass_width_mev": 10.0, "cost": 22000})
    assert values == [10.0] and errors == [None]


def test_report(tmp_path):
    from calopt.report.html import write_report

    run_campaign(campaign(), tmp_path / "c", evaluator=fake_evaluate)
    path = write_report(tmp_path / "c")
    text = path.read_text()
    for section in ("Best so far", "Physics against channels and cost", "Best layouts", "Trials", "Reproduce"):
        assert section in text
    assert text.count("<img") >= 3 and text.count("<tr>") >= 11
    assert "calopt optimize campaign-settings.toml" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [(("[objective]", "[objective]\ncolour = 1"),
      r"^campaign\.toml: \[objective\]: unknown key 'colour' \(expected metrics, budget, penalty\)$"),
     (('name = "random"', 'name = "simplex"'), r"\[\[optimizers\]\] 1: name: unknown optimizer 'simplex'; expected "
                                               "one of bo, "),
     (("evaluations = 6", "evaluations = 0"), r"\[\[optimizers\]\] 1: evaluations: .*than or equal to 1, got 0$"),
     (('metrics = ["pi0_mass_width_mev"]', 'metrics = ["beauty"]'),
      r"\[objective\]: metrics\.0: unknown metric 'beauty'; expected one of pi0_mass_width_mev, "),
     (("batch = 3", "batch = 3\noptions = { zeal = 2 }"), r"\[\[optimizers\]\] 1: unknown option 'zeal'"),
     (('name = "random"', 'name = "mobo"'), r"\[\[optimizers\]\] 1: .*needs n_objectives"),
     (("[evaluate]", "[evaluate]\nmethod = 'nn'"), r"\[evaluate\]: method: .*'xgb' or 'parametric', got 'nn'"),
     (('cell_size = [40.4, 60.6]', 'cell_size = [15.15]'),
      r"\[space\]: region 'inner': cell size 15\.15 mm is allowed for none of lhcb-shashlik"),
     (("evaluations = 6\n", "\n"), r"\[\[optimizers\]\] 1: evaluations: Field required"),
     (('name = "random"', 'name = ["random"]'), r"\[\[optimizers\]\] 1: name: .*valid string, got \['random'\]"),
     # numbers: NaN, infinity, text, booleans and floats are refused where they do not belong
     (("events = 60", "events = nan"), r"\[evaluate\]: events: .*valid integer, got nan"),
     (("events = 60", "events = -5"), r"\[evaluate\]: events: .*greater than 0, got -5"),
     (("[evaluate]", "[evaluate]\npileup = inf"), r"\[evaluate\]: pileup: .*finite number, got inf"),
     (("[evaluate]", "[evaluate]\npileup = -0.5"), r"\[evaluate\]: pileup: .*greater than or equal to 0, got -0\.5"),
     (("[evaluate]", "[evaluate]\npileup = 'high'"), r"\[evaluate\]: pileup: .*valid number, got 'high'"),
     (("seed = 3", "seed = true"), r"\[evaluate\]: seed: .*valid integer, got True"),
     (("[evaluate]", "[evaluate]\nquick = 1"), r"\[evaluate\]: quick: .*valid boolean, got 1"),
     (("batch = 3", "batch = 2.0"), r"\[\[optimizers\]\] 1: batch: .*valid integer, got 2\.0"),
     (("evaluations = 5", "evaluations = true"), r"\[\[optimizers\]\] 2: evaluations: .*valid integer, got True"),
     (("[space]", "[space]\nmax_cost = nan"), r"\[space\]: max_cost: .*finite number, got nan"),
     (("[space]", "[space]\nmax_channels = -1"), r"\[space\]: max_channels: .*greater than 0, got -1"),
     # unknown keys at every level, a misspelt key reported as unknown rather than the intended one as missing
     (('name = "t"', 'name = "t"\ncolour = 1'), r"^campaign\.toml: unknown key 'colour' \(expected name, "),
     (("[evaluate]", "[evaluate]\nevent = 60"), r"\[evaluate\]: unknown key 'event' \(expected pileup, events, "),
     (("evaluations = 5", "evaluation = 5"), r"\[\[optimizers\]\] 2: unknown key 'evaluation' \(expected name, "),
     (("[space]", "[space]\nmax_money = 1"), r"\[space\]: unknown key 'max_money' \(expected regions, max_cost, "),
     (('half_x = 16', 'half_x = 16\ncolour = 1'), r"\[space\]: region 'middle': unknown key 'colour'"),
     (('half_x = { min = 3, max = 10 }', 'half_x = { min = 3, max = 10, step = 1 }'),
      r"region 'inner': unknown key 'half_x\.range\.step'"),
     (('half_x = 16', 'half_x = 16\nheight = 3'), r"region 'middle': unknown key 'height' for a rectangle region"),
     # the rules between keys
     (('metrics = ["pi0_mass_width_mev"]', 'metrics = ["pi0_mass_width_mev"]\nbudget = 1000'),
      r"\[objective\]: give both budget and penalty .*got budget 1000, penalty 0\)"),
     (('metrics = ["pi0_mass_width_mev"]', 'metrics = ["significance", "cost"]\nbudget = 1000\npenalty = 1'),
      r"\[objective\]: a soft budget applies to a single metric"),
     (('metrics = ["pi0_mass_width_mev"]', 'metrics = ["cost", "cost"]'), r"\[objective\]: metrics: .*repeat"),
     (('metrics = ["pi0_mass_width_mev"]', "metrics = []"), r"\[objective\]: metrics: .*at least 1 item"),
     (('half_x = { min = 3, max = 10 }', 'half_x = { min = 10, max = 3 }'),
      r"region 'inner': half_x\.range: min 10 must be below max 3$"),
     (('cell_size = [40.4, 60.6]', "cell_size = []"), r"region 'inner': cell_size\.choices: .*at least 1 item"),
     (('shape = "rest"', 'shape = "rectangle"'), r"region 'outer': a rectangle region needs half_x, half_y"),
     (('name = "middle"', 'name = "inner"'), r"\[space\]: two regions are named 'inner'"),
     (("[evaluate]", "[evaluate]\nfastsim = 'nosuch'"), r"\[evaluate\]: unknown backend 'nosuch'"),
     (('name = "t"', 'name = ""'), r"^campaign\.toml: name: .*at least 1 character, got ''$"),
     (("[space]", "[spaces]"), r"^campaign\.toml: unknown key 'spaces'")],
)  # fmt: skip
def test_bad_campaign(change, message):
    """One line that says where, what is wrong and what was expected."""
    assert change[0] in CAMPAIGN
    with pytest.raises(CaloptInputError, match=message) as exc:
        Campaign.from_dict(tomllib.loads(CAMPAIGN.replace(*change)), "campaign.toml")
    assert "\n" not in str(exc.value)


def test_cli_refuses_bad_input_without_damaging_the_database(tmp_path, capsys):
    good = tmp_path / "c.toml"
    good.write_text(CAMPAIGN)
    run_campaign(campaign(), tmp_path / "t", evaluator=fake_evaluate)
    db = tmp_path / "t" / "campaign.sqlite"
    before = db.read_bytes()
    bad = tmp_path / "bad.toml"
    bad.write_text(CAMPAIGN.replace("[objective]", "[objective]\ncolour = 1"))
    other = tmp_path / "other.toml"
    other.write_text(CAMPAIGN.replace("seed = 3", "seed = 4"))
    cases = [
        (["optimize", str(bad), "--out", str(tmp_path / "t")], "unknown key 'colour'"),
        (["optimize", str(good), "--out", str(tmp_path / "t")], "--resume"),
        (["optimize", str(other), "--out", str(tmp_path / "t"), "--resume"], "other settings"),
        (["optimize", str(tmp_path / "none.toml")], "not found"),
        (["optimize", str(good), "--workers", "0"], "--workers"),
        (["optimize", str(good), "--out", str(tmp_path / "s"), "--scheduler", "tcp://127.0.0.1:9"], "scheduler"),
        (["report", str(tmp_path)], "not a campaign folder"),
        (["report", str(tmp_path / "t"), "--out", str(db)], "is an .html file"),
        (["report", str(tmp_path / "t"), "--out", str(tmp_path / "none" / "r.html")], "does not exist"),
        (["optimize", str(good), "--out", str(good / "sub")], "cannot be made"),
        (["optimize", str(good), "--scheduler", ""], "--scheduler needs an address"),
        (["demo", "--out", str(tmp_path / "d"), "--seed", "-1"], "--seed"),
    ]
    for argv, message in cases:
        code, out, err = run_cli(argv, capsys)
        assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert db.read_bytes() == before
    # a file that is not a campaign database is refused, untouched
    (tmp_path / "x").mkdir()
    junk = tmp_path / "x" / "campaign.sqlite"
    junk.write_bytes(b"not a database")
    code, _, err = run_cli(["optimize", str(good), "--out", str(tmp_path / "x"), "--resume"], capsys)
    assert code == 2 and "not a calopt campaign database" in err and junk.read_bytes() == b"not a database"
    sqlite3.connect(tmp_path / "y.sqlite").execute("CREATE TABLE a (b)")
    with pytest.raises(CaloptInputError, match="no campaign table"):
        CampaignStore(tmp_path / "y.sqlite")


@pytest.mark.integration
def test_campaign_end_to_end(tmp_path, capsys):
    """The real pipeline: three evaluations of small designs, the report, from the command line.
    Every trial must succeed: 150 crossings give about 60 truth-matched pi0 candidates for the
    signal shape of the pi0 peak, twice the 30 that it needs (60 crossings give 25: no peak)."""
    text = CAMPAIGN.replace("events = 60", "events = 150")
    text = text.replace("evaluations = 6", "evaluations = 2").replace("evaluations = 5", "evaluations = 1")
    text = text.replace("batch = 3", "batch = 2")
    path = tmp_path / "c.toml"
    path.write_text(text)
    code, out, err = run_cli(["optimize", str(path), "--out", str(tmp_path / "c"), "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["trials"] == 3 and (tmp_path / "c" / "report.html").is_file()
    with CampaignStore(tmp_path / "c" / "campaign.sqlite") as st:
        trials = st.trials()
    assert [t.status for t in trials] == ["done"] * 3, [t.error for t in trials]
    for t in trials:
        assert t.metrics["channels"] == t.channels and t.metrics["events"] == 150 and t.error is None
        assert t.objectives == [t.metrics["pi0_mass_width_mev"]] and 3.0 < t.objectives[0] < 40.0
    # the stored metrics are what evaluate gives for that design
    c = Campaign.from_dict(tomllib.loads(text))
    again = evaluate_design(c.family.design_dict(trials[0].params, "again"), asdict(c.evaluate))
    assert again["pi0_mass_width_mev"] == trials[0].metrics["pi0_mass_width_mev"]


@pytest.mark.parametrize(
    ("change", "message"),
    [(("events = 60", "events = 10000000000000"), r"\[evaluate\]: events: .*less than or equal to 100000, got 1000"),
     (("seed = 3", "seed = 18446744073709551616"), r"\[evaluate\]: seed: .*less than or equal to 9223372036854775807"),
     (("[evaluate]", "[evaluate]\npileup = 40000"), r"\[evaluate\]: pileup: .*less than or equal to 200, got 40000"),
     (("n_resolution = 200", "n_resolution = 10"), r"\[evaluate\]: n_resolution: .*greater than or equal to 100"),
     (("n_resolution = 200", "n_resolution = 10000000"),
      r"\[evaluate\]: n_resolution: .*less than or equal to 1000000"),
     (("evaluations = 6", "evaluations = 1000000000"), r"\[\[optimizers\]\] 1: evaluations: .*less than or equal"),
     (("batch = 3", "batch = 100000"), r"\[\[optimizers\]\] 1: batch: .*less than or equal to 1024"),
     (("seed = 1", "seed = 9223372036854775808"),
      r"\[\[optimizers\]\] 1: seed: .*less than or equal to 9223372036854775807"),
     (('metrics = ["pi0_mass_width_mev"]', 'metrics = ["pi0_mass_width_mev"]\nbudget = inf\npenalty = 1'),
      r"\[objective\]: budget: .*finite number, got inf"),
     (('metrics = ["pi0_mass_width_mev"]', 'metrics = ["pi0_mass_width_mev"]\nbudget = 1000\npenalty = 1e300'),
      r"\[objective\]: penalty: .*less than or equal to"),
     (("[space]", "[space]\nmax_cost = 1e300"), r"\[space\]: max_cost: .*less than or equal to"),
     (("half_x = { min = 3, max = 10 }", "half_x = { min = 3, max = 1000000000 }"),
      r"region 'inner': half_x: 1e\+09 is above the largest border, 1000$"),
     (("half_x = 16", "half_x = [16, 20000]"), r"region 'middle': half_x: 20000 is above the largest border, 1000$"),
     (('cell_size = [40.4, 60.6]', 'cell_size = [40.4, 60.6]\ntiming = [false, 1e9]'),
      r"region 'inner': timing\.choices\.1: timing 1000000000\.0: a timing tier is a constant term in \[1, 10000\]")],
)  # fmt: skip
def test_campaign_numbers_out_of_range(change, message):
    """Every number of a campaign file has a finite range: one line naming the table and the key."""
    assert change[0] in CAMPAIGN
    with pytest.raises(CaloptInputError, match=message) as exc:
        Campaign.from_dict(tomllib.loads(CAMPAIGN.replace(*change)), "campaign.toml")
    assert "\n" not in str(exc.value)


BIG_SPACE = """
name = "big"
[[optimizers]]
name = "random"
evaluations = 4
[space]
[[space.regions]]
name = "inner"
shape = "rectangle"
half_x = { min = 3, max = 15 }
half_y = { min = 3, max = 9 }
technology = "lhcb-shashlik"
cell_size = [40.4, 60.6]
split = [false, true]
timing = [false, 10.0, 20.0, 50.0]
[[space.regions]]
name = "middle"
shape = "rectangle"
half_x = { min = 17, max = 31 }
half_y = { min = 11, max = 25 }
technology = "lhcb-shashlik"
cell_size = [40.4, 60.6, 121.2]
split = [false, true]
timing = [false, 10.0, 20.0, 50.0]
[[space.regions]]
name = "outer"
shape = "rest"
technology = "lhcb-shashlik"
cell_size = [60.6, 121.2]
split = [false, true]
timing = [false, 10.0, 20.0, 50.0]
"""


def test_large_space_loads_at_once_and_is_never_listed(tmp_path):
    """A campaign of 1.3 x 10^8 designs loads in well under a second (its size counted, one valid
    design sampled), its optimiser proposes valid designs, and exhaustive search is refused with
    the size."""
    import time

    from calopt.optimize.campaign import load_campaign
    from calopt.optimize.optimizers import get_optimizer

    path = tmp_path / "big.toml"
    path.write_text(BIG_SPACE)
    t0 = time.perf_counter()
    c = load_campaign(path)
    assert time.perf_counter() - t0 < 0.5
    space = c.family.space
    assert space.n_combinations == 13 * 7 * 2 * 2 * 4 * 15 * 15 * 3 * 2 * 4 * 2 * 2 * 4 == 125_798_400
    pts = get_optimizer("random", space, seed=0).ask(3)
    assert len(pts) == 3 and all(c.family.is_valid(p) for p in pts)
    path.write_text(BIG_SPACE.replace('name = "random"', 'name = "exhaustive"'))
    refused = r"big\.toml: \[\[optimizers\]\] 1: optimiser 'exhaustive' lists every point, and the space has 125798400 "
    with pytest.raises(CaloptInputError, match=refused + "combinations, more than"):
        load_campaign(path)


def test_load_campaign_refuses_files_that_are_not_campaigns(tmp_path):
    """Broken TOML (with the error's position), binary data and a design file: one line naming the file."""
    from calopt.optimize.campaign import load_campaign

    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\n[[regions]\nname = \n')
    with pytest.raises(CaloptInputError, match=r"broken\.toml: not valid TOML \(.*line 2, column 10\)"):
        load_campaign(broken)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(CaloptInputError, match=r"binary\.toml' is a binary file .*expected a campaign TOML file"):
        load_campaign(binary)
    design = tmp_path / "design.toml"
    design.write_text('name = "d"\n[[regions]]\nname = "all"\ntechnology = "lhcb-shashlik"\ncell_size = 121.2\n'
                      'shape = { type = "rest" }\n')  # fmt: skip
    with pytest.raises(CaloptInputError, match=r"design\.toml' looks like a design file \(\[\[regions\]\]\), "
                                               "expected a campaign file"):  # fmt: skip
        load_campaign(design)
