"""mine-negatives speed and memory, measured in one run (by hand, not in CI).

    python benchmarks/bench_negatives.py                     # 100,000 x 1,000,000 x 384, K = 5
    python benchmarks/bench_negatives.py --queries 20000     # the same corpus, fewer queries
    python benchmarks/bench_negatives.py --peer-python /path/to/venv/bin/python   # + faiss-cpu
    python benchmarks/bench_negatives.py --interleaved --skip-large   # ranking vs floor, best of 3

Data: random unit float32 rows written to .npy files in --dir (memory-mapped when read; the
1,000,000 x 384 corpus is 1.5 GB), each query paired with one corpus row. Ours: mine_negatives
(cosine, num_negatives K, range_max R, top sampling) in a fresh process, so its peak RSS is its
own. The floor: the same blocked matrix products on the same memory-mapped files (QUERY_BLOCK
queries x topk's corpus chunk, float32 sgemm into one reused buffer), nothing else, in another
fresh process. With
--peer-python (an interpreter that imports faiss), the same top-K search with faiss-cpu's exact
IndexFlatIP (what sentence-transformers uses with use_faiss=True) on --peer-queries x
--peer-corpus rows: times, both peak memories, and the agreement of the top-K negative sets
(a disagreement between scores closer than 1e-6, a near-tie under float32, is counted apart).
With --interleaved, the job's ranking and selection alone (inputs read and checked) and the
floor alternate in one process on --peer-queries (at most 4,096) x --peer-corpus rows, three
times each: the best of 3 of each, less exposed to a shared machine's load than two processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from triplet_cli import THREAD_SPIN

os.environ.update({**THREAD_SPIN, **os.environ})  # as triplet-loss sets them, unless set

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def environment() -> None:
    import numba
    from threadpoolctl import threadpool_info

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo
                  if line.startswith("flags")), [])
    print("CPU:", " ".join(f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni")
                           if f in flags), f"({os.cpu_count()} cores)")
    for pool in threadpool_info():
        print(f"BLAS: {pool.get('internal_api')} {pool.get('version')} kernel "
              f"{pool.get('architecture')} threads {pool.get('num_threads')}")
    print(f"numba {numba.__version__}: {numba.config.NUMBA_NUM_THREADS} threads, layer "
          f"{numba.config.THREADING_LAYER}")
    for name in THREAD_SPIN:
        print(f"{name}={os.environ.get(name, '(unset)')}")
    print(f"load average: {os.getloadavg()}")


def write_rows(path: Path, rows: int, d: int, seed: int) -> None:
    """Random unit float32 rows, written block by block into a memory-mapped .npy."""
    if path.exists() and np.load(path, mmap_mode="r").shape == (rows, d):
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, d))
    rng = np.random.default_rng(seed)
    for s in range(0, rows, 65536):
        x = rng.normal(size=(min(65536, rows - s), d)).astype(np.float32)
        out[s:s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()
    del out


def child(code: str, python: str = sys.executable) -> dict:
    """Run `code` in a fresh interpreter; its JSON line on stdout, with its peak RSS (GB)."""
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec (this
    # script's own, after writing a 1.5 GB corpus), a new process's memory map does not.
    wrapped = code + textwrap.dedent("""
        import json as _j
        _hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
        RESULT["peak_rss_gb"] = int(_hwm.split()[1]) * 1024 / 1e9
        print(_j.dumps(RESULT))
    """)
    env = {**THREAD_SPIN, **os.environ}
    done = subprocess.run([python, "-c", wrapped], capture_output=True, text=True, env=env,
                          check=False, cwd=ROOT)
    if done.returncode:
        sys.exit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


OURS = """
import time, numpy as np
from triplet_cli.negatives import mine_negatives
q, c, pairs = {q!r}, {c!r}, np.load({pairs!r})
small = np.stack([np.arange(8), np.arange(8)], axis=1)  # compile the kernels on a small run
mine_negatives(np.load(q, mmap_mode="r")[:8], np.load(c, mmap_mode="r")[:256], small,
               num_negatives={k}, range_max={r}, similarity={sim!r})
t = time.perf_counter()
res = mine_negatives(q, c, pairs, num_negatives={k}, range_max={r}, similarity={sim!r})
RESULT = {{"seconds": time.perf_counter() - t, "rows": len(res.columns["anchor"])}}
np.save({out!r}, np.stack([res.columns[k] for k in ("anchor", "negative")], axis=1))
"""

FLOOR = """
import time, numpy as np
from triplet_cli.negatives import QUERY_BLOCK
from triplet_cli.topk import BLOCK_BYTES
q, c = np.load({q!r}, mmap_mode="r"), np.load({c!r}, mmap_mode="r")
rows = BLOCK_BYTES // (8 * QUERY_BLOCK)
t = time.perf_counter()
for s in range(0, q.shape[0], QUERY_BLOCK):
    block = np.ascontiguousarray(q[s:s + QUERY_BLOCK])
    out = None
    for lo in range(0, c.shape[0], rows):
        chunk = c[lo:lo + rows]
        if out is None or out.shape[1] != chunk.shape[0]:
            out = np.empty((block.shape[0], chunk.shape[0]), np.float32)
        np.matmul(block, chunk.T, out=out)
RESULT = {{"seconds": time.perf_counter() - t}}
"""

PEER = """
import time, numpy as np, faiss
q, c, pairs = np.load({q!r}), np.load({c!r}), np.load({pairs!r})
t = time.perf_counter()
index = faiss.IndexFlatIP(c.shape[1])
index.add(c)
scores, idx = index.search(q, {r} + 1)  # as sentence-transformers: range_max + positives
RESULT = {{"seconds": time.perf_counter() - t, "threads": faiss.omp_get_max_threads()}}
np.save({out!r}, idx)
np.save({out_scores!r}, scores)
"""


def agreement(ours: np.ndarray, peer: np.ndarray, peer_scores: np.ndarray, pairs: np.ndarray,
              q: np.ndarray, c: np.ndarray, k: int) -> tuple[float, int, int]:
    """Share of queries whose top-K negative set equals faiss's (its positive removed), the
    number of queries that differ, and how many of those differ only across a near-tie."""
    n = q.shape[0]
    mine = ours[:, 1].reshape(n, k)
    same = differ = ties = 0
    for i in range(n):
        theirs = [j for j in peer[i] if j != pairs[i, 1]][:k]
        if set(theirs) == set(mine[i].tolist()):
            same += 1
            continue
        differ += 1
        cand = np.concatenate([mine[i], theirs])
        s = np.sort(c[cand].astype(np.float64) @ q[i].astype(np.float64))[::-1]
        ties += bool(np.min(np.abs(np.diff(np.unique(s)))) < 1e-6) if len(np.unique(s)) > 1 \
            else 1
    del peer_scores
    return same / n, differ, ties


def interleaved(qp: Path, cp: Path, n: int, k: int, r: int, similarity: str) -> None:
    import time

    from triplet_cli.negatives import QUERY_BLOCK, prepare_negatives
    from triplet_cli.topk import BLOCK_BYTES

    q, c = np.ascontiguousarray(np.load(qp, mmap_mode="r")[:n]), np.load(cp, mmap_mode="r")
    pairs = np.stack([np.arange(n), np.random.default_rng(3).integers(0, c.shape[0], n)], axis=1)
    job = prepare_negatives(q, str(cp), pairs, num_negatives=k, range_max=r,
                            similarity=similarity)
    list(job.blocks())  # compile
    rows = BLOCK_BYTES // (8 * QUERY_BLOCK)

    def floor() -> None:
        for s in range(0, n, QUERY_BLOCK):
            block, out = q[s:s + QUERY_BLOCK], None
            for lo in range(0, c.shape[0], rows):
                chunk = c[lo:lo + rows]
                if out is None or out.shape[1] != chunk.shape[0]:
                    out = np.empty((block.shape[0], chunk.shape[0]), np.float32)
                np.matmul(block, chunk.T, out=out)

    ours, base = [], []
    for _ in range(3):
        t = time.perf_counter()
        list(job.blocks())
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        floor()
        base.append(time.perf_counter() - t)
    print(f"\ninterleaved: {n:,} queries x {c.shape[0]:,} rows, {similarity}, range_max {r}: "
          f"ours {min(ours):.2f} s, floor {min(base):.2f} s (best of 3): "
          f"{min(ours) / min(base):.2f}x; load {os.getloadavg()[0]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--corpus", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--range-max", type=int, default=100)
    ap.add_argument("--similarity", default="cosine")
    ap.add_argument("--peer-python", default=None, help="an interpreter that imports faiss")
    ap.add_argument("--peer-queries", type=int, default=20_000)
    ap.add_argument("--peer-corpus", type=int, default=200_000)
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--interleaved", action="store_true")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "bench_negatives"))
    args = ap.parse_args()
    environment()
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    sizes = [] if args.skip_large else [("large", args.queries, args.corpus, "ours-vs-floor")]
    if args.interleaved:
        n, m = min(args.peer_queries, 4096), args.peer_corpus
        qp, cp = d / f"q_{args.peer_queries}_{args.d}.npy", d / f"c_{m}_{args.d}.npy"
        write_rows(qp, args.peer_queries, args.d, 1)
        write_rows(cp, m, args.d, 2)
        interleaved(qp, cp, n, args.k, args.range_max, args.similarity)
    if args.peer_python:
        sizes.append(("peer", args.peer_queries, args.peer_corpus, "ours-vs-faiss"))
    for name, n, m, what in sizes:
        qp, cp, pp = d / f"q_{n}_{args.d}.npy", d / f"c_{m}_{args.d}.npy", d / f"pairs_{n}_{m}.npy"
        write_rows(qp, n, args.d, 1)
        write_rows(cp, m, args.d, 2)
        np.save(pp, np.stack([np.arange(n), np.random.default_rng(3).integers(0, m, n)], axis=1))
        k, r = args.k, args.range_max
        print(f"\n{name}: {n:,} queries x {m:,} corpus rows x d = {args.d} float32, K = {k}, "
              f"range_max = {r}, {args.similarity}; load {os.getloadavg()[0]:.2f}")
        ours = child(OURS.format(q=str(qp), c=str(cp), pairs=str(pp), k=k, r=r,
                                 sim=args.similarity, out=str(d / "ours.npy")))
        print(f"  ours: {ours['seconds']:.1f} s, peak RSS {ours['peak_rss_gb']:.2f} GB, "
              f"{ours['rows']:,} rows")
        if what == "ours-vs-floor":
            floor = child(FLOOR.format(q=str(qp), c=str(cp)))
            print(f"  floor (blocked sgemm only): {floor['seconds']:.1f} s, peak RSS "
                  f"{floor['peak_rss_gb']:.2f} GB")
            print(f"  ratio: {ours['seconds'] / floor['seconds']:.2f}x the floor; load "
                  f"{os.getloadavg()[0]:.2f}")
        else:
            peer = child(PEER.format(q=str(qp), c=str(cp), pairs=str(pp), r=r,
                                     out=str(d / "peer.npy"), out_scores=str(d / "peer_s.npy")),
                         args.peer_python)
            share, differ, ties = agreement(np.load(d / "ours.npy"), np.load(d / "peer.npy"),
                                            np.load(d / "peer_s.npy"), np.load(pp),
                                            np.load(qp), np.load(cp), k)
            print(f"  faiss IndexFlatIP ({peer['threads']} threads): {peer['seconds']:.1f} s, "
                  f"peak RSS {peer['peak_rss_gb']:.2f} GB")
            print(f"  ratio: {ours['seconds'] / peer['seconds']:.2f}x faiss; top-{k} sets equal "
                  f"for {share:.4%} of queries ({differ} differ, {ties} of them across a "
                  f"near-tie < 1e-6); load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
