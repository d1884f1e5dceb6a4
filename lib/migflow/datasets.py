"""Build, save and load the processed dataset of a data source (synthetic or real).

This is the one place where the data source matters: every later step reads
``data/processed/<DATA>/observations.nc`` (and, for the synthetic world only,
``truth.nc``) in the schema of :mod:`migflow.schema`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import xarray as xr

from . import paths, schema

log = logging.getLogger(__name__)


def processed_dir(data: str) -> Path:
    return paths.PROCESSED / paths.check_data_source(data)


def build(data: str, n_countries: int = 40, seed: int = 0,
          raw_dir: str | os.PathLike | None = None) -> tuple[xr.Dataset, xr.Dataset | None]:
    """Assemble (observations, truth) for ``data``; the truth is None for real data."""
    paths.check_data_source(data)
    if data == "synthetic":
        from .synthetic import build_world

        obs, truth = build_world(n_countries=n_countries, seed=seed)
    else:
        from .realdata import build_real_dataset

        obs, truth = build_real_dataset(raw_dir=raw_dir or None), None
    schema.check_observations(obs, source=f"{data} dataset")
    return obs, truth


def _write_atomic(ds: xr.Dataset, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    ds.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)
    log.info("wrote %s", path)


def save(obs: xr.Dataset, truth: xr.Dataset | None, folder: str | os.PathLike) -> Path:
    """Write ``observations.nc`` (and ``truth.nc``) into ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if truth is not None:
        _write_atomic(truth, folder / "truth.nc")
    _write_atomic(obs, folder / "observations.nc")
    return folder


def load(data: str, folder: str | os.PathLike | None = None
         ) -> tuple[xr.Dataset, xr.Dataset | None]:
    """Read the processed (observations, truth) of ``data`` (truth None when absent)."""
    folder = Path(folder) if folder is not None else processed_dir(data)
    obs_path = folder / "observations.nc"
    if not obs_path.exists():
        raise FileNotFoundError(f"{obs_path} not found; build it with `make data DATA={data}`")
    obs = xr.load_dataset(obs_path, engine="h5netcdf")
    truth_path = folder / "truth.nc"
    truth = xr.load_dataset(truth_path, engine="h5netcdf") if truth_path.exists() else None
    return obs, truth


def label(ds: xr.Dataset) -> str:
    """'SYNTHETIC' or 'REAL', for figure titles: every figure says what it shows."""
    return "SYNTHETIC" if ds.attrs.get("data_source") == "synthetic" else "REAL"
