"""The CaloChallenge's low-level classifier test (``calopt surrogate evaluate --protocol calochallenge``).

A faithful re-implementation of the official evaluation, ``code/evaluate.py`` of
github.com/CaloChallenge/homepage (mode ``cls-low``; read at commit 9b41df7, 2025-08-07), so
that its AUCs can be set beside the tables of the CaloChallenge write-up (arXiv:2410.21611):

* inputs per shower: [log10(E_inc / MeV), voxel energies / E_inc] (``prepare_low_data_for_classifier``,
  ``normed=False``), voxels below a readout threshold set to 0 (``args.min_energy``; calopt's
  cells have no readout threshold, so the default here is 0); label 0 for the model, 1 for the
  reference;
* split 60 % train / 20 % test / 20 % validation of each sample, shuffled (``ttv_split``);
* network ``DNN``: Linear(d, 2048), LeakyReLU, then ``cls_n_layer`` = 2 times Linear(2048,
  2048), LeakyReLU, then Linear(2048, 1); dropout probability 0 (``cls_dropout_probability``);
  torch's default initialisation, float64 (``torch.set_default_dtype(torch.float64)``);
* BCEWithLogitsLoss, Adam with learning rate 2e-4 (``cls_lr``), batch 1000 (``cls_batch_size``),
  training batches shuffled, 50 epochs (``cls_n_epochs``); after each epoch the accuracy on the
  test split is measured and the network of the best epoch kept (``train_and_evaluate_cls``);
  training stops early at a test accuracy of 1;
* the kept network's sigmoid outputs on the test split calibrate it with isotonic regression
  (``calibrate_classifier``: sklearn ``IsotonicRegression(out_of_bounds='clip', y_min=1e-6,
  y_max=1 - 1e-6)``); the calibrated outputs on the validation split give the AUC (sklearn
  ``roc_auc_score``) and JSD = (log 2 - BCE) / log 2 (``evaluate_cls(final_eval=True)``).

``evaluate.py`` trains once per call; the write-up's tables give each AUC with its standard
deviation over repeated evaluations (``final_results/reference_creation.ipynb``: "low-level AUC +
STD"). Here ``trainings`` independent runs (each its own split and initialisation, seeds derived
from ``seed``) give the mean and the sample standard deviation. Defaults are the official
settings; fewer epochs and trainings are for tests and quick looks only, and their AUCs are then
not comparable with the tables.

calopt's showers carry conditions beyond the energy (direction, entry point) that the
CaloChallenge's datasets fix; the protocol, like the original, sees only the energy, so a model
is judged on its showers for the reference's particles (``calopt surrogate evaluate`` simulates
exactly those). Samples of unequal size are cut to the smaller one (``ttv_split`` asserts equal
sizes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from calopt.simulation.showers import Showers

__all__ = ["ProtocolSettings", "calochallenge_auc", "low_level_inputs"]


@dataclass(frozen=True)
class ProtocolSettings:
    """The classifier's settings; the defaults are ``evaluate.py``'s (module doc)."""

    epochs: int = 50
    trainings: int = 5
    batch_size: int = 1000
    learning_rate: float = 2e-4
    hidden: int = 2048
    hidden_layers: int = 2
    dropout: float = 0.0
    threshold_mev: float = 0.0
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)

    def __post_init__(self) -> None:
        from calopt.errors import CaloptInputError

        if self.epochs < 1 or self.trainings < 1 or self.batch_size < 1 or self.hidden < 1 or self.hidden_layers < 0:
            raise CaloptInputError("the CaloChallenge classifier needs at least 1 epoch, training, batch row and unit")


def low_level_inputs(sh: Showers, threshold_mev: float = 0.0) -> np.ndarray:
    """(N, 1 + voxels) float64: log10(E_inc / MeV) and the voxel energies / E_inc, voxels below
    ``threshold_mev`` zeroed (``prepare_low_data_for_classifier`` of ``evaluate.py``)."""
    e = np.asarray(sh.incident_energies, np.float64).reshape(-1, 1)
    v = np.asarray(sh.showers, np.float64).reshape(len(sh), -1)
    v = np.where(v < threshold_mev, 0.0, v)
    return np.hstack([np.log10(e), v / e])


def _split(x: np.ndarray, fractions: tuple[float, float, float], rng: np.random.Generator) -> list[np.ndarray]:
    counts = (len(x) * np.asarray(fractions)).astype(int)
    return np.split(x[rng.permutation(len(x))], counts.cumsum()[:-1])


def _network(d: int, s: ProtocolSettings) -> Any:
    import torch

    layers: list[torch.nn.Module] = [torch.nn.Linear(d, s.hidden), torch.nn.LeakyReLU(), torch.nn.Dropout(s.dropout)]
    for _ in range(s.hidden_layers):
        layers += [torch.nn.Linear(s.hidden, s.hidden), torch.nn.LeakyReLU(), torch.nn.Dropout(s.dropout)]
    layers.append(torch.nn.Linear(s.hidden, 1))
    return torch.nn.Sequential(*layers).to(torch.float64)


def _scores(net: Any, x: Any, batch: int) -> np.ndarray:
    import torch

    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(x[i : i + batch]).reshape(-1) for i in range(0, len(x), batch)])
    return torch.sigmoid(logits).numpy()


def _one_training(model_x: np.ndarray, ref_x: np.ndarray, s: ProtocolSettings, seed: int,
                  epoch_done: Callable[[], None]) -> dict[str, Any]:  # fmt: skip
    import torch
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCC]))
    parts_m = _split(model_x, s.split, rng)
    parts_r = _split(ref_x, s.split, rng)
    sets = []
    for pm, pr in zip(parts_m, parts_r):
        x = np.vstack([pm, pr])
        y = np.concatenate([np.zeros(len(pm)), np.ones(len(pr))])
        order = rng.permutation(len(y))
        sets.append((torch.from_numpy(x[order]), y[order]))
    (x_tr, y_tr), (x_te, y_te), (x_va, y_va) = sets
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed % (2**63))
        net = _network(x_tr.shape[1], s)
        opt = torch.optim.Adam(net.parameters(), lr=s.learning_rate)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        t_tr = torch.from_numpy(y_tr).reshape(-1, 1)
        gen = torch.Generator().manual_seed(seed % (2**63))
        best_acc, best_epoch, best_state = -math.inf, 0, None
        for epoch in range(1, s.epochs + 1):
            net.train()
            for idx in torch.randperm(len(x_tr), generator=gen).split(s.batch_size):
                loss = loss_fn(net(x_tr[idx]), t_tr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            acc = float(np.mean(np.round(_scores(net, x_te, s.batch_size)) == y_te))
            epoch_done()
            if acc > best_acc:
                best_acc, best_epoch = acc, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if acc == 1.0:
                break
        assert best_state is not None
        net.load_state_dict(best_state)
        p_te, p_va = _scores(net, x_te, s.batch_size), _scores(net, x_va, s.batch_size)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1.0 - 1e-6).fit(p_te, y_te)
    p = iso.predict(p_va)
    bce = -float(np.mean(y_va * np.log(p) + (1 - y_va) * np.log(1 - p)))
    return {
        "auc": float(roc_auc_score(y_va, p)),
        "auc_uncalibrated": float(roc_auc_score(y_va, p_va)),
        "jsd": (math.log(2.0) - bce) / math.log(2.0),
        "best_epoch": best_epoch,
        "test_accuracy": best_acc,
    }


def calochallenge_auc(model: Showers, ref: Showers, seed: int = 0, settings: ProtocolSettings | None = None,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """The CaloChallenge low-level classifier's AUC of ``model`` against ``ref`` (module doc):
    ``auc_mean`` and ``auc_std`` (sample standard deviation, 0 for one training) over
    ``trainings`` runs, the JSD likewise, each run's numbers, and the settings. Deterministic
    for a ``seed`` on one machine and torch version. ``progress(epochs done, epochs at most)`` is
    called after every epoch."""
    s = settings or ProtocolSettings()
    n = min(len(model), len(ref))
    xm, xr = low_level_inputs(model, s.threshold_mev)[:n], low_level_inputs(ref, s.threshold_mev)[:n]
    done = [0]

    def epoch_done() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], s.trainings * s.epochs)

    runs = []
    for i, ss in enumerate(np.random.SeedSequence([int(seed), 0x2022]).spawn(s.trainings)):
        done[0] = i * s.epochs  # a training stopped early at test accuracy 1 skips its remaining epochs
        runs.append(_one_training(xm, xr, s, int(ss.generate_state(1, np.uint64)[0] % (2**63)), epoch_done))
    aucs = np.array([r["auc"] for r in runs])
    jsds = np.array([r["jsd"] for r in runs])

    def std(v: np.ndarray) -> float:
        return float(v.std(ddof=1)) if len(v) > 1 else 0.0

    return {
        "protocol": "CaloChallenge 2022 low-level classifier (homepage code/evaluate.py, cls-low)",
        "auc_mean": float(aucs.mean()),
        "auc_std": std(aucs),
        "jsd_mean": float(jsds.mean()),
        "jsd_std": std(jsds),
        "trainings": s.trainings,
        "epochs": s.epochs,
        "official": s == ProtocolSettings(trainings=s.trainings),
        "n_per_sample": n,
        "n_train": int(2 * int(n * s.split[0])),
        "n_test": int(2 * int(n * s.split[1])),
        "n_validation": int(2 * (n - int(n * s.split[0]) - int(n * s.split[1]))),
        "runs": runs,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()},
    }
