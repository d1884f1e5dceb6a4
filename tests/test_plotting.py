"""Figures on a small hand-made world, the geography helpers and the elasticities."""

import copy

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from migflow import elasticities, geography, plotting
from migflow.config import QUICK
from migflow.synthetic import build_world
from migflow.edges import Features
from migflow.training import Run, Simulator, prepare_problem, train

CODES = [f"S{c:03d}" for c in range(1, 7)]
REGIONS = ["Region A", "Region A", "Region B", "Region B", "Region C", "Region C"]
YEARS = np.arange(2000, 2005)
CENSUS = np.array([2000, 2002, 2005])
LEVELS = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
SPREAD = xr.DataArray([0.5, 0.8, 1.0, 1.2, 1.6], dims="quantile", coords={"quantile": LEVELS})
ATTRS = {"data_source": "synthetic"}


def _world() -> dict[str, xr.Dataset]:
    """Estimate files, observations, truth and elasticities of a 6-country toy world."""
    rng = np.random.default_rng(0)
    n, y = len(CODES), len(YEARS)
    xy = rng.uniform(0, 5000, (n, 2))
    offdiag = ~np.eye(n, dtype=bool)
    base = np.where(offdiag, rng.lognormal(8, 1, (y, n, n)), 0.0)
    od = {"origin": CODES, "destination": CODES}
    mean = xr.DataArray(base, dims=("year", "origin", "destination"),
                        coords={"year": YEARS, **od})
    heldout = xr.DataArray(rng.random((n, n)) < 0.3, dims=("origin", "destination"), coords=od)
    flows = xr.Dataset({"flow": SPREAD * mean, "flow_mean": mean,
                        "flow_heldout": (SPREAD * mean).where(heldout),
                        "total_flow": SPREAD * mean.sum(("origin", "destination"))},
                       attrs=ATTRS).transpose("quantile", ...)
    stock = xr.DataArray(rng.lognormal(9, 1, (y + 1, n, n)), dims=("stock_year", "birth",
                                                                    "destination"),
                         coords={"stock_year": np.arange(2000, 2006), "birth": CODES,
                                 "destination": CODES})
    stocks = xr.Dataset({"stock": SPREAD * stock, "stock_mean": stock}, attrs=ATTRS)
    net_mean = mean.sum("origin").rename(destination="country") - mean.sum(
        "destination").rename(origin="country")
    net = xr.Dataset({"net_migration": net_mean + (SPREAD - 1) * abs(net_mean),
                      "net_migration_mean": net_mean}, attrs=ATTRS)
    observed_flow = (mean * rng.lognormal(0, 0.2, base.shape)).where(offdiag)
    obs = xr.Dataset(
        {"flow": observed_flow.where(rng.random(base.shape) < 0.7),
         "stock": stock.sel(stock_year=CENSUS).rename(stock_year="census") * 1.1,
         "net_migration": net_mean * 0.9,
         "distance": (("origin", "destination"),
                      np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1)) + 100.0)},
        coords={"country": CODES, "region": ("country", REGIONS)}, attrs=ATTRS)
    truth = xr.Dataset({"flow": mean * 1.05, "stock": stock, "net_migration": net_mean},
                       attrs=ATTRS)
    cols = ["gdp_per_capita[i]", "distance[jk]", "stock[ij]"]
    elast = xr.Dataset({"mean": ("column", [1.0, 0.3, 0.05]),
                        "std": ("column", [0.5, 0.4, 0.01]),
                        "median": ("column", [0.8, 0.2, 0.04])},
                       coords={"column": cols, "covariate": ("column", ["gdp_per_capita",
                                                                        "distance", "stock"])},
                       attrs=ATTRS)
    return {"flows": flows, "stocks": stocks, "net": net, "obs": obs, "truth": truth,
            "elast": elast}


W = _world()
SHAPES = {c: [[np.array([[x, y], [x + 8, y], [x + 8, y + 6], [x, y + 6]])]]
          for c, x, y in zip(CODES, [0, 20, 40, 60, 80, 100], [0, 10, 20, 30, 40, 50])}
TABLE = pd.DataFrame({"check": "five-year flows", "estimate": ["network", "network", "sd",
                                                                "sd"],
                      "metric": ["pearson_r", "median_relative_error_pct"] * 2,
                      "value": [0.9, 30.0, 0.7, 45.0]})
RELIAB = pd.DataFrame({"nominal": [0.5, 0.9], "empirical": [0.45, 0.85]})
CORRIDORS = [("S001", "S002"), ("S003", "S004")]

# name -> (function of the datasets, dataset key and variable whose absence must be named)
FIGURES = {
    "global_flows": (lambda w: plotting.global_flows(w["flows"], w["truth"]),
                     "flows", "total_flow"),
    "regional_flows": (lambda w: plotting.regional_flows(w["flows"], w["obs"]),
                       "flows", "flow_mean"),
    "regional_flows_region": (lambda w: plotting.regional_flows(w["flows"], w["obs"]),
                              "obs", "region"),
    "corridor_series": (lambda w: plotting.corridor_series(w["flows"], CORRIDORS, w["obs"],
                                                           w["truth"]), "flows", "flow"),
    "stock_series": (lambda w: plotting.stock_series(w["stocks"], CORRIDORS, w["obs"],
                                                     w["truth"]), "stocks", "stock"),
    "stock_errors": (lambda w: plotting.stock_errors(w["stocks"], w["obs"], CORRIDORS),
                     "obs", "stock"),
    "net_migration_series": (lambda w: plotting.net_migration_series(
        w["net"], CODES[:4], w["obs"], w["truth"]), "net", "net_migration"),
    "performance_scatter": (lambda w: plotting.performance_scatter(w["stocks"], w["flows"],
                                                                   w["obs"]),
                            "flows", "flow_heldout"),
    "elasticity_plot": (lambda w: plotting.elasticity_plot(w["elast"]), "elast", "std"),
    "chord_diagram": (lambda w: plotting.chord_diagram(w["flows"], w["obs"]),
                      "flows", "flow_mean"),
    "flow_map_plane": (lambda w: plotting.flow_map(
        w["flows"], w["obs"], geography.positions_from_distance(w["obs"]["distance"]),
        top=10), "flows", "flow_mean"),
    "flow_map_shapes": (lambda w: plotting.flow_map(
        w["flows"], w["obs"], geography.world_positions(CODES, SHAPES), top=10,
        shapes=SHAPES), "obs", "region"),
    "net_migration_map": (lambda w: plotting.net_migration_map(w["net"], w["obs"], SHAPES),
                          "obs", "net_migration"),
}


def _without(key: str, name: str) -> dict:
    w = dict(W)
    w[key] = W[key].drop_vars(name)
    return w


def _data_axes(fig):
    """Axes that show data: visible, framed, not colour bars."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison
            and not hasattr(ax, "_colorbar")]


@pytest.fixture(autouse=True)
def _style():
    plotting.set_style()
    yield
    plotting.plt.close("all")


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_runs_labels_axes_and_says_the_source(name):
    make, _, _ = FIGURES[name]
    fig = make(W)
    assert isinstance(fig, plotting.plt.Figure)
    fig.canvas.draw()  # some errors only show when the figure is drawn
    for ax in _data_axes(fig):
        assert ax.get_xlabel() and ax.get_ylabel(), (name, ax.get_title())
    titles = [fig._suptitle.get_text() if fig._suptitle else ""] + [
        ax.get_title() for ax in fig.axes]
    assert any("SYNTHETIC" in t for t in titles), titles


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_missing_variable_raises_a_named_key_error(name):
    make, key, var = FIGURES[name]
    with pytest.raises(KeyError, match=var):
        make(_without(key, var))


def test_table_figures_need_their_columns():
    fig = plotting.method_heatmap(TABLE, "SYNTHETIC five-year flows")
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
    bold = [t.get_text() for t in fig.axes[0].texts if t.get_fontweight() == "bold"]
    assert bold == ["0.90", "30.00"]  # higher r and lower MRE are best
    with pytest.raises(KeyError, match="value"):
        plotting.method_heatmap(TABLE.drop(columns="value"), "x")
    fig = plotting.reliability_plot(RELIAB, "SYNTHETIC calibration")
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
    with pytest.raises(KeyError, match="empirical"):
        plotting.reliability_plot(RELIAB.drop(columns="empirical"), "x")


@pytest.mark.parametrize("name", ["regional_flows", "chord_diagram", "performance_scatter",
                                  "flow_map_shapes"])
def test_saving_is_byte_stable(name, tmp_path):
    make, _, _ = FIGURES[name]
    plotting.save(make(W), name, tmp_path / "a")
    plotting.save(make(W), name, tmp_path / "b")
    for ext in ("pdf", "png"):
        a = (tmp_path / "a" / f"{name}.{ext}").read_bytes()
        assert a == (tmp_path / "b" / f"{name}.{ext}").read_bytes(), ext
    assert b"CreationDate" not in (tmp_path / "a" / f"{name}.pdf").read_bytes()


def test_regional_components_add_up():
    parts = plotting.regional_components(W["flows"], W["obs"])
    total = W["flows"]["flow_mean"].sum(("origin", "destination"))
    assert np.allclose(parts["inflow"].sum("region") + parts["intra"].sum("region"), total)
    assert np.allclose(parts["net"].sum("region"), 0.0)


def test_chord_layout_closes_the_circle():
    m = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0], [0.0, 4.0, 2.0]])
    sectors, chords = plotting.chord_layout(m)
    spans = sectors[:, 0] - sectors[:, 1]
    assert np.isclose(spans.sum() + 3 * plotting.CHORD_GAP, 2 * np.pi)
    assert np.allclose(spans / spans.sum(), (m.sum(0) + m.sum(1)) / (2 * m.sum()))
    assert set(chords) == {(a, b) for a, b in zip(*np.nonzero(m))}


def test_positions_from_distance_recover_the_plane():
    pos = geography.positions_from_distance(W["obs"]["distance"])
    d = np.hypot(*(pos.values[:, None] - pos.values[None]).T)
    expected = W["obs"]["distance"].values - 100.0
    np.fill_diagonal(expected, 0.0)
    assert np.allclose(d, expected, atol=1e-6)


def test_world_shapes_are_shipped_with_the_environment():
    shapes = geography.world_shapes()
    assert {"USA", "IND", "DEU", "BRA"} <= set(shapes)
    pos = geography.world_positions(["USA", "DEU", "SGP"], shapes)
    assert list(pos.index) == ["USA", "DEU"]
    assert -130 < pos.loc["USA", "x"] < -60 and 45 < pos.loc["DEU", "y"] < 56


# ---------------------------------------------------------------------- elasticities

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    obs, _ = build_world(n_countries=6, seed=1)
    folder = tmp_path_factory.mktemp("run")
    train(obs, QUICK.replace(epochs=2), run_dir=folder, progress=False)
    return obs, folder


def test_elasticities_are_written_and_finite(tiny_run, tmp_path):
    obs, folder = tiny_run
    path = elasticities.write_elasticities(folder, obs, tmp_path / "e.nc", n_edges=40,
                                           n_years=2, seed=3)
    out = xr.load_dataset(path)
    assert out.sizes["column"] == 31 and "stock[ik]" in out["column"].values
    assert "eu_member[i]" not in out["column"].values
    for var in ("mean", "std", "median"):
        assert np.isfinite(out[var]).all() and (out[var] >= 0).all()
    assert out.attrs["data_source"] == "synthetic"
    again = elasticities.elasticities(Run.load(folder), obs, n_edges=40, n_years=2, seed=3)
    assert np.array_equal(again["mean"].values, out["mean"].values)
    plotting.set_style()
    assert plotting.elasticity_plot(out).axes[0].get_xscale() == "log"


def test_elasticity_matches_a_finite_difference(tiny_run):
    """x dlogT/dx by autograd equals d u0 / d log x from the network on shifted inputs."""
    obs, folder = tiny_run
    run = Run.load(folder)
    features = Features(obs, run.scalings, run.edges, cache=False)
    raw = Features(obs, {n: elasticities.IDENTITY for n in run.scalings if n != "stock"},
                   run.edges, cache=False)
    problem = prepare_problem(obs, run.heldout, run.config, torch.device("cpu"))
    sim = Simulator(run.model, features, problem, run.scalings["stock"])
    raw_sim = Simulator(run.model, features, problem, elasticities.IDENTITY)
    ids = torch.arange(5)
    t = 3
    states = elasticities._states(sim, raw_sim, np.array([t]), ids)
    grad, x = elasticities._year_gradients(sim, raw, t, ids, *states[t])
    s_raw, h = states[t]
    full_h = torch.zeros(sim.index.num_edges, run.model.latent_dim)
    full_h[ids] = h
    inputs = sim._inputs(t, ids, sim.stock_scaling.apply(s_raw), full_h)
    col, scaling = 0, run.scalings["gdp_per_capita"]  # gdp_per_capita[i]
    eps = 1e-4
    net = copy.deepcopy(run.model.net).double()
    inputs = inputs.double()
    shifted = inputs.clone()
    shifted[:, col] = torch.as_tensor(scaling.apply(x[:, col] * (1 + eps)))
    with torch.no_grad():
        numeric = ((net(shifted)[:, 0] - net(inputs)[:, 0]) / np.log1p(eps)).numpy()
    dchi_dx = (np.abs(x[:, col]) + 1) ** (scaling.lam - 1) / scaling.std
    analytic = x[:, col] * grad[:, col] * dchi_dx
    assert np.allclose(analytic, numeric, rtol=0.02, atol=1e-5)


# ------------------------------------------------------- figures of notebooks 01 and 02

@pytest.fixture(scope="module")
def small_world():
    return build_world(n_countries=6, seed=1)


def test_data_figures_run_label_and_name_what_is_missing(small_world):
    obs, truth = small_world
    history = pd.DataFrame({"epoch": [1, 2], "stock": [2.0, 1.0], "net_migration": [1.0, 0.5],
                            "flow": [1.0, 0.8], "outflow": [0.0, 0.0], "test_flow": [1.1, 0.9],
                            "total": [4.0, 2.3]})
    made = {"covariate_overview": (plotting.covariate_overview(obs), "gdp_growth"),
            "data_coverage": (plotting.data_coverage(obs), "net_migration"),
            "migrant_stock_totals": (plotting.migrant_stock_totals(obs, truth), "stock")}
    for name, (fig, var) in made.items():
        fig.canvas.draw()
        for ax in _data_axes(fig):
            assert ax.get_xlabel() and (ax.get_ylabel() or name == "data_coverage"), name
        with pytest.raises(KeyError, match=var):
            getattr(plotting, name)(obs.drop_vars(var))
    ax = plotting.loss_curves(history).axes[0]
    assert ax.get_xlabel() and ax.get_ylabel()
    with pytest.raises(KeyError, match="test_flow"):
        plotting.loss_curves(history.drop(columns="test_flow"))


def test_thumbnails_are_small_copies_and_need_figures(tmp_path):
    from PIL import Image

    fig, ax = plt.subplots(figsize=(12, 4), dpi=150)
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "wide.png")
    plt.close(fig)
    (out,) = plotting.thumbnails(tmp_path, tmp_path / "gallery", width=400)
    assert out.name == "wide.png" and Image.open(out).width == 400
    assert out.stat().st_size < (tmp_path / "wide.png").stat().st_size
    with pytest.raises(FileNotFoundError, match="make figures"):
        plotting.thumbnails(tmp_path / "empty", tmp_path / "gallery")
