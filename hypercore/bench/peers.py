"""The same hypernetwork training steps in hypercore, hypnettorch and HyperLight.

Every workload trains a hypernetwork that generates all weights of a 64-64-10
MLP (4,810 numbers) from an 8-dimensional condition through one hidden layer
of 32 units, with Adam, on a batch of 128 digits-sized inputs:

* ``one task per batch``: five learned task embeddings; the batch is one task.
* ``mixed-task batch``: the batch mixes the five tasks; every sample needs its
  task's weights.
* ``chunked``: the head generates chunks of 256 numbers from chunk embeddings.
* ``per-sample weights``: an encoder maps each input to its condition; every
  sample gets its own weights.

hypnettorch (0.0.4) and HyperLight (0.0.5) are optional (``pip install
hypercore[peers]``); a library without a workload's feature is skipped. The
peers' main networks apply one weight set per call, so their plain
per-sample step loops over the samples. A user can do better without leaving
their API: ``torch.func.vmap`` over the per-sample weights of the peer's own
functional forward (hypnettorch: ``mnet.forward(x, weights=...)``;
HyperLight: its ``using_externals`` context inside the vmapped function). The
``"hypnettorch + vmap"`` and ``"HyperLight + vmap"`` variants
(:data:`VMAP_LIBRARIES`) do that for the per-sample workload. hypercore never
loops over samples.

:func:`peer_times` times every workload with all libraries interleaved
(:func:`hypercore.measure.interleaved_times`), repeat by repeat.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

import hypercore as hc

NUM_TASKS, COND, HIDDEN, BATCH = 5, 8, 32, 128
WORKLOADS = ("one task per batch", "mixed-task batch", "chunked", "per-sample weights")

Step = tuple[Callable[[], None], nn.Module]


def _target() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _trainer(model: nn.Module, loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def step() -> None:
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def _data(device: torch.device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 64, generator=g).to(device)
    y = torch.randint(0, 10, (BATCH,), generator=g).to(device)
    tasks = (torch.arange(BATCH) % NUM_TASKS).to(device)
    return x, y, tasks


def hypercore_steps(device: torch.device) -> dict[str, Step]:
    x, y, tasks = _data(device)
    steps: dict[str, Step] = {}

    def task_net(**head):
        return hc.HyperNetwork.build(
            _target(), hc.TaskEmbedding(NUM_TASKS, COND), body_hidden=(HIDDEN,), **head
        ).to(device)

    net = task_net()
    steps["one task per batch"] = (_trainer(net, lambda: F.cross_entropy(net(x, 2), y)), net)
    mixed = task_net()
    steps["mixed-task batch"] = (
        _trainer(mixed, lambda: F.cross_entropy(mixed(x, tasks), y)),
        mixed,
    )
    chunked = task_net(head="chunk", chunk_size=256, embedding_dim=COND, hidden=HIDDEN)
    steps["chunked"] = (_trainer(chunked, lambda: F.cross_entropy(chunked(x, 2), y)), chunked)
    data = hc.HyperNetwork.build(
        _target(), hc.DataEncoder(64, COND, hidden=(HIDDEN,)), body_hidden=(HIDDEN,)
    ).to(device)
    steps["per-sample weights"] = (_trainer(data, lambda: F.cross_entropy(data(x), y)), data)
    return steps


def hypnettorch_steps(device: torch.device) -> dict[str, Step]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from hypnettorch.hnets import HMLP, ChunkedHMLP
        from hypnettorch.mnets import MLP
    x, y, tasks = _data(device)
    mnet = MLP(n_in=64, n_out=10, hidden_layers=(64,), no_weights=True, verbose=False).to(device)
    shapes = mnet.param_shapes
    steps: dict[str, Step] = {}

    def task_hnet():
        hnet = HMLP(
            shapes,
            uncond_in_size=0,
            cond_in_size=COND,
            layers=(HIDDEN,),
            num_cond_embs=NUM_TASKS,
            verbose=False,
        ).to(device)
        hnet.apply_hyperfan_init(mnet=mnet)
        return hnet

    net = task_hnet()
    steps["one task per batch"] = (
        _trainer(net, lambda: F.cross_entropy(mnet.forward(x, weights=net.forward(cond_id=2)), y)),
        net,
    )
    mixed = task_hnet()

    def mixed_loss():  # generate every task's weights, then run each task's samples
        weights = mixed.forward(cond_id=list(range(NUM_TASKS)), ret_format="sequential")
        loss = x.new_zeros(())
        for t in range(NUM_TASKS):
            rows = tasks == t
            loss = loss + F.cross_entropy(
                mnet.forward(x[rows], weights=weights[t]), y[rows], reduction="sum"
            )
        return loss / BATCH

    steps["mixed-task batch"] = (_trainer(mixed, mixed_loss), mixed)
    chunked = ChunkedHMLP(
        shapes,
        chunk_size=256,
        chunk_emb_size=COND,
        cond_in_size=COND,
        layers=(HIDDEN,),
        num_cond_embs=NUM_TASKS,
        verbose=False,
    ).to(device)
    steps["chunked"] = (
        _trainer(
            chunked, lambda: F.cross_entropy(mnet.forward(x, weights=chunked.forward(cond_id=2)), y)
        ),
        chunked,
    )
    encoder = nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, COND)).to(device)
    data = HMLP(
        shapes,
        uncond_in_size=COND,
        cond_in_size=0,
        layers=(HIDDEN,),
        num_cond_embs=0,
        verbose=False,
    ).to(device)
    both = nn.ModuleList([encoder, data])

    def per_sample_loss():  # one weight set per sample: apply them one at a time
        weights = data.forward(uncond_input=encoder(x), ret_format="sequential")
        logits = torch.cat([mnet.forward(x[i : i + 1], weights=w) for i, w in enumerate(weights)])
        return F.cross_entropy(logits, y)

    steps["per-sample weights"] = (_trainer(both, per_sample_loss), both)
    return steps


def hyperlight_steps(device: torch.device) -> dict[str, Step]:
    import hyperlight as hl

    x, y, tasks = _data(device)
    steps: dict[str, Step] = {}

    def hypernetized():
        main = _target()
        return hl.hypernetize(main, modules=hl.find_modules_of_type(main, [nn.Linear])).to(device)

    def task_model():  # HyperLight reads dense inputs: a one-hot task code, then 8 -> 32
        main = hypernetized()
        hnet = hl.HyperNet(
            input_shapes={"task": (NUM_TASKS,)},
            output_shapes=main.external_shapes(),
            hidden_sizes=[COND, HIDDEN],
            encoding=None,
        ).to(device)
        return main, hnet

    codes = torch.eye(NUM_TASKS, device=device)
    main, hnet = task_model()

    def one_task_loss(main=main, hnet=hnet):
        with main.using_externals(hnet(task=codes[2])):
            return F.cross_entropy(main(x), y)

    steps["one task per batch"] = (_trainer(hnet, one_task_loss), hnet)
    main2, hnet2 = task_model()

    def mixed_loss():
        loss = x.new_zeros(())
        for t in range(NUM_TASKS):
            rows = tasks == t
            with main2.using_externals(hnet2(task=codes[t])):
                loss = loss + F.cross_entropy(main2(x[rows]), y[rows], reduction="sum")
        return loss / BATCH

    steps["mixed-task batch"] = (_trainer(hnet2, mixed_loss), hnet2)
    main3 = hypernetized()
    encoder = nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, COND)).to(device)
    hnet3 = hl.HyperNet(
        input_shapes={"code": (COND,)},
        output_shapes=main3.external_shapes(),
        hidden_sizes=[HIDDEN],
        encoding=None,
    ).to(device)
    both = nn.ModuleList([encoder, hnet3])

    def per_sample_loss():
        params = hnet3(code=encoder(x))  # {name: (B, *shape)}
        logits = []
        for i in range(BATCH):
            with main3.using_externals({k: v[i] for k, v in params.items()}):
                logits.append(main3(x[i : i + 1]))
        return F.cross_entropy(torch.cat(logits), y)

    steps["per-sample weights"] = (_trainer(both, per_sample_loss), both)
    return steps


def hypnettorch_vmap_steps(device: torch.device) -> dict[str, Step]:
    """The per-sample workload in hypnettorch, its main network's forward vmapped over
    the per-sample weights instead of looped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from hypnettorch.hnets import HMLP
        from hypnettorch.mnets import MLP
    x, y, _ = _data(device)
    mnet = MLP(n_in=64, n_out=10, hidden_layers=(64,), no_weights=True, verbose=False).to(device)
    shapes = [tuple(s) for s in mnet.param_shapes]
    encoder = nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, COND)).to(device)
    data = HMLP(
        shapes, uncond_in_size=COND, cond_in_size=0, layers=(HIDDEN,), num_cond_embs=0,
        verbose=False,
    ).to(device)  # fmt: skip
    both = nn.ModuleList([encoder, data])

    def one_sample(xi, *weights):
        return mnet.forward(xi.unsqueeze(0), weights=list(weights)).squeeze(0)

    batched = vmap(one_sample)

    def per_sample_loss():
        flat = data.forward(uncond_input=encoder(x), ret_format="flattened")  # (B, total)
        pieces = flat.split([math.prod(s) for s in shapes], dim=1)
        weights = [p.view(len(x), *s) for p, s in zip(pieces, shapes, strict=True)]
        return F.cross_entropy(batched(x, *weights), y)

    return {"per-sample weights": (_trainer(both, per_sample_loss), both)}


def hyperlight_vmap_steps(device: torch.device) -> dict[str, Step]:
    """The per-sample workload in HyperLight, the hypernetized module run under vmap with
    each sample's weights set by ``using_externals`` inside the vmapped function."""
    import hyperlight as hl

    x, y, _ = _data(device)
    main = _target()
    main = hl.hypernetize(main, modules=hl.find_modules_of_type(main, [nn.Linear])).to(device)
    encoder = nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, COND)).to(device)
    hnet = hl.HyperNet(
        input_shapes={"code": (COND,)},
        output_shapes=main.external_shapes(),
        hidden_sizes=[HIDDEN],
        encoding=None,
    ).to(device)
    both = nn.ModuleList([encoder, hnet])

    def one_sample(xi, params):
        with main.using_externals(params):
            return main(xi.unsqueeze(0)).squeeze(0)

    batched = vmap(one_sample)

    def per_sample_loss():
        return F.cross_entropy(batched(x, hnet(code=encoder(x))), y)

    return {"per-sample weights": (_trainer(both, per_sample_loss), both)}


LIBRARIES: dict[str, Callable[[torch.device], dict[str, Step]]] = {
    "hypercore": hypercore_steps,
    "hypnettorch": hypnettorch_steps,
    "HyperLight": hyperlight_steps,
}

#: The peers' per-sample workload with ``torch.func.vmap`` instead of a loop.
VMAP_LIBRARIES: dict[str, Callable[[torch.device], dict[str, Step]]] = {
    "hypnettorch + vmap": hypnettorch_vmap_steps,
    "HyperLight + vmap": hyperlight_vmap_steps,
}

_MODULES = {"hypnettorch": "hypnettorch", "HyperLight": "hyperlight"}


def available_libraries(vmap: bool = False) -> list[str]:
    """The libraries importable here (hypercore always); with ``vmap=True``, also the
    peers' vmap variants (:data:`VMAP_LIBRARIES`)."""
    names = ["hypercore"]
    for name, module in _MODULES.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                __import__(module)
        except ImportError:
            continue
        names.append(name)
        if vmap:
            names.append(f"{name} + vmap")
    return names


def _steps(library: str, device: torch.device) -> dict[str, Step]:
    return {**LIBRARIES, **VMAP_LIBRARIES}[library](device)


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def peer_times(
    device: torch.device,
    repeats: int = 5,
    block: float = 0.1,
    vmap: bool = True,
    warmup: int = 2,
) -> list[dict]:
    """Time one training step of every workload in every available library, the
    libraries interleaved repeat by repeat (:func:`hypercore.measure.interleaved_times`).

    Returns:
        One row per (workload, library, repeat): ``ms per step`` and
        ``trainable parameters``.
    """
    from hypercore.measure import interleaved_times

    libraries = available_libraries(vmap=vmap)
    built = {}
    for library in libraries:
        torch.manual_seed(0)
        built[library] = _steps(library, device)
    rows = []
    for workload in WORKLOADS:
        present = [lib for lib in libraries if workload in built[lib]]
        times = interleaved_times(
            {lib: built[lib][workload][0] for lib in present}, device, repeats, block, warmup
        )
        for lib in present:
            size = _trainable(built[lib][workload][1])
            for r, seconds in enumerate(times[lib]):
                rows.append(
                    {
                        "workload": workload,
                        "library": lib,
                        "repeat": r,
                        "ms per step": 1e3 * seconds,
                        "trainable parameters": size,
                    }
                )
    return rows


def peer_rows(device: torch.device, repeats: int = 10) -> list[dict]:
    """Time one training step of every workload in every available library."""
    from hypercore.measure import measure

    rows = []
    for library in available_libraries():
        for workload, (step, model) in LIBRARIES[library](device).items():
            torch.manual_seed(0)
            cost = measure(step, device, repeats=repeats)
            rows.append(
                {
                    "workload": workload,
                    "library": library,
                    "ms per step": cost.ms,
                    "trainable parameters": sum(
                        p.numel() for p in model.parameters() if p.requires_grad
                    ),
                }
            )
    return rows
