"""Figures of the cross-validation tables of :mod:`migflow.crossval`.

- :func:`crossval_summary`: pooled and per-fold scores of every split, train vs test.
- :func:`crossval_violins`: per-corridor Pearson r over time, train vs test, by split
  (the paper's violin plots, performance_comparison_3 (a)).

Both take the tables as written by :func:`migflow.crossval.run_crossval` (or several
splits' tables concatenated by :func:`migflow.crossval.load_tables`), use the project's
theme (:func:`migflow.plotting.set_style`) and say SYNTHETIC or REAL in their titles; save
them with :func:`migflow.plotting.save`.
"""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402

from .crossval import POOLED, REFERENCES, SUBSETS  # noqa: E402
from .plotting import DOUBLE, source_label  # noqa: E402
from .splits import SPLITS  # noqa: E402

log = logging.getLogger(__name__)

METRIC_LABELS = {"pearson_r": "Pearson r", "pearson_r_log": "Pearson r, log(1 + x)",
                 "median_relative_error_pct": "median relative error (%)"}
SPLIT_LABELS = {"random": "random\ncorridors", "kfold": "K-fold\ncorridors",
                "country": "held-out\ncountries", "years": "trailing\nyears"}


def _label(table: pd.DataFrame) -> str:
    sources = sorted(set(table["data_source"].astype(str))) if len(table) else ["unknown"]
    labels = {source_label(xr.Dataset(attrs={"data_source": s})) for s in sources}
    return "/".join(sorted(labels))


def _require_columns(table: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise KeyError(f"table lacks columns {missing}; it has {list(table.columns)}")
    if table.empty:
        raise ValueError("the table is empty: no cross-validation results to plot")


def _splits_in(table: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(table["split"].astype(str)))
    return [s for s in SPLITS if s in present] + [s for s in present if s not in SPLITS]


def _references_in(table: pd.DataFrame, references) -> list[str]:
    present = set(table["reference"])
    wanted = references if references is not None else REFERENCES
    return [r for r in wanted if r in present]


def _summary_panel(ax, part: pd.DataFrame, splits: list[str], colors: dict) -> None:
    for i, split in enumerate(splits):
        for j, subset in enumerate(SUBSETS):
            x = i + (j - 0.5) * 0.3
            rows = part[(part["split"] == split) & (part["subset"] == subset)]
            folds = rows[rows["fold"] != POOLED]["value"].to_numpy(dtype=float)
            pooled = rows[rows["fold"] == POOLED]["value"].to_numpy(dtype=float)
            ax.plot(np.full(folds.size, x), folds, "o", ms=2.5, alpha=0.6,
                    color=colors[subset])
            if pooled.size:
                ax.plot([x - 0.1, x + 0.1], [pooled[0]] * 2, "-", lw=2.2, color=colors[subset],
                        label=subset if i == 0 else None)
    ax.set_xticks(range(len(splits)), [SPLIT_LABELS.get(s, s) for s in splits])
    ax.set_xlim(-0.6, len(splits) - 0.4)


def crossval_summary(table: pd.DataFrame,
                     metrics=("pearson_r", "pearson_r_log", "median_relative_error_pct"),
                     references=None) -> plt.Figure:
    """Scores of every split, train vs test: pooled over folds (bars) and per fold (dots).

    Parameters
    ----------
    table : pandas.DataFrame
        Columns of :data:`migflow.crossval.COLUMNS`, one or several splits.
    metrics : sequence of str
        Metrics, one column of panels each.
    references : sequence of str, optional
        References, one row of panels each (default: those in the table, in the order of
        :data:`migflow.crossval.REFERENCES`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _require_columns(table, ["split", "fold", "data_source", "reference", "subset", "metric",
                             "value"])
    refs = _references_in(table, references)
    splits = _splits_in(table)
    colors = dict(zip(SUBSETS, sns.color_palette("colorblind", 2)))
    fig, axes = plt.subplots(len(refs), len(metrics), squeeze=False, sharex=True,
                             figsize=(DOUBLE, 1.9 * len(refs) + 0.6), constrained_layout=True)
    for r, ref in enumerate(refs):
        for m, metric in enumerate(metrics):
            ax = axes[r, m]
            part = table[(table["reference"] == ref) & (table["metric"] == metric)]
            if r == 0:
                ax.set_title(METRIC_LABELS.get(metric, metric))
            if m == 0:
                ax.set_ylabel(f"against {ref}")
            if part.empty:
                ax.text(0.5, 0.5, "not defined", transform=ax.transAxes, ha="center",
                        color="0.5")
                ax.set_yticks([])
                continue
            _summary_panel(ax, part, splits, colors)
            if metric.startswith("pearson"):
                ax.axhline(0, color="0.6", lw=0.5)
    axes[0, 0].legend(frameon=False, title="points")
    fig.suptitle(f"{_label(table)}: cross-validation, pooled over folds (bars) and per "
                 "fold (dots)")
    return fig


def crossval_violins(corridors: pd.DataFrame, references=None) -> plt.Figure:
    """Per-corridor Pearson r over time, train (left) vs test (right half), by split.

    Parameters
    ----------
    corridors : pandas.DataFrame
        Columns of :data:`migflow.crossval.CORRIDOR_COLUMNS` (one or several splits), as
        returned by :func:`migflow.crossval.corridor_correlations`.
    references : sequence of str, optional
        One panel per reference (default: those in the table).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _require_columns(corridors, ["split", "data_source", "reference", "subset", "pearson_r"])
    refs = _references_in(corridors, references)
    splits = _splits_in(corridors)
    fig, axes = plt.subplots(1, len(refs), squeeze=False, sharey=True,
                             figsize=(DOUBLE, 2.8), constrained_layout=True)
    for ax, ref in zip(axes[0], refs):
        part = corridors[corridors["reference"] == ref]
        sns.violinplot(data=part, x="split", y="pearson_r", hue="subset", order=splits,
                       hue_order=list(SUBSETS), split=True, cut=0, inner="quart",
                       density_norm="width", linewidth=0.6, ax=ax)
        ax.set_xticks(range(len(splits)), [SPLIT_LABELS.get(s, s) for s in splits])
        ax.set(xlabel="", ylabel="per-corridor Pearson r over time", ylim=(-1.05, 1.05),
               title=f"against {ref}")
        ax.axhline(0, color="0.6", lw=0.5)
        if ax is not axes[0, 0] and ax.get_legend() is not None:
            ax.get_legend().remove()
    legend = axes[0, 0].get_legend()
    if legend is not None:
        legend.set_frame_on(False)
    fig.suptitle(f"{_label(corridors)}: per-corridor correlation over time, train vs test")
    return fig
