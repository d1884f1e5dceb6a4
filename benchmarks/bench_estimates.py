"""Peak memory and time of writing the estimate files at paper scale (issue: bounded memory).

Builds random realisations for N countries, 34 years and E edges in memory-mapped files
(as :func:`migflow.ensemble.run_ensemble` does), then times
:func:`migflow.ensemble.write_estimates`, which summarises them year by year into the
netCDF files, including the full flow table by birthplace. Prints seconds and the peak
resident memory of a fresh subprocess. Nothing is asserted.

    python benchmarks/bench_estimates.py --countries 231 --edges 900000 --realisations 8
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr


def child(n: int, n_edges: int, n_real: int, years: int, members: int) -> None:
    from migflow.ensemble import Calibration, write_estimates

    rng = np.random.default_rng(0)
    codes = np.array([f"S{i:03d}" for i in range(1, n + 1)])
    ds = xr.Dataset(coords={"country": codes, "year": np.arange(1990, 1990 + years),
                            "stock_year": np.arange(1990, 1991 + years)})
    edges = np.stack([rng.integers(0, n, n_edges) for _ in range(3)])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shapes = {"edge_flows": (years, n_edges), "flows": (years, n, n),
                  "stocks": (years + 1, n, n), "net_migration": (years, n)}
        arrays = {}
        for name, shape in shapes.items():
            arr = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=np.float32,
                                            shape=(n_real, *shape))
            for r in range(n_real):
                arr[r] = rng.lognormal(3, 2, shape).astype(np.float32)
            arr.flush()
            arrays[name] = np.load(tmp / f"{name}.npy", mmap_mode="r")
        member_of = np.repeat(np.arange(members), n_real // members)
        heldouts = [rng.random((n, n)) < 0.2 for _ in range(members)]
        cal = Calibration.from_residuals(rng.normal(0, 0.8, 5000), rng.lognormal(3, 2, 5000),
                                         draws=4, seed=0)
        t0 = time.perf_counter()
        write_estimates(arrays, ds, edges, member_of, heldouts, (0.05, 0.25, 0.5, 0.75, 0.95),
                        {"title": "benchmark"}, tmp / "out", cal)
        seconds = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (tmp / "out").iterdir()) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{n:>5} {n_edges:>9} {n_real:>5} {seconds:>9.1f} {peak:>10.2f} {size:>9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--countries", type=int, nargs="+", default=[40, 231])
    parser.add_argument("--edges", type=int, nargs="+", default=[12000, 900000])
    parser.add_argument("--realisations", type=int, default=8)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--years", type=int, default=34)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.countries[0], args.edges[0], args.realisations, args.years, args.members)
        return
    print("    N     edges  real   seconds  peak RSS GB  files MB")
    for n, e in zip(args.countries, args.edges):
        subprocess.run([sys.executable, __file__, "--child", "--countries", str(n), "--edges",
                        str(e), "--realisations", str(args.realisations), "--members",
                        str(args.members), "--years", str(args.years)], check=True)
    print("(target for N=231 with the full flow table: <= 4 GB peak)")


if __name__ == "__main__":
    main()
