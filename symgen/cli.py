"""The ``symgen`` command line: generate, check, show, diff.

Errors are one line on stderr and exit status 2; ``check`` exits 1 when a
generated file is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sympy as sp

from . import show as show_module
from .api import BACKENDS, generate
from .errors import SpecError
from .exprparse import parse_assignment, parse_expression
from .files import write_atomic
from .formulas import derivative
from .specfile import load


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise SpecError(f"{self.prog}: {message}")


def _outputs(spec: str, backends: list[str], out: Path) -> dict[Path, str]:
    loaded = load(spec)
    files: dict[Path, str] = {}
    for problem in loaded.problems:
        for backend in backends:
            files[out / f"{problem.name}_{backend}.py"] = generate(
                problem, backend, source=loaded.source
            )
    return files


def cmd_generate(args: argparse.Namespace) -> int:
    for path, text in _outputs(args.spec, args.backend or ["numpy"], Path(args.output)).items():
        write_atomic(path, text)
        print(f"wrote {path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    stale = []
    for path, text in _outputs(args.spec, args.backend or ["numpy"], Path(args.output)).items():
        if not path.is_file():
            stale.append(f"{path} (missing)")
        elif path.read_text(encoding="utf-8") != text:
            stale.append(f"{path} (differs)")
    if stale:
        print("stale generated files; run `symgen generate`:", file=sys.stderr)
        for line in stale:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"up to date: {args.spec}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    problems = load(args.spec).problems
    blocks = []
    for problem in problems:
        block = show_module.render(problem, args.format)
        if args.program:
            block += "\n\n" + show_module.program(problem)
        blocks.append(block)
    print("\n\n".join(blocks))
    return 0


def _number(value: sp.Expr) -> str:
    if value.is_Integer or value.is_Rational and value.q == 1:
        return str(value)
    if value.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise SpecError(f"the derivative is not finite at that point: {value}")
    if value.is_real is False or value.has(sp.I):
        raise SpecError(f"the derivative is not real at that point: {value}")
    return repr(float(value))


def cmd_diff(args: argparse.Namespace) -> int:
    expr = parse_expression(args.expr)
    free = {s.name: s for s in expr.free_symbols}
    point = dict(parse_assignment(a) for a in args.at or [])
    for name in list(args.wrt) + list(point):
        if name not in free:
            raise SpecError(f"'{name}' does not appear in {args.expr}")
    for name in args.wrt:
        d = derivative(expr, free[name])
        prefix = f"d/d{name}: " if len(args.wrt) > 1 else ""
        if point:
            value = d.xreplace({free[k]: v for k, v in point.items()})
            missing = sorted(s.name for s in value.free_symbols)
            if missing:
                raise SpecError(f"--at gives no value for {', '.join(missing)}")
            print(f"{prefix}{_number(sp.N(value, 15) if not value.is_Rational else value)}")
        else:
            print(f"{prefix}{sp.sstr(d)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symgen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, helptext in (
        ("generate", "write generated modules for SPEC"),
        ("check", "exit 1 if generated modules for SPEC are stale"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("spec", help="path.py, path.py:attr or package.module:attr")
        p.add_argument("--backend", action="append", choices=sorted(BACKENDS))
        p.add_argument("-o", "--output", default="generated", help="folder (default: generated)")
    p = sub.add_parser("show", help="print the loss and its simplified derivatives")
    p.add_argument("spec")
    p.add_argument("--format", choices=show_module.FORMATS, default="text")
    p.add_argument("--program", action="store_true", help="also print the CSE'd statements")
    p = sub.add_parser("diff", help="differentiate an expression")
    p.add_argument("expr", help='e.g. "(x-4)*(x**2+6)"')
    p.add_argument("--wrt", action="append", required=True, metavar="NAME")
    p.add_argument("--at", action="append", metavar="NAME=VALUE")
    return parser


COMMANDS = {"generate": cmd_generate, "check": cmd_check, "show": cmd_show, "diff": cmd_diff}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (SpecError, OSError, ValueError, TypeError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"symgen: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
