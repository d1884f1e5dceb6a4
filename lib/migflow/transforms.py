"""The symmetric Yeo-Johnson transform and the scaling of covariates.

Migration counts span six orders of magnitude and can be negative (net migration,
stock differences). The paper compares predictions with data after the odd extension of
the positive Yeo-Johnson branch (paper.md section 3.4)::

    psi_lambda(x) = sign(x) * ((|x| + 1) ** lambda - 1) / lambda      (lambda != 0)
    psi_0(x)      = sign(x) * log(|x| + 1)

It is *not* the standard Yeo-Johnson negative branch: it is odd, ``psi(-x) = -psi(x)``,
which treats an emigration and an immigration of the same size alike.

Covariates are scaled as ``chi = (psi_lambda(x) - mean) / std`` with a lambda per
covariate. The noise of :mod:`migflow.ensemble` is drawn on the unscaled values and then
pushed through the same scaling, because ``psi(a x) != a psi(x)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np
import torch
from scipy import stats

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _lib(x):
    return torch if isinstance(x, torch.Tensor) else np


def yeo_johnson(x: ArrayT, lam: float) -> ArrayT:
    """Symmetric Yeo-Johnson transform ``psi_lambda`` (works on numpy arrays and tensors)."""
    xp = _lib(x)
    ax = xp.abs(x)
    if abs(lam) < 1e-12:
        y = xp.log1p(ax)
    else:
        y = ((ax + 1.0) ** lam - 1.0) / lam
    return xp.sign(x) * y


def yeo_johnson_inverse(y: ArrayT, lam: float) -> ArrayT:
    """Inverse of :func:`yeo_johnson`: ``x = sign(y) * ((lam |y| + 1) ** (1 / lam) - 1)``.

    For ``lam > 0`` the transform is bounded below by ``-1/lam`` on each branch, so values
    with ``lam * |y| <= -1`` cannot occur; they are clipped to stay finite.
    """
    xp = _lib(y)
    ay = xp.abs(y)
    if abs(lam) < 1e-12:
        x = xp.expm1(ay)
    else:
        base = lam * ay + 1.0
        base = base.clamp(min=0.0) if xp is torch else np.clip(base, 0.0, None)
        x = base ** (1.0 / lam) - 1.0
    return xp.sign(y) * x


@dataclass(frozen=True)
class Scaling:
    """Parameters of ``chi = (psi_lambda(x) - mean) / std`` for one covariate."""

    lam: float
    mean: float
    std: float

    def apply(self, x: ArrayT) -> ArrayT:
        return (yeo_johnson(x, self.lam) - self.mean) / self.std


def fit_scaling(x: np.ndarray, transform: bool = True, center: bool = True) -> Scaling:
    """Fit a :class:`Scaling` to the finite values of ``x``.

    ``lambda`` maximises the normality of ``|x|`` under the Yeo-Johnson transform
    (``scipy.stats.yeojohnson_normmax``; on non-negative data the symmetric and the
    standard transforms coincide), clipped to [0, 1.5]. With ``transform=False`` (binary
    covariates, similarities already in [0, 1]) lambda is 1, which leaves ``x`` unchanged
    up to the standardisation; with ``center=False`` the mean is kept at 0.
    """
    values = np.asarray(x, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("cannot fit a scaling to an array with no finite values")
    if transform and np.ptp(values) > 0:
        lam = float(np.clip(stats.yeojohnson_normmax(np.abs(values)), 0.0, 1.5))
    else:
        lam = 1.0
    y = yeo_johnson(values, lam)
    mean = float(y.mean()) if center else 0.0
    std = float(y.std())
    return Scaling(lam=lam, mean=mean, std=std if std > 0 else 1.0)


def scalings_to_json(scalings: dict[str, Scaling]) -> str:
    """Serialise a dict of scalings (stored in every run folder)."""
    return json.dumps({k: asdict(v) for k, v in scalings.items()}, indent=1)


def scalings_from_json(text: str) -> dict[str, Scaling]:
    """Inverse of :func:`scalings_to_json`."""
    return {k: Scaling(**v) for k, v in json.loads(text).items()}
