"""Unit tests of the transforms, the accounting recursion, the loss and the config."""

import numpy as np
import pytest
import torch

from migflow import accounting
from migflow.config import PAPER, QUICK, RunConfig
from migflow.loss import Standardiser, banded_loss
from migflow.model import FlowNet
from migflow.paths import check_data_source
from migflow.transforms import fit_scaling, yeo_johnson, yeo_johnson_inverse


@pytest.mark.parametrize("lam", [0.0, 0.25, 0.5, 1.0, 1.5])
def test_yeo_johnson_round_trip(lam):
    x = np.array([-1e6, -123.4, -1.0, -1e-3, 0.0, 1e-3, 0.5, 7.0, 5e4, 3e8])
    y = yeo_johnson(x, lam)
    np.testing.assert_allclose(yeo_johnson_inverse(y, lam), x, rtol=1e-9, atol=1e-9)
    xt = torch.tensor(x, dtype=torch.float64)
    torch.testing.assert_close(yeo_johnson_inverse(yeo_johnson(xt, lam), lam), xt)


def test_yeo_johnson_is_odd_and_matches_formula():
    x = np.array([3.0, 15.0, 99.0])
    np.testing.assert_allclose(yeo_johnson(x, 0.5), 2 * (np.sqrt(x + 1) - 1))
    np.testing.assert_allclose(yeo_johnson(-x, 0.5), -yeo_johnson(x, 0.5))
    np.testing.assert_allclose(yeo_johnson(x, 0.0), np.log1p(x))


def test_fit_scaling_standardises():
    rng = np.random.default_rng(0)
    x = rng.lognormal(10, 2, size=5000)
    s = fit_scaling(x)
    z = s.apply(x)
    assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9
    assert 0.0 <= s.lam < 0.3  # a log-normal wants a log-like transform


def test_accounting_hand_computed_three_countries():
    # stocks S[birth, residence] on 1 January
    s = torch.tensor([[1000.0, 50.0, 0.0],
                      [20.0, 500.0, 10.0],
                      [0.0, 30.0, 200.0]], dtype=torch.float64)
    # edges (birth, origin, destination) and their flows
    edges = torch.tensor([[0, 0, 0, 1, 2],
                          [0, 0, 1, 1, 1],
                          [1, 2, 0, 2, 2]])
    flows = torch.tensor([10.0, 5.0, 4.0, 8.0, 6.0], dtype=torch.float64)
    births = torch.tensor([30.0, 12.0, 5.0], dtype=torch.float64)
    death_rate = torch.tensor([0.01, 0.02, 0.05], dtype=torch.float64)
    index = accounting.EdgeIndex(edges, 3)
    got = accounting.step(s, flows, index, births, death_rate)
    # by hand: S' = diag(B) + (1 - d_k) S + in - out
    expected = torch.tensor([
        [30 + 0.99 * 1000 - 10 - 5 + 4, 0.98 * 50 + 10 - 4, 0.95 * 0 + 5],
        [0.99 * 20, 12 + 0.98 * 500 - 8, 0.95 * 10 + 8],
        [0.99 * 0, 0.98 * 30 - 6, 5 + 0.95 * 200 + 6],
    ], dtype=torch.float64)
    torch.testing.assert_close(got, expected)
    f = accounting.flows_by_corridor(flows, index)
    assert float(f[0, 1]) == 10 and float(f[1, 2]) == 14 and float(f[1, 0]) == 4
    net = accounting.net_migration(f)
    assert abs(float(net.sum())) < 1e-12
    torch.testing.assert_close(net, torch.tensor([4 - 15.0, 10 - 18.0, 5 + 14.0],
                                                 dtype=torch.float64))


def test_edge_index_rejects_bad_edges():
    with pytest.raises(ValueError, match=r"\(3, E\)"):
        accounting.EdgeIndex(torch.zeros(2, 4, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="lie in"):
        accounting.EdgeIndex(torch.tensor([[0], [1], [5]]), 3)


def test_banded_loss_zero_inside_band_and_grows_outside():
    data = torch.tensor([100.0, 1e4, 5e5, -2e3])
    mask = torch.ones(4, dtype=torch.bool)
    w = torch.ones(4)
    st = Standardiser.fit(data, mask, 0.5)
    assert float(banded_loss(data, data, mask, w, st, 0.01)) == 0.0
    z = st(data)
    # a prediction 5% of |z| away in standardised space is inside the 10% band
    inside = torch.tensor([float(v) for v in z + 0.05 * z.abs()])
    from migflow.transforms import yeo_johnson_inverse
    pred_inside = yeo_johnson_inverse(inside * st.std + st.mean, 0.5)
    assert float(banded_loss(pred_inside, data, mask, w, st, 0.01)) == pytest.approx(0, abs=1e-6)
    losses = [float(banded_loss(data * f, data, mask, w, st, 0.01)) for f in (1.5, 3.0, 10.0)]
    assert 0 < losses[0] < losses[1] < losses[2]
    assert float(banded_loss(data, data, torch.zeros(4, dtype=torch.bool), w, st, 0.01)) == 0


def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        RunConfig(epochs=-1)
    with pytest.raises(ValueError, match="device"):
        RunConfig(device="tpu")
    with pytest.raises(ValueError, match="unknown config fields"):
        RunConfig.from_dict({"learning_rate": 0.002})
    assert RunConfig.from_json(PAPER.to_json()) == PAPER
    assert FlowNet(PAPER).count_parameters() == 36461  # the published network's size
    assert (PAPER.lr, PAPER.weight_stock, PAPER.weight_outflow) == (1e-3, 10.0, 0.1)
    assert QUICK.epochs > 0


def test_unknown_data_source_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown DATA='census'.*synthetic, real"):
        check_data_source("census")
