"""Out-of-core compute: inputs larger than memory, measured in one run (by hand, not in CI).

    python benchmarks/bench_streaming.py --rows 20000000 --folder /big/disk
    python benchmarks/bench_streaming.py --rows 6000000 --row-group-rows 500000 \\
        --compression snappy --no-npy        # files as pyarrow and polars write them

Writes three aligned float32 parquet files of ROWS x 128 (row groups of --row-group-rows rows,
each written by its own `ParquetWriter.write_table` call; uncompressed by default: random floats
do not compress), runs `triplet-loss compute` on them in a child process, and prints its wall
time, throughput and peak RSS (the child's ru_maxrss, from wait4), next to the in-memory path
(.npy inputs of 1,000,000 rows) in the same run. At 20,000,000 rows the three inputs are 30 GB,
more than this machine's 24 GiB of memory. --stdin pipes the anchors through stdin (`-`).
The files live in a temporary folder under --folder (default: $TMPDIR), removed at the end.

The inputs are written by a separate process: Linux starts a child's ru_maxrss at its parent's
peak RSS (exec records the old address space's high-water mark), so a parent that had just
written 256 MB row groups would report its own peak as the CLI's (measured: 970 MB instead of
the CLI's 780 MB). The script prints its own peak, the floor under every figure.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

D = 128
CHUNK = 1_000_000


def write_parquet(path: Path, rows: int, seed: int, row_group_rows: int, compression: str,
                  fixed: bool) -> None:
    """ROWS x D float32 rows, one write_table call (one row group) per row_group_rows rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    value_type = pa.list_(pa.float32(), D) if fixed else pa.list_(pa.float32())
    schema = pa.schema([("embedding", value_type)])
    with pq.ParquetWriter(path, schema, compression=compression) as writer:
        for start in range(0, rows, row_group_rows):
            n = min(row_group_rows, rows - start)
            flat = pa.array(rng.standard_normal(n * D, dtype=np.float32))
            column = (pa.FixedSizeListArray.from_arrays(flat, D) if fixed else
                      pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * D, D,
                                                                  dtype=np.int32)), flat))
            writer.write_table(pa.table({"embedding": column}, schema=schema),
                               row_group_size=row_group_rows)


def write_npy(paths: list[Path]) -> None:
    rng = np.random.default_rng(1)
    for path in paths:
        np.save(path, rng.standard_normal((CHUNK, D), dtype=np.float32))


def in_child(function: object, *args: object) -> None:
    """function(*args) in a fresh process, so that this one stays small (see the docstring)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(function, args)


def run(args: list[str], stdin: Path | None = None) -> tuple[float, float]:
    """Wall seconds and the child's own peak RSS in MB of one `triplet-loss` process."""
    t = time.perf_counter()
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as source:
        child = subprocess.Popen([sys.executable, "-m", "triplet_cli", *args],
                                 stdin=source, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
    took = time.perf_counter() - t
    if status:
        raise SystemExit(f"triplet-loss failed (status {status})")
    return took, usage.ru_maxrss / 1024


def print_environment() -> None:
    import pyarrow as pa

    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines
                if line.startswith("model name")), platform.processor())
    print(f"{cpu}, {os.cpu_count()} cores, {memory:.1f} GiB; load average {os.getloadavg()}")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, pyarrow {pa.__version__} "
          f"(memory pool {pa.default_memory_pool().backend_name})")
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            print(f"BLAS: {pool['internal_api']} {pool.get('version')} "
                  f"{pool.get('architecture', '')}, {pool['num_threads']} threads")
    except ImportError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--row-group-rows", type=int, default=1 << 16,
                        help="rows per row group (pyarrow's and polars' defaults write "
                             "500,000 to 1,048,576)")
    parser.add_argument("--compression", default="none", help="none, snappy, zstd, ...")
    parser.add_argument("--list", action="store_true",
                        help="list<float> rows instead of fixed_size_list<float>[128]")
    parser.add_argument("--no-npy", action="store_true", help="skip the in-memory comparison")
    parser.add_argument("--stdin", action="store_true", help="pipe the anchors through stdin")
    parser.add_argument("--folder", default=None, help="where to write the inputs")
    args = parser.parse_args()
    print_environment()
    flags = ["--format", "json", "--quiet"]
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        if not args.no_npy:
            small = [Path(folder, f"{role}.npy") for role in ("a", "p", "n")]
            in_child(write_npy, small)
            trio = ["--anchors", str(small[0]), "--positives", str(small[1]), "--negatives",
                    str(small[2])]
            run(["compute", *trio, *flags])  # load the kernels once
            took, rss = run(["compute", *trio, *flags])
            print(f"in memory: 1,000,000 rows (.npy) {took:.2f} s, {CHUNK / took / 1e6:.2f} M "
                  f"triplets/s, peak RSS {rss:.0f} MB")
            for path in small:
                path.unlink()
        big = [Path(folder, f"{role}.parquet") for role in ("a", "p", "n")]
        t = time.perf_counter()
        for seed, path in enumerate(big):
            in_child(write_parquet, path, args.rows, seed, args.row_group_rows,
                     args.compression, not args.list)
        size = sum(p.stat().st_size for p in big) / 1e9
        print(f"wrote 3 x {args.rows:,} x {D} float32 parquet ({size:.1f} GB, row groups of "
              f"{args.row_group_rows:,} rows, {args.compression}, "
              f"{'list' if args.list else 'fixed_size_list'}) in {time.perf_counter() - t:.0f} s")
        anchors = "-" if args.stdin else str(big[0])
        took, rss = run(["compute", "--anchors", anchors, "--positives", str(big[1]),
                         "--negatives", str(big[2]), *flags],
                        stdin=big[0] if args.stdin else None)
        print(f"streamed{' (anchors on stdin)' if args.stdin else ''}: {args.rows:,} rows "
              f"(.parquet) {took:.1f} s, {args.rows / took / 1e6:.2f} M triplets/s, "
              f"peak RSS {rss:.0f} MB")
    print(f"(this script's own peak RSS, under every figure above: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
