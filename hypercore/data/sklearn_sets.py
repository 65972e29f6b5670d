"""scikit-learn's bundled datasets (no download), as standardised tensors.

scikit-learn and NumPy are optional (``pip install hypercore[data]``): they are
imported when a dataset is loaded, not when :mod:`hypercore.data` is.
"""

from __future__ import annotations

import importlib

import torch

from hypercore.data.dataset import Split

#: name -> (scikit-learn loader function, classification?)
LOADERS = {
    "digits": ("load_digits", True),
    "breast_cancer": ("load_breast_cancer", True),
    "wine": ("load_wine", True),
    "iris": ("load_iris", True),
    "diabetes": ("load_diabetes", False),
}


def _require(module: str):
    """Import an optional dependency, or say which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"load_dataset needs scikit-learn and NumPy: pip install 'hypercore[data]' ({err})"
        ) from err


def load_dataset(
    name: str, test_size: float = 0.25, seed: int = 0, standardize: bool = True
) -> Split:
    """Load one of scikit-learn's bundled datasets, split and standardised.

    Args:
        name: ``"digits"`` (1,797 8x8 images, 10 classes), ``"breast_cancer"``,
            ``"wine"``, ``"iris"`` or ``"diabetes"`` (regression).
        test_size: fraction held out for testing (stratified for classification).
        seed: seed of the split.
        standardize: scale features to zero mean and unit variance using the
            *training* statistics (regression targets too).

    Returns:
        A :class:`Split` with float32 features.
    """
    if name not in LOADERS:
        raise ValueError(f"name: expected one of {sorted(LOADERS)}, got {name!r}")
    np = _require("numpy")
    datasets = _require("sklearn.datasets")
    train_test_split = _require("sklearn.model_selection").train_test_split
    loader, is_classification = LOADERS[name]
    bunch = getattr(datasets, loader)()
    x = bunch.data.astype(np.float32)
    y = bunch.target
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y if is_classification else None
    )
    if standardize:
        mean, std = x_tr.mean(0), x_tr.std(0)
        std[std == 0] = 1.0
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    if is_classification:
        y_tr, y_te = (
            torch.as_tensor(y_tr, dtype=torch.long),
            torch.as_tensor(y_te, dtype=torch.long),
        )
        num_classes = len(np.unique(y))
    else:
        y_tr, y_te = y_tr.astype(np.float32), y_te.astype(np.float32)
        if standardize:
            m, s = y_tr.mean(), y_tr.std()
            y_tr, y_te = (y_tr - m) / s, (y_te - m) / s
        y_tr, y_te = torch.as_tensor(y_tr), torch.as_tensor(y_te)
        num_classes = None
    return Split(
        torch.as_tensor(x_tr),
        y_tr,
        torch.as_tensor(x_te),
        y_te,
        num_classes,
        name,
        {"source": "scikit-learn bundled dataset", "test_size": test_size, "seed": seed},
    )
