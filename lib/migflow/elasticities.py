"""Covariate elasticities of a trained network (paper.md 6.2 and 7, item 11).

For an input column x of edge (i, j, k) in year t the elasticity of the flow is
``x * d log T / d x``. The network reads the scaled value ``chi = (psi_lambda(x) - mean) / std``
(:class:`migflow.transforms.Scaling`) and returns ``T = data_rescale * exp(u0)``, so by the
chain rule::

    x * dlogT/dx = x * du0/dchi * dchi/dx,   dchi/dx = (|x| + 1) ** (lambda - 1) / std

(the symmetric Yeo-Johnson transform has this derivative on both signs of x). ``du0/dchi``
comes from autograd on the network's first output. Where the clamp of ``u0`` at
``max_log_flow`` is active the derivative is 0, as it is for the flow itself.

What is held fixed
------------------
These are *partial* derivatives of one year's network call: the other inputs of that
call, including the two stock inputs and the latent state, are held at their values on
the noise-free forward trajectory of the run. That trajectory is re-simulated here
year by year under ``no_grad`` from the first census stock, exactly as
:meth:`migflow.training.Simulator.run` does in inference, to obtain each year's stock
inputs and latent state (not zeros). Effects that pass through later years (a covariate
changes this year's flows, hence next year's stocks and latent state) are not included.

Columns
-------
The 29 continuous covariate columns of :data:`migflow.edges.COLUMNS` and the two stock
inputs ``stock[ij]`` (people born in i living in the origin j) and ``stock[ik]`` (born in i
living in the destination k). Binary columns (colonial tie, club membership) and the two
flags are left out, as in the paper's figure: a one-unit jump is not an elasticity.
The summary is the mean, the standard deviation and quartiles of ``|elasticity|`` over a
random sample of edges and years.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from . import accounting, schema
from .edges import COLUMNS, Features, column_names
from .training import Run, Simulator, prepare_problem
from .transforms import Scaling

log = logging.getLogger(__name__)

IDENTITY = Scaling(lam=1.0, mean=0.0, std=1.0)  # psi_1(x) = x: reads the raw value
STOCK_COLUMNS = ("stock[ij]", "stock[ik]")
METHOD = ("|x dlogT/dx| = |x du0/dchi (|x|+1)^(lambda-1)/std| by autograd on one year's "
          "network call; other inputs (stocks, latent state) held at the noise-free trajectory")


def _column_scalings(run: Run) -> list[tuple[str, str, Scaling, bool]]:
    """(column name, covariate, scaling, continuous?) for the 36 static and 2 stock inputs."""
    names = column_names()
    out = []
    col = 0
    for covariate, idx in COLUMNS:
        continuous = covariate not in schema.BINARY_COVARIATES
        for _ in idx:
            out.append((names[col], covariate, run.scalings[covariate], continuous))
            col += 1
    out += [(names[col], "native_origin", IDENTITY, False),
            (names[col + 1], "return", IDENTITY, False)]
    out += [(name, "stock", run.scalings["stock"], True) for name in STOCK_COLUMNS]
    return out


def _sample(run: Run, n_years_total: int, n_edges: int, n_years: int,
            seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    total = run.edges.shape[1]
    years = np.sort(rng.choice(n_years_total, size=min(n_years, n_years_total), replace=False))
    edges = np.sort(rng.choice(total, size=min(n_edges, total), replace=False))
    return years, edges


def _states(sim: Simulator, raw_sim: Simulator, years: np.ndarray,
            ids: torch.Tensor) -> dict[int, tuple]:
    """Raw stock inputs (N, N) and latent state (E', latent) at the start of each sampled year.

    Re-runs the noise-free trajectory under ``no_grad`` with all edges, as in inference,
    and keeps the latent state of the sampled edges ``ids`` only (memory stays small).
    """
    problem = sim.problem
    device = problem.stock0.device
    all_ids = torch.arange(sim.index.num_edges, device=device)
    h = torch.zeros(sim.index.num_edges, sim.model.latent_dim, device=device)
    stock = problem.stock0
    wanted = set(int(t) for t in years)
    out = {}
    with torch.no_grad():
        for t in range(int(years.max()) + 1):
            if t in wanted:
                out[t] = (raw_sim.stock_input(stock, t), h[ids].clone())
            flow, h = sim._forward_no_grad(t, all_ids, sim.stock_input(stock, t), h)
            stock = accounting.step(stock, flow, sim.index, problem.births[t],
                                    problem.death_rate[t])
    return out


def _year_gradients(sim: Simulator, raw_features: Features, t: int, ids: torch.Tensor,
                    stock_raw: torch.Tensor, h: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """du0/dchi (E', 38) and the raw input values (E', 38) of year ``t`` for edges ``ids``."""
    s_flat = sim.stock_scaling.apply(stock_raw).reshape(-1)
    ij, ik = sim.index.ij[ids], sim.index.ik[ids]
    # the same columns, in the same order, as Simulator._inputs; h is already per sampled edge
    x = torch.cat([sim.features.year(t, ids), s_flat[ij, None], s_flat[ik, None], h], dim=1)
    x = x.detach().requires_grad_(True)
    u0 = sim.model.net(x)[:, 0].clamp(max=sim.model.config.max_log_flow)
    (grad,) = torch.autograd.grad(u0.sum(), x)
    flat = stock_raw.reshape(-1)
    raw = torch.cat([raw_features.year(t, ids), flat[ij, None], flat[ik, None]], dim=1)
    n = raw.shape[1]
    return grad[:, :n].double().cpu().numpy(), raw.double().cpu().numpy()


def elasticities(run: Run, ds: xr.Dataset, n_edges: int = 2000, n_years: int = 5,
                 seed: int = 0) -> xr.Dataset:
    """Absolute covariate elasticities ``|x dlogT/dx|`` of a trained network.

    Parameters
    ----------
    run : migflow.training.Run
        A trained network (``Run.load(run_dir)``).
    ds : xarray.Dataset
        The observations it was trained on (covariates, demography, first census stock).
    n_edges, n_years : int
        Size of the random sample: ``n_edges`` edges (the same in every year) times
        ``n_years`` distinct years.
    seed : int
        Seed of the sample.

    Returns
    -------
    xarray.Dataset
        Dimension ``column`` (31 continuous input columns) with ``mean``, ``std``,
        ``q25``, ``median`` and ``q75`` of the absolute elasticity, and the coordinate
        ``covariate`` naming each column's covariate.
    """
    device = torch.device(run.config.device)
    run.model.eval()
    features = Features(ds, run.scalings, run.edges, device=device, cache=False)
    raw_features = Features(ds, {name: IDENTITY for name, _ in COLUMNS}, run.edges,
                            device=device, cache=False)
    problem = prepare_problem(ds, run.heldout, run.config, device)
    sim = Simulator(run.model, features, problem, run.scalings["stock"])
    raw_sim = Simulator(run.model, features, problem, IDENTITY)
    years, edges = _sample(run, problem.n_years, n_edges, n_years, seed)
    ids = torch.as_tensor(edges, dtype=torch.long, device=device)
    states = _states(sim, raw_sim, years, ids)
    grads, raws = zip(*(_year_gradients(sim, raw_features, int(t), ids, *states[int(t)])
                        for t in years))
    grad, raw = np.concatenate(grads), np.concatenate(raws)
    columns = _column_scalings(run)
    keep = [c for c, (_, _, _, continuous) in enumerate(columns) if continuous]
    lam = np.array([columns[c][2].lam for c in keep])
    std = np.array([columns[c][2].std for c in keep])
    x = raw[:, keep]
    dchi_dx = (np.abs(x) + 1.0) ** (lam - 1.0) / std
    value = np.abs(x * grad[:, keep] * dchi_dx)
    log.info("elasticities of %d columns on %d edges x %d years", len(keep), len(edges),
             len(years))
    return _summary(value, [columns[c] for c in keep], run, ds, years, len(edges), seed)


def _summary(value: np.ndarray, columns: list, run: Run, ds: xr.Dataset, years: np.ndarray,
             n_edges: int, seed: int) -> xr.Dataset:
    q25, median, q75 = np.quantile(value, [0.25, 0.5, 0.75], axis=0)
    dims = ("column",)
    unit = {"units": "1"}
    out = xr.Dataset(
        {"mean": (dims, value.mean(0), {"long_name": "mean of |x dlogT/dx|", **unit}),
         "std": (dims, value.std(0), {"long_name": "standard deviation of |x dlogT/dx|",
                                      **unit}),
         "q25": (dims, q25, {"long_name": "25% quantile of |x dlogT/dx|", **unit}),
         "median": (dims, median, {"long_name": "median of |x dlogT/dx|", **unit}),
         "q75": (dims, q75, {"long_name": "75% quantile of |x dlogT/dx|", **unit})},
        coords={"column": [c[0] for c in columns], "covariate": (dims, [c[1] for c in columns])})
    source = ds.attrs.get("data_source", "unknown")
    out.attrs.update(
        title=("SYNTHETIC world: " if source == "synthetic" else "")
        + "absolute covariate elasticities of the flow network",
        data_source=source, method=METHOD,
        latent_state="from the noise-free forward trajectory (re-simulated, no_grad)",
        sample_edges=n_edges, sample_years=",".join(str(int(y)) for y in
                                                    ds["year"].values[years]),
        sample_seed=seed, run_seed=run.config.seed, run_epochs=len(run.history))
    return out


def write_elasticities(run_dir: str | os.PathLike, ds: xr.Dataset, out_path: str | os.PathLike,
                       n_edges: int = 2000, n_years: int = 5, seed: int = 0,
                       device: str | None = None) -> Path:
    """Compute :func:`elasticities` of the run in ``run_dir`` and write them as netCDF.

    Parameters
    ----------
    run_dir : path-like
        Folder of a trained run (``model.pt``, ``scalings.json``, ...).
    ds : xarray.Dataset
        The observations the run was trained on.
    out_path : path-like
        Output file, e.g. ``data/estimates/<DATA>/elasticities.nc``; written atomically.
    n_edges, n_years, seed : int
        The random sample (see :func:`elasticities`).
    device : str, optional
        Torch device; the run's own if not given.

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    out_path = Path(out_path)
    run = Run.load(run_dir, device=device)
    result = elasticities(run, ds, n_edges=n_edges, n_years=n_years, seed=seed)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    result.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, out_path)
    log.info("wrote %s", out_path)
    return out_path
