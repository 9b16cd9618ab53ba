"""dcm, the Disaster Connectivity Mapper."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "compare"]


def __getattr__(name: str) -> Any:
    # ``dcm.compare`` pulls in geopandas and friends; load it only when used.
    if name == "compare":
        from dcm.compare import compare

        return compare
    raise AttributeError(name)
