"""Out-of-core compute: inputs larger than memory, measured in one run (by hand, not in CI).

    python benchmarks/bench_streaming.py --rows 20000000 --folder /big/disk

Writes three aligned float32 parquet files of ROWS x 128 (uncompressed: random floats do not
compress), runs `triplet-loss compute` on them in a child process, and prints its wall time,
throughput and peak RSS next to the in-memory path (.npy inputs of 1,000,000 rows) in the same
run. At 20,000,000 rows the three inputs are 30 GB, more than this machine's 24 GiB of memory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

D = 128
CHUNK = 1_000_000


def write_parquet(path: Path, rows: int, seed: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    schema = pa.schema([("embedding", pa.list_(pa.float32(), D))])
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            flat = pa.array(rng.standard_normal(n * D, dtype=np.float32))
            writer.write_table(pa.table({"embedding": pa.FixedSizeListArray.from_arrays(flat, D)},
                                        schema=schema), row_group_size=1 << 16)


def run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and the child's own peak RSS in MB of one `triplet-loss` process."""
    t = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "triplet_cli", *args],
                             stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    took = time.perf_counter() - t
    if status:
        raise SystemExit(f"triplet-loss failed (status {status})")
    return took, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--folder", default=None, help="where to write the inputs")
    args = parser.parse_args()
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    print(f"load average {os.getloadavg()}; memory {memory:.1f} GiB")
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        small = []
        rng = np.random.default_rng(1)
        for role in ("a", "p", "n"):
            small.append(Path(folder, f"{role}.npy"))
            np.save(small[-1], rng.standard_normal((CHUNK, D), dtype=np.float32))
        flags = ["--format", "json", "--quiet"]
        run(["compute", "--anchors", str(small[0]), "--positives", str(small[1]),
             "--negatives", str(small[2]), *flags])  # load the kernels once
        took, rss = run(["compute", "--anchors", str(small[0]), "--positives", str(small[1]),
                         "--negatives", str(small[2]), *flags])
        print(f"in memory: 1,000,000 rows (.npy) {took:.2f} s, {CHUNK / took / 1e6:.2f} M "
              f"triplets/s, peak RSS {rss:.0f} MB")
        big = [Path(folder, f"{role}.parquet") for role in ("a", "p", "n")]
        t = time.perf_counter()
        for seed, path in enumerate(big):
            write_parquet(path, args.rows, seed)
        size = sum(p.stat().st_size for p in big) / 1e9
        print(f"wrote 3 x {args.rows:,} x {D} float32 parquet ({size:.1f} GB) in "
              f"{time.perf_counter() - t:.0f} s")
        took, rss = run(["compute", "--anchors", str(big[0]), "--positives", str(big[1]),
                         "--negatives", str(big[2]), *flags])
        print(f"streamed: {args.rows:,} rows (.parquet) {took:.1f} s, "
              f"{args.rows / took / 1e6:.2f} M triplets/s, peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
