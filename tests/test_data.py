"""Datasets and task splits."""

import pytest
import torch

from hypercore.data import (
    load_dataset,
    permuted_tasks,
    rotated_tasks,
    sine_tasks,
    split_by_classes,
    teacher_regression,
)


def test_digits_is_standardised_and_stratified():
    d = load_dataset("digits", seed=0)
    assert d.x_train.shape == (1347, 64) and d.x_test.shape == (450, 64)
    assert d.num_classes == 10 and d.in_features == 64
    assert torch.allclose(d.x_train.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.bincount(d.y_test).min() >= 43  # 174..183 per class, a quarter each


def test_regression_dataset():
    d = load_dataset("diabetes")
    assert d.num_classes is None and d.y_train.dtype == torch.float32


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="name: expected one of"):
        load_dataset("mnist")


def test_split_digits_gives_five_binary_tasks():
    tasks = split_by_classes(load_dataset("digits"), 2)
    assert len(tasks) == 5
    assert all(set(t.y_train.tolist()) == {0, 1} for t in tasks)
    assert tasks[3].info["classes"] == [6, 7]
    assert sum(len(t.y_train) for t in tasks) == 1347


def test_permuted_tasks_permute_features_only():
    d = load_dataset("wine")
    tasks = permuted_tasks(d, 3, seed=1)
    assert torch.equal(tasks[0].x_train, d.x_train)
    perm = torch.tensor(tasks[2].info["permutation"])
    assert torch.equal(tasks[2].x_train, d.x_train[:, perm])
    assert torch.equal(tasks[2].y_train, d.y_train)


def test_rotation_by_zero_is_the_identity_and_90_moves_pixels():
    d = load_dataset("digits")
    same, turned = rotated_tasks(d, [0, 90])
    torch.testing.assert_close(same.x_train, d.x_train, atol=1e-5, rtol=0)
    assert not torch.allclose(turned.x_train, d.x_train)


def test_synthetic_generators_are_seeded():
    a, b = sine_tasks(2, seed=3), sine_tasks(2, seed=3)
    assert torch.equal(a[1].y_train, b[1].y_train) and a[0].info != a[1].info
    assert torch.equal(teacher_regression(seed=1).y_test, teacher_regression(seed=1).y_test)
