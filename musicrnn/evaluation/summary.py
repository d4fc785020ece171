"""Per-piece values summed up over a set of pieces, the way every table of the evaluation shows them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summarise(rows: Sequence[dict[str, float]], names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each named value over rows, NaNs (a piece too short for it) left out."""
    summary = {}
    for name in names:
        values = np.array([row[name] for row in rows], dtype=np.float64)
        values = values[np.isfinite(values)]
        summary[name] = {
            "mean": float(values.mean()) if len(values) else float("nan"),
            "std": float(values.std()) if len(values) else float("nan"),
        }
    return summary
