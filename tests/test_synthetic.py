"""Tests of the embedded synthetic world (migflow.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from migflow import accounting, schema, synthetic

REAL_ISO3 = {"USA", "DEU", "FRA", "GBR", "CHN", "IND", "BRA", "NGA", "SWE", "SYR", "SAU",
             "SDN", "SEN", "SGP", "SLV", "SOM", "SRB", "SUR", "SVK", "SVN", "SWZ"}


@pytest.fixture(scope="module")
def world() -> tuple[xr.Dataset, xr.Dataset]:
    return synthetic.build_world(40, seed=0)


def edge_indices(truth: xr.Dataset) -> np.ndarray:
    """(3, E) integer (birth, origin, destination) indices of the truth edges."""
    position = {code: n for n, code in enumerate(truth["country"].values)}
    return np.array([[position[c] for c in truth[f"edge_{name}"].values]
                     for name in ("birth", "origin", "destination")])


def demography(obs: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Births (Y, N) and death rates per person (Y, N) from the observations."""
    return obs["births"].values, obs["deaths"].values / obs["population"].values[:-1]


# ------------------------------------------------------------------------- accounting

def test_accounting_identity_numpy(world):
    obs, truth = world
    i, j, k = edge_indices(truth)
    n = truth.sizes["country"]
    births, death_rate = demography(obs)
    stock = truth["stock"].values
    flows = truth["flow_table"].values.astype(np.float64)
    for t in range(truth.sizes["year"]):
        change = np.zeros((n, n))
        np.add.at(change, (i, k), flows[t])
        np.add.at(change, (i, j), -flows[t])
        expected = (1 - death_rate[t])[None, :] * stock[t] + np.diag(births[t]) + change
        scale = np.abs(stock[t + 1]) + 1.0
        assert np.max(np.abs(expected - stock[t + 1]) / scale) < 1e-9, t


def test_accounting_identity_matches_death_rate_variable(world):
    obs, _ = world
    np.testing.assert_allclose(demography(obs)[1], obs["death_rate"].values / 1000, rtol=1e-12)
    np.testing.assert_allclose(obs["births"].values,
                               obs["birth_rate"].values / 1000 * obs["population"].values[:-1],
                               rtol=1e-12)


def test_accounting_identity_torch(world):
    obs, truth = world
    index = accounting.EdgeIndex(torch.from_numpy(edge_indices(truth)), truth.sizes["country"])
    births, death_rate = (torch.from_numpy(a) for a in demography(obs))
    flows = torch.from_numpy(truth["flow_table"].values.astype(np.float64))
    stock = torch.from_numpy(truth["stock"].values)
    predicted = accounting.run(stock[0], flows, index, births, death_rate)
    relative = (predicted - stock).abs() / (stock.abs() + 1.0)
    assert relative.max().item() < 1e-9


def test_population_is_column_sum_of_stock(world):
    obs, truth = world
    np.testing.assert_allclose(obs["population"].values, truth["stock"].sum("birth").values,
                               rtol=1e-12)


# ---------------------------------------------------------------------------- truth

def test_truth_signs_and_sums(world):
    _, truth = world
    assert set(schema.TRUTH_VARS) <= set(truth.data_vars)
    for name, var in schema.TRUTH_VARS.items():
        assert truth[name].dims == var.dims
        assert truth[name].attrs["units"] == var.units
    assert (truth["flow_table"].values >= 0).all()
    assert (truth["flow"].values >= 0).all()
    assert (truth["stock"].values >= 0).all()
    net = truth["net_migration"]
    total = truth["flow"].sum(("origin", "destination"))
    assert (np.abs(net.sum("country")) <= 1e-9 * total).all()
    assert (np.diagonal(truth["flow"].values, axis1=1, axis2=2) == 0).all()


def test_flow_is_flow_table_summed_over_birth(world):
    _, truth = world
    _, j, k = edge_indices(truth)
    n = truth.sizes["country"]
    table = truth["flow_table"].values.astype(np.float64)
    summed = np.zeros((truth.sizes["year"], n * n))
    for t in range(truth.sizes["year"]):
        summed[t] = np.bincount(j * n + k, table[t], minlength=n * n)
    np.testing.assert_allclose(summed.reshape(-1, n, n), truth["flow"].values, rtol=1e-10)
    np.testing.assert_allclose(
        truth["net_migration"].values,
        truth["flow"].sum("origin").values - truth["flow"].sum("destination").values)


def test_edge_set_structure(world):
    _, truth = world
    n = truth.sizes["country"]
    i, j, k = edge_indices(truth)
    n_diaspora = int(np.clip(round(0.15 * n), 3, 20))
    assert truth.sizes["edge"] == n * (n - 1) * (1 + n_diaspora)
    assert 10_000 <= truth.sizes["edge"] <= 20_000
    assert (j != k).all()
    assert len(set(zip(i, j, k))) == len(i)
    native = set(zip(i[i == j], k[i == j]))
    assert native == {(a, b) for a in range(n) for b in range(n) if a != b}
    for a in range(n):  # every birth country has D diaspora origins
        assert len(set(j[(i == a) & (j != a)])) == n_diaspora


def test_stocks_in_plausible_range(world):
    _, truth = world
    stock = truth["stock"].values
    diag = np.trace(stock, axis1=1, axis2=2)
    share = 1 - diag / stock.sum((1, 2))
    assert (0.01 < share).all() and (share < 0.2).all()
    native0 = np.diagonal(stock[0])
    assert native0.min() >= 1e5 and native0.max() <= 1.4e9


# --------------------------------------------------------------------- determinism

def test_same_seed_identical_different_seed_differs():
    obs_a, truth_a = synthetic.build_world(8, seed=3)
    obs_b, truth_b = synthetic.build_world(8, seed=3)
    xr.testing.assert_identical(obs_a, obs_b)
    xr.testing.assert_identical(truth_a, truth_b)
    obs_c, truth_c = synthetic.build_world(8, seed=4)
    assert not truth_a["stock"].equals(truth_c["stock"])
    assert not obs_a["gdp_per_capita"].equals(obs_c["gdp_per_capita"])


@pytest.mark.parametrize("engine", ["netcdf4", "h5netcdf"])
def test_netcdf_round_trip(tmp_path, engine):
    if engine == "h5netcdf":
        pytest.importorskip("h5py", reason="the h5netcdf engine needs h5py")
    obs, truth = synthetic.build_world(6, seed=1)
    for name, ds in (("obs", obs), ("truth", truth)):
        ds.to_netcdf(tmp_path / f"{name}.nc", engine=engine)
        loaded = xr.load_dataset(tmp_path / f"{name}.nc", engine=engine)
        xr.testing.assert_identical(loaded, ds)


# ---------------------------------------------------------------- schema and labels

def test_observations_follow_schema(world):
    obs, _ = world
    schema.check_observations(obs, source="synthetic world")
    for name, var in schema.OBSERVATION_VARS.items():
        assert obs[name].attrs["units"] == var.units
        assert obs[name].attrs["long_name"] == var.long_name


def test_labels_say_synthetic(world):
    for ds in world:
        codes = ds["country"].values.tolist()
        assert codes[:3] == ["S001", "S002", "S003"]
        assert all(c.startswith("S") and c not in REAL_ISO3 for c in codes)
        assert "SYNTHETIC" in ds.attrs["title"] and ds.attrs["title"].startswith("SYNTHETIC")
        assert ds.attrs["data_source"] == "synthetic"
        assert ds.attrs["seed"] == 0 and ds.attrs["n_countries"] == 40
        assert "not real" in ds.attrs["comment"].lower()
        assert ds["country_name"].values[0] == "Synthland 1"
        regions = set(ds["region"].values.tolist())
        assert 5 <= len(regions) <= 8
        assert all(r.startswith("Synthetic region ") for r in regions)


def test_dimensions_and_census_years(world):
    obs, truth = world
    assert obs["year"].values.tolist() == list(range(1990, 2024))
    assert obs["stock_year"].values.tolist() == list(range(1990, 2025))
    assert obs["census"].values.tolist() == [1990, 1995, 2000, 2005, 2010, 2015, 2020, 2024]
    assert truth["stock"].sizes["stock_year"] == 35
    obs2, _ = synthetic.build_world(5, seed=0, first_year=2000, last_year=2009)
    assert obs2["census"].values.tolist() == [2000, 2005, 2010]


# --------------------------------------------------------------------- covariates

def test_covariates_are_plausible(world):
    obs, _ = world
    assert obs["birth_rate"].min() >= 8 and obs["birth_rate"].max() <= 45
    assert obs["death_rate"].min() >= 4 and obs["death_rate"].max() <= 18
    for name in schema.BOUNDED_COVARIATES:
        values = obs[name].values
        assert values.min() >= 0 and values.max() <= 1 + 1e-12
        np.testing.assert_allclose(values, values.T, atol=1e-12)
    assert (np.diagonal(obs["linguistic_similarity"].values) == 1).all()
    tie = obs["colonial_tie"].values
    assert set(np.unique(tie)) <= {0.0, 1.0} and (tie == tie.T).all() and tie.sum() > 0
    eu = obs["eu_member"].values
    assert (np.diff(eu, axis=0) >= 0).all()  # once in, they stay in
    assert 0 < eu[0].mean() < eu[-1].mean() <= 0.4
    assert (np.diagonal(obs["refugees"].values, axis1=1, axis2=2) == 0).all()
    assert (np.diagonal(obs["trade"].values, axis1=1, axis2=2) == 0).all()
    conflict = obs["conflict_deaths"].values
    assert 0 < (conflict > 0).mean() < 0.25
    growth = 100 * (obs["gdp_per_capita"].values[1:] / obs["gdp_per_capita"].values[:-1] - 1)
    np.testing.assert_allclose(obs["gdp_growth"].values[1:], growth, rtol=1e-9)
    d = obs["distance"].values
    assert d.min() >= 100 and (d == d.T).all()


# ------------------------------------------------------------------- observations

def reporters(obs: xr.Dataset) -> np.ndarray:
    """Countries whose whole row (emigration) or column (immigration) is reported."""
    last = obs["flow"].isel(year=-1).values
    n = last.shape[0]
    off = ~np.eye(n, dtype=bool)
    full_row = np.array([np.isfinite(last[c][off[c]]).all() for c in range(n)])
    full_col = np.array([np.isfinite(last[:, c][off[:, c]]).all() for c in range(n)])
    return full_row | full_col


def test_flow_reporters_are_about_a_third(world):
    obs, truth = world
    share = reporters(obs).mean()
    assert 0.25 <= share <= 0.4
    flow = obs["flow"].values
    assert np.isnan(np.diagonal(flow, axis1=1, axis2=2)).all()
    assert ((obs["flow_weight"].values == 1) == np.isfinite(flow)).all()
    ratio = flow / truth["flow"].values
    assert 0.3 < np.nanmedian(ratio) < 1.2  # under-counted, never wildly off


def test_stock_missing_fraction_and_weights(world):
    obs, truth = world
    observed = obs["stock"].values
    true = truth["stock"].sel(stock_year=obs["census"]).values
    foreign = ~np.eye(truth.sizes["country"], dtype=bool)[None]
    nonzero = foreign & (true >= 1)
    assert 0.07 <= np.isnan(observed[nonzero]).mean() <= 0.13
    assert (observed[foreign & (true < 1)] == 0).all()
    assert ((obs["stock_weight"].values == 1) == np.isfinite(observed)).all()
    ratio = observed[nonzero] / true[nonzero]
    assert 0.9 < np.nanmedian(ratio) < 1.1
    diag = np.diagonal(observed, axis1=1, axis2=2)
    population = obs["population"].sel(stock_year=obs["census"]).values
    assert np.isfinite(diag).all() and (diag <= population).all()


def test_net_migration_observed_with_noise(world):
    obs, truth = world
    assert (obs["net_migration_weight"].values == 1).all()
    diff = obs["net_migration"].values - truth["net_migration"].values
    assert np.abs(diff).max() > 0
    assert np.corrcoef(obs["net_migration"].values.ravel(),
                       truth["net_migration"].values.ravel())[0, 1] > 0.95


# ---------------------------------------------------------------- argument checks

def test_smallest_world_builds():
    obs, truth = synthetic.build_world(5, seed=2)
    schema.check_observations(obs)
    assert truth.sizes["edge"] == 5 * 4 * (1 + 3)


@pytest.mark.parametrize("n", [4, 1, 0, -3, 232])
def test_bad_country_counts_raise(n):
    with pytest.raises(ValueError, match=r"n_countries \(N\).*5\.\.231.*got"):
        synthetic.build_world(n)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"n_countries": 40.0}, "n_countries"),
    ({"n_countries": True}, "n_countries"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"first_year": 1990, "last_year": 1995}, "last_year.*1996"),
    ({"first_year": 2000, "last_year": 1990}, "last_year"),
])
def test_bad_arguments_raise(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        synthetic.build_world(**kwargs)


def test_full_country_set_builds():
    obs, truth = synthetic.build_world(231, seed=0)
    assert truth.sizes["country"] == 231 and obs["country"].values[-1] == "S231"
    assert truth["flow_table"].dtype == np.float32
    assert truth["stock"].dtype == np.float64
    schema.check_observations(obs)
    population = obs["population"].values
    births, deaths = obs["births"].values, obs["deaths"].values
    growth = population[1:] - population[:-1]
    np.testing.assert_allclose(growth, births - deaths + truth["net_migration"].values,
                               atol=1e-6 * population.max())
