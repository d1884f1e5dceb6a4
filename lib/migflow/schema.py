"""The one dataset schema shared by the synthetic and the real world.

Every data source (the embedded synthetic world, the real public data) is assembled
into an :class:`xarray.Dataset` of *observations* with the dimensions and variables
below, so that no notebook needs to know where the data came from. The synthetic
world also has a *truth* dataset (:data:`TRUTH_VARS`), kept in a separate file.

Dimensions
----------
``country``      the N countries (codes as strings); ``birth``, ``origin`` and
                 ``destination`` carry the same codes in the same order.
``year``         flow years: a flow in year t happens during calendar year t.
``stock_year``   1 January snapshots; one more than ``year`` (1990..2024 for 1990..2023).
``census``       the years with stock observations (1 January), a subset of ``stock_year``.
``edge``         the modelled (birth, origin, destination) triples (estimates only).
``quantile``     quantile levels in [0, 1] (estimates only).

Missing data are NaN: a variable's mask is ``ds[var].notnull()``. Weights are 1 where
nothing better is known and 0 where the value is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import xarray as xr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Var:
    """Description of one variable: its dimensions, units and long name."""

    dims: tuple[str, ...]
    units: str
    long_name: str


U = ("year", "country")  # unilateral, time-varying
B = ("origin", "destination")  # bilateral, static
BT = ("year", "origin", "destination")  # bilateral, time-varying

# Covariates the network reads (paper.md section 2.1), in the paper's order.
COVARIATE_VARS: dict[str, Var] = {
    "gdp_per_capita": Var(U, "USD (2015)", "real GDP per capita"),
    "gdp_growth": Var(U, "%", "real GDP growth"),
    "trade": Var(BT, "USD (2015)", "bilateral trade, exports from origin to destination"),
    "population": Var(("stock_year", "country"), "persons", "total population on 1 January"),
    "life_expectancy": Var(U, "years", "life expectancy at birth"),
    "birth_rate": Var(U, "per 1000", "crude birth rate"),
    "death_rate": Var(U, "per 1000", "crude death rate"),
    "distance": Var(B, "km", "population-weighted distance"),
    "linguistic_similarity": Var(B, "1", "common spoken language index"),
    "religious_similarity": Var(B, "1", "religious similarity (inner product of shares)"),
    "conflict_deaths": Var(U, "persons", "deaths in organised violence"),
    "refugees": Var(("year", "birth", "destination"), "persons",
                    "refugees and asylum seekers from birth country hosted in destination"),
    "colonial_tie": Var(B, "1", "colonial tie ever (0/1)"),
    "eu_member": Var(U, "1", "member of the EU-like club (0/1)"),
}

# Demographic inputs of the accounting recursion.
DEMOGRAPHY_VARS: dict[str, Var] = {
    "births": Var(U, "persons", "live births during the year"),
    "deaths": Var(U, "persons", "deaths during the year"),
}

# Training targets, each with a weight variable ``<name>_weight`` of the same dims.
TARGET_VARS: dict[str, Var] = {
    "stock": Var(("census", "birth", "destination"), "persons",
                 "migrant stock by country of birth on 1 January (diagonal: native-born)"),
    "net_migration": Var(U, "persons", "net migration during the year (immigration - emigration)"),
    "flow": Var(BT, "persons", "reported migration flow from origin to destination"),
}

OBSERVATION_VARS: dict[str, Var] = {**COVARIATE_VARS, **DEMOGRAPHY_VARS, **TARGET_VARS}
for _name, _v in TARGET_VARS.items():
    OBSERVATION_VARS[f"{_name}_weight"] = Var(_v.dims, "1", f"weight of {_name} in the loss")

TRUTH_VARS: dict[str, Var] = {
    "flow_table": Var(("year", "edge"), "persons",
                      "true flow of people born in edge_birth moving "
                      "edge_origin -> edge_destination"),
    "flow": Var(BT, "persons", "true total flow from origin to destination"),
    "stock": Var(("stock_year", "birth", "destination"), "persons",
                 "true stock by country of birth on 1 January"),
    "net_migration": Var(U, "persons", "true net migration"),
}

BINARY_COVARIATES = ("colonial_tie", "eu_member")
BOUNDED_COVARIATES = ("linguistic_similarity", "religious_similarity")  # indices, not log-scaled
SIGNED_COVARIATES = ("gdp_growth",)  # may be negative


class SchemaError(ValueError):
    """Raised when a dataset does not follow the schema; the message names the fix."""


def check_observations(ds: xr.Dataset, source: str = "dataset") -> None:
    """Check that ``ds`` follows the observation schema, raising :class:`SchemaError`.

    Checks the presence, dimensions and basic sanity of every variable: coordinates
    agree, years are consecutive, stocks, flows and demography are non-negative where
    observed, weights are finite and zero where data are missing, no covariate is all NaN
    and covariates have no NaN at all (the network cannot read a NaN).
    """
    for dim in ("country", "birth", "origin", "destination", "year", "stock_year", "census"):
        if dim not in ds.coords:
            raise SchemaError(f"{source}: coordinate '{dim}' is missing")
    codes = ds["country"].values
    if len(set(codes.tolist())) != len(codes):
        raise SchemaError(f"{source}: duplicated country codes in 'country'")
    for dim in ("birth", "origin", "destination"):
        if not np.array_equal(ds[dim].values, codes):
            raise SchemaError(f"{source}: coordinate '{dim}' differs from 'country'")
    years = ds["year"].values
    if not np.array_equal(years, np.arange(years[0], years[0] + len(years))):
        raise SchemaError(f"{source}: 'year' must be consecutive, got {years.tolist()}")
    if not np.array_equal(ds["stock_year"].values, np.arange(years[0], years[-1] + 2)):
        raise SchemaError(f"{source}: 'stock_year' must run from {years[0]} to {years[-1] + 1}")
    if not set(ds["census"].values.tolist()) <= set(ds["stock_year"].values.tolist()):
        raise SchemaError(f"{source}: 'census' years must be stock years")
    for name, var in OBSERVATION_VARS.items():
        if name not in ds:
            raise SchemaError(f"{source}: variable '{name}' is missing ({var.long_name})")
        if tuple(ds[name].dims) != var.dims:
            raise SchemaError(
                f"{source}: variable '{name}' has dims {ds[name].dims}, expected {var.dims}")
    for name in COVARIATE_VARS:
        values = ds[name].values
        if np.isnan(values).all():
            raise SchemaError(f"{source}: covariate '{name}' is all NaN; fill or drop its source")
        if np.isnan(values).any():
            n = int(np.isnan(values).sum())
            raise SchemaError(
                f"{source}: covariate '{name}' has {n} NaN values; impute them before training")
    for name in ("stock", "flow", "births", "deaths", "population", "trade", "refugees",
                 "conflict_deaths", "distance"):
        values = ds[name].values
        if (values[~np.isnan(values)] < 0).any():
            bad = np.argwhere(values < 0)[0]
            where = {d: ds[name][d].values[i] for d, i in zip(ds[name].dims, bad)}
            raise SchemaError(f"{source}: variable '{name}' is negative at {where}")
    for name in TARGET_VARS:
        w = ds[f"{name}_weight"].values
        if not np.isfinite(w).all() or (w < 0).any():
            raise SchemaError(f"{source}: '{name}_weight' must be finite and non-negative")
        if (w[np.isnan(ds[name].values)] != 0).any():
            raise SchemaError(f"{source}: '{name}_weight' must be 0 where '{name}' is missing")


def add_attrs(ds: xr.Dataset, variables: dict[str, Var]) -> xr.Dataset:
    """Attach units and long names from the schema to the variables present in ``ds``."""
    for name, var in variables.items():
        if name in ds:
            ds[name].attrs.update(units=var.units, long_name=var.long_name)
    return ds
