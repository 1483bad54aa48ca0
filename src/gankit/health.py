"""Training health: signals logged while training and diagnoses with remedies (see ``gankit doctor``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from gankit.config import Config
from gankit.data import Dataset


def make_monitor(config: Config, data: Dataset, G: nn.Module, device: Any) -> Any:
    """The hook that adds health signals to each logged record, or None when monitoring is off."""
    return None
