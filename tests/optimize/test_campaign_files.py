"""Campaign databases and ``calopt report`` given the wrong files (issue #19): a file that is
not a calopt campaign database is refused in one line without being changed, or anything
created beside it; the report says what its input is when it is not a campaign folder, and
replaces an earlier report but no other file."""

import hashlib
import shutil
import sqlite3

import h5py
import pytest

from calopt.errors import CaloptInputError
from calopt.optimize.campaign import run_campaign
from calopt.optimize.store import CampaignStore
from calopt.report.html import is_report, write_report
from tests.helpers import run_cli
from tests.optimize.fake import fake_evaluate
from tests.optimize.test_campaign import campaign


def _snapshot(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files") / "c"
    run_campaign(campaign(), folder, evaluator=fake_evaluate)
    (folder / "report.html").unlink(missing_ok=True)
    return folder


@pytest.fixture
def camp(finished, tmp_path):
    folder = tmp_path / "c"
    shutil.copytree(finished, folder)
    return folder


def _database(path, sql):
    db = sqlite3.connect(path)
    db.executescript(sql)
    db.commit()
    db.close()
    return path


def _refused_untouched(path, message):
    folder = path.parent
    before = _snapshot(folder)
    with pytest.raises(CaloptInputError, match=message) as exc:
        CampaignStore(path)
    assert "\n" not in str(exc.value) and "campaign" in str(exc.value)
    assert _snapshot(folder) == before  # not changed, nothing created beside it


def test_files_that_are_not_campaign_databases(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "campaign.sqlite").write_bytes(b"not a database\n" * 100)
    _refused_untouched(tmp_path / "a" / "campaign.sqlite", "is a text file, not a calopt campaign database")
    (tmp_path / "b").mkdir()
    other = _database(tmp_path / "b" / "campaign.sqlite", "CREATE TABLE runs (id INTEGER, name TEXT);")
    _refused_untouched(other, "is an SQLite database with tables runs, not a calopt campaign database")
    (tmp_path / "c").mkdir()
    half = _database(tmp_path / "c" / "campaign.sqlite", "CREATE TABLE campaign (key TEXT, value TEXT);")
    _refused_untouched(half, r"SQLite database with tables campaign, not a calopt campaign database \(no trials")


def test_damaged_campaign_databases(camp, tmp_path):
    db = camp / "campaign.sqlite"
    (tmp_path / "v").mkdir()
    newer = tmp_path / "v" / "campaign.sqlite"
    shutil.copy(db, newer)
    _database(newer, "UPDATE campaign SET value = '99' WHERE key = 'schema_version';")
    _refused_untouched(newer, "has schema version 99; this calopt reads versions 1, 2")
    (tmp_path / "t").mkdir()
    cut = tmp_path / "t" / "campaign.sqlite"
    data = db.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    _refused_untouched(cut, "campaign database '.*' (cannot be read, truncated or corrupt|is damaged)")


def test_read_only_store_creates_nothing(camp):
    before = _snapshot(camp)
    with CampaignStore(camp / "campaign.sqlite", read_only=True) as st:
        assert len(st.trials()) > 0 and st.get_meta("digest")
    assert _snapshot(camp) == before and sorted(p.name for p in camp.iterdir()) == sorted(before)
    with pytest.raises(CaloptInputError, match=r"campaign database '.*none.sqlite' does not exist"):
        CampaignStore(camp / "none.sqlite", read_only=True)


def test_report_says_what_its_input_is(camp, tmp_path):
    (tmp_path / "c.toml").write_text('name = "x"\n')
    with pytest.raises(CaloptInputError, match=r"'.*c.toml' is a TOML file, expected a campaign folder \(holding "
                                               r"campaign.sqlite\)"):  # fmt: skip
        write_report(tmp_path / "c.toml")
    with pytest.raises(CaloptInputError, match=r"campaign folder '.*nowhere' does not exist"):
        write_report(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaloptInputError, match=r"'.*empty' is not a campaign folder: no campaign.sqlite in it"):
        write_report(tmp_path / "empty")
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == []
    with CampaignStore(tmp_path / "new" / "campaign.sqlite") as st:  # created, never started
        st.set_meta(name="new")
    with pytest.raises(CaloptInputError, match="holds no campaign settings"):
        write_report(tmp_path / "new")
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["campaign.sqlite"]


def test_report_replaces_a_report_but_no_other_file(camp, tmp_path):
    (tmp_path / "notes.html").write_text("<html><head><title>my notes</title></head></html>")
    (tmp_path / "notes.txt").write_text("notes\n")
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.attrs["format"] = "calopt-showers"
    cases = [
        ("notes.html", r"--out '.*notes.html' is an HTML page, not a calopt report \(HTML page\); refusing"),
        ("notes.txt", r"--out '.*notes.txt' is a text file; the report is an .html file"),
        ("s.h5", r"--out '.*s.h5' is a calopt-showers file; the report is an .html file"),
        ("c", r"--out '.*c' is a folder"),
    ]
    before = _snapshot(tmp_path)
    for name, message in cases:
        with pytest.raises(CaloptInputError, match=message):
            write_report(camp, tmp_path / name)
    assert _snapshot(tmp_path) == before
    # an earlier calopt's report (no generator tag) and this one's are replaced
    old = tmp_path / "old.html"
    old.write_text("<html><head><meta charset='utf-8'><title>calopt campaign quick</title></head></html>")
    assert is_report(old)
    write_report(camp, old)
    text = old.read_text()
    assert '<meta name="generator" content="calopt ' in text and "Best so far" in text and is_report(old)
    write_report(camp, old)
    assert not is_report(tmp_path / "notes.html") and not is_report(tmp_path / "s.h5")
    # the campaign folder is read, not written (no journal files): only its report is new
    campaign_files = set(_snapshot(camp))
    write_report(camp)
    assert set(_snapshot(camp)) == campaign_files | {"report.html"}


def test_cli_report_one_line(tmp_path, capsys):
    (tmp_path / "x.toml").write_text('name = "x"\n')
    code, out, err = run_cli(["report", str(tmp_path / "x.toml")], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "is a TOML file, expected a campaign folder" in err and "output folder" not in err
