"""Where countries are: world outlines for maps, country positions and world regions.

Real data: country outlines come from the Natural Earth 1:110m "admin 0" countries that the
pinned ``geopandas`` package ships (``geopandas/datasets/naturalearth_lowres``), read from
the installed package, never downloaded. That file holds 177 countries; 59 of the 231 model
units (small islands and territories such as SGP, HKG, BHR, MLT) are not in it and are
left off the maps (:func:`world_positions` says which).

Synthetic data: there is no real geography, but the synthetic world's ``distance`` is the
Euclidean distance between countries on a plane plus a constant floor
(:data:`migflow.synthetic.DISTANCE_FLOOR_KM`), so classical multidimensional scaling
recovers the positions exactly, up to a rotation and a reflection
(:func:`positions_from_distance`).
"""

from __future__ import annotations

import logging
import warnings
from importlib import resources, util

import numpy as np
import pandas as pd
import xarray as xr

log = logging.getLogger(__name__)

NE_FILE = ("datasets", "naturalearth_lowres", "naturalearth_lowres.shp")
NE_CODE_FIXES = {"-99": None}  # Kosovo has no ISO3 code there and no model unit here


def regions_of(obs: xr.Dataset) -> pd.Series:
    """World region of every country, from the observations' ``region`` coordinate.

    Parameters
    ----------
    obs : xarray.Dataset
        Observations with a ``region`` coordinate on the ``country`` dimension.

    Returns
    -------
    pandas.Series
        Region name indexed by country code, in the dataset's country order.

    Raises
    ------
    KeyError
        If ``obs`` has no ``region`` coordinate.
    """
    if "region" not in obs.coords and "region" not in obs.variables:
        raise KeyError("observations lack the 'region' coordinate on 'country' that regional "
                       "figures need; rebuild data/processed/<DATA>/observations.nc")
    return pd.Series(obs["region"].values.astype(str), index=obs["country"].values.astype(str),
                     name="region")


def _ne_path():
    if util.find_spec("geopandas") is None:  # pragma: no cover - the pinned environment has it
        raise ImportError("world outlines need the pinned geopandas package "
                          "(requirements.txt); maps are not available without it")
    path = resources.files("geopandas").joinpath(*NE_FILE)
    if not path.is_file():  # geopandas >= 1.0 no longer ships the file
        raise FileNotFoundError(f"{'/'.join(NE_FILE)} is not in the installed geopandas; "
                                "install the version pinned in requirements.txt")
    return path


def world_shapes() -> dict[str, list[list[np.ndarray]]]:
    """Country outlines (lon, lat in degrees) by ISO3 code, from the shipped Natural Earth file.

    Returns
    -------
    dict of str to list of list of numpy.ndarray
        For each code, its polygons; each polygon is a list of rings, the exterior first
        (counter-clockwise) then holes (clockwise), each ring an (n, 2) array.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # shapely.geos via geopandas
        import geopandas
        from shapely.geometry.polygon import orient

        table = geopandas.read_file(_ne_path())
    shapes: dict[str, list[list[np.ndarray]]] = {}
    for code, geom in zip(table["iso_a3"], table.geometry):
        code = NE_CODE_FIXES.get(code, code)
        if code is None or geom is None:
            continue
        polygons = getattr(geom, "geoms", [geom])
        shapes[code] = [[np.asarray(ring.coords) for ring in
                         (orient(p, 1.0).exterior, *orient(p, 1.0).interiors)]
                        for p in polygons]
    return dict(sorted(shapes.items()))


def _ring_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _ring_centroid(ring: np.ndarray) -> tuple[float, float]:
    x, y = ring[:-1, 0], ring[:-1, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2.0
    if abs(area) < 1e-12:
        return float(x.mean()), float(y.mean())
    return (float(((x + x1) * cross).sum() / (6 * area)),
            float(((y + y1) * cross).sum() / (6 * area)))


def world_positions(codes, shapes: dict | None = None) -> pd.DataFrame:
    """Map position (lon, lat) of each country: the centroid of its largest polygon.

    Parameters
    ----------
    codes : sequence of str
        ISO3 codes wanted.
    shapes : dict, optional
        Outlines from :func:`world_shapes` (loaded if not given).

    Returns
    -------
    pandas.DataFrame
        Columns ``x`` (longitude) and ``y`` (latitude), indexed by the codes found; codes
        without an outline are left out (logged).
    """
    shapes = world_shapes() if shapes is None else shapes
    rows = {}
    for code in codes:
        if code in shapes:
            largest = max((p[0] for p in shapes[code]), key=_ring_area)
            rows[code] = _ring_centroid(largest)
    missing = [c for c in codes if c not in rows]
    if missing:
        log.info("%d countries have no outline and are left off the map: %s", len(missing),
                 ", ".join(missing))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["x", "y"])


def positions_from_distance(distance: xr.DataArray, floor: float | None = None) -> pd.DataFrame:
    """Plane positions (km) recovered from a Euclidean distance matrix by classical MDS.

    Parameters
    ----------
    distance : xarray.DataArray
        (origin, destination) distances in km, Euclidean plus a constant ``floor``.
    floor : float, optional
        The constant added to every distance; :data:`migflow.synthetic.DISTANCE_FLOOR_KM`
        if not given.

    Returns
    -------
    pandas.DataFrame
        Columns ``x`` and ``y`` (km, centred), indexed by country code. The sign of each
        axis is fixed so that the result does not depend on the eigen-solver.
    """
    if floor is None:
        from .synthetic import DISTANCE_FLOOR_KM as floor
    d = np.clip(np.asarray(distance.values, dtype=np.float64) - floor, 0.0, None)
    np.fill_diagonal(d, 0.0)
    n = d.shape[0]
    centre = np.eye(n) - np.full((n, n), 1.0 / n)
    b = -0.5 * centre @ (d**2) @ centre
    values, vectors = np.linalg.eigh(b)
    top = np.argsort(values)[::-1][:2]
    xy = vectors[:, top] * np.sqrt(np.clip(values[top], 0.0, None))
    xy *= np.sign(xy[np.argmax(np.abs(xy), axis=0), [0, 1]])  # deterministic orientation
    return pd.DataFrame(xy, index=distance["origin"].values.astype(str), columns=["x", "y"])


def regional_flows(flow: xr.DataArray, region: pd.Series) -> xr.DataArray:
    """Sum (..., origin, destination) flows into (..., from_region, to_region).

    Parameters
    ----------
    flow : xarray.DataArray
        Flows with ``origin`` and ``destination`` dims (NaN counts as 0).
    region : pandas.Series
        Region of every country code (:func:`regions_of`).

    Returns
    -------
    xarray.DataArray
        The flows between regions; the diagonal holds intra-regional flows. Regions are
        ordered as they first appear in ``region``.
    """
    names = list(dict.fromkeys(region.values))

    def member(dim: str, new: str) -> xr.DataArray:
        codes = flow[dim].values.astype(str)
        table = np.array([[region[c] == r for r in names] for c in codes], dtype=np.float64)
        return xr.DataArray(table, dims=(dim, new), coords={dim: flow[dim].values, new: names})

    return xr.dot(flow.fillna(0.0), member("origin", "from_region"),
                  member("destination", "to_region"), dim=["origin", "destination"])
