"""Validation helpers: period sums of gappy reported flows."""

from __future__ import annotations

import numpy as np
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
