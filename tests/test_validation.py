"""Validation helpers: period sums of gappy reported flows."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from migflow import validation


def test_complete_period_sums_only_where_every_year_is_reported():
    years = np.arange(2000, 2010)
    values = np.ones((10, 2, 2))
    values[3, 0, 1] = np.nan  # one gap in the first period of corridor (0, 1)
    values[:, 1, 0] = np.nan  # never reported
    annual = xr.DataArray(values, dims=("year", "origin", "destination"),
                          coords={"year": years})
    out = validation.complete_period_sums(annual, [(2000, 2005), (2005, 2010)])
    assert out.sel(period=2000).values[0, 0] == 5
    assert np.isnan(out.sel(period=2000).values[0, 1])
    assert out.sel(period=2005).values[0, 1] == 5
    assert np.isnan(out.values[:, 1, 0]).all()
    partial = validation.annual_to_periods(annual, [(2000, 2005)])
    assert partial.values[0, 0, 1] == 4  # what a plain sum would have compared


def _od(values, periods=(1990,)):
    n = values.shape[-1]
    codes = [f"S{i:03d}" for i in range(n)]
    return xr.DataArray(values, dims=("period", "origin", "destination"),
                        coords={"period": list(periods), "origin": codes,
                                "destination": codes})


def test_origin_shares_sum_to_one_over_compared_corridors():
    flows = np.array([[[0, 2, 6], [1, 0, 1], [0, 0, 0]]], dtype=float)
    compared = ~np.eye(3, dtype=bool)[None]
    share = validation.origin_shares(flows, compared)
    np.testing.assert_allclose(np.nansum(share, axis=-1), [[1, 1, 0]])
    assert share[0, 0, 2] == 0.75 and np.isnan(share[0, 2]).all()  # no outflow: NaN


def test_proportion_and_rate_metrics_see_what_counts_miss():
    rng = np.random.default_rng(0)
    reference = _od(rng.lognormal(3, 1, (2, 5, 5)), periods=(1990, 1995))
    scale = xr.DataArray(np.array([1, 10, 100, 1000, 10000.0]), dims="origin",
                         coords={"origin": reference.origin})
    rescaled = reference * scale  # each origin's total off, its destinations right
    population = xr.DataArray(np.full((2, 5), 1e6), dims=("period", "country"))
    table = validation.five_year_table({"same": reference, "rescaled": rescaled},
                                       reference, "reference", population).set_index("estimate")
    assert table.loc["same", ["pearson_r", "pearson_r_prop", "pearson_r_rate"]].tolist() == \
        pytest.approx([1, 1, 1])
    assert table.loc["rescaled", "pearson_r_prop"] == pytest.approx(1)
    assert table.loc["rescaled", "pearson_r"] < 0.9
