"""The shared training loop and the notebook setup call: budgets, seeds, determinism."""

import pytest
import torch
import torch.nn.functional as F

import hypercore as hc
from hypercore.book import setup
from hypercore.data import load_dataset


def smoke_run(seed: int) -> list[float]:
    cfg = setup(profile="full", device="cpu", seed=seed, plot_style=False)
    data = load_dataset("iris", seed=seed)
    hnet = hc.HyperNetwork.build(
        torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)),
        hc.TaskEmbedding(1, 4),
        head="chunk",
        chunk_size=32,
        body_hidden=(16,),
    )
    history = hc.fit(
        hnet,
        lambda m, x, y: F.cross_entropy(m(x, 0), y),
        (data.x_train, data.y_train),
        epochs=cfg.pick(full=3, smoke=2),
        batch_size=16,
        seed=seed,
        progress=False,
        evaluate=lambda m: {"acc": hc.accuracy(m(data.x_test, 0), data.y_test)},
    )
    return history["train_loss"][1:] + history["acc"]


def test_a_run_is_deterministic_on_repeat():
    assert smoke_run(0) == smoke_run(0)
    assert smoke_run(0) != smoke_run(1)


def test_fit_learns_and_records_history():
    data = load_dataset("iris")
    model = torch.nn.Linear(4, 3)
    history = hc.fit(
        model,
        lambda m, x, y: F.cross_entropy(m(x), y),
        (data.x_train, data.y_train),
        epochs=30,
        lr=0.05,
        progress=False,
        evaluate=lambda m: {"acc": hc.accuracy(m(data.x_test), data.y_test)},
    )
    frame = history.to_frame()
    assert list(frame["epoch"]) == list(range(31))
    assert history.last("acc") > 0.85 > history["acc"][0]
    assert history["train_loss"][-1] < history["train_loss"][1]


def test_fit_rejects_misaligned_data():
    with pytest.raises(ValueError, match="share their first dimension"):
        hc.fit(
            torch.nn.Linear(2, 2),
            lambda m, x, y: x.sum(),
            (torch.zeros(3, 2), torch.zeros(4)),
            epochs=1,
            progress=False,
        )


def test_environment_overrides_the_profile(monkeypatch):
    monkeypatch.setenv("HYPERCORE_PROFILE", "smoke")
    cfg = setup(profile="full", device="cpu", plot_style=False)
    assert cfg.profile == "smoke" and cfg.pick(full=100, smoke=3) == 3
    monkeypatch.delenv("HYPERCORE_PROFILE")
    assert setup(profile="full", device="cpu", plot_style=False).profile == "full"


def test_unknown_profile_and_missing_cuda_are_named(monkeypatch):
    monkeypatch.delenv("HYPERCORE_PROFILE", raising=False)
    monkeypatch.delenv("HYPERCORE_DEVICE", raising=False)  # the test command sets it
    with pytest.raises(ValueError, match="profile: expected one of"):
        setup(profile="fast", plot_style=False)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            setup(device="cuda", plot_style=False)


def test_auto_device_resolves():
    cfg = setup(device="auto", plot_style=False)
    assert cfg.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert str(cfg).startswith("profile=")
