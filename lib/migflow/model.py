"""The per-edge recurrent network (paper.md sections 2.5, 2.6 and 4.1).

One small MLP cell is applied to every (i, j, k) edge each year::

    (covariates_t, flags, psi(S_t[i, j]), psi(S_t[i, k]), h_t)  ->  (u_t, h_{t+1})

The flow is ``T_t = data_rescale * exp(u_t)`` and ``h_{t+1}`` is the latent state that the
same edge reads next year, so the whole past can shape the present flow. There is no
gating (it is not an LSTM): the recurrence is this cell unrolled over the years.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import RunConfig
from .edges import N_STATIC_INPUTS

ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "relu": nn.ReLU}
N_STOCK_INPUTS = 2


class FlowNet(nn.Module):
    """MLP cell: inputs (E, 36 + 2 + latent) -> log-flow (E,) and next latent (E, latent).

    Initialisation follows the published network: PyTorch's default weights and biases
    drawn from U(-1, 1) in every layer. The output activation is CELU with the configured
    (negative) alpha, the identity above zero and steeply decreasing below.
    """

    def __init__(self, config: RunConfig):
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        self.in_dim = N_STATIC_INPUTS + N_STOCK_INPUTS + config.latent_dim
        layers: list[nn.Module] = []
        width_in = self.in_dim
        for _ in range(config.hidden_layers):
            layers += [nn.Linear(width_in, config.width), ACTIVATIONS[config.activation]()]
            width_in = config.width
        layers += [nn.Linear(width_in, 1 + config.latent_dim), nn.CELU(alpha=config.celu_alpha)]
        self.net = nn.Sequential(*layers)
        self.init_weights()

    def init_weights(self) -> None:
        """Biases ~ U(-1, 1) as in the published network; weights keep PyTorch's default."""
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.uniform_(layer.bias, -1.0, 1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return flows (E,) in persons and the next latent state (E, latent)."""
        out = self.net(x)
        log_flow = out[:, 0].clamp(max=self.config.max_log_flow)
        return self.config.data_rescale * torch.exp(log_flow), out[:, 1:]

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
