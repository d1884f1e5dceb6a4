"""Speed and memory of the six five-year flow methods at 231 countries and 7 periods.

Builds a random but realistic world (log-normal populations, a few per cent foreign-born
concentrated in a sparse set of diasporas, births, deaths, gravity-like moves with
returns, and noisy integer stock tables), then times every method over all periods and
reports the peak memory traced by ``tracemalloc`` and the process's maximum resident set
size. Prints a table; asserts nothing.

Usage: ``python benchmarks/bench_baselines.py [--n 231] [--periods 7] [--seed 0]``
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc

import numpy as np
import xarray as xr

from migflow import baselines as bl


def _diaspora_table(rng: np.random.Generator, pop: np.ndarray) -> np.ndarray:
    """Start stock [birth, residence]: sparse foreign-born columns, native diagonal."""
    n = pop.size
    share = rng.beta(1.2, 14.0, n)  # foreign-born share, mean about 8 %
    mass = rng.lognormal(0.0, 2.0, (n, n)) * (rng.random((n, n)) < 0.25)
    np.fill_diagonal(mass, 0.0)
    mass /= np.maximum(mass.sum(axis=0, keepdims=True), 1e-300)
    stock = mass * (share * pop)[None, :]
    np.fill_diagonal(stock, pop - stock.sum(axis=0))
    return stock


def _step(rng: np.random.Generator, stock: np.ndarray, attract: np.ndarray,
          support: np.ndarray):
    """One five-year step: deaths, births, moves (some returns) and measurement noise."""
    n = stock.shape[0]
    pop = stock.sum(axis=0)
    births = np.round(pop * rng.uniform(0.04, 0.18, n))
    deaths = np.round(pop * rng.uniform(0.025, 0.06, n))
    alive = stock * (1 - deaths / pop)[None, :]
    out = alive * rng.uniform(0.005, 0.05, n)[None, :]  # movers by (birth, origin)
    ret = 0.3 * out
    new = alive - out + ((out - ret) @ attract) * support  # moves along diasporas only
    new[np.arange(n), np.arange(n)] += ret.sum(axis=1) + births
    noise = rng.lognormal(0.0, 0.15, (n, n))
    np.fill_diagonal(noise, 1.0)
    return new * noise, births, deaths


def synthetic_inputs(n: int = 231, periods: int = 7, seed: int = 0):
    """Stock (stock_year, birth, destination), births/deaths/net (year0, country)."""
    rng = np.random.default_rng(seed)
    pop = np.clip(rng.lognormal(15.3, 1.9, n), 1e4, 1.4e9)
    attract = rng.lognormal(0.0, 1.5, (n, n)) * (rng.random((n, n)) < 0.08)
    np.fill_diagonal(attract, 0.0)
    attract /= np.maximum(attract.sum(axis=1, keepdims=True), 1e-300)
    stocks, births, deaths = [np.round(_diaspora_table(rng, pop))], [], []
    support = stocks[0] > 0
    for _ in range(periods):
        s, b, d = _step(rng, stocks[-1], attract, support)
        stocks.append(np.round(s))
        births.append(b)
        deaths.append(d)
    stocks = np.stack(stocks)
    net = (stocks[1:].sum(axis=1) - stocks[:-1].sum(axis=1)) - (np.array(births)
                                                              - np.array(deaths))
    net *= rng.lognormal(0.0, 0.2, net.shape)
    codes = [f"C{i:03d}" for i in range(n)]
    years = 1990 + 5 * np.arange(periods + 1)
    stock = xr.DataArray(stocks, dims=("stock_year", "birth", "destination"),
                         coords={"stock_year": years, "birth": codes, "destination": codes})
    country = {"year0": years[:-1], "country": codes}

    def per_period(a):
        return xr.DataArray(np.asarray(a), dims=("year0", "country"), coords=country)

    return (stock, per_period(births), per_period(deaths), per_period(np.round(net)),
            years[:-1])


def _measure(fn):
    """Wall time of one call, then traced peak of a second identical call."""
    t = time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return wall, peak


def _method_runner(method: str, stock, births, deaths, net, starts, by_birth: bool):
    def run():
        bl.five_year_flows_periods(stock, births, deaths, net, starts, methods=(method,),
                                   by_birth=by_birth)
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=231)
    ap.add_argument("--periods", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    stock, births, deaths, net, starts = synthetic_inputs(args.n, args.periods, args.seed)
    diag = np.diagonal(stock.values, axis1=1, axis2=2).sum() / stock.values.sum()
    nz = (stock.values > 0).mean()
    print(f"inputs: N={args.n}, periods={args.periods}, native share {diag:.3f}, "
          f"non-zero cells {nz:.2f}, world pop {stock.values[0].sum() / 1e9:.2f} bn")
    print(f"{'method':<16}{'by_birth':>9}{'wall s':>9}{'peak MB':>10}")
    rows = [(m, False) for m in bl.ALL_METHODS] + [(m, True) for m in bl.DEMOGRAPHIC_METHODS]
    for method, by_birth in rows:
        wall, peak = _measure(_method_runner(method, stock, births, deaths, net, starts,
                                             by_birth))
        print(f"{method:<16}{str(by_birth):>9}{wall:>9.2f}{peak / 2**20:>10.1f}")
    def all_six():
        bl.five_year_flows_periods(stock, births, deaths, net, starts)

    def all_six_one_period_by_birth():
        t0 = int(starts[0])
        bl.five_year_flows(stock.sel(stock_year=t0, drop=True),
                           stock.sel(stock_year=t0 + 5, drop=True), births.sel(year0=t0),
                           deaths.sel(year0=t0), net.sel(year0=t0), by_birth=True)

    wall, peak = _measure(all_six)
    print(f"{'all six':<16}{'False':>9}{wall:>9.2f}{peak / 2**20:>10.1f}")
    wall, peak = _measure(all_six_one_period_by_birth)
    print(f"{'all six, 1 per.':<16}{'True':>9}{wall:>9.2f}{peak / 2**20:>10.1f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / 2**20 if sys.platform == "darwin" else rss / 1024
    print(f"process max RSS: {rss_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
