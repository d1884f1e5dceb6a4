"""Ensembles of trained networks, covariate noise, and the estimate files.

Two sources of uncertainty (paper.md 5.1): the problem is ill-posed (many flow tables
fit the data), handled by an *ensemble* of networks that differ by seed and by held-out
corridors; and the inputs are uncertain, handled by pushing *noise* through each trained
network: relative Gaussian noise on the unscaled covariates (binary ones untouched,
non-negative ones clipped at 0) and on the initial stock. Every (member, sample) pair
is one realisation; estimates are quantiles over realisations, computed year by year
from memory-mapped arrays so that memory stays bounded.

Held-out estimates: each member hides its own corridors from the loss. For a corridor,
the ``*_heldout`` variables summarise only the realisations of members that did not
see it, which makes them honest test predictions (the paper's ``test_flows.nc``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from . import paths, schema, tasks
from .config import RunConfig
from .edges import Features, covariate_arrays
from .splits import random_corridors
from .training import Run, Simulator, initial_stock, prepare_problem, train

log = logging.getLogger(__name__)

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SIGNED = ("gdp_growth", "refugees_change")
UNPERTURBED = (*schema.BINARY_COVARIATES, "refugees_change")  # change is recomputed


@dataclass(frozen=True)
class NoiseConfig:
    """Relative noise levels of the realisations (standard deviations, as fractions)."""

    covariates: float = 0.05  # x' ~ N(x, (level |x|)^2) on every continuous covariate
    initial_stock: float = 0.10  # the same on the initial foreign-born stocks
    samples: int = 3  # noisy realisations per member, besides the noise-free one
    calibrate: bool = True  # widen flow quantiles by the held-out error (Calibration)
    calibration_draws: int = 16  # error draws per realisation when calibrating


MIN_RESIDUALS = 30  # fewer held-out residuals than this: no calibration


@dataclass(frozen=True)
class Calibration:
    """Held-out error of the flows, added to every realisation before taking quantiles.

    An ensemble of a few networks plus input noise describes how the *estimate* varies,
    not how far it is from the *truth*: on the synthetic world its 90% band covers only a
    small share of the true flows. The error of a network on corridors it never saw is
    measured directly by the held-out corridors. We collect, for every member, the
    residuals ``log1p(reported) - log1p(estimate)`` on its own held-out corridors and add
    independent draws of them to the log of every realisation (split-conformal style).
    Errors depend on the size of the flow (small flows are relatively far less certain,
    and biased upwards), so residuals are grouped into bins of the estimated flow and each
    value draws from its own bin. Only flows are calibrated; stocks and net migration keep
    the ensemble-and-noise spread, and so do global totals (where corridor errors largely
    cancel). Reported flows are themselves noisy and may be under-counted, so the bands
    are calibrated to the data the model is judged by; notebook 04 checks them against
    the truth on the synthetic world.
    """

    edges: np.ndarray  # inner bin edges in log1p(estimate)
    residuals: tuple  # one array of residuals per bin
    draws: int = 16
    seed: int = 0

    @classmethod
    def from_residuals(cls, residuals: np.ndarray, estimates: np.ndarray, draws: int,
                       seed: int, bins: int = 6) -> "Calibration | None":
        """Bin residuals by ``log1p(estimate)`` into ``bins`` groups of equal size."""
        residuals = np.asarray(residuals, dtype=np.float64)
        x = np.log1p(np.clip(np.asarray(estimates, dtype=np.float64), 0, None))
        keep = np.isfinite(residuals) & np.isfinite(x)
        residuals, x = residuals[keep], x[keep]
        if residuals.size < MIN_RESIDUALS:
            log.warning("only %d held-out residuals: flow bands are not calibrated",
                        residuals.size)
            return None
        bins = max(1, min(bins, residuals.size // MIN_RESIDUALS))
        edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
        which = np.searchsorted(edges, x)
        groups = tuple(residuals[which == b] for b in range(len(edges) + 1))
        return cls(edges=edges, residuals=groups, draws=draws, seed=seed)

    @property
    def n_residuals(self) -> int:
        return int(sum(r.size for r in self.residuals))

    def widen(self, block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(R, ...) realisations -> (draws * R, ...) with a held-out error added to each."""
        logs = np.broadcast_to(np.log1p(np.clip(block, 0, None)), (self.draws, *block.shape))
        which = np.searchsorted(self.edges, logs)
        eps = np.empty(logs.shape)
        for b, res in enumerate(self.residuals):
            mask = which == b
            eps[mask] = rng.choice(res, size=int(mask.sum())) if res.size else 0.0
        # A residual below -log1p(x) would give a flow in (-1, 0): a corridor the data
        # showed empty. Clip at zero so that every band stays a band of counts.
        return np.maximum(np.expm1(logs + eps), 0.0).reshape(-1, *block.shape[1:])


def heldout_residuals(pred: Prediction, ds: xr.Dataset, heldout: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``log1p(reported) - log1p(estimate)`` on the held-out corridors, and the estimates."""
    data = ds["flow"].transpose("year", "origin", "destination").values
    mask = np.isfinite(data) & heldout[None]
    est = np.clip(pred.flows[mask], 0, None)
    return np.log1p(data[mask]) - np.log1p(est), est


def perturb_covariates(arrays: dict[str, np.ndarray], level: float,
                       rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Relative Gaussian noise on the unscaled covariates (before any transform)."""
    out = dict(arrays)
    for name, x in arrays.items():
        if name in UNPERTURBED or level == 0:
            continue
        noisy = x + level * np.abs(x) * rng.standard_normal(x.shape)
        out[name] = noisy if name in SIGNED else np.clip(noisy, 0.0, None)
    if "refugees" in out:
        change = np.zeros_like(out["refugees"])
        change[1:] = out["refugees"][1:] - out["refugees"][:-1]
        out["refugees_change"] = change
    return out


def perturb_stock(stock0: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Relative Gaussian noise on the foreign-born cells of the initial stock (diagonal kept)."""
    noisy = np.clip(stock0 * (1.0 + level * rng.standard_normal(stock0.shape)), 0.0, None)
    np.fill_diagonal(noisy, np.diagonal(stock0))
    return noisy


@dataclass
class Prediction:
    """One realisation: flows on edges, corridor flows, stocks and net migration (numpy)."""

    edge_flows: np.ndarray  # (Y, E)
    flows: np.ndarray  # (Y, N, N)
    stocks: np.ndarray  # (Y + 1, N, N)
    net_migration: np.ndarray  # (Y, N)


def predict(run: Run, ds: xr.Dataset, arrays: dict[str, np.ndarray] | None = None,
            stock0: np.ndarray | None = None) -> Prediction:
    """Run a trained network forward over all years (no gradient)."""
    device = torch.device(run.config.device)
    run.model.eval()
    features = Features(ds, run.scalings, run.edges, device=device, cache=False, arrays=arrays)
    problem = prepare_problem(ds, run.heldout, run.config, device)
    start = problem.stock0 if stock0 is None else torch.as_tensor(
        stock0, dtype=torch.float32, device=device)
    sim = Simulator(run.model, features, problem, run.scalings["stock"])
    with torch.no_grad():
        traj = sim.run(start, keep_edge_flows=True)
    flows = torch.stack(traj.corridor_flows).cpu().numpy()
    return Prediction(edge_flows=torch.stack(traj.edge_flows).cpu().numpy(), flows=flows,
                      stocks=torch.stack(traj.stocks).cpu().numpy(),
                      net_migration=flows.sum(1) - flows.sum(2))


def realisations(run: Run, ds: xr.Dataset, noise: NoiseConfig, seed: int):
    """Yield the noise-free prediction, then ``noise.samples`` noisy ones."""
    yield predict(run, ds)
    rng = np.random.default_rng(seed)
    arrays = covariate_arrays(ds)
    stock0 = initial_stock(ds)
    for _ in range(noise.samples):
        yield predict(run, ds, perturb_covariates(arrays, noise.covariates, rng),
                      perturb_stock(stock0, noise.initial_stock, rng))


def member_seeds(seed: int, members: int) -> list[int]:
    """Seed of each member: base seed + member index."""
    return [seed + m for m in range(members)]


def train_member(ds: xr.Dataset | str | os.PathLike, config: RunConfig, member_seed: int,
                 run_dir: Path, progress: bool = True, threads: int | None = None) -> Run:
    """Train (or reload) one member with its own seed and held-out corridors.

    ``ds`` may be a path to an observations file, which is what Dask workers receive.
    ``threads`` fixes torch's thread count for this member (the same count gives the
    same weights wherever the member runs).
    """
    if not isinstance(ds, xr.Dataset):
        ds = xr.load_dataset(ds)
    run_dir = Path(run_dir)
    cfg = config.replace(seed=member_seed)
    with tasks.torch_threads(threads):
        if _trained(run_dir, cfg):
            log.info("member seed %d: reusing %s", member_seed, run_dir)
            return Run.load(run_dir, device=config.device)
        heldout = random_corridors(~np.isnan(ds["flow"].values), cfg.test_frac, member_seed)
        return train(ds, cfg, run_dir=run_dir, heldout=heldout, progress=progress)


def train_members(ds: xr.Dataset, config: RunConfig, seeds: list[int], dirs: list[Path],
                  progress: bool = True, scheduler: str | None = None,
                  threads: int | None = None) -> list[Run]:
    """Train the members serially or as tasks on a ``dask.distributed`` cluster.

    ``scheduler`` (see :mod:`migflow.tasks`): ``"serial"`` trains in this process;
    ``"local"`` starts a ``LocalCluster`` on this machine (one worker per core, at most one
    per member; the members running at once share the cores, :func:`tasks.task_threads`);
    any other value is the address of a running scheduler (``tcp://host:port``,
    for example one started by dask-jobqueue on SLURM). ``None`` reads
    ``$DASK_SCHEDULER`` and otherwise uses ``"local"`` on the CPU and ``"serial"`` on a
    GPU (processes sharing one GPU gain little). Members already trained with the same
    configuration are reused without starting a cluster. Trained runs are written to
    ``dirs`` and reloaded here, so the results do not depend on where members ran: with
    the same ``threads`` serial training gives the same weights.
    """
    scheduler = tasks.resolve_scheduler(scheduler, tasks.default_scheduler(config.device))
    todo = [m for m, (s, d) in enumerate(zip(seeds, dirs))
            if not _trained(d, config.replace(seed=s))]
    if todo and not tasks.is_serial(scheduler):
        per_task = tasks.task_threads(scheduler, len(todo), threads)
        tasks.run_tasks(_train_member_task, ds, [(config, seeds[m], per_task) for m in todo],
                        [dirs[m] for m in todo], [f"member seed {seeds[m]}" for m in todo],
                        config.epochs, scheduler, progress)
    return [train_member(ds, config, s, d, progress, threads) for s, d in zip(seeds, dirs)]


def _trained(run_dir: Path, config: RunConfig) -> bool:
    """True when ``run_dir`` holds a finished network of exactly ``config``."""
    if not (Path(run_dir) / "model.pt").exists():
        return False
    return Run.load(run_dir, device=config.device).config == config


def _train_member_task(ds, config, seed, threads, run_dir) -> str:
    """What a Dask worker runs: train one member into ``run_dir`` (returned)."""
    train_member(ds, config, seed, Path(run_dir), progress=False, threads=threads)
    return run_dir


class _Store:
    """Memory-mapped arrays (realisation, year, ...) of every quantity, on disk."""

    def __init__(self, folder: Path, n_real: int, pred: Prediction):
        self.arrays = {}
        for name in ("edge_flows", "flows", "stocks", "net_migration"):
            shape = (n_real, *getattr(pred, name).shape)
            self.arrays[name] = np.lib.format.open_memmap(
                folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)

    def put(self, r: int, pred: Prediction) -> None:
        for name, arr in self.arrays.items():
            arr[r] = getattr(pred, name)


def _quantiles_by_year(arr: np.ndarray, levels, calibration: Calibration | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles and mean over axis 0 (realisations), one year (axis 1) at a time.

    With a calibration, quantiles are taken after adding held-out errors; the mean is the
    plain mean over realisations.
    """
    shape = (len(levels), *arr.shape[1:])
    q = np.empty(shape, dtype=np.float32)
    mean = np.empty(arr.shape[1:], dtype=np.float32)
    rng = np.random.default_rng(calibration.seed if calibration else 0)
    for t in range(arr.shape[1]):
        block = np.asarray(arr[:, t], dtype=np.float64)
        mean[t] = block.mean(axis=0)
        if calibration is not None:
            block = calibration.widen(block, rng)
        q[:, t] = np.quantile(block, levels, axis=0)
    return q, mean


def _heldout_quantiles(flows: np.ndarray, member_of: np.ndarray, heldouts: list[np.ndarray],
                       levels, calibration: Calibration | None = None) -> np.ndarray:
    """Quantiles of corridor flows over the realisations of members that held them out."""
    out = np.full((len(levels), *flows.shape[1:]), np.nan, dtype=np.float32)
    groups: dict[tuple, list] = {}
    n = flows.shape[-1]
    for corridor in range(n * n):
        who = tuple(m for m, h in enumerate(heldouts) if h.flat[corridor])
        if who:
            groups.setdefault(who, []).append(corridor)
    for who, corridors in groups.items():
        rows = np.isin(member_of, who)
        o, d = np.unravel_index(corridors, (n, n))
        block = np.asarray(flows[rows][:, :, o, d], dtype=np.float64)
        if calibration is not None:
            block = calibration.widen(block, np.random.default_rng(calibration.seed + 1))
        out[:, :, o, d] = np.quantile(block, levels, axis=0)
    return out


def git_commit() -> str:
    """The project's git commit (with '-dirty' when there are local changes), or 'unknown'."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=paths.ROOT,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=paths.ROOT, capture_output=True, text=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def member_dirs(runs_dir: Path, members: int, first: Path | None = None) -> list[Path]:
    """Run folder of each member; member 0 may be an existing single run (same seed)."""
    dirs = [runs_dir / f"member_{m:02d}" for m in range(members)]
    if first is not None and members:
        dirs[0] = Path(first)
    return dirs


def run_ensemble(ds: xr.Dataset, config: RunConfig, members: int, noise: NoiseConfig,
                 runs_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 levels=QUANTILES, progress: bool = True,
                 first_member: str | os.PathLike | None = None, scheduler: str | None = None,
                 threads: int | None = None) -> dict[str, Path]:
    """Train ``members`` networks, draw realisations and write the estimate files.

    Member m has seed ``config.seed + m`` and its own held-out corridors. A member whose
    folder already holds a network trained with the same configuration is reused;
    ``first_member`` lets member 0 be the single run of notebook 02. ``scheduler`` selects
    where members train (see :func:`train_members`). Returns the paths of the written
    netCDF files (flows, flow_table, stocks, net_migration).
    """
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    seeds = member_seeds(config.seed, members)
    dirs = member_dirs(runs_dir, members, Path(first_member) if first_member else None)
    runs = train_members(ds, config, seeds, dirs, progress=progress, scheduler=scheduler,
                         threads=threads)
    per_member = 1 + noise.samples
    n_real = members * per_member
    member_of = np.repeat(np.arange(members), per_member)
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None,
                                     prefix="realisations-") as tmp:
        store = None
        residuals = []
        bar = tqdm(total=n_real, desc="realisations", disable=not progress)
        for m, run in enumerate(runs):
            for r, pred in enumerate(realisations(run, ds, noise, seed=seeds[m] + 10_000)):
                if store is None:
                    store = _Store(Path(tmp), n_real, pred)
                store.put(m * per_member + r, pred)
                if r == 0:
                    residuals.append(heldout_residuals(pred, ds, run.heldout))
                bar.update()
        bar.close()
        calibration = None
        if noise.calibrate:
            calibration = Calibration.from_residuals(
                np.concatenate([r for r, _ in residuals]),
                np.concatenate([e for _, e in residuals]), noise.calibration_draws, config.seed)
        attrs = _provenance(ds, config, seeds, noise, levels, calibration)
        written = write_estimates(store.arrays, ds, runs[0].edges, member_of,
                                  [r.heldout for r in runs], levels, attrs, out_dir,
                                  calibration)
    return written


def _provenance(ds: xr.Dataset, config: RunConfig, seeds, noise: NoiseConfig, levels,
                calibration: Calibration | None = None) -> dict:
    source = ds.attrs.get("data_source", "unknown")
    prefix = "SYNTHETIC world: " if source == "synthetic" else ""
    return {
        "Conventions": "CF-1.10",
        "title": f"{prefix}annual migration estimates by country of birth",
        "institution": "migflow research compendium",
        "source": f"migflow ensemble, git commit {git_commit()}",
        "references": "Gaskin & Abel (2025), Deep learning four decades of human migration, "
                      "arXiv:2506.22821",
        "data_source": source,
        "dataset_title": ds.attrs.get("title", ""),
        "members": len(seeds),
        "member_seeds": ",".join(map(str, seeds)),
        "samples_per_member": noise.samples,
        "covariate_noise": noise.covariates,
        "initial_stock_noise": noise.initial_stock,
        "quantile_method": "numpy linear interpolation over all realisations",
        "flow_calibration": (
            f"held-out log1p residuals (n={calibration.n_residuals}) in "
            f"{len(calibration.residuals)} bins of the estimate, {calibration.draws} draws "
            "per realisation"
            if calibration is not None else "none"),
        "run_config": config.to_json(),
    }


def _quantile_coord(levels) -> dict:
    return {"quantile": ("quantile", np.asarray(levels, dtype=np.float64),
                         {"long_name": "quantile level over realisations", "units": "1"})}


def _encoding(ds: xr.Dataset, time_dim: str) -> dict:
    enc = {}
    for name, var in ds.data_vars.items():
        chunks = tuple(1 if d == time_dim else s for d, s in zip(var.dims, var.shape))
        enc[name] = {"zlib": True, "complevel": 4, "dtype": "float32", "chunksizes": chunks}
    return enc


def _write(ds: xr.Dataset, path: Path, time_dim: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    ds.to_netcdf(tmp, engine="h5netcdf", encoding=_encoding(ds, time_dim))
    os.replace(tmp, path)
    log.info("wrote %s", path)
    return path


def write_estimates(arrays: dict, ds: xr.Dataset, edges: np.ndarray, member_of: np.ndarray,
                    heldouts: list[np.ndarray], levels, attrs: dict,
                    out_dir: Path, calibration: Calibration | None = None) -> dict[str, Path]:
    """Summarise realisations into quantiles and write the four CF-style netCDF files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    codes = ds["country"].values
    years, stock_years = ds["year"].values, ds["stock_year"].values
    qc = _quantile_coord(levels)
    written = {}

    q, mean = _quantiles_by_year(arrays["flows"], levels, calibration)
    held = _heldout_quantiles(arrays["flows"], member_of, heldouts, levels, calibration)
    dims = ("quantile", "year", "origin", "destination")
    flows = xr.Dataset(
        {"flow": (dims, q, {"long_name": "annual migration flow from origin to destination",
                            "units": "persons", "cell_methods": "year: sum"}),
         "flow_mean": (dims[1:], mean, {"long_name": "mean annual migration flow",
                                        "units": "persons"}),
         "flow_heldout": (dims, held, {
             "long_name": "annual flow from the members that held this corridor out",
             "units": "persons", "comment": "NaN where no member held the corridor out"})},
        coords={**qc, "year": years, "origin": codes, "destination": codes}, attrs=attrs)
    totals = np.stack([np.asarray(arrays["flows"][:, t], dtype=np.float64).sum(axis=(1, 2))
                       for t in range(len(years))], axis=1)  # (realisation, year)
    flows["total_flow"] = (("quantile", "year"), np.quantile(totals, levels, axis=0),
                           {"long_name": "global total of annual migration flows",
                            "units": "persons"})
    written["flows"] = _write(flows, out_dir / "flows.nc", "year")

    q, mean = _quantiles_by_year(arrays["stocks"], levels)
    # The recursion is not clipped (training must see a flow that takes out more people
    # than live there), so a poorly trained member can leave negative stocks. A file of
    # counts must not hold them: they are set to 0, counted, and the count is recorded.
    negative = int((q < 0).sum())
    if negative:
        log.warning("%d of %d stock quantile values were negative (flows above the stock "
                    "they leave; train longer); set to 0 in stocks.nc", negative, q.size)
        q, mean = np.maximum(q, 0.0), np.maximum(mean, 0.0)
    dims = ("quantile", "stock_year", "birth", "destination")
    stocks = xr.Dataset(
        {"stock": (dims, q, {"long_name": "migrant stock by country of birth on 1 January",
                             "units": "persons", "negative_values_set_to_zero": negative}),
         "stock_mean": (dims[1:], mean, {"long_name": "mean stock", "units": "persons"})},
        coords={**qc, "stock_year": stock_years, "birth": codes, "destination": codes},
        attrs=attrs)
    written["stocks"] = _write(stocks, out_dir / "stocks.nc", "stock_year")

    q, mean = _quantiles_by_year(arrays["net_migration"], levels)
    dims = ("quantile", "year", "country")
    net = xr.Dataset(
        {"net_migration": (dims, q, {"long_name": "net migration (immigration - emigration)",
                                     "units": "persons"}),
         "net_migration_mean": (dims[1:], mean, {"long_name": "mean net migration",
                                                 "units": "persons"})},
        coords={**qc, "year": years, "country": codes}, attrs=attrs)
    written["net_migration"] = _write(net, out_dir / "net_migration.nc", "year")

    q, mean = _quantiles_by_year(arrays["edge_flows"], levels, calibration)
    dims = ("quantile", "year", "edge")
    table = xr.Dataset(
        {"flow_table": (dims, q, {"long_name": "annual flow of people born in edge_birth "
                                  "from edge_origin to edge_destination", "units": "persons"}),
         "flow_table_mean": (dims[1:], mean, {"long_name": "mean flow by birthplace",
                                              "units": "persons"})},
        coords={**qc, "year": years, "edge_birth": ("edge", codes[edges[0]]),
                "edge_origin": ("edge", codes[edges[1]]),
                "edge_destination": ("edge", codes[edges[2]])},
        attrs=attrs)
    written["flow_table"] = _write(table, out_dir / "flow_table.nc", "year")
    return written
