"""Helpers for currlearn's tests and for users testing their own curricula.

Examples:
    >>> from currlearn.testing import get_default_devices
    >>> get_default_devices()[0]
    device(type='cpu')
"""

from __future__ import annotations

import torch

__all__ = ["get_default_devices"]


def get_default_devices() -> list[torch.device]:
    """Devices to parametrize tests over: CPU, plus the first CUDA device when one is available.

    The CUDA device carries its index (``cuda:0``) so that it compares equal to the ``device``
    attribute of the tensors placed on it.

    Returns:
        A list of :class:`torch.device`, CPU first.
    """
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda:0"))
    return devices
