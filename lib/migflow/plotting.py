"""One function per figure, each taking datasets and returning a matplotlib Figure.

All figures share one theme (:func:`set_style`) and are saved as PDF and PNG by
:func:`save` with fixed metadata, so reruns on the same inputs give the same bytes.
Every title says whether the data are SYNTHETIC or REAL. A function given a dataset that
lacks a variable it needs raises a ``KeyError`` naming the variable.

Figures of the paper (paper.md section 7) and where they are made here: global and
regional flows (:func:`global_flows`, :func:`regional_flows`), flows, stocks and net
migration of chosen corridors and countries (:func:`corridor_series`,
:func:`stock_series`, :func:`stock_errors`, :func:`net_migration_series`), validation
(:func:`performance_scatter`, :func:`method_heatmap`, :func:`reliability_plot`),
elasticities (:func:`elasticity_plot`), and the views the field expects: a chord diagram
of flows between regions (:func:`chord_diagram`) and maps (:func:`flow_map`,
:func:`net_migration_map`; outlines from :mod:`migflow.geography`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as mpatches  # noqa: E402
import matplotlib.path as mpath  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402

from . import geography, validation  # noqa: E402

log = logging.getLogger(__name__)

SINGLE, DOUBLE = 3.5, 7.2  # journal column widths in inches
BAND_90, BAND_50 = 0.18, 0.35  # alpha of the 90% and 50% bands


def set_style() -> None:
    """The one theme of every figure (seaborn 'paper' context, colour-blind palette)."""
    sns.set_theme(context="paper", style="ticks", palette="colorblind")
    matplotlib.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 200, "pdf.fonttype": 42, "ps.fonttype": 42,
        "svg.hashsalt": "migflow", "axes.titlesize": 9, "axes.labelsize": 8,
        "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7,
        "figure.titlesize": 10, "axes.spines.top": False, "axes.spines.right": False,
    })


def source_label(ds: xr.Dataset) -> str:
    """'SYNTHETIC' or 'REAL' from a dataset's ``data_source`` attribute."""
    return "SYNTHETIC" if ds.attrs.get("data_source") == "synthetic" else "REAL"


def save(fig: plt.Figure, name: str, folder: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``name.pdf`` and ``name.png`` in ``folder`` with stable metadata."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    out = []
    for ext, meta in (("pdf", {"CreationDate": None, "ModDate": None}),
                      ("png", {"Software": None})):
        path = folder / f"{name}.{ext}"
        fig.savefig(path, bbox_inches="tight", metadata=meta)
        out.append(path)
    log.info("saved %s.{pdf,png} in %s", name, folder)
    return out


def _require(ds: xr.Dataset, *names: str) -> None:
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise KeyError(f"dataset lacks {missing} needed for this figure; it has "
                       f"{sorted(ds.data_vars)}")


def _band(ax, x, q: xr.DataArray, color, label=None) -> None:
    ax.fill_between(x, q.sel(quantile=0.05), q.sel(quantile=0.95), color=color,
                    alpha=BAND_90, lw=0)
    ax.fill_between(x, q.sel(quantile=0.25), q.sel(quantile=0.75), color=color,
                    alpha=BAND_50, lw=0)
    ax.plot(x, q.sel(quantile=0.5), color=color, lw=1.2, label=label)


def loss_curves(history: pd.DataFrame, title: str = "") -> plt.Figure:
    """Training loss per term and the held-out flow loss against epochs (log scale)."""
    needed = {"epoch", "stock", "net_migration", "flow", "test_flow", "total"}
    if not needed <= set(history.columns):
        raise KeyError(f"history lacks columns {sorted(needed - set(history.columns))}")
    fig, ax = plt.subplots(figsize=(SINGLE * 1.4, 2.6))
    for col, style in (("total", "-"), ("stock", "-"), ("net_migration", "-"), ("flow", "-"),
                       ("outflow", ":"), ("test_flow", "--")):
        if col in history and (history[col] > 0).any():
            label = "flow (held-out corridors)" if col == "test_flow" else col.replace("_", " ")
            ax.plot(history["epoch"], history[col].clip(lower=1e-8), style, label=label, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (weighted)")
    ax.set_title(title or "Training loss per term")
    ax.legend(frameon=False, ncol=2)
    return fig


def covariate_overview(obs: xr.Dataset) -> plt.Figure:
    """Country-level covariates over time: every country as a thin line."""
    names = ["gdp_per_capita", "gdp_growth", "life_expectancy", "birth_rate", "death_rate",
             "conflict_deaths"]
    _require(obs, *names, "population")
    fig, axes = plt.subplots(2, 4, figsize=(DOUBLE, 3.6), constrained_layout=True)
    series = [(n, obs[n]) for n in names]
    series.insert(2, ("population", obs["population"].rename(stock_year="year")))
    series.append(("refugees hosted", obs["refugees"].sum("birth").rename(
        destination="country")))
    for ax, (name, da) in zip(axes.flat, series):
        ax.plot(da["year"], da.transpose("year", "country").values, lw=0.4, alpha=0.6)
        if name in ("gdp_per_capita", "population"):
            ax.set_yscale("log")
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("year")
        ax.set_ylabel(obs[name].attrs.get("units", "") if name in obs else "persons")
    fig.suptitle(f"{source_label(obs)} covariates, one line per country")
    return fig


def data_coverage(obs: xr.Dataset) -> plt.Figure:
    """Which countries and years have stock, net-migration and flow data."""
    _require(obs, "stock", "net_migration", "flow")
    fig, axes = plt.subplots(1, 3, figsize=(DOUBLE, 3.0), constrained_layout=True)
    stock_obs = obs["stock"].notnull().mean("birth").transpose("destination", "census")
    sns.heatmap(stock_obs.values, ax=axes[0], cmap="viridis", vmin=0, vmax=1,
                cbar_kws={"label": "share of birthplaces observed"},
                xticklabels=stock_obs["census"].values, yticklabels=False)
    axes[0].set_title("stocks (by residence)")
    axes[0].set_xlabel("census")
    axes[0].set_ylabel("country")
    net = obs["net_migration"].notnull().transpose("country", "year")
    axes[1].imshow(net.values, aspect="auto", cmap="Greens", vmin=0, vmax=1, interpolation="none",
                   extent=(net["year"][0] - .5, net["year"][-1] + .5, len(net["country"]), 0))
    axes[1].set_title("net migration")
    imm = obs["flow"].notnull().sum("origin").transpose("destination", "year")
    emi = obs["flow"].notnull().sum("destination").transpose("origin", "year")
    both = np.maximum(imm.values, emi.values)
    im = axes[2].imshow(both, aspect="auto", cmap="magma_r", interpolation="none",
                        extent=(obs["year"][0] - .5, obs["year"][-1] + .5, both.shape[0], 0))
    fig.colorbar(im, ax=axes[2], label="partners with reported flows")
    axes[2].set_title("reported flows (as reporter)")
    for ax in axes[1:]:
        ax.set_xlabel("year")
        ax.set_yticks([])
    fig.suptitle(f"{source_label(obs)} data coverage")
    return fig


def migrant_stock_totals(obs: xr.Dataset, truth: xr.Dataset | None = None) -> plt.Figure:
    """World foreign-born stock at each census (observed) and, if known, the truth."""
    _require(obs, "stock")
    offdiag = ~np.eye(obs.sizes["birth"], dtype=bool)
    fig, ax = plt.subplots(figsize=(SINGLE, 2.4))
    total = (obs["stock"].where(offdiag)).sum(("birth", "destination"))
    ax.plot(obs["census"], total / 1e6, "o", label="observed (missing cells omitted)")
    if truth is not None:
        t = truth["stock"].where(offdiag).sum(("birth", "destination"))
        ax.plot(truth["stock_year"], t / 1e6, "-", lw=1, label="truth")
    ax.set_xlabel("census year (1 January)")
    ax.set_ylabel("foreign-born (millions)")
    ax.set_title(f"{source_label(obs)} world migrant stock")
    ax.legend(frameon=False)
    return fig


# ------------------------------------------------------------------------------ helpers

def _unit(values) -> tuple[float, str]:
    """Divisor and name of a readable unit for persons: millions, thousands or persons."""
    peak = float(np.nanmax(np.abs(np.asarray(values, dtype=float)), initial=0.0))
    if peak >= 1e6:
        return 1e6, "millions"
    if peak >= 1e4:
        return 1e3, "thousands"
    return 1.0, "persons"


def _grid(n: int, ncol: int = 3, height: float = 2.0):
    """A figure with ``n`` panels in rows of ``ncol``; unused panels are hidden."""
    ncol = max(1, min(ncol, n))
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(DOUBLE, height * nrow), squeeze=False,
                             constrained_layout=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def region_palette(names) -> dict:
    """One colour per region name (colour-blind palette; more distinct hues past ten)."""
    names = list(dict.fromkeys(names))
    colours = sns.color_palette("colorblind" if len(names) <= 10 else "husl", len(names))
    return dict(zip(names, colours))


def _title(ds: xr.Dataset, text: str) -> str:
    return f"{source_label(ds)} {text}"


# ------------------------------------------------------- what to show (paper's choices)

PAPER_REGIONS = ["Europe", "Western Asia", "Southern Asia"]  # regional_flows.pdf
PAPER_SHOCKS = [("MEX", "USA"), ("VEN", "COL"), ("BGD", "SAU"), ("UKR", "RUS"), ("RWA", "COD"),
                ("SYR", "TUR")]  # shocks_1.pdf
PAPER_STOCKS = [("MEX", "USA"), ("RWA", "COD"), ("NGA", "ZAF"), ("POL", "DEU"), ("KEN", "ZAF"),
                ("MLI", "SEN")]  # example stocks (SI)
# net_migration_examples.pdf
PAPER_NET = ["IND", "VEN", "RUS", "CHN", "NGA", "HND", "IRQ", "PNG", "VNM"]


def top_corridors(flows: xr.Dataset, n: int) -> list[tuple[str, str]]:
    """The ``n`` (origin, destination) corridors with the largest mean annual flow."""
    _require(flows, "flow_mean")
    series = flows["flow_mean"].mean("year").stack(c=("origin", "destination")).to_series()
    return list(series.sort_values(ascending=False, kind="stable").index[:n])


def top_foreign_stocks(stocks: xr.Dataset, n: int) -> list[tuple[str, str]]:
    """The ``n`` (birth, destination) pairs with the largest foreign-born stock at the end."""
    _require(stocks, "stock_mean")
    last = stocks["stock_mean"].isel(stock_year=-1)
    series = last.where(last["birth"] != last["destination"]).stack(
        p=("birth", "destination")).to_series().dropna()
    return list(series.sort_values(ascending=False, kind="stable").index[:n])


def top_net_migration(net: xr.Dataset, n: int) -> list[str]:
    """The ``n`` countries with the largest mean absolute net migration."""
    _require(net, "net_migration_mean")
    series = abs(net["net_migration_mean"]).mean("year").to_series()
    return list(series.sort_values(ascending=False, kind="stable").index[:n])


def paper_or(wanted: list, codes, fallback: list) -> list:
    """The paper's choice where all its codes exist in ``codes`` (real data), else ``fallback``.

    Items are codes or tuples of codes; regions work the same way.
    """
    known = set(str(c) for c in np.asarray(codes))

    def present(item):
        return all(c in known for c in (item if isinstance(item, tuple) else (item,)))

    return wanted if all(present(w) for w in wanted) else fallback


# ------------------------------------------------------------- global and regional flows

def global_flows(flows: xr.Dataset, truth: xr.Dataset | None = None) -> plt.Figure:
    """Global total annual flow with its 50% and 90% bands (and the truth if known).

    The bands are quantiles of the realisations' global totals (``total_flow``), not sums
    of corridor quantiles.
    """
    _require(flows, "total_flow")
    fig, ax = plt.subplots(figsize=(SINGLE * 1.3, 2.5))
    scale, unit = _unit(flows["total_flow"])
    _band(ax, flows["year"], flows["total_flow"] / scale, "C0", "estimate (median)")
    if truth is not None:
        _require(truth, "flow")
        ax.plot(truth["year"], truth["flow"].sum(("origin", "destination")) / scale, "k--",
                lw=1, label="truth")
    ax.set_ylabel(f"migrants per year ({unit})")
    ax.set_xlabel("year")
    ax.set_title(_title(flows, "global annual migration (50% / 90% bands)"))
    ax.legend(frameon=False)
    return fig


def regional_components(flows: xr.Dataset, obs: xr.Dataset) -> xr.Dataset:
    """Inflow, outflow, net and intra-regional flow of every region and year (ensemble means).

    Parameters
    ----------
    flows : xarray.Dataset
        ``flows.nc`` with ``flow_mean`` (year, origin, destination).
    obs : xarray.Dataset
        Observations with the ``region`` coordinate on ``country``.

    Returns
    -------
    xarray.Dataset
        ``inflow`` (from other regions), ``outflow`` (to other regions), ``net``
        (inflow - outflow) and ``intra`` (between countries of the region), dims
        (year, region). They are exact ensemble means, because a mean of sums is the sum
        of the means; quantiles of regional sums cannot be got from corridor quantiles.
    """
    _require(flows, "flow_mean")
    table = geography.regional_flows(flows["flow_mean"], geography.regions_of(obs))
    names = table["from_region"].values
    eye = xr.DataArray(np.eye(len(names), dtype=bool), dims=("from_region", "to_region"),
                       coords={"from_region": names, "to_region": names})
    between = table.where(~eye, 0.0)
    inflow = between.sum("from_region").rename(to_region="region")
    outflow = between.sum("to_region").rename(from_region="region")
    intra = table.where(eye, 0.0).sum("to_region").rename(from_region="region")
    return xr.Dataset({"inflow": inflow, "outflow": outflow, "net": inflow - outflow,
                       "intra": intra})


def regional_flows(flows: xr.Dataset, obs: xr.Dataset, regions: list[str] | None = None,
                   truth: xr.Dataset | None = None) -> plt.Figure:
    """The paper's "regional flows": the global total, then inflow / outflow / net / intra.

    Parameters
    ----------
    flows : xarray.Dataset
        ``flows.nc``: ``total_flow`` (with bands) for the global panel and ``flow_mean``
        for the regional panels.
    obs : xarray.Dataset
        Observations with the ``region`` coordinate on ``country``.
    regions : list of str, optional
        Regions to show (default: the three with the largest mean inflow).
    truth : xarray.Dataset, optional
        Synthetic truth, drawn in the global panel.

    Notes
    -----
    Regional lines are ensemble *means* (from ``flow_mean``) and have no band: bands of a
    regional aggregate would need the realisations, and summing corridor quantiles does
    not give the quantiles of the sum. Outflow to other regions is drawn negative.
    """
    _require(flows, "total_flow", "flow_mean")
    parts = regional_components(flows, obs)
    if regions is None:
        regions = list(parts["inflow"].mean("year").to_series()
                       .sort_values(ascending=False).index[:3])
    missing = [r for r in regions if r not in parts["region"].values]
    if missing:
        raise KeyError(f"regions {missing} are not in the observations' 'region' coordinate")
    fig, axes = _grid(1 + len(regions), ncol=4, height=2.3)
    scale, unit = _unit(flows["total_flow"])
    ax = axes[0]
    _band(ax, flows["year"], flows["total_flow"] / scale, "C0", "global total (median)")
    if truth is not None:
        ax.plot(truth["year"], truth["flow"].sum(("origin", "destination")) / scale, "k--",
                lw=0.8, label="truth")
    ax.set_title("world")
    ax.set_ylabel(f"migrants per year ({unit})")
    ax.legend(frameon=False, loc="upper left")
    sub = parts.sel(region=regions)
    rscale, runit = _unit(np.concatenate([sub[v].values.ravel() for v in sub.data_vars]))
    for ax, name in zip(axes[1:], regions):
        _region_panel(ax, sub.sel(region=name) / rscale)
        ax.set_title(name)
        ax.set_ylabel(f"migrants per year ({runit})")
    fig.legend(*axes[1].get_legend_handles_labels(), loc="outside lower center", ncol=4,
               frameon=False)
    for ax in axes:
        ax.set_xlabel("year")
    fig.suptitle(_title(flows, "annual migration: world total (50% / 90% bands) and regions "
                               "(ensemble means)"))
    return fig


def _region_panel(ax, part: xr.Dataset) -> None:
    years = part["year"].values
    ax.fill_between(years, 0, part["inflow"], color="C0", alpha=0.45, lw=0,
                    label="inflow from other regions")
    ax.fill_between(years, 0, -part["outflow"], color="C3", alpha=0.45, lw=0,
                    label="outflow to other regions")
    ax.plot(years, part["net"], color="k", lw=1.2, label="net")
    ax.plot(years, part["intra"], color="C2", lw=1.2, ls="--", label="intra-regional")
    ax.axhline(0, color="0.5", lw=0.5)


# ------------------------------------------------------------------ series by corridor

def corridor_series(flows: xr.Dataset, corridors: list[tuple[str, str]],
                    observed: xr.Dataset | None = None,
                    truth: xr.Dataset | None = None) -> plt.Figure:
    """Annual flows with 50% / 90% bands for chosen (origin, destination) corridors.

    Reported flows (``observed``) are drawn as dots and the truth (synthetic world) as a
    dashed line, where given.
    """
    _require(flows, "flow")
    if observed is not None:
        _require(observed, "flow")
    fig, axes = _grid(len(corridors))
    for ax, (o, d) in zip(axes, corridors):
        q = flows["flow"].sel(origin=o, destination=d)
        scale, unit = _unit(q)
        _band(ax, flows["year"], q / scale, "C0", "estimate")
        if truth is not None:
            ax.plot(truth["year"], truth["flow"].sel(origin=o, destination=d) / scale, "k--",
                    lw=0.8, label="truth")
        if observed is not None:
            ax.plot(observed["year"], observed["flow"].sel(origin=o, destination=d) / scale,
                    "o", color="C3", ms=2.5, label="reported")
        ax.set_title(f"{o} → {d}")
        ax.set_xlabel("year")
        ax.set_ylabel(f"migrants per year ({unit})")
    axes[0].legend(frameon=False)
    fig.suptitle(_title(flows, "annual flows by corridor (50% / 90% bands)"))
    return fig


def stock_series(stocks: xr.Dataset, pairs: list[tuple[str, str]], observed: xr.Dataset,
                 truth: xr.Dataset | None = None) -> plt.Figure:
    """Stocks by birthplace (birth, destination) over time with bands and observations."""
    _require(stocks, "stock")
    _require(observed, "stock")
    fig, axes = _grid(len(pairs))
    for ax, (b, d) in zip(axes, pairs):
        q = stocks["stock"].sel(birth=b, destination=d)
        scale, unit = _unit(q)
        _band(ax, stocks["stock_year"], q / scale, "C2", "estimate")
        if truth is not None:
            ax.plot(truth["stock_year"], truth["stock"].sel(birth=b, destination=d) / scale,
                    "k--", lw=0.8, label="truth")
        ax.plot(observed["census"], observed["stock"].sel(birth=b, destination=d) / scale, "o",
                color="C3", ms=3, label="observed")
        ax.set_title(f"born in {b}, living in {d}")
        ax.set_xlabel("year (1 January)")
        ax.set_ylabel(f"stock ({unit})")
    axes[0].legend(frameon=False)
    fig.suptitle(_title(stocks, "migrant stocks (1 January; 50% / 90% bands)"))
    return fig


def _census_stock_pairs(stocks: xr.Dataset, observed: xr.Dataset):
    """Median stock at the census years and the observed stock, foreign-born cells only."""
    census = observed["census"].values
    est = stocks["stock"].sel(quantile=0.5, stock_year=census, drop=True)
    est = est.rename(stock_year="census").transpose("census", "birth", "destination")
    obs = observed["stock"].transpose("census", "birth", "destination")
    foreign = ~np.eye(obs.sizes["birth"], dtype=bool)
    return est.where(foreign), obs.where(foreign)


def stock_errors(stocks: xr.Dataset, observed: xr.Dataset,
                 pairs: list[tuple[str, str]] | None = None) -> plt.Figure:
    """Relative error of the median stock against observed stocks at the census years.

    Left: the distribution over all observed foreign-born cells (birth != residence) of the
    signed relative error ``100 (median - observed) / observed`` per census year (boxes:
    quartiles; whiskers: 5-95%), with the median relative error (MRE, the paper's metric)
    as a line. Right (when ``pairs`` are given): the same error for chosen pairs.
    """
    _require(stocks, "stock")
    _require(observed, "stock")
    est, obs = _census_stock_pairs(stocks, observed)
    rel = 100.0 * (est - obs) / obs.where(obs > 0)
    census = observed["census"].values
    fig, axes = plt.subplots(1, 2 if pairs else 1, figsize=(DOUBLE if pairs else SINGLE * 1.3,
                                                              2.6),
                             squeeze=False, constrained_layout=True)
    ax = axes[0, 0]
    data = [v[np.isfinite(v)] for v in rel.values.reshape(len(census), -1)]
    width = 0.6 * float(np.min(np.diff(census))) if len(census) > 1 else 1.0
    ax.boxplot([d if d.size else [np.nan] for d in data], positions=census, widths=width,
               whis=(5, 95), showfliers=False, manage_ticks=False,
               medianprops={"color": "C2"})
    mre = [float(np.median(np.abs(d))) if d.size else np.nan for d in data]
    ax.plot(census, mre, "o-", color="C3", ms=3, lw=1, label="MRE (median |error|)")
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_xlabel("census year (1 January)")
    ax.set_ylabel("relative error of median (%)")
    ax.set_title("all observed foreign-born stocks")
    ax.legend(frameon=False)
    if pairs:
        ax = axes[0, 1]
        for n, (b, d) in enumerate(pairs):
            ax.plot(census, rel.sel(birth=b, destination=d), "o-", ms=3, lw=0.8,
                    color=f"C{n % 10}", label=f"{b} in {d}")
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_xlabel("census year (1 January)")
        ax.set_ylabel("relative error of median (%)")
        ax.set_title("chosen stocks")
        ax.legend(frameon=False, ncol=2, fontsize=6)
    fig.suptitle(_title(stocks, "stock errors: estimate (median) vs observed"))
    return fig


def net_migration_series(net: xr.Dataset, countries: list[str], observed: xr.Dataset,
                         truth: xr.Dataset | None = None) -> plt.Figure:
    """Annual net migration with bands against the observed series (and the truth).

    On real data the observed series is national statistics where available, else WPP.
    """
    _require(net, "net_migration")
    _require(observed, "net_migration")
    fig, axes = _grid(len(countries))
    for ax, c in zip(axes, countries):
        q = net["net_migration"].sel(country=c)
        scale, unit = _unit(q)
        _band(ax, net["year"], q / scale, "C1", "estimate")
        ax.plot(observed["year"], observed["net_migration"].sel(country=c) / scale, "o",
                color="C3", ms=2.5, label="observed")
        if truth is not None:
            ax.plot(truth["year"], truth["net_migration"].sel(country=c) / scale, "k--",
                    lw=0.8, label="truth")
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_title(c)
        ax.set_xlabel("year")
        ax.set_ylabel(f"net migration ({unit})")
    axes[0].legend(frameon=False)
    fig.suptitle(_title(net, "net migration (50% / 90% bands)"))
    return fig


# ------------------------------------------------------------------------- validation

def _scatter(ax, reference, estimate):
    """Log-log scatter coloured by relative error; returns the mappable (None if empty)."""
    x = np.asarray(reference, dtype=float).ravel()
    y = np.asarray(estimate, dtype=float).ravel()
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[keep], y[keep]
    rel = np.abs(y - x) / x
    sc = ax.scatter(x, y, c=np.clip(rel, 0, 2), s=3, cmap="viridis", vmin=0, vmax=2, lw=0,
                    rasterized=True)
    lims = [max(min(x.min(), y.min()), 1e-1), max(x.max(), y.max())] if x.size else [1, 10]
    ax.plot(lims, lims, "k-", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    return sc


def scatter_vs_reference(reference, estimate, title: str, xlabel: str = "reference",
                         ax=None, colorbar: bool = True) -> plt.Figure:
    """Log-log scatter of estimates against reference values, coloured by relative error."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(SINGLE, SINGLE))
    ax = ax if ax is not None else fig.add_subplot()
    sc = _scatter(ax, reference, estimate)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("estimate")
    ax.set_title(title)
    if colorbar:
        fig.colorbar(sc, ax=ax, label="relative error (clipped at 2)")
    return fig


def performance_scatter(stocks: xr.Dataset, flows: xr.Dataset,
                        observed: xr.Dataset) -> plt.Figure:
    """The paper's performance_2: estimates vs data for stocks, training and held-out flows.

    Stocks: median stock at the census years against observed foreign-born stocks (the
    native-born diagonal, which would push r to 1, is left out). Training flows: the
    ensemble median against every reported flow. Held-out flows: the median of the members
    that did not see a corridor against its reported flows. Titles give Pearson r and the
    median relative error (:func:`migflow.validation.scores`).
    """
    _require(stocks, "stock")
    _require(flows, "flow", "flow_heldout")
    _require(observed, "stock", "flow")
    est_s, obs_s = _census_stock_pairs(stocks, observed)
    dims = ("year", "origin", "destination")
    data = observed["flow"].transpose(*dims).values
    held = flows["flow_heldout"].sel(quantile=0.5).transpose(*dims).values
    panels = [("stocks", obs_s.values, est_s.values, "observed stock"),
              ("training flows", data, flows["flow"].sel(quantile=0.5).transpose(*dims).values,
               "reported flow"),
              ("held-out flows", np.where(np.isfinite(held), data, np.nan), held,
               "reported flow")]
    fig, axes = plt.subplots(1, 3, figsize=(DOUBLE, 2.7), constrained_layout=True)
    for ax, (name, ref, est, xlabel) in zip(axes, panels):
        s = validation.scores(ref, est)
        sc = _scatter(ax, ref, est)
        ax.set_title(f"{name}\nr = {s['pearson_r']:.2f}, MRE = "
                     f"{s['median_relative_error_pct']:.0f}%, n = {s['n']}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("estimate (median)")
    fig.colorbar(sc, ax=list(axes), label="relative error (clipped at 2)", shrink=0.8)
    fig.suptitle(_title(flows, "estimates against data"))
    return fig


METRIC_NAMES = {"pearson_r": "r", "pearson_r_log": "r (log)",
                "pearson_r_prop": "r (proportion)", "pearson_r_rate": "r (rate)",
                "median_relative_error_pct": "MRE %"}


def method_heatmap(table: pd.DataFrame, title: str) -> plt.Figure:
    """Heat-map table of scores (rows: estimates, columns: metrics), best per column bold.

    ``table`` is long (columns ``estimate``, ``metric``, ``value`` and optionally
    ``check``, e.g. rows of ``validation.csv``). Colours are ranks within each column
    (0 worst, 1 best), so metrics of different scales share one colour map; the numbers
    are the raw values. Metrics whose name contains "error" are better when lower; the
    count ``n`` is left out.
    """
    if not {"estimate", "metric", "value"} <= set(table.columns):
        raise KeyError("table needs columns estimate, metric and value (validation.csv)")
    table = table[table["metric"] != "n"].copy()
    label = table["metric"].map(lambda m: METRIC_NAMES.get(m, m))
    if "check" in table and table["check"].nunique() > 1:
        label = table["check"].astype(str) + ": " + label
    table["column"] = label
    wide = table.pivot_table(index="estimate", columns="column", values="value", sort=False)
    lower = np.array(["error" in c or "MRE" in c for c in wide.columns])
    score = wide * np.where(lower, -1.0, 1.0)
    span = (score.max() - score.min()).replace(0, 1.0)
    colour = (score - score.min()) / span
    fig, ax = plt.subplots(figsize=(1.6 + 1.0 * wide.shape[1], 0.7 + 0.3 * wide.shape[0]))
    sns.heatmap(colour, annot=wide.values, fmt=".2f", cmap="crest", cbar=False, ax=ax,
                vmin=0, vmax=1, annot_kws={"fontsize": 7})
    best = np.nanargmax(score.values, axis=0)
    for col, row in enumerate(best):
        ax.texts[row * wide.shape[1] + col].set_fontweight("bold")
    ax.set_xlabel("metric (bold: best; colour: rank within the column)")
    ax.set_ylabel("estimate")
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_title(title)
    return fig


def reliability_plot(reliab: pd.DataFrame, title: str) -> plt.Figure:
    """Empirical against nominal coverage of central intervals.

    ``reliab`` has columns ``nominal`` and ``empirical`` (:func:`migflow.validation.
    reliability`) and optionally ``estimate``, one line per value.
    """
    if not {"nominal", "empirical"} <= set(reliab.columns):
        raise KeyError("reliability table needs columns nominal and empirical")
    fig, ax = plt.subplots(figsize=(SINGLE * 0.9, SINGLE * 0.85))
    ax.plot([0, 1], [0, 1], "k-", lw=0.6, label="perfect calibration")
    groups = reliab.groupby("estimate", sort=False) if "estimate" in reliab else [
        ("estimate", reliab)]
    for name, part in groups:
        ax.plot(part["nominal"], part["empirical"], "o-", ms=3, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("empirical coverage")
    ax.set_title(title)
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    return fig


# ----------------------------------------------------------------------- elasticities

def elasticity_plot(elast: xr.Dataset) -> plt.Figure:
    """Mean ± std of the absolute elasticity per input column, on a log axis.

    ``elast`` is ``elasticities.nc`` (:func:`migflow.elasticities.elasticities`): dim
    ``column`` with ``mean`` and ``std`` (and ``median``, drawn as an open marker if
    present). On the log axis the lower end of a bar is clipped at 1% of the mean.
    """
    _require(elast, "mean", "std")
    order = np.argsort(elast["mean"].values)
    sub = elast.isel(column=order)
    mean, std = sub["mean"].values, sub["std"].values
    groups = sub["covariate"].values if "covariate" in sub.coords else sub["column"].values
    colours = region_palette(groups)
    y = np.arange(len(mean))
    fig, ax = plt.subplots(figsize=(SINGLE * 1.4, 0.6 + 0.16 * len(mean)))
    colour = [colours[g] for g in groups]
    ax.hlines(y, np.maximum(mean - std, 0.01 * mean), mean + std, colors=colour, lw=1)
    ax.scatter(mean, y, c=colour, s=10, zorder=3, label="mean ± std")
    if "median" in sub:
        ax.scatter(sub["median"].values, y, facecolors="none", edgecolors="0.3", marker="D",
                   s=8, lw=0.5, zorder=3, label="median")
    ax.set_xscale("log")
    ax.set_yticks(y, [str(c) for c in sub["column"].values], fontsize=6)
    ax.set_xlabel("|elasticity| = |x ∂log T / ∂x|")
    ax.set_ylabel("input column")
    ax.set_title(_title(elast, "covariate elasticities of the flows"))
    ax.legend(frameon=False, loc="lower right")
    return fig


# ------------------------------------------------------------------ chord diagram

CHORD_GAP = np.deg2rad(2.0)  # gap between sectors
RING = (1.0, 1.08)  # inner and outer radius of the region ring
DEST_RADIUS = 0.94  # chords end short of the ring at the destination: direction


def _arc(radius: float, a0: float, a1: float) -> np.ndarray:
    n = max(2, int(abs(a1 - a0) / 0.02) + 2)
    t = np.linspace(a0, a1, n)
    return radius * np.column_stack([np.cos(t), np.sin(t)])


def _chord_path(o: tuple[float, float], d: tuple[float, float]) -> mpath.Path:
    """Closed path of one chord: origin arc, Bezier through the centre, destination arc."""
    start, end = _arc(RING[0], *o), _arc(DEST_RADIUS, *d)
    verts = [*start, (0.0, 0.0), end[0], *end[1:], (0.0, 0.0), start[0], start[0]]
    codes = ([mpath.Path.MOVETO] + [mpath.Path.LINETO] * (len(start) - 1)
             + [mpath.Path.CURVE3] * 2 + [mpath.Path.LINETO] * (len(end) - 1)
             + [mpath.Path.CURVE3] * 2 + [mpath.Path.CLOSEPOLY])
    return mpath.Path(np.asarray(verts), codes)


def chord_layout(matrix: np.ndarray) -> tuple[np.ndarray, dict]:
    """Sector angles and chord end angles for a (from, to) flow matrix.

    Each region's sector is proportional to its outflow plus its inflow; within a sector
    the outflows come first (by destination), then the inflows (by origin).

    Returns
    -------
    sectors : numpy.ndarray
        (R, 2) start and end angle of each sector (radians).
    chords : dict
        ``(a, b) -> ((o0, o1), (d0, d1))``: the angles of the chord a -> b at its origin
        and at its destination, for every non-zero flow.
    """
    m = np.asarray(matrix, dtype=float)
    r = m.shape[0]
    size = m.sum(1) + m.sum(0)
    scale = (2 * np.pi - r * CHORD_GAP) / max(size.sum(), 1e-300)
    starts = np.pi / 2 - np.concatenate([[0.0], np.cumsum(size * scale + CHORD_GAP)[:-1]])
    sectors = np.column_stack([starts, starts - size * scale])  # clockwise from the top
    cursor = starts.copy()
    ends_out, ends_in = {}, {}
    for a in range(r):
        for b in range(r):
            ends_out[a, b] = (cursor[a], cursor[a] - m[a, b] * scale)
            cursor[a] -= m[a, b] * scale
    for b in range(r):
        for a in range(r):
            ends_in[a, b] = (cursor[b], cursor[b] - m[a, b] * scale)
            cursor[b] -= m[a, b] * scale
    chords = {k: (ends_out[k], ends_in[k]) for k in ends_out if m[k] > 0}
    return sectors, chords


def chord_diagram(flows: xr.Dataset, obs: xr.Dataset, years=None, within: bool = True,
                  min_share: float = 0.002) -> plt.Figure:
    """Circular plot of the flows between world regions over a period.

    Parameters
    ----------
    flows : xarray.Dataset
        ``flows.nc`` with ``flow_mean``: the chords are ensemble means (exact for sums).
    obs : xarray.Dataset
        Observations with the ``region`` coordinate on ``country``.
    years : sequence of int, optional
        Flow years summed (default: the last five).
    within : bool
        Draw flows between countries of the same region as loops.
    min_share : float
        Chords smaller than this share of the total are not drawn (they still count in
        the sector sizes).

    Notes
    -----
    Each region's sector on the ring is proportional to its emigration plus immigration.
    A chord leaves its origin sector at the ring and stops short of the ring at the
    destination; its width at either end is the flow; it has the origin's colour.
    """
    _require(flows, "flow_mean")
    years = list(flows["year"].values[-5:] if years is None else years)
    table = geography.regional_flows(flows["flow_mean"].sel(year=years).sum("year"),
                                     geography.regions_of(obs))
    names = [str(n) for n in table["from_region"].values]
    m = table.values.copy()
    if not within:
        np.fill_diagonal(m, 0.0)
    sectors, chords = chord_layout(m)
    colours = region_palette(names)
    fig, ax = plt.subplots(figsize=(SINGLE * 1.6, SINGLE * 1.6))
    for (a, b), (o, d) in sorted(chords.items(), key=lambda kv: -m[kv[0]]):
        if m[a, b] >= min_share * m.sum():
            ax.add_patch(mpatches.PathPatch(_chord_path(o, d), facecolor=colours[names[a]],
                                            edgecolor="none", alpha=0.6))
    scale, unit = _unit(m.sum(1) + m.sum(0))
    for name, (a0, a1), total in zip(names, sectors, m.sum(1) + m.sum(0)):
        ax.add_patch(mpatches.Wedge((0, 0), RING[1], np.rad2deg(a1), np.rad2deg(a0),
                                    width=RING[1] - RING[0], color=colours[name]))
        _sector_label(ax, f"{name} ({total / scale:,.1f})", (a0 + a1) / 2)
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.4, 1.4)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.suptitle(_title(flows, f"flows between regions, {years[0]}-{years[-1]}\n"
                               f"(ensemble means; sector = out + in, {unit})"))
    return fig


def _sector_label(ax, text: str, angle: float) -> None:
    """Horizontal label outside the ring, anchored on the side facing the circle."""
    x, y = np.cos(angle), np.sin(angle)
    ha = "left" if x > 0.2 else "right" if x < -0.2 else "center"
    va = "bottom" if y > 0.2 else "top" if y < -0.2 else "center"
    ax.text(1.13 * x, 1.13 * y, text.replace(" and ", " &\n", 1) if len(text) > 24 else text,
            fontsize=6, ha=ha, va=va)


# ------------------------------------------------------------------------------ maps

def _shape_patches(ax, shapes: dict) -> None:
    """Draw country outlines ({code: [[exterior, *holes], ...]}) as grey patches."""
    for polygons in shapes.values():
        for rings in polygons:
            verts, codes = [], []
            for ring in rings:
                verts += [*ring, ring[0]]
                codes += ([mpath.Path.MOVETO] + [mpath.Path.LINETO] * (len(ring) - 1)
                          + [mpath.Path.CLOSEPOLY])
            ax.add_patch(mpatches.PathPatch(mpath.Path(np.asarray(verts), codes),
                                            facecolor="0.88", edgecolor="white", lw=0.2))


def flow_map(flows: xr.Dataset, obs: xr.Dataset, positions: pd.DataFrame, years=None,
             top: int = 100, shapes: dict | None = None) -> plt.Figure:
    """Map of the largest corridor flows as curved arrows, width proportional to the flow.

    Parameters
    ----------
    flows : xarray.Dataset
        ``flows.nc`` with ``flow_mean`` (ensemble means).
    obs : xarray.Dataset
        Observations with the ``region`` coordinate (arrows have the origin's colour).
    positions : pandas.DataFrame
        Columns ``x`` and ``y`` by country code: longitude and latitude
        (:func:`migflow.geography.world_positions`) or plane km for the synthetic world
        (:func:`migflow.geography.positions_from_distance`). Countries without a
        position are left off.
    years : sequence of int, optional
        Years averaged (default: the last year).
    top : int
        Number of corridors drawn.
    shapes : dict, optional
        Country outlines (:func:`migflow.geography.world_shapes`); without them the
        countries are drawn as dots.
    """
    _require(flows, "flow_mean")
    years = list(flows["year"].values[-1:] if years is None else years)
    region = geography.regions_of(obs)
    mean = flows["flow_mean"].sel(year=years).mean("year")
    known = [c for c in mean["origin"].values.astype(str) if c in positions.index]
    series = mean.sel(origin=known, destination=known).to_series()
    series = series[series.index.get_level_values(0) != series.index.get_level_values(1)]
    biggest = series.sort_values(ascending=False, kind="stable").iloc[:top][::-1]
    colours = region_palette(region.values)
    geographic = shapes is not None
    fig, ax = plt.subplots(figsize=(DOUBLE, DOUBLE * (0.5 if geographic else 0.55)))
    if geographic:
        _shape_patches(ax, shapes)
    else:
        ax.scatter(positions["x"], positions["y"], s=8, zorder=2,
                   c=[colours[region[c]] for c in positions.index])
    peak = float(biggest.max()) if len(biggest) else 1.0
    for (o, d), value in biggest.items():
        ax.add_patch(mpatches.FancyArrowPatch(
            tuple(positions.loc[o]), tuple(positions.loc[d]), arrowstyle="-|>",
            connectionstyle="arc3,rad=0.25", mutation_scale=3 + 5 * value / peak,
            lw=0.3 + 2.5 * value / peak, color=colours[region[o]], alpha=0.75, zorder=3))
    _map_frame(ax, positions, geographic)
    handles = [mpatches.Patch(color=colours[r], label=r) for r in dict.fromkeys(region.values)]
    ax.legend(handles=handles, frameon=False, ncol=4, fontsize=6, loc="upper center",
              bbox_to_anchor=(0.5, -0.17), title="origin region", title_fontsize=6)
    period = f"{years[0]}" if len(years) == 1 else f"{years[0]}-{years[-1]} (annual mean)"
    ax.set_title(_title(flows, f"largest {len(biggest)} flows, {period}; width ∝ flow"))
    return fig


def _map_frame(ax, positions: pd.DataFrame, geographic: bool) -> None:
    ax.set_aspect("equal")
    if geographic:
        ax.set_xlim(-170, 190)
        ax.set_ylim(-58, 84)
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
    else:
        pad = 0.1 * float(np.ptp(positions.values)) + 1.0
        ax.set_xlim(positions["x"].min() - pad, positions["x"].max() + pad)
        ax.set_ylim(positions["y"].min() - pad, positions["y"].max() + pad)
        ax.set_xlabel("x (km; positions recovered from distances)")
        ax.set_ylabel("y (km)")


def net_migration_map(net: xr.Dataset, observed: xr.Dataset, shapes: dict) -> plt.Figure:
    """World map of the per-country Pearson r (over years) of median vs observed net migration.

    The paper's net_migration_corr map; countries with fewer than 3 observed years or
    without an outline are grey.
    """
    _require(net, "net_migration")
    _require(observed, "net_migration")
    est = net["net_migration"].sel(quantile=0.5).transpose("year", "country")
    ref = observed["net_migration"].transpose("year", "country")
    r = {str(c): validation.pearson(ref.sel(country=c).values, est.sel(country=c).values)
         for c in est["country"].values}
    fig, ax = plt.subplots(figsize=(DOUBLE, DOUBLE * 0.5))
    cmap, norm = matplotlib.colormaps["RdYlBu"], matplotlib.colors.Normalize(-1, 1)
    _shape_patches(ax, shapes)
    for patch, code in zip(ax.patches, _patch_codes(shapes)):
        value = r.get(code, np.nan)
        patch.set_facecolor(cmap(norm(value)) if np.isfinite(value) else "0.85")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.7,
                 label="Pearson r over years")
    _map_frame(ax, pd.DataFrame(columns=["x", "y"]), True)
    ax.set_title(_title(net, "net migration: correlation of estimate and observed series"))
    return fig


def _patch_codes(shapes: dict) -> list[str]:
    return [code for code, polygons in shapes.items() for _ in polygons]


def thumbnails(src: str | os.PathLike, dst: str | os.PathLike, width: int = 720
               ) -> list[Path]:
    """Reduced copies of every PNG in ``src`` written to ``dst`` (the README's gallery).

    Full-size figures are build products and stay out of git; these copies (128 colours,
    at most ``width`` pixels wide, about 20 KiB each) are small enough to commit.
    """
    from PIL import Image

    src, dst = Path(src), Path(dst)
    pngs = sorted(src.glob("*.png"))
    if not pngs:
        raise FileNotFoundError(f"no PNG figures in {src}: run `make figures` first")
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for png in pngs:
        image = Image.open(png)
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)),
                                 Image.LANCZOS)
        image.convert("P", palette=Image.ADAPTIVE, colors=128).save(dst / png.name,
                                                                    optimize=True)
        written.append(dst / png.name)
    log.info("wrote %d thumbnails to %s", len(written), dst)
    return written
