"""The real world: assemble the public raw files into the observation dataset.

:func:`build_real_dataset` reads the files registered in :mod:`migflow.sources` and returns
an :class:`xarray.Dataset` in exactly the schema of :mod:`migflow.schema` (231 countries,
flow years 1990-2023, 1 January stock years 1990-2024, census years 1990, 1995, ..., 2020,
2024). :func:`write_real_dataset` writes it atomically (nothing is written if any step fails).
:func:`abel_cohen_flows` returns the Abel & Cohen five-year estimates for validation.

Rules, in the order the build applies them (each also recorded in the variable's attrs):

Covariates
    * GDP per capita (2015 USD) and real growth: the authors' ``GDP_data.nc`` (complete).
    * Population on 1 January of year t: mean of the WPP 2024 mid-year populations of t-1 and
      t; mid-2024 is extrapolated with the 2022-2023 growth factor.
    * Life expectancy (e0B), crude birth and death rates, births and deaths (thousands ->
      persons): WPP 2024 annual tables.
    * Distance, linguistic (``csl``) and religious similarity, colonial ties, EU membership,
      conflict deaths: the authors' files. Linguistic and religious similarity are kept as
      published although some values exceed 1 (the diagonal, and religious shares that are
      not normalised); the network does not transform them.
    * Refugees (year t, birth i, destination k): UNHCR refugees + asylum seekers + other
      people in need of international protection, origin i hosted in k, at the end of year
      t-1 (= 1 January of t); an absent row is 0; the diagonal is 0.
    * Trade: no public copy of CEPII BACI is at hand. **Substitute**: a gravity model
      ``trade[t, j, k] = G * Y_j(t) * Y_k(t) / d_jk`` (unit elasticities, Y = GDP in 2015 USD
      = GDP per capita x mid-year population, d = distance), zero diagonal, with G set so
      that world trade equals :data:`TRADE_TO_GDP` times world GDP in 2015. Flagged in
      ``ds.attrs['substitutes']`` and in the variable's attrs.
    * Every remaining gap is imputed (:func:`impute_unilateral`, :func:`impute_pairs`) so that
      no covariate has a NaN; with the current files no gap remains, and the number of
      imputed cells per covariate is stored in the attrs.

Targets
    * Stock (census c, birth i, destination k): UN DESA IMS 2024, both sexes = female + male
      (a cell with a missing sex is "insufficient data", NaN); NaN cells filled from IMS 2020;
      the authors' hand corrections (:data:`STOCK_CORRECTIONS`, all re-applied); stocks
      raised to at least the mid-year UNHCR refugee count; codes outside the 231 dropped
      (``OOO`` "other", Channel Islands, Holy See). Mid-year -> 1 January by
      :func:`mid_year_to_start_of_year` (divide by the half-year survival sqrt(1 - d_k), d_k
      the crude death rate of the residence country; the native diagonal also loses half the
      year's births). The diagonal is then replaced by population on 1 January minus the
      foreign-born sum, clipped at 0. Weight 1 where observed, :data:`IMPUTED_STOCK_WEIGHT`
      for cells UN DESA flags as imputed (``type_i``), 0 where NaN.
    * Net migration: national statistics (``Net_migration_data.nc``, Poland excluded as in
      the paper) with weight 1 where the raw national series (``National_statistics.nc``)
      reports the year; the authors' WPP gap-fills and all other countries take WPP 2024
      (``mig1dt``, thousands -> persons) with weight :data:`WPP_NET_WEIGHT`.
    * Flow (year, origin, destination): Eurostat flows reported by both sides, combined as a
      quality-weighted mean (:func:`combine_reported_flows`), and Canada's immigrant inflows
      by citizenship (weight :data:`CANADA_FLOW_WEIGHT`). NaN and weight 0 elsewhere.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from migflow import countries, schema, sources

log = logging.getLogger(__name__)

CENSUS_YEARS = (1990, 1995, 2000, 2005, 2010, 2015, 2020, 2024)
FIRST_YEAR, LAST_YEAR = 1990, 2023

TRADE_TO_GDP = 0.2  # world merchandise trade / world GDP in 2015 (about 16 of 75 trillion USD)
TRADE_CALIBRATION_YEAR = 2015
IMPUTED_STOCK_WEIGHT = 0.5
WPP_NET_WEIGHT = 0.5
CANADA_FLOW_WEIGHT = 0.5
NET_MIGRATION_EXCLUDED = ("POL",)  # registration-based, undercounts (paper.md section 3.2)

# HMigD quality scores -> reliability in (0, 1]: accuracy (high is good) and undercount
# (low is good). A missing score counts as medium.
ACCURACY_SCORE = {"high": 1.0, "medium": 0.7, "low": 0.4}
UNDERCOUNT_SCORE = {"low": 1.0, "medium": 0.7, "high": 0.4}
MISSING_ACCURACY = MISSING_UNDERCOUNT = "medium"

# Parent or neighbour whose series a territory takes when it has no value at all (rule 2 of
# impute_unilateral); from the authors' GDP and gravity READMEs where they name one.
TERRITORY_PROXIES: dict[str, str] = {
    "ESH": "MAR", "SPM": "CAN", "GUM": "PRI", "MNP": "PRI", "FLK": "IMN", "GIB": "GBR",
    "BES": "CUW", "SXM": "CUW", "ERI": "ETH", "SSD": "SDN", "MNE": "SRB", "VGB": "VIR",
    "IMN": "GBR", "TKL": "FJI", "ASM": "WSM", "NIU": "COK", "WLF": "NCL", "MYT": "REU",
    "GLP": "MTQ", "GUF": "MTQ", "SHN": "FLK", "GRL": "DNK", "FRO": "DNK", "MAC": "HKG",
    "TWN": "KOR", "PSE": "JOR", "AIA": "KNA", "MSR": "KNA", "TCA": "BHS", "CYM": "BMU",
}

# The authors' hand corrections of the combined mid-year stock (README_UN_stock_data.md):
# (birth, destination, years, values); the value "ims2020" means "use the 2020 revision".
STOCK_CORRECTIONS: tuple[tuple[str, str, tuple[int, ...], tuple], ...] = (
    ("SYC", "CAN", (1990, 1995), (2248.0, 1160.0)),
    ("CUW", "CAN", (2010,), (399.0,)),
    ("BES", "CAN", (2010, 2015, 2020), (40.0, 40.0, 44.0)),
    ("SXM", "CAN", (2010,), (105.0,)),
    ("DEU", "USA", (1995,), (1335539.0,)),
    ("AIA", "FRA", (2005,), (12.0,)),
    ("VNM", "MYS", (1990, 1995, 2000, 2005, 2010, 2015, 2020), ("ims2020",) * 7),
    ("VNM", "MYS", (2024,), (1.09e5,)),
    ("TKM", "GRC", (1990, 1995), (96.0, 82.0)),
    ("BGD", "EGY", (2010, 2015, 2020, 2024), (557.0, 1015.0, 1173.0, 762.0)),
    ("RUS", "SRB", (1995,), (810.0,)),
    ("RUS", "EGY", (2015,), (23462.0,)),
    ("UKR", "EGY", (2015,), (2349.0,)),
    ("LBN", "EGY", (2015,), (2045.0,)),
    ("MKD", "HUN", (1990, 1995), (460.0, 230.0)),
    ("COM", "ZAF", (2005,), (71.0,)),
    ("ABW", "FRA", (2005,), (7.0,)),
)

LOAD_ORDER = ("ims2024", "ims2020", "wdi", "wpp_misc", "wpp_e0", "wpp_mig", "gdp", "distance",
              "language", "religion", "colonial", "eu", "ucdp", "unhcr_population",
              "net_migration_national", "net_migration_raw", "eurostat_flows", "canada_flows")


# ---------------------------------------------------------------- small array helpers

def to_array(df: pd.DataFrame, columns: Sequence[str], value: str,
             coords: Sequence[Sequence]) -> np.ndarray:
    """Place a tidy table on a dense float array; cells without a row are NaN.

    Parameters
    ----------
    df : pandas.DataFrame
        Tidy table with unique keys ``columns``.
    columns : sequence of str
        Key columns, one per array dimension.
    value : str
        Value column.
    coords : sequence of sequences
        The labels of each dimension; rows with other labels are ignored.

    Returns
    -------
    numpy.ndarray
        Shape ``tuple(len(c) for c in coords)``.
    """
    out = np.full(tuple(len(c) for c in coords), np.nan)
    idx = [pd.Index(c).get_indexer(df[col]) for col, c in zip(columns, coords)]
    ok = np.logical_and.reduce([i >= 0 for i in idx])
    out[tuple(i[ok] for i in idx)] = df[value].to_numpy(float)[ok]
    return out


def _offdiag(n: int) -> np.ndarray:
    return ~np.eye(n, dtype=bool)


def impute_unilateral(values: np.ndarray, regions: Sequence[str], name: str,
                      codes: Sequence[str] = countries.COUNTRIES) -> tuple[np.ndarray, int]:
    """Fill the NaN of a (year, country) array.

    Rules, in order: (1) linear interpolation in time within the country, constant
    extrapolation at the ends; (2) a country without any value takes the series of its
    proxy in :data:`TERRITORY_PROXIES` (parent or neighbour); (3) the median of its region
    in the same year; (4) the median of all countries in that year.

    Parameters
    ----------
    values : numpy.ndarray
        Array (year, country), modified copy returned.
    regions : sequence of str
        Region of each country.
    name : str
        Variable name for the log.
    codes : sequence of str
        Country codes in array order.

    Returns
    -------
    tuple of (numpy.ndarray, int)
        The filled array and the number of cells imputed.
    """
    out = pd.DataFrame(values).interpolate(axis=0, limit_direction="both").to_numpy()
    pos = {c: i for i, c in enumerate(codes)}
    for c, proxy in TERRITORY_PROXIES.items():
        if c in pos and proxy in pos and np.isnan(out[:, pos[c]]).all():
            out[:, pos[c]] = out[:, pos[proxy]]
    regions = np.asarray(regions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN region-years stay NaN
        for r in np.unique(regions):
            block = out[:, regions == r]
            med = np.nanmedian(block, axis=1, keepdims=True)
            out[:, regions == r] = np.where(np.isnan(block), med, block)
        out = np.where(np.isnan(out), np.nanmedian(out, axis=1, keepdims=True), out)
    n = int(np.isnan(values).sum())
    if n:
        log.warning("%s: imputed %d of %d cells", name, n, values.size)
    return out, n


def impute_pairs(values: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """Fill the NaN of a static (origin, destination) array.

    Rules: (1) the symmetric counterpart (k, j); (2) the median of the off-diagonal values.

    Returns
    -------
    tuple of (numpy.ndarray, int)
        The filled array and the number of cells imputed.
    """
    out = np.where(np.isnan(values), values.T, values)
    med = np.nanmedian(out[_offdiag(len(out))])
    out = np.where(np.isnan(out), med, out)
    n = int(np.isnan(values).sum())
    if n:
        log.warning("%s: imputed %d of %d cells", name, n, values.size)
    return out, n


# ---------------------------------------------------------------- loading

def load_tables(raw_dir=None, verify: bool = True, keys: Sequence[str] = LOAD_ORDER,
                required: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Verify the files first (fail fast), then parse the ones the build reads.

    Parameters
    ----------
    raw_dir : path-like, optional
        Raw-data directory.
    verify : bool
        Check the sha256 of the ``required`` files before parsing anything.
    keys : sequence of str
        Registry keys to parse (default: those of the real-data build).
    required : sequence of str, optional
        Keys to verify (default: every registered file that has a copy).

    Returns
    -------
    dict of str to pandas.DataFrame
    """
    if verify:
        sources.verify_all(raw_dir, required)
    m49 = sources.m49_map(raw_dir, verify=False)
    tables = {}
    for key in keys:
        extra = {"m49_map": m49} if key.startswith("wpp_") else {}
        tables[key] = sources.load(key, raw_dir, verify=False, **extra)
    return tables


# ---------------------------------------------------------------- demography

def mid_year_population(wdi: pd.DataFrame, years: Sequence[int],
                        codes: Sequence[str] = countries.COUNTRIES) -> np.ndarray:
    """WPP mid-year population (year, country) for ``years``; one year past the data is
    extrapolated with the last annual growth factor.

    Raises
    ------
    sources.RawDataValidationError
        If a country has no population at all (population is never imputed).
    """
    pop = wdi[wdi["var"] == "pop"]
    last = int(pop["year"].max())
    known = [y for y in years if y <= last]
    arr = to_array(pop, ["year", "iso3"], "value", [known, codes])
    arr = pd.DataFrame(arr).interpolate(axis=0, limit_area="inside").to_numpy()
    missing = [c for c, col in zip(codes, arr.T) if np.isnan(col).any()]
    if missing:
        raise sources.RawDataValidationError(
            f"covariates/gdidata_wdi_indicators.csv.gz: field 'pop' has no value for "
            f"{missing} in {known[0]}-{known[-1]}")
    for _ in years[len(known):]:
        arr = np.vstack([arr, arr[-1] ** 2 / arr[-2]])
    return arr


def start_of_year_population(pop_mid: np.ndarray) -> np.ndarray:
    """1 January of t = mean of mid-year t-1 and t; input rows t0-1..T, output t0..T."""
    return 0.5 * (pop_mid[:-1] + pop_mid[1:])


def wpp_arrays(tables: Mapping[str, pd.DataFrame], years: Sequence[int],
               codes: Sequence[str] = countries.COUNTRIES) -> dict[str, np.ndarray]:
    """WPP annual series on (year, country): births and deaths in persons, rates, e0."""
    misc, e0 = tables["wpp_misc"], tables["wpp_e0"]
    grid = [years, codes]
    return {
        "births": 1000.0 * to_array(misc, ["year", "iso3"], "births", grid),
        "deaths": 1000.0 * to_array(misc, ["year", "iso3"], "deaths", grid),
        "birth_rate": to_array(misc, ["year", "iso3"], "cbr", grid),
        "death_rate": to_array(misc, ["year", "iso3"], "cdr", grid),
        "life_expectancy": to_array(e0, ["year", "iso3"], "e0B", grid),
    }


# ---------------------------------------------------------------- covariates

def unilateral_covariates(tables, years, regions) -> tuple[dict, dict]:
    """GDP, EU, conflict and WPP covariates on (year, country), imputed; and imputed counts."""
    codes = countries.COUNTRIES
    grid = [years, codes]
    raw = {
        "gdp_per_capita": to_array(tables["gdp"], ["year", "iso3"], "gdp_per_capita", grid),
        "gdp_growth": to_array(tables["gdp"], ["year", "iso3"], "gdp_growth", grid),
        "eu_member": to_array(tables["eu"], ["year", "iso3"], "eu_member", grid),
        "conflict_deaths": to_array(tables["ucdp"], ["year", "iso3"], "conflict_deaths", grid),
        **wpp_arrays(tables, years),
    }
    raw["conflict_deaths"] = np.nan_to_num(raw["conflict_deaths"])  # UCDP: no event = 0
    out, counts = {}, {}
    for name, values in raw.items():
        out[name], counts[name] = impute_unilateral(values, regions, name)
    return out, counts


def pair_covariates(tables) -> tuple[dict, dict]:
    """Static (origin, destination) covariates, imputed; and imputed counts."""
    codes = countries.COUNTRIES
    names = {"distance": "distance", "language": "linguistic_similarity",
             "religion": "religious_similarity", "colonial": "colonial_tie"}
    out, counts = {}, {}
    for key, name in names.items():
        values = to_array(tables[key], ["origin", "destination"], "value", [codes, codes])
        out[name], counts[name] = impute_pairs(values, name)
    return out, counts


def refugee_array(unhcr: pd.DataFrame, years: Sequence[int]) -> np.ndarray:
    """Refugees (year t, birth, destination) = UNHCR end-year t-1 stock (1 January of t).

    Sum of refugees, asylum seekers and other people in need of international protection
    (NaN parts count 0); rows outside the 231 countries dropped with a warning; absent
    corridors are 0; the diagonal is 0.
    """
    df = countries.restrict(unhcr, ["origin", "asylum"], "UNHCR population", value="refugees")
    df = df.assign(total=df[["refugees", "asylum_seekers", "oip"]].fillna(0).sum(axis=1),
                   year=df["year"] + 1)
    codes = countries.COUNTRIES
    arr = np.nan_to_num(to_array(df, ["year", "origin", "asylum"], "total",
                                 [years, codes, codes]))
    arr[:, np.arange(len(codes)), np.arange(len(codes))] = 0.0
    return arr


def gravity_trade(gdp_per_capita: np.ndarray, pop_mid: np.ndarray, distance: np.ndarray,
                  years: Sequence[int]) -> tuple[np.ndarray, float]:
    """Gravity substitute for bilateral trade (year, origin, destination) in 2015 USD.

    ``trade = G * Y_j * Y_k / d_jk`` with Y = GDP per capita x mid-year population and a
    zero diagonal; G makes world trade equal :data:`TRADE_TO_GDP` x world GDP in
    :data:`TRADE_CALIBRATION_YEAR` (or the middle year if it is outside ``years``).

    Returns
    -------
    tuple of (numpy.ndarray, float)
        The array and the constant G.
    """
    gdp = gdp_per_capita * pop_mid
    off = _offdiag(distance.shape[0])
    inv_d = np.where(off, 1.0 / np.maximum(distance, 1.0), 0.0)
    trade = gdp[:, :, None] * gdp[:, None, :] * inv_d[None]
    years = list(years)
    ref = years.index(TRADE_CALIBRATION_YEAR) if TRADE_CALIBRATION_YEAR in years \
        else len(years) // 2
    g = TRADE_TO_GDP * gdp[ref].sum() / trade[ref].sum()
    return g * trade, float(g)


# ---------------------------------------------------------------- stock target

def ims_cells(ims: pd.DataFrame) -> pd.DataFrame:
    """Both-sex totals per (year, orig, dest) with the imputed flag.

    A cell that lacks one sex is "insufficient data": its total is NaN.
    """
    g = ims.groupby(["year", "orig", "dest"], sort=False)
    out = pd.DataFrame({"stock": g["stock"].sum().astype(float), "nsex": g["sex"].nunique(),
                        "imputed": g["type_i"].max()})
    out.loc[out["nsex"] < 2, "stock"] = np.nan
    return out.drop(columns="nsex")


def combine_revisions(ims2024: pd.DataFrame, ims2020: pd.DataFrame) -> pd.DataFrame:
    """IMS 2024 cells, NaN cells filled from IMS 2020 (column ``revision``)."""
    new = ims_cells(ims2024).dropna(subset=["stock"]).assign(revision="2024")
    old = ims_cells(ims2020).dropna(subset=["stock"])
    fill = old[~old.index.isin(new.index)].assign(revision="2020")
    log.info("IMS: %d cells from the 2024 revision, %d filled from 2020", len(new), len(fill))
    return pd.concat([new, fill]).sort_index()


def apply_corrections(stock: pd.DataFrame, ims2020: pd.DataFrame) -> pd.DataFrame:
    """Re-apply the authors' hand corrections (:data:`STOCK_CORRECTIONS`)."""
    old = ims_cells(ims2020)["stock"]
    stock = stock.copy()
    for birth, dest, years, values in STOCK_CORRECTIONS:
        for year, value in zip(years, values):
            key = (year, birth, dest)
            value = old.get(key, np.nan) if value == "ims2020" else value
            stock.loc[key, ["stock", "imputed", "revision"]] = [value, 0, "correction"]
    log.info("IMS: re-applied %d hand corrections",
             sum(len(y) for _, _, y, _ in STOCK_CORRECTIONS))
    return stock.dropna(subset=["stock"])


def refugee_floor(stock: pd.DataFrame, unhcr: pd.DataFrame) -> pd.DataFrame:
    """Raise observed stocks to at least the mid-year UNHCR count of the same corridor.

    The mid-year count of year c is the mean of the end-year stocks of c-1 and c.
    """
    ref = unhcr.assign(total=unhcr[["refugees", "asylum_seekers", "oip"]].fillna(0).sum(1))
    ref = ref.set_index(["year", "origin", "asylum"])["total"]
    prev = ref.copy()
    prev.index = prev.index.set_levels(prev.index.levels[0] + 1, level=0)
    mid = 0.5 * pd.concat([ref, prev], axis=1).fillna(0).sum(axis=1)
    mid.index.names = ["year", "orig", "dest"]
    floor = mid.reindex(stock.index).fillna(0).to_numpy()
    low = stock["stock"].to_numpy() < floor
    log.info("IMS: %d observed stocks raised to the UNHCR count (+%.0f persons)",
             int(low.sum()), float((floor - stock["stock"].to_numpy())[low].sum()))
    return stock.assign(stock=np.maximum(stock["stock"].to_numpy(), floor))


def mid_year_to_start_of_year(stock_mid: np.ndarray, births: np.ndarray,
                              death_rate: np.ndarray) -> np.ndarray:
    """Convert mid-year stocks (census, birth, destination) to 1 January of the same year.

    ``S_jan[i, k] = (S_mid[i, k] - delta_ik * B_k / 2) / sqrt(1 - d_k)``: going back half a
    year removes the half-year's births from the native diagonal and undoes the deaths of
    the half-year at the residence country's crude death rate ``d_k`` (per person). The
    half-year's migration is ignored.

    Parameters
    ----------
    stock_mid : numpy.ndarray
        Shape (C, N, N).
    births : numpy.ndarray
        Births during each census year, shape (C, N).
    death_rate : numpy.ndarray
        Crude death rate per person, shape (C, N).

    Returns
    -------
    numpy.ndarray
        Shape (C, N, N).
    """
    out = stock_mid.copy()
    n = out.shape[1]
    out[:, np.arange(n), np.arange(n)] -= 0.5 * births
    return out / np.sqrt(1.0 - death_rate)[:, None, :]


def stock_target(tables, census, wpp, years, population) -> tuple[np.ndarray, ...]:
    """Stock on 1 January (census, birth, destination), its weight and the mid-year stock.

    Parameters
    ----------
    tables : mapping
        Parsed raw tables.
    census : sequence of int
        Census years (1 January).
    wpp : mapping
        WPP arrays on (year, country) for ``years`` (births, death_rate).
    years : sequence of int
        Flow years of ``wpp``.
    population : numpy.ndarray
        Population on 1 January for each census year, shape (C, N).

    Returns
    -------
    tuple of numpy.ndarray
        ``stock`` and ``weight`` (C, N, N) and the mid-year foreign-born stock (C, N, N).
    """
    codes = countries.COUNTRIES
    cells = combine_revisions(tables["ims2024"], tables["ims2020"])
    cells = apply_corrections(cells, tables["ims2020"])
    cells = refugee_floor(cells, tables["unhcr_population"]).reset_index()
    cells = countries.restrict(cells, ["orig", "dest"], "IMS stock", value="stock")
    grid = [census, codes, codes]
    mid = to_array(cells, ["year", "orig", "dest"], "stock", grid)
    imputed = to_array(cells, ["year", "orig", "dest"], "imputed", grid) > 0
    rows = np.clip(np.searchsorted(years, census), 0, len(years) - 1)  # 2024 uses 2023 rates
    births, d = wpp["births"][rows], wpp["death_rate"][rows] / 1000.0
    jan = mid_year_to_start_of_year(np.where(np.isnan(mid), 0.0, mid), births, d)
    jan = np.where(np.isnan(mid), np.nan, jan)
    native = np.clip(population - np.nansum(jan, axis=1), 0.0, None)
    diag = np.arange(len(codes))
    jan[:, diag, diag] = native
    weight = np.where(np.isnan(jan), 0.0, np.where(imputed, IMPUTED_STOCK_WEIGHT, 1.0))
    return jan, weight, mid


# ---------------------------------------------------------------- net migration and flows

def net_migration_target(tables, years) -> tuple[np.ndarray, np.ndarray]:
    """Net migration (year, country) and its weight; see the module docstring."""
    codes = countries.COUNTRIES
    grid = [years, codes]
    wpp = 1000.0 * to_array(tables["wpp_mig"], ["year", "iso3"], "mig", grid)
    national = tables["net_migration_national"]
    national = national[~national["iso3"].isin(NET_MIGRATION_EXCLUDED)]
    nat = to_array(national, ["year", "iso3"], "net_migration", grid)
    raw = to_array(tables["net_migration_raw"], ["year", "iso3"], "net_migration", grid)
    reported = ~np.isnan(nat) & ~np.isnan(raw)
    value = np.where(~np.isnan(nat), nat, wpp)
    weight = np.where(reported, 1.0, np.where(np.isnan(value), 0.0, WPP_NET_WEIGHT))
    log.info("net migration: %d country-years from national statistics (weight 1), %d from "
             "WPP or WPP gap-fills (weight %.2g)", int(reported.sum()),
             int((weight == WPP_NET_WEIGHT).sum()), WPP_NET_WEIGHT)
    return value, weight


def combine_reported_flows(eurostat: pd.DataFrame) -> pd.DataFrame:
    """Combine the receiver's and the sender's report of each corridor-year.

    Each side's reliability is ``q = accuracy x undercount`` (:data:`ACCURACY_SCORE`,
    :data:`UNDERCOUNT_SCORE`; a missing score counts as medium). The flow is the
    q-weighted mean of the available reports; its weight is the larger q of the available
    reports (between 0.16 and 1). Rows with neither report are dropped.

    Returns
    -------
    pandas.DataFrame
        Columns ``year, orig, dest, flow, weight``.
    """
    def quality(acc: str, und: str) -> pd.Series:
        a = eurostat[acc].fillna(MISSING_ACCURACY).map(ACCURACY_SCORE)
        return a * eurostat[und].fillna(MISSING_UNDERCOUNT).map(UNDERCOUNT_SCORE)

    q_imm = quality("ai", "ui").where(eurostat["immi"].notna(), 0.0).fillna(0.0)
    q_emi = quality("ae", "ue").where(eurostat["emig"].notna(), 0.0).fillna(0.0)
    total = q_imm + q_emi
    flow = (q_imm * eurostat["immi"].fillna(0) + q_emi * eurostat["emig"].fillna(0)) / total
    out = eurostat[["year", "orig", "dest"]].assign(flow=flow, weight=np.maximum(q_imm, q_emi))
    return out[total > 0]


def flow_target(tables, years) -> tuple[np.ndarray, np.ndarray]:
    """Reported flows (year, origin, destination) and their weights."""
    codes = countries.COUNTRIES
    euro = combine_reported_flows(tables["eurostat_flows"])
    canada = tables["canada_flows"]
    canada = canada[canada["orig"] != canada["dest"]].assign(weight=CANADA_FLOW_WEIGHT)
    canada = countries.restrict(canada, ["orig"], "Canada inflows", value="flow")
    both = pd.concat([euro.assign(src="eurostat"), canada.assign(src="canada")])
    both = both[both["year"].isin(years)]
    dup = both.duplicated(["year", "orig", "dest"], keep="first")
    if dup.any():
        log.warning("flows: %d corridor-years reported twice; Eurostat kept", int(dup.sum()))
    both = countries.restrict(both[~dup], ["orig", "dest"], "reported flows", value="flow")
    grid = [years, codes, codes]
    flow = to_array(both, ["year", "orig", "dest"], "flow", grid)
    weight = np.nan_to_num(to_array(both, ["year", "orig", "dest"], "weight", grid))
    log.info("flows: %d observations (Eurostat %d, Canada %d)", int((~np.isnan(flow)).sum()),
             int((both["src"] == "eurostat").sum()), int((both["src"] == "canada").sum()))
    return flow, np.where(np.isnan(flow), 0.0, weight)


# ---------------------------------------------------------------- assembly

def _check_years(first_year: int, last_year: int) -> None:
    if not FIRST_YEAR <= first_year <= last_year <= LAST_YEAR:
        raise ValueError(f"years must satisfy {FIRST_YEAR} <= first_year <= last_year <= "
                         f"{LAST_YEAR}; got {first_year}-{last_year}")


def _sources_attr() -> str:
    return "\n".join(f"{s.key}: {s.citation} <{s.url}> (publisher: {s.publisher_url}; "
                     f"licence: {s.licence})" for s in sources.REGISTRY.values())


VAR_NOTES = {
    "gdp_per_capita": "gdp: GDP/capita (2015 USD)",
    "gdp_growth": "gdp: GDP % annual growth",
    "trade": "SUBSTITUTE: gravity model G*Y_j*Y_k/d_jk calibrated to world trade = "
             f"{TRADE_TO_GDP} x world GDP in {TRADE_CALIBRATION_YEAR}; real source CEPII "
             "BACI (see migflow.sources.REGISTRY['trade_baci'])",
    "population": "wdi pop (WPP 2024 mid-year): 1 Jan t = mean(mid t-1, mid t); mid-2024 "
                  "extrapolated with the 2022-2023 growth",
    "life_expectancy": "wpp_e0: e0B", "birth_rate": "wpp_misc: cbr", "death_rate": "wpp_misc: cdr",
    "births": "wpp_misc: births x 1000", "deaths": "wpp_misc: deaths x 1000",
    "distance": "distance: distw_harmonic", "linguistic_similarity": "language: csl (some > 1)",
    "religious_similarity": "religion: inner product of shares (some values > 1)",
    "conflict_deaths": "ucdp (NaN = 0)", "colonial_tie": "colonial: colony_of_destination_ever",
    "eu_member": "eu: EU",
    "refugees": "unhcr_population: refugees + asylum_seekers + oip at end of year t-1",
    "stock": "IMS 2024, NaN filled from IMS 2020, corrections, UNHCR floor, mid-year -> "
             "1 Jan; diagonal = population - foreign-born",
    "net_migration": "national statistics (weight 1; POL excluded), else WPP 2024 (weight "
                     f"{WPP_NET_WEIGHT})",
    "flow": "Eurostat (quality-weighted mean of both reports) and Canada inflows by "
            f"citizenship (weight {CANADA_FLOW_WEIGHT})",
}


def assemble(variables: Mapping[str, np.ndarray], years, census, imputed: Mapping[str, int],
             trade_constant: float) -> xr.Dataset:
    """Put the arrays on the schema's dimensions and attach attrs."""
    codes = np.array(countries.COUNTRIES)
    coords = {"country": codes, "birth": codes, "origin": codes, "destination": codes,
              "year": np.asarray(years), "stock_year": np.arange(years[0], years[-1] + 2),
              "census": np.asarray(census)}
    data = {name: (var.dims, variables[name]) for name, var in schema.OBSERVATION_VARS.items()}
    ds = schema.add_attrs(xr.Dataset(data, coords=coords), schema.OBSERVATION_VARS)
    for name, note in VAR_NOTES.items():
        ds[name].attrs["source"] = note
    for name, n in imputed.items():
        ds[name].attrs["imputed_cells"] = n
    ds["trade"].attrs.update(substitute="gravity", gravity_constant=trade_constant)
    ds.attrs.update(
        data_source="real",
        title=f"Real world: {len(codes)} countries and territories, {years[0]}-{years[-1]} "
              "(public data)",
        substitutes="trade: gravity substitute G*Y_j*Y_k/d_jk (unit elasticities) calibrated "
                    f"to world trade = {TRADE_TO_GDP} x world GDP in {TRADE_CALIBRATION_YEAR};"
                    " CEPII BACI not available",
        sources=_sources_attr(),
        conventions="stocks and population on 1 January; flows during the calendar year",
        created_by="migflow.realdata.build_real_dataset")
    return ds


def build_real_dataset(raw_dir: str | os.PathLike | None = None, first_year: int = 1990,
                       last_year: int = 2023, verify: bool = True) -> xr.Dataset:
    """Assemble the real observation dataset in the schema of :mod:`migflow.schema`.

    Parameters
    ----------
    raw_dir : path-like, optional
        Raw-data directory (default: ``RAW_DATA_DIR`` or ``data/raw``).
    first_year, last_year : int
        Flow years (within 1990-2023); stock years run to ``last_year + 1``.
    verify : bool
        Verify every file's sha256 before parsing (False only for modified copies).

    Returns
    -------
    xarray.Dataset
        Passes :func:`migflow.schema.check_observations`.

    Raises
    ------
    sources.RawDataError
        For a missing, corrupt or invalid raw file.
    """
    _check_years(first_year, last_year)
    years = list(range(first_year, last_year + 1))
    stock_years = list(range(first_year, last_year + 2))
    census = [c for c in CENSUS_YEARS if c in stock_years]
    tables = load_tables(raw_dir, verify)
    country_table = countries.load_countries(raw_dir, verify=False)
    regions = country_table["region"].to_numpy()
    pop_mid = mid_year_population(tables["wdi"], list(range(first_year - 1, last_year + 2)))
    population = start_of_year_population(pop_mid)
    unilateral, imputed = unilateral_covariates(tables, years, regions)
    pairs, imputed_pairs = pair_covariates(tables)
    trade, g = gravity_trade(unilateral["gdp_per_capita"], pop_mid[1:-1], pairs["distance"],
                             years)
    rows = [stock_years.index(c) for c in census]
    stock, stock_w, _ = stock_target(tables, census, unilateral, years, population[rows])
    net, net_w = net_migration_target(tables, years)
    flow, flow_w = flow_target(tables, years)
    variables = {**unilateral, **pairs, "population": population, "trade": trade,
                 "refugees": refugee_array(tables["unhcr_population"], years),
                 "stock": stock, "stock_weight": stock_w, "net_migration": net,
                 "net_migration_weight": net_w, "flow": flow, "flow_weight": flow_w}
    ds = assemble(variables, years, census, {**imputed, **imputed_pairs}, g)
    ds = ds.assign_coords(country_name=("country", country_table["name"].astype(str).to_numpy()),
                          region=("country", regions.astype(str)))
    schema.check_observations(ds, "real data")
    return ds


def write_real_dataset(path: str | os.PathLike, raw_dir: str | os.PathLike | None = None,
                       verify: bool = True, **kwargs) -> Path:
    """Build the real dataset and write it to ``path`` atomically.

    The dataset is built completely in memory and written to a temporary file that is
    renamed on success, so a failure at any step leaves nothing at ``path``.

    Parameters
    ----------
    path : path-like
        Output netCDF file.
    raw_dir : path-like, optional
        Raw-data directory.
    verify : bool
        Verify checksums first.
    **kwargs
        Passed to :func:`build_real_dataset`.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    ds = build_real_dataset(raw_dir, verify=verify, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        ds.to_netcdf(tmp, encoding={v: {"zlib": True, "complevel": 4} for v in ds.data_vars})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------- validation data

def former_state_shares(wdi: pd.DataFrame, year: int) -> dict[str, dict[str, float]]:
    """Population shares of the successors of each former state in ``year`` (mid-year)."""
    pop = wdi[(wdi["var"] == "pop") & (wdi["year"] == year)].set_index("iso3")["value"]
    shares = {}
    for former, succ in countries.FORMER_STATES.items():
        p = pop.reindex(list(succ)).fillna(0.0)
        shares[former] = (p / p.sum()).to_dict()
    return shares


def abel_cohen_flows(raw_dir: str | os.PathLike | None = None, verify: bool = True,
                     split_former: bool = True) -> xr.Dataset:
    """Abel & Cohen six-method five-year flows on the 231 countries, for validation.

    Former states (``SCG``, pre-2011 Sudan ``SDN_former``) are split by the successors'
    population shares at the start of the period (``split_former=True``) or dropped. A pair
    of countries both present in a period but without a row is 0 (the conversion dropped
    pairs that are zero in every method); a country absent from a period (TWN, BES) is NaN;
    the diagonal is NaN.

    Returns
    -------
    xarray.Dataset
        Variable ``flow`` with dims (method, year0, origin, destination). Select a method
        with a dict, ``ac.sel({"method": "da_pb_closed"})``: ``sel(method=...)`` is taken
        by xarray as the fill method.
    """
    df = sources.load("abel_cohen", raw_dir, verify=verify)
    parts = []
    wdi = sources.load("wdi", raw_dir, verify=verify) if split_former else None
    for year0, part in df.groupby("year0"):
        if split_former:
            part = countries.split_former(part, ["orig", "dest"], list(sources.METHODS),
                                          former_state_shares(wdi, int(year0)), "Abel & Cohen")
        parts.append(part)
    df = countries.restrict(pd.concat(parts), ["orig", "dest"], "Abel & Cohen",
                            value="da_pb_closed")
    return _abel_cohen_array(df)


def _abel_cohen_array(df: pd.DataFrame) -> xr.Dataset:
    codes = countries.COUNTRIES
    periods = sorted(df["year0"].unique())
    long = df.melt(id_vars=["year0", "orig", "dest"], var_name="method", value_name="flow")
    arr = to_array(long, ["method", "year0", "orig", "dest"], "flow",
                   [sources.METHODS, periods, codes, codes])
    for p, year0 in enumerate(periods):
        part = df[df["year0"] == year0]
        present = np.isin(codes, pd.unique(part[["orig", "dest"]].to_numpy().ravel()))
        block = arr[:, p]
        both = present[:, None] & present[None, :] & _offdiag(len(codes))
        arr[:, p] = np.where(np.isnan(block) & both, 0.0, block)
    ds = xr.Dataset({"flow": (("method", "year0", "origin", "destination"), arr)},
                    coords={"method": list(sources.METHODS), "year0": periods,
                            "origin": list(codes), "destination": list(codes)})
    ds["flow"].attrs.update(units="persons", long_name="five-year flow, Abel & Cohen")
    ds.attrs.update(source=sources.REGISTRY["abel_cohen"].citation,
                    note="period year0 to year0 + 5; 0 = pair not in the file; NaN = country "
                         "absent from the period or diagonal")
    return ds
