"""Our six baselines on real inputs against Abel & Cohen's published flows (issue 4).

Inputs: UN DESA IMS 2020 stocks (mid-year) and WPP 2024 demography, on the countries of the
published file (see :mod:`migflow.abel_cohen` for the choices and shortcomings). The whole
module needs the raw public files (``RAW_DATA_DIR``, or the ``shared/data`` folder next to
the repository root) and skips with the reason when they are absent. It runs in about 15 s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from migflow import abel_cohen, baselines, paths, sources


def _raw_dir() -> Path:
    env = os.environ.get("RAW_DATA_DIR", "").strip()
    return Path(env) if env else paths.ROOT.parent / "shared" / "data"


RAW = _raw_dir()
MISSING = [sources.REGISTRY[k].path for k in abel_cohen.REQUIRED_FILES
           if not (RAW / sources.REGISTRY[k].path).is_file()]

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(bool(MISSING), reason=f"raw public data not found in {RAW} (missing "
                       f"{MISSING}): set RAW_DATA_DIR to the folder holding the raw files"),
]

# Pearson r over all corridors and periods, on counts and on log1p(counts).
# Reached with the pinned raw files (sha256-verified), in method order:
#   counts 1.000, 1.000, 0.995, 0.999, 0.898, 0.955; log1p 1.000, 1.000, 1.000, 0.995,
#   0.908, 0.987.
R_COUNT = {m: 0.9 for m in baselines.ALL_METHODS}
R_LOG = {m: 0.9 for m in baselines.ALL_METHODS}
# da_min_closed reaches only r = 0.898 on counts. Its closed accounts force each country's
# net migration to WPP population change minus natural increase; Abel & Cohen used an
# earlier WPP (most likely 2019) and only WPP 2024 is at hand, and the net migration implied
# by their published da_min_closed flows correlates with WPP 2024's at only 0.92-0.95 per
# period. The stock-only methods reproduce the file exactly, so the gap is the demography,
# not the stocks. Threshold: what is reached minus a small margin.
R_COUNT["da_min_closed"] = 0.89
# Within one period every method reaches at least 0.866 (da_min_closed 2015-2020, log1p).
R_PERIOD = 0.85


@pytest.fixture(scope="module")
def tables():
    return abel_cohen.load_inputs(RAW, verify=True)


@pytest.fixture(scope="module")
def flows(tables):
    return abel_cohen.reproduce_abel_cohen(tables=tables, progress=False)


@pytest.fixture(scope="module")
def table(flows):
    return abel_cohen.agreement(flows).set_index(["method", "period"])


def test_agreement_table_shape(flows, table):
    assert set(table.index.get_level_values("method")) == set(baselines.ALL_METHODS)
    periods = [f"{y}-{y + 5}" for y in abel_cohen.PERIOD_STARTS] + [abel_cohen.ALL_PERIODS]
    assert set(table.index.get_level_values("period")) == set(periods)
    # every ordered pair of distinct countries present: 225 countries in 1990-2005,
    # 226 in 2005-2010, 229 in 2010-2020
    n = [225, 225, 225, 226, 229, 229]
    expected = sum(k * (k - 1) for k in n)
    assert (table.xs(abel_cohen.ALL_PERIODS, level="period")["n_corridors"] == expected).all()
    assert np.isfinite(table[["r_count", "r_log1p"]].to_numpy()).all()
    # both sides are non-negative integers (Abel & Cohen's rounding)
    for name in ("estimate", "published"):
        v = flows[name].values
        v = v[np.isfinite(v)]
        assert (v >= 0).all() and (v == np.round(v)).all()


@pytest.mark.parametrize("method", baselines.ALL_METHODS)
def test_each_method_correlates_with_published(table, method):
    row = table.loc[(method, abel_cohen.ALL_PERIODS)]
    print(f"{method}: r = {row.r_count:.4f} (counts), {row.r_log1p:.4f} (log1p), total "
          f"{row.total_estimate / 1e6:.1f} M vs {row.total_published / 1e6:.1f} M")
    assert row.r_count >= R_COUNT[method]
    assert row.r_log1p >= R_LOG[method]


def test_every_period_correlates(table):
    periods = table.drop(abel_cohen.ALL_PERIODS, level="period")
    assert (periods[["r_count", "r_log1p"]] >= R_PERIOD).all().all(), periods


@pytest.mark.parametrize("method", ["sd_drop_neg", "sd_rev_neg"])
def test_stock_differencing_reproduced_exactly(flows, method):
    """Methods that use the stocks only: IMS 2020 gives every published flow to the person."""
    est = flows["estimate"].sel({"method": method}).values
    pub = flows["published"].sel({"method": method}).values
    ok = np.isfinite(pub)
    assert (np.isfinite(est) == ok).all()
    np.testing.assert_array_equal(est[ok], pub[ok])


def test_mig_rate_pattern_matches_within_each_period(table):
    """mig_rate differs only by its global total (WPP revision), not by its pattern."""
    periods = table.xs("mig_rate", level="method").drop(abel_cohen.ALL_PERIODS)
    assert (periods["r_count"] > 0.999).all()


def test_closed_gap_is_the_demography_revision(tables, flows):
    """Why da_min_closed falls short: the net migration each side's accounts were forced to.

    Ours follows WPP 2024 (r >= 0.999 with WPP 2024 net migration in every period); the
    published flows imply a net migration that WPP 2024 matches only at r = 0.92-0.95. If
    this gap closes (demography of Abel & Cohen's revision becomes available), raise
    ``R_COUNT["da_min_closed"]`` back to 0.9.
    """
    for year0 in abel_cohen.PERIOD_STARTS:
        inputs = abel_cohen.period_inputs(tables, year0)
        codes = list(inputs.codes)
        r = {}
        for name in ("estimate", "published"):
            od = flows[name].sel({"method": "da_min_closed", "year0": year0})
            net = abel_cohen.implied_net_migration(od.sel(origin=codes, destination=codes))
            r[name] = np.corrcoef(net.values, inputs.net_migration)[0, 1]
        assert r["estimate"] >= 0.999, (year0, r)
        assert r["published"] <= 0.96, (year0, r)


def test_missing_births_name_file_and_field(tables):
    misc = tables["wpp_misc"]
    broken = dict(tables, wpp_misc=misc[~((misc["iso3"] == "FRA") & (misc["year"] == 1993))])
    with pytest.raises(sources.RawDataValidationError, match=r"wpp2024_misc1dt\.csv.*'births'"
                       r".*FRA"):
        abel_cohen.period_inputs(broken, 1990)


def test_missing_successor_population_names_file_and_field(tables):
    """A former state needs all its successors: MNE missing from 'pop' in 1990 is an error."""
    wdi = tables["wdi"]
    broken = dict(tables, wdi=wdi[~((wdi["iso3"] == "MNE") & (wdi["var"] == "pop"))])
    with pytest.raises(sources.RawDataValidationError,
                       match=r"gdidata_wdi_indicators\.csv\.gz.*'value'.*MNE.*pop"):
        abel_cohen.period_inputs(broken, 1990)


def test_unknown_period_names_file_and_field(tables):
    with pytest.raises(sources.RawDataValidationError, match=r"abel_cohen.*'year0'.*2020"):
        abel_cohen.period_inputs(tables, 2020)
