"""Axis units for parameter counts read off the data, and short model names for labels."""

from __future__ import annotations

UNIT_NAMES = {1.0: "parameters", 1e3: "thousands of parameters", 1e6: "millions of parameters",
              1e9: "billions of parameters"}


def display_unit(max_params: float) -> tuple[float, str]:
    """Axis unit for data whose largest value is ``max_params`` raw parameters: (parameters per unit, name)."""
    for scale in (1e9, 1e6, 1e3):
        if max_params >= scale:
            return scale, UNIT_NAMES[scale]
    return 1.0, UNIT_NAMES[1.0]


def short_name(model: str) -> str:
    """Model id without its folder (``models/minipool/neox-d8l1`` -> ``neox-d8l1``)."""
    return str(model).rstrip("/").rsplit("/", 1)[-1]
