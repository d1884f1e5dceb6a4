"""Tests of the raw-data registry, the country harmonisation and the real-data build.

Tests marked ``realdata`` need the raw public files (``RAW_DATA_DIR``, or the ``shared/data``
folder next to the repository root) and skip with a visible reason when they are absent.
The others build small temporary files in ``tmp_path``. No test downloads anything.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from migflow import countries, paths, realdata, schema, sources


def _raw_dir() -> Path:
    env = os.environ.get("RAW_DATA_DIR", "").strip()
    return Path(env) if env else paths.ROOT.parent / "shared" / "data"


RAW = _raw_dir()
HAVE_RAW = all((RAW / s.path).is_file() for s in sources.REGISTRY.values() if s.path)
SKIP_REASON = (f"raw public data not found in {RAW}: set RAW_DATA_DIR to the folder holding "
               "the raw files")


def needs_raw(test):
    """Mark a test as needing the raw public files; it skips with a reason when absent."""
    return pytest.mark.realdata(pytest.mark.skipif(not HAVE_RAW, reason=SKIP_REASON)(test))

IMS_HEADER = "year,orig,dest,sex,stock,type_b,type_c,type_r,type_i\n"
IMS_ROWS = [
    "1990,BES,ABW,female,25,1,0,1,0",
    "1990,BES,ABW,male,28,1,0,1,0",
    "1990,CHN,ABW,female,93,1,0,1,0",
    "1990,CHN,ABW,male,90,1,0,1,0",
    "2024,MEX,USA,female,5000000,1,0,0,0",
    "2024,MEX,USA,male,5500000,1,0,0,0",
]


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Tests never download: any attempt fails loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download a raw file")

    monkeypatch.setattr(sources, "_download", refuse)


@pytest.fixture(scope="module")
def real_ds():
    """The real dataset, built once for this module."""
    if not HAVE_RAW:
        pytest.skip(SKIP_REASON)
    return realdata.build_real_dataset(RAW)


@pytest.fixture(scope="module")
def tables():
    if not HAVE_RAW:
        pytest.skip(SKIP_REASON)
    return realdata.load_tables(RAW, verify=False)


def write_ims(path: Path, rows=IMS_ROWS, header=IMS_HEADER) -> Path:
    text = header + "\n".join(rows) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


# ---------------------------------------------------------------- countries (no raw data)

def test_country_list_is_231_alphabetical_with_taiwan():
    assert len(countries.COUNTRIES) == 231
    assert list(countries.COUNTRIES) == sorted(countries.COUNTRIES)
    assert "TWN" in countries.COUNTRIES and "XKX" not in countries.COUNTRIES
    assert {"SRB", "MNE", "SDN", "SSD", "CUW", "SXM", "BES"} <= set(countries.COUNTRIES)


def test_unknown_codes_raise_with_a_list():
    with pytest.raises(countries.UnknownCountryError, match=r"ZZZ.*QQQ|QQQ.*ZZZ"):
        countries.check_codes(["USA", "ZZZ", "QQQ"], "test table")
    countries.check_codes(["USA", "XCX", "OOO", "SCG"], "test table")


def test_names_to_iso3_handles_un_names_and_aggregates():
    names = ["China, Hong Kong Special Administrative Region", "CÃ´te d'Ivoire",
             "Swaziland", "The former Yugoslav Republic of Macedonia", "Total"]
    assert countries.names_to_iso3(names) == ["HKG", "CIV", "SWZ", "MKD", None]
    with pytest.raises(countries.UnknownCountryError, match="Atlantis"):
        countries.names_to_iso3(["Atlantis", "France"])


def test_restrict_drops_known_outsiders_and_logs(caplog):
    df = pd.DataFrame({"orig": ["USA", "XCX", "OOO"], "dest": ["CAN"] * 3, "v": [1, 2, 3]})
    kept = countries.restrict(df, ["orig", "dest"], "test", value="v")
    assert kept["orig"].tolist() == ["USA"]
    assert "OOO" in caplog.text and "total 5" in caplog.text
    with pytest.raises(countries.UnknownCountryError, match="ZZZ"):
        countries.restrict(df.assign(orig="ZZZ"), ["orig"], "test")


def test_split_former_states_by_shares():
    df = pd.DataFrame({"orig": ["SCG", "SRB"], "dest": ["DEU", "DEU"], "v": [100.0, 10.0]})
    out = countries.split_former(df, ["orig"], ["v"], {"SCG": {"SRB": 0.9, "MNE": 0.1}}, "t")
    got = out.set_index("orig")["v"].to_dict()
    assert got == pytest.approx({"SRB": 100.0, "MNE": 10.0})


# ---------------------------------------------------------------- registry (no raw data)

def test_registry_entries_are_complete():
    for key, src in sources.REGISTRY.items():
        assert src.url.startswith("https://") and src.publisher_url.startswith("http"), key
        assert src.licence and src.citation and src.description, key
        if src.path is None:
            assert key == "trade_baci"
            continue
        assert len(src.sha256) == 64, key
        assert callable(getattr(sources, src.parser)), key


def test_fetch_missing_file_names_file_url_and_variable(tmp_path):
    with pytest.raises(sources.MissingRawFileError) as err:
        sources.fetch("ims2024", tmp_path)
    msg = str(err.value)
    src = sources.REGISTRY["ims2024"]
    for part in (src.path, src.sha256, src.url, "RAW_DATA_DIR", "make all DATA=real"):
        assert part in msg


def test_fetch_wrong_hash_names_both_hashes(tmp_path):
    src = sources.REGISTRY["countries_by_region"]
    target = tmp_path / src.path
    target.parent.mkdir(parents=True)
    target.write_text("Country ISO,Region\nABW,Somewhere\n")
    with pytest.raises(sources.ChecksumError) as err:
        sources.fetch("countries_by_region", tmp_path)
    msg = str(err.value)
    assert src.sha256 in msg and sources.sha256sum(target) in msg and src.url in msg


def test_unavailable_trade_source_says_where_the_real_data_are():
    with pytest.raises(sources.SourceUnavailableError, match="cepii"):
        sources.fetch("trade_baci")


# ---------------------------------------------------------------- parsers on small copies

def test_small_ims_copy_parses(tmp_path):
    df = sources.parse_ims_stock(write_ims(tmp_path / "ims.csv"), years=(1990, 2024))
    assert len(df) == len(IMS_ROWS) and df["stock"].sum() == 10_500_236


@pytest.mark.parametrize("case, rows, match", [
    ("unknown code", [*IMS_ROWS, "1995,ZZZ,ABW,male,3,1,0,0,0"], r"field 'orig'.*ZZZ"),
    ("duplicated rows", [*IMS_ROWS, IMS_ROWS[0]], r"duplicated rows"),
    ("years out of range", [*IMS_ROWS, "2031,CHN,ABW,male,3,1,0,0,0"],
     r"field 'year' has value 2031 outside"),
    ("negative stock", [*IMS_ROWS, "1995,CHN,ABW,male,-3,1,0,0,0"],
     r"field 'stock' has negative value -3"),
    ("all-NaN column", [",".join(r.split(",")[:4] + [""] + r.split(",")[5:]) for r in IMS_ROWS],
     r"field 'stock' is entirely empty"),
])
def test_bad_ims_copy_gives_a_clear_error(tmp_path, case, rows, match):
    path = write_ims(tmp_path / "ims.csv.gz", rows)
    with pytest.raises(sources.RawDataValidationError, match=match) as err:
        sources.parse_ims_stock(path, years=(1990, 2024))
    assert str(path) in str(err.value)


def test_truncated_copy_gives_a_read_error(tmp_path):
    path = write_ims(tmp_path / "ims.csv.gz", IMS_ROWS * 200)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(sources.RawDataReadError, match="truncated or corrupt"):
        sources.parse_ims_stock(path, years=(1990, 2024))


def test_missing_column_is_named(tmp_path):
    path = write_ims(tmp_path / "ims.csv", [r.rsplit(",", 1)[0] for r in IMS_ROWS],
                     header=IMS_HEADER.replace(",type_i", ""))
    with pytest.raises(sources.RawDataValidationError, match=r"\['type_i'\] missing"):
        sources.parse_ims_stock(path)


# ---------------------------------------------------------------- pure functions

def test_mid_year_to_start_of_year():
    mid = np.array([[[1000.0, 99.0], [19.6, 500.0]]])
    births = np.array([[40.0, 20.0]])
    d = np.array([[0.04, 0.01]])
    out = realdata.mid_year_to_start_of_year(mid, births, d)
    np.testing.assert_allclose(out[0, 0, 0], (1000 - 20) / np.sqrt(0.96))
    np.testing.assert_allclose(out[0, 0, 1], 99 / np.sqrt(0.99))
    np.testing.assert_allclose(out[0, 1, 0], 19.6 / np.sqrt(0.96))


def test_impute_unilateral_rules():
    codes = ("CUW", "BES", "NLD", "DEU")
    regions = ["Caribbean", "Caribbean", "Europe", "Europe"]
    values = np.array([[1.0, np.nan, 10.0, np.nan],
                       [np.nan, np.nan, 20.0, np.nan],
                       [3.0, np.nan, np.nan, 40.0]])
    out, n = realdata.impute_unilateral(values, regions, "test", codes=codes)
    assert n == 7 and not np.isnan(out).any()
    np.testing.assert_allclose(out[:, 0], [1.0, 2.0, 3.0])  # interpolated in time
    np.testing.assert_allclose(out[:, 1], out[:, 0])  # BES takes its proxy CUW
    np.testing.assert_allclose(out[:, 2], [10.0, 20.0, 20.0])  # carried at the end
    np.testing.assert_allclose(out[:, 3], [40.0, 40.0, 40.0])


def test_impute_pairs_uses_symmetry_then_median():
    values = np.array([[0.0, 5.0, np.nan], [5.0, 0.0, 7.0], [np.nan, np.nan, 0.0]])
    out, n = realdata.impute_pairs(values, "test")
    assert n == 3 and out[2, 1] == 7.0 and out[0, 2] == out[2, 0] == 6.0


def test_combine_reported_flows_quality_weighted():
    df = pd.DataFrame({"year": [2010, 2010, 2010], "orig": ["DEU", "FRA", "ITA"],
                       "dest": ["AUT", "BEL", "ESP"], "immi": [100.0, 50.0, np.nan],
                       "emig": [200.0, np.nan, np.nan], "ui": ["low", "high", "low"],
                       "ai": ["high", np.nan, "low"], "ue": ["high", "low", "low"],
                       "ae": ["low", "high", "low"]})
    out = realdata.combine_reported_flows(df).set_index("orig")
    q_i, q_e = 1.0 * 1.0, 0.4 * 0.4
    assert out.loc["DEU", "flow"] == pytest.approx((q_i * 100 + q_e * 200) / (q_i + q_e))
    assert out.loc["DEU", "weight"] == pytest.approx(1.0)
    assert out.loc["FRA", "flow"] == 50.0 and out.loc["FRA", "weight"] == pytest.approx(0.28)
    assert "ITA" not in out.index


# ---------------------------------------------------------------- real data

@needs_raw
def test_registry_sha256_verifies():
    verified = sources.verify_all(RAW)
    assert set(verified) == {k for k, s in sources.REGISTRY.items() if s.path}


@needs_raw
def test_country_table_matches_the_raw_list():
    table = countries.load_countries(RAW)
    assert tuple(table.index) == countries.COUNTRIES
    assert table.loc["TWN", "region"] == "Eastern Asia"
    assert (table["region"] == "Eastern Asia").sum() == 8 and table["name"].notna().all()


@needs_raw
def test_ims_world_totals_match_un_desa(tables):
    totals = tables["ims2024"].groupby("year")["stock"].sum() / 1e6
    assert round(totals[2024], 1) == 304.0
    assert round(totals[1990], 1) == 153.9


@needs_raw
def test_coverage_and_schema(real_ds):
    schema.check_observations(real_ds, "real")
    assert real_ds.sizes["country"] == 231
    assert real_ds["year"].values.tolist() == list(range(1990, 2024))
    assert real_ds["stock_year"].values.tolist() == list(range(1990, 2025))
    assert real_ds["census"].values.tolist() == list(realdata.CENSUS_YEARS)
    assert real_ds.attrs["data_source"] == "real"
    assert real_ds.attrs["title"].startswith("Real world: 231 countries")
    assert "trade" in real_ds.attrs["substitutes"] and real_ds["trade"].attrs["substitute"]


@needs_raw
def test_no_nan_where_weight_is_positive(real_ds):
    for name in schema.TARGET_VARS:
        w = real_ds[f"{name}_weight"].values
        assert not np.isnan(real_ds[name].values[w > 0]).any(), name
    assert (real_ds["net_migration_weight"] > 0).all()
    assert int((real_ds["flow_weight"] > 0).sum()) > 9000


@needs_raw
def test_spot_values_equal_the_raw_files(real_ds, tables):
    wdi = tables["wdi"].query("var == 'pop' and iso3 == 'USA'").set_index("year")["value"]
    assert float(real_ds["population"].sel(stock_year=2000, country="USA")) == pytest.approx(
        (wdi[1999] + wdi[2000]) / 2)
    misc = tables["wpp_misc"].set_index(["year", "iso3"])
    assert float(real_ds["births"].sel(year=2010, country="DEU")) == pytest.approx(
        1000 * misc.loc[(2010, "DEU"), "births"])
    gdp = tables["gdp"].set_index(["year", "iso3"])
    assert float(real_ds["gdp_per_capita"].sel(year=2015, country="IND")) == pytest.approx(
        gdp.loc[(2015, "IND"), "gdp_per_capita"])
    raw = tables["net_migration_raw"].set_index(["year", "iso3"])["net_migration"]
    sel = {"year": 2015, "country": "DEU"}
    assert float(real_ds["net_migration"].sel(sel)) == raw[(2015, "DEU")]
    assert float(real_ds["net_migration_weight"].sel(sel)) == 1.0
    assert float(real_ds["net_migration_weight"].sel(year=2015, country="POL")) == 0.5


@needs_raw
def test_stock_is_start_of_year_ims(real_ds, tables):
    ims = tables["ims2024"].query("year == 2020 and orig == 'MEX' and dest == 'USA'")
    cdr = tables["wpp_misc"].query("year == 2020 and iso3 == 'USA'")["cdr"].iloc[0] / 1000
    got = float(real_ds["stock"].sel(census=2020, birth="MEX", destination="USA"))
    assert got == pytest.approx(ims["stock"].sum() / np.sqrt(1 - cdr))
    corrected = float(real_ds["stock"].sel(census=1990, birth="SYC", destination="CAN"))
    cdr_can = tables["wpp_misc"].query("year == 1990 and iso3 == 'CAN'")["cdr"].iloc[0] / 1000
    assert corrected == pytest.approx(2248 / np.sqrt(1 - cdr_can))
    s = real_ds["stock"].sel(census=2024)
    foreign = float(s.sel(destination="DEU").sum()) - float(s.sel(birth="DEU",
                                                                  destination="DEU"))
    native = float(s.sel(birth="DEU", destination="DEU"))
    assert native + foreign == pytest.approx(
        float(real_ds["population"].sel(stock_year=2024, country="DEU")))


@needs_raw
def test_abel_cohen_validation_flows():
    ac = realdata.abel_cohen_flows(RAW, verify=False)
    assert ac["flow"].dims == ("method", "year0", "origin", "destination")
    total = ac["flow"].sel({"method": "da_pb_closed"}).sum(("origin", "destination")) / 1e6
    assert round(float(total.sel(year0=1990)), 1) == 72.7
    assert round(float(total.sel(year0=2015)), 1) == 101.2
    assert ac["flow"].sel(origin="TWN").isnull().all()


# ---------------------------------------------------------------- bad input, nothing written

def _raw_copy(tmp_path: Path) -> Path:
    """A raw directory of links to the real files, to be damaged one file at a time."""
    root = tmp_path / "raw"
    for src in sources.REGISTRY.values():
        if src.path:
            target = root / src.path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                target.symlink_to(RAW / src.path)
            except OSError:
                shutil.copy(RAW / src.path, target)
    return root


def _replace(root: Path, key: str, data: bytes) -> None:
    target = root / sources.REGISTRY[key].path
    target.unlink()
    target.write_bytes(data)


def _small_ims(defect: str | None) -> bytes:
    head = gzip.decompress((RAW / sources.REGISTRY["ims2024"].path).read_bytes())
    lines = head.decode().splitlines()[:400]
    extra = {"unknown code": ["1995,ZZZ,ABW,male,3,1,0,0,0"], "duplicated rows": [lines[1]],
             "years out of range": ["2031,CHN,ABW,male,3,1,0,0,0"],
             "negative stock": ["1995,CHN,DEU,male,-3,1,0,0,0"]}.get(defect, [])
    if defect == "all-NaN column":
        lines = [lines[0]] + [",".join(x.split(",")[:4] + [""] + x.split(",")[5:])
                              for x in lines[1:]]
    return gzip.compress(("\n".join(lines + extra) + "\n").encode())


@needs_raw
@pytest.mark.parametrize("case, error, match", [
    ("missing file", sources.MissingRawFileError, "canada_inflows.*RAW_DATA_DIR"),
    ("truncated file", sources.ChecksumError, "truncated, corrupt"),
    ("wrong hash", sources.ChecksumError, "but 4641fae1"),
    ("unknown code", sources.RawDataValidationError, "ZZZ"),
    ("duplicated rows", sources.RawDataValidationError, "duplicated rows"),
    ("all-NaN column", sources.RawDataValidationError, "entirely empty"),
    ("years out of range", sources.RawDataValidationError, "2031"),
    ("negative stock", sources.RawDataValidationError, "negative value -3"),
])
def test_bad_raw_file_clear_error_and_nothing_written(tmp_path, case, error, match):
    root = _raw_copy(tmp_path)
    verify = True
    if case == "missing file":
        (root / sources.REGISTRY["canada_flows"].path).unlink()
    elif case == "truncated file":
        data = (RAW / sources.REGISTRY["ims2024"].path).read_bytes()
        _replace(root, "ims2024", data[: len(data) // 3])
    elif case == "wrong hash":
        data = (RAW / sources.REGISTRY["countries_by_region"].path).read_bytes()
        _replace(root, "countries_by_region", data.replace(b"ABW", b"ABX", 1))
    else:
        _replace(root, "ims2024", _small_ims(case))
        verify = False  # the modified copy must reach the parser
    out = tmp_path / "out" / "observations.nc"
    with pytest.raises(error, match=match):
        realdata.write_real_dataset(out, raw_dir=root, verify=verify)
    assert not out.exists() and not list(tmp_path.glob("out/*"))
