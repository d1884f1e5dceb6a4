"""Run every benchmark script in this folder, one after the other (``make bench``).

Each script prints its own table of wall time and peak memory; nothing is asserted.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_baselines.py", "bench_training.py", "bench_estimates.py"]

if __name__ == "__main__":
    status = 0
    for name in SCRIPTS:
        path = HERE / name
        if not path.exists():
            continue
        print(f"\n=== {name} ===", flush=True)
        status |= subprocess.call([sys.executable, str(path), *sys.argv[1:]])
    sys.exit(status)
