"""Baselines share the hypernetwork's call signature and code path."""

import pytest
import torch
from conftest import make_mlp

import hypercore as hc
from hypercore.baselines import TaskWeightTable, standard_init


def test_task_weight_table_gives_each_task_its_own_weights():
    table = TaskWeightTable(hc.Target(make_mlp()), num_tasks=3)
    x = torch.randn(4, 6)
    tasks = torch.tensor([0, 2, 2, 1])
    together = table(x, tasks)
    alone = torch.cat([table(x[i : i + 1], int(tasks[i])) for i in range(4)])
    torch.testing.assert_close(together, alone)
    assert sum(p.numel() for p in table.parameters() if p.requires_grad) == 3 * (48 + 8 + 24 + 3)
    table(x, 1).sum().backward()
    grads = [p.grad for p in table.tables]
    assert all(g is not None for g in grads)
    assert all(g[0].abs().sum() == 0 and g[1].abs().sum() > 0 for g in grads)  # only task 1


def test_task_weight_table_rejects_unknown_tasks():
    table = TaskWeightTable(hc.Target(make_mlp()), num_tasks=3)
    with pytest.raises(hc.UnknownTaskError, match="task id 3 is out of range"):
        table(torch.randn(2, 6), torch.tensor([0, 3]))


def test_standard_init_matches_pytorch_bounds():
    info = hc.Target(make_mlp((100, 8, 3))).spec.by_name["0.weight"]
    w = standard_init(info, 50)
    assert w.shape == (50, 8, 100)
    assert float(w.abs().max()) <= 0.1 + 1e-6 and float(w.abs().max()) > 0.09


def test_repeated_task_ids_generate_each_task_once():
    hnet = hc.HyperNetwork.build(make_mlp(), hc.TaskEmbedding(3, 4), head="scaling")
    calls = []
    hnet.head.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    hnet(torch.randn(6, 6), torch.tensor([0, 1, 1, 2, 0, 1]))
    assert calls == [3]


def test_task_concat_appends_a_one_hot_code():
    from hypercore.baselines import TaskConcat

    net = TaskConcat(torch.nn.Linear(6 + 3, 2), num_tasks=3)
    x = torch.randn(4, 6)
    tasks = torch.tensor([0, 2, 1, 2])
    expected = net.module(torch.cat([x, torch.eye(3)[tasks]], 1))
    torch.testing.assert_close(net(x, tasks), expected)
    torch.testing.assert_close(net(x, 2), net.module(torch.cat([x, torch.eye(3)[[2] * 4]], 1)))
    with pytest.raises(hc.UnknownTaskError, match="task id 5"):
        net(x, 5)
