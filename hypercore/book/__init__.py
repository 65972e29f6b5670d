"""Book support: the notebook setup call, the papermill runner and provenance records."""

from hypercore.book.setup import (
    PROFILES,
    Setup,
    device_name,
    resolve_device,
    seed_everything,
    setup,
)

__all__ = ["PROFILES", "Setup", "device_name", "resolve_device", "seed_everything", "setup"]
