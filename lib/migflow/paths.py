"""Project folders, derived once from this file's location, and the raw-data directory."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT / "data" / "raw"

# Outputs go under the project root, or under $MIGFLOW_HOME when it is set (the tests use
# this to run the whole pipeline in a scratch folder without touching your results).
HOME = Path(os.environ.get("MIGFLOW_HOME") or ROOT).resolve()
DATA = HOME / "data"
PROCESSED = DATA / "processed"
ESTIMATES = DATA / "estimates"
RUNS = HOME / "runs"
FIGURES = HOME / "figures"

DATA_SOURCES = ("synthetic", "real")


def check_data_source(data: str) -> str:
    """Return ``data`` if it names a known data source, else raise a clear ``ValueError``."""
    if data not in DATA_SOURCES:
        raise ValueError(
            f"unknown DATA={data!r}; choose one of {', '.join(DATA_SOURCES)} "
            "(for example: make all DATA=synthetic)")
    return data


def raw_data_dir(override: str | os.PathLike | None = None) -> Path:
    """Directory holding the raw public files.

    Order of precedence: the ``override`` argument, the ``RAW_DATA_DIR`` environment
    variable, then ``data/raw`` inside the project (where downloads land).
    """
    value = override or os.environ.get("RAW_DATA_DIR") or ""
    return Path(value).expanduser().resolve() if str(value).strip() else RAW
