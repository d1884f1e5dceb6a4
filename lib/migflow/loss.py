"""The banded, weighted loss in standardised Yeo-Johnson space (paper.md section 3.4).

For each target (stock differences, net migration, flows) and each five-year batch b,
data y and prediction yhat are transformed with the symmetric Yeo-Johnson transform and
standardised with the mean and std of the *data* of that batch::

    z = (psi(y) - m_b) / s_b,   zhat = (psi(yhat) - m_b) / s_b
    L = mean over observed e of  w_key * omega_e * relu((zhat - z)^2 - band * z^2)

so an error smaller than sqrt(band) |z| (about 10% of the transformed value for
band = 0.01) costs nothing: the data are themselves uncertain. The optional regulariser
penalises total outflows above a country's population.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .transforms import yeo_johnson


@dataclass(frozen=True)
class Standardiser:
    """Mean and std of the transformed data of one target in one batch."""

    lam: float
    mean: float
    std: float

    @classmethod
    def fit(cls, data: torch.Tensor, mask: torch.Tensor, lam: float) -> "Standardiser":
        values = yeo_johnson(data[mask].double(), lam)
        if values.numel() == 0:
            return cls(lam, 0.0, 1.0)
        std = float(values.std()) if values.numel() > 1 else 0.0
        return cls(lam, float(values.mean()), std if std > 0 else 1.0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (yeo_johnson(x, self.lam) - self.mean) / self.std


def banded_loss(pred: torch.Tensor, data: torch.Tensor, mask: torch.Tensor,
                weight: torch.Tensor, standardiser: Standardiser, band: float) -> torch.Tensor:
    """Mean banded squared error over the entries where ``mask`` is True.

    ``weight`` holds the per-entry data weights (omega); the key weight is applied by the
    caller. Returns 0 (with gradient) when nothing is observed.
    """
    if not bool(mask.any()):
        return pred.sum() * 0.0
    z = standardiser(data[mask])
    zhat = standardiser(pred[mask])
    excess = torch.relu((zhat - z) ** 2 - band * z ** 2)
    return (weight[mask] * excess).mean()


def outflow_penalty(corridor_flows: torch.Tensor, population: torch.Tensor,
                    population_std: float) -> torch.Tensor:
    """Mean over countries of relu(total outflow - population) / std(population)."""
    excess = torch.relu(corridor_flows.sum(1) - population)
    return excess.mean() / population_std
