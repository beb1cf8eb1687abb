"""Resumable surrogate training: a training killed (several times, in every kind of phase) and
started again gives the checkpoint of an uninterrupted one, bit for bit; the training state
of other settings is refused, or discarded with --overwrite."""

from __future__ import annotations

import pytest
import torch

from calopt.errors import CaloptInputError
from calopt.simulation.showers import write_showers
from calopt.simulation.surrogates.checkpoint import load_checkpoint
from calopt.simulation.surrogates.training import train_surrogate
from tests.simulation.test_surrogates import CROP, TINY, run_cli, synthetic_showers

EVERY = 4  # steps between two saves of the training state
# model: (steps, settings, units of work after which a run is killed). wgan: in the regressor,
# then twice in the generator (around a full window of the W history); flow: before and after
# the first full window of the NLL history; adagan: 6 regressor steps, then 3 x (8 generator
# steps), with 6 mixture-discriminator steps before the 2nd and 3rd: killed 4 steps after
# the start of the first generator, at the last step of the first discriminator, in the
# second discriminator and in the last generator.
CASES = {
    "wgan": (104, {"reg_steps": 12}, [10, 60, 110]),
    "flow": (120, {}, [50, 110]),
    "adagan": (24, {"reg_steps": 6, "components": 3, "disc_steps": 6}, [10, 20, 30, 40]),
}


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "train.h5"
    write_showers(path, synthetic_showers(96, 1))
    return path


def train(model_type, data_file, out, *, kill_at=None, log=None, seed=3, overwrite=False):
    steps, settings, _ = CASES[model_type]

    def progress(done, total):
        if kill_at is not None and done >= kill_at:
            raise Killed

    return train_surrogate(
        model_type, [data_file], out, steps=steps, seed=seed, crop=CROP, energy_range_gev=(1, 100),
        theta_max=0.3, settings={**TINY, **settings}, progress=progress, log=log, overwrite=overwrite,
        save_every=EVERY,
    )  # fmt: skip


def assert_same_training(a, b):
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), k
    assert a["training"]["summary"] == b["training"]["summary"]
    assert a.get("mixture_weights") == b.get("mixture_weights")


@pytest.mark.parametrize("model_type", list(CASES))
def test_killed_training_resumes_to_the_same_checkpoint(data_file, tmp_path, model_type):
    whole = train(model_type, data_file, tmp_path / "whole.pt")
    out = tmp_path / "m.pt"
    partial = tmp_path / "m.pt.partial"
    said: list[str] = []
    for kill_at in CASES[model_type][2]:
        with pytest.raises(Killed):
            train(model_type, data_file, out, kill_at=kill_at, log=said.append)
        assert partial.is_file() and not out.exists()
    train(model_type, data_file, out, log=said.append)
    assert not partial.exists()
    assert len(said) == len(CASES[model_type][2])  # every run after the first resumed
    if model_type == "wgan":
        assert said[0] == f"resuming the training saved in {str(partial)!r} at step 8 of regressor"
    if model_type == "adagan":
        assert said[1].endswith("at step 4 of discriminator 2/3")
    assert_same_training(load_checkpoint(out), load_checkpoint(tmp_path / "whole.pt"))
    assert_same_training(load_checkpoint(out), whole)


def test_training_state_of_other_settings_is_refused(data_file, tmp_path, capsys):
    out = tmp_path / "m.pt"
    partial = tmp_path / "m.pt.partial"
    with pytest.raises(Killed):
        train("flow", data_file, out, kill_at=50, seed=1)
    saved = partial.read_bytes()
    with pytest.raises(CaloptInputError, match=r"m\.pt\.partial' holds an unfinished training with other settings"):
        train("flow", data_file, out, seed=2)
    assert partial.read_bytes() == saved  # left alone
    # --overwrite discards it and trains from the start
    ck = train("flow", data_file, out, seed=2, overwrite=True)
    assert not partial.exists()
    assert_same_training(ck, train("flow", data_file, tmp_path / "fresh.pt", seed=2))
    # the command line: one line, exit code 2; --overwrite goes on
    argv = ["surrogate", "train", "--model", "flow", "--data", str(data_file), "--out", str(tmp_path / "c.pt")]
    argv += ["--steps", "3", "--crop", str(CROP)]
    (tmp_path / "c.pt.partial").write_text("not a training state")
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "c.pt.partial" in err and "--overwrite" in err and err.count("\n") == 1
    code, _, err = run_cli([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert not (tmp_path / "c.pt.partial").exists() and (tmp_path / "c.pt").is_file()
