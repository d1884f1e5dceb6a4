"""Re-run Abel & Cohen's six estimators on public inputs and compare with their published flows.

Abel & Cohen publish five-year bilateral flows from six methods (``sd_drop_neg``,
``sd_rev_neg``, ``mig_rate``, ``da_min_open``, ``da_min_closed``, ``da_pb_closed``; see
:mod:`migflow.baselines`). This module feeds our implementation of those methods inputs as
close to theirs as the shared raw files allow, for the same countries and periods, and
measures how well the two agree. Agreement shows that the baselines we compare the network
against are Abel & Cohen's methods, not something that only resembles them.

Inputs and why they were chosen
-------------------------------
* **Stocks: UN DESA International Migrant Stock, 2020 revision** (``ims2020``), both sexes
  = female + male, mid-year (1 July) tables of 1990, 1995, ..., 2020, used as published
  (no shift to 1 January: Abel & Cohen work with mid-year stocks and mid-year-to-mid-year
  periods). The published file covers 1990-2020 in six periods and is most likely the
  Abel & Cohen (2022) update, which used IMS 2020. The data confirm it: with IMS 2020 the
  two stock-differencing methods, which use nothing but the stocks, reproduce every
  published flow to the person (r = 1, equal totals), while IMS 2024 gives r of about 0.89.
  IMS 2019 has no 2020 table and cannot cover the last period.
* **Native-born** (the diagonal, used by the demographic methods only): mid-year population
  (WPP 2024, ``pop`` in ``covariates/gdidata_wdi_indicators.csv.gz``) minus the foreign-born
  from the birthplaces in the comparison. Migrants of unknown origin (``OOO``) or born in a
  territory Abel & Cohen leave out therefore count as native-born, as in their recipe
  (``pop - sum of the foreign-born in their stock table``).
* **Births, deaths and net migration over a period t to t+5**: WPP 2024 annual tables
  (``wpp_misc``, ``wpp_mig``) are calendar years, while WPP period estimates run from
  1 July t to 30 June t+5; the period total is therefore ``0.5 x(t) + x(t+1) + ... +
  x(t+4) + 0.5 x(t+5)``. ``mig_rate`` takes its global total from the net migration
  (:func:`migflow.baselines.global_flow_total`).
* **Countries**: those of the published file in each period (225 in 1990-2005, 226 in
  2005-2010 and 229 later). Where that file keeps a former state (``SCG`` for Serbia and
  Montenegro, ``SDN_former`` for Sudan before 2011, in the periods starting 1990-2005), the
  successors' stocks, population, births and deaths are summed into it. Countries that are
  not in the published file in a period (Taiwan and Bonaire always, Curacao before 2010,
  Sint Maarten before 2005, the Holy See, the Channel Islands) are dropped, as migrants'
  birthplaces and as residences.
* The flows are rounded as Abel & Cohen's files are (``rounding="abel-cohen"`` in
  :func:`migflow.baselines.five_year_flows`).

Known shortcomings
------------------
* **Demography revision.** Abel & Cohen took population, births, deaths and net migration
  from an earlier World Population Prospects (most likely WPP 2019); only WPP 2024 is at
  hand. The closed demographic-accounting methods force each country's net migration to
  population change minus natural increase, so WPP's revision of past population and net
  migration moves their flows: the net migration implied by the published ``da_min_closed``
  flows correlates with WPP 2024 net migration at only r = 0.92-0.95 per period.
  ``da_min_closed`` therefore agrees at only r = 0.898 on counts (0.908 on log1p; 0.876-0.923
  per period), just under the 0.9 aimed at;
  ``da_pb_closed`` (0.955) and ``mig_rate`` (0.995 pooled; r = 1.000 within each period:
  the revision changes its global total, not its pattern) less so; ``da_min_open`` (0.999)
  hardly at all.
* **Algorithm version.** Our port follows migest 2.0.5 (mipfp IPF, 1e-3 cell-change rule);
  Abel & Cohen ran an earlier migest whose IPF stops differently. Its effect cannot be
  separated from the demography revision with the files at hand; the open variant, which
  needs no IPF before its flow step, agrees at r = 0.999.
* Former states are compared as aggregates; the successors' own flows in the periods
  1990-2010 are not checked, and the countries listed above are not compared at all.

Use :func:`reproduce_abel_cohen` for both sets of flows and :func:`agreement` for the table
of correlations per method and period.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from migflow import baselines, countries, realdata, sources

log = logging.getLogger(__name__)

IMS_REVISION = "ims2020"
"""Registry key of the stock revision that matches Abel & Cohen's published file."""

PERIOD_STARTS: tuple[int, ...] = (1990, 1995, 2000, 2005, 2010, 2015)
"""First years of the published five-year periods (the last one is 2015-2020)."""

PERIOD_LENGTH = 5

INPUT_KEYS: tuple[str, ...] = (IMS_REVISION, "wpp_misc", "wpp_mig", "wdi", "abel_cohen")
"""Registry keys of the raw files read (the WPP tables also need the two crosswalks)."""

REQUIRED_FILES: tuple[str, ...] = INPUT_KEYS + ("crosswalk", "iso_code_lookup")
"""Every registry key whose file must be present."""

ALL_PERIODS = "all"
"""Label of the pooled rows (all corridors and periods) in :func:`agreement`."""


@dataclass(frozen=True)
class PeriodInputs:
    """Inputs of one five-year period on the countries of the published file.

    Attributes
    ----------
    year0 : int
        First year of the period.
    codes : tuple of str
        Country codes in array order (ISO3, or ``SCG``/``SDN_former`` for former states).
    stock_start, stock_end : numpy.ndarray, shape (N, N)
        Mid-year stocks [birthplace, residence] at ``year0`` and ``year0 + 5``, native-born
        on the diagonal (may be negative where the foreign-born exceed the population).
    births, deaths, net_migration : numpy.ndarray, shape (N,)
        Period totals by residence (persons).
    """

    year0: int
    codes: tuple[str, ...]
    stock_start: np.ndarray
    stock_end: np.ndarray
    births: np.ndarray
    deaths: np.ndarray
    net_migration: np.ndarray


# ---------------------------------------------------------------- loading


def load_inputs(raw_dir: str | os.PathLike | None = None,
                verify: bool = True) -> dict[str, pd.DataFrame]:
    """Read (and by default verify) the raw files of the comparison.

    Parameters
    ----------
    raw_dir : path-like, optional
        Raw-data directory (default: ``RAW_DATA_DIR`` or ``data/raw``).
    verify : bool
        Check each file's sha256 before parsing.

    Returns
    -------
    dict of str to pandas.DataFrame
        Keyed by :data:`INPUT_KEYS`.
    """
    return realdata.load_tables(raw_dir, verify, keys=INPUT_KEYS, required=REQUIRED_FILES)


def _fail(key: str, message: str):
    raise sources.RawDataValidationError(f"raw file '{sources.source(key).path}': {message}")


# ---------------------------------------------------------------- inputs of one period


def period_codes(published: pd.DataFrame, year0: int) -> tuple[tuple[str, ...], dict[str, str]]:
    """Countries of the published file in a period, and the successor -> former-state map.

    Parameters
    ----------
    published : pandas.DataFrame
        The parsed Abel & Cohen table (``sources.load("abel_cohen")``).
    year0 : int
        First year of the period.

    Returns
    -------
    tuple
        The sorted codes, and ``{successor: former}`` for each former state among them.
    """
    part = published[published["year0"] == year0]
    if part.empty:
        _fail("abel_cohen", f"field 'year0' has no rows for {year0}")
    codes = tuple(sorted(set(part["orig"]) | set(part["dest"])))
    merge = {succ: former for former, successors in countries.FORMER_STATES.items()
             if former in codes for succ in successors}
    both = sorted(set(merge) & set(codes))
    if both:
        _fail("abel_cohen", f"period {year0} has former state(s) and successor(s) {both} "
                            "together in fields 'orig'/'dest'")
    return codes, merge


def period_weights(year0: int, length: int = PERIOD_LENGTH) -> dict[int, float]:
    """Weights that turn calendar-year values into a mid-year-to-mid-year period total."""
    weights = {y: 1.0 for y in range(year0 + 1, year0 + length)}
    weights[year0] = weights[year0 + length] = 0.5
    return weights


def _country_values(values: pd.Series, codes: Sequence[str], key: str, field: str,
                    what: str) -> np.ndarray:
    """Reindex a per-country series on ``codes``, raising on a country without a value."""
    out = values.reindex(list(codes))
    missing = list(out.index[out.isna()])
    if missing:
        _fail(key, f"field '{field}' has no value for {missing} ({what})")
    return out.to_numpy(float)


def _raw_codes(codes: Sequence[str], merge: Mapping[str, str]) -> list[str]:
    """The raw-file codes behind ``codes``: a former state stands for its successors."""
    formers = set(merge.values())
    return [c for c in codes if c not in formers] + sorted(merge)


def period_total(table: pd.DataFrame, field: str, year0: int, codes: Sequence[str],
                 merge: Mapping[str, str], key: str) -> np.ndarray:
    """Mid-year-to-mid-year period total of an annual WPP field, in persons.

    Parameters
    ----------
    table : pandas.DataFrame
        WPP annual table with ``year``, ``iso3`` and ``field`` (thousands).
    field : str
        Column to sum (``births``, ``deaths`` or ``mig``).
    year0 : int
        First year of the period.
    codes : sequence of str
        Countries in array order.
    merge : mapping
        Successor -> former-state codes to sum into.
    key : str
        Registry key of ``table`` (for error messages).

    Returns
    -------
    numpy.ndarray, shape (N,)
    """
    weights = period_weights(year0)
    rows = table[table["year"].isin(list(weights))].dropna(subset=[field])
    have = rows.groupby("iso3")["year"].nunique().reindex(_raw_codes(codes, merge)).fillna(0)
    short = list(have.index[have < len(weights)])
    if short:
        _fail(key, f"field '{field}' lacks some of the years {sorted(weights)} for {short}")
    iso3 = rows["iso3"].replace(dict(merge))
    total = (rows[field] * rows["year"].map(weights)).groupby(iso3).sum(min_count=1)
    return 1000.0 * _country_values(total, codes, key, field,
                                     f"period {year0}-{year0 + PERIOD_LENGTH}")


def mid_year_population(wdi: pd.DataFrame, year: int, codes: Sequence[str],
                        merge: Mapping[str, str]) -> np.ndarray:
    """WPP 2024 mid-year population (persons) of ``codes`` in ``year``."""
    pop = wdi[(wdi["var"] == "pop") & (wdi["year"] == year)].dropna(subset=["value"])
    _country_values(pop.set_index("iso3")["value"], _raw_codes(codes, merge), "wdi", "value",
                    f"var 'pop', year {year}")
    total = pop.groupby(pop["iso3"].replace(dict(merge)))["value"].sum(min_count=1)
    return _country_values(total, codes, "wdi", "value", f"var 'pop', year {year}")


def stock_table(ims: pd.DataFrame, year: int, codes: Sequence[str], merge: Mapping[str, str],
                population: np.ndarray) -> np.ndarray:
    """Mid-year stock table [birthplace, residence] with the native-born on the diagonal.

    Both sexes are summed (IMS 2020 has no cell with only one sex). Birthplaces and
    residences outside ``codes`` are dropped; successors are summed into their former state.

    Parameters
    ----------
    ims : pandas.DataFrame
        Parsed IMS table (``year, orig, dest, sex, stock``).
    year : int
        Stock year.
    codes : sequence of str
        Countries in array order.
    merge : mapping
        Successor -> former-state codes.
    population : numpy.ndarray, shape (N,)
        Mid-year population of ``codes`` in ``year``.

    Returns
    -------
    numpy.ndarray, shape (N, N)
    """
    rows = ims[ims["year"] == year]
    if rows.empty:
        _fail(IMS_REVISION, f"field 'year' has no rows for {year}")
    rows = rows.assign(orig=rows["orig"].replace(dict(merge)),
                       dest=rows["dest"].replace(dict(merge)))
    rows = rows[rows["orig"].isin(codes) & rows["dest"].isin(codes)
                & (rows["orig"] != rows["dest"])]
    cells = rows.groupby(["orig", "dest"])["stock"].sum()
    pos = {c: i for i, c in enumerate(codes)}
    n = len(codes)
    table = np.zeros((n, n))
    table[cells.index.get_level_values(0).map(pos), cells.index.get_level_values(1).map(pos)] \
        = cells.to_numpy(float)
    no_dest = sorted(set(codes) - set(rows["dest"]))
    if no_dest:
        log.info("IMS %d: no foreign-born recorded in %s", year, no_dest)
    native = population - table.sum(axis=0)
    if (native < 0).any():
        log.warning("IMS %d: foreign-born exceed the population in %s; the demographic "
                    "methods rescale these columns (migflow.baselines.guard_native_born)",
                    year, [c for c, v in zip(codes, native) if v < 0])
    np.fill_diagonal(table, native)
    return table


def period_inputs(tables: Mapping[str, pd.DataFrame], year0: int) -> PeriodInputs:
    """Assemble one period's inputs on the countries of the published file.

    Parameters
    ----------
    tables : mapping
        Output of :func:`load_inputs`.
    year0 : int
        First year of the period.

    Returns
    -------
    PeriodInputs

    Raises
    ------
    sources.RawDataValidationError
        Naming the file and field when a country lacks a value.
    """
    codes, merge = period_codes(tables["abel_cohen"], year0)
    year1 = year0 + PERIOD_LENGTH
    stocks = [stock_table(tables[IMS_REVISION], y, codes, merge,
                          mid_year_population(tables["wdi"], y, codes, merge))
              for y in (year0, year1)]
    return PeriodInputs(
        year0=year0, codes=codes, stock_start=stocks[0], stock_end=stocks[1],
        births=period_total(tables["wpp_misc"], "births", year0, codes, merge, "wpp_misc"),
        deaths=period_total(tables["wpp_misc"], "deaths", year0, codes, merge, "wpp_misc"),
        net_migration=period_total(tables["wpp_mig"], "mig", year0, codes, merge, "wpp_mig"))


# ---------------------------------------------------------------- flows


def estimate_period(inputs: PeriodInputs,
                    methods: Sequence[str] = baselines.ALL_METHODS) -> xr.DataArray:
    """Run the methods on one period, rounded as in Abel & Cohen's files.

    Returns
    -------
    xarray.DataArray
        Dims (method, origin, destination), persons, zero diagonal.
    """
    codes = list(inputs.codes)
    stock = {"birth": codes, "destination": codes}

    def table(a):
        return xr.DataArray(a, dims=("birth", "destination"), coords=stock)

    def vector(a):
        return xr.DataArray(a, dims=("country",), coords={"country": codes})

    ds = baselines.five_year_flows(
        table(inputs.stock_start), table(inputs.stock_end), vector(inputs.births),
        vector(inputs.deaths), vector(inputs.net_migration), methods=methods,
        by_birth=False, rounding="abel-cohen")
    return ds["flow"]


def published_period(published: pd.DataFrame, year0: int, codes: Sequence[str],
                     methods: Sequence[str] = baselines.ALL_METHODS) -> xr.DataArray:
    """Published flows of one period on ``codes``: absent pairs are 0, the diagonal is 0."""
    part = published[published["year0"] == year0]
    pos = {c: i for i, c in enumerate(codes)}
    i, j = part["orig"].map(pos), part["dest"].map(pos)
    if i.isna().any() or j.isna().any():
        _fail("abel_cohen", f"fields 'orig'/'dest' of period {year0} have codes outside "
                            f"the period's countries")
    arr = np.zeros((len(methods), len(codes), len(codes)))
    for m, method in enumerate(methods):
        arr[m, i.to_numpy(), j.to_numpy()] = part[method].to_numpy(float)
    return xr.DataArray(arr, dims=("method", "origin", "destination"),
                        coords={"method": list(methods), "origin": list(codes),
                                "destination": list(codes)})


def reproduce_abel_cohen(raw_dir: str | os.PathLike | None = None,
                         periods: Sequence[int] = PERIOD_STARTS, verify: bool = True,
                         tables: Mapping[str, pd.DataFrame] | None = None,
                         progress: bool = True) -> xr.Dataset:
    """Our six estimates and Abel & Cohen's published ones, period by period.

    Parameters
    ----------
    raw_dir : path-like, optional
        Raw-data directory (default: ``RAW_DATA_DIR`` or ``data/raw``).
    periods : sequence of int, optional
        First years of the periods (a subset of :data:`PERIOD_STARTS`).
    verify : bool
        Check the raw files' sha256 first (ignored when ``tables`` is given).
    tables : mapping, optional
        Already loaded :func:`load_inputs` output.
    progress : bool
        Show a progress bar over the periods.

    Returns
    -------
    xarray.Dataset
        ``estimate`` and ``published`` (year0, method, origin, destination) in persons on
        the union of the periods' countries; NaN on the diagonal and for a country absent
        from a period (a former state or its successors, Curacao, Sint Maarten).
    """
    tables = load_inputs(raw_dir, verify) if tables is None else tables
    periods = [int(p) for p in periods]
    per_period = []
    for year0 in tqdm(periods, desc="Abel & Cohen periods", disable=not progress):
        inputs = period_inputs(tables, year0)
        est = estimate_period(inputs)
        pub = published_period(tables["abel_cohen"], year0, inputs.codes)
        per_period.append(xr.Dataset({"estimate": est, "published": pub}))
        log.info("Abel & Cohen %d-%d: %d countries, da_pb_closed total %.1f M (published "
                 "%.1f M)", year0, year0 + PERIOD_LENGTH, len(inputs.codes),
                 float(est.sel({"method": "da_pb_closed"}).sum()) / 1e6,
                 float(pub.sel({"method": "da_pb_closed"}).sum()) / 1e6)
    codes = sorted(set().union(*(set(p["origin"].values) for p in per_period)))
    ds = xr.concat([p.reindex(origin=codes, destination=codes) for p in per_period],
                   dim=pd.Index(periods, name="year0"))
    diag = xr.DataArray(np.eye(len(codes), dtype=bool), dims=("origin", "destination"),
                        coords={"origin": codes, "destination": codes})
    ds = ds.where(~diag)
    for name, text in (("estimate", "five-year flow, our re-run of the method"),
                       ("published", "five-year flow, Abel & Cohen's published file")):
        ds[name].attrs.update(units="persons", long_name=text)
    ds.attrs.update(stock_revision=IMS_REVISION, demography="WPP 2024",
                    note="period year0 to year0 + 5; NaN = diagonal or country absent")
    return ds


# ---------------------------------------------------------------- agreement


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _row(method: str, period: str, est: np.ndarray, pub: np.ndarray) -> dict:
    ok = np.isfinite(est) & np.isfinite(pub)
    est, pub = est[ok], pub[ok]
    negative = int((est < 0).sum())
    if negative:
        log.warning("%s %s: %d negative estimates set to 0 for the log correlation",
                    method, period, negative)
    return {"method": method, "period": period, "n_corridors": int(ok.sum()),
            "r_count": _pearson(est, pub),
            "r_log1p": _pearson(np.log1p(np.clip(est, 0, None)), np.log1p(pub)),
            "total_estimate": float(est.sum()), "total_published": float(pub.sum()),
            "total_ratio": float(est.sum() / pub.sum()) if pub.sum() else float("nan")}


def agreement(flows: xr.Dataset) -> pd.DataFrame:
    """Agreement of our estimates with the published ones, per method and period.

    Pearson r on the counts and on ``log1p`` of the counts, over every ordered pair of
    distinct countries present in the period (pairs absent from the published file count
    as 0 there); the rows with ``period == "all"`` pool all corridors and periods.

    Parameters
    ----------
    flows : xarray.Dataset
        Output of :func:`reproduce_abel_cohen`.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, period, n_corridors, r_count, r_log1p, total_estimate,
        total_published, total_ratio``; periods as ``"1990-1995"`` and ``"all"``.
    """
    rows = []
    years = [int(y) for y in flows["year0"].values]
    for method in flows["method"].values:
        est = flows["estimate"].sel({"method": method}).values
        pub = flows["published"].sel({"method": method}).values
        for p, year0 in enumerate(years):
            rows.append(_row(str(method), f"{year0}-{year0 + PERIOD_LENGTH}", est[p], pub[p]))
        rows.append(_row(str(method), ALL_PERIODS, est.ravel(), pub.ravel()))
    return pd.DataFrame(rows)


def implied_net_migration(od: xr.DataArray) -> xr.DataArray:
    """Immigration minus emigration per country implied by flows (origin, destination).

    For the closed demographic methods this is the net migration their accounts were forced
    to, which makes it a diagnostic of the demography each side used (see the module
    docstring: ours follows WPP 2024, the published one an earlier WPP). NaN counts as 0.

    Returns
    -------
    xarray.DataArray
        The leading dims of ``od`` and ``country``.
    """
    od = od.fillna(0.0)
    inflow = od.sum("origin").rename({"destination": "country"})
    outflow = od.sum("destination").rename({"origin": "country"})
    return inflow - outflow
