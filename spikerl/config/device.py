"""Whether a config's ``device`` exists on this machine.

The schema accepts any well-formed device name, because a ``config.yaml`` written on a GPU machine must still load
on a laptop (to evaluate or export it). Starting to *train* on a device the machine lacks is refused instead of
letting Stable-Baselines3 fall back to the CPU while the run's ``config.yaml`` says otherwise.
"""

from __future__ import annotations

import torch

from spikerl.config.loading import ConfigError

_USE_INSTEAD = "use device=auto (a GPU where there is one, else the CPU) or device=cpu"


def check_device_available(device: str) -> None:
    """``ConfigError`` naming the device unless torch can use it here (``auto`` and ``cpu`` always can)."""
    kind, _, index = device.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device: {device!r} is not available on this machine (torch finds no CUDA device); "
                              f"{_USE_INSTEAD}")
        if index and int(index) >= count:
            found = "1 CUDA device, cuda:0" if count == 1 else f"{count} CUDA devices, cuda:0 to cuda:{count - 1}"
            raise ConfigError(f"device: {device!r} is not available on this machine (torch finds {found}); "
                              f"{_USE_INSTEAD}")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device: 'mps' is not available on this machine (torch finds no Apple GPU); {_USE_INSTEAD}")
