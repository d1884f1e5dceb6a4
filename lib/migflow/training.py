"""Training the per-edge network through the accounting recursion.

One epoch (paper.md 4.4) runs the network from the 1990 stock to the last year: every
year it predicts the flows on all edges, the accounting recursion turns them into the
next year's stocks, and the stocks feed back into the next year's inputs. The loss
compares five-year stock differences, annual net migration and reported flows with the
data (:mod:`migflow.loss`); the optimiser steps once per epoch.

Each year only ``sample_size`` random edges are evaluated with gradient; the others run
forward under ``no_grad`` (they still move people in the accounting, but cost no
activation memory). The stock the network *reads* is detached, clipped at zero and
its native-born diagonal is set to population minus foreign-born, both in training and
in inference. (The authors' code uses this rule in training only and the raw stock in
inference; we keep one rule so that the trained network sees at inference what it saw
in training.) Two further deliberate differences from the authors' code: the native
diagonal of year t uses the population of year t (theirs: year t with the stock of year
t + 1), and the stock input is not reset to the raw carried-over stock at the start of
each five-year batch. The stock *predicted* by the accounting keeps its gradient for the
loss.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from . import accounting
from .config import RunConfig
from .edges import Features, fit_scalings, select_edges
from .loss import Standardiser, banded_loss, outflow_penalty
from .model import FlowNet
from .splits import random_corridors
from .tasks import PROGRESS_FILE
from .transforms import Scaling, fit_scaling, scalings_from_json, scalings_to_json

log = logging.getLogger(__name__)

LOSS_TERMS = ("stock", "net_migration", "flow", "outflow")


def _t(x: np.ndarray, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


@dataclass
class Problem:
    """Tensors of one observation dataset, ready for the recursion and the loss."""

    n: int
    census_index: list[int]  # positions of the census years among the stock years
    births: torch.Tensor  # (Y, N) persons
    death_rate: torch.Tensor  # (Y, N) per person per year
    population: torch.Tensor  # (Y + 1, N) on 1 January
    stock0: torch.Tensor  # (N, N) initial stock
    stock: torch.Tensor  # (C, N, N) observed stocks (0 where missing)
    stock_mask: torch.Tensor  # (C, N, N) bool
    stock_weight: torch.Tensor
    net: torch.Tensor  # (Y, N)
    net_mask: torch.Tensor
    net_weight: torch.Tensor
    flow: torch.Tensor  # (Y, N, N)
    flow_mask: torch.Tensor  # observed and not held out
    test_mask: torch.Tensor  # observed and held out
    flow_weight: torch.Tensor
    population_std: float
    standardisers: dict = field(default_factory=dict)

    @property
    def n_years(self) -> int:
        return int(self.births.shape[0])

    def batches(self) -> list[tuple[int, int]]:
        """Five-year batches as (first, end) year indices between census years."""
        c = self.census_index
        return [(c[b], c[b + 1]) for b in range(len(c) - 1)]


def initial_stock(ds: xr.Dataset) -> np.ndarray:
    """Observed stock at the first census with the diagonal set to population - foreign."""
    s0 = np.nan_to_num(ds["stock"].isel(census=0).values.astype(np.float64))
    np.fill_diagonal(s0, 0.0)
    pop0 = ds["population"].sel(stock_year=ds["census"].values[0]).values
    np.fill_diagonal(s0, np.clip(pop0 - s0.sum(0), 0.0, None))
    return s0


def prepare_problem(ds: xr.Dataset, heldout: np.ndarray, config: RunConfig,
                    device: torch.device) -> Problem:
    """Build the :class:`Problem` of ``ds`` with the (N, N) held-out corridors ``heldout``."""
    years = ds["stock_year"].values
    census = ds["census"].values
    if census[0] != years[0]:
        raise ValueError(f"the first census ({census[0]}) must be the first stock year "
                         f"({years[0]}): it is the initial condition")
    census_index = [int(np.searchsorted(years, c)) for c in census]
    pop = ds["population"].values.astype(np.float64)
    deaths = ds["deaths"].values.astype(np.float64)
    death_rate = deaths / np.maximum(pop[:-1], 1.0)
    stock = ds["stock"].values
    flow = ds["flow"].values
    net = ds["net_migration"].values
    observed_flow = ~np.isnan(flow)
    test = observed_flow & heldout[None]
    problem = Problem(
        n=ds.sizes["country"], census_index=census_index,
        births=_t(ds["births"].values, device), death_rate=_t(death_rate, device),
        population=_t(pop, device), stock0=_t(initial_stock(ds), device),
        stock=_t(np.nan_to_num(stock), device), stock_mask=_t(~np.isnan(stock), device, bool),
        stock_weight=_t(ds["stock_weight"].values, device),
        net=_t(np.nan_to_num(net), device), net_mask=_t(~np.isnan(net), device, bool),
        net_weight=_t(ds["net_migration_weight"].values, device),
        flow=_t(np.nan_to_num(flow), device),
        flow_mask=_t(observed_flow & ~heldout[None], device, bool),
        test_mask=_t(test, device, bool), flow_weight=_t(ds["flow_weight"].values, device),
        population_std=float(pop.std()) or 1.0,
    )
    problem.standardisers = _fit_standardisers(problem, config.yj_lambda)
    return problem


def _stock_difference(problem: Problem, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    mask = problem.stock_mask[b] & problem.stock_mask[b + 1]
    return problem.stock[b + 1] - problem.stock[b], mask


def _fit_standardisers(problem: Problem, lam: float) -> dict:
    """Per batch and target: mean and std of the transformed training data."""
    out = {}
    for b, (t0, t1) in enumerate(problem.batches()):
        diff, mask = _stock_difference(problem, b)
        out["stock", b] = Standardiser.fit(diff, mask, lam)
        out["net_migration", b] = Standardiser.fit(problem.net[t0:t1], problem.net_mask[t0:t1],
                                                   lam)
        out["flow", b] = Standardiser.fit(problem.flow[t0:t1], problem.flow_mask[t0:t1], lam)
    return out


@dataclass
class Trajectory:
    """What one run of the network through all years produced."""

    stocks: list  # Y + 1 tensors (N, N): accounting stocks on 1 January
    corridor_flows: list  # Y tensors (N, N)
    edge_flows: list | None = None  # Y tensors (E,), kept for inference only


class Simulator:
    """Runs a :class:`FlowNet` over the years on fixed edges and features."""

    def __init__(self, model: FlowNet, features: Features, problem: Problem,
                 stock_scaling: Scaling, chunk_size: int = 262144):
        self.model = model
        self.features = features
        self.problem = problem
        self.stock_scaling = stock_scaling
        self.index = accounting.EdgeIndex(features.edges, problem.n)
        self.chunk_size = chunk_size

    def stock_input(self, stock: torch.Tensor, t: int) -> torch.Tensor:
        """The stock the network reads in year t: detached, >= 0, natives from population."""
        s = stock.detach().clamp(min=0.0)
        foreign = s.sum(0) - torch.diagonal(s)
        native = (self.problem.population[t] - foreign).clamp(min=0.0)
        s = s.clone()
        s.diagonal().copy_(native)
        return self.stock_scaling.apply(s)

    def _inputs(self, t: int, ids: torch.Tensor | None, s_in: torch.Tensor,
                h: torch.Tensor) -> torch.Tensor:
        flat_ij = self.index.ij if ids is None else self.index.ij[ids]
        flat_ik = self.index.ik if ids is None else self.index.ik[ids]
        s_flat = s_in.reshape(-1)
        hidden = h if ids is None else h[ids]
        return torch.cat([self.features.year(t, ids), s_flat[flat_ij, None],
                          s_flat[flat_ik, None], hidden], dim=1)

    def _forward_no_grad(self, t: int, ids: torch.Tensor, s_in: torch.Tensor,
                         h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flows, latents = [], []
        with torch.no_grad():
            for chunk in torch.split(ids, self.chunk_size):
                f, z = self.model(self._inputs(t, chunk, s_in, h))
                flows.append(f)
                latents.append(z)
        return torch.cat(flows), torch.cat(latents)

    def run(self, stock0: torch.Tensor, generator: torch.Generator | None = None,
            sample_size: int | None = None, keep_edge_flows: bool = False) -> Trajectory:
        """Run all years; with ``sample_size`` only that many edges per year get gradient."""
        problem, index = self.problem, self.index
        n_edges = index.num_edges
        device = stock0.device
        h = torch.zeros(n_edges, self.model.latent_dim, device=device, dtype=stock0.dtype)
        stock = stock0
        traj = Trajectory(stocks=[stock0], corridor_flows=[],
                          edge_flows=[] if keep_edge_flows else None)
        all_ids = torch.arange(n_edges, device=device)
        for t in range(problem.n_years):
            s_in = self.stock_input(stock, t)
            if sample_size is None:
                order = all_ids
                flow, h_new = self._forward_no_grad(t, all_ids, s_in, h)
            else:
                order = torch.randperm(n_edges, generator=generator).to(device)
                grad_ids, rest = order[:sample_size], order[sample_size:]
                flow, h_new = self.model(self._inputs(t, grad_ids, s_in, h))
                if rest.numel():
                    f_d, z_d = self._forward_no_grad(t, rest, s_in, h)
                    flow, h_new = torch.cat([flow, f_d]), torch.cat([h_new, z_d])
            if sample_size is not None:
                # flows and latents come in the order of `order`; a gather with the inverse
                # permutation puts them back on their edges and, unlike index_copy, keeps
                # only the indices (not an (E, latent) tensor per year) for the backward
                inverse = torch.empty_like(order)
                inverse[order] = all_ids
                flow, h_new = flow[inverse], h_new[inverse]
            h = h_new
            stock = accounting.step(stock, flow, index, problem.births[t], problem.death_rate[t])
            traj.stocks.append(stock)
            traj.corridor_flows.append(accounting.flows_by_corridor(flow, index))
            if keep_edge_flows:
                traj.edge_flows.append(flow.detach())
        return traj


def compute_losses(traj: Trajectory, problem: Problem, config: RunConfig) -> dict:
    """Loss terms of a trajectory (each weighted) and the held-out flow loss."""
    terms = {name: 0.0 for name in LOSS_TERMS}
    test = 0.0
    for b, (t0, t1) in enumerate(problem.batches()):
        diff, mask = _stock_difference(problem, b)
        pred = traj.stocks[t1] - traj.stocks[t0]
        terms["stock"] = terms["stock"] + config.weight_stock * banded_loss(
            pred, diff, mask, problem.stock_weight[b + 1], problem.standardisers["stock", b],
            config.band)
        flows = torch.stack(traj.corridor_flows[t0:t1])
        net = flows.sum(1) - flows.sum(2)
        terms["net_migration"] = terms["net_migration"] + config.weight_net * banded_loss(
            net, problem.net[t0:t1], problem.net_mask[t0:t1], problem.net_weight[t0:t1],
            problem.standardisers["net_migration", b], config.band)
        terms["flow"] = terms["flow"] + config.weight_flow * banded_loss(
            flows, problem.flow[t0:t1], problem.flow_mask[t0:t1], problem.flow_weight[t0:t1],
            problem.standardisers["flow", b], config.band)
        with torch.no_grad():
            test = test + config.weight_flow * float(banded_loss(
                flows, problem.flow[t0:t1], problem.test_mask[t0:t1],
                problem.flow_weight[t0:t1], problem.standardisers["flow", b], config.band))
        if config.weight_outflow > 0:
            for t in range(t0, t1):
                terms["outflow"] = terms["outflow"] + config.weight_outflow * outflow_penalty(
                    traj.corridor_flows[t], problem.population[t], problem.population_std)
    terms["total"] = sum(terms[name] for name in LOSS_TERMS)
    terms["test_flow"] = test
    return terms


@dataclass
class Run:
    """Everything that defines a trained network; saved to and loaded from a run folder."""

    config: RunConfig
    model: FlowNet
    edges: np.ndarray  # (3, E)
    heldout: np.ndarray  # (N, N) bool
    scalings: dict  # covariate name -> Scaling, plus "stock"
    countries: list
    history: pd.DataFrame

    def save(self, run_dir: str | os.PathLike) -> None:
        """Write the run folder atomically file by file (temp file and rename)."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        _atomic(run_dir / "config.json", lambda p: p.write_text(self.config.to_json()))
        _atomic(run_dir / "scalings.json", lambda p: p.write_text(scalings_to_json(self.scalings)))
        _atomic(run_dir / "history.csv", lambda p: self.history.to_csv(p, index=False))
        _atomic(run_dir / "edges.npy", lambda p: np.save(p, self.edges))
        heldout = xr.DataArray(self.heldout, dims=("origin", "destination"),
                               coords={"origin": self.countries, "destination": self.countries},
                               name="heldout",
                               attrs={"long_name": "flow corridor held out of the loss"})
        _atomic(run_dir / "heldout.nc", lambda p: heldout.astype("int8").to_netcdf(p))
        state = {"config": self.config.to_json(), "model": self.model.state_dict(),
                 "countries": list(self.countries), "epochs_trained": len(self.history)}
        _atomic(run_dir / "model.pt", lambda p: torch.save(state, p))

    @classmethod
    def load(cls, run_dir: str | os.PathLike, device: str | None = None) -> "Run":
        run_dir = Path(run_dir)
        if not (run_dir / "model.pt").exists():
            raise FileNotFoundError(f"no trained network in {run_dir} (model.pt missing); "
                                    "run `make train` first")
        config = RunConfig.from_json((run_dir / "config.json").read_text())
        if device is not None:
            config = config.replace(device=device)
        state = torch.load(run_dir / "model.pt", map_location=config.device, weights_only=True)
        model = FlowNet(config).to(config.device)
        model.load_state_dict(state["model"])
        heldout = xr.open_dataarray(run_dir / "heldout.nc").load()
        return cls(config=config, model=model, edges=np.load(run_dir / "edges.npy"),
                   heldout=heldout.values.astype(bool),
                   scalings=scalings_from_json((run_dir / "scalings.json").read_text()),
                   countries=list(state["countries"]),
                   history=pd.read_csv(run_dir / "history.csv"))

    def describe(self) -> str:
        """A short human-readable description of the run."""
        c = self.config
        last = self.history.iloc[-1] if len(self.history) else None
        lines = [f"FlowNet {c.hidden_layers}x{c.width} ({c.activation}), latent {c.latent_dim}, "
                 f"{self.model.count_parameters():,} parameters",
                 f"{self.edges.shape[1]:,} edges, {len(self.countries)} countries, seed {c.seed}",
                 f"{len(self.history)} epochs at lr {c.lr}; {int(self.heldout.sum())} held-out "
                 "corridors"]
        if last is not None:
            lines.append(f"final loss {last['total']:.4g} (held-out flow loss "
                         f"{last['test_flow']:.4g})")
        return "\n".join(lines)


def _atomic(path: Path, write) -> None:
    """Write through ``write(tmp)`` and rename: readers never see a half-written file."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # keeps the suffix numpy wants
    write(tmp)
    os.replace(tmp, path)


def fit_stock_scaling(ds: xr.Dataset) -> Scaling:
    """Scaling of the stock inputs, fitted on the observed stocks."""
    return fit_scaling(ds["stock"].values, transform=True, center=True)


def train(ds: xr.Dataset, config: RunConfig, run_dir: str | os.PathLike | None = None,
          heldout: np.ndarray | None = None, progress: bool = True) -> Run:
    """Train one network on ``ds`` and return the :class:`Run` (saved if ``run_dir``).

    With ``run_dir``, a checkpoint is written every ``config.checkpoint_every`` epochs and
    training resumes from it if one with the same configuration is found there.
    """
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    if heldout is None:
        heldout = random_corridors(~np.isnan(ds["flow"].values), config.test_frac, config.seed)
    edges = select_edges(ds["stock"].values, config.min_stock)
    scalings = fit_scalings(ds)
    scalings["stock"] = fit_stock_scaling(ds)
    features = Features(ds, scalings, edges, device=device)
    problem = prepare_problem(ds, heldout, config, device)
    model = FlowNet(config).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    simulator = Simulator(model, features, problem, scalings["stock"])
    history: list[dict] = []
    start = 0
    ckpt = Path(run_dir) / "checkpoint.pt" if run_dir is not None else None
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    if ckpt is not None and ckpt.exists():
        start, history = _resume(ckpt, config, model, optimiser, generator)
    log.info("training %d parameters on %d edges for %d epochs from epoch %d",
             model.count_parameters(), edges.shape[1], config.epochs, start)
    sample = config.sample_size if config.sample_size < edges.shape[1] else None
    bar = tqdm(range(start, config.epochs), desc=f"train seed {config.seed}",
               disable=not progress, initial=start, total=config.epochs, mininterval=1.0)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        optimiser.zero_grad(set_to_none=True)
        traj = simulator.run(problem.stock0, generator=generator,
                             sample_size=sample if sample is not None else edges.shape[1])
        terms = compute_losses(traj, problem, config)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimiser.step()
        record = {"epoch": epoch + 1,
                  **{k: float(v.detach()) if torch.is_tensor(v) else float(v)
                     for k, v in terms.items()},
                  "seconds": time.perf_counter() - t0}
        history.append(record)
        bar.set_postfix(loss=f"{record['total']:.3g}", test=f"{record['test_flow']:.3g}")
        if run_dir is not None:  # read by the driver of Dask tasks (migflow.tasks)
            (Path(run_dir) / PROGRESS_FILE).write_text(f"{epoch + 1} {config.epochs}\n")
        if ckpt is not None and ((epoch + 1) % config.checkpoint_every == 0
                                 or epoch + 1 == config.epochs):
            _checkpoint(ckpt, config, model, optimiser, generator, history)
    run = Run(config=config, model=model, edges=edges, heldout=heldout, scalings=scalings,
              countries=[str(c) for c in ds["country"].values],
              history=pd.DataFrame(history, columns=_history_columns()))
    if run_dir is not None:
        run.save(run_dir)
    return run


def _history_columns() -> list[str]:
    return ["epoch", *LOSS_TERMS, "total", "test_flow", "seconds"]


def _checkpoint(path: Path, config, model, optimiser, generator, history) -> None:
    state = {"config": config.to_json(), "model": model.state_dict(),
             "optimiser": optimiser.state_dict(), "generator": generator.get_state(),
             "torch_rng": torch.get_rng_state(), "history": history, "epoch": len(history)}
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(path, lambda p: torch.save(state, p))
    log.info("checkpoint at epoch %d written to %s", len(history), path.name)


def _resume(path: Path, config, model, optimiser, generator) -> tuple[int, list]:
    state = torch.load(path, map_location=config.device, weights_only=True)
    saved = RunConfig.from_json(state["config"])
    same = dict(epochs=config.epochs, device=config.device,
                checkpoint_every=config.checkpoint_every)  # these do not change the result
    if saved.replace(**same) != config:
        log.warning("checkpoint %s was written with another configuration; starting afresh",
                    path)
        return 0, []
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state["epoch"] > config.epochs:
        log.warning("checkpoint %s is at epoch %d, beyond the %d epochs asked for; "
                    "starting afresh", path, state["epoch"], config.epochs)
        return 0, []
    log.info("resuming from epoch %d", state["epoch"])
    return int(state["epoch"]), list(state["history"])
