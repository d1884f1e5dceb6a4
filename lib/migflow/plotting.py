"""One function per figure, each taking datasets and returning a matplotlib Figure.

All figures share one theme (:func:`set_style`) and are saved as PDF and PNG by
:func:`save` with fixed metadata, so reruns on the same inputs give the same bytes.
Every title says whether the data are SYNTHETIC or REAL.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402

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
        ax.set_xlabel("")
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
    ax.set_ylabel("foreign-born (millions)")
    ax.set_title(f"{source_label(obs)} world migrant stock")
    ax.legend(frameon=False)
    return fig


def global_flows(flows: xr.Dataset, truth: xr.Dataset | None = None) -> plt.Figure:
    """Global total annual flow with its 50% and 90% bands (and the truth if known)."""
    _require(flows, "total_flow")
    fig, ax = plt.subplots(figsize=(SINGLE * 1.3, 2.5))
    _band(ax, flows["year"], flows["total_flow"] / 1e6, "C0", "estimate (median)")
    if truth is not None:
        ax.plot(truth["year"], truth["flow"].sum(("origin", "destination")) / 1e6, "k--",
                lw=1, label="truth")
    ax.set_ylabel("migrants per year (millions)")
    ax.set_xlabel("year")
    ax.set_title(f"{source_label(flows)} global annual migration (50% / 90% bands)")
    ax.legend(frameon=False)
    return fig


def scatter_vs_reference(reference, estimate, title: str, xlabel: str = "reference",
                         ax=None) -> plt.Figure:
    """Log-log scatter of estimates against reference values, coloured by relative error."""
    x = np.asarray(reference, dtype=float).ravel()
    y = np.asarray(estimate, dtype=float).ravel()
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[keep], y[keep]
    fig = ax.figure if ax is not None else plt.figure(figsize=(SINGLE, SINGLE))
    ax = ax if ax is not None else fig.add_subplot()
    rel = np.abs(y - x) / x
    sc = ax.scatter(x, y, c=np.clip(rel, 0, 2), s=3, cmap="viridis", lw=0, rasterized=True)
    lims = [max(min(x.min(), y.min()), 1e-1), max(x.max(), y.max())] if x.size else [1, 10]
    ax.plot(lims, lims, "k-", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("estimate")
    ax.set_title(title)
    fig.colorbar(sc, ax=ax, label="relative error (clipped at 2)")
    return fig


def corridor_series(flows: xr.Dataset, corridors: list[tuple[str, str]],
                    observed: xr.Dataset | None = None,
                    truth: xr.Dataset | None = None) -> plt.Figure:
    """Annual flows with bands for chosen (origin, destination) corridors."""
    _require(flows, "flow")
    ncol = min(3, len(corridors))
    nrow = int(np.ceil(len(corridors) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(DOUBLE, 2.0 * nrow), squeeze=False,
                             constrained_layout=True)
    for ax, (o, d) in zip(axes.flat, corridors):
        _band(ax, flows["year"], flows["flow"].sel(origin=o, destination=d), "C0", "estimate")
        if truth is not None:
            ax.plot(truth["year"], truth["flow"].sel(origin=o, destination=d), "k--", lw=0.8,
                    label="truth")
        if observed is not None:
            ax.plot(observed["year"], observed["flow"].sel(origin=o, destination=d), "o",
                    color="C3", ms=2.5, label="reported")
        ax.set_title(f"{o} → {d}")
    for ax in axes.flat[len(corridors):]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=False)
    fig.suptitle(f"{source_label(flows)} annual flows by corridor")
    return fig


def stock_series(stocks: xr.Dataset, pairs: list[tuple[str, str]], observed: xr.Dataset,
                 truth: xr.Dataset | None = None) -> plt.Figure:
    """Stocks by birthplace (birth, destination) over time with bands and observations."""
    _require(stocks, "stock")
    _require(observed, "stock")
    ncol = min(3, len(pairs))
    nrow = int(np.ceil(len(pairs) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(DOUBLE, 2.0 * nrow), squeeze=False,
                             constrained_layout=True)
    for ax, (b, d) in zip(axes.flat, pairs):
        _band(ax, stocks["stock_year"], stocks["stock"].sel(birth=b, destination=d), "C2",
              "estimate")
        if truth is not None:
            ax.plot(truth["stock_year"], truth["stock"].sel(birth=b, destination=d), "k--",
                    lw=0.8, label="truth")
        ax.plot(observed["census"], observed["stock"].sel(birth=b, destination=d), "o",
                color="C3", ms=3, label="observed")
        ax.set_title(f"born in {b}, living in {d}")
    for ax in axes.flat[len(pairs):]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=False)
    fig.suptitle(f"{source_label(stocks)} migrant stocks (1 January)")
    return fig


def net_migration_series(net: xr.Dataset, countries: list[str], observed: xr.Dataset,
                         truth: xr.Dataset | None = None) -> plt.Figure:
    """Annual net migration with bands against the observed series (and the truth)."""
    _require(net, "net_migration")
    _require(observed, "net_migration")
    ncol = min(3, len(countries))
    nrow = int(np.ceil(len(countries) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(DOUBLE, 2.0 * nrow), squeeze=False,
                             constrained_layout=True)
    for ax, c in zip(axes.flat, countries):
        _band(ax, net["year"], net["net_migration"].sel(country=c) / 1e3, "C1", "estimate")
        ax.plot(observed["year"], observed["net_migration"].sel(country=c) / 1e3, "o",
                color="C3", ms=2.5, label="observed")
        if truth is not None:
            ax.plot(truth["year"], truth["net_migration"].sel(country=c) / 1e3, "k--", lw=0.8,
                    label="truth")
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_title(c)
        ax.set_ylabel("thousands")
    for ax in axes.flat[len(countries):]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=False)
    fig.suptitle(f"{source_label(net)} net migration")
    return fig


def method_heatmap(table: pd.DataFrame, title: str) -> plt.Figure:
    """Heat-map table of scores (rows: estimates, columns: metrics), best per column bold."""
    if not {"estimate", "metric", "value"} <= set(table.columns):
        raise KeyError("table needs columns estimate, metric and value (validation.csv)")
    wide = table.pivot_table(index="estimate", columns="metric", values="value", sort=False)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * wide.shape[1], 0.5 + 0.32 * wide.shape[0]))
    sns.heatmap(wide, annot=True, fmt=".2f", cmap="crest", cbar=False, ax=ax,
                annot_kws={"fontsize": 7})
    best = wide.values.argmax(axis=0)
    for col, row in enumerate(best):
        ax.texts[row * wide.shape[1] + col].set_fontweight("bold")
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_title(title)
    return fig


def reliability_plot(reliab: pd.DataFrame, title: str) -> plt.Figure:
    """Empirical against nominal coverage of central intervals."""
    if not {"nominal", "empirical"} <= set(reliab.columns):
        raise KeyError("reliability table needs columns nominal and empirical")
    fig, ax = plt.subplots(figsize=(SINGLE * 0.9, SINGLE * 0.85))
    ax.plot([0, 1], [0, 1], "k-", lw=0.6, label="perfect calibration")
    ax.plot(reliab["nominal"], reliab["empirical"], "o-", label="estimate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("empirical coverage")
    ax.set_title(title)
    ax.legend(frameon=False)
    return fig
