"""Noisy objectives in campaigns (issue #20): stored errors, replicates, the confirmation stage
and the campaign's answer, resume safety across code versions, schema-1 databases, bad input."""

from __future__ import annotations

import json
import sqlite3
import tomllib
import warnings

import pytest

from calopt.errors import CaloptInputError
from calopt.optimize.campaign import Campaign, campaign_answer, code_versions, run_campaign
from calopt.optimize.store import CampaignStore
from tests.helpers import run_cli
from tests.optimize.fake import fake_evaluate, noisy_evaluate
from tests.optimize.test_campaign import CAMPAIGN

NOISY = CAMPAIGN.replace("seed = 3\n", "seed = 3\nreplicates = 2\n", 1).replace(
    "[[optimizers]]", "[confirm]\ntop_k = 2\nfactor = 4\n\n[[optimizers]]", 1
)


def _campaign(text: str = NOISY) -> Campaign:
    return Campaign.from_dict(tomllib.loads(text), "test")


def test_errors_replicates_and_confirmation(tmp_path):
    db = run_campaign(_campaign(), tmp_path / "c", evaluator=noisy_evaluate)
    with CampaignStore(db, read_only=True) as st:
        trials = st.trials()
    search = [t for t in trials if t.stage == "search"]
    confirm = [t for t in trials if t.stage == "confirm"]
    # every design twice, seeds 3 and 4, each with its error (sigma = 1 MeV at 100 crossings, 60 here)
    assert len(search) == 2 * (6 + 5)
    assert sorted({t.seed for t in search}) == [3, 4] and {t.replicate for t in search} == {0, 1}
    for t in search:
        if t.objectives is not None:
            assert t.objective_errors == [pytest.approx((100 / 60) ** 0.5)]
    pairs: dict[str, list] = {}
    for t in search:
        pairs.setdefault(t.design_key, []).append(t)
    assert all(len(v) % 2 == 0 for v in pairs.values())
    # the confirmation: 2 designs, 4 x 60 crossings, a seed no search row used
    assert len(confirm) == 2 and {t.events for t in confirm} == {240} and {t.seed for t in confirm} == {3 + 2**40}
    assert all(t.objective_errors == [pytest.approx((100 / 240) ** 0.5)] for t in confirm if t.objectives)
    answer = campaign_answer(trials)
    assert answer is not None and answer["confirmed"]
    best = min((t for t in confirm if t.objectives), key=lambda t: t.objectives[0])
    assert answer["trial"] == best.id and answer["objective_errors"] == best.objective_errors


def test_the_confirmation_resumes(tmp_path):
    c = _campaign()
    db = run_campaign(c, tmp_path / "c", evaluator=noisy_evaluate)
    with sqlite3.connect(db) as con:  # as if killed during the confirmation
        con.execute("UPDATE trials SET status = 'pending', objectives = NULL WHERE stage = 'confirm' AND position = 1")
    run_campaign(c, tmp_path / "c", resume=True, evaluator=noisy_evaluate)
    with CampaignStore(db, read_only=True) as st:
        confirm = st.trials(stage="confirm")
    assert len(confirm) == 2 and all(t.status == "done" for t in confirm)


def test_the_answer_without_confirmation_combines_replicates(tmp_path):
    text = NOISY.replace("[confirm]\ntop_k = 2\nfactor = 4\n\n", "")
    db = run_campaign(_campaign(text), tmp_path / "c", evaluator=noisy_evaluate)
    with CampaignStore(db, read_only=True) as st:
        trials = st.trials()
    answer = campaign_answer(trials)
    assert answer is not None and not answer["confirmed"] and answer["replicates"] == 2
    rows = [t for t in trials if t.design_key == trials[[t.id for t in trials].index(answer["trial"])].design_key]
    mean = sum(t.objectives[0] for t in rows) / len(rows)  # equal errors: the plain mean
    assert answer["objectives"][0] == pytest.approx(mean)
    assert answer["objective_errors"][0] == pytest.approx((100 / 60) ** 0.5 / 2**0.5)


def test_resume_with_other_code_is_refused_or_recorded(tmp_path):
    c = _campaign()
    db = run_campaign(c, tmp_path / "c", evaluator=noisy_evaluate)
    with CampaignStore(db) as st:
        st.set_meta(code_versions=json.dumps({**code_versions(), "readout": 0}))
    before = db.read_bytes()
    with pytest.raises(CaloptInputError, match=r"made by other code \(readout 0 -> \d+\).*--allow-version-change"):
        run_campaign(c, tmp_path / "c", resume=True, evaluator=noisy_evaluate)
    assert db.read_bytes() == before
    run_campaign(c, tmp_path / "c", resume=True, evaluator=noisy_evaluate, allow_version_change=True)
    with CampaignStore(db, read_only=True) as st:
        changes = json.loads(st.get_meta("version_changes"))
        assert json.loads(st.get_meta("code_versions")) == code_versions()
    assert len(changes) == 1 and '"readout": 0' in changes[0]["from"]


def test_a_schema_1_database_is_read_and_upgraded(tmp_path):
    c = _campaign(CAMPAIGN)
    db = run_campaign(c, tmp_path / "c", evaluator=fake_evaluate)  # no errors: what schema 1 held
    with sqlite3.connect(db) as con:  # back to schema 1: drop the columns schema 2 added
        for column in ("objective_errors", "events", "replicate", "stage"):
            con.execute(f"ALTER TABLE trials DROP COLUMN {column}")
        con.execute("UPDATE campaign SET value = '1' WHERE key = 'schema_version'")
    with CampaignStore(db, read_only=True) as st:
        old = st.trials()
    assert len(old) == 11 and {t.stage for t in old} == {"search"} and all(t.objective_errors is None for t in old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the trials replay as they were asked
        run_campaign(c, tmp_path / "c", resume=True, evaluator=fake_evaluate)  # upgrades in place, reuses every trial
    with CampaignStore(db, read_only=True) as st:
        assert st.get_meta("schema_version") == "2"
        new = st.trials()
    assert [t.id for t in new] == [t.id for t in old] and {t.events for t in new} == {60}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("seed = 3\n", "seed = 3\nreplicates = 0\n"), "replicates: Input should be greater than or equal to 1"),
        (("[[optimizers]]", "[confirm]\ntop_k = 0\nfactor = 2\n[[optimizers]]"), "top_k"),
        (("[[optimizers]]", "[confirm]\ntop_k = 2\nfactor = 0.5\n[[optimizers]]"), "factor"),
        (("[[optimizers]]", "[confirm]\ntop_k = 2\nfactor = 2000\n[[optimizers]]"), "factor"),
        (("[[optimizers]]", "[confirm]\ntop_k = 2\n[[optimizers]]"), "factor"),
    ],
)
def test_bad_noise_settings_are_refused_in_one_line(tmp_path, capsys, edit, message):
    f = tmp_path / "c.toml"
    f.write_text(CAMPAIGN.replace(*edit, 1))
    code, out, err = run_cli(["optimize", str(f), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_bad_errors_never_reach_the_database(tmp_path, capsys):
    db = run_campaign(_campaign(), tmp_path / "c", evaluator=noisy_evaluate)
    with CampaignStore(db) as st:
        t = st.trials()[0]
        for bad in ([-1.0], [float("nan")], [1.0, 2.0]):
            with pytest.raises(CaloptInputError, match=r"objective errors? must"):
                st.finish(t.id, status="done", objectives=[1.0], metrics={}, cost=1.0, channels=1, seconds=0.0,
                          objective_errors=bad)  # fmt: skip
    assert CampaignStore(db, read_only=True).trials()[0].objective_errors == t.objective_errors
    # a database whose error column was damaged is refused in one line, untouched
    with sqlite3.connect(db) as con:
        con.execute("UPDATE trials SET objective_errors = '[-2.0]' WHERE id = ?", (t.id,))
    damaged = db.read_bytes()
    code, _, err = run_cli(["report", str(tmp_path / "c"), "--out", str(tmp_path / "r.html")], capsys)
    assert code == 2 and "objective error must be a finite number >= 0" in err and len(err.strip().splitlines()) == 1
    assert db.read_bytes() == damaged and not (tmp_path / "r.html").exists()
