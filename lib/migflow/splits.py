"""Held-out sets of targets: which data the loss may not see.

Every split returns boolean *test* masks; the training mask is the observed data outside
them. A corridor is an (origin, destination) pair with at least one reported flow.

- :func:`random_corridors`: a random fraction of corridors, all years (the paper's split).
- :func:`kfold_corridors`: K disjoint folds covering every corridor exactly once.
- :func:`country_folds`: K folds of whole countries: every reported flow from or to a
  held-out country is hidden (optionally its stocks and net migration too).
- :func:`trailing_years`: the last L years with flow data, for every corridor.

The corridor splits return (N, N) arrays, the form :func:`migflow.training.train` takes as
``heldout``. Splits that hide years, stocks or net migration cannot be written as a
corridor mask; they return a :class:`Split`, which hides its targets by a transformation
of the dataset (:func:`apply_split`: values NaN, weights 0) so that training needs no
special case. :func:`make_splits` is the common interface of a driver (see
:mod:`migflow.crossval`): every split by name, each fold as a :class:`Split`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

log = logging.getLogger(__name__)

SPLITS = ("random", "kfold", "country", "years")


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


@dataclass(eq=False)
class Split:
    """One fold of a split: what is hidden from the loss and what it is scored on.

    Attributes
    ----------
    name : str
        The split's name (one of :data:`SPLITS`).
    fold : int
        Index of the fold, from 0.
    flow_region : numpy.ndarray
        (Y, N, N) bool: the held-out unit, observed or not (held-out corridors in all
        years, every corridor touching a held-out country, every corridor in held-out
        years). A known truth is scored on it.
    flow_test : numpy.ndarray
        (Y, N, N) bool: the reported flows hidden from the loss (``flow_region`` and
        observed).
    stock_test : numpy.ndarray or None
        (C, N, N) bool over (census, birth, destination): hidden observed stocks, or None.
    net_test : numpy.ndarray or None
        (Y, N) bool over (year, country): hidden observed net migration, or None.
    countries : numpy.ndarray or None
        (N,) bool: the held-out countries of a country split, else None.
    description : str
        One line saying what the fold hides.
    """

    name: str
    fold: int
    flow_region: np.ndarray
    flow_test: np.ndarray
    stock_test: np.ndarray | None = None
    net_test: np.ndarray | None = None
    countries: np.ndarray | None = None
    description: str = ""

    def heldout_corridors(self) -> np.ndarray:
        """(N, N) bool: corridors with at least one hidden reported flow."""
        return observed_corridors(self.flow_test)

    def same_as(self, other: "Split") -> bool:
        """True when both folds hide exactly the same entries (name and fold included)."""
        def same(a, b):
            if a is None or b is None:
                return a is None and b is None
            return a.shape == b.shape and bool(np.array_equal(a, b))

        return (self.name == other.name and self.fold == other.fold
                and all(same(getattr(self, f), getattr(other, f))
                        for f in ("flow_region", "flow_test", "stock_test", "net_test",
                                  "countries")))


def _offdiag(n: int) -> np.ndarray:
    return ~np.eye(n, dtype=bool)


def corridor_split(name: str, fold: int, corridors: np.ndarray,
                   flow_mask: np.ndarray) -> Split:
    """A :class:`Split` that hides the (N, N) ``corridors`` in every year.

    Parameters
    ----------
    name : str
        Name of the split.
    fold : int
        Index of the fold.
    corridors : numpy.ndarray
        (N, N) bool, True on held-out corridors.
    flow_mask : numpy.ndarray
        (Y, N, N) bool, True where a flow is reported.

    Returns
    -------
    Split
    """
    flow_mask = np.asarray(flow_mask, dtype=bool)
    region = np.broadcast_to(np.asarray(corridors, dtype=bool), flow_mask.shape).copy()
    return Split(name=name, fold=fold, flow_region=region, flow_test=region & flow_mask,
                 description=f"{int(corridors.sum())} corridors, all years")


def _country_order(flow_mask: np.ndarray, seed: int) -> np.ndarray:
    """Countries in a random order, those touching reported flows first (for stratifying)."""
    corridors = observed_corridors(flow_mask)
    touched = corridors.any(axis=0) | corridors.any(axis=1)
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(np.flatnonzero(touched)),
                           rng.permutation(np.flatnonzero(~touched))])


def country_folds(flow_mask: np.ndarray, folds: int, seed: int,
                  stock_mask: np.ndarray | None = None,
                  net_mask: np.ndarray | None = None) -> list[Split]:
    """Partition the countries into ``folds`` held-out sets; hide all their flows.

    Every country is held out in exactly one fold. Countries with reported flows are
    dealt out to the folds first, in a random order, so that every fold holds out about
    the same number of them. In a fold, every corridor whose origin *or* destination is
    held out is hidden in every year (flows reported by or to the country); a corridor
    between held-out countries of two folds is therefore tested in both.

    Parameters
    ----------
    flow_mask : numpy.ndarray
        (Y, N, N) bool, True where a flow is reported.
    folds : int
        Number of folds, 2 <= folds <= N.
    seed : int
        Seed of the assignment of countries to folds.
    stock_mask : numpy.ndarray, optional
        (C, N, N) bool over (census, birth, destination), True where a stock is observed.
        When given, the foreign-born stocks of people born in or living in a held-out
        country are hidden too, except at the first census: that is the initial
        condition of the accounting recursion (an input, not a target).
    net_mask : numpy.ndarray, optional
        (Y, N) bool, True where net migration is observed. When given, the net migration
        of the held-out countries is hidden too.

    Returns
    -------
    list of Split
        One per fold, with ``countries`` set to the held-out countries.
    """
    flow_mask = np.asarray(flow_mask, dtype=bool)
    n = flow_mask.shape[-1]
    if not 2 <= folds <= n:
        raise ValueError(f"folds must lie in [2, {n}] (the number of countries), got {folds}")
    order = _country_order(flow_mask, seed)
    out = []
    for fold in range(folds):
        held = np.zeros(n, dtype=bool)
        held[order[fold::folds]] = True
        touching = (held[:, None] | held[None, :]) & _offdiag(n)
        region = np.broadcast_to(touching, flow_mask.shape).copy()
        split = Split(name="country", fold=fold, flow_region=region,
                      flow_test=region & flow_mask, countries=held,
                      description=f"{int(held.sum())} countries, all their corridors")
        if stock_mask is not None:
            stock_test = np.asarray(stock_mask, dtype=bool) & touching[None]
            stock_test[0] = False
            split.stock_test = stock_test
        if net_mask is not None:
            split.net_test = np.asarray(net_mask, dtype=bool) & held[None, :]
        out.append(split)
    return out


def trailing_years(flow_mask: np.ndarray, years: int = 5, net_mask: np.ndarray | None = None,
                   stock_mask: np.ndarray | None = None,
                   census_index: list[int] | None = None) -> Split:
    """Hide the last ``years`` years with reported flows, for every corridor.

    Parameters
    ----------
    flow_mask : numpy.ndarray
        (Y, N, N) bool, True where a flow is reported.
    years : int
        Number L of trailing years to hide, 1 <= L < (years with flow data).
    net_mask : numpy.ndarray, optional
        (Y, N) bool, True where net migration is observed; when given, net migration in
        the held-out years is hidden too.
    stock_mask : numpy.ndarray, optional
        (C, N, N) bool over (census, birth, destination); when given with
        ``census_index``, stocks at censuses after the start of the held-out years are
        hidden too (they result from the held-out years' flows).
    census_index : list of int, optional
        Positions of the census years among the stock years (stock year s is 1 January
        of flow year s).

    Returns
    -------
    Split
        A single fold (``fold`` 0) named ``"years"``.
    """
    flow_mask = np.asarray(flow_mask, dtype=bool)
    with_data = np.flatnonzero(flow_mask.any(axis=(1, 2)))
    if not 1 <= years < len(with_data):
        raise ValueError(f"years must lie in [1, {len(with_data) - 1}] (years with flow "
                         f"data minus one), got {years}")
    hidden = np.zeros(flow_mask.shape[0], dtype=bool)
    hidden[with_data[-years:]] = True
    n = flow_mask.shape[-1]
    region = hidden[:, None, None] & _offdiag(n)[None]
    split = Split(name="years", fold=0, flow_region=region, flow_test=region & flow_mask,
                  description=f"the last {years} years with flow data, all corridors")
    if net_mask is not None:
        split.net_test = np.asarray(net_mask, dtype=bool) & hidden[:, None]
    if stock_mask is not None:
        if census_index is None:
            raise ValueError("stock_mask needs census_index to place the censuses in time")
        after = np.asarray(census_index) > with_data[-years]
        split.stock_test = np.asarray(stock_mask, dtype=bool) & after[:, None, None]
    return split


def census_index(ds: xr.Dataset) -> list[int]:
    """Positions of the census years among the stock years of ``ds``."""
    return [int(np.searchsorted(ds["stock_year"].values, c)) for c in ds["census"].values]


def target_masks(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed (flow (Y, N, N), stock (C, N, N), net migration (Y, N)) masks of ``ds``."""
    flow = ds["flow"].transpose("year", "origin", "destination").notnull().values
    stock = ds["stock"].transpose("census", "birth", "destination").notnull().values
    net = ds["net_migration"].transpose("year", "country").notnull().values
    return flow, stock, net


def make_splits(ds: xr.Dataset, name: str, folds: int = 5, seed: int = 0, frac: float = 0.2,
                years: int = 5, hide_stocks_net: bool = False) -> list[Split]:
    """Every fold of the split ``name`` of the dataset ``ds``.

    Parameters
    ----------
    ds : xarray.Dataset
        Observations in the schema of :mod:`migflow.schema`.
    name : str
        ``"random"`` (one fold: ``frac`` of the corridors, the paper's split),
        ``"kfold"`` (``folds`` corridor folds), ``"country"`` (``folds`` folds of whole
        countries) or ``"years"`` (one fold: the last ``years`` years with flow data).
    folds : int
        Number of folds of the ``kfold`` and ``country`` splits.
    seed : int
        Seed of the random assignment.
    frac : float
        Held-out fraction of the ``random`` split.
    years : int
        Held-out trailing years of the ``years`` split.
    hide_stocks_net : bool
        For ``country`` and ``years``: hide the stocks and net migration of the held-out
        countries or years too. Ignored (with a warning) by the corridor splits.

    Returns
    -------
    list of Split
    """
    flow, stock, net = target_masks(ds)
    if name in ("random", "kfold") and hide_stocks_net:
        log.warning("split %r hides flows only; hide_stocks_net is ignored", name)
    if name == "random":
        return [corridor_split("random", 0, random_corridors(flow, frac, seed), flow)]
    if name == "kfold":
        return [corridor_split("kfold", k, c, flow)
                for k, c in enumerate(kfold_corridors(flow, folds, seed))]
    extra = {"stock_mask": stock, "net_mask": net} if hide_stocks_net else {}
    if name == "country":
        return country_folds(flow, folds, seed, **extra)
    if name == "years":
        if hide_stocks_net:
            extra["census_index"] = census_index(ds)
        return [trailing_years(flow, years, **extra)]
    raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")


def _hide(ds: xr.Dataset, var: str, dims: tuple[str, ...], mask: np.ndarray) -> None:
    hidden = xr.DataArray(np.asarray(mask, dtype=bool), dims=dims)
    ds[var] = ds[var].where(~hidden)
    ds[f"{var}_weight"] = ds[f"{var}_weight"].where(~hidden, 0.0)


def apply_split(ds: xr.Dataset, split: Split) -> xr.Dataset:
    """A copy of ``ds`` with the split's test entries hidden: values NaN, weights 0.

    Everything else (covariates, other targets, attributes) is left unchanged, and the
    variables keep their dimension order, so the copy passes the schema checks.
    """
    out = ds.copy(deep=True)
    _hide(out, "flow", ("year", "origin", "destination"), split.flow_test)
    if split.stock_test is not None:
        _hide(out, "stock", ("census", "birth", "destination"), split.stock_test)
    if split.net_test is not None:
        _hide(out, "net_migration", ("year", "country"), split.net_test)
    for var in ("flow", "stock", "net_migration"):
        out[var] = out[var].transpose(*ds[var].dims)
        out[f"{var}_weight"] = out[f"{var}_weight"].transpose(*ds[f"{var}_weight"].dims)
    out.attrs["heldout_split"] = f"{split.name} fold {split.fold}: {split.description}"
    return out


_SPLIT_DIMS = {
    "flow_region": ("year", "origin", "destination"),
    "flow_test": ("year", "origin", "destination"),
    "stock_test": ("census", "birth", "destination"),
    "net_test": ("year", "country"),
    "countries": ("country",),
}
_LONG_NAMES = {
    "flow_region": "held-out unit (observed or not): scored against a known truth",
    "flow_test": "reported flow hidden from the loss",
    "stock_test": "observed stock hidden from the loss",
    "net_test": "observed net migration hidden from the loss",
    "countries": "held-out country",
}


def split_to_dataset(split: Split, ds: xr.Dataset) -> xr.Dataset:
    """The masks of ``split`` as an int8 netCDF-ready dataset with the coordinates of ``ds``."""
    variables = {}
    for var, dims in _SPLIT_DIMS.items():
        mask = getattr(split, var)
        if mask is not None:
            variables[var] = (dims, np.asarray(mask, dtype=np.int8),
                              {"long_name": _LONG_NAMES[var], "flag_values": "0 1"})
    coords = {d: ds[d].values for dims in _SPLIT_DIMS.values() for d in dims}
    return xr.Dataset(variables, coords=coords,
                      attrs={"split": split.name, "fold": split.fold,
                             "description": split.description})


def split_from_dataset(masks: xr.Dataset) -> Split:
    """Inverse of :func:`split_to_dataset`."""
    def get(var):
        if var not in masks:
            return None
        return masks[var].transpose(*_SPLIT_DIMS[var]).values.astype(bool)

    return Split(name=str(masks.attrs["split"]), fold=int(masks.attrs["fold"]),
                 flow_region=get("flow_region"), flow_test=get("flow_test"),
                 stock_test=get("stock_test"), net_test=get("net_test"),
                 countries=get("countries"), description=str(masks.attrs["description"]))


def save_split(split: Split, ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write the masks of ``split`` to ``path`` (netCDF) atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    split_to_dataset(split, ds).to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)
    return path


def load_split(path: str | os.PathLike) -> Split:
    """Read a :class:`Split` written by :func:`save_split`."""
    with xr.open_dataset(path, engine="h5netcdf") as masks:
        return split_from_dataset(masks.load())
