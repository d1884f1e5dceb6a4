"""Demographic accounting: flows on edges to stocks, year by year.

The stock ``S[i, k]`` counts people born in ``i`` living in ``k`` on 1 January. A flow
``T[e]`` on edge ``e = (i, j, k)`` moves people born in ``i`` from ``j`` to ``k`` during the
year. One year of the recursion (paper.md section 3.1)::

    S'[i, k] = delta_ik * B[i] + (1 - d[k]) * S[i, k] + sum_j T[i, j, k] - sum_k' T[i, k, k']

Births ``B`` add to the native-born diagonal only; deaths act on everybody living in ``k``
at the residence country's crude death rate ``d[k]`` (deaths per person per year). There
is no age structure.

The flow table is sparse: only the modelled edges carry flows, so every sum over edges
is a segmented sum (``index_add``) into an N x N array; nothing of size N^3 is formed.
"""

from __future__ import annotations

import torch


def pair_index(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """Flat index ``a * n + b`` into an N x N array."""
    return a * n + b


def scatter_pairs(values: torch.Tensor, flat_index: torch.Tensor, n: int) -> torch.Tensor:
    """Sum ``values`` (E,) into an N x N array at ``flat_index`` (E,) (a segmented sum)."""
    out = values.new_zeros(n * n)
    return out.index_add(0, flat_index, values).view(n, n)


class EdgeIndex:
    """Precomputed flat indices of an edge list (3, E) of (birth i, origin j, destination k).

    Holding them once avoids recomputing them every year of every epoch.
    """

    def __init__(self, edges: torch.Tensor, n: int):
        if edges.ndim != 2 or edges.shape[0] != 3:
            raise ValueError(f"edges must have shape (3, E), got {tuple(edges.shape)}")
        if edges.numel() and (edges.min() < 0 or edges.max() >= n):
            raise ValueError(f"edge indices must lie in [0, {n}), "
                             f"got [{edges.min()}, {edges.max()}]")
        self.n = n
        self.edges = edges.long()
        i, j, k = self.edges
        self.i, self.j, self.k = i, j, k
        self.ij = pair_index(i, j, n)  # stock the movers leave (born i, living in j)
        self.ik = pair_index(i, k, n)  # stock the movers join (born i, living in k)
        self.jk = pair_index(j, k, n)  # residence-based corridor j -> k

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[1])

    def to(self, device: torch.device | str) -> "EdgeIndex":
        return EdgeIndex(self.edges.to(device), self.n)


def flows_by_corridor(flow: torch.Tensor, index: EdgeIndex) -> torch.Tensor:
    """Residence-based flows ``F[j, k] = sum_i T[i, j, k]`` (N x N)."""
    return scatter_pairs(flow, index.jk, index.n)


def net_migration(corridor_flows: torch.Tensor) -> torch.Tensor:
    """Net migration per country: inflows (column sums) minus outflows (row sums)."""
    return corridor_flows.sum(0) - corridor_flows.sum(1)


def step(stock: torch.Tensor, flow: torch.Tensor, index: EdgeIndex, births: torch.Tensor,
         death_rate: torch.Tensor) -> torch.Tensor:
    """One year of the accounting recursion.

    Parameters
    ----------
    stock : (N, N) tensor
        ``S[i, k]`` on 1 January of year t, rows = country of birth, columns = residence.
    flow : (E,) tensor
        Flows on the edges of ``index`` during year t (persons).
    index : EdgeIndex
        The edges.
    births : (N,) tensor
        Live births in each country during year t.
    death_rate : (N,) tensor
        Deaths per person per year in each country of residence (not per 1000).

    Returns
    -------
    (N, N) tensor
        ``S[i, k]`` on 1 January of year t + 1. Not clipped: a negative cell means the
        flows took out more people than there were, which the loss should see.
    """
    n = index.n
    change = scatter_pairs(flow, index.ik, n) - scatter_pairs(flow, index.ij, n)
    return (1.0 - death_rate)[None, :] * stock + torch.diag(births) + change


def run(stock0: torch.Tensor, flows: torch.Tensor, index: EdgeIndex, births: torch.Tensor,
        death_rate: torch.Tensor) -> torch.Tensor:
    """Stocks on 1 January of every year from the initial stock and all flows.

    ``flows`` has shape (Y, E), ``births`` and ``death_rate`` (Y, N); returns (Y + 1, N, N).
    """
    stocks = [stock0]
    for t in range(flows.shape[0]):
        stocks.append(step(stocks[-1], flows[t], index, births[t], death_rate[t]))
    return torch.stack(stocks)
