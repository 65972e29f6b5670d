"""Small datasets that need no download, and task sequences built from them."""

from hypercore.data.dataset import Split
from hypercore.data.episodes import Episodes, sample_episodes
from hypercore.data.sklearn_sets import load_dataset
from hypercore.data.synthetic import sine_tasks, teacher_regression
from hypercore.data.tasks import permuted_tasks, rotate_images, rotated_tasks, split_by_classes

__all__ = [
    "Episodes",
    "Split",
    "load_dataset",
    "permuted_tasks",
    "rotate_images",
    "rotated_tasks",
    "sample_episodes",
    "sine_tasks",
    "split_by_classes",
    "teacher_regression",
]
