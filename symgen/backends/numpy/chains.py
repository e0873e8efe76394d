"""A product, an elementwise pass over its rows and a product of the pass's result,
``y = f(L @ R, ...) @ C``, run a block of rows at a time.

The Hessian-vector product of a matrix factorization, ``2 (Omega ⊙ Omega ⊙ (dU V.T)) V``,
is such a chain: as three steps it writes the M x N product ``dU @ V.T`` to memory, reads
it back for the mask, writes the masked one and reads it again for ``@ V``. Row ``i`` of
the result needs only row ``i`` of each of them, so the module runs the chain on blocks of
``BLOCK`` values of the M x N intermediates: the block's product, the pass on it, and its
product into the block's rows of ``y``, all in cache (what JAX's XLA gets by fusing the
mask into the products). Each row of ``y`` is the same arithmetic as before.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from symgen.compiler.optimize import Elementwise, MatrixProduct, Program, gathered, transposed

#: Values of the M x N intermediates per block (256 KiB of float64: in the L2 cache).
BLOCK = 32768


@dataclass(frozen=True)
class Chain:
    """Kernels ``first`` (``into = left @ right``), ``middle`` (an elementwise pass over
    the rows of ``into``) and ``last`` (``target = result @ factor``, ``result`` the one
    value of the pass read elsewhere)."""

    first: int
    middle: int
    last: int
    #: The middle pass's operands with a row per row of ``into`` (sliced by blocks).
    sliced: tuple[str, ...]


def chains(program: Program) -> list[Chain]:
    """The chains of ``program`` (see the module docstring): the first product's value
    read by the pass alone, the pass's one value read elsewhere read by the last product
    alone, the pass free of sums, conditions, gathers and transposed operands, and reading
    an M x N array besides the product (a mask, weights: the chain then keeps everything
    but that array's block in cache). A pass over the product alone (an MLP's ReLU) is
    left to NumPy's three steps, which write one M x N array either way."""
    kernels, shapes = program.kernels, program.array_shapes()
    outputs = {s.name for s in program.outputs}
    reads = program.reads()

    def only(name: str, kernel: int) -> bool:
        return name not in outputs and all(
            name not in r for m, r in enumerate(reads) if m != kernel
        )

    found = []
    for p, k in enumerate(kernels):
        if k.is_step or len(k.domain) != 2 or not all(isinstance(s, Elementwise) for s in k.stmts):
            continue
        rows, cols = (sp.sympify(d) for d in k.domain)
        if rows == 1 or cols == 1:
            continue
        inside = {s.target.name for s in k.stmts}
        if any(e.has(sp.Piecewise, gathered, transposed) for s in k.stmts for e in s.inputs):
            continue
        read_after = [t for t in inside if not only(t, p)]
        if len(read_after) != 1:
            continue
        (result,) = read_after
        sliced, first = [], None
        for name in sorted(reads[p] - inside):
            shape = tuple(sp.sympify(d) for d in shapes.get(name, ()))
            if len(shape) == 2 and shape[0] == rows and shape != (1, 1):
                sliced.append(name)
            elif shape and shape[0] != 1:
                break  # an operand that is neither a block's rows nor broadcast
        else:
            for a in range(p):
                (s,) = kernels[a].stmts if kernels[a].is_matmul else (None,)
                if (
                    isinstance(s, MatrixProduct)
                    and s.target.name in sliced
                    and s.left.is_Symbol
                    and only(s.target.name, p)
                ):
                    first = a
            last = _last(kernels, p, result)
            into = kernels[first].stmts[0].target.name if first is not None else None
            data = [n for n in sliced if n != into]
            if first is not None and last is not None and only(result, last) and data:
                found.append(Chain(first, p, last, tuple(sliced)))
    return found


def _last(kernels, p: int, result: str) -> int | None:
    for b in range(p + 1, len(kernels)):
        (s,) = kernels[b].stmts if kernels[b].is_matmul else (None,)
        if isinstance(s, MatrixProduct) and s.left.is_Symbol and s.left.name == result:
            if not (s.right.free_symbols & {sp.Symbol(result, real=True)}):
                return b
    return None


def lines(chain: Chain, program: Program, printer, shapes: dict[str, tuple]) -> list[str]:
    """The lines running ``chain``: per block of rows, the first product, the pass on the
    block's values (names ``_x``), and the last product into the block's rows."""
    kernels = program.kernels
    (first,) = kernels[chain.first].stmts
    (last,) = kernels[chain.last].stmts
    middle = kernels[chain.middle]
    rows, cols = middle.domain
    block = "[_start:_start + _rows]"
    operands = {x for s in middle.stmts for e in s.inputs for x in e.free_symbols}
    local = {x: sp.Symbol(f"_{x.name}", real=True) for x in operands if x.name in chain.sliced}
    local |= {s.target: sp.Symbol(f"_{s.target.name}", real=True) for s in middle.stmts}
    into = first.target.name
    out = [
        f"{last.target.name} = np.empty({_shape(shapes[last.target.name])}, dtype=DTYPE)",
        f"_rows = max(1, {BLOCK}//max({cols}, 1))",
        f"for _start in range(0, {rows}, _rows):",
        f"    _{into} = {first.left.name}{block} @ {printer.array.doprint(first.right)}",
        *(f"    _{n} = {n}{block}" for n in chain.sliced if n != into),
    ]
    for s in middle.stmts:
        stmt = replace(s.substituted(local), target=local[s.target])
        out += [f"    {line}" for line in printer.lines(stmt, middle)]
    factor = printer.array.doprint(last.right)
    out.append(f"    np.matmul(_{last.left.name}, {factor}, out={last.target.name}{block})")
    return out


def _shape(shape) -> str:
    return f"({shape[0]}, {shape[1]})"
