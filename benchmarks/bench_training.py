"""Seconds per training epoch and peak memory of the published network at paper scale.

For each number of countries N the script builds a *random* observation dataset in the
layout of :mod:`migflow.schema` (no synthetic world is simulated: covariates, stocks,
flows and net migration are independent random draws of plausible magnitude), with
``1 + diaspora`` origins per birth country so that the edge rule of
:func:`migflow.edges.select_edges` gives ``E = N (1 + diaspora) (N - 1)`` edges, i.e.
about 900,000 at N = 231 with the default 16 diasporas, as in the paper. It then runs
:func:`migflow.training.train` with the :data:`migflow.config.PAPER` network (138
inputs, 7 x 60 tanh, latent 100, 50,000 edges with gradient per year) and reads the
seconds of every epoch (forward through all years, loss, backward, clipping and the
Adam step) from the run's history; the warm-up epochs are dropped.

Every size runs in a fresh subprocess, so the peak resident set size
(``getrusage`` ``ru_maxrss``) is that of one size alone. Torch's global module and
optimiser hooks also give each epoch's process CPU seconds (which a busy machine does
not inflate the way it inflates wall time) and the bytes autograd keeps for the
backward. The parent measures a plain 4096 x 4096 float32 matrix product with the same
number of threads, and every child times the bare MLP on the same numbers of rows (no
gathers, no accounting), so the table says how far an epoch is from the machine's
matmul speed and from the MLP alone, and how much of the graph's memory is the MLP's
activations (intrinsic) rather than the simulator's.

FLOPs counted per epoch: ``Y * f * (E + 2 S)`` with ``f = sum 2 * in * out`` over the
Linear layers (forward of every edge, backward about twice the forward on the S edges
with gradient); activations, gathers and the accounting are not counted.

Usage::

    python benchmarks/bench_training.py [--sizes 40 120 231] [--epochs 2 1 1]
                                        [--warmup 1 0 0] [--threads 2]

``--epochs`` and ``--warmup`` take one value for all sizes or one per size. At paper
scale an epoch takes minutes on a laptop CPU, so by default N >= 100 is timed on one
cold epoch (its first-call overhead is small next to the epoch; the activation memory
is returned to the system and faulted in again every epoch anyway). Prints a table;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
import xarray as xr
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.optim.optimizer import register_optimizer_step_post_hook

from migflow import schema
from migflow.config import PAPER
from migflow.edges import select_edges
from migflow.model import FlowNet
from migflow.training import train

RESULT_TAG = "BENCH-RESULT "


# ---------------------------------------------------------------- random inputs

def random_observations(n: int, n_years: int = 34, diaspora: int = 16, seed: int = 0,
                        min_stock: float = PAPER.min_stock) -> xr.Dataset:
    """A random observation dataset with the paper's shapes (see the module docstring).

    Parameters
    ----------
    n : int
        Number of countries.
    n_years : int
        Number of flow years (stock years are one more; censuses every five years and
        the last stock year).
    diaspora : int
        Foreign residence countries with a stock of every birth country (at most n - 1).
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    min_stock : float
        The edge threshold: every diaspora stock is at least twice this, so that each
        gives its ``n - 1`` edges.

    Returns
    -------
    xarray.Dataset
        Passes :func:`migflow.schema.check_observations`.
    """
    rng = np.random.default_rng(seed)
    diaspora = min(diaspora, n - 1)
    first = 1990
    years = np.arange(first, first + n_years)
    stock_years = np.arange(first, first + n_years + 1)
    census = np.unique(np.r_[stock_years[::5], stock_years[-1]])
    n_stock, n_census = len(stock_years), len(census)
    off = ~np.eye(n, dtype=bool)

    # stocks: native diagonal plus `diaspora` foreign residence countries per birth country
    native = np.clip(rng.lognormal(np.log(5e6), 1.5, n), 1e5, 1.4e9)
    stock0 = np.zeros((n, n))
    for i in range(n):
        others = np.delete(np.arange(n), i)
        hosts = rng.choice(others, diaspora, replace=False)
        stock0[i, hosts] = np.maximum(native[i] * rng.lognormal(np.log(2e-3), 1.5, diaspora),
                                      2 * min_stock + 10)
    stock0[np.arange(n), np.arange(n)] = native
    growth = rng.lognormal(0.0, 0.1, (n_census, n, n)).cumprod(axis=0)
    stock = np.round(stock0[None] * growth)
    stock[:, off] *= rng.random((n_census, n, n))[:, off] > 0.05  # a few stocks of 0
    stock[rng.random(stock.shape) < 0.02] = np.nan  # a few missing cells
    stock[0] = np.nan_to_num(stock[0])  # the initial condition is complete

    population = np.nan_to_num(stock[0]).sum(0)[None] * np.exp(
        np.cumsum(rng.normal(0.01, 0.005, (n_stock, n)), axis=0))
    birth_rate = rng.uniform(8, 45, (n_years, n))
    death_rate = rng.uniform(4, 18, (n_years, n))
    distance = rng.uniform(100, 20000, (n, n))
    distance = (distance + distance.T) / 2
    np.fill_diagonal(distance, 100.0)

    def sim(shape):
        s = rng.random(shape)
        return (s + np.swapaxes(s, -1, -2)) / 2

    conflict = np.round(rng.lognormal(7.5, 1.2, (n_years, n)) * (rng.random((n_years, n))
                                                                  < 0.03))
    refugees = np.round(rng.lognormal(6, 2, (n_years, n, n))
                        * (rng.random((n_years, n, n)) < 0.02))
    refugees[:, ~off] = 0.0
    trade = rng.lognormal(18, 2.5, (n_years, n, n))
    trade[:, ~off] = 0.0
    colonial = np.triu(rng.random((n, n)) < 0.03, 1)
    colonial = (colonial | colonial.T).astype(float)

    flow = np.round(rng.lognormal(6, 2, (n_years, n, n)))
    observed = (rng.random((1, n, n)) < 0.3) & (rng.random((n_years, n, n)) < 0.3) & off
    flow[~observed] = np.nan
    net = np.round(rng.normal(0, 5e4, (n_years, n)))
    net[:, rng.random(n) > 0.15] = np.nan

    values = {
        "gdp_per_capita": rng.lognormal(8.5, 1.2, (n_years, n)),
        "gdp_growth": rng.normal(2.5, 3.0, (n_years, n)),
        "trade": trade,
        "population": population,
        "life_expectancy": rng.uniform(45, 85, (n_years, n)),
        "birth_rate": birth_rate,
        "death_rate": death_rate,
        "distance": distance,
        "linguistic_similarity": sim((n, n)),
        "religious_similarity": sim((n, n)),
        "conflict_deaths": conflict,
        "refugees": refugees,
        "colonial_tie": colonial,
        "eu_member": (rng.random((n_years, n)) < 0.2).astype(float),
        "births": np.round(birth_rate / 1000 * population[:-1]),
        "deaths": np.round(death_rate / 1000 * population[:-1]),
        "stock": stock,
        "net_migration": net,
        "flow": flow,
    }
    for name in schema.TARGET_VARS:
        values[f"{name}_weight"] = np.where(np.isnan(values[name]), 0.0, 1.0)
    codes = [f"R{c:03d}" for c in range(n)]
    coords = {"country": codes, "birth": codes, "origin": codes, "destination": codes,
              "year": years, "stock_year": stock_years, "census": census}
    ds = xr.Dataset({name: (var.dims, values[name])
                     for name, var in schema.OBSERVATION_VARS.items()}, coords=coords)
    schema.check_observations(ds, "random benchmark dataset")
    return ds


# ---------------------------------------------------------------- measurements

def _max_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def mlp_flops_per_edge(model: FlowNet) -> int:
    """Forward FLOPs of the MLP for one edge: 2 * in * out summed over the Linear layers."""
    return sum(2 * m.in_features * m.out_features for m in model.modules()
               if isinstance(m, torch.nn.Linear))


def matmul_gflops(size: int = 4096, repeats: int = 3) -> float:
    """GFLOP/s of a ``size`` x ``size`` float32 matrix product (best of ``repeats``)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


class EpochProbe:
    """Wall and CPU seconds of every epoch and the bytes autograd keeps for its backward.

    An epoch starts at the first module call after an optimiser step (or the first call
    of all) and ends at the next optimiser step. Both are seen through torch's global
    hooks and saved tensors through :func:`torch.autograd.graph.saved_tensors_hooks`, so
    nothing inside :func:`migflow.training.train` is touched.
    """

    def __init__(self):
        self.epochs: list[tuple[float, float, int]] = []  # (wall s, CPU s, saved bytes)
        self._start = None
        self._saved: dict[int, int] = {}

    def _on_forward(self, module, args) -> None:
        if self._start is None:
            self._start = (time.perf_counter(), time.process_time())
            self._saved = {}

    def _on_step(self, optimizer, args, kwargs) -> None:
        if self._start is not None:
            wall, cpu = self._start
            self.epochs.append((time.perf_counter() - wall, time.process_time() - cpu,
                                sum(self._saved.values())))
            self._start = None

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._start is not None:
            storage = tensor.untyped_storage()
            self._saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    def __enter__(self) -> "EpochProbe":
        self._hooks = [register_module_forward_pre_hook(self._on_forward),
                       register_optimizer_step_post_hook(self._on_step)]
        self._saving = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._saving.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._saving.__exit__(*exc)
        for hook in self._hooks:
            hook.remove()


def mlp_alone(model: FlowNet, n_edges: int, n_grad: int, chunk: int = 262144) -> dict:
    """The bare MLP on one year's rows: all edges forward, ``n_grad`` forward + backward.

    Returns
    -------
    dict
        ``wall_s`` and ``cpu_s`` of the year, ``gemm_share`` (share of the profiled
        forward + backward time spent in matrix products, the rest being element-wise
        work: tanh, CELU, bias copies and their backward) and ``saved_bytes_per_row``
        (what autograd keeps per row with gradient: the intrinsic activation memory).
    """
    x = torch.randn(min(chunk, n_edges), model.in_dim)
    rest = max(n_edges - n_grad, 0)
    with torch.no_grad():
        model(x[:1024])
        wall, cpu = time.perf_counter(), time.process_time()
        done = 0
        while done < rest:
            rows = min(chunk, rest - done)
            model(x[:rows])
            done += rows
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    xg = torch.randn(n_grad, model.in_dim)

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        f, z = model(xg)
        (f.sum() + z.sum()).backward()

    fwd_bwd()
    wall_g, cpu_g = time.perf_counter(), time.process_time()
    fwd_bwd()
    wall += time.perf_counter() - wall_g
    cpu += time.process_time() - cpu_g
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fwd_bwd()
    gemm = total = 0.0
    for ev in prof.key_averages():
        if ev.key.startswith("aten::") and ev.self_cpu_time_total > 0:
            total += ev.self_cpu_time_total
            if ev.key in ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul"):
                gemm += ev.self_cpu_time_total
    saved: dict[int, int] = {}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randn(4096, model.in_dim))
    return {"wall_s": wall, "cpu_s": cpu, "gemm_share": gemm / total if total else 0.0,
            "saved_bytes_per_row": sum(saved.values()) / 4096}


def child(n: int, epochs: int, warmup: int, threads: int, years: int, diaspora: int,
          seed: int) -> dict:
    """Measure one size in this (fresh) process and return the result as a dict."""
    torch.set_num_threads(threads)
    t = time.perf_counter()
    ds = random_observations(n, years, diaspora, seed)
    edges = select_edges(ds["stock"].values, PAPER.min_stock)
    build_s = time.perf_counter() - t
    rss_inputs = _max_rss_mb()
    config = PAPER.replace(epochs=warmup + epochs, seed=seed)
    t = time.perf_counter()
    with EpochProbe() as probe:
        run = train(ds, config, progress=False)
    total_s = time.perf_counter() - t
    rss_peak = _max_rss_mb()
    seconds = run.history["seconds"].to_numpy()
    timed = probe.epochs[warmup:]
    epoch_s = float(seconds[warmup:].mean())
    epoch_cpu = float(np.mean([cpu for _, cpu, _ in timed]))
    n_edges = int(edges.shape[1])
    n_grad = min(config.sample_size, n_edges)
    model = FlowNet(config)
    flops = mlp_flops_per_edge(model)
    alone = mlp_alone(model, n_edges, n_grad)
    epoch_flops = years * flops * (n_edges + 2 * n_grad)
    return {
        "n": n, "edges": n_edges, "grad_edges": n_grad, "in_dim": model.in_dim,
        "parameters": model.count_parameters(), "threads": threads, "epochs": epochs,
        "warmup": warmup, "build_s": build_s, "setup_s": total_s - float(seconds.sum()),
        "epoch_s": epoch_s, "epoch_s_all": seconds.tolist(), "epoch_cpu_s": epoch_cpu,
        "cpu_use": epoch_cpu / (threads * float(np.mean([w for w, _, _ in timed]))),
        "rss_inputs_mb": rss_inputs, "rss_peak_mb": rss_peak,
        "graph_gb": max(b for _, _, b in probe.epochs) / 2**30,
        "mlp_graph_gb": alone["saved_bytes_per_row"] * n_grad * years / 2**30,
        "gflop_epoch": epoch_flops / 1e9, "gflops": epoch_flops / epoch_s / 1e9,
        "mlp_epoch_cpu_s": alone["cpu_s"] * years,
        "mlp_gflops": epoch_flops / (alone["cpu_s"] * years / threads) / 1e9,
        "gemm_share": alone["gemm_share"], "years": years,
    }


# ---------------------------------------------------------------- driver

def _per_size(values: list[int], sizes: list[int], name: str) -> list[int]:
    if len(values) == 1:
        return values * len(sizes)
    if len(values) != len(sizes):
        raise SystemExit(f"--{name} takes one value or one per size ({len(sizes)})")
    return values


def _verdict(r: dict, matmul: float) -> list[str]:
    """What bounds the epoch's time and memory, judged on CPU seconds (robust to a busy
    machine) and on the bytes autograd keeps."""
    lines = []
    share = r["mlp_epoch_cpu_s"] / r["epoch_cpu_s"]
    if share < 0.5:
        lines.append(f"time: overhead-bound: the bare MLP is {share:.0%} of the epoch's CPU "
                     "time; the rest is gathers, concatenation, copies, scatter and autograd "
                     "bookkeeping outside the MLP (memory traffic)")
    elif r["mlp_gflops"] < 0.5 * matmul:
        lines.append(f"time: MLP-bound ({share:.0%} of the epoch's CPU time), and the MLP is "
                     f"memory/element-wise-bound: {r['mlp_gflops'] / matmul:.0%} of the matmul "
                     f"rate, {r['gemm_share']:.0%} of its time in GEMM (60-wide layers; tanh, "
                     "CELU, bias copies and their backward take the rest)")
    else:
        lines.append(f"time: compute-bound: the MLP ({share:.0%} of the epoch) runs near the "
                     "matmul rate")
    if r["cpu_use"] < 0.8:
        lines.append(f"      the process got {r['cpu_use']:.0%} of its {r['threads']} thread(s) "
                     "while training: other load on the machine inflates the wall time")
    excess = r["graph_gb"] - r["mlp_graph_gb"]
    lines.append(f"memory: autograd keeps {r['graph_gb']:.2f} GB for the backward; the MLP "
                 f"activations of the {r['grad_edges']:,} gradient edges x {r['years']} years "
                 f"account for {r['mlp_graph_gb']:.2f} GB, the remaining {excess:.2f} GB is "
                 "kept by the simulator around the MLP")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[40, 120, 231],
                    help="numbers of countries, each measured in its own subprocess")
    ap.add_argument("--epochs", type=int, nargs="+", default=None,
                    help="timed epochs, one value or one per size (default 2, 1 at N >= 100)")
    ap.add_argument("--warmup", type=int, nargs="+", default=None,
                    help="untimed first epochs, one value or one per size "
                         "(default 1, 0 at N >= 100)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="torch intra-op threads (default: torch's default)")
    ap.add_argument("--years", type=int, default=34, help="flow years (paper: 34)")
    ap.add_argument("--diaspora", type=int, default=16,
                    help="foreign residence countries per birth country (E ~ N 17 (N - 1))")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child is not None:
        result = child(args.child, args.epochs[0], args.warmup[0], args.threads, args.years,
                       args.diaspora, args.seed)
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0

    sizes = args.sizes
    epochs = _per_size(args.epochs or [2 if n < 100 else 1 for n in sizes], sizes, "epochs")
    warmup = _per_size(args.warmup or [1 if n < 100 else 0 for n in sizes], sizes, "warmup")
    torch.set_num_threads(args.threads)
    matmul = matmul_gflops()
    print(f"PAPER network {PAPER.hidden_layers}x{PAPER.width} ({PAPER.activation}), latent "
          f"{PAPER.latent_dim}, {PAPER.sample_size:,} edges with gradient per year; "
          f"{args.years} years; torch {torch.__version__}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"plain 4096x4096 float32 matmul: {matmul:.1f} GFLOP/s")
    results = []
    start = time.perf_counter()
    for n, e, w in zip(sizes, epochs, warmup):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n),
               "--epochs", str(e), "--warmup", str(w), "--threads", str(args.threads),
               "--years", str(args.years), "--diaspora", str(args.diaspora),
               "--seed", str(args.seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
        if proc.returncode != 0 or not lines:
            print(f"N={n}: failed (exit {proc.returncode})\n{proc.stderr[-3000:]}")
            continue
        r = json.loads(lines[-1][len(RESULT_TAG):])
        results.append(r)
        print(f"  N={n}: {r['edges']:,} edges, epochs {['%.1f' % s for s in r['epoch_s_all']]}"
              f" s (warm-up {w}), inputs built in {r['build_s']:.1f} s, train setup "
              f"{r['setup_s']:.1f} s", flush=True)

    print()
    head = (f"{'N':>4} {'edges':>9} {'grad':>7} {'s/epoch':>8} {'CPU s':>7} {'epochs':>6} "
            f"{'peak RSS':>9} {'graph':>8} {'GFLOP':>6} {'GFLOP/s':>8} {'% mm':>5} "
            f"{'MLP GF/s':>9}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['n']:>4} {r['edges']:>9,} {r['grad_edges']:>7,} {r['epoch_s']:>8.1f} "
              f"{r['epoch_cpu_s']:>7.1f} {r['epochs']:>3}+{r['warmup']:<2} "
              f"{r['rss_peak_mb'] / 1024:>7.2f}GB {r['graph_gb']:>6.2f}GB "
              f"{r['gflop_epoch']:>6.0f} {r['gflops']:>8.2f} {r['gflops'] / matmul:>5.0%} "
              f"{r['mlp_gflops']:>9.2f}")
    print("\ncolumns: s/epoch = mean wall seconds of the timed epochs (forward over all years,"
          " loss, backward, clipping, Adam step; from the run's history); CPU s = process CPU"
          " seconds of the same epochs; epochs = timed+warm-up; peak RSS = max resident set"
          " of the size's process (its inputs alone: "
          + ", ".join(f"{r['rss_inputs_mb'] / 1024:.2f}" for r in results) + " GB); graph ="
          " bytes autograd keeps for the backward of one epoch; GFLOP = counted MLP FLOPs"
          " per epoch; GFLOP/s on the wall time; % mm = that against the plain matmul;"
          " MLP GF/s = the same rows through the bare MLP (no gathers, no accounting), on"
          " its CPU time per thread.")
    print("\nwhat bounds the epoch:")
    for r in results:
        for k, line in enumerate(_verdict(r, matmul)):
            print(f"  {'N=' + str(r['n']) if k == 0 else '':<6}{line}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
