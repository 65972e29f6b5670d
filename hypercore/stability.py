r"""Tools against unstable hypernetwork training.

* :func:`spectral_normalize`: constrain the largest singular value of every
  linear layer of the hypernetwork's conditioner and body to 1 (Miyato et al.,
  2018), which bounds how fast the features fed to the head can change with
  the condition. The head is left alone: its scale is what the initialisation
  (:mod:`hypercore.init`) sets, and normalising it would undo that.
* The magnitude-invariant parametrisation of Ortiz et al. (2024) lives with the
  parts it changes: :class:`~hypercore.inputs.ScalarInput` (``"cos_sin"``
  encoding) and :class:`~hypercore.heads.ResidualHead` (``residual=True`` in
  :meth:`HyperNetwork.build <hypercore.HyperNetwork.build>`).
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def spectral_normalize(hnet: nn.Module) -> nn.Module:
    """Apply spectral normalisation to the linear layers of ``hnet.conditioner`` and ``hnet.body``.

    Marks the hypernetwork (``hnet.spectral_norm = True``) so that its
    configuration records it and :func:`hypercore.load` re-applies it.

    Returns:
        ``hnet`` itself.
    """
    parts = [m for m in (hnet.conditioner, hnet.body) if isinstance(m, nn.Module)]
    for part in parts:
        for module in list(part.modules()):
            if isinstance(module, nn.Linear) and not hasattr(module, "parametrizations"):
                spectral_norm(module)
    object.__setattr__(hnet, "spectral_norm", True)
    return hnet
