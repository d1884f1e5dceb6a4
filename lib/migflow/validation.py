"""Metrics and comparisons for validating estimates against data or a known truth.

The paper (paper.md 6) reports Pearson correlations pooled over all data points, on
counts and on log(1 + x), and the median relative error
``MRE = 100 * median(|x - y| / x)`` with x the data and y the estimate. For intervals we
add the empirical coverage (the share of true values inside the interval) and the
sharpness (median width relative to the median), so that coverage is never bought with
width.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def _paired(x, y, mask=None) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"cannot compare arrays of {x.size} and {y.size} values")
    keep = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool).ravel()
    return x[keep], y[keep]


def pearson(x, y, mask=None) -> float:
    """Pearson correlation of the finite pairs (NaN with fewer than 3 pairs)."""
    a, b = _paired(x, y, mask)
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def pearson_log(x, y, mask=None) -> float:
    """Pearson correlation of log(1 + x) and log(1 + y) (non-negative quantities)."""
    a, b = _paired(x, y, mask)
    return pearson(np.log1p(np.clip(a, 0, None)), np.log1p(np.clip(b, 0, None)))


def median_relative_error(data, estimate, mask=None) -> float:
    """``100 * median(|data - estimate| / |data|)`` over pairs with non-zero data, in %."""
    a, b = _paired(data, estimate, mask)
    keep = a != 0
    if not keep.any():
        return float("nan")
    return float(100.0 * np.median(np.abs(a[keep] - b[keep]) / np.abs(a[keep])))


def coverage(truth, lower, upper, mask=None) -> float:
    """Share of ``truth`` values inside [lower, upper] (pairs where all three are finite)."""
    t = np.asarray(truth, dtype=np.float64).ravel()
    lo = np.asarray(lower, dtype=np.float64).ravel()
    hi = np.asarray(upper, dtype=np.float64).ravel()
    keep = np.isfinite(t) & np.isfinite(lo) & np.isfinite(hi)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool).ravel()
    if not keep.any():
        return float("nan")
    return float(np.mean((t[keep] >= lo[keep]) & (t[keep] <= hi[keep])))


def relative_width(lower, upper, centre, mask=None) -> float:
    """Median of (upper - lower) / |centre| (the sharpness of an interval)."""
    lo, hi, c = (np.asarray(a, dtype=np.float64).ravel() for a in (lower, upper, centre))
    keep = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(c) & (c != 0)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool).ravel()
    return float(np.median((hi[keep] - lo[keep]) / np.abs(c[keep]))) if keep.any() else np.nan


def scores(data, estimate, mask=None) -> dict[str, float]:
    """The paper's point metrics: r (counts), r (log 1+x), MRE (%) and the number of pairs."""
    a, _ = _paired(data, estimate, mask)
    return {"pearson_r": pearson(data, estimate, mask),
            "pearson_r_log": pearson_log(data, estimate, mask),
            "median_relative_error_pct": median_relative_error(data, estimate, mask),
            "n": int(a.size)}


def interval_scores(truth, estimate: xr.DataArray, mask=None) -> dict[str, float]:
    """Coverage and width of the 50% and 90% intervals of an estimate with a quantile dim."""
    q = estimate.sel
    med = q(quantile=0.5).values
    return {
        "coverage_50": coverage(truth, q(quantile=0.25).values, q(quantile=0.75).values, mask),
        "coverage_90": coverage(truth, q(quantile=0.05).values, q(quantile=0.95).values, mask),
        "width_50": relative_width(q(quantile=0.25).values, q(quantile=0.75).values, med, mask),
        "width_90": relative_width(q(quantile=0.05).values, q(quantile=0.95).values, med, mask),
    }


def reliability(truth, estimate: xr.DataArray, mask=None) -> pd.DataFrame:
    """Nominal vs empirical coverage of the central intervals the quantiles allow."""
    levels = sorted(float(v) for v in estimate["quantile"].values)
    rows = []
    for lo in levels:
        hi = round(1.0 - lo, 10)
        if lo < 0.5 and hi in levels:
            rows.append({"nominal": hi - lo, "empirical": coverage(
                truth, estimate.sel(quantile=lo).values, estimate.sel(quantile=hi).values, mask)})
    return pd.DataFrame(rows)


def period_sums(annual: xr.DataArray, starts, dim: str = "year") -> xr.DataArray:
    """Sum annual values over periods [starts[p], starts[p + 1]) into a ``period`` dim.

    ``starts`` are census years; the last one closes the last period and years outside
    are dropped. The coordinate ``period`` holds each period's first year.
    """
    starts = list(starts)
    parts = []
    for a, b in zip(starts[:-1], starts[1:]):
        years = annual[dim].values
        sel = annual.sel({dim: years[(years >= a) & (years < b)]})
        parts.append(sel.sum(dim, min_count=1).expand_dims(period=[a]))
    return xr.concat(parts, dim="period")


def census_periods(obs: xr.Dataset) -> list[tuple[int, int]]:
    """Consecutive census years as (start, end) periods, e.g. (1990, 1995) ... (2020, 2024)."""
    census = [int(c) for c in obs["census"].values]
    return list(zip(census[:-1], census[1:]))


def _offdiag(n: int) -> np.ndarray:
    return ~np.eye(n, dtype=bool)


def annual_to_periods(annual: xr.DataArray, periods: list[tuple[int, int]]) -> xr.DataArray:
    """Sum annual flows (year, ...) over each period [start, end) into a ``period`` dim."""
    return period_sums(annual, [p[0] for p in periods] + [periods[-1][1]])


def complete_period_sums(annual: xr.DataArray, periods: list[tuple[int, int]]) -> xr.DataArray:
    """Like :func:`annual_to_periods`, but NaN unless every year of the period is observed.

    Reported flows have gaps; a partial sum would look like a small five-year flow, so
    only corridors reported in every year of a period are compared.
    """
    sums = annual_to_periods(annual, periods)
    counts = annual_to_periods(annual.notnull().astype(float), periods)
    lengths = xr.DataArray([b - a for a, b in periods], dims="period",
                           coords={"period": [a for a, _ in periods]})
    return sums.where(counts == lengths)


def fill_stock_gaps(stock: xr.DataArray) -> xr.DataArray:
    """Fill missing stock cells by linear interpolation over census years, then nearest.

    The five-year methods need complete stock tables; cells never observed become 0.
    """
    stock = stock.transpose("census", ...)
    years = stock["census"].values.astype(float)
    values = stock.values.reshape(len(years), -1).copy()
    for col in np.flatnonzero(np.isnan(values).any(axis=0)):
        known = ~np.isnan(values[:, col])
        if known.any():  # np.interp holds the end values constant beyond the known years
            values[:, col] = np.interp(years, years[known], values[known, col])
    values = np.nan_to_num(values, nan=0.0).reshape(stock.shape)
    return stock.copy(data=values)


def baseline_period_flows(obs: xr.Dataset, methods) -> xr.DataArray:
    """Five-year flows (method, period, origin, destination) of the stock-based methods.

    Inputs are the observed stocks (gaps filled by :func:`fill_stock_gaps`), births and
    deaths summed over each period, and the observed net migration (for ``mig_rate``).
    The last period may be shorter than five years (2020-2024).
    """
    from . import baselines

    stock = fill_stock_gaps(obs["stock"])
    net = obs["net_migration"].fillna(0.0)
    parts = []
    for start, end in census_periods(obs):
        years = slice(start, end - 1)
        ds = baselines.five_year_flows(
            stock.sel(census=start, drop=True), stock.sel(census=end, drop=True),
            obs["births"].sel(year=years).sum("year"), obs["deaths"].sel(year=years).sum("year"),
            net.sel(year=years).sum("year"), methods=methods, by_birth=False)
        parts.append(ds["flow"].expand_dims(period=[start]))
    return xr.concat(parts, dim="period")


def origin_shares(flows: np.ndarray, compared: np.ndarray) -> np.ndarray:
    """Each compared corridor's share of its origin's total over the compared corridors.

    ``flows`` and ``compared`` are (..., origin, destination); the paper's "proportion"
    metric divides by the reporter's total over its partners. Reference and estimate are
    both divided by their own totals over the same corridors, so that the metric asks
    where an origin's migrants go, not how many there are. NaN outside ``compared`` and
    where the total is 0.
    """
    values = np.where(compared, flows, 0.0)
    total = values.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = values / total
    return np.where(compared & (total > 0), share, np.nan)


def five_year_table(estimates: dict[str, xr.DataArray], reference: xr.DataArray,
                    reference_name: str, population: xr.DataArray | None = None
                    ) -> pd.DataFrame:
    """Scores of several estimates against one reference, one row per estimate.

    Works for flows (period, origin, destination; off-diagonal corridors only) and for
    net migration (period, country). For flows the paper's two other metrics are added:
    ``pearson_r_prop``, the correlation of each corridor's share of its origin's total
    (:func:`origin_shares`), and, given ``population`` (period, country) at the start of
    each period, ``pearson_r_rate``, that of flows per head of the origin's population.
    """
    mask = None
    if "origin" in reference.dims:
        reference = reference.transpose(..., "origin", "destination")
        mask = np.broadcast_to(_offdiag(reference.sizes["origin"]), reference.shape)
        compared = mask & np.isfinite(reference.values)
    rows = []
    for name, est in estimates.items():
        est = est.transpose(*reference.dims)
        row = {"estimate": name, "reference": reference_name,
               **scores(reference.values, est.values, mask)}
        if mask is not None:
            both = compared & np.isfinite(est.values)
            row["pearson_r_prop"] = pearson(origin_shares(reference.values, both),
                                            origin_shares(est.values, both))
            if population is not None:
                head = population.transpose("period", "country").values[:, :, None]
                with np.errstate(invalid="ignore", divide="ignore"):
                    row["pearson_r_rate"] = pearson(reference.values / head,
                                                    est.values / head, both & (head > 0))
        rows.append(row)
    return pd.DataFrame(rows)


def heldout_scores(flows: xr.Dataset, obs: xr.Dataset,
                   truth: xr.Dataset | None = None) -> pd.DataFrame:
    """Point scores of annual flows on training and held-out corridors.

    Against the reported data: the ensemble median on all observed points (the paper's
    "training flows"), and the held-out median (members that did not see the corridor)
    on held-out points. Against the truth (synthetic world): the held-out median on every
    year of held-out corridors, and the ensemble median on every off-diagonal corridor.
    """
    med = flows["flow"].sel(quantile=0.5).values
    held = flows["flow_heldout"].sel(quantile=0.5).values
    data = obs["flow"].transpose("year", "origin", "destination").values
    heldout = np.isfinite(held)
    observed = np.isfinite(data)
    rows = [
        {"reference": "reported flows", "corridors": "all observed (training)",
         **scores(data, med, observed)},
        {"reference": "reported flows", "corridors": "held-out",
         **scores(data, held, observed & heldout)},
    ]
    if truth is not None:
        true = truth["flow"].transpose("year", "origin", "destination").values
        offdiag = np.broadcast_to(_offdiag(true.shape[-1]), true.shape)
        rows += [
            {"reference": "truth", "corridors": "held-out, all years", **scores(true, held,
                                                                                heldout)},
            {"reference": "truth", "corridors": "held-out, observed years",
             **scores(true, held, heldout & observed)},
            {"reference": "truth", "corridors": "all corridors, all years",
             **scores(true, med, offdiag)},
        ]
    return pd.DataFrame(rows)


def calibration_table(flows: xr.Dataset, reference: np.ndarray, reference_name: str
                      ) -> pd.DataFrame:
    """Coverage and width of the 50% / 90% intervals, all corridors and held-out ones."""
    offdiag = np.broadcast_to(_offdiag(flows.sizes["origin"]), reference.shape)
    held = flows["flow_heldout"]
    rows = [{"reference": reference_name, "estimate": "ensemble (all corridors)",
             **interval_scores(reference, flows["flow"], offdiag & np.isfinite(reference))},
            {"reference": reference_name, "estimate": "held-out members (held-out corridors)",
             **interval_scores(reference, held, np.isfinite(held.sel(quantile=0.5).values)
                               & np.isfinite(reference))}]
    return pd.DataFrame(rows)


def net_from_flows(flows: xr.DataArray) -> xr.DataArray:
    """Net migration (..., country): inflows minus outflows of an (origin, destination) array."""
    inflow = flows.sum("origin").rename(destination="country")
    outflow = flows.sum("destination").rename(origin="country")
    return inflow - outflow


def tidy(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack result tables into long form: identifying columns, then metric and value."""
    id_cols = ["check", "estimate", "reference", "corridors"]
    long = []
    for frame in frames:
        frame = frame.copy()
        for col in id_cols:
            if col not in frame:
                frame[col] = ""
        value_cols = [c for c in frame.columns if c not in id_cols]
        long.append(frame.melt(id_vars=id_cols, value_vars=value_cols, var_name="metric",
                               value_name="value"))
    return pd.concat(long, ignore_index=True)
