"""Training with DistributedDataParallel (2 CPU processes, gloo) equals one process.

Two processes each take half of a global batch; DDP averages their gradients,
which equals the gradient of the mean loss over the whole batch, so after the
same steps the parameters agree with a single-process run (up to float
round-off). This is the documented multi-process path (README, "Training on
several processes").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import hypercore as hc

STEPS, BATCH, TASKS = 5, 16, 3


def build() -> hc.HyperNetwork:
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    return hc.HyperNetwork.build(target, hc.TaskEmbedding(TASKS, 4), head="chunk", chunk_size=16)


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, BATCH, 6, generator=g)
    y = torch.randint(0, 3, (STEPS, BATCH), generator=g)
    tasks = torch.randint(0, TASKS, (STEPS, BATCH), generator=g)
    return x, y, tasks


def train(model: nn.Module, shard: slice) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y, tasks = data()
    for step in range(STEPS):
        opt.zero_grad()
        out = model(x[step, shard], tasks[step, shard])
        F.cross_entropy(out, y[step, shard]).backward()
        opt.step()


def worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        hnet = build()
        ddp = DistributedDataParallel(hnet)
        half = BATCH // world
        train(ddp, slice(rank * half, (rank + 1) * half))
        if rank == 0:
            torch.save(hnet.state_dict(), Path(out_dir) / "ddp.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built")
@pytest.mark.skipif(sys.platform == "win32", reason="gloo file store on Windows differs")
def test_ddp_on_two_processes_equals_one_process_on_the_global_batch(tmp_path):
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    distributed = build()
    distributed.load_state_dict(torch.load(tmp_path / "ddp.pt"))
    single = build()
    train(single, slice(0, BATCH))
    for (name, a), b in zip(
        single.state_dict().items(), distributed.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    untrained = build()
    moved = sum(
        (a - b).abs().sum()
        for a, b in zip(single.parameters(), untrained.parameters(), strict=True)
    )
    assert moved > 0  # training changed the parameters: the comparison is not vacuous
