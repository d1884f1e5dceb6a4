"""The modelled (birth i, origin j, destination k) edges and the network's inputs on them.

Edge rule
---------
Of the N^2 (N - 1) possible triples with j != k only a few are modelled (paper.md 2.3):

- every native edge (i, i, k): anybody may emigrate from their birth country;
- every (i, j, k) with j != i whose origin j holds an observed stock of people born in i
  of at least ``min_stock`` at some census: those people may move on (k != i) or
  return home (k = i).

The issue that specified this project also allows edges justified by a stock of i in the
*destination* k alone. Such an edge has nobody to move at its origin, so we leave it out;
the arithmetic of the paper's ~900,000 edges (about 3,700 foreign-born pairs times 230
destinations) suggests the authors did the same.

Inputs
------
For edge (i, j, k) in year t the network reads the covariates in the paper's order
(paper.md 2.1), each scaled by :class:`migflow.transforms.Scaling`:
GDP per capita (i, j, k), GDP growth (i, j, k), trade (j->k, k->j), population (i, j, k),
life expectancy (i, j, k), birth rate (j, k), death rate (j, k), distance (j, k),
linguistic similarity (i-k, j-k), religious similarity (i-k, j-k), conflict deaths (j, k),
refugees (i in j, i in k), change in refugees (i in j, i in k), colonial tie (i-k, j-k),
club membership (i, j, k): 34 columns; then the flags 1[i = j] and 1[i = k]. The stock
inputs and the latent state are appended by :mod:`migflow.training`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import xarray as xr

from . import schema
from .transforms import Scaling, fit_scaling

log = logging.getLogger(__name__)

# (covariate, index pairs) in the paper's column order; a pair is (a, b) for bilateral.
COLUMNS: list[tuple[str, tuple]] = [
    ("gdp_per_capita", ("i", "j", "k")),
    ("gdp_growth", ("i", "j", "k")),
    ("trade", (("j", "k"), ("k", "j"))),
    ("population", ("i", "j", "k")),
    ("life_expectancy", ("i", "j", "k")),
    ("birth_rate", ("j", "k")),
    ("death_rate", ("j", "k")),
    ("distance", (("j", "k"),)),
    ("linguistic_similarity", (("i", "k"), ("j", "k"))),
    ("religious_similarity", (("i", "k"), ("j", "k"))),
    ("conflict_deaths", ("j", "k")),
    ("refugees", (("i", "j"), ("i", "k"))),
    ("refugees_change", (("i", "j"), ("i", "k"))),
    ("colonial_tie", (("i", "k"), ("j", "k"))),
    ("eu_member", ("i", "j", "k")),
]
STATIC_COVARIATES = ("distance", "linguistic_similarity", "religious_similarity", "colonial_tie")
N_COVARIATE_COLUMNS = sum(len(idx) for _, idx in COLUMNS)  # 34
N_STATIC_INPUTS = N_COVARIATE_COLUMNS + 2  # plus the two flags


def column_names() -> list[str]:
    """Names of the 36 covariate and flag columns, e.g. ``gdp_per_capita[i]``."""
    names = []
    for name, idx in COLUMNS:
        for ix in idx:
            names.append(f"{name}[{''.join(ix) if isinstance(ix, tuple) else ix}]")
    return names + ["native_origin[i=j]", "return[i=k]"]


def select_edges(stock: np.ndarray, min_stock: float = 1.0) -> np.ndarray:
    """Edges (3, E) of (birth, origin, destination) indices by the module's edge rule.

    ``stock`` has shape (census, N, N) [birth, residence] and may hold NaN (missing).
    Edges are sorted by birth, then origin, then destination.
    """
    if stock.ndim != 3 or stock.shape[1] != stock.shape[2]:
        raise ValueError(f"stock must have shape (census, N, N), got {stock.shape}")
    n = stock.shape[1]
    with np.errstate(invalid="ignore"):
        peak = np.nanmax(np.where(np.isnan(stock), -np.inf, stock), axis=0)
    holds = peak >= min_stock
    np.fill_diagonal(holds, True)
    i, j = np.nonzero(holds)
    k = np.tile(np.arange(n), len(i))
    i, j = np.repeat(i, n), np.repeat(j, n)
    keep = j != k
    edges = np.stack([i[keep], j[keep], k[keep]])
    log.info("selected %d edges for %d countries (%d origin pairs)", edges.shape[1], n,
             int(holds.sum()))
    return edges


def _refugee_change(refugees: np.ndarray) -> np.ndarray:
    change = np.zeros_like(refugees)
    change[1:] = refugees[1:] - refugees[:-1]
    return change


def covariate_arrays(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Raw covariate arrays (float64) by name, with the population on flow years only."""
    years = ds["year"].values
    arrays = {name: ds[name].values.astype(np.float64) for name in schema.COVARIATE_VARS}
    arrays["population"] = ds["population"].sel(stock_year=years).values.astype(np.float64)
    arrays["refugees_change"] = _refugee_change(arrays["refugees"])
    return arrays


def fit_scalings(ds: xr.Dataset) -> dict[str, Scaling]:
    """Fit one :class:`Scaling` per covariate on the (clean) training dataset."""
    arrays = covariate_arrays(ds)
    scalings = {}
    for name, _ in COLUMNS:
        x = arrays[name]
        if x.ndim == 3 or name in STATIC_COVARIATES:
            x = x[..., ~np.eye(x.shape[-1], dtype=bool)]  # the diagonal is never an input
        binary = name in schema.BINARY_COVARIATES
        bounded = name in schema.BOUNDED_COVARIATES
        scalings[name] = fit_scaling(x, transform=not (binary or bounded), center=not binary)
    return scalings


class Features:
    """Scaled covariates on the edges, year by year, as torch tensors on a device.

    Unilateral covariates are kept as (Y, N) and bilateral ones as (Y, N, N) arrays and
    gathered for the edges needed each year, so memory stays O(Y N^2) whatever the number
    of edges. With ``cache=True`` the gathered (Y, E, 36) table is built once, which is
    faster when it fits in memory (the quick synthetic runs).
    """

    def __init__(self, ds: xr.Dataset, scalings: dict[str, Scaling], edges: np.ndarray,
                 device: str | torch.device = "cpu", cache: bool | None = None,
                 arrays: dict[str, np.ndarray] | None = None):
        self.device = torch.device(device)
        self.edges = torch.as_tensor(edges, dtype=torch.long, device=self.device)
        self.n_years = ds.sizes["year"]
        arrays = covariate_arrays(ds) if arrays is None else arrays
        self.tables = {}
        for name, _ in COLUMNS:
            scaled = scalings[name].apply(arrays[name])
            self.tables[name] = torch.as_tensor(scaled, dtype=torch.float32, device=self.device)
        i, j, k = self.edges
        self.flags = torch.stack([(i == j), (i == k)], dim=1).float()
        n_edges = self.edges.shape[1]
        if cache is None:
            cache = self.n_years * n_edges * N_STATIC_INPUTS * 4 < 512 * 2**20
        self._cache = None
        if cache:
            self._cache = torch.stack([self._gather(t, None) for t in range(self.n_years)])

    def _column(self, name: str, t: int, idx, sel: dict[str, torch.Tensor]) -> torch.Tensor:
        table = self.tables[name]
        if name not in STATIC_COVARIATES:
            table = table[t]
        if isinstance(idx, tuple):
            return table[sel[idx[0]], sel[idx[1]]]
        return table[sel[idx]]

    def _gather(self, t: int, edge_ids: torch.Tensor | None) -> torch.Tensor:
        edges = self.edges if edge_ids is None else self.edges[:, edge_ids]
        sel = {"i": edges[0], "j": edges[1], "k": edges[2]}
        cols = [self._column(name, t, ix, sel) for name, idx in COLUMNS for ix in idx]
        flags = self.flags if edge_ids is None else self.flags[edge_ids]
        return torch.cat([torch.stack(cols, dim=1), flags], dim=1)

    def year(self, t: int, edge_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Inputs (E', 36) of year index ``t`` for ``edge_ids`` (all edges if None)."""
        if self._cache is not None:
            return self._cache[t] if edge_ids is None else self._cache[t, edge_ids]
        return self._gather(t, edge_ids)
