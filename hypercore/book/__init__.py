"""Book support: the notebook setup call, the papermill runner, provenance records, and
the claims of each chapter (``claims``) with the reproduction scoreboard (``scoreboard``)."""

from hypercore.book.claims import ClaimBook, exact, glue, one_sample, paired
from hypercore.book.setup import (
    PROFILES,
    Setup,
    device_name,
    resolve_device,
    seed_everything,
    setup,
)

__all__ = [
    "PROFILES",
    "ClaimBook",
    "Setup",
    "device_name",
    "exact",
    "glue",
    "one_sample",
    "paired",
    "resolve_device",
    "seed_everything",
    "setup",
]
