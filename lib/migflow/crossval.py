"""Cross-validation: train one network per fold of a split and score it on what it missed.

The paper checks generalisation on one random fifth of the flow corridors (paper.md 6.1);
its journal version reportedly uses five-fold cross-validation over corridors. Here any
split of :mod:`migflow.splits` can be used: ``random`` (the paper's), ``kfold`` (every
corridor tested once), ``country`` (whole countries held out) and ``years`` (the last
years with flow data held out). A fold hides its test entries by a transformation of the
dataset (:func:`migflow.splits.apply_split`), trains on the rest, and predicts from the
same hidden dataset, so no test value reaches the network, its scalings or its edges.

Folds are independent tasks, run like the ensemble's members
(:func:`migflow.ensemble.train_members`): by default on a ``dask.distributed``
``LocalCluster`` on a CPU and serially on a GPU (:func:`migflow.tasks.default_scheduler`),
or on an existing cluster (its address, or ``$DASK_SCHEDULER``). A fold's run folder is
reused when it holds a network with the same configuration and the same split
(``split.nc`` stores the masks).

Scores go into one tidy table (:data:`COLUMNS`): per fold and pooled over folds, on the
training and the test entries, against the reported flows, the observed net migration
and stocks, and (synthetic world) the true flows on the whole held-out unit, observed or
not. :func:`corridor_correlations` gives the per-corridor Pearson r over time behind the
paper's violin plots. Run ``python -m migflow.crossval --help`` for the command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import paths, tasks
from .config import PRESETS, RunConfig
from .ensemble import Prediction, git_commit, predict
from .splits import (SPLITS, Split, apply_split, census_index, load_split, make_splits,
                     save_split)
from .training import Run, train
from .validation import scores

log = logging.getLogger(__name__)

COLUMNS = ["split", "fold", "data_source", "reference", "subset", "metric", "value"]
CORRIDOR_COLUMNS = ["split", "fold", "data_source", "reference", "subset", "origin",
                    "destination", "n_years", "pearson_r"]
REFERENCES = ("reported flows", "truth", "net migration", "stocks")
SUBSETS = ("train", "test")
POOLED = "pooled"
SIGNED_REFERENCES = ("net migration",)  # no log correlation for signed quantities


# ------------------------------------------------------------------ training the folds

def fold_dir(runs_dir: str | os.PathLike, split: str, fold: int) -> Path:
    """Run folder of one fold: ``<runs_dir>/crossval_<split>/fold_<fold>``."""
    return Path(runs_dir) / f"crossval_{split}" / f"fold_{fold:02d}"


def _reusable(run_dir: Path, config: RunConfig, split: Split) -> bool:
    """True when ``run_dir`` holds a finished network of ``config`` trained on ``split``."""
    if not (run_dir / "model.pt").exists() or not (run_dir / "split.nc").exists():
        return False
    if not load_split(run_dir / "split.nc").same_as(split):
        return False
    return Run.load(run_dir, device=config.device).config == config


def _clear_other_split(run_dir: Path, split: Split) -> None:
    """Remove a run folder written for another split (its checkpoint must not resume)."""
    if (run_dir / "split.nc").exists() and not load_split(run_dir / "split.nc").same_as(split):
        log.warning("%s holds a network of another split; training afresh", run_dir)
        shutil.rmtree(run_dir)


def train_fold(ds: xr.Dataset | str | os.PathLike, config: RunConfig, split: Split,
               run_dir: str | os.PathLike, progress: bool = True,
               threads: int | None = None) -> Run:
    """Train (or reload) the network of one fold.

    Parameters
    ----------
    ds : xarray.Dataset or path
        The full observations (a path to an observations file also works); the fold's
        test entries are hidden here.
    config : RunConfig
        Network and training settings (the same for every fold).
    split : Split
        The fold.
    run_dir : path
        The fold's run folder; gets ``split.nc`` besides the usual run files.
    progress : bool
        Show the epoch progress bar.
    threads : int, optional
        Torch intra-op threads while training (the same count gives the same weights
        wherever the fold runs); None leaves the setting alone.

    Returns
    -------
    Run
    """
    if not isinstance(ds, xr.Dataset):
        ds = xr.load_dataset(ds)
    run_dir = Path(run_dir)
    with tasks.torch_threads(threads):
        if _reusable(run_dir, config, split):
            log.info("%s fold %d: reusing %s", split.name, split.fold, run_dir)
            return Run.load(run_dir, device=config.device)
        _clear_other_split(run_dir, split)
        save_split(split, ds, run_dir / "split.nc")
        heldout = np.zeros((ds.sizes["origin"], ds.sizes["destination"]), dtype=bool)
        return train(apply_split(ds, split), config, run_dir=run_dir, heldout=heldout,
                     progress=progress)


def _train_fold_task(ds, config: RunConfig, split: Split, threads: int, run_dir: str) -> str:
    """What a Dask worker runs: train one fold into ``run_dir`` (returned)."""
    train_fold(ds, config, split, run_dir, progress=False, threads=threads)
    return run_dir


def train_folds(ds: xr.Dataset, config: RunConfig, splits: list[Split], dirs: list[Path],
                progress: bool = True, scheduler: str | None = None,
                threads: int | None = 1) -> list[Run]:
    """Train the folds serially or as tasks on a ``dask.distributed`` cluster.

    Parameters
    ----------
    ds : xarray.Dataset
        The full observations.
    config : RunConfig
        Settings shared by every fold.
    splits : list of Split
        The folds.
    dirs : list of Path
        One run folder per fold.
    progress : bool
        Show progress bars (one per fold).
    scheduler : str, optional
        ``"serial"``: in this process; ``"local"``: a ``LocalCluster`` with one
        single-threaded worker per core (at most one per fold); otherwise the address of
        a running scheduler (see :mod:`migflow.tasks`). None reads ``$DASK_SCHEDULER``
        and otherwise uses ``"local"`` on the CPU and ``"serial"`` on a GPU.
    threads : int, optional
        Torch threads per fold (default 1: the per-edge tensors are small, and on a busy
        machine more threads make an epoch many times slower); None leaves torch's
        setting alone in this process, and Dask workers then use 1.

    Returns
    -------
    list of Run
        Reloaded from ``dirs``, so they do not depend on where the folds ran.
    """
    scheduler = tasks.resolve_scheduler(scheduler, tasks.default_scheduler(config.device))
    todo = [f for f, (s, d) in enumerate(zip(splits, dirs)) if not _reusable(d, config, s)]
    if todo and not tasks.is_serial(scheduler):
        for f in todo:
            _clear_other_split(dirs[f], splits[f])
        per_task = tasks.task_threads(scheduler, len(todo), threads)
        tasks.run_tasks(_train_fold_task, ds, [(config, splits[f], per_task) for f in todo],
                        [dirs[f] for f in todo],
                        [f"{splits[f].name} fold {splits[f].fold}" for f in todo],
                        config.epochs, scheduler, progress)
    return [train_fold(ds, config, s, d, progress, threads) for s, d in zip(splits, dirs)]


# ------------------------------------------------------------------ scoring

def _offdiag(n: int) -> np.ndarray:
    return ~np.eye(n, dtype=bool)


def _flows(ds: xr.Dataset) -> np.ndarray:
    return ds["flow"].transpose("year", "origin", "destination").values


def _flow_subsets(ds: xr.Dataset, truth: xr.Dataset | None, split: Split) -> dict:
    """(reference, subset) -> (reference flows (Y, N, N), mask) of one fold."""
    data = _flows(ds)
    out = {("reported flows", "train"): (data, np.isfinite(data) & ~split.flow_test),
           ("reported flows", "test"): (data, split.flow_test)}
    if truth is not None:
        offdiag = np.broadcast_to(_offdiag(data.shape[-1]), data.shape)
        out[("truth", "train")] = (_flows(truth), offdiag & ~split.flow_region)
        out[("truth", "test")] = (_flows(truth), split.flow_region)
    return out


def _net_subsets(ds: xr.Dataset, split: Split) -> dict:
    net = ds["net_migration"].transpose("year", "country").values
    test = split.net_test if split.net_test is not None else np.zeros(net.shape, bool)
    return {("net migration", "train"): (net, np.isfinite(net) & ~test),
            ("net migration", "test"): (net, test)}


def _stock_subsets(ds: xr.Dataset, split: Split) -> dict:
    """Foreign-born stocks after the first census (that one is the initial condition)."""
    stock = ds["stock"].transpose("census", "birth", "destination").values
    test = split.stock_test if split.stock_test is not None else np.zeros(stock.shape, bool)
    foreign = np.broadcast_to(_offdiag(stock.shape[-1]), stock.shape).copy()
    foreign[0] = False
    return {("stocks", "train"): (stock, foreign & ~test),
            ("stocks", "test"): (stock, foreign & test)}


def fold_pairs(ds: xr.Dataset, truth: xr.Dataset | None, split: Split, pred: Prediction
               ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(reference, subset) -> (reference values, estimates) of one fold, as 1-D arrays.

    ``train`` are the entries the fold's network saw, ``test`` the hidden ones. Against
    the truth, ``test`` is the whole held-out unit (``split.flow_region``, observed or
    not) and ``train`` every other off-diagonal cell. Stocks leave out the first census
    (the initial condition) and the native-born diagonal. Empty subsets are left out.
    """
    estimates = {"reported flows": pred.flows, "truth": pred.flows,
                 "net migration": pred.net_migration,
                 "stocks": pred.stocks[census_index(ds)]}
    subsets = {**_flow_subsets(ds, truth, split), **_net_subsets(ds, split),
               **_stock_subsets(ds, split)}
    pairs = {}
    for (reference, subset), (values, mask) in subsets.items():
        mask = mask & np.isfinite(values)
        if mask.any():
            pairs[reference, subset] = (values[mask], estimates[reference][mask])
    return pairs


def _rows(split: str, fold: str, source: str, reference: str, subset: str,
          data: np.ndarray, estimate: np.ndarray) -> list[dict]:
    metrics = scores(data, estimate)
    if reference in SIGNED_REFERENCES:
        metrics.pop("pearson_r_log")
    return [{"split": split, "fold": fold, "data_source": source, "reference": reference,
             "subset": subset, "metric": m, "value": float(v)} for m, v in metrics.items()]


def score_table(ds: xr.Dataset, truth: xr.Dataset | None, splits: list[Split],
                preds: list[Prediction]) -> pd.DataFrame:
    """The tidy table (:data:`COLUMNS`) of every fold and of all folds pooled.

    Pooled scores concatenate the pairs of every fold: with K corridor folds each reported
    flow is a test point once and a training point K - 1 times.
    """
    source = ds.attrs.get("data_source", "unknown")
    rows, pooled = [], {}
    for split, pred in zip(splits, preds):
        for key, (data, estimate) in fold_pairs(ds, truth, split, pred).items():
            rows += _rows(split.name, str(split.fold), source, *key, data, estimate)
            pooled.setdefault(key, []).append((data, estimate))
    for key, parts in pooled.items():
        data, estimate = (np.concatenate(p) for p in zip(*parts))
        rows += _rows(splits[0].name, POOLED, source, *key, data, estimate)
    return _order(pd.DataFrame(rows, columns=COLUMNS))


def _order(table: pd.DataFrame) -> pd.DataFrame:
    ref = {r: i for i, r in enumerate(REFERENCES)}
    sub = {s: i for i, s in enumerate(SUBSETS)}
    keys = table.assign(_f=table["fold"] == POOLED,
                        _k=pd.to_numeric(table["fold"], errors="coerce"),
                        _r=table["reference"].map(ref), _s=table["subset"].map(sub))
    keys = keys.sort_values(["_f", "_k", "_r", "_s"], kind="stable")
    return table.loc[keys.index].reset_index(drop=True)


def _pearson_over_time(x: np.ndarray, y: np.ndarray, mask: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per column of (T, M) arrays: Pearson r over the masked rows and their number."""
    w = mask.astype(np.float64)
    n = w.sum(axis=0)
    safe = np.maximum(n, 1.0)
    xm = (np.where(mask, x, 0.0)).sum(axis=0) / safe
    ym = (np.where(mask, y, 0.0)).sum(axis=0) / safe
    dx, dy = np.where(mask, x - xm, 0.0), np.where(mask, y - ym, 0.0)
    sxx, syy, sxy = (dx * dx).sum(0), (dy * dy).sum(0), (dx * dy).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    r[(sxx <= 0) | (syy <= 0)] = np.nan
    return r, n.astype(int)


def _corridor_rows(values, estimate, mask, min_years, codes, keys: dict) -> pd.DataFrame:
    n = values.shape[-1]
    flat = (values.reshape(len(values), -1), estimate.reshape(len(estimate), -1),
            (mask & np.isfinite(values)).reshape(len(values), -1))
    r, count = _pearson_over_time(*flat)
    keep = (count >= min_years) & np.isfinite(r)
    origin, destination = np.unravel_index(np.flatnonzero(keep), (n, n))
    return pd.DataFrame({**keys, "origin": codes[origin], "destination": codes[destination],
                         "n_years": count[keep], "pearson_r": r[keep]})


def corridor_correlations(ds: xr.Dataset, truth: xr.Dataset | None, splits: list[Split],
                          preds: list[Prediction], min_years: int = 3) -> pd.DataFrame:
    """Per-corridor Pearson r over time, train vs test, for every fold (the paper's violins).

    Parameters
    ----------
    ds, truth : xarray.Dataset
        Observations, and the truth (None for real data).
    splits, preds : list
        The folds and their predictions.
    min_years : int
        A corridor needs at least this many years in a subset to get an r there.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CORRIDOR_COLUMNS`. Against the reported flows, a corridor's
        ``train`` years are its observed years the network saw, its ``test`` years the
        hidden ones; against the truth, ``test`` is every year of the held-out unit and
        ``train`` every year outside it.
    """
    source = ds.attrs.get("data_source", "unknown")
    codes = ds["country"].values.astype(str)
    frames = []
    for split, pred in zip(splits, preds):
        keys = {"split": split.name, "fold": str(split.fold), "data_source": source}
        for (reference, subset), (values, mask) in _flow_subsets(ds, truth, split).items():
            frames.append(_corridor_rows(values, pred.flows, mask, min_years, codes,
                                         {**keys, "reference": reference, "subset": subset}))
    return pd.concat(frames, ignore_index=True)[CORRIDOR_COLUMNS]


# ------------------------------------------------------------------ the driver

def output_paths(out_dir: str | os.PathLike, split: str) -> dict[str, Path]:
    """Files written by :func:`run_crossval` for ``split`` in ``out_dir``."""
    out_dir = Path(out_dir)
    return {"table": out_dir / f"crossval_{split}.csv",
            "netcdf": out_dir / f"crossval_{split}.nc",
            "corridors": out_dir / f"crossval_{split}_corridors.csv"}


def _attrs(ds: xr.Dataset, config: RunConfig, splits: list[Split], seed: int) -> dict:
    source = ds.attrs.get("data_source", "unknown")
    prefix = "SYNTHETIC world: " if source == "synthetic" else ""
    return {"title": f"{prefix}cross-validation, split {splits[0].name!r}, "
                     f"{len(splits)} fold(s)",
            "source": f"migflow.crossval, git commit {git_commit()}",
            "references": "Gaskin & Abel (2025), arXiv:2506.22821, section 6.1",
            "data_source": source, "split": splits[0].name, "folds": len(splits),
            "split_seed": seed,
            "fold_descriptions": "; ".join(f"{s.fold}: {s.description}" for s in splits),
            "run_config": config.to_json()}


def _write_table(table: pd.DataFrame, attrs: dict, files: dict[str, Path]) -> None:
    for key, path in files.items():
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        if key == "netcdf":
            out = xr.Dataset.from_dataframe(table.rename_axis("row"))
            for col in table.columns:
                if table[col].dtype == object:
                    out[col] = out[col].astype(str)
            out.attrs.update(attrs)
            out.to_netcdf(tmp, engine="h5netcdf")
        else:
            table.to_csv(tmp, index=False)
        os.replace(tmp, path)
        log.info("wrote %s", path)


def run_crossval(ds: xr.Dataset, truth: xr.Dataset | None, config: RunConfig,
                 split: str = "kfold", folds: int = 5, seed: int = 0, *,
                 runs_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 scheduler: str | None = None, progress: bool = True,
                 threads: int | None = 1, frac: float = 0.2, years: int = 5,
                 hide_stocks_net: bool = False) -> dict[str, Path]:
    """Cross-validate ``config`` on ``ds`` with the split ``split``; write the tables.

    Parameters
    ----------
    ds : xarray.Dataset
        Observations.
    truth : xarray.Dataset or None
        The truth of the synthetic world (None for real data).
    config : RunConfig
        Settings of every fold's network (``config.seed`` seeds all of them, so folds
        differ only by what they hide; ``config.test_frac`` is not used).
    split : str
        One of :data:`migflow.splits.SPLITS`.
    folds : int
        Folds of the ``kfold`` and ``country`` splits (``random`` and ``years`` have one).
    seed : int
        Seed of the split.
    runs_dir : path
        Fold run folders go to ``<runs_dir>/crossval_<split>/fold_<k>``.
    out_dir : path
        Where ``crossval_<split>.csv``, ``.nc`` and ``crossval_<split>_corridors.csv`` go.
    scheduler : str, optional
        Where folds train, see :func:`train_folds`.
    progress : bool
        Progress bars.
    threads : int, optional
        Torch threads per fold while training and predicting (see :func:`train_folds`).
    frac, years, hide_stocks_net
        Options of :func:`migflow.splits.make_splits`.

    Returns
    -------
    dict of str to Path
        The written files (``table``, ``netcdf``, ``corridors``).
    """
    splits = make_splits(ds, split, folds=folds, seed=seed, frac=frac, years=years,
                         hide_stocks_net=hide_stocks_net)
    dirs = [fold_dir(runs_dir, split, s.fold) for s in splits]
    runs = train_folds(ds, config, splits, dirs, progress=progress, scheduler=scheduler,
                       threads=threads)
    with tasks.torch_threads(threads):
        preds = [predict(run, apply_split(ds, s)) for run, s in zip(runs, splits)]
    table = score_table(ds, truth, splits, preds)
    corridors = corridor_correlations(ds, truth, splits, preds)
    files = output_paths(out_dir, split)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    attrs = _attrs(ds, config, splits, seed)
    _write_table(table, attrs, {k: files[k] for k in ("table", "netcdf")})
    _write_table(corridors, attrs, {"corridors": files["corridors"]})
    _log_summary(table)
    return files


def _log_summary(table: pd.DataFrame) -> None:
    pooled = table[(table["fold"] == POOLED) & (table["metric"] == "pearson_r")]
    for row in pooled.itertuples():
        log.info("%s %s %s: pooled r = %.3f", row.split, row.reference, row.subset, row.value)


# ------------------------------------------------------------------ reading results

def load_tables(out_dir: str | os.PathLike, splits=SPLITS, corridors: bool = False
                ) -> pd.DataFrame:
    """Concatenate the score (or corridor) tables of the ``splits`` found in ``out_dir``."""
    key = "corridors" if corridors else "table"
    frames = []
    for split in splits:
        path = output_paths(out_dir, split)[key]
        if path.exists():
            frames.append(pd.read_csv(path, dtype={"fold": str}))
        else:
            log.info("%s not found; run `make crossval SPLIT=%s`", path.name, split)
    columns = CORRIDOR_COLUMNS if corridors else COLUMNS
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def pooled_summary(table: pd.DataFrame, metrics=("pearson_r", "pearson_r_log",
                                                 "median_relative_error_pct")) -> pd.DataFrame:
    """Pooled scores side by side: one row per (split, reference, subset), one column per
    metric, splits in the order of :data:`migflow.splits.SPLITS`."""
    pooled = table[(table["fold"] == POOLED) & table["metric"].isin(metrics)]
    wide = pooled.pivot_table(index=["split", "reference", "subset"], columns="metric",
                              values="value", sort=False)
    order = {s: i for i, s in enumerate(SPLITS)}
    ref = {r: i for i, r in enumerate(REFERENCES)}
    wide = wide.sort_index(key=lambda idx: idx.map(
        order if idx.name == "split" else ref if idx.name == "reference" else
        {s: i for i, s in enumerate(SUBSETS)}))
    return wide[[m for m in metrics if m in wide.columns]]


def pooled_value(table: pd.DataFrame, split: str, reference: str = "reported flows",
                 subset: str = "test", metric: str = "pearson_r") -> float:
    """One pooled score of the table (NaN when absent)."""
    sel = table[(table["split"] == split) & (table["fold"] == POOLED)
                & (table["reference"] == reference) & (table["subset"] == subset)
                & (table["metric"] == metric)]
    return float(sel["value"].iloc[0]) if len(sel) else float("nan")


def generalisation_gap(table: pd.DataFrame, split: str = "country", baseline: str = "kfold",
                       reference: str = "reported flows", metric: str = "pearson_r") -> float:
    """Pooled test ``metric`` of ``split`` minus that of ``baseline`` (negative: worse)."""
    return (pooled_value(table, split, reference, "test", metric)
            - pooled_value(table, baseline, reference, "test", metric))


# ------------------------------------------------------------------ command line

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m migflow.crossval",
        description="Cross-validate the network on data/processed/<DATA>/ and write "
                    "data/estimates/<DATA>/crossval_<SPLIT>.{csv,nc}.")
    p.add_argument("--data", default="synthetic", help="data source: synthetic | real")
    p.add_argument("--split", default="kfold", choices=SPLITS)
    p.add_argument("--folds", type=int, default=5, help="folds of kfold and country")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the networks")
    p.add_argument("--device", default="cpu", help="cpu | cuda | mps")
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    p.add_argument("--scheduler", default=None,
                   help="serial | local | tcp://host:port (default: $DASK_SCHEDULER, else "
                        "local on a CPU, serial on a GPU)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per fold (1)")
    p.add_argument("--frac", type=float, default=0.2, help="held-out fraction (random)")
    p.add_argument("--years", type=int, default=5, help="held-out trailing years (years)")
    p.add_argument("--hide-stocks-net", action="store_true",
                   help="country/years: hide stocks and net migration too")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> dict[str, Path]:
    """Command-line entry point; returns the written files."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    from . import datasets

    obs, truth = datasets.load(paths.check_data_source(args.data))
    config = PRESETS[args.preset].replace(seed=args.seed, device=args.device)
    if args.epochs is not None:
        config = config.replace(epochs=args.epochs)
    return run_crossval(obs, truth, config, args.split, args.folds, args.seed,
                        runs_dir=paths.RUNS / args.data, out_dir=paths.ESTIMATES / args.data,
                        scheduler=args.scheduler, progress=not args.quiet,
                        threads=args.threads, frac=args.frac, years=args.years,
                        hide_stocks_net=args.hide_stocks_net)


if __name__ == "__main__":
    main()
