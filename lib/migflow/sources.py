"""Registry of the raw public files, their checksums, and one validating parser per format.

Every raw file the real-data build reads is listed in :data:`REGISTRY` with its path under the
raw-data directory (:func:`migflow.paths.raw_data_dir`: the ``RAW_DATA_DIR`` environment
variable, or ``data/raw``), the upstream file it came from, the original publisher's page, its
sha256, licence, citation and the name of its parser. The upstream repositories and commits are
those named in the data README that accompanies the raw files.

* :func:`fetch` resolves a file and verifies its sha256 (streamed). With ``download=True`` a
  missing file that is a byte-identical copy of its upstream file is downloaded with
  ``pooch.retrieve``; files converted from R data objects (``.rda``) cannot be downloaded
  byte-identical and the error says where the original is and how it was converted.
* :func:`load` fetches a file and parses it into a tidy :class:`pandas.DataFrame` with ISO3
  codes. Every parser validates what it returns: required columns present, no duplicated keys,
  years within the source's range, no negative counts, no all-NaN column, recognised country
  codes. A failure raises a subclass of :class:`RawDataError` naming the file, field and value.

Bilateral trade (CEPII BACI) has no public copy at hand: its entry has no path and the build
uses a documented gravity substitute (see :mod:`migflow.realdata`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from migflow import countries
from migflow.paths import raw_data_dir

log = logging.getLogger(__name__)

HINT = ("set RAW_DATA_DIR to the folder holding the raw files, e.g. "
        "`make all DATA=real RAW_DATA_DIR=/path/to/raw`")

# The authors' repository stores its data with git LFS: github.com/<repo>/raw/<commit>/<path>
# serves the file content (raw.githubusercontent.com would serve the LFS pointer).
GASKIN = ("https://github.com/ThGaskin/Migration_flows/raw/"
          "8ffca71e530c4acf89fc98cecb4714c0957c881c/Data/")
GDIDATA = ("https://raw.githubusercontent.com/iom/gdidata/"
           "c9e4cc69cebd91d6cfca5f4107e2406e4de2c6ff/data/")
WPP = ("https://raw.githubusercontent.com/PPgp/wpp2024/"
       "2da7768ae64fc74105d3f9e98f9a74d37b62f99a/data/")
UNHCR = ("https://raw.githubusercontent.com/PopulationStatistics/refugees/"
         "0c16a6d0c2f37d8578f9b9e3d1e4459efe850398/data/")
GASKIN_CITE = ("Gaskin, T. & Abel, G. J. (2025). Deep learning four decades of human migration. "
               "arXiv:2506.22821; data: github.com/ThGaskin/Migration_flows, "
               "Zenodo 10.5281/zenodo.15623216")
GASKIN_LICENCE = ("no licence file in the repository (the Zenodo/Hugging Face release is "
                  "GPL-3.0); the terms of the underlying sources apply")
IMS_CITE = ("United Nations, Department of Economic and Social Affairs, Population Division "
            "(2024). International Migrant Stock 2024.")
WPP_CITE = ("United Nations, Department of Economic and Social Affairs, Population Division "
            "(2024). World Population Prospects 2024; R package wpp2024 1.1-3.")


class RawDataError(Exception):
    """Base class of every problem with a raw file; the message names the file and the fix."""


class MissingRawFileError(RawDataError, FileNotFoundError):
    """A registered raw file is not in the raw-data directory."""


class ChecksumError(RawDataError):
    """A raw file's sha256 differs from the registered one (corrupt, truncated or changed)."""


class SourceUnavailableError(RawDataError):
    """The source has no public copy at hand (or cannot be downloaded byte-identical)."""


class RawDataReadError(RawDataError):
    """A raw file cannot be read at all (truncated, corrupt, wrong format)."""


class RawDataValidationError(RawDataError, ValueError):
    """A raw file was read but its content breaks a rule (columns, keys, years, codes)."""


@dataclass(frozen=True)
class Source:
    """One raw file: where it lives, where it came from, and how to read it.

    Attributes
    ----------
    key : str
        Registry key.
    path : str or None
        Path relative to the raw-data directory (None: no copy available).
    url : str
        Upstream file at the stated commit (the converted object for converted files).
    publisher_url : str
        The original publisher's page.
    sha256 : str or None
        Checksum of the file in the raw-data directory.
    licence, citation, description : str
        Terms of use, how to cite, what the file holds.
    parser : str or None
        Name of the parser function in this module.
    copied : bool
        True if the file is byte-identical to ``url`` (then it can be downloaded).
    years : tuple of int or None
        Inclusive range of years the file may contain.
    options : dict
        Keyword arguments for the parser.
    """

    key: str
    path: str | None
    url: str
    publisher_url: str
    sha256: str | None
    licence: str
    citation: str
    parser: str | None
    description: str
    copied: bool = False
    years: tuple[int, int] | None = None
    options: Mapping = field(default_factory=dict)


def _gaskin(key, path, sha, parser, description, publisher, years=None, **options) -> Source:
    return Source(key, f"gaskin_abel_2025/{path}", GASKIN + path, publisher, sha,
                  GASKIN_LICENCE, GASKIN_CITE, parser, description, copied=True, years=years,
                  options=options)


def _pair(key, file, sha, variable, description, publisher, citation) -> Source:
    src = _gaskin(key, f"Gravity_datasets/{file}", sha, "parse_pair_nc", description,
                  publisher, variable=variable)
    return Source(**{**src.__dict__, "citation": f"{citation}; prepared by {GASKIN_CITE}"})


def _wpp(key, name, sha, columns, description) -> Source:
    return Source(key, f"un_wpp2024/wpp2024_{name}.csv", WPP + f"{name}.rda",
                  "https://population.un.org/wpp/", sha, "CC BY 3.0 IGO", WPP_CITE,
                  "parse_wpp_table", description, years=(1950, 2023),
                  options={"columns": columns})


def _ims(key, file, rda, sha, years, description) -> Source:
    return Source(key, f"un_desa_ims/{file}", GDIDATA + rda,
                  "https://www.un.org/development/desa/pd/content/international-migrant-stock",
                  sha, "UN DESA terms of use; gdidata package MIT", IMS_CITE, "parse_ims_stock",
                  description, years=years)


_SOURCES: list[Source] = [
    _gaskin("countries_by_region", "countries_by_region.csv",
            "4641fae18a59a9bd04835855ed1e5b31cbe9c938411c99d354d70e570e13ec49",
            "parse_countries_by_region", "230 ISO3 codes -> UN sub-region (11 regions)",
            "https://unstats.un.org/unsd/methodology/m49/"),
    _gaskin("iso_code_lookup", "Iso_code_lookup.csv",
            "f6bcc9bbb418c7393af040f8768596e2d8bd3f8503a264bf2def27b2f72ed743",
            "parse_iso_lookup", "country name, ISO2, ISO3, M49 numeric code",
            "https://www.iso.org/iso-3166-country-codes.html"),
    Source("crosswalk", "crosswalks/gdidata_countrynames.csv", GDIDATA + "countrynames.rda",
           "https://unstats.un.org/unsd/methodology/m49/",
           "c49734d27419ea0142baf3e5dc9fed3f635b890febc5e347a3177935e333c918",
           "MIT (gdidata package); UN M49", "IOM gdidata R package, countrynames; UN M49",
           "parse_crosswalk", "M49 -> ISO3 crosswalk with UN names and regions (257 areas)"),
    _gaskin("gdp", "GDP_data/GDP_data.nc",
            "8a4bff0e3f1200b490a23a26af2227b97aba1de0622daca090259c6aa3da611c",
            "parse_country_year_nc",
            "real GDP per capita (2015 USD) and real growth, 231 countries, 1960-2023",
            "https://data.worldbank.org", years=(1960, 2023),
            variables={"GDP/capita (2015 USD)": "gdp_per_capita",
                       "GDP % annual growth": "gdp_growth"},
            counts=("gdp_per_capita",)),
    _pair("distance", "dist.nc",
          "9943d3b335534fcfea105127406496f9d0b47b851bc441034b390b78478d84d6",
          "distw_harmonic", "population-weighted distance (km), 231 x 231",
          "https://www.cepii.fr/CEPII/en/bdd_modele/bdd_modele_item.asp?id=8",
          "Conte, Cotterlaz & Mayer (2022), The CEPII Gravity database"),
    _pair("language", "lang.nc",
          "96408b41457fb7f97d9a85963af063d78241de8831f1454c5e14f6de6229a296",
          "csl", "common spoken language index, 231 x 231",
          "https://www.usitc.gov/data/gravity/dicl.htm",
          "Gurevich, Herman, Toubal & Yotov (2021), USITC DICL"),
    _pair("religion", "relig.nc",
          "f4b1b1a28de58eba33eec60d59c1b227a042941d2423965af55a60a905cc7f57",
          "Religious similarity", "religious similarity <a_i, a_j>, 231 x 231",
          "https://correlatesofwar.org/data-sets/world-religion-data/",
          "Maoz & Henderson (2013), World Religion Project; CIA World Factbook"),
    _pair("colonial", "col.nc",
          "b79c190525d79887c061774150560dc3eb272286c6529640fa20e6460eb172f3",
          "colony_of_destination_ever", "colonial tie ever (0/1), 231 x 231",
          "https://www.usitc.gov/data/gravity/dgd.htm",
          "Gurevich & Herman (2018), USITC Dynamic Gravity Dataset"),
    _gaskin("eu", "Gravity_datasets/eu.nc",
            "acc2532c3534cfdcafa72a43b636d9923c37d46f073d45a94faa2140f506be70",
            "parse_country_year_nc", "EU membership (0/1), 1990-2023",
            "https://www.cepii.fr/CEPII/en/bdd_modele/bdd_modele_item.asp?id=8",
            years=(1990, 2023), variables={"EU": "eu_member"}, counts=("eu_member",)),
    _gaskin("ucdp", "UCDP_data/UCDP_data.nc",
            "51490371ecdfbbd07156f71bdaa46a4bf2cb98ab23417b46ad0f98a777d3b83e",
            "parse_country_year_nc", "deaths in organised violence, 1990-2023 (NaN -> 0)",
            "https://ucdp.uu.se/downloads/", years=(1990, 2023),
            variables={"Conflict deaths": "conflict_deaths"}, counts=("conflict_deaths",)),
    _gaskin("net_migration_national", "Net_migration/Net_migration_data.nc",
            "3c142b1938e77d988fd20fe8289598675a091ac3884ebbd9d62143446e4ee2d8",
            "parse_country_year_nc",
            "net migration from national statistics offices (training version, gaps filled "
            "with WPP 2024), 30 countries, 1990-2023",
            "https://github.com/ThGaskin/Migration_flows/tree/main/Data/Net_migration",
            years=(1990, 2023), variables={"Net Number of Migrants": "net_migration"}),
    _gaskin("net_migration_raw", "Net_migration/National_statistics.nc",
            "775392de8078584b7943f70e169312961063fe08b05ea54f745756119bb36430",
            "parse_country_year_nc",
            "net migration from national statistics offices, raw (NaN where not reported)",
            "https://github.com/ThGaskin/Migration_flows/tree/main/Data/Net_migration",
            years=(1961, 2024), variables={"Net migration": "net_migration"}),
    _wpp("wpp_misc", "misc1dt", "8de3631f3e8da3509a0254d26736f0bb9e746c36615f71caff0cd972ef03fc97",
         ("births", "deaths", "cbr", "cdr"),
         "births and deaths (thousands), crude birth and death rates (per 1000), annual"),
    _wpp("wpp_e0", "e01dt", "d1d1a9218892947e9d0f307661be06746581b745fe1c57d6192c0ed524a274ad",
         ("e0B",), "life expectancy at birth, both sexes (years), annual"),
    _wpp("wpp_mig", "mig1dt", "b016d814535e1c88764ae7b55d397e0e2f3d068db721c9a5bf0427db0d3df6c0",
         ("mig",), "net migration (thousands), annual"),
    Source("wdi", "covariates/gdidata_wdi_indicators.csv.gz", GDIDATA + "wdi.rda",
           "https://population.un.org/wpp/",
           "7b663bccaafbc81ceeda5e94fd10db52ea05a7d4b8afdd0d98bd3ee5813d3d41",
           "UN WPP 2024 CC BY 3.0 IGO; World Bank WDI CC BY 4.0; gdidata MIT",
           f"{WPP_CITE} World Bank, World Development Indicators; IOM gdidata R package.",
           "parse_wdi", "long iso3/var/year/value; `pop` = WPP 2024 mid-year population",
           years=(1950, 2023)),
    _ims("ims2024", "ims2024_bilateral_stock_by_sex.csv.gz", "undesa_stocks.rda",
         "dfe30dbf214f121c4976e84b8c76fce73627617ea21eb4eabefa0eefd4c19040", (1990, 2024),
         "IMS 2024 bilateral stocks by sex, mid-year 1990, 1995, ..., 2020, 2024"),
    _ims("ims2020", "ims2020_bilateral_stock_by_sex.csv.gz", "undesa_stocks_2020.rda",
         "8f7fe5fee5dfcfe4a97d43eeaa083c852426a9493a10c70a39831a90fc8339a8", (1990, 2020),
         "IMS 2020 bilateral stocks by sex, mid-year 1990, 1995, ..., 2020"),
    Source("unhcr_population", "unhcr/unhcr_refugees_pkg_population.csv.gz",
           UNHCR + "population.rda", "https://www.unhcr.org/refugee-statistics/",
           "ae988c90bf0e12ea332c131abdf593fa5cd6269d4c501ff2b4bae589405e1ce8", "CC BY 4.0",
           "UNHCR Refugee Data Finder; R package refugees 2025.12.1", "parse_unhcr_population",
           "end-year refugees, asylum seekers, others in need of protection, origin x asylum",
           years=(1951, 2025)),
    Source("eurostat_flows", "reported_flows/eurostat_bilateral_2010_2019_migmod.csv",
           "https://raw.githubusercontent.com/a-wis/MigMod/"
           "b257cea75eb6cc5569ced24205838f82c9bf33bd/data/mig_data.rda",
           "https://ec.europa.eu/eurostat/web/migration-asylum/international-migration-"
           "citizenship/database",
           "e6b9ec6a841bf045fe2d98b663c9cc7e147c5671e9e1d94b9e47df27c99e87fb",
           "Eurostat reuse with acknowledgement; MigMod package GPL (>= 3)",
           "Eurostat migr_imm5prv / migr_emi3nxt; quality scores from HMigD (Danko et al.); "
           "R package MigMod (Wisniowski)", "parse_eurostat_flows",
           "EU/EFTA bilateral flows 2010-2019 reported by receiver (Immi) and sender (Emig)",
           years=(2010, 2019)),
    Source("canada_flows", "un_flows_2015/canada_inflows_by_citizenship_1980_2013.csv",
           "https://raw.githubusercontent.com/osmanthecoskun/International-Migration-Flow-"
           "Canada/fa35135d3ddad693a55a04f95f6ab2baf62c5a2b/Canada.xlsx",
           "https://www.un.org/development/desa/pd/data/international-migration-flows",
           "bedf0e0646243bb894ee19bb32f20296eb77474bfbcc7e19f5ab04bc3a19c7b4",
           "not stated (UN DESA data)",
           "United Nations (2015). International Migration Flows to and from Selected "
           "Countries: The 2015 Revision (POP/DB/MIG/Flow/Rev.2015)", "parse_canada_flows",
           "Canada: immigrant inflows by country of citizenship, 1980-2013",
           years=(1980, 2013)),
    Source("abel_cohen", "abel_cohen_flows/abel_cohen_bilateral_flows_6methods_1990_2020.csv.gz",
           "https://raw.githubusercontent.com/X80110/migration-visualization/"
           "cb840bd0b4a94cb70dcbb98c59290bb640182d2c/json/flow_da_pb_closed.json",
           "https://doi.org/10.6084/m9.figshare.12845711",
           "423e509559cc92ffb7e86e92a102282f963708487e12054229dfcb43a757d51a",
           "not stated in the repository copy; see the figshare record",
           "Abel, G. J. & Cohen, J. E. (2019, 2022). Bilateral international migration flow "
           "estimates for 200 countries. Scientific Data 6:82 and 9:173",
           "parse_abel_cohen",
           "five-year flows, six methods (flow_<method>.json files), periods 1990-2015",
           years=(1990, 2015)),
    Source("trade_baci", None,
           "https://www.cepii.fr/CEPII/en/bdd_modele/bdd_modele_item.asp?id=37",
           "https://www.cepii.fr/CEPII/en/bdd_modele/bdd_modele.asp", None,
           "Etalab Open Licence 2.0",
           "Gaulier, G. & Zignago, S. (2010). BACI: International Trade Database at the "
           "Product-Level. CEPII Working Paper 2010-23", None,
           "bilateral trade 1995-2023 (not available here: replaced by a gravity substitute)"),
]

REGISTRY: dict[str, Source] = {s.key: s for s in _SOURCES}
METHODS = ("sd_drop_neg", "sd_rev_neg", "mig_rate", "da_min_open", "da_min_closed",
           "da_pb_closed")


# ---------------------------------------------------------------- resolving and checksums

def source(key: str) -> Source:
    """Return the registry entry ``key`` or raise a :class:`KeyError` listing the keys."""
    try:
        return REGISTRY[key]
    except KeyError:
        raise KeyError(f"unknown raw source {key!r}; known: {', '.join(REGISTRY)}") from None


def sha256sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Stream a file through sha256 and return the hex digest.

    Parameters
    ----------
    path : path-like
        File to hash.
    chunk : int
        Bytes read at a time.

    Returns
    -------
    str
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _where_to_get(src: Source) -> str:
    if src.copied:
        return (f"download it from {src.url} (or call migflow.sources.fetch('{src.key}', "
                "download=True))")
    return (f"it is converted from {src.url} (see the raw-data README; original publisher "
            f"{src.publisher_url})")


def resolve(key: str, raw_dir: str | os.PathLike | None = None) -> Path:
    """Path of a registered file in the raw-data directory, without checking its hash.

    Raises
    ------
    SourceUnavailableError
        If the source has no file (``trade_baci``).
    MissingRawFileError
        If the file is absent; the message says where to get it and which variable to set.
    """
    src = source(key)
    if src.path is None:
        raise SourceUnavailableError(
            f"raw source '{key}' ({src.description}) has no public copy at hand; the real "
            f"data are at {src.publisher_url} ({src.url})")
    root = raw_data_dir(raw_dir)
    path = root / src.path
    if not path.is_file():
        raise MissingRawFileError(
            f"raw file '{src.path}' (source '{key}') not found in {root}; {_where_to_get(src)};"
            f" expected sha256 {src.sha256}; {HINT}")
    return path


def fetch(key: str, raw_dir: str | os.PathLike | None = None, download: bool = False) -> Path:
    """Resolve a registered raw file and verify its sha256.

    Parameters
    ----------
    key : str
        Registry key (see :data:`REGISTRY`).
    raw_dir : path-like, optional
        Raw-data directory (default: ``RAW_DATA_DIR`` or ``data/raw``).
    download : bool
        If the file is missing and is a byte-identical copy of its upstream file, download
        it with ``pooch.retrieve`` into the raw-data directory. Never used by the tests.

    Returns
    -------
    pathlib.Path
        The verified file.

    Raises
    ------
    MissingRawFileError, ChecksumError, SourceUnavailableError
        With the file, the expected and actual hash, the URL and the variable to set.
    """
    try:
        path = resolve(key, raw_dir)
    except MissingRawFileError:
        if not download:
            raise
        path = _download(source(key), raw_data_dir(raw_dir))
    src = source(key)
    actual = sha256sum(path)
    if actual != src.sha256:
        raise ChecksumError(
            f"raw file '{path}' (source '{key}') has sha256 {actual} but {src.sha256} is "
            f"expected: the file is truncated, corrupt or a different version; "
            f"{_where_to_get(src)}; {HINT}")
    return path


def _download(src: Source, root: Path) -> Path:
    """Download a byte-identical copy with pooch (network access needed)."""
    if not src.copied:
        raise SourceUnavailableError(
            f"raw file '{src.path}' cannot be downloaded byte-identical: "
            f"{_where_to_get(src)}; {HINT}")
    import pooch

    target = root / src.path
    log.info("downloading %s from %s", src.path, src.url)
    got = pooch.retrieve(src.url, known_hash=f"sha256:{src.sha256}", fname=target.name,
                         path=target.parent, progressbar=False)
    return Path(got)


def verify_all(raw_dir: str | os.PathLike | None = None,
               keys: Iterable[str] | None = None) -> dict[str, Path]:
    """Fetch and verify every registered file that has a copy (or the given ``keys``).

    Returns
    -------
    dict of str to pathlib.Path
        Verified path of each key.
    """
    keys = [k for k in REGISTRY if REGISTRY[k].path] if keys is None else list(keys)
    return {k: fetch(k, raw_dir) for k in keys}


def load(key: str, raw_dir: str | os.PathLike | None = None, verify: bool = True,
         **kwargs) -> pd.DataFrame:
    """Fetch (and by default verify) a registered file and parse it.

    Parameters
    ----------
    key : str
        Registry key.
    raw_dir : path-like, optional
        Raw-data directory.
    verify : bool
        Check the sha256 first (set False only to read a deliberately modified copy).
    **kwargs
        Passed to the parser (e.g. ``m49_map`` for the WPP tables).

    Returns
    -------
    pandas.DataFrame
        The tidy, validated table.
    """
    src = source(key)
    path = fetch(key, raw_dir) if verify else resolve(key, raw_dir)
    options = {**src.options, **kwargs}
    if src.parser == "parse_wpp_table" and "m49_map" not in options:
        options["m49_map"] = m49_map(raw_dir, verify)
    return globals()[src.parser](path, years=src.years, **options)


def m49_map(raw_dir: str | os.PathLike | None = None, verify: bool = True) -> dict[int, str]:
    """The M49 -> ISO3 map from the two crosswalk files (see :func:`countries.m49_to_iso3_map`)."""
    return countries.m49_to_iso3_map(load("crosswalk", raw_dir, verify),
                                     load("iso_code_lookup", raw_dir, verify))


# ---------------------------------------------------------------- reading and validation

def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """``pandas.read_csv`` that turns any read failure into :class:`RawDataReadError`."""
    try:
        return pd.read_csv(path, **kwargs)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError,
            pd.errors.ParserError) as exc:
        raise RawDataReadError(
            f"raw file '{path}' cannot be read ({type(exc).__name__}: {exc}); it is probably "
            f"truncated or corrupt: check it with migflow.sources.fetch(); {HINT}") from exc


def _open_nc(path: Path):
    import xarray as xr

    try:
        return xr.load_dataset(path)
    except Exception as exc:  # netCDF back ends raise many types for a corrupt file
        raise RawDataReadError(
            f"raw file '{path}' cannot be read as netCDF ({type(exc).__name__}: {exc}); it is "
            f"probably truncated or corrupt: check it with migflow.sources.fetch(); {HINT}"
        ) from exc


def _fail(path, message: str):
    raise RawDataValidationError(f"raw file '{path}': {message}")


def require_columns(df: pd.DataFrame, columns: Sequence[str], path) -> None:
    """Raise if a required column is missing."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        _fail(path, f"required column(s) {missing} missing; found {list(df.columns)}")


def validate(df: pd.DataFrame, path, *, keys: Sequence[str] = (), year: str | None = None,
             years: tuple[int, int] | None = None, counts: Sequence[str] = (),
             codes: Sequence[str] = (), nonempty: Sequence[str] = ()) -> pd.DataFrame:
    """Check a tidy table and raise :class:`RawDataValidationError` on the first problem.

    Parameters
    ----------
    df : pandas.DataFrame
        Table to check.
    path : path-like
        File it came from (used in messages).
    keys : sequence of str
        Columns that identify a row; duplicated keys are an error.
    year : str, optional
        Year column, checked against ``years`` (inclusive).
    years : tuple of int, optional
        Allowed range of ``year``.
    counts : sequence of str
        Columns that must be non-negative where present.
    codes : sequence of str
        Columns of country codes that must be recognised (:func:`countries.known_codes`).
    nonempty : sequence of str
        Columns that must not be entirely NaN.

    Returns
    -------
    pandas.DataFrame
        ``df`` unchanged.
    """
    require_columns(df, [*keys, *counts, *codes, *nonempty] + ([year] if year else []), path)
    for col in nonempty:
        if df[col].isna().all():
            _fail(path, f"field '{col}' is entirely empty (all {len(df)} values are NaN)")
    if keys:
        dup = df.duplicated(list(keys), keep=False)
        if dup.any():
            first = df.loc[dup, list(keys)].iloc[0].to_dict()
            _fail(path, f"{int(dup.sum())} rows share a key {list(keys)}, e.g. {first} "
                        "(duplicated rows)")
    if year and years:
        _check_years(df[year], path, year, years)
    for col in counts:
        values = pd.to_numeric(df[col], errors="coerce")
        neg = values < 0
        if neg.any():
            row = df.loc[neg].iloc[0]
            where = {k: row[k] for k in keys} if keys else {"row": int(neg.idxmax())}
            _fail(path, f"field '{col}' has negative value {row[col]} at {where}")
    for col in codes:
        bad = countries.unknown_codes(df[col])
        if bad:
            _fail(path, f"field '{col}' has unknown country code(s) {bad[:20]}; add a "
                        "documented mapping in migflow.countries or fix the file")
    return df


def _check_years(values: pd.Series, path, name: str, years: tuple[int, int]) -> None:
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any():
        _fail(path, f"field '{name}' has non-numeric value {values[numeric.isna()].iloc[0]!r}")
    lo, hi = years
    out = numeric[(numeric < lo) | (numeric > hi)]
    if len(out):
        _fail(path, f"field '{name}' has value {int(out.iloc[0])} outside the range {lo}-{hi}")


# ---------------------------------------------------------------- parsers

def parse_countries_by_region(path, years=None) -> pd.DataFrame:
    """``countries_by_region.csv`` -> columns ``iso3``, ``region`` (230 rows)."""
    df = _read_csv(path)
    require_columns(df, ["Country ISO", "Region"], path)
    df = df.rename(columns={"Country ISO": "iso3", "Region": "region"})[["iso3", "region"]]
    return validate(df, path, keys=["iso3"], codes=["iso3"], nonempty=["iso3", "region"])


def parse_iso_lookup(path, years=None) -> pd.DataFrame:
    """``Iso_code_lookup.csv`` -> columns ``name``, ``iso2``, ``iso3``, ``m49``."""
    df = _read_csv(path, keep_default_na=False, na_values=[""])
    cols = {"Country": "name", "Alpha-2 code": "iso2", "Alpha-3 code": "iso3", "Numeric": "m49"}
    require_columns(df, list(cols), path)
    df = df.rename(columns=cols)[list(cols.values())]
    return validate(df, path, keys=["iso3"], codes=["iso3"], nonempty=list(cols.values()))


def parse_crosswalk(path, years=None) -> pd.DataFrame:
    """gdidata ``countrynames`` -> ``m49``, ``iso2``, ``iso3``, ``name``, regions."""
    df = _read_csv(path, keep_default_na=False, na_values=[""])
    cols = ["m49", "iso2", "iso3", "name", "region", "subregion"]
    require_columns(df, cols, path)
    df = df[cols].copy()
    df["m49"] = df["m49"].astype("Int64")
    return validate(df, path, keys=["iso3"], codes=["iso3"], nonempty=cols)


def parse_country_year_nc(path, years=None, variables: Mapping[str, str] | None = None,
                          counts: Sequence[str] = ()) -> pd.DataFrame:
    """A (Year, Country ISO) netCDF file -> columns ``year``, ``iso3`` and ``variables``.

    Parameters
    ----------
    path : path-like
        The netCDF file.
    years : tuple of int, optional
        Allowed year range.
    variables : mapping
        netCDF variable name -> output column name.
    counts : sequence of str
        Output columns that must be non-negative.
    """
    ds = _open_nc(path)
    variables = dict(variables or {})
    require_columns(pd.DataFrame(columns=[*ds.data_vars, *ds.coords]),
                    ["Year", "Country ISO", *variables], path)
    df = ds[list(variables)].to_dataframe().reset_index()
    df = df.rename(columns={"Year": "year", "Country ISO": "iso3", **variables})
    _check_years(df["year"], path, "year", years or (1900, 2100))
    df["year"] = df["year"].astype(int)
    return validate(df, path, keys=["year", "iso3"], counts=counts, codes=["iso3"],
                    nonempty=list(variables.values()))


def parse_pair_nc(path, years=None, variable: str = "") -> pd.DataFrame:
    """An (Origin ISO, Destination ISO) netCDF file -> ``origin``, ``destination``, ``value``."""
    ds = _open_nc(path)
    require_columns(pd.DataFrame(columns=[*ds.data_vars, *ds.coords]),
                    ["Origin ISO", "Destination ISO", variable], path)
    df = ds[variable].to_dataframe().reset_index().rename(
        columns={"Origin ISO": "origin", "Destination ISO": "destination", variable: "value"})
    return validate(df, path, keys=["origin", "destination"], codes=["origin", "destination"],
                    counts=["value"], nonempty=["value"])


def parse_wpp_table(path, years=None, columns: Sequence[str] = (),
                    m49_map: Mapping[int, str] | None = None) -> pd.DataFrame:
    """A WPP 2024 annual table -> ``year``, ``iso3`` and ``columns``.

    M49 codes are mapped with ``m49_map``. Codes without an ISO3 code are aggregates (World,
    regions, income groups; all have M49 codes of 900 or more) and are dropped with a logged
    warning; an unmapped code below 900 raises.
    """
    df = _read_csv(path)
    require_columns(df, ["country_code", "year", *columns], path)
    df = validate(df, path, keys=["country_code", "year"], year="year", years=years,
                  nonempty=list(columns))
    m49 = dict(m49_map or {})
    mapped = df["country_code"].map(m49)
    odd = sorted(set(df.loc[mapped.isna() & (df["country_code"] < 900), "country_code"]))
    if odd:
        _fail(path, f"field 'country_code' has M49 code(s) {odd} with no ISO3 code")
    if mapped.isna().any():
        log.warning("%s: dropped %d aggregate M49 codes (World, regions, income groups)",
                    Path(path).name, df.loc[mapped.isna(), "country_code"].nunique())
    df = df.assign(iso3=mapped).dropna(subset=["iso3"])
    df = df[["year", "iso3", *columns]].reset_index(drop=True)
    counts = [c for c in columns if c in ("births", "deaths", "cbr", "cdr", "e0B")]
    return validate(df, path, keys=["year", "iso3"], counts=counts, codes=["iso3"])


def parse_wdi(path, years=None) -> pd.DataFrame:
    """gdidata WDI/WPP long table -> ``iso3``, ``var``, ``year``, ``value`` (pop >= 0)."""
    df = _read_csv(path)
    cols = ["iso3", "var", "year", "value"]
    require_columns(df, cols, path)
    df = validate(df[cols], path, keys=["iso3", "var", "year"], year="year", years=years,
                  codes=["iso3"], nonempty=cols)
    validate(df[df["var"] == "pop"], path, keys=["iso3", "year"], counts=["value"])
    return df


def parse_ims_stock(path, years=None) -> pd.DataFrame:
    """UN DESA IMS bilateral stock by sex -> the same tidy columns, validated.

    Columns: ``year, orig, dest, sex, stock, type_b, type_c, type_r, type_i``. All codes are
    kept (including ``OOO``, ``XCX``, ``VAT``) so that world totals match UN DESA.
    """
    df = _read_csv(path)
    cols = ["year", "orig", "dest", "sex", "stock", "type_b", "type_c", "type_r", "type_i"]
    require_columns(df, cols, path)
    df = validate(df[cols], path, keys=["year", "orig", "dest", "sex"], year="year",
                  years=years, counts=["stock"], codes=["orig", "dest"], nonempty=cols)
    bad_sex = sorted(set(df["sex"]) - {"female", "male"})
    if bad_sex:
        _fail(path, f"field 'sex' has value(s) {bad_sex}; expected 'female' or 'male'")
    return df


def parse_unhcr_population(path, years=None) -> pd.DataFrame:
    """UNHCR end-year population -> ``year, origin, asylum, refugees, asylum_seekers, oip``."""
    df = _read_csv(path)
    cols = ["year", "coo_iso", "coa_iso", "refugees", "asylum_seekers", "oip"]
    require_columns(df, cols, path)
    df = df[cols].rename(columns={"coo_iso": "origin", "coa_iso": "asylum"})
    values = ["refugees", "asylum_seekers", "oip"]
    return validate(df, path, keys=["year", "origin", "asylum"], year="year", years=years,
                    counts=values, codes=["origin", "asylum"], nonempty=values)


QUALITY_LEVELS = {"low", "medium", "high"}


def parse_eurostat_flows(path, years=None) -> pd.DataFrame:
    """Eurostat/MigMod flows -> ``year, orig, dest, immi, emig, ui, ai, ue, ae``.

    ``immi`` is reported by the receiver, ``emig`` by the sender; the quality scores are
    lower-cased (``low``/``medium``/``high``; accuracy may be missing).
    """
    df = _read_csv(path)
    cols = {"Year": "year", "Sending_iso3": "orig", "Receiving_iso3": "dest", "Immi": "immi",
            "Emig": "emig", "UI": "ui", "AI": "ai", "UE": "ue", "AE": "ae"}
    require_columns(df, [*cols, "SEX"], path)
    df = validate(df, path, keys=["SEX", "Year", "Sending_iso3", "Receiving_iso3"])
    df = df.loc[df["SEX"] == "Total", list(cols)].rename(columns=cols)
    for col in ("ui", "ai", "ue", "ae"):
        df[col] = df[col].str.lower()
        bad = sorted(set(df[col].dropna()) - QUALITY_LEVELS)
        if bad:
            _fail(path, f"field '{col.upper()}' has value(s) {bad}; expected low/medium/high")
    return validate(df.reset_index(drop=True), path, keys=["year", "orig", "dest"],
                    year="year", years=years, counts=["immi", "emig"], codes=["orig", "dest"],
                    nonempty=["immi", "emig", "ui", "ue"])


def parse_canada_flows(path, years=None) -> pd.DataFrame:
    """Canada inflows by citizenship (wide) -> ``year, orig, dest, flow`` with dest ``CAN``.

    Origin names are mapped with :func:`countries.names_to_iso3`; the aggregate rows
    ("Unknown", "Total") are dropped with a logged warning.
    """
    df = _read_csv(path)
    require_columns(df, ["OdName", "AREA"], path)
    year_cols = [c for c in df.columns if str(c).strip().isdigit()]
    if not year_cols:
        _fail(path, "no year columns (e.g. '1980') found")
    validate(df, path, keys=["OdName"], nonempty=year_cols)
    _check_years(pd.Series([int(c) for c in year_cols]), path, "year column",
                 years or (1900, 2100))
    try:
        codes = countries.names_to_iso3(list(df["OdName"]), str(path))
    except countries.UnknownCountryError as exc:
        raise RawDataValidationError(f"raw file '{path}': field 'OdName': {exc}") from exc
    df = df.assign(orig=codes)
    aggregates = df["orig"].isna()
    if aggregates.any():
        log.warning("%s: dropped aggregate rows %s", Path(path).name,
                    list(df.loc[aggregates, "OdName"]))
    long = df.loc[~aggregates].melt(id_vars=["orig"], value_vars=year_cols,
                                    var_name="year", value_name="flow")
    long = long.assign(year=long["year"].astype(int), dest="CAN")[["year", "orig", "dest",
                                                                    "flow"]]
    long["flow"] = pd.to_numeric(long["flow"], errors="coerce")
    return validate(long, path, keys=["year", "orig", "dest"], counts=["flow"],
                    codes=["orig"], nonempty=["flow"])


# Source-specific code fixes of the Abel & Cohen conversion (its 'CHI' is Chile, 'SUD' is
# post-2011 Sudan; the file has no 'CHL' or 'SDN' rows).
ABEL_COHEN_FIXES = {"CHI": "CHL", "SUD": "SDN"}


def parse_abel_cohen(path, years=None) -> pd.DataFrame:
    """Abel & Cohen six-method five-year flows -> ``year0, orig, dest`` + six method columns.

    Applies :data:`ABEL_COHEN_FIXES`; ``SCG`` and ``SDN_former`` are kept (documented former
    states) for the caller to split.
    """
    df = _read_csv(path)
    require_columns(df, ["year0", "orig", "dest", *METHODS], path)
    df = df[["year0", "orig", "dest", *METHODS]].copy()
    for col in ("orig", "dest"):
        clash = set(ABEL_COHEN_FIXES.values()) & set(df[col])
        if clash:
            _fail(path, f"field '{col}' has both a code and its fix target {sorted(clash)}")
        df[col] = df[col].replace(ABEL_COHEN_FIXES)
    return validate(df, path, keys=["year0", "orig", "dest"], year="year0", years=years,
                    counts=list(METHODS), codes=["orig", "dest"], nonempty=list(METHODS))
