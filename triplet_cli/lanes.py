"""Sums over a row's terms in the lane order, as explicit LLVM vector code (numba intrinsics).

The lane order, the one every distance sum uses (distances.py): term i goes to lane i % 8, each
lane adds its terms from +0.0 in increasing i, and the lanes combine as
((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)). LLVM keeps IEEE order unless allowed to
reassociate (fastmath, which would also drop the NaN checks), so a plain loop over one running sum
runs at the latency of one float64 add per term: 1.8x a read of the inputs at d = 128 on an AVX2
CPU. Here the eight lanes are one <8 x double> accumulator, written as vector IR, so the order is
the same on every CPU (AVX-512: one register; AVX2: two; SSE: four) and with any thread count,
and the loop runs at the speed of the memory. No fused multiply-add is emitted (separate fmul and
fadd, no contract flag), so the bits do not depend on the CPU either.

`prefetch` asks the CPU to start loading a row, for loops that read rows in an order no hardware
prefetcher can guess.

Every sum takes 1-D float32 or float64 arrays, each its own dtype (any stride: a
contiguous row is loaded eight elements at a time, a strided one element by element into the
same lanes) and accumulates in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from ._jit import cgutils, intrinsic, types

LANES = 8
AHEAD = 3  # rows prefetched ahead of row-by-row distances (d = 1,536: 740 -> 515 ns a row)
# The term of x_i and y_i: (x-y+s)^2, |x-y+s|, x*y, and |x-y+s| again for its maximum (LARGEST:
# the lanes keep their largest term, or NaN once one is NaN, and combine in the same tree); of
# x_i alone: x itself (VALUE) and (x-s)^2 (DEVIATION, s a mean).
SQUARE, ABSOLUTE, PRODUCT, LARGEST, VALUE, DEVIATION = range(6)
_I32 = ir.IntType(32)
_F64 = ir.DoubleType()
_VEC = ir.VectorType(_F64, LANES)


def _lane(j: int) -> ir.Constant:
    return ir.Constant(_I32, j)


def _splat(builder: ir.IRBuilder, value: ir.Value, vec: ir.VectorType) -> ir.Value:
    """`value` in every lane."""
    one = builder.insert_element(ir.Constant(vec, ir.Undefined), value, _lane(0))
    return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def _tree(builder: ir.IRBuilder, acc: ir.Value, kind: int) -> ir.Value:
    """((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), or the same tree of _larger."""
    width = LANES
    while width > 1:  # each level adds neighbouring lanes, as vectors of half the width
        width //= 2
        even, odd = (builder.shuffle_vector(
            acc, ir.Constant(acc.type, ir.Undefined),
            ir.Constant(ir.VectorType(_I32, width), list(range(first, 2 * width, 2))))
            for first in (0, 1))
        acc = _larger(builder, even, odd) if kind == LARGEST else builder.fadd(even, odd)
    return builder.extract_element(acc, _lane(0))


def _larger(builder: ir.IRBuilder, kept: ir.Value, new: ir.Value) -> ir.Value:
    """new where it is larger than kept or NaN, else kept (lane by lane): a running maximum that
    stays NaN once a NaN came (the scalar rule `if v > m or v != v: m = v`)."""
    nan = builder.fcmp_unordered("uno", new, new)
    take = builder.or_(builder.fcmp_ordered(">", new, kept), nan)
    return builder.select(take, new, kept)


class _Row:
    """A 1-D array argument: its length and its elements as float64 lanes."""

    def __init__(self, context, builder: ir.IRBuilder, ty: types.Array, value: ir.Value) -> None:
        self.builder = builder
        self.ary = context.make_array(ty)(context, builder, value=value)
        self.elem = context.get_data_type(ty.dtype)
        self.size = ty.dtype.bitwidth // 8
        self.contiguous = ty.layout == "C"
        self.length = cgutils.unpack_tuple(builder, self.ary.shape, 1)[0]
        self.stride = cgutils.unpack_tuple(builder, self.ary.strides, 1)[0]

    def _pointer(self, i: ir.Value) -> ir.Value:
        b = self.builder
        if self.contiguous:
            return b.gep(self.ary.data, [i])
        address = b.add(b.ptrtoint(self.ary.data, i.type), b.mul(i, self.stride))
        return b.inttoptr(address, self.ary.data.type)

    def chunk(self, i: ir.Value, count: ir.Value | None = None) -> ir.Value:
        """Elements i..i+7 in lanes 0..7 (or the first `count` of them, the rest undefined:
        the caller masks their terms)."""
        b = self.builder
        vec = ir.VectorType(self.elem, LANES)
        if self.contiguous and count is None:
            v = b.load(b.bitcast(self._pointer(i), vec.as_pointer()), align=self.size)
        else:
            slot = cgutils.alloca_once_value(b, ir.Constant(vec, None))
            for j in range(LANES):
                inside = (ir.Constant(ir.IntType(1), 1) if count is None else
                          b.icmp_signed(">", count, ir.Constant(count.type, j)))
                with b.if_then(inside):
                    e = b.load(self._pointer(b.add(i, ir.Constant(i.type, j))), align=self.size)
                    b.store(b.insert_element(b.load(slot), e, _lane(j)), slot)
            v = b.load(slot)
        return v if isinstance(self.elem, ir.DoubleType) else b.fpext(v, _VEC)


def _term(builder: ir.IRBuilder, kind: int, x: ir.Value, y: ir.Value,
          shift: ir.Value | None) -> ir.Value:
    if kind == PRODUCT:
        return builder.fmul(x, y)
    if kind == VALUE:
        return x
    if kind == DEVIATION:
        d = x if shift is None else builder.fsub(x, shift)
        return builder.fmul(d, d)
    d = builder.fsub(x, y)
    if shift is not None:
        d = builder.fadd(d, shift)
    if kind == SQUARE:
        return builder.fmul(d, d)
    fabs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC]),
                                          f"llvm.fabs.v{LANES}f64")
    return builder.call(fabs, [d])  # ABSOLUTE and LARGEST: |d|


def _sums(builder: ir.IRBuilder, kind: int, rows: Sequence[_Row], pairs: Sequence[tuple[int, int]],
          shift: ir.Value | None) -> list[ir.Value]:
    """sum_i term(a_i, b_i) in the lane order for each pair (a, b) of rows, in one loop (each
    row read once, the sums' add chains independent)."""
    n = rows[0].length
    accs = [cgutils.alloca_once_value(builder, ir.Constant(_VEC, None)) for _ in pairs]  # +0.0
    width = ir.Constant(n.type, LANES)
    full = builder.sdiv(n, width)
    shifts = None if shift is None else _splat(builder, shift, _VEC)

    def add(i: ir.Value, count: ir.Value | None) -> None:
        chunks = [row.chunk(i, count) for row in rows]
        mask = None
        if count is not None:  # lanes past the end add nothing (not shift's term)
            index = ir.Constant(ir.VectorType(n.type, LANES), list(range(LANES)))
            mask = builder.icmp_signed("<", index, _splat(builder, count, index.type))
        for acc, (a, b) in zip(accs, pairs, strict=True):
            term = _term(builder, kind, chunks[a], chunks[b], shifts)
            if mask is not None:  # +0.0: nothing to a sum, and no larger than any |d|
                term = builder.select(mask, term, ir.Constant(_VEC, None))
            kept = builder.load(acc)
            grown = _larger(builder, kept, term) if kind == LARGEST else builder.fadd(kept, term)
            builder.store(grown, acc)

    with cgutils.for_range(builder, full) as loop:
        add(builder.mul(loop.index, width), None)
    start = builder.mul(full, width)
    rest = builder.sub(n, start)
    with builder.if_then(builder.icmp_signed(">", rest, ir.Constant(n.type, 0))):
        add(start, rest)
    return [_tree(builder, builder.load(acc), kind) for acc in accs]


def _typed(kind: int, arrays: Sequence[types.Type], shifted: bool,
           pairs: Sequence[tuple[int, int]] | None = None) -> tuple | None:
    """The signature and code generator of lane sums over pairs of `arrays` (by default the
    first with each other), or None (not 1-D float arrays: numba then reports a typing error).
    Each row widens its own dtype."""
    floats = (types.float32, types.float64)  # float16 is upcast where inputs are read
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype in floats
               for a in arrays):
        return None
    pairs = pairs or [(0, j) for j in range(1, len(arrays))]
    ret = types.float64 if len(pairs) == 1 else types.UniTuple(types.float64, len(pairs))
    args = (*arrays, types.float64) if shifted else tuple(arrays)

    def codegen(context, builder, sig, llargs):
        rows = [_Row(context, builder, t, v) for t, v in zip(arrays, llargs, strict=False)]
        if not shifted:
            out = _sums(builder, kind, rows, pairs, None)
        else:
            # shift 0 (every distance but PyTorch's eps placement) skips the add: the same
            # values ((d + 0)^2 = d^2 and |d + 0| = |d|), one vector add fewer per term.
            shift = llargs[-1]
            zero = builder.fcmp_ordered("==", shift, ir.Constant(_F64, 0.0))
            with builder.if_else(zero) as (plain, shifted_block):
                with plain:
                    without = _sums(builder, kind, rows, pairs, None)
                    plain_end = builder.basic_block
                with shifted_block:
                    with_shift = _sums(builder, kind, rows, pairs, shift)
                    shifted_end = builder.basic_block
            out = []
            for a, b in zip(without, with_shift, strict=True):
                phi = builder.phi(_F64)
                phi.add_incoming(a, plain_end)
                phi.add_incoming(b, shifted_end)
                out.append(phi)
        return out[0] if len(pairs) == 1 else context.make_tuple(builder, ret, out)

    return ret(*args), codegen


@intrinsic
def square_sum(typingctx, x, y, shift):
    """sum_i (x_i - y_i + shift)^2 in the lane order."""
    return _typed(SQUARE, (x, y), True)


@intrinsic
def square_sums(typingctx, x, y, z, shift):
    """(square_sum(x, y, shift), square_sum(x, z, shift)) bit for bit, x read once."""
    return _typed(SQUARE, (x, y, z), True)


@intrinsic
def abs_sum(typingctx, x, y, shift):
    """sum_i |x_i - y_i + shift| in the lane order."""
    return _typed(ABSOLUTE, (x, y), True)


@intrinsic
def abs_sums(typingctx, x, y, z, shift):
    """(abs_sum(x, y, shift), abs_sum(x, z, shift)) bit for bit, x read once."""
    return _typed(ABSOLUTE, (x, y, z), True)


@intrinsic
def abs_max(typingctx, x, y, shift):
    """max_i |x_i - y_i + shift| (0 for empty rows), NaN when a term is NaN."""
    return _typed(LARGEST, (x, y), True)


@intrinsic
def abs_maxes(typingctx, x, y, z, shift):
    """(abs_max(x, y, shift), abs_max(x, z, shift)), x read once."""
    return _typed(LARGEST, (x, y, z), True)


@intrinsic
def product_sum(typingctx, x, y):
    """sum_i x_i y_i in the lane order."""
    return _typed(PRODUCT, (x, y), False)


@intrinsic
def cosine_sums(typingctx, x, y):
    """(product_sum(x, x), product_sum(y, y), product_sum(x, y)) bit for bit, in one loop."""
    return _typed(PRODUCT, (x, y), False, ((0, 0), (1, 1), (0, 1)))


@intrinsic
def cosine_pair_sums(typingctx, x, y, z):
    """(x.x, y.y, x.y, z.z, x.z), each as product_sum gives it, in one loop that reads x once."""
    return _typed(PRODUCT, (x, y, z), False, ((0, 0), (1, 1), (0, 1), (2, 2), (0, 2)))


@intrinsic
def product_sums(typingctx, x, y, z):
    """(product_sum(x, y), product_sum(x, z)) bit for bit, x read once."""
    return _typed(PRODUCT, (x, y, z), False)


@intrinsic
def value_sum(typingctx, x):
    """sum_i x_i in the lane order."""
    return _typed(VALUE, (x,), False, ((0, 0),))


@intrinsic
def deviation_sum(typingctx, x, mean):
    """sum_i (x_i - mean)^2 in the lane order."""
    return _typed(DEVIATION, (x,), True, ((0, 0),))


@intrinsic
def prefetch(typingctx, row):
    """Start loading a C-contiguous 1-D row into the L2 cache (every 64-byte line of it), so that
    a row used a few steps later does not wait on memory; nothing for any other layout."""
    if not (isinstance(row, types.Array) and row.ndim == 1):
        return None

    def codegen(context, builder, sig, args):
        if row.layout != "C":
            return context.get_dummy_value()
        ary = context.make_array(row)(context, builder, value=args[0])
        length = cgutils.unpack_tuple(builder, ary.shape, 1)[0]
        size = builder.mul(length, ir.Constant(length.type, row.dtype.bitwidth // 8))
        byte = ir.PointerType(ir.IntType(8))
        base = builder.bitcast(ary.data, byte)
        # declare_intrinsic names it for this LLVM's pointers (llvm.prefetch.p0 or .p0i8)
        fetch = builder.module.declare_intrinsic(
            "llvm.prefetch", [byte], ir.FunctionType(ir.VoidType(), [byte, _I32, _I32, _I32]))
        # read (0), locality 2 (L2: the row is read once, soon), data cache (1)
        hints = [ir.Constant(_I32, h) for h in (0, 2, 1)]
        zero, line = ir.Constant(length.type, 0), ir.Constant(length.type, 64)
        with cgutils.for_range_slice(builder, zero, size, line) as (offset, _):
            builder.call(fetch, [builder.gep(base, [offset]), *hints])
        return context.get_dummy_value()

    return types.void(row), codegen
