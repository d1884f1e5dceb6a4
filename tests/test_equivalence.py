"""The sparse, sampled training epoch against a dense textbook epoch written out here.

The reference below forms the full flow table ``T[i, j, k]`` (N x N x N) every year by
placing the edge flows in it, runs the accounting recursion with plain sums::

    S' = diag(B) + (1 - d)[None, :] * S + T.sum(j) - T.sum(k')

evaluates every edge with gradient in one pass, keeps the latent states in a list, and
computes the loss terms from their definitions (paper.md 3.4), standardisers included.
It shares only the network, the edge features and the :class:`Problem` tensors with the
library; :meth:`Simulator.run` and :func:`compute_losses` must agree with it.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from migflow.config import QUICK
from migflow.edges import Features, fit_scalings, select_edges
from migflow.model import FlowNet
from migflow.splits import random_corridors
from migflow.synthetic import build_world
from migflow.training import (Problem, Simulator, compute_losses, fit_stock_scaling,
                              prepare_problem)

CONFIG = QUICK.replace(hidden_layers=2, width=16, latent_dim=6, test_frac=0.3, seed=5,
                       weight_outflow=0.5)
# flows about 200 times larger: outflows exceed populations, so the penalty is not zero
CONFIGS = {"base": CONFIG, "heavy": CONFIG.replace(data_rescale=2e5)}
LOSS_KEYS = ("stock", "net_migration", "flow", "outflow", "total", "test_flow")


# ------------------------------------------------------------------ the reference

def psi(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Symmetric Yeo-Johnson transform, written out."""
    if lam == 0:
        return torch.sign(x) * torch.log(torch.abs(x) + 1)
    return torch.sign(x) * ((torch.abs(x) + 1) ** lam - 1) / lam


def banded(pred, data, mask, weight, fit_data, fit_mask, lam, band):
    """Mean of omega * relu((zhat - z)^2 - band z^2) over ``mask``, standardised on fit_*."""
    if not bool(mask.any()):
        return pred.sum() * 0
    fitted = psi(fit_data[fit_mask].double(), lam)
    mean = float(fitted.mean())
    std = float(fitted.std()) if fitted.numel() > 1 else 0.0
    std = std if std > 0 else 1.0
    z = (psi(data[mask], lam) - mean) / std
    zhat = (psi(pred[mask], lam) - mean) / std
    return (weight[mask] * torch.relu((zhat - z) ** 2 - band * z ** 2)).mean()


def reference_epoch(model, features, problem, stock_scaling, config, grad_edges=None):
    """Dense forward pass of one epoch and its loss terms.

    Parameters
    ----------
    model : FlowNet
        The network; called on all edges of a year at once.
    features : Features
        Edge list ``features.edges`` (3, E) and inputs ``features.year(t)`` (E, 36).
    problem : Problem
        Demography, initial stock, targets, masks and weights.
    stock_scaling : Scaling
        Lambda, mean and std of the stock inputs.
    config : RunConfig
        Loss weights, band and Yeo-Johnson lambda.
    grad_edges : list of (E,) bool tensors, optional
        None: every edge with gradient. Otherwise one mask per year: the flows and latent
        states of the other edges are used but detached.

    Returns
    -------
    terms : dict
        The weighted loss terms, ``total`` and ``test_flow`` (as :func:`compute_losses`).
    stocks : list of (N, N) tensors
        Stocks on 1 January of every stock year.
    """
    n, n_years = problem.n, problem.births.shape[0]
    i, j, k = features.edges
    eye = torch.eye(n, dtype=torch.bool)
    stock = problem.stock0
    h = torch.zeros(features.edges.shape[1], model.latent_dim, dtype=stock.dtype)
    stocks, corridor, latents = [stock], [], [h]
    for t in range(n_years):
        # what the network reads: detached, >= 0, natives = population - foreign-born
        s_in = stock.detach().clamp(min=0.0)
        foreign = s_in.sum(0) - torch.diagonal(s_in)
        native = (problem.population[t] - foreign).clamp(min=0.0)
        s_in = torch.where(eye, torch.diag(native), s_in)
        s_in = (psi(s_in, stock_scaling.lam) - stock_scaling.mean) / stock_scaling.std
        x = torch.cat([features.year(t), s_in[i, j][:, None], s_in[i, k][:, None],
                       latents[-1]], dim=1)
        flow, h = model(x)
        if grad_edges is not None:
            keep = grad_edges[t]
            flow = torch.where(keep, flow, flow.detach())
            h = torch.where(keep[:, None], h, h.detach())
        latents.append(h)
        table = torch.zeros(n, n, n, dtype=flow.dtype).index_put((i, j, k), flow,
                                                                 accumulate=True)
        stock = (torch.diag(problem.births[t]) + (1 - problem.death_rate[t])[None, :] * stock
                 + table.sum(dim=1) - table.sum(dim=2))
        stocks.append(stock)
        corridor.append(table.sum(dim=0))

    c, lam, band = problem.census_index, config.yj_lambda, config.band
    terms = dict.fromkeys(("stock", "net_migration", "flow", "outflow", "test_flow"), 0.0)
    for b in range(len(c) - 1):
        t0, t1 = c[b], c[b + 1]
        observed = problem.stock_mask[b] & problem.stock_mask[b + 1]
        diff = problem.stock[b + 1] - problem.stock[b]
        terms["stock"] = terms["stock"] + config.weight_stock * banded(
            stocks[t1] - stocks[t0], diff, observed, problem.stock_weight[b + 1], diff,
            observed, lam, band)
        flows = torch.stack(corridor[t0:t1])
        net = flows.sum(dim=1) - flows.sum(dim=2)  # immigration - emigration
        nm, nd = problem.net_mask[t0:t1], problem.net[t0:t1]
        terms["net_migration"] = terms["net_migration"] + config.weight_net * banded(
            net, nd, nm, problem.net_weight[t0:t1], nd, nm, lam, band)
        fm, fd, fw = problem.flow_mask[t0:t1], problem.flow[t0:t1], problem.flow_weight[t0:t1]
        terms["flow"] = terms["flow"] + config.weight_flow * banded(
            flows, fd, fm, fw, fd, fm, lam, band)
        terms["test_flow"] = terms["test_flow"] + config.weight_flow * float(banded(
            flows.detach(), fd, problem.test_mask[t0:t1], fw, fd, fm, lam, band))
        for t in range(t0, t1):
            excess = torch.relu(corridor[t].sum(dim=1) - problem.population[t])
            terms["outflow"] = terms["outflow"] + config.weight_outflow * (
                excess.mean() / problem.population_std)
    terms["total"] = (terms["stock"] + terms["net_migration"] + terms["flow"]
                      + terms["outflow"])
    return terms, stocks


# ------------------------------------------------------------------ fixtures

@dataclasses.dataclass
class Setup:
    config: object
    model: FlowNet
    features: object
    problem: Problem
    stock_scaling: object
    n_edges: int


class _AsDouble:
    """Features in float64 (the float32 values converted exactly)."""

    def __init__(self, features: Features):
        self.inner, self.edges = features, features.edges

    def year(self, t, edge_ids=None):
        return self.inner.year(t, edge_ids).double()


def _double_problem(problem: Problem) -> Problem:
    changes = {f.name: getattr(problem, f.name).double() for f in dataclasses.fields(problem)
               if torch.is_tensor(getattr(problem, f.name))
               and getattr(problem, f.name).is_floating_point()}
    return dataclasses.replace(problem, **changes)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    obs, _ = build_world(n_countries=7, seed=2)
    return obs


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def setup32(world, request) -> Setup:
    config = CONFIGS[request.param]
    heldout = random_corridors(~np.isnan(world["flow"].values), config.test_frac, config.seed)
    edges = select_edges(world["stock"].values, config.min_stock)
    scalings = fit_scalings(world)
    scalings["stock"] = fit_stock_scaling(world)
    features = Features(world, scalings, edges)
    problem = prepare_problem(world, heldout, config, torch.device("cpu"))
    torch.manual_seed(config.seed)
    model = FlowNet(config)
    assert problem.test_mask.any() and problem.flow_mask.any() and problem.net_mask.any()
    return Setup(config, model, features, problem, scalings["stock"], edges.shape[1])


@pytest.fixture
def float64():
    """Run a test with float64 as torch's default dtype (the simulator's zeros follow it)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _as_double(s: Setup) -> Setup:
    return Setup(s.config, copy.deepcopy(s.model).double(), _AsDouble(s.features),
                 _double_problem(s.problem), s.stock_scaling, s.n_edges)


def _library(s: Setup, sample_size: int, seed: int = 0):
    model = copy.deepcopy(s.model)
    sim = Simulator(model, s.features, s.problem, s.stock_scaling)
    traj = sim.run(s.problem.stock0, generator=torch.Generator().manual_seed(seed),
                   sample_size=sample_size)
    terms = compute_losses(traj, s.problem, s.config)
    terms["total"].backward()
    return terms, traj, model


def _reference(s: Setup, grad_edges=None):
    model = copy.deepcopy(s.model)
    terms, stocks = reference_epoch(model, s.features, s.problem, s.stock_scaling, s.config,
                                    grad_edges)
    terms["total"].backward()
    return terms, stocks, model


def _value(x) -> float:
    return float(x.detach()) if torch.is_tensor(x) else float(x)


def _assert_stocks(got: list, want: list, rtol: float) -> None:
    """Stocks equal up to ``rtol`` of each value, or of the largest one where they cancel."""
    got, want = torch.stack(got).detach(), torch.stack(want).detach()
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * 0.1 * float(want.abs().max()))


def _assert_terms(got: dict, want: dict, rtol: float) -> None:
    for key in LOSS_KEYS:
        np.testing.assert_allclose(_value(got[key]), _value(want[key]), rtol=rtol,
                                   err_msg=f"loss term {key}")


def _assert_grads(got: FlowNet, want: FlowNet, rtol: float) -> None:
    scale = max(float(p.grad.abs().max()) for p in want.parameters())
    for (name, p), q in zip(got.named_parameters(), want.parameters()):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, rtol=rtol, atol=rtol * 1e-2 * scale,
                                   msg=lambda m: f"gradient of {name}: {m}")


# ------------------------------------------------------------------ tests

def test_reference_is_not_trivial(setup32):
    terms, stocks, model = _reference(setup32)
    keys = ["stock", "net_migration", "flow", "test_flow"]
    keys += ["outflow"] if setup32.config is CONFIGS["heavy"] else []
    for key in keys:
        assert _value(terms[key]) > 0, key
    assert all(float(p.grad.abs().max()) > 0 for p in model.parameters())
    assert torch.isfinite(torch.stack(stocks)).all()


def test_full_gradient_epoch_matches_dense_reference_float32(setup32):
    got, traj, model = _library(setup32, sample_size=setup32.n_edges)
    want, stocks, ref = _reference(setup32)
    _assert_terms(got, want, rtol=1e-5)
    _assert_stocks(traj.stocks, stocks, rtol=1e-5)
    _assert_grads(model, ref, rtol=1e-4)


def test_full_gradient_epoch_matches_dense_reference_float64(setup32, float64):
    s = _as_double(setup32)
    got, traj, model = _library(s, sample_size=s.n_edges)
    want, stocks, ref = _reference(s)
    assert traj.stocks[-1].dtype == torch.float64
    _assert_terms(got, want, rtol=1e-10)
    _assert_stocks(traj.stocks, stocks, rtol=1e-11)
    _assert_grads(model, ref, rtol=1e-8)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_edge_sampling_changes_gradients_not_values(setup32, dtype, request):
    """Fewer edges with gradient give the same forward values, whatever the draw."""
    s = setup32
    if dtype == "float64":
        request.getfixturevalue("float64")
        s = _as_double(setup32)
    rtol = 1e-5 if dtype == "float32" else 1e-10
    full, full_traj, full_model = _library(s, sample_size=s.n_edges, seed=1)
    for sample, seed in ((s.n_edges // 3, 1), (s.n_edges // 3, 7), (1, 1)):
        part, part_traj, part_model = _library(s, sample_size=sample, seed=seed)
        _assert_terms(part, full, rtol=rtol)
        _assert_stocks(part_traj.stocks, full_traj.stocks, rtol=rtol)
        diff = [float((p.grad - q.grad).abs().max()) for p, q in
                zip(part_model.parameters(), full_model.parameters())]
        assert max(diff) > 0, "a subsample should change the gradient"


def test_sampled_gradient_matches_reference_with_detached_edges(setup32, float64):
    """The gradient of a sampled epoch is that of the dense epoch with the unsampled edges'
    flows and latent states detached (back-propagation through time only along edges
    sampled in consecutive years).

    This replays the edge draws, so it relies on the simulator drawing one
    ``torch.randperm(E, generator=...)`` per year and giving the first ``sample_size``
    edges their gradient.
    """
    s = _as_double(setup32)
    sample, seed = s.n_edges // 4, 3
    got, _, model = _library(s, sample_size=sample, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    masks = []
    for _ in range(s.problem.n_years):
        mask = torch.zeros(s.n_edges, dtype=torch.bool)
        mask[torch.randperm(s.n_edges, generator=generator)[:sample]] = True
        masks.append(mask)
    want, _, ref = _reference(s, grad_edges=masks)
    _assert_terms(got, want, rtol=1e-10)
    _assert_grads(model, ref, rtol=1e-8)


def test_problem_mirrors_the_dataset(world, setup32):
    """The Problem tensors the reference trusts are the dataset's values."""
    p, obs = setup32.problem, world
    census = [int(np.searchsorted(obs["stock_year"].values, c)) for c in obs["census"].values]
    assert p.census_index == census
    pop = obs["population"].values
    np.testing.assert_allclose(p.population.numpy(), pop, rtol=1e-6)
    np.testing.assert_allclose(p.births.numpy(), obs["births"].values, rtol=1e-6)
    np.testing.assert_allclose(p.death_rate.numpy(), obs["deaths"].values / pop[:-1],
                               rtol=1e-6)
    stock = obs["stock"].values
    assert np.array_equal(p.stock_mask.numpy(), ~np.isnan(stock))
    np.testing.assert_allclose(p.stock.numpy()[~np.isnan(stock)], stock[~np.isnan(stock)],
                               rtol=1e-6)
    s0 = p.stock0.numpy()
    foreign0 = np.nan_to_num(stock[0]) * (1 - np.eye(p.n))
    np.testing.assert_allclose(s0 * (1 - np.eye(p.n)), foreign0, rtol=1e-6)
    np.testing.assert_allclose(np.diag(s0), np.clip(pop[0] - foreign0.sum(0), 0, None),
                               rtol=1e-6)
    flow_seen = ~np.isnan(obs["flow"].values)
    assert np.array_equal(p.flow_mask.numpy() | p.test_mask.numpy(), flow_seen)
    assert not (p.flow_mask & p.test_mask).any()
    np.testing.assert_allclose(p.population_std, pop.std(), rtol=1e-12)
