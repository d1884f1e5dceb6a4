"""Cross-validation splits, the dataset transformation that hides them, and the driver."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from migflow import crossval, crossval_plots
from migflow.config import QUICK
from migflow.schema import check_observations
from migflow.splits import (apply_split, corridor_split, country_folds, kfold_corridors,
                            load_split, make_splits, observed_corridors, save_split,
                            target_masks, trailing_years)
from migflow.synthetic import build_world

TINY = QUICK.replace(epochs=2, sample_size=200)
FEW = settings(max_examples=25, deadline=None)


@st.composite
def flow_masks(draw, min_n: int = 3, max_n: int = 8) -> np.ndarray:
    """A random (Y, N, N) reported-flow mask: a few reporting years, empty diagonal."""
    n = draw(st.integers(min_n, max_n))
    y = draw(st.integers(2, 7))
    seed = draw(st.integers(0, 2**31 - 1))
    density = draw(st.floats(0.1, 0.9))
    rng = np.random.default_rng(seed)
    mask = rng.random((y, n, n)) < density
    mask &= ~np.eye(n, dtype=bool)[None]
    mask[: draw(st.integers(0, y - 1))] = False  # early years without flow data
    return mask


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return build_world(n_countries=6, seed=5)


# ------------------------------------------------------------------ splits

@FEW
@given(mask=flow_masks(), folds=st.integers(2, 5), seed=st.integers(0, 1000))
def test_kfold_partitions_the_observed_corridors(mask, folds, seed):
    corridors = observed_corridors(mask)
    if corridors.sum() < folds:
        with pytest.raises(ValueError, match="observed corridors"):
            kfold_corridors(mask, folds, seed)
        return
    tests = np.stack(kfold_corridors(mask, folds, seed))
    assert tests.shape == (folds, *mask.shape[1:])
    assert np.array_equal(tests.sum(axis=0), corridors.astype(int))  # once each, none else
    sizes = tests.sum(axis=(1, 2))
    assert sizes.max() - sizes.min() <= 1
    splits = [corridor_split("kfold", k, t, mask) for k, t in enumerate(tests)]
    flow_tests = np.stack([s.flow_test for s in splits])
    assert np.array_equal(flow_tests.sum(axis=0), mask.astype(int))  # every report once


@FEW
@given(mask=flow_masks(), folds=st.integers(2, 3), seed=st.integers(0, 1000))
def test_country_folds_hide_every_corridor_touching_a_heldout_country(mask, folds, seed):
    y, n, _ = mask.shape
    census = 4
    stock_mask = np.random.default_rng(seed).random((census, n, n)) < 0.7
    net_mask = np.random.default_rng(seed + 1).random((y, n)) < 0.8
    splits = country_folds(mask, folds, seed, stock_mask=stock_mask, net_mask=net_mask)
    held = np.stack([s.countries for s in splits])
    assert np.array_equal(held.sum(axis=0), np.ones(n, dtype=int))  # each country once
    offdiag = ~np.eye(n, dtype=bool)
    for s in splits:
        touching = (s.countries[:, None] | s.countries[None, :]) & offdiag
        assert np.array_equal(s.flow_region, np.broadcast_to(touching, mask.shape))
        assert np.array_equal(s.flow_test, mask & touching[None])
        assert not (s.flow_test & ~mask).any()
        assert not s.stock_test[0].any()  # the initial condition stays visible
        assert np.array_equal(s.stock_test[1:], stock_mask[1:] & touching[None])
        assert np.array_equal(s.net_test, net_mask & s.countries[None, :])
    with_data = observed_corridors(mask)
    touched = with_data.any(0) | with_data.any(1)
    per_fold = held[:, touched].sum(axis=1)
    assert per_fold.max() - per_fold.min() <= 1  # stratified: data countries spread evenly


@FEW
@given(mask=flow_masks(), years=st.integers(1, 4))
def test_trailing_years_hide_exactly_the_last_years_with_data(mask, years):
    with_data = np.flatnonzero(mask.any(axis=(1, 2)))
    if not 1 <= years < len(with_data):
        with pytest.raises(ValueError, match="years must lie"):
            trailing_years(mask, years)
        return
    split = trailing_years(mask, years)
    hidden = np.flatnonzero(split.flow_region.any(axis=(1, 2)))
    assert hidden.tolist() == with_data[-years:].tolist()
    expected = mask.copy()
    expected[: with_data[-years]] = False
    assert np.array_equal(split.flow_test, expected)
    assert not split.flow_region[:, np.eye(mask.shape[1], dtype=bool)].any()


def test_trailing_years_can_hide_later_stocks_and_net_migration(world):
    obs, _ = world
    (split,) = make_splits(obs, "years", years=3, hide_stocks_net=True)
    flow, stock, net = target_masks(obs)
    years = obs["year"].values[split.flow_region.any(axis=(1, 2))]
    assert years.tolist() == [2021, 2022, 2023]
    assert np.array_equal(split.net_test, net & np.isin(obs["year"].values, years)[:, None])
    later = obs["census"].values > 2021  # stocks on 1 January after a hidden flow year
    assert np.array_equal(split.stock_test.any(axis=(1, 2)), later & stock.any(axis=(1, 2)))


@pytest.mark.parametrize("name", ["random", "kfold", "country", "years"])
def test_apply_split_hides_exactly_the_masked_entries(world, name):
    obs, _ = world
    split = make_splits(obs, name, folds=2, seed=1, hide_stocks_net=True)[-1]
    masked = apply_split(obs, split)
    check_observations(masked, source="masked")
    tests = {"flow": split.flow_test, "stock": split.stock_test,
             "net_migration": split.net_test}
    assert split.flow_test.any()
    for var, test in tests.items():
        before, after = obs[var].values, masked[var].values
        w_before, w_after = obs[f"{var}_weight"].values, masked[f"{var}_weight"].values
        if test is None:
            test = np.zeros(before.shape, dtype=bool)
        assert not (test & np.isnan(before)).any()  # only observed entries are hidden
        assert np.isnan(after[test]).all() and (w_after[test] == 0).all()
        np.testing.assert_array_equal(after[~test], before[~test])
        np.testing.assert_array_equal(w_after[~test], w_before[~test])
    for var in obs.data_vars:
        if var.split("_weight")[0] not in tests:
            assert masked[var].identical(obs[var]), var


def test_split_round_trips_through_netcdf(world, tmp_path):
    obs, _ = world
    for split in make_splits(obs, "country", folds=3, seed=2, hide_stocks_net=True):
        again = load_split(save_split(split, obs, tmp_path / f"split{split.fold}.nc"))
        assert again.same_as(split) and again.description == split.description
    a, b = make_splits(obs, "kfold", folds=2, seed=0)
    assert not a.same_as(b)


# ------------------------------------------------------------------ the driver

@pytest.fixture(scope="module")
def serial_run(world, tmp_path_factory):
    obs, truth = world
    base = tmp_path_factory.mktemp("cv-serial")
    files = crossval.run_crossval(obs, truth, TINY, "kfold", folds=2, seed=0,
                                  runs_dir=base / "runs", out_dir=base / "out",
                                  scheduler="serial", progress=False, threads=1)
    return base, files


def test_run_crossval_writes_a_tidy_table(serial_run):
    base, files = serial_run
    table = pd.read_csv(files["table"], dtype={"fold": str})
    assert list(table.columns) == crossval.COLUMNS
    assert np.isfinite(table["value"]).all()
    assert set(table["fold"]) == {"0", "1", crossval.POOLED}
    assert set(table["subset"]) == {"train", "test"}
    assert {"reported flows", "truth", "net migration"} <= set(table["reference"])
    assert set(table["metric"]) == {"pearson_r", "pearson_r_log",
                                    "median_relative_error_pct", "n"}
    n = table[(table["metric"] == "n") & (table["reference"] == "reported flows")
              & (table["subset"] == "test")].set_index("fold")["value"]
    assert n["0"] + n["1"] == n[crossval.POOLED]  # pooled = both folds' test points
    nc = xr.load_dataset(files["netcdf"])
    assert nc.sizes["row"] == len(table) and "SYNTHETIC" in nc.attrs["title"]
    corridors = pd.read_csv(files["corridors"])
    assert list(corridors.columns) == crossval.CORRIDOR_COLUMNS
    assert corridors["pearson_r"].between(-1, 1).all() and (corridors["n_years"] >= 3).all()
    for fold in (0, 1):
        folder = crossval.fold_dir(base / "runs", "kfold", fold)
        assert (folder / "split.nc").exists() and (folder / "model.pt").exists()


def test_run_crossval_reuses_finished_folds(serial_run, world, caplog):
    base, files = serial_run
    obs, truth = world
    stamp = crossval.fold_dir(base / "runs", "kfold", 0) / "model.pt"
    before = stamp.stat().st_mtime_ns
    with caplog.at_level("INFO", logger="migflow.crossval"):
        again = crossval.run_crossval(obs, truth, TINY, "kfold", folds=2, seed=0,
                                      runs_dir=base / "runs", out_dir=base / "again",
                                      progress=False, threads=1)
    assert stamp.stat().st_mtime_ns == before
    assert "reusing" in caplog.text
    pd.testing.assert_frame_equal(pd.read_csv(files["table"]), pd.read_csv(again["table"]))


def test_plots_of_the_tables(serial_run):
    _, files = serial_run
    table = pd.read_csv(files["table"], dtype={"fold": str})
    corridors = pd.read_csv(files["corridors"], dtype={"fold": str})
    for fig in (crossval_plots.crossval_summary(table),
                crossval_plots.crossval_violins(corridors)):
        assert "SYNTHETIC" in fig._suptitle.get_text()
        plt.close(fig)
    summary = crossval.pooled_summary(table)
    assert summary.loc[("kfold", "reported flows", "test"), "pearson_r"] == pytest.approx(
        crossval.pooled_value(table, "kfold"))


@pytest.mark.slow  # about 25 s on two busy cores, most of it starting the Dask workers
def test_local_cluster_gives_the_same_table_as_serial(serial_run, world, tmp_path,
                                                     local_scheduler):
    _, files = serial_run
    obs, truth = world
    dask_files = crossval.run_crossval(obs, truth, TINY, "kfold", folds=2, seed=0,
                                       runs_dir=tmp_path / "runs", out_dir=tmp_path,
                                       scheduler=local_scheduler, progress=False, threads=1)
    for key in ("table", "corridors"):
        pd.testing.assert_frame_equal(pd.read_csv(files[key]), pd.read_csv(dask_files[key]),
                                      check_exact=True)
