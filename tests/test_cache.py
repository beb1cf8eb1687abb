"""The disk cache: keys change with every stage version and with a checkpoint's content, and
``calopt cache list|clear`` shows and removes the entries."""

import json
import os
import shutil
from dataclasses import replace

import pytest

import calopt.generation.runner as runner
import calopt.readout.readout as readout_module
import calopt.reconstruction.regression as regression
import calopt.simulation.cascade.simulator as cascade
import calopt.simulation.gflash as gflash
import calopt.simulation.library as library
from calopt.cache import cache_key, file_digest, stage_dir
from calopt.errors import CaloptInputError
from calopt.generation.runner import EventSpec, cached_events
from calopt.readout import ReadoutSettings
from calopt.reconstruction.regression import TrainingSettings, get_reconstruction, regressor_key_doc
from calopt.simulation.base import backend_identity
from calopt.simulation.library import LibrarySpec, get_library
from tests.helpers import run_cli

SPEC = LibrarySpec("lhcb-shashlik", "em", (1.0, 5.0), (0.0,), 1)
READOUT = ReadoutSettings(library_energies=(1.0, 5.0), library_angles=(0.0,), library_n_per_point=1)
TRAINING = TrainingSettings(n_train=20, energy_range=(1.0, 5.0), overlay_fraction=0.0)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """A cache of this test's own, and no libraries loaded in memory by other tests."""
    monkeypatch.setenv("CALOPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(library, "_LOADED", {})
    return tmp_path / "cache"


def _files(stage, pattern="*"):
    return {p.name for p in stage_dir(stage).glob(pattern)}


def test_cache_key_is_canonical():
    assert cache_key("libraries", {"a": 1, "b": [1.0, 2]}) == cache_key("libraries", {"b": (1.0, 2), "a": 1})
    assert cache_key("libraries", {"a": 1}) != cache_key("events", {"a": 1})
    assert len(cache_key("events", {})) == 16


def test_file_digest_follows_the_content(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"abcd")
    first = file_digest(f)
    assert first == file_digest(str(f))  # memoised, same answer
    f.write_bytes(b"abce")  # same size, rewritten later
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert file_digest(f) != first


def test_library_version_gives_a_new_entry(monkeypatch):
    get_library(SPEC)
    before = _files("libraries", "*.h5")
    key = SPEC.key()
    assert before == {f"lhcb-shashlik-em-{key}.h5"}
    get_library(SPEC)  # reused: from memory and from disk
    assert _files("libraries", "*.h5") == before
    monkeypatch.setattr(library, "LIBRARY_VERSION", library.LIBRARY_VERSION + 1)
    assert SPEC.key() != key
    lib = get_library(SPEC)
    after = _files("libraries", "*.h5")
    assert after - before == {f"lhcb-shashlik-em-{SPEC.key()}.h5"} and before < after
    assert lib.spec == SPEC


def test_generator_versions_change_library_keys(monkeypatch):
    gf = LibrarySpec("lhcb-shashlik", "em", (1.0, 5.0), (0.0,), 1, generator="gflash")
    keys = (SPEC.key(), gf.key())
    assert keys[0] != keys[1]
    monkeypatch.setattr(cascade, "CASCADE_VERSION", cascade.CASCADE_VERSION + 1)
    assert backend_identity("cascade") == f"cascade-v{cascade.CASCADE_VERSION}"
    assert SPEC.key() != keys[0] and gf.key() == keys[1]
    monkeypatch.setattr(gflash, "GFLASH_VERSION", gflash.GFLASH_VERSION + 1)
    assert gf.key() != keys[1]


def test_retrained_checkpoint_is_not_reused(tmp_path):
    ckpt = tmp_path / "model.pt"  # the key only reads the file's bytes: any content will do
    ckpt.write_bytes(b"first training")
    spec = LibrarySpec("lhcb-shashlik", "em", (1.0, 5.0), (0.0,), 1, generator=str(ckpt))
    ident, key = backend_identity(str(ckpt)), spec.key()
    assert ident.startswith("surrogate-sha256:")
    readout = replace(READOUT, fastsim=str(ckpt))
    reco_key = cache_key("regressors", regressor_key_doc("lhcb-shashlik", 40.4, readout, TRAINING))
    ckpt.write_bytes(b"second training, same path")  # retrained in place
    assert backend_identity(str(ckpt)) != ident
    assert spec.key() != key
    assert cache_key("regressors", regressor_key_doc("lhcb-shashlik", 40.4, readout, TRAINING)) != reco_key
    with pytest.raises(CaloptInputError, match="does not exist"):
        backend_identity(str(tmp_path / "missing.pt"))
    with pytest.raises(CaloptInputError, match="unknown backend"):
        backend_identity("nope")


def test_shipped_surrogate_is_identified_by_its_content(tmp_path):
    from calopt.simulation.surrogates.simulator import DEFAULT_MODEL

    copy = tmp_path / "copy.pt"
    shutil.copyfile(DEFAULT_MODEL, copy)
    assert backend_identity("surrogate") == backend_identity(str(copy)) == f"surrogate-sha256:{file_digest(copy)}"
    with open(copy, "ab") as f:
        f.write(b"\0")
    assert backend_identity(str(copy)) != backend_identity("surrogate")


def test_regressor_key_follows_its_stages(monkeypatch):
    def key():
        return cache_key("regressors", regressor_key_doc("lhcb-shashlik", 40.4, READOUT, TRAINING))

    get_reconstruction("lhcb-shashlik", 40.4, READOUT, TRAINING)
    first = key()
    assert _files("regressors", "*.json") == {f"lhcb-shashlik-40.4-{first}.json"}
    seen = {first}
    for module, name in [(regression, "RECONSTRUCTION_VERSION"), (readout_module, "READOUT_VERSION"),
                         (cascade, "CASCADE_VERSION"), (library, "LIBRARY_VERSION")]:  # fmt: skip
        monkeypatch.setattr(module, name, getattr(module, name) + 1)
        assert key() not in seen, name
        seen.add(key())
    get_reconstruction("lhcb-shashlik", 40.4, READOUT, TRAINING)  # trained again under the new key
    assert _files("regressors", "*.json") == {f"lhcb-shashlik-40.4-{first}.json", f"lhcb-shashlik-40.4-{key()}.json"}
    # with pile-up, the pile-up crossings' version enters too
    pu = TrainingSettings(pileup=5.0)
    pu_key = cache_key("regressors", regressor_key_doc("lhcb-shashlik", 40.4, READOUT, pu))
    monkeypatch.setattr(runner, "EVENTS_VERSION", runner.EVENTS_VERSION + 1)
    assert cache_key("regressors", regressor_key_doc("lhcb-shashlik", 40.4, READOUT, pu)) != pu_key
    assert key() in seen  # without pile-up, no events


def test_events_version_changes_the_key(monkeypatch):
    spec = EventSpec(process="gun", n=2)
    key = spec.key()
    monkeypatch.setattr(runner, "EVENTS_VERSION", runner.EVENTS_VERSION + 1)
    assert spec.key() != key


def _fill():
    get_library(SPEC)
    cached_events(EventSpec(process="gun", n=2))
    fake = {"xgb": {}, "parametric": {}, "inputs": {"training": {"n_train": 7, "pileup": 3.0},
                                                    "readout": {"fastsim": None}}}  # fmt: skip
    (stage_dir("regressors")).mkdir(parents=True)
    (stage_dir("regressors") / "lhcb-shashlik-40.4-0123456789abcdef.json").write_text(json.dumps(fake))


def test_cli_list_and_clear(own_cache, capsys):
    _fill()
    code, out, _ = run_cli(["cache", "list", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["cache"] == str(own_cache)
    by_stage = {e["stage"]: e for e in doc["entries"]}
    assert len(doc["entries"]) == 3 and set(by_stage) == {"libraries", "regressors", "events"}  # no reconstruction made
    lib = by_stage["libraries"]
    assert lib["name"] == f"lhcb-shashlik-em-{SPEC.key()}.h5" and lib["key"] == SPEC.key()
    assert lib["holds"] | {"generator_identity": None} == {
        "technology": "lhcb-shashlik", "particle_class": "em", "generator": "cascade", "energies": 2, "angles": 1,
        "n_per_point": 1, "seed": 0, "generator_identity": None}  # fmt: skip
    assert lib["holds"]["generator_identity"] == backend_identity("cascade")
    assert by_stage["regressors"]["holds"] == {"technology": "lhcb-shashlik", "cell_size_mm": 40.4, "n_train": 7,
                                               "pileup": 3.0, "fastsim": None}  # fmt: skip
    assert by_stage["events"]["holds"] == {"process": "gun", "n": 2, "pileup": 0.0, "seed": 0}
    assert doc["total"] == {"entries": 3, "size_bytes": sum(e["size_bytes"] for e in doc["entries"])}
    assert doc["stages"]["libraries"] == {"entries": 1, "size_bytes": lib["size_bytes"]}

    code, out, _ = run_cli(["cache", "list"], capsys)
    assert code == 0 and "lhcb-shashlik em showers by cascade-v1" in out and "total: 3 entries" in out

    code, out, _ = run_cli(["cache", "clear", "--stage", "libraries"], capsys)
    assert code == 0 and "removed 1 entry" in out
    assert not list(stage_dir("libraries").iterdir())  # the entry and its .lock file
    assert _files("events", "*.h5") and _files("regressors")
    code, out, _ = run_cli(["cache", "list", "--json", "--stage", "libraries"], capsys)
    assert json.loads(out)["total"] == {"entries": 0, "size_bytes": 0}

    code, out, _ = run_cli(["cache", "clear", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["total"]["entries"] == 2 and doc["locks_removed"] == 1  # events' lock
    assert {e["stage"] for e in doc["removed"]} == {"events", "regressors"}
    assert not list(stage_dir("events").iterdir()) and not list(stage_dir("regressors").iterdir())


def test_cli_empty_cache_and_bad_stage(own_cache, capsys):
    code, out, _ = run_cli(["cache", "list", "--json"], capsys)
    assert code == 0 and json.loads(out)["total"] == {"entries": 0, "size_bytes": 0}
    code, out, _ = run_cli(["cache", "clear"], capsys)
    assert code == 0 and "removed 0 entries" in out
    assert not own_cache.exists()
    code, out, err = run_cli(["cache", "clear", "--stage", "showers"], capsys)
    assert code == 2 and out == ""
    expected = "libraries, regressors, events, reconstructions"
    assert err.strip() == f"calopt: error: unknown cache stage 'showers'; expected one of {expected}"
