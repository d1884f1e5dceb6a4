"""Held-out sets of flow corridors: which reported flows the loss may not see.

Every split returns a boolean *test* array; the training mask is the observed flows
outside it. A corridor is an (origin, destination) pair with at least one reported flow.

- :func:`random_corridors`: a random fraction of corridors, all years (the paper's split).
- :func:`kfold_corridors`: K disjoint folds covering every corridor exactly once.
"""

from __future__ import annotations

import numpy as np


def observed_corridors(flow_mask: np.ndarray) -> np.ndarray:
    """(N, N) bool: corridors with at least one observation in a (Y, N, N) mask."""
    return np.asarray(flow_mask, dtype=bool).any(axis=0)


def random_corridors(flow_mask: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """Hold out ``round(frac * C)`` of the C observed corridors, drawn with ``seed``.

    Returns an (N, N) bool array, True on held-out corridors (for all years).
    """
    if not 0.0 <= frac < 1.0:
        raise ValueError(f"frac must lie in [0, 1), got {frac}")
    corridors = np.argwhere(observed_corridors(flow_mask))
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(corridors))[: int(round(frac * len(corridors)))]
    test = np.zeros(flow_mask.shape[-2:], dtype=bool)
    test[tuple(corridors[chosen].T)] = True
    return test


def kfold_corridors(flow_mask: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Partition the observed corridors into ``folds`` test sets of (nearly) equal size.

    Every observed corridor is in exactly one fold; returns a list of (N, N) bool arrays.
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    corridors = np.argwhere(observed_corridors(flow_mask))
    if len(corridors) < folds:
        raise ValueError(f"only {len(corridors)} observed corridors for {folds} folds")
    order = np.random.default_rng(seed).permutation(len(corridors))
    tests = []
    for part in np.array_split(order, folds):
        test = np.zeros(flow_mask.shape[-2:], dtype=bool)
        test[tuple(corridors[part].T)] = True
        tests.append(test)
    return tests
