"""The 231 countries and territories of the model, and harmonisation of country codes.

Country set
-----------
The model has N = 231 units: the 230 ISO3 codes of the authors' ``countries_by_region.csv``
(11 UN sub-regions) plus Taiwan (``TWN``), which the authors append to Eastern Asia. Arrays
are ordered alphabetically by ISO3 code (paper.md section 1.3); :data:`COUNTRIES` holds that
order and :func:`load_countries` checks it against the raw file.

Territories and changed states
------------------------------
How the sources' units are mapped onto the 231 codes (the rules are applied by
:func:`restrict` and :func:`split_former`; the caller decides per source):

* **Serbia and Montenegro** (``SRB``, ``MNE``) are separate throughout 1990-2023. UN WPP and
  UN DESA report both from 1990. A source that reports the union ``SCG`` (the Abel & Cohen
  estimates before 2010) is split in proportion to population (:func:`split_former`).
* **Sudan and South Sudan** (``SDN``, ``SSD``) are separate throughout; WPP and DESA back-cast
  South Sudan before its independence in 2011. A source reporting pre-2011 Sudan is either split
  by population (Abel & Cohen ``SDN_former``) or, where the source itself labels the row
  "Sudan" for all years (Canada's inflows), mapped to ``SDN`` (South Sudanese citizens were
  not recorded separately before 2011; the error is small).
* **Former Netherlands Antilles** (``ANT``) became Curaçao (``CUW``), Sint Maarten (``SXM``)
  and the Caribbean Netherlands (``BES``) in 2010; all three are units of the model, so ``ANT``
  is split in proportion to population.
* **Kosovo** (``XKX``) is absent: UN DESA counts it within Serbia; rows for ``XKX`` (WPP,
  World Bank, UNHCR) are dropped with a logged warning.
* **Channel Islands** (UN DESA ``XCX``, World Bank ``CHI``; ``GGY``/``JEY`` elsewhere) are
  absent and dropped with a logged warning, as are other small territories outside the list
  (``VAT``, ``BLM``, ``MAF``, ...).
* **Aggregates and unknown origins** -- UN DESA's "Other" (``OOO``), UNHCR's unknown
  (``UNK``), stateless (``XXA``, ``STL``) and Tibetan (``TIB``) origins, WPP regional and
  income groups (M49 codes without an ISO3 code), Canada's "Unknown" and "Total" rows -- are
  dropped with a logged warning that states how much was dropped.

Codes that are neither ISO 3166 alpha-3 codes (country_converter's table) nor one of the
documented special codes in :data:`SPECIAL_CODES` raise :class:`UnknownCountryError`, which
lists them: a new code in a source is an error, never silently lost.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

log = logging.getLogger(__name__)

EXTRA_CODE = "TWN"
EXTRA_REGION = "Eastern Asia"

COUNTRIES: tuple[str, ...] = tuple("""
ABW AFG AGO AIA ALB AND ARE ARG ARM ASM ATG AUS AUT AZE BDI BEL BEN BES BFA BGD BGR BHR BHS BIH
BLR BLZ BMU BOL BRA BRB BRN BTN BWA CAF CAN CHE CHL CHN CIV CMR COD COG COK COL COM CPV CRI CUB
CUW CYM CYP CZE DEU DJI DMA DNK DOM DZA ECU EGY ERI ESH ESP EST ETH FIN FJI FLK FRA FRO FSM GAB
GBR GEO GHA GIB GIN GLP GMB GNB GNQ GRC GRD GRL GTM GUF GUM GUY HKG HND HRV HTI HUN IDN IMN IND
IRL IRN IRQ ISL ISR ITA JAM JOR JPN KAZ KEN KGZ KHM KIR KNA KOR KWT LAO LBN LBR LBY LCA LIE LKA
LSO LTU LUX LVA MAC MAR MCO MDA MDG MDV MEX MHL MKD MLI MLT MMR MNE MNG MNP MOZ MRT MSR MTQ MUS
MWI MYS MYT NAM NCL NER NGA NIC NIU NLD NOR NPL NRU NZL OMN PAK PAN PER PHL PLW PNG POL PRI PRK
PRT PRY PSE PYF QAT REU ROU RUS RWA SAU SDN SEN SGP SHN SLB SLE SLV SMR SOM SPM SRB SSD STP SUR
SVK SVN SWE SWZ SXM SYC SYR TCA TCD TGO THA TJK TKL TKM TLS TON TTO TUN TUR TUV TWN TZA UGA UKR
URY USA UZB VCT VEN VGB VIR VNM VUT WLF WSM YEM ZAF ZMB ZWE
""".split())

# Codes that are not ISO 3166 alpha-3 but occur in the sources, with their meaning.
SPECIAL_CODES: dict[str, str] = {
    "XCX": "Channel Islands (UN DESA; Guernsey and Jersey), not modelled",
    "CHI": "Channel Islands (World Bank code), not modelled",
    "XKX": "Kosovo (user-assigned code), not modelled; within Serbia in UN DESA",
    "OOO": "Other or unknown country of birth (UN DESA), an aggregate",
    "UNK": "Unknown origin or asylum country (UNHCR), an aggregate",
    "XXA": "Stateless (UNHCR), an aggregate",
    "STL": "Stateless (gdidata crosswalk), an aggregate",
    "TIB": "Tibetan (UNHCR), an aggregate",
    "AB9": "Abyei Area (gdidata crosswalk), not modelled",
    "OOS": "Unidentified Sub-Saharan Africa (gdidata crosswalk), an aggregate",
    "ANT": "former Netherlands Antilles, split into CUW, SXM and BES",
    "SCG": "former Serbia and Montenegro, split into SRB and MNE",
    "SDN_former": "Sudan before 2011 (including South Sudan), split into SDN and SSD",
}

# Former states and their successors among the 231 codes.
FORMER_STATES: dict[str, tuple[str, ...]] = {
    "ANT": ("CUW", "SXM", "BES"),
    "SCG": ("SRB", "MNE"),
    "SDN_former": ("SDN", "SSD"),
}

# Country names that country_converter does not match, or matches to another unit.
NAME_FIXES: dict[str, str] = {
    "China, Hong Kong Special Administrative Region": "HKG",
    "China, Macao Special Administrative Region": "MAC",
    "Serbia and Montenegro": "SCG",
    "Netherlands Antilles": "ANT",
    "Channel Islands": "XCX",
    "Sudan (former)": "SDN_former",
    "Kosovo": "XKX",
}

# Names of aggregate rows, mapped to None and dropped by the caller with a warning.
AGGREGATE_NAMES = frozenset({"Unknown", "Total", "World", "Other", "Others"})


class UnknownCountryError(ValueError):
    """A code or name that is neither an ISO3 code nor a documented special code."""


@functools.lru_cache(maxsize=1)
def _converter():
    """country_converter's table (bundled with the package; no network access)."""
    import country_converter as coco

    logging.getLogger("country_converter").setLevel(logging.ERROR)
    return coco.CountryConverter()


@functools.lru_cache(maxsize=1)
def known_codes() -> frozenset[str]:
    """All codes a source may use: ISO 3166 alpha-3 codes plus :data:`SPECIAL_CODES`.

    Returns
    -------
    frozenset of str
        Every recognised code; the 231 model codes are a subset.
    """
    iso3 = set(_converter().data["ISO3"].dropna().astype(str))
    return frozenset(iso3 | set(SPECIAL_CODES) | set(COUNTRIES))


def unknown_codes(codes: Iterable[object]) -> list[str]:
    """Return the sorted distinct codes in ``codes`` that are not recognised.

    Parameters
    ----------
    codes : iterable
        Codes to check (NaN and None count as unknown, shown as ``'nan'``).

    Returns
    -------
    list of str
        Unrecognised codes; empty when all are known.
    """
    known = known_codes()
    return sorted({str(c) for c in pd.unique(pd.Series(list(codes), dtype=object))
                   if not isinstance(c, str) or c not in known})


def check_codes(codes: Iterable[object], source: str = "codes") -> None:
    """Raise :class:`UnknownCountryError` listing the codes that are not recognised.

    Parameters
    ----------
    codes : iterable
        Country codes to check.
    source : str
        Name of the file or table, used in the message.
    """
    bad = unknown_codes(codes)
    if bad:
        raise UnknownCountryError(
            f"{source}: unknown country code(s) {bad[:20]}{' ...' if len(bad) > 20 else ''}; "
            "add a documented mapping to migflow.countries.SPECIAL_CODES or fix the source")


def load_countries(raw_dir=None, verify: bool = True) -> pd.DataFrame:
    """The 231 countries with their region and name, in array order.

    Reads ``countries_by_region.csv`` (230 codes), appends TWN in Eastern Asia, sorts
    alphabetically and checks the result against :data:`COUNTRIES`. Names come from the UN
    M49 crosswalk (``crosswalks/gdidata_countrynames.csv``).

    Parameters
    ----------
    raw_dir : path-like, optional
        Raw-data directory (default: :func:`migflow.paths.raw_data_dir`).
    verify : bool
        Verify the files' sha256 before reading.

    Returns
    -------
    pandas.DataFrame
        Index ``iso3`` (231 codes, alphabetical); columns ``region`` and ``name``.
    """
    from migflow import sources

    regions = sources.load("countries_by_region", raw_dir, verify=verify)
    if EXTRA_CODE in set(regions["iso3"]):
        raise UnknownCountryError(f"countries_by_region: {EXTRA_CODE} is already listed")
    extra = pd.DataFrame({"iso3": [EXTRA_CODE], "region": [EXTRA_REGION]})
    table = pd.concat([regions, extra]).sort_values("iso3").set_index("iso3")
    if tuple(table.index) != COUNTRIES:
        diff = sorted(set(table.index) ^ set(COUNTRIES))
        raise UnknownCountryError(
            f"countries_by_region: the country list differs from migflow.countries.COUNTRIES "
            f"in {diff}")
    names = sources.load("crosswalk", raw_dir, verify=verify).set_index("iso3")["name"]
    table["name"] = names.reindex(table.index)
    missing = table["name"].isna()
    table.loc[missing, "name"] = _converter().convert(
        list(table.index[missing]), src="ISO3", to="name_short", not_found=None)
    return table


def _repair_mojibake(name: str) -> str:
    """Undo UTF-8 text that was decoded as Latin-1 (e.g. ``CÃ´te`` -> ``Côte``)."""
    try:
        return name.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name


def names_to_iso3(names: Sequence[str], source: str = "names",
                  extra: Mapping[str, str] | None = None) -> list[str | None]:
    """Map country names to ISO3 codes.

    Order of lookup: ``extra`` (source-specific fixes), :data:`NAME_FIXES`, then
    country_converter's regular expressions (after repairing Latin-1 mojibake). Names in
    :data:`AGGREGATE_NAMES` map to ``None``; the caller drops them with a warning.

    Parameters
    ----------
    names : sequence of str
        Country names as written in the source.
    source : str
        Name of the file, used in error messages.
    extra : mapping, optional
        Additional name -> code fixes for this source.

    Returns
    -------
    list of str or None
        One code per name (``None`` for aggregates).

    Raises
    ------
    UnknownCountryError
        If a name matches no country; the message lists all such names.
    """
    fixes = {**NAME_FIXES, **(extra or {})}
    todo = sorted({n for n in names if n not in fixes and n not in AGGREGATE_NAMES})
    repaired = [_repair_mojibake(n) for n in todo]
    found = _converter().convert(repaired, to="ISO3", not_found=None) if todo else []
    found = [found] if isinstance(found, str) else list(found)
    lookup = dict(zip(todo, found))
    bad = sorted(n for n, c in lookup.items() if not isinstance(c, str))
    if bad:
        raise UnknownCountryError(f"{source}: no country matches the name(s) {bad}")
    lookup.update(fixes)
    codes = [None if n in AGGREGATE_NAMES else lookup[n] for n in names]
    check_codes([c for c in codes if c is not None], source)
    return codes


def m49_to_iso3_map(crosswalk: pd.DataFrame, lookup: pd.DataFrame | None = None
                    ) -> dict[int, str]:
    """Build the UN M49 numeric -> ISO3 map from the crosswalk files.

    The gdidata crosswalk (``m49``, ``iso3``) is the primary source; the authors'
    ``Iso_code_lookup.csv`` (``m49``, ``iso3``) adds any code it lacks. Codes that the two
    files map differently raise an error. M49 codes of aggregates (World, regions, income
    groups) are absent from both and are dropped by the caller.

    Parameters
    ----------
    crosswalk : pandas.DataFrame
        Parsed ``crosswalks/gdidata_countrynames.csv`` (columns ``m49``, ``iso3``).
    lookup : pandas.DataFrame, optional
        Parsed ``Iso_code_lookup.csv`` (columns ``m49``, ``iso3``).

    Returns
    -------
    dict of int to str
    """
    pairs = [crosswalk[["m49", "iso3"]]]
    if lookup is not None:
        pairs.append(lookup[["m49", "iso3"]])
    both = pd.concat(pairs).dropna().astype({"m49": int}).drop_duplicates()
    clash = both[both.duplicated("m49", keep=False)]
    if len(clash):
        raise UnknownCountryError(
            f"M49 crosswalks disagree: {clash.sort_values('m49').values.tolist()}")
    return dict(zip(both["m49"], both["iso3"]))


def restrict(df: pd.DataFrame, columns: Sequence[str], source: str,
             value: str | None = None, countries: Sequence[str] = COUNTRIES) -> pd.DataFrame:
    """Keep the rows whose code columns all lie in the model's country list.

    Rows with recognised codes outside the list (territories, aggregates; see the module
    docstring) are dropped with one logged warning per source, naming the codes and, when
    ``value`` is given, the total dropped. Unrecognised codes raise.

    Parameters
    ----------
    df : pandas.DataFrame
        Tidy table.
    columns : sequence of str
        Columns holding country codes.
    source : str
        Name of the file, used in messages.
    value : str, optional
        Column whose dropped total is reported.
    countries : sequence of str
        The country list (default: the 231 model codes).

    Returns
    -------
    pandas.DataFrame
        The kept rows.
    """
    keep = pd.Series(True, index=df.index)
    for col in columns:
        check_codes(df[col], f"{source}, field '{col}'")
        keep &= df[col].isin(set(countries))
    if (~keep).any():
        dropped = sorted(set(df.loc[~keep, list(columns)].stack()) - set(countries))
        total = f", total {df.loc[~keep, value].sum():,.0f}" if value else ""
        log.warning("%s: dropped %d rows with codes outside the %d countries %s%s",
                    source, int((~keep).sum()), len(countries), dropped, total)
    return df.loc[keep]


def split_former(df: pd.DataFrame, columns: Sequence[str], values: Sequence[str],
                 shares: Mapping[str, Mapping[str, float]], source: str) -> pd.DataFrame:
    """Split rows of former states (:data:`FORMER_STATES`) among their successors.

    Each row whose code column holds a former state is replaced by one row per successor,
    its ``values`` multiplied by the successor's share; rows of successors that already
    exist are summed with the split rows.

    Parameters
    ----------
    df : pandas.DataFrame
        Tidy table.
    columns : sequence of str
        Code columns to split (each in turn).
    values : sequence of str
        Count columns to share out.
    shares : mapping
        ``{former: {successor: share}}``, shares summing to 1 (e.g. population shares).
    source : str
        Name of the file, used in log messages.

    Returns
    -------
    pandas.DataFrame
        Table without former-state codes, aggregated over duplicate keys.
    """
    keys = [c for c in df.columns if c not in values]
    for col in columns:
        former = df[col].isin(set(shares))
        if not former.any():
            continue
        parts = [df.loc[~former]]
        for code, succ in shares.items():
            rows = df.loc[df[col] == code]
            for new, share in succ.items():
                parts.append(rows.assign(**{col: new}, **{v: rows[v] * share for v in values}))
        log.info("%s: split %d rows of %s in '%s' among successors",
                 source, int(former.sum()), sorted(set(df.loc[former, col])), col)
        df = pd.concat(parts).groupby(keys, as_index=False, sort=False)[list(values)].sum()
    return df
