"""hypercore.apps.continual: the output regulariser, EWC, SI, the training loops and the metrics."""

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import make_mlp

import hypercore as hc
from hypercore.apps import continual as cl
from hypercore.data import Split


def make_hnet(num_tasks: int = 4, head: str = "once") -> hc.HyperNetwork:
    return hc.HyperNetwork.build(make_mlp(), hc.TaskEmbedding(num_tasks, 5), head=head)


def make_tasks(num_tasks: int = 3, n: int = 24) -> list[Split]:
    g = torch.Generator().manual_seed(1)
    tasks = []
    for t in range(num_tasks):
        x = torch.randn(2 * n, 6, generator=g)
        y = (x[:, t] > 0).long() + (x[:, t + 1] > 0).long()  # 3 classes
        tasks.append(Split(x[:n], y[:n], x[n:], y[n:], 3, f"toy {t}"))
    return tasks


# --------------------------------------------------------------------------- regulariser


def test_output_regularizer_is_zero_at_the_snapshot_and_matches_a_loop():
    hnet = make_hnet()
    ids = torch.arange(3)
    targets = cl.snapshot_weights(hnet, ids)
    assert set(targets) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert targets["0.weight"].shape == (3, 8, 6)
    assert cl.output_regularizer(hnet, ids, targets).item() == 0.0
    with torch.no_grad():
        hnet.conditioner.weight[1] += 0.5  # move task 1's embedding only
    by_hand = torch.stack(
        [sum(((hnet.generate(t)[n] - targets[n][t]) ** 2).sum() for n in targets) for t in range(3)]
    ).mean()
    torch.testing.assert_close(cl.output_regularizer(hnet, ids, targets), by_hand)
    assert by_hand.item() > 0


def test_output_regularizer_makes_one_batched_generate_call():
    hnet = make_hnet()
    ids = torch.arange(3)
    targets = cl.snapshot_weights(hnet, ids)
    calls = []
    original = hnet.generate
    hnet.generate = lambda c: calls.append(c) or original(c)  # type: ignore[method-assign]
    cl.output_regularizer(hnet, ids, targets)
    assert len(calls) == 1 and torch.equal(calls[0], ids)


def test_output_regularizer_gradients_reach_the_hypernetwork_and_earlier_embeddings_only():
    hnet = make_hnet(num_tasks=4)
    ids = torch.arange(2)
    targets = cl.snapshot_weights(hnet, ids)
    with torch.no_grad():
        for p in hnet.head.parameters():
            p.add_(0.01)
    cl.output_regularizer(hnet, ids, targets).backward()
    grad = hnet.conditioner.weight.grad
    assert grad[:2].abs().sum() > 0 and grad[2:].abs().sum() == 0
    assert all(p.grad is not None for p in hnet.head.parameters())


def test_output_regularizer_works_with_structured_heads():
    hnet = make_hnet(head="scaling")
    ids = torch.arange(2)
    targets = cl.snapshot_weights(hnet, ids)
    assert targets["0.weight"].shape == (2, 8, 6)  # dense, not a StructuredWeight
    assert cl.output_regularizer(hnet, ids, targets).item() == 0.0


def test_output_regularizer_errors_name_the_argument():
    hnet = make_hnet()
    targets = cl.snapshot_weights(hnet, torch.arange(2))
    with pytest.raises(hc.ShapeError, match="task_ids: expected a non-empty"):
        cl.output_regularizer(hnet, torch.zeros(2, 2, dtype=torch.long), targets)
    with pytest.raises(hc.HypercoreTypeError, match="task_ids"):
        cl.output_regularizer(hnet, [0, 1], targets)  # type: ignore[arg-type]
    with pytest.raises(hc.ShapeError, match=r"targets\['0.weight'\]"):
        cl.output_regularizer(hnet, torch.arange(3), targets)
    with pytest.raises(hc.HypercoreError, match="targets: expected the generated weights"):
        cl.output_regularizer(hnet, torch.arange(2), {"0.weight": targets["0.weight"]})


def test_hypernetwork_learner_snapshots_before_each_task():
    learner = cl.HyperNetworkLearner(make_hnet(), beta=2.0)
    x, y = torch.randn(4, 6), torch.zeros(4, dtype=torch.long)
    learner.begin_task(0, x, y)
    assert learner.penalty(0).item() == 0.0
    learner.begin_task(2, x, y)
    assert learner.targets["0.weight"].shape == (2, 8, 6)
    assert learner.penalty(2).item() == 0.0  # right after the snapshot
    with torch.no_grad():
        learner.model.conditioner.weight[0] += 1.0
    expected = 2.0 * cl.output_regularizer(learner.model, torch.arange(2), learner.targets)
    torch.testing.assert_close(learner.penalty(2), expected)
    assert learner.memory_per_task == 5
    with pytest.raises(hc.HypercoreTypeError, match="hnet: expected a hypercore HyperNetwork"):
        cl.HyperNetworkLearner(make_mlp(), beta=1.0)  # type: ignore[arg-type]
    with pytest.raises(hc.HypercoreError, match="beta"):
        cl.HyperNetworkLearner(make_hnet(), beta=-1.0)


def test_compression_ratio_by_hand_and_with_a_chunked_head():
    hnet = make_hnet(num_tasks=4)
    trainable = sum(p.numel() for p in hnet.parameters() if p.requires_grad)
    generated = 8 * 6 + 8 + 3 * 8 + 3  # make_mlp(): 6-8-3
    assert cl.compression_ratio(hnet) == pytest.approx(trainable / generated)
    assert cl.compression_ratio(hnet, num_tasks=4) == pytest.approx(trainable / (4 * generated))
    chunked = hc.HyperNetwork.build(
        torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)),
        hc.TaskEmbedding(10, 16),
        head="chunk",
        body_hidden=(16,),
        chunk_size=300,
        embedding_dim=8,
        hidden=12,
    )
    assert cl.compression_ratio(chunked) < 1  # the paper's compressive regime
    with pytest.raises(hc.HypercoreTypeError, match="hnet"):
        cl.compression_ratio(make_mlp())  # type: ignore[arg-type]
    with pytest.raises(hc.HypercoreError, match="num_tasks"):
        cl.compression_ratio(hnet, num_tasks=0)


def test_hypernetwork_learner_with_a_chunked_head_keeps_earlier_tasks_when_beta_is_large():
    tasks = make_tasks(2, n=32)
    hnet = hc.HyperNetwork.build(
        make_mlp(), hc.TaskEmbedding(2, 4), head="chunk", body_hidden=(8,), chunk_size=16
    )
    torch.manual_seed(0)

    def moved(beta: float) -> float:
        """How far task 0's generated weights moved while task 1 was learned, relative."""
        learner = cl.HyperNetworkLearner(copy.deepcopy(hnet), beta=beta)
        cl.train_sequentially(learner, tasks, steps=20, batch_size=16, lr=1e-2)
        before = learner.targets  # snapshotted at the start of task 1
        after = cl.snapshot_weights(learner.hnet, torch.arange(1))
        distance = sum(float((after[n] - before[n]).norm()) for n in before)
        return distance / sum(float(before[n].norm()) for n in before)

    assert moved(1e3) < 0.05 < moved(0.0)


# --------------------------------------------------------------------------- baselines


def test_multi_head_mlp_per_sample_tasks_equal_per_task_calls():
    model = cl.MultiHeadMLP(6, 7, 3, num_tasks=4)
    assert sum(p.numel() for p in model.parameters()) == 6 * 7 + 7 + 4 * (7 * 3 + 3)
    x = torch.randn(5, 6)
    tasks = torch.tensor([0, 3, 3, 1, 0])
    together = model(x, tasks)
    alone = torch.cat([model(x[i : i + 1], int(tasks[i])) for i in range(5)])
    torch.testing.assert_close(together, alone)
    with pytest.raises(hc.ShapeError, match=r"x: expected shape \(B, 6\)"):
        model(torch.randn(5, 4), 0)
    with pytest.raises(hc.HypercoreError, match="task: expected a task id in 0..3"):
        model(x, 4)
    with pytest.raises(hc.ShapeError, match="one task id per sample"):
        model(x, torch.tensor([0, 1]))


def test_expected_fisher_matches_a_hand_computation():
    model = cl.MultiHeadMLP(6, 4, 3, num_tasks=2)
    x = torch.randn(5, 6)
    fisher = cl.expected_fisher(model, x, task=1, batch_size=2)
    by_hand = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(5):
        probs = torch.softmax(model(x[i : i + 1], 1), -1)[0].detach()
        for c in range(3):
            model.zero_grad()
            torch.log_softmax(model(x[i : i + 1], 1), -1)[0, c].backward()
            for n, p in model.named_parameters():
                by_hand[n] += probs[c] * p.grad**2 / 5
    for n in by_hand:
        torch.testing.assert_close(fisher[n], by_hand[n])
    assert fisher["head_weight"][0].abs().sum() == 0  # task 0's head plays no part


def test_ewc_penalty_is_the_weighted_distance_to_each_anchor():
    model = cl.MultiHeadMLP(6, 4, 3, num_tasks=2)
    ewc = cl.EWC(model, strength=3.0)
    x, y = torch.randn(8, 6), torch.zeros(8, dtype=torch.long)
    assert ewc.penalty(0).item() == 0.0
    ewc.end_task(0, x, y)
    assert ewc.penalty(1).item() == 0.0  # at the anchor
    with torch.no_grad():
        model.trunk.weight += 0.1
    expected = 0.5 * 3.0 * (ewc.fishers[0]["trunk.weight"] * 0.1**2).sum()
    torch.testing.assert_close(ewc.penalty(1), expected)
    ewc.end_task(1, x, y)
    assert len(ewc.fishers) == len(ewc.anchors) == 2
    assert ewc.memory_per_task == 2 * sum(p.numel() for p in model.parameters())


def test_si_importance_is_the_path_integral_over_the_squared_distance():
    model = cl.MultiHeadMLP(6, 4, 3, num_tasks=2)
    si = cl.SI(model, strength=2.0, damping=0.5)
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    si.begin_task(0, x, y)
    start = model.trunk.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = si.loss(x, y, 0)
    optimizer.zero_grad()
    loss.backward()
    g = model.trunk.weight.grad.clone()
    si.before_step()
    optimizer.step()
    si.after_step()
    si.end_task(0, x, y)
    delta = model.trunk.weight.detach() - start  # = -0.1 g
    torch.testing.assert_close(si.importance["trunk.weight"], -g * delta / (delta**2 + 0.5))
    assert (si.importance["trunk.weight"] >= 0).all()  # a gradient step lowers the loss
    assert si.penalty(1).item() == 0.0
    with torch.no_grad():
        model.trunk.weight += 0.2
    expected = 2.0 * (si.importance["trunk.weight"] * 0.2**2).sum()
    torch.testing.assert_close(si.penalty(1), expected)
    assert si.memory_fixed == 2 * sum(p.numel() for p in model.parameters())
    with pytest.raises(hc.HypercoreError, match="damping"):
        cl.SI(model, strength=1.0, damping=0.0)


# --------------------------------------------------------------------------- training


def test_train_sequentially_is_reproducible_and_shaped():
    tasks = make_tasks()

    def run() -> torch.Tensor:
        torch.manual_seed(0)
        learner = cl.HyperNetworkLearner(make_hnet(num_tasks=3), beta=0.1)
        return cl.train_sequentially(learner, tasks, steps=5, batch_size=8, seed=3)

    first, second = run(), run()
    assert first.shape == (3, 3)
    assert torch.equal(first, second)
    assert ((first >= 0) & (first <= 1)).all()


def test_train_sequentially_fits_each_task_and_fine_tuning_learns():
    tasks = make_tasks(2, n=64)
    torch.manual_seed(0)
    learner = cl.FineTuning(cl.MultiHeadMLP(6, 16, 3, num_tasks=2))
    r = cl.train_sequentially(learner, tasks, steps=60, batch_size=32, lr=1e-2)
    assert float(torch.diagonal(r).min()) > 0.6  # well above chance (1/3)
    with pytest.raises(hc.HypercoreError, match="steps"):
        cl.train_sequentially(learner, tasks, steps=0)
    with pytest.raises(hc.HypercoreTypeError, match="tasks"):
        cl.train_sequentially(learner, [], steps=1)


def test_train_jointly_gives_one_accuracy_per_task():
    tasks = make_tasks(3)
    torch.manual_seed(0)
    acc = cl.train_jointly(
        cl.FineTuning(cl.MultiHeadMLP(6, 8, 3, num_tasks=3)), tasks, steps=5, batch_size=8
    )
    assert acc.shape == (3,)


def test_validation_split_holds_out_training_samples_only():
    task = make_tasks(1, n=20)[0]
    part = cl.validation_split(task, fraction=0.25, seed=0)
    assert len(part.x_train) == 15 and len(part.x_test) == 5
    together = torch.cat([part.x_train, part.x_test])
    assert torch.equal(together.sort(0).values, task.x_train.sort(0).values)
    with pytest.raises(hc.HypercoreError, match="fraction"):
        cl.validation_split(task, fraction=1.0)
    with pytest.raises(hc.HypercoreError, match="fraction"):
        cl.validation_split(task, fraction=0.01)


# --------------------------------------------------------------------------- metrics


def test_average_accuracy_and_backward_transfer_by_hand():
    r = torch.tensor([[0.9, 0.1, 0.2], [0.7, 0.8, 0.1], [0.6, 0.7, 1.0]])
    assert cl.average_accuracy(r) == pytest.approx((0.6 + 0.7 + 1.0) / 3)
    assert cl.backward_transfer(r) == pytest.approx(((0.6 - 0.9) + (0.7 - 0.8)) / 2)
    with pytest.raises(hc.ShapeError, match=r"accuracies: expected shape \(T, T\)"):
        cl.average_accuracy(torch.zeros(2, 3))
    with pytest.raises(hc.ShapeError, match="at least 2 tasks"):
        cl.backward_transfer(torch.ones(1, 1))


def test_fine_tuning_has_no_penalty_and_no_memory():
    learner = cl.FineTuning(cl.MultiHeadMLP(6, 4, 3, num_tasks=2))
    assert learner.penalty(1).item() == 0.0
    assert learner.memory_per_task == 0 and learner.memory_fixed == 0
    x, y = torch.randn(4, 6), torch.zeros(4, dtype=torch.long)
    torch.testing.assert_close(learner.loss(x, y, 1), F.cross_entropy(learner(x, 1), y))
