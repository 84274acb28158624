"""The mine-negatives job and mine_negatives(): hard negatives for (query, positive) pairs.

Units are ranges of the queries that have pairs (in query order); the queries, the corpus
(memory-mapped when it is an .npy) and the corpus norms (computed once per run) are the shared
input. A unit selects each query's range_max best candidates with topk.top_k (exact scores,
every positive of the query excluded by index, ties by the lowest index), then filters and
samples per pair (negatives_select). Memory: the corpus, plus one matrix-product block of
QUERY_BLOCK queries x a candidate chunk (topk.BLOCK_BYTES); never queries x corpus.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import IO

import numpy as np

from . import validate
from .errors import InputError, UsageError
from .inputs import (
    ArrayLike,
    at_most_one_stdin,
    load_matrix,
    path_or_array,
    same_input,
    unread_columns,
)
from .jobs import Block, Job, record_gate, run_here
from .negatives_select import (
    Chosen,
    NegativesTally,
    Settings,
    choose,
    render,
    to_scores,
)
from .params import check_count, ignored_flags
from .presets import resolve
from .readers import labels_for, shown_name

# Queries per unit. With topk's 256 MiB ranking budget a chunk is then 32,768 corpus rows: a
# 1,024 x 32,768 x 384 float32 product is 26 GFLOP, far above the size where OpenBLAS's sgemm
# reaches its floor, and 128 runs of 256 candidates let topk's prefilter skip most of a chunk
# for a window of 100 (it needs more runs than the window). The corpus is read once per unit.
QUERY_BLOCK = 1024
NORM_ROWS = 1 << 13  # corpus rows per pass of the norms: einsum's float64 copy is 25 MB at d = 384
PAIR_COLUMNS = ("query", "positive")


@dataclass(frozen=True)
class QueryRange:
    """A unit: the queries with pairs at positions start..stop of the job's query list."""

    start: int
    stop: int


@dataclass
class Pairs:
    """(query, positive) pairs grouped by query: query_ids[i] (ascending rows of the queries)
    has the corpus rows positives[ptr[i]:ptr[i+1]], in the order of the pair table."""

    query_ids: np.ndarray
    ptr: np.ndarray
    positives: np.ndarray
    duplicates: int = 0

    @classmethod
    def of(cls, q: np.ndarray, p: np.ndarray, corpus_rows: int) -> Pairs:
        key = q.astype(np.int64) * np.int64(corpus_rows) + p.astype(np.int64)
        first = np.sort(np.unique(key, return_index=True)[1])
        q, p = q[first], p[first]
        order = np.argsort(q, kind="stable")
        q, p = q[order], p[order]
        ids, counts = np.unique(q, return_counts=True)
        ptr = np.concatenate([[0], np.cumsum(counts)])
        return cls(ids.astype(np.int64), ptr, p.astype(np.int64), int(key.size - first.size))


@dataclass
class NegativesBlock(Block):
    """A unit's rows and what the statistics need of them."""

    stats: dict = field(default_factory=dict)


@dataclass
class NegativesResult:
    """The output rows (columns by name) and the summary object."""

    columns: dict[str, np.ndarray]
    summary: dict[str, object]

    def __repr__(self) -> str:  # (not every row: a notebook cell shows this)
        s = self.summary
        return (f"NegativesResult({s['rows']} rows, {s['pairs']} pairs, "
                f"{s['short']['pairs']} short)")  # type: ignore[index]


@dataclass
class NegativesJob(Job):
    """Validated queries, corpus and pairs with resolved settings."""

    queries: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    corpus: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # the searched rows
    corpus_norms: np.ndarray = field(default_factory=lambda: np.empty(0))
    corpus_rows: np.ndarray | None = None  # searched row -> row of the corpus file (None: same)
    pairs: Pairs | None = None
    settings: Settings | None = None
    range_max: int = 0  # given or derived
    window: int = 0  # range_max, at most the corpus rows (so memory follows the data)
    self_excluded: bool = False  # the queries are the corpus: a query never gets its own row
    # Class codes of the queries and the searched rows (labels given): no negative of a
    # query's own class. Empty: no labels.
    query_classes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    corpus_classes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    query_block: int = QUERY_BLOCK
    chunk_rows: int | None = None

    title = "triplet-loss mine-negatives"
    progress_what = "queries"

    @property
    def similarity(self) -> str:
        return str(self.params.values["similarity"])

    @property
    def npy_columns(self) -> tuple[str, ...]:  # type: ignore[override]
        fmt = self.settings.output_format
        if fmt == "labeled-pair":
            return ("anchor", "candidate", "label")
        if fmt == "n-tuple":
            return ("anchor", "positive", *self._numbered("negative"))
        return ("anchor", "positive", "negative")

    def _numbered(self, name: str) -> list[str]:
        return [f"{name}_{i}" for i in range(1, self.settings.num_negatives + 1)]

    @property
    def progress_total(self) -> int:
        return int(self.pairs.query_ids.size)

    def schema(self) -> dict[str, np.dtype]:
        i8, f8 = np.dtype(np.int64), np.dtype(np.float64)
        fmt = self.settings.output_format
        if fmt == "labeled-pair":
            return {"anchor": i8, "candidate": i8, "label": i8, "rank": i8, "score": f8}
        if fmt == "n-tuple":
            return {**dict.fromkeys(self.npy_columns, i8), "score_ap": f8,
                    **dict.fromkeys(self._numbered("score_an"), f8),
                    **dict.fromkeys(self._numbered("rank"), i8)}
        return {"anchor": i8, "positive": i8, "negative": i8, "rank": i8, "score_ap": f8,
                "score_an": f8}

    def inputs(self) -> dict[str, dict[str, object]]:
        return {k: {"path": None if self.names[k] == k else self.names[k],
                    "shape": list(shape), "dtype": self.dtypes[k],
                    **({"column": self.columns[k]} if k in self.columns else {})}
                for k, shape in self.shapes.items()}

    def metadata(self) -> dict[str, str]:
        """The settings, with `distance` (what compute --triplets then defaults to) and the
        shapes of both matrices: anchor indexes the queries, positive and negative the corpus."""
        from .writers import settings_metadata

        values = {**self.params.values, "distance": self.similarity,
                  "range_max": self.range_max}  # as used (the report's, derived or given)
        shape = self.shapes.get("corpus", self.shapes.get("positives"))  # (P alone: its rows)
        corpus: dict[str, object] = {"shape": [int(n) for n in shape]}
        if self.self_excluded:  # rescoring indexes --embeddings alone: no --corpus is needed
            corpus["queries"] = True
        return settings_metadata("mine-negatives", values, self.shapes["queries"], corpus=corpus)

    def units(self) -> Iterator[QueryRange]:
        n = self.pairs.query_ids.size
        for start in range(0, n, self.query_block):
            yield QueryRange(start, min(n, start + self.query_block))

    def shared(self) -> dict[str, np.ndarray]:
        return {"queries": self.queries, "corpus": self.corpus, "corpus_norms": self.corpus_norms}

    def without_shared(self) -> NegativesJob:
        empty = np.empty((0, self.corpus.shape[1]), self.corpus.dtype)
        return replace(self, queries=empty, corpus=empty, corpus_norms=np.empty(0))

    def with_shared(self, arrays: dict[str, np.ndarray]) -> NegativesJob:
        return replace(self, queries=arrays["queries"], corpus=arrays["corpus"],
                       corpus_norms=arrays["corpus_norms"])

    def run(self, unit: QueryRange) -> NegativesBlock:
        """One range of queries: exact top-k, positive scores, filters, sampling, rows."""
        from .topk import top_k

        pairs, s = self.pairs, self.settings
        ids = pairs.query_ids[unit.start:unit.stop]
        base = int(pairs.ptr[unit.start])
        ptr = pairs.ptr[unit.start:unit.stop + 1] - base
        pos = pairs.positives[base:int(pairs.ptr[unit.stop])]
        qi = np.repeat(np.arange(ids.size), np.diff(ptr))  # each pair's query, in the block
        q = np.ascontiguousarray(self.queries[ids])
        classes = ((self.query_classes[ids], self.corpus_classes)
                   if self.corpus_classes.size else None)
        d_q, idx, counts = top_k(q, self.corpus, self.window, self.params.distance.kernel(),
                                 exclude=self._exclusions(ids, ptr, pos), classes=classes,
                                 candidate_norms=self.corpus_norms, chunk_rows=self.chunk_rows,
                                 rooms=self.rooms)
        found = np.arange(self.window)[None, :] < counts[:, None]
        scores = np.where(found, to_scores(d_q, self.similarity), -np.inf)
        s_p = to_scores(self._distances(q, qi, pos), self.similarity)
        near = None
        if s.false_negative_eps is not None:
            near = self._near(np.where(found, idx, 0), counts, ptr, pos)[qi]
        margin_p = (np.minimum.reduceat(s_p, ptr[:-1])[qi] if s.hardest_positive else s_p)
        pair_ids = base + np.arange(pos.size, dtype=np.int64)
        picked = choose(scores[qi], found[qi], near, margin_p, pair_ids, s)
        return self._block(unit, ids, qi, ptr, pos, idx, scores, s_p, picked)

    def _distances(self, q: np.ndarray, qa: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """d(q[qa[i]], corpus[rows[i]]) for each i, by compute's kernel (the bits a rescoring
        with compute --triplets gives)."""
        from .losses import aligned_losses

        qa, rows = np.ascontiguousarray(qa, np.int64), np.ascontiguousarray(rows, np.int64)
        out = np.empty((3, rows.size))  # d_ap, and d_an and loss as scratch
        aligned_losses(q, self.corpus, self.corpus, (qa, rows, rows),
                       self.params.distance.kernel(), (0.0, False, False), tuple(out))
        return out[0]

    def _exclusions(self, ids: np.ndarray, ptr: np.ndarray, pos: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Each query's positives (and itself when the queries are the corpus)."""
        if not self.self_excluded:
            return ptr, pos
        return ptr + np.arange(ids.size + 1), np.insert(pos, ptr[:-1], ids)

    def _near(self, window: np.ndarray, counts: np.ndarray, ptr: np.ndarray, pos: np.ndarray
              ) -> np.ndarray:
        """false-negative-eps: candidates within the limit of a positive, by the run's distance
        (euclidean for dot, which is no distance between two corpus rows)."""
        from .distances import EUCLIDEAN
        from .negatives_select import near_positives

        code, p, eps, placement = self.params.distance.kernel()
        if self.similarity == "dot":
            code, p = EUCLIDEAN, 2.0
        out = np.zeros(window.shape, np.bool_)
        near_positives(self.corpus, window, counts, (ptr, pos),
                       (np.int64(code), np.float64(p), np.float64(eps), np.int64(placement)),
                       np.float64(self.settings.false_negative_eps), out)
        return out

    def _block(self, unit: QueryRange, ids: np.ndarray, qi: np.ndarray, ptr: np.ndarray,
               pos: np.ndarray, idx: np.ndarray, scores: np.ndarray, s_p: np.ndarray,
               picked: Chosen) -> NegativesBlock:
        """The unit's rows in the output format, and its statistics."""
        s = self.settings
        chosen = picked.chosen
        k = s.num_negatives
        per_pair = chosen.sum(axis=1)
        full = per_pair == k
        short = per_pair < k
        counted = chosen & full[:, None] if s.output_format == "n-tuple" else chosen
        r, j = np.nonzero(counted)
        s_n = scores[qi[r], j]
        stats = {"positive": s_p, "negative": s_n, "difference": s_p[r] - s_n,
                 "removed": picked.removed, "window": picked.window,
                 "chosen": int(chosen.sum()), "short_pairs": int(short.sum()),
                 "short_queries": ids[qi[short]]}
        rows = self.corpus_rows
        at = (lambda a: a) if rows is None else (lambda a: rows[a])
        if s.output_format == "triplet":
            columns = {"anchor": ids[qi[r]], "positive": at(pos[r]),
                       "negative": at(idx[qi[r], j]), "rank": (j + 1).astype(np.int64),
                       "score_ap": s_p[r], "score_an": scores[qi[r], j]}
        elif s.output_format == "n-tuple":
            r, j = r.reshape(-1, k)[:, 0], j.reshape(-1, k)
            negatives = at(idx[qi[r][:, None], j])
            columns = {"anchor": ids[qi[r]], "positive": at(pos[r]),
                       **{f"negative_{t + 1}": negatives[:, t] for t in range(k)},
                       "score_ap": s_p[r],
                       **{f"score_an_{t + 1}": scores[qi[r], j[:, t]] for t in range(k)},
                       **{f"rank_{t + 1}": (j[:, t] + 1).astype(np.int64) for t in range(k)}}
        else:
            columns = self._labeled(ids, qi, ptr, pos, idx, scores, s_p, chosen, at)
        return NegativesBlock(columns, unit.stop - unit.start, stats=stats)

    @staticmethod
    def _labeled(ids, qi, ptr, pos, idx, scores, s_p, chosen, at) -> dict[str, np.ndarray]:
        """labeled-pair: per query, its positives (label 1, rank 0), then every negative any
        of its pairs got (label 0), best first."""
        union = np.logical_or.reduceat(chosen, ptr[:-1], axis=0)
        i, j = np.nonzero(union)
        query = np.concatenate([qi, i])
        kind = np.concatenate([np.zeros(qi.size, np.int64), np.ones(i.size, np.int64)])
        within = np.concatenate([np.arange(qi.size), j])
        order = np.lexsort((within, kind, query))
        return {"anchor": ids[query][order],
                "candidate": at(np.concatenate([pos, idx[i, j]]))[order],
                "label": (1 - kind)[order],
                "rank": np.concatenate([np.zeros(qi.size, np.int64), j + 1])[order],
                "score": np.concatenate([s_p, scores[i, j]])[order]}

    def tally(self, top: int = 0) -> NegativesTally:  # type: ignore[override]
        return NegativesTally()

    def summary(self, tally: NegativesTally) -> dict[str, object]:  # type: ignore[override]
        """The JSON object: counts, the score distributions, what each filter removed, the
        pairs left with fewer than num_negatives (their queries named), params, inputs."""
        short = tally.short()
        warnings = list(self.warnings)
        if short["pairs"]:
            warnings.append(f"{short['pairs']} pairs ({short['queries']} queries) got fewer than "
                            f"{self.settings.num_negatives} negatives (listed under short in "
                            "--format json): widen --range-max or loosen the filters")
        return {"queries": int(self.pairs.query_ids.size), "pairs": tally.pairs,
                "rows": tally.rows, "negatives": tally.negatives, "range_max": self.range_max,
                "short": short, "candidates": {"window": tally.window, **tally.removed,
                                               "negatives": tally.negatives},
                "scores": tally.scores(),
                "params": {**self.params.values, "range_max": self.range_max,
                           "sources": {**self.params.sources,
                                       **({"range_max": "derived"}
                                          if self.settings.range_max is None else {})}},
                "inputs": self.inputs(), "warnings": warnings}

    def render(self, out: IO[str], summary: dict[str, object],  # type: ignore[override]
               tally: NegativesTally) -> None:
        render(out, summary, self.settings.num_negatives)

    def failure(self, summary: dict[str, object], tally: NegativesTally,  # type: ignore[override]
                gate: float | None) -> str | None:
        """--fail-above X: more than a fraction X of the pairs got fewer than num_negatives
        (its outcome goes into the summary's gates)."""
        if gate is None:
            return None
        failed = tally.short_pairs > gate * max(tally.pairs, 1)
        fraction = tally.short_pairs / max(tally.pairs, 1)
        why = (f"{tally.short_pairs} of {tally.pairs} pairs ({fraction:.1%}) got fewer than "
               f"--num-negatives {self.settings.num_negatives}") if failed else None
        record_gate(summary, "short_fraction", gate, fraction, why)
        return f"--fail-above {gate!r}: {why}" if why else None


def corpus_norms(x: np.ndarray) -> np.ndarray:
    """Row norms in float64, NORM_ROWS rows at a time (no float64 copy of a large corpus)."""
    from .topk import norms_of

    return np.concatenate([norms_of(x[s:s + NORM_ROWS]) for s in range(0, x.shape[0], NORM_ROWS)]
                          or [np.empty(0)])


def read_pairs(pairs: ArrayLike) -> tuple[np.ndarray, str]:
    """A (n, 2) int64 array of (query, positive) rows and its name: .npy/.npz (n, 2) integers,
    or columns query, positive of .csv, .jsonl, .parquet or .arrow."""
    from .readers import read_indices

    if not isinstance(pairs, str):
        schema = validate.table_schema(pairs)
        columns = PAIR_COLUMNS if schema is None else _pair_columns(schema.names)
        a, name = validate.as_array(pairs, "pairs", columns), "pairs"
    else:
        a, name = np.asarray(read_indices(pairs, PAIR_COLUMNS, "pair", _pair_columns)), \
            shown_name(pairs)
    if a.ndim != 2 or a.shape[1] != 2:
        raise InputError(f"pairs must have shape (n, 2) (query, positive), got {a.shape}", name)
    if a.dtype.kind not in "iuf":  # integral floats are taken by as_indices
        raise InputError(f"pair indices must be integers, got {a.dtype}", name)
    if a.shape[0] == 0:
        raise InputError("holds zero pairs", name)
    return validate.as_indices(a, PAIR_COLUMNS, name), name


def _pair_columns(names: Sequence[str]) -> tuple[str, str]:
    """query, positive; or anchor, positive (how mine-negatives and mine write them) in a table
    without a query column."""
    return ("anchor", "positive") if "query" not in names and "anchor" in names else PAIR_COLUMNS


def _require_pair_indices(a: np.ndarray, limits: tuple[int, int], name: str) -> None:
    bad = (a < 0) | (a >= np.asarray(limits))
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(f"row {r}: {PAIR_COLUMNS[c]} index {int(a[r, c])} is out of range "
                         f"[0, {limits[c]})", name)


def _row_keys(x: np.ndarray) -> np.ndarray:
    """Each row as one opaque value that is equal exactly when the rows' values are: in
    float64 (a float32 row and its float64 copy match) with -0.0 as 0.0."""
    rows = np.ascontiguousarray(x.reshape(x.shape[0], -1), np.float64) + 0.0
    return rows.view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).ravel()


def first_rows(x: np.ndarray) -> np.ndarray:
    """For each row, the first row with the same values: duplicates collapse to it."""
    _, first, inverse = np.unique(_row_keys(x), return_index=True, return_inverse=True)
    return first[inverse.ravel()].astype(np.int64)


def _locate(p: np.ndarray, c: np.ndarray, pname: str, cname: str) -> np.ndarray:
    """Each row of p as the first row of c that holds the same values, read block by block."""
    keys = [k.tobytes() for k in _row_keys(p)]
    wanted = dict.fromkeys(keys, -1)
    for start in range(0, c.shape[0], NORM_ROWS):
        for i, k in enumerate(_row_keys(c[start:start + NORM_ROWS])):
            if wanted.get(key := k.tobytes()) == -1:
                wanted[key] = start + i
    at = np.array([wanted[k] for k in keys], np.int64)
    if (at < 0).any():
        row = int(np.flatnonzero(at < 0)[0])
        raise InputError(f"row {row} is not a row of {cname}: every positive must be in the "
                         "corpus (or give --pairs)", pname)
    return at


def prepare_negatives(queries: ArrayLike, corpus: ArrayLike | None = None,
                      pairs: ArrayLike | None = None, positives: ArrayLike | None = None, *,
                      labels: ArrayLike | None = None, corpus_labels: ArrayLike | None = None,
                      preset: str | None = None, column: str | None = None,
                      label_column: str | None = None, block_rows: int | None = None,
                      chunk_rows: int | None = None, **options: object) -> NegativesJob:
    """Read, validate and resolve everything a mine-negatives run needs."""
    params = resolve("mine-negatives", preset, options)
    settings = Settings.of(params)
    given = [path_or_array(x) for x in (queries, corpus, pairs, positives, labels,
                                        corpus_labels)]
    at_most_one_stdin(given)
    queries, corpus, pairs, positives, labels, corpus_labels = given
    if (labels is not None or corpus_labels is not None) and corpus is None:
        raise UsageError("--labels and --corpus-labels leave out the query's own class from "
                         "a --corpus: give --corpus")
    if queries is None:
        raise UsageError("give the queries (--queries)")
    if (pairs is None) == (positives is None):
        raise UsageError("give --pairs (with --corpus) or --positives, one of them")
    if pairs is not None and corpus is None:
        raise UsageError("--pairs indexes a corpus: give --corpus")
    check_count("block_rows", block_rows)
    check_count("chunk_rows", chunk_rows)
    names, shapes, dtypes, loaded = {}, {}, {}, {}
    picked: dict[str, str] = {}
    for role, x in (("queries", queries), ("corpus", corpus), ("positives", positives)):
        if x is None:
            continue
        m, name = load_matrix(x, role, column, picked=picked)
        validate.require_matrix(m, name, role)
        loaded[role], names[role] = m, name
        shapes[role], dtypes[role] = m.shape, str(m.dtype)
    validate.require_same({r: m.shape[1] for r, m in loaded.items()}, names, "dimensions",
                          "d = ")
    q = loaded["queries"]
    if "positives" in loaded and loaded["positives"].shape[0] != q.shape[0]:
        raise InputError(f"{loaded['positives'].shape[0]} positives for {q.shape[0]} queries "
                         f"in {names['queries']}: --positives is aligned with the queries",
                         names["positives"])
    for role, m in loaded.items():
        validate.require_rankable(m, names[role], params.distance)
    validate.require_in_range([(m, names[role]) for role, m in loaded.items()], params.distance)
    corpus_rows = None
    if pairs is not None:
        table, names["pairs"] = read_pairs(pairs)
        shapes["pairs"], dtypes["pairs"] = table.shape, "int64"
        c = loaded["corpus"]
        _require_pair_indices(table, (q.shape[0], c.shape[0]), names["pairs"])
        search, query_of, positive_of = c, table[:, 0], table[:, 1]
    else:
        p = loaded["positives"]
        query_of = first_rows(q)  # identical queries are one query with all their positives
        if "corpus" in loaded:
            search = loaded["corpus"]
            positive_of = _locate(p, search, names["positives"], names["corpus"])
        else:  # the corpus is the positives, duplicates collapsed to their first row
            first = first_rows(p)
            corpus_rows = np.unique(first)
            search = np.ascontiguousarray(p[corpus_rows])
            positive_of = np.searchsorted(corpus_rows, first)
            names["corpus"] = names["positives"]
    found = Pairs.of(query_of, positive_of, search.shape[0])
    self_excluded = "corpus" in loaded and same_input(corpus, queries)
    query_classes, corpus_classes, notes = _classes((labels, corpus_labels), label_column,
                                             self_excluded, loaded, (names, shapes, dtypes),
                                             picked)
    most = int(np.diff(found.ptr).max())  # the most positives of one query
    window = settings.window(most)
    settings.check_window(window)
    warnings = ignored_flags(params) + unread_columns(given, column, label_column) + notes
    need = settings.num_negatives + most + int(self_excluded)
    most_any = search.shape[0] - 1 - int(self_excluded)  # a query's one positive left out
    if settings.output_format == "n-tuple" and settings.num_negatives > most_any:
        raise UsageError(f"--num-negatives {settings.num_negatives} with --output-format n-tuple: "
                         f"no pair can get that many negatives from {search.shape[0]} rows, and "
                         "n-tuple keeps only full pairs", names["corpus"])
    if search.shape[0] < need:  # a valid run: such pairs are short
        rows = "rows" if "corpus" in loaded else "distinct rows"  # (positives: collapsed)
        warnings.append(f"{names['corpus']} has {search.shape[0]} {rows}: fewer than "
                        f"--num-negatives {settings.num_negatives} + {most} positives of a query"
                        + (" + the query itself" if self_excluded else "")
                        + "; such a query's pairs get fewer negatives (counted as short)")
    if found.duplicates:
        warnings.append(f"{found.duplicates} repeated (query, positive) pairs: each kept once")
    if "corpus" in loaded and not self_excluded and validate.same_rows(q, search):
        warnings.append(f"--corpus {names['corpus']} holds the rows of --queries "
                        f"{names['queries']} (a copy): a query's own row is a candidate, at "
                        "the top; give the same file (or array) to leave it out")
    search = np.ascontiguousarray(search)
    return NegativesJob(params, names, warnings, columns=picked, queries=np.ascontiguousarray(q),
                        corpus=search,
                        corpus_norms=corpus_norms(search), corpus_rows=corpus_rows, pairs=found,
                        settings=settings, range_max=window,
                        window=min(window, search.shape[0]), self_excluded=self_excluded,
                        query_classes=query_classes, corpus_classes=corpus_classes,
                        shapes=shapes, dtypes=dtypes, query_block=block_rows or QUERY_BLOCK,
                        chunk_rows=chunk_rows)


def _classes(given: tuple[object, object], column: str | None, same: bool,
             loaded: dict[str, np.ndarray], records: tuple[dict, dict, dict],
             picked: dict[str, str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Class codes of the queries and of the corpus rows, one code per label in either (none:
    empty arrays), and warnings about them. The corpus's labels are the queries' when it is
    the queries. records: the inputs' names, shapes and dtypes, added to; picked: the label
    columns read from tables."""
    labels, corpus_labels = given
    names, shapes, dtypes = records
    if labels is None and corpus_labels is None:
        return np.empty(0, np.int64), np.empty(0, np.int64), []
    if corpus_labels is None and same:
        corpus_labels = labels
    if labels is None or corpus_labels is None:
        raise UsageError("--labels (of the queries) and --corpus-labels go together (only a "
                         "corpus that is the queries takes --labels alone)")
    found = {}
    for role, y, rows in (("labels", labels, "queries"), ("corpus_labels", corpus_labels,
                                                          "corpus")):
        read: dict[str, str] = {}
        values, name = labels_for(y, None, column, read)
        name = name if isinstance(y, str) else role
        if "labels" in read:
            picked[role] = read["labels"]
        validate.require_label_rows(values, loaded[rows].shape[0], name, names[rows])
        found[role], names[role] = values, name
        shapes[role], dtypes[role] = values.shape, str(values.dtype)
    y, cy = validate.one_kind(found["labels"], found["corpus_labels"], names["labels"],
                              names["corpus_labels"])
    notes = validate.unlabelled_note(y, names["labels"])
    if not same:
        notes += validate.unlabelled_note(cy, names["corpus_labels"])
    classes, codes = np.unique(np.concatenate([y, cy]), return_inverse=True)
    if classes.size == 1:
        raise InputError("the queries and every corpus row have one class: with labels no row "
                         "can be a negative", names["corpus_labels"])
    codes = codes.astype(np.int64)
    return codes[:y.size], codes[y.size:], notes


def mine_negatives(queries: ArrayLike, corpus: ArrayLike | None = None,
                   pairs: ArrayLike | None = None, positives: ArrayLike | None = None, *,
                   threads: int | None = None, **options: object) -> NegativesResult:
    """Hard negatives for (query, positive) pairs from a corpus (arrays or file paths), SPEC
    section 9: `pairs` (n, 2) rows (query, positive) into queries and corpus, or `positives`
    aligned with the queries (the corpus then defaults to them, duplicates collapsed).

    labels and corpus_labels: the classes of the queries and of the corpus rows; a query then
    gets no negative of its own class (a corpus that is the queries takes labels alone).
    Keywords as prepare_negatives' (preset, column, label_column, block_rows, chunk_rows),
    `threads`, and the settings: the CLI's flags in snake case: similarity, p, eps,
    num_negatives, range_min, range_max, max_score, min_score, absolute_margin,
    relative_margin, margin_positive, false_negative_eps, sampling, seed, output_format.
    block_rows (queries per unit) and chunk_rows (corpus rows per product) never change the
    result.
    """
    columns, summary = run_here(
        lambda: prepare_negatives(queries, corpus, pairs, positives, **options), threads)
    return NegativesResult(columns, summary)
