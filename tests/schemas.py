"""Small baselines that several test modules build the same way."""

from __future__ import annotations

import numpy as np

from monitor.baseline import baseline_from_document, build_baseline
from monitor.decode import ModelSchema


def small_schema() -> ModelSchema:
    """Model "m": numeric "x" (5 bins), categorical "c" (top 2 of a/b/c), a prediction."""
    rng = np.random.default_rng(1)
    doc = build_baseline(
        "m",
        {
            "x": rng.normal(0, 1, 500).tolist(),
            "c": rng.choice(["a", "b", "c"], 500).tolist(),
            "__prediction__": rng.uniform(0, 1, 500).tolist(),
        },
        bins=5,
        top_k=2,
    )
    return ModelSchema.from_baseline(baseline_from_document(doc))
