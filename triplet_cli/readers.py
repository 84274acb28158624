"""Inputs into arrays: embeddings, labels and index rows, in every format (`-`: stdin; a pipe
such as a shell's `<(...)` is read as a file).

.npy is memory-mapped and never unpickled, .npz read by key, CSV and JSON lines through pyarrow,
parquet and Arrow IPC streamed by arrow. The format is told by magic bytes, else the suffix, else
text is CSV (JSON lines when it opens with `{`).
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import errno
import math
import os
import stat
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import arrow, validate
from .arrow import ArrowMatrix, ArrowTriplets
from .errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

STDIN = "-"
STDIN_NAME = "<stdin>"  # how messages name it
NPY_MAGIC = b"\x93NUMPY"
_MAGIC = ((NPY_MAGIC, "npy"), (b"PAR1", "parquet"), (b"ARROW1", "arrow"),
          (b"\xff\xff\xff\xff", "arrow"),  # an IPC stream opens with a continuation marker
          (b"PK", "npz"))
GZIP_MAGIC, HDF5_MAGIC = b"\x1f\x8b", b"\x89HDF\r\n\x1a\n"  # named (how to convert), not read
_SUFFIXES = {".npy": "npy", ".npz": "npz", ".csv": "csv", ".tsv": "csv", ".txt": "csv",
             ".jsonl": "jsonl", ".ndjson": "jsonl",
             **dict.fromkeys(arrow.PARQUET_SUFFIXES, "parquet"),
             **dict.fromkeys(arrow.ARROW_SUFFIXES, "arrow")}


def split_key(path: str) -> tuple[str, str]:
    """`file.npz:key` -> (file.npz, key); a path that exists as written has no key, nor one
    whose part before the last colon is neither a file nor an .npz (messages name a missing
    `2024-01-01T10:00.npy` as written)."""
    if os.path.exists(path) or ":" not in path:
        return path, ""
    file, _, key = path.rpartition(":")
    if file == STDIN or os.path.exists(file) or Path(file).suffix.lower() == ".npz":
        return file, key
    return path, ""


def _folder_kind(folder: Path) -> str:
    """What a folder that is not read looks like it holds, and what to give instead."""
    try:
        if (folder / "state.json").exists() or any(folder.glob("data-*.arrow")):
            return ": a datasets save_to_disk folder; give its data-*.arrow file"
        if any(d.is_dir() and "=" in d.name for d in folder.iterdir()):
            return (": a partitioned dataset (folders such as label=3/), whose partition columns "
                    "are not read; write it without partition_cols")
    except OSError:  # (a folder that cannot be listed: the plain message)
        pass
    return ""


def tilde(path: str) -> str:
    """A hint for a path that starts with ~: the shell expands it only at a word's start."""
    return (" (~ is not expanded after '=': write --option ~/file, or the full path)"
            if path.startswith("~") else "")


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: the same path once links are resolved, or the same
    device and inode (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one does not exist (yet): not the same file
        return False


def is_table(path: str) -> bool:
    """Whether an input has named columns (parquet, Arrow, CSV, JSON lines; stdin or a pipe may
    have them, and an unreadable file is left to say its own error)."""
    if _is_stdin(path) or _read_once(split_key(path)[0]):
        return True
    try:
        return _kind(path) not in ("npy", "npz")
    except InputError:
        return True


def _is_stdin(path: str) -> bool:
    return split_key(path)[0] == STDIN


def shown_name(path: str) -> str:
    """How messages name an input: `-` (stdin) is <stdin>, any other path itself."""
    return STDIN_NAME + path[len(STDIN):] if _is_stdin(path) else path


def _kind(path: str) -> str:
    """The format of a readable file (module docstring); a folder of .parquet files is parquet."""
    file = split_key(path)[0]
    try:
        os.stat(file)
    except OSError as e:  # (os.path.exists says False for a name too long as well)
        missing = e.errno in (errno.ENOENT, errno.ENOTDIR)
        raise InputError("no such file" + tilde(file) if missing else e.strerror or str(e),
                         file) from None
    except ValueError:  # an embedded NUL
        raise InputError("no such file", file) from None
    if os.path.isdir(file) and Path(file).suffix.lower() not in arrow.PARQUET_SUFFIXES:
        if not any(Path(file).glob("*.parquet")):
            raise InputError("is a directory, not a file (nor a folder of .parquet files)"
                             + _folder_kind(Path(file)), file)
    elif not os.access(file, os.R_OK):
        raise InputError("permission denied", file)
    if os.path.isdir(file):
        return "parquet"
    try:
        with open(file, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise InputError(e.strerror or str(e), path) from None
    if head.startswith(GZIP_MAGIC):
        raise InputError("is gzip-compressed: decompress it first (`zcat FILE | triplet-loss ... "
                         "-` reads it from stdin)", path)
    kind = next((k for magic, k in _MAGIC if head.startswith(magic)), None)
    suffix = Path(file).suffix.lower()
    kind = kind or _SUFFIXES.get(suffix, "unknown")
    if foreign := _foreign(head, suffix, kind):
        raise InputError(foreign, path)
    if kind == "unknown" and head and b"\0" not in head:
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(head)  # a cut last character
        except UnicodeDecodeError:
            return kind
        return "jsonl" if text.lstrip().startswith("{") else "csv"
    return kind


# Files of the field that are not read, and how to make a .npy of them (SAVE: numpy.save).
_SAVE = "numpy.save(PATH, ARRAY)"
_FOREIGN = {
    "torch": "is a PyTorch file (torch.save), which is a pickle and not loaded here: save the "
             "tensor with numpy.save(PATH, tensor.float().numpy())",
    "pickle": "is a pickle, which can run code and is not loaded here: save the array with "
              f"{_SAVE}",
    "hdf5": "is an HDF5 file: save its dataset with numpy.save(PATH, h5py.File(FILE)[KEY][:])",
    ".safetensors": "is a safetensors file: save a tensor with numpy.save(PATH, "
                    "safetensors.numpy.load_file(FILE)[KEY])",
    ".fvecs": "is an .fvecs/.bvecs/.ivecs file (ANN benchmarks: each row its dimension, then "
              f"its values): convert it with numpy and save it with {_SAVE}",
    "json": "is a JSON array: give triplets and pairs as JSON lines (one object per line, "
            ".jsonl) or CSV, labels as .npy or CSV, embeddings as .npy "
            "(numpy.save(PATH, numpy.array(json.load(open(FILE)))))",
}
_FOREIGN[".bvecs"] = _FOREIGN[".ivecs"] = _FOREIGN[".fvecs"]
# (what numpy.save writes for a data frame's column of strings)
_OBJECTS_HINT = (" (such as strings from pandas: save labels with numpy.save(PATH, "
                 "labels.astype(str)), numbers with .astype(numpy.float32))")


def _foreign(head: bytes, suffix: str, kind: str) -> str | None:
    """Why a file of another tool's format is not read, and how to convert it; None when it
    is one of ours."""
    if head.startswith(HDF5_MAGIC):
        return _FOREIGN["hdf5"]
    if kind != "unknown":
        return _FOREIGN["json"] if kind == "csv" and head.lstrip()[:1] == b"[" else None
    if suffix in _FOREIGN:  # (a d = 128 .fvecs opens with 0x80, as a pickle does)
        return _FOREIGN[suffix]
    if suffix in (".pkl", ".pickle") or _pickled(head):
        return _FOREIGN["pickle"]
    return _FOREIGN["json"] if head.lstrip()[:1] == b"[" else None


def _pickled(head: bytes) -> bool:
    """Whether a file opens as a pickle of protocol 2-5 (ndarray.dump and torch.save write one)."""
    return head[:1] == b"\x80" and head[1:2] in b"\2\3\4\5"


def _unknown_binary(head: bytes) -> bool:
    """Bytes that open no format we read nor name (a gzip, a pickle) and are not text."""
    return b"\0" in head and not head.startswith((*(m for m, _ in _MAGIC), GZIP_MAGIC,
                                                  HDF5_MAGIC)) and not _pickled(head)


_spool: dict[str, tuple[object, str]] = {}  # `-` or a pipe: (stdin object or inode, copy)


@atexit.register
def drop_copies() -> None:
    """Remove the copies of stdin and of pipes (at exit, or when a signal ends a compile)."""
    while _spool:
        with contextlib.suppress(OSError):
            os.unlink(_spool.popitem()[1][1])


def _read_once(file: str) -> bool:
    """A pipe or a device (a shell's `<(...)`, a named pipe): its bytes can be read only once."""
    try:
        mode = os.stat(file).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def _stdin_file() -> str:
    """stdin's bytes in a temporary file (_copy), once per stdin object."""
    stream = sys.stdin
    if stream is not None and _spool.get(STDIN, (None,))[0] is stream:
        return _spool[STDIN][1]
    if stream is None or getattr(stream, "closed", False):
        raise InputError("no stdin to read (it is closed)", STDIN_NAME)
    if getattr(stream, "isatty", lambda: False)():
        raise InputError("stdin is a terminal: pipe or redirect a file into it "
                         "(`triplet-loss ... - < FILE`)", STDIN_NAME)
    with contextlib.suppress(OSError):
        os.unlink(_spool.pop(STDIN, (None, ""))[1])
    return _copy(STDIN, stream, getattr(stream, "buffer", stream), "stdin")


def _pipe_file(file: str) -> str:
    """A pipe's bytes in a temporary file (_copy), once per pipe (a path and its inode)."""
    try:
        inode = os.stat(file).st_ino
        if _spool.get(file, (None,))[0] == inode:
            return _spool[file][1]
        with contextlib.suppress(OSError):
            os.unlink(_spool.pop(file, (None, ""))[1])
        with open(file, "rb") as source:
            return _copy(file, inode, source, "the pipe")
    except OSError as e:
        raise InputError(e.strerror or str(e), file) from None


def _copy(key: str, owner: object, source: Any, what: str) -> str:
    """A source's bytes in a temporary file, removed at exit: every format then reads as from a
    path (parquet needs its footer first), and labels can share the table."""
    shown = STDIN_NAME if key == STDIN else key
    fd, path = tempfile.mkstemp(prefix="triplet-loss-input-")
    _spool[key] = owner, path  # removed at exit, also after a copy cut short
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(1 << 20):
                chunk = chunk.encode() if isinstance(chunk, str) else chunk
                if not out.tell() and _unknown_binary(chunk[:4096]):  # (/dev/zero: no end)
                    raise InputError("opens with binary bytes of no format read here (.npy, "
                                     ".npz, .parquet, .arrow; CSV and JSON lines are text): "
                                     "not copied further", shown)
                out.write(chunk)
    except BaseException as e:  # (Ctrl-C, a signal: no partial copy left in the temp folder)
        with contextlib.suppress(OSError):
            os.unlink(_spool.pop(key)[1])
        if isinstance(e, InputError) or not isinstance(e, OSError):
            raise
        raise InputError(f"cannot copy {what} to {tempfile.gettempdir()} ({e.strerror or e})",
                         shown) from None
    return path


@contextlib.contextmanager
def _named(file: str, shown: str, spelt: str) -> Iterator[None]:
    """Errors about `file`, a copy, name what it copies: `shown` as the path, `spelt` inside
    messages (stdin: <stdin> and `-`)."""
    try:
        yield
    except InputError as e:
        if e.path is not None and e.path.startswith(file):
            e.path = shown + e.path[len(file):]
        e.message = e.message.replace(file, spelt)
        e.args = (e.message,)
        raise e from None


@contextlib.contextmanager
def _source(path: str, rows: bool = False) -> Iterator[tuple[str, str]]:
    """`path` and its format; stdin (`-`, `-:KEY` for an .npz) and pipes are read from a copy,
    whose errors name them. rows: an empty stream is rows of JSON lines, none of them (what
    mine writes for no triplet), else an error."""
    given, key = split_key(path)
    if given != STDIN and not _read_once(given):
        yield path, _kind(path)
        return
    file, shown = (_stdin_file(), STDIN_NAME) if given == STDIN else (_pipe_file(given), given)
    if not os.path.getsize(file) and not rows:
        raise InputError("nothing on stdin" if given == STDIN else "is empty", shown)
    with _named(file, shown, given):
        kind = "jsonl" if not os.path.getsize(file) else None
        file += f":{key}" if key else ""
        yield file, kind or _kind(file)


class _FromCopy:
    """A streamed table of a copy (stdin, a pipe): errors while it streams name the source."""

    path: str
    source: str

    def blocks(self, rows: int) -> Iterator[np.ndarray]:
        shown = STDIN_NAME if self.source == STDIN else self.source
        with _named(self.path, shown, self.source):
            yield from super().blocks(rows)  # type: ignore[misc]


class _CopiedMatrix(_FromCopy, ArrowMatrix):
    pass


class _CopiedTriplets(_FromCopy, ArrowTriplets):
    pass


def _streamed(plain: type, copied: type, path: str, file: str, *args: object) -> Any:
    """A streamed table of `file`; of a copy (stdin, a pipe: `file` is not `path`), naming path."""
    if file == path:
        return plain(file, *args)
    table = copied(file, *args)
    table.source = split_key(path)[0]
    return table


def _read_npy(path: str) -> np.ndarray:
    """Memory-map a .npy file after checking its header, dtype and size against the file."""
    fmt = np.lib.format
    file, key = split_key(path)
    if key:
        raise InputError(f"':{key}' names an array in an .npz, but {file} is a .npy file", path)
    if not os.path.getsize(file):
        raise InputError("is empty (0 bytes)", path)
    try:
        with open(path, "rb") as f:
            head = f.read(6)
            if head != NPY_MAGIC:
                raise InputError(_FOREIGN["pickle"] if _pickled(head)
                                 else "not a .npy file (bad magic bytes)", path)
            f.seek(0)
            version = fmt.read_magic(f)
            read_header = (fmt.read_array_header_1_0 if version == (1, 0)
                           else fmt.read_array_header_2_0)
            shape, fortran, dtype = read_header(f, max_header_size=100_000)
            offset = f.tell()
    except (ValueError, OSError, SyntaxError) as e:
        raise InputError(f"not a valid .npy file ({e})", path) from None
    if dtype.hasobject:
        raise InputError("holds Python objects (a pickled array); refusing to load it"
                         + _OBJECTS_HINT, path)
    if any(n < 0 for n in shape):
        raise InputError(f"not a valid .npy file (negative dimension in shape {shape})", path)
    expected = math.prod(shape) * dtype.itemsize  # Python ints: np.prod wraps past 2^63
    found = os.path.getsize(path) - offset
    if found < expected:
        raise InputError(f"truncated: header promises {expected} data bytes, found {found}", path)
    if expected == 0:
        return np.empty(shape, dtype)
    try:
        array = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                          order="F" if fortran else "C")
    except OSError as e:
        if e.errno != errno.ENOMEM:
            raise
        raise InputError(f"cannot be memory-mapped: {expected / 2**30:.2f} GiB of address space "
                         "is more than this process may have (a ulimit -v limit?)", path) from None
    return np.asarray(array).reshape(shape)  # (np.memmap makes a 0-d array (1,))


def _read_npz(path: str) -> np.ndarray:
    """`file.npz:key`, or the only array of `file.npz`."""
    file, key = split_key(path)
    try:
        with np.load(file, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if any(k.endswith("data.pkl") for k in keys):  # torch.save's zip layout
                raise InputError(_FOREIGN["torch"], file)
            if not key:
                if len(keys) != 1:
                    raise InputError(f"holds {len(keys)} arrays ({', '.join(keys)}); "
                                     f"name one as {file}:KEY", file)
                key = keys[0]
            if key not in keys:
                raise InputError(f"no array '{key}'; it holds: {', '.join(keys)}", file)
            array = archive[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        msg = ("holds Python objects (pickled); refusing to load it" + _OBJECTS_HINT
               if "pickle" in str(e) else f"not a valid .npz file ({e})")
        raise InputError(msg, file) from None
    if not isinstance(array, np.ndarray):  # numpy hands back a member's bytes when not a .npy
        raise InputError(f"not a valid .npz file (member '{key}' is not a .npy array)", file)
    return array


def _read_array(path: str, kind: str) -> np.ndarray:
    return _read_npy(path) if kind == "npy" else _read_npz(path)


def _read_csv(path: str, header: bool = True, text: Sequence[str] = (),
              missing: Sequence[str] | None = None) -> pa.Table:
    """A CSV file as a table, the columns named in `text` as strings (not inferred); `missing`:
    the cells that are null (default: pyarrow's, such as NA, null and nan)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    with open(path, "rb") as f:
        if f.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            raise InputError("is UTF-16 text; save it as UTF-8", path)
    with arrow.read_errors("CSV", path):
        # An empty cell is a missing value (null), also in a column of strings.
        table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
            strings_can_be_null=True, column_types=dict.fromkeys(text, pa.string()),
            null_values=missing),
            read_options=pcsv.ReadOptions(autogenerate_column_names=not header),
            parse_options=pcsv.ParseOptions(delimiter="\t" if _tabbed(path) else ","))
        names = table.column_names  # a header that is not UTF-8 fails here, in this file's name
    stripped = [n.strip() for n in names]  # `anchor, positive, negative`
    if stripped != names and len(set(stripped)) == len(stripped):
        table = table.rename_columns(stripped)
    return table


def _tabbed(path: str) -> bool:
    """Cells separated by tabs: a .tsv file (TensorFlow Projector's metadata.tsv), or a file
    without the .csv suffix (.txt, a copy of stdin or a pipe) whose first line has tabs and no
    comma."""
    suffix = Path(path).suffix.lower()
    if suffix in (".tsv", ".csv"):
        return suffix == ".tsv"
    with open(path, "rb") as f:
        first = f.readline(65536)
    return b"\t" in first and b"," not in first


def _read_label_csv(path: str, column: str | None, text: bool = False) -> pa.Table:
    """Labels from CSV (every column as strings when `text`). The first row is a header with
    several columns, or when it says `label` or the --label-column name, or does not parse like
    the rows below (text above numbers); otherwise it is the first label. Only an empty cell
    is missing: NA, N/A, null and nan are class names (North America, not applicable)."""
    import pyarrow as pa

    read = partial(_read_csv, path, missing=("",))
    headed = read()  # pyarrow refuses a CSV file without columns
    first = headed.column_names[0]
    if headed.num_columns != 1 or first.strip().lower() == "label" or first == column:
        return read(text=headed.column_names) if text else headed
    bare = read(header=False)
    if headed.num_rows and bare.schema.types[0] != headed.schema.types[0]:
        return read(text=headed.column_names) if text else headed
    if column is not None:
        raise InputError(f"no column '{column}'; the file has one column and no header (its "
                         f"first row, {first!r}, parses like the others)", path)
    if text:
        bare = read(header=False, text=bare.column_names)
    return pa.table({"label": bare.column(0)})


def _labels_as_written(path: str, column: str | None, name: str) -> np.ndarray | None:
    """A CSV label column that pyarrow read as numbers, as its text says where the numbers
    would lose it: codes with a leading zero stay strings ('007' is not '7'), integers beyond
    int64 exact (as doubles they lose digits), beyond uint64 strings. None: the numbers hold."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = pc.utf8_trim_whitespace(_read_label_csv(path, column, text=True).column(name))
    if cells.null_count:  # refused as the numbers are
        return None
    if pc.any(pc.match_substring_regex(cells, r"^[+-]?0[0-9]")).as_py():
        return cells.to_numpy(zero_copy_only=False)
    if not pc.all(pc.match_substring_regex(cells, r"^[+-]?[0-9]+$")).as_py():
        return None
    for integers in (pa.int64(), pa.uint64()):
        with contextlib.suppress(pa.ArrowInvalid):
            return pc.cast(cells, integers).to_numpy(zero_copy_only=False)
    return cells.to_numpy(zero_copy_only=False)


def _read_jsonl(path: str, columns: Sequence[str]) -> pa.Table:
    """JSON lines (one object per line, as `mine -o x.jsonl` writes them) as a table; an empty
    file as `columns` of no row."""
    import pyarrow as pa
    import pyarrow.json as pj

    if not os.path.getsize(path):  # no row written (pyarrow refuses it)
        return pa.table({c: pa.array([], pa.int64()) for c in columns})
    with arrow.read_errors("JSON lines", path):
        return pj.read_json(path)


def open_matrix(path: str, column: str | None = None) -> np.ndarray | ArrowMatrix:
    """The embeddings in `path`: .npy memory-mapped, a parquet/Arrow file streamed (ArrowMatrix)."""
    with _source(path) as (file, kind):
        if kind in ("npy", "npz"):
            return _read_array(file, kind)
        if kind in ("parquet", "arrow"):
            return _streamed(ArrowMatrix, _CopiedMatrix, path, file, kind, column)
        text = {"csv": "text (CSV)", "jsonl": "JSON lines"}.get(kind)
        raise InputError((f"holds {text}: embeddings are read from " if text else "unknown "
                          "format: use ") + ".npy, .npz, .parquet, .arrow or .feather" + (
            f" (save them with {_SAVE})" if text else ""), file)


def read_labels(path: str, column: str | None = None, picked: dict[str, str] | None = None
                ) -> np.ndarray:
    """A 1-D array of integer or string labels from .npy/.npz, .parquet/.arrow or .csv (the
    column read from a parquet/Arrow table goes into picked['labels'])."""
    with _source(path) as (file, kind):
        if kind in ("npy", "npz"):
            return validate.as_labels(_read_array(file, kind), file)
        if kind == "csv":
            table = _read_label_csv(file, column)
            name = arrow.pick_label_column(file, table.schema, column)
            if table.schema.field(name).type in ("double", "int64"):
                written = _labels_as_written(file, column, name)
                if written is not None:
                    return validate.as_labels(written, file)
        elif kind in ("parquet", "arrow"):
            name = arrow.pick_label_column(file, arrow.read_schema(file, kind), column)
            table = arrow.read_table(file, kind, [name])
            if picked is not None:
                picked["labels"] = name
        else:
            raise InputError("unknown label format: use .npy, .npz, .parquet, .arrow or "
                             ".csv/.tsv/.txt", file)
        labels = table.column(name)
        validate.require_no_nulls(labels, f"label column '{name}'", file)
        return validate.as_labels(labels.to_numpy(zero_copy_only=False), file)


def labels_for(labels: object, embeddings: object, column: str | None = None,
               picked: dict[str, str] | None = None) -> tuple[np.ndarray, str]:
    """The labels of `embeddings` and their name in messages: `labels` (a path or an array), or
    when None the label column beside the embeddings (only a parquet or Arrow table has one);
    the column read from a table goes into picked['labels']."""
    if isinstance(labels, str):
        if not (os.path.exists(split_key(labels)[0]) or _is_stdin(labels) or Path(labels).suffix):
            raise InputError("no such file (a column of --embeddings is chosen with "
                             "--label-column)", labels)
        return read_labels(labels, column, picked), shown_name(labels)
    if labels is not None:
        validate.require_one_label_type(labels, "labels")
        return validate.as_labels(validate.as_array(labels, "labels"), "labels"), "labels"
    schema = validate.table_schema(embeddings)
    if schema is not None:  # a table in memory: its label column, as a file's
        name = arrow.pick_label_column("embeddings", schema, column, ("labels=", "label_column="))
        labels = validate.table_part(embeddings, [schema.get_field_index(name)])
        if picked is not None:
            picked["labels"] = name
        return validate.as_labels(validate.as_array(labels, "labels"), "labels"), "labels"
    if not isinstance(embeddings, str):
        raise InputError("no labels given: pass them as labels= (or a table holding a label "
                         "column; an array holds none)", "embeddings")
    with _source(embeddings) as (file, kind):
        if kind not in ("parquet", "arrow"):
            raise InputError("holds no labels; give them with --labels (only a parquet or "
                             "Arrow file can hold both)", file)
        return read_labels(file, column, picked), shown_name(embeddings)


def open_triplets(path: str) -> np.ndarray | ArrowTriplets:
    """(t, 3) int64 row indices; a parquet/Arrow file streams (ArrowTriplets, with the settings
    its writer recorded, from stdin as from a path)."""
    with _source(path, rows=True) as (file, kind):
        if kind in ("parquet", "arrow"):
            return _streamed(ArrowTriplets, _CopiedTriplets, path, file, kind)
        triplets = _read_indices(file, kind, arrow.TRIPLET_COLUMNS, "triplet")
        return validate.as_triplets(triplets, file)


def read_indices(path: str, columns: Sequence[str], what: str,
                 named: Callable[[Sequence[str]], Sequence[str]] | None = None) -> np.ndarray:
    """Index `columns` side by side (or those `named` picks from a table's names), or an
    .npy/.npz array; `what` names a row in messages."""
    with _source(path) as (file, kind):
        return _read_indices(file, kind, columns, what, named)


def _read_indices(file: str, kind: str, columns: Sequence[str], what: str,
                  named: Callable[[Sequence[str]], Sequence[str]] | None = None) -> np.ndarray:
    if kind in ("npy", "npz"):
        return _read_array(file, kind)
    if kind in ("parquet", "arrow", "csv", "jsonl"):
        table = (_read_csv(file) if kind == "csv" else _read_jsonl(file, columns) if kind == "jsonl"
                 else arrow.read_table(file, kind))
        return arrow.index_columns(file, table, named(table.column_names) if named else columns)
    raise InputError(f"unknown {what} format: use .parquet, .arrow, .csv, .jsonl or .npy", file)
