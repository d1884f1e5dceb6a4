"""Ensemble: accounting in every member, calibrated bands, Dask gives the serial result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from migflow import ensemble
from migflow.config import QUICK
from migflow.ensemble import Calibration, NoiseConfig
from migflow.synthetic import build_world
from migflow.training import train

TINY = QUICK.replace(epochs=3, sample_size=200)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return build_world(n_countries=6, seed=5)


@pytest.fixture(scope="module")
def member(world, tmp_path_factory):
    obs, _ = world
    heldout = np.zeros((obs.sizes["origin"], obs.sizes["destination"]), dtype=bool)
    return train(obs, TINY, run_dir=tmp_path_factory.mktemp("member"), heldout=heldout,
                 progress=False)


def _expected_next(stock, edge_flow, edges, births, death_rate):
    """The accounting recursion written out in float64 numpy, independently of torch."""
    i, j, k = edges
    n = stock.shape[0]
    inflow, outflow = np.zeros((n, n)), np.zeros((n, n))
    np.add.at(inflow, (i, k), edge_flow)
    np.add.at(outflow, (i, j), edge_flow)
    return (1.0 - death_rate)[None, :] * stock + np.diag(births) + inflow - outflow


def test_member_trajectories_obey_the_accounting_identity(world, member):
    obs, _ = world
    noise = NoiseConfig(samples=1)
    deaths = obs["deaths"].values.astype(np.float64)
    death_rate = deaths / np.maximum(obs["population"].values[:-1].astype(np.float64), 1.0)
    births = obs["births"].values.astype(np.float64)
    edges = member.edges.cpu().numpy() if torch.is_tensor(member.edges) else member.edges
    for pred in ensemble.realisations(member, obs, noise, seed=3):
        stocks = pred.stocks.astype(np.float64)
        flows = pred.edge_flows.astype(np.float64)
        assert (flows >= 0).all()
        scale = np.abs(stocks).max()
        for t in range(flows.shape[0]):
            expected = _expected_next(stocks[t], flows[t], edges, births[t], death_rate[t])
            assert np.abs(stocks[t + 1] - expected).max() <= 1e-6 * scale, t
        corridors = np.zeros_like(pred.flows, dtype=np.float64)
        for t in range(flows.shape[0]):
            np.add.at(corridors[t], (edges[1], edges[2]), flows[t])
        np.testing.assert_allclose(pred.flows, corridors, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(pred.net_migration,
                                   corridors.sum(axis=1) - corridors.sum(axis=2),
                                   rtol=1e-5, atol=1e-2)


def test_calibrated_bands_cover_at_their_level_and_stay_non_negative():
    """Errors drawn from a known distribution: the widened bands cover what they claim."""
    rng = np.random.default_rng(0)
    estimate = np.concatenate([np.zeros(500), rng.lognormal(4.0, 2.0, 4500)])
    sigma = np.where(estimate < 50, 1.5, 0.5)  # small flows far less certain, as in data
    truth = np.maximum(np.expm1(np.log1p(estimate) + sigma * rng.standard_normal(5000)), 0)
    calibration = Calibration.from_residuals(np.log1p(truth) - np.log1p(estimate), estimate,
                                             draws=200, seed=0)
    assert calibration is not None and calibration.n_residuals == 5000
    # a fresh truth from the same error model, one realisation of the estimate
    new_truth = np.maximum(
        np.expm1(np.log1p(estimate) + sigma * rng.standard_normal(5000)), 0)
    draws = calibration.widen(estimate[None, :], np.random.default_rng(1))
    assert draws.shape == (200, 5000)
    assert np.isfinite(draws).all() and (draws >= 0).all()
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    coverage = np.mean((new_truth >= lo) & (new_truth <= hi))
    assert 0.86 <= coverage <= 0.94, coverage
    assert Calibration.from_residuals(np.zeros(5), np.ones(5), 10, 0) is None  # too few


def _estimates(path) -> dict[str, np.ndarray]:
    out = {}
    for name in ("flows", "stocks", "net_migration", "flow_table"):
        ds = xr.load_dataset(path / f"{name}.nc")
        out.update({f"{name}/{v}": ds[v].values for v in ds.data_vars})
    return out


@pytest.mark.slow  # about 30 s on two cores, mostly starting the Dask workers
def test_local_cluster_gives_estimates_identical_to_serial(world, tmp_path, local_scheduler):
    obs, _ = world
    noise = NoiseConfig(samples=1)
    serial = tmp_path / "serial"
    ensemble.run_ensemble(obs, TINY, 2, noise, runs_dir=serial / "runs", out_dir=serial,
                          progress=False, scheduler="serial", threads=1)
    dask = tmp_path / "dask"
    ensemble.run_ensemble(obs, TINY, 2, noise, runs_dir=dask / "runs", out_dir=dask,
                          progress=False, scheduler=local_scheduler, threads=1)
    a, b = _estimates(serial), _estimates(dask)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        values = a[key][np.isfinite(a[key])]
        if "net_migration" not in key:
            assert (values >= 0).all(), key
