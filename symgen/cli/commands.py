"""The ``symgen`` command line: generate, check, show, diff, train.

Conventions (docs/API.md, "Command line conventions"): results on stdout, errors on
stderr as one ``symgen: error: ...`` line and exit status 2, a usage mistake (an
unknown command or option, a missing argument) with the usage line above it and a
suggestion for a misspelt choice; ``check`` exits 1 when a generated file is stale;
Ctrl-C is one ``symgen: interrupted ...`` line and exit status 130.
"""

from __future__ import annotations

import argparse
import difflib
import math
import sys
from pathlib import Path

import sympy as sp

from symgen.api import BACKENDS, generate
from symgen.api import compile as compile_problem
from symgen.cli import budget
from symgen.cli import show as show_module
from symgen.cli.specfile import load
from symgen.codegen import optimizers
from symgen.codegen.formulas import derivative, value_at
from symgen.codegen.optimizers import DEFAULT_LR, DEFAULTS, OPTIMIZERS, bake, help_text
from symgen.compiler.exprparse import parse_assignment, parse_expression
from symgen.errors import SpecError
from symgen.files import write_atomic
from symgen.runtime import lossplot
from symgen.runtime.data.data_source import read_data
from symgen.runtime.data.initial_values import read_init
from symgen.runtime.data.lazy import is_lazy
from symgen.runtime.data.shapes import check_shapes
from symgen.runtime.distributed.cluster import connect, lost_worker_errors, lost_worker_message
from symgen.runtime.distributed.sources import problem_module
from symgen.runtime.solvers.least_squares import METHODS
from symgen.runtime.training.fitting import fit
from symgen.runtime.training.result import NonFiniteError
from symgen.runtime.training.settings import FULL_BATCH
from symgen.version import __version__

#: The top-level help's description.
DESCRIPTION = (
    "symgen: symbolic gradients of SymPy losses, written as standalone NumPy, C and CUDA modules."
)

#: The hyperparameters ``generate --optimizer NAME`` bakes, with their help.
HYPERPARAMETERS = {name: help_text(name) for name in optimizers.HYPERPARAMETERS}


class UsageError(Exception):
    """A mistake in the command line itself; ``usage`` is the usage line to print above it."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # the usage, then one line; exit 2 (in main)
        raise UsageError(message, self.format_usage())

    def _check_value(self, action: argparse.Action, value: object) -> None:
        """argparse's check of a choice, with "did you mean" for a misspelt one (as
        argparse's own ``suggest_on_error`` of Python 3.14 does)."""
        if action.choices is None or value in action.choices:
            return
        choices = [str(c) for c in action.choices]
        command = isinstance(action, argparse._SubParsersAction)
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        message = f"{value!r} ({hint}choose from {', '.join(choices)})"
        if command:  # no "argument COMMAND:" in front
            raise argparse.ArgumentError(None, f"unknown command {message}")
        raise argparse.ArgumentError(action, f"invalid choice {message}")


def _baking(args: argparse.Namespace) -> dict[str, object]:
    """``optimizer=`` and the hyperparameters given on the command line, checked."""
    given = {n: getattr(args, n) for n in HYPERPARAMETERS if getattr(args, n) is not None}
    bake(args.optimizer, **given)  # fails early, before the spec is loaded
    return {"optimizer": args.optimizer, **given} if args.optimizer else {}


def _outputs(args: argparse.Namespace) -> dict[Path, str]:
    baking = _baking(args)
    loaded = load(args.spec)
    out = Path(args.output)
    files: dict[Path, str] = {}
    for problem in loaded.problems:
        for backend in args.backend or ["numpy"]:
            files[out / f"{problem.name}_{backend}.py"] = generate(
                problem, backend, source=loaded.origin, **baking
            )
    return files


def cmd_generate(args: argparse.Namespace) -> int:
    for path, text in _outputs(args).items():
        write_atomic(path, text)
        print(f"wrote {path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    stale = []
    for path, text in _outputs(args).items():
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


def _shown(args: argparse.Namespace) -> str:
    """``symgen show``'s answer (the worker's work: see ``budget``)."""
    blocks = []
    for problem in load(args.spec).problems:
        block = show_module.render(problem, args.format, args.hessian)
        if args.program:
            block += "\n\n" + show_module.program(problem, args.hessian)
        blocks.append(block)
    return "\n\n".join(blocks)


def cmd_show(args: argparse.Namespace) -> int:
    print(budget.run(lambda: _shown(args), "showing the derivatives"))
    return 0


def _number(value: float) -> str:
    """A float64 as ``symgen diff --at`` prints it: integers without ``.0``; inf is an error."""
    if math.isinf(value):
        sign = "-" if value < 0 else ""
        raise SpecError(f"the derivative overflows float64 at that point ({sign}inf in float64)")
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _derivatives(args: argparse.Namespace) -> str:
    """``symgen diff``'s answer (the worker's work: see ``budget``)."""
    expr = parse_expression(args.expr)
    free = {s.name: s for s in expr.free_symbols}
    point = dict(parse_assignment(a) for a in args.at or [])
    wrt = list(dict.fromkeys(args.wrt))  # --wrt x --wrt x: one derivative
    for name in wrt + list(point):
        if name not in free:
            raise SpecError(f"'{name}' does not appear in {args.expr}")
    lines = []
    for name in wrt:
        d = derivative(expr, free[name])
        prefix = f"d/d{name}: " if len(wrt) > 1 else ""
        if point:
            missing = sorted(s.name for s in d.free_symbols if s.name not in point)
            if missing:
                raise SpecError(f"--at gives no value for {', '.join(missing)}")
            lines.append(prefix + _number(value_at(d, {free[k]: v for k, v in point.items()})))
        else:
            lines.append(f"{prefix}{sp.sstr(d)}")
    return "\n".join(lines)


def cmd_diff(args: argparse.Namespace) -> int:
    print(budget.run(lambda: _derivatives(args), "the derivative"))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import numpy as np

    loaded = load(args.spec)
    if len(loaded.problems) != 1:
        names = ", ".join(p.name for p in loaded.problems)
        raise SpecError(
            f"{args.spec} holds {len(loaded.problems)} problems ({names}); "
            "train needs exactly one: name it with FILE.py:NAME"
        )
    problem = loaded.problems[0]
    if args.plot:
        lossplot.require_matplotlib()
    for flag, path in (("--out", args.out), ("--plot", args.plot)):
        if path and not Path(path).resolve().parent.is_dir():
            raise SpecError(f"{flag} {path}: the folder {Path(path).parent} does not exist")
    hyper = dict(_hyper_setting(item, args.optimizer) for item in args.hyper or [])
    values = read_init(problem, args.init or [])
    data = read_data(problem, args.data)
    check_shapes(problem, {**values, **data})
    lazy = is_lazy(data)
    if lazy:
        if args.backend != "numpy":
            raise SpecError(
                f"--backend {args.backend}: data read lazily (dask) is trained with the NumPy "
                "module on each chunk; drop --backend or load the data into memory (.npz)"
            )
        # Read chunk by chunk with symgen.distributed: on the cluster that
        # DASK_SCHEDULER_ADDRESS names, else on local threads.

        connect()
        module = problem_module(problem)
    else:
        module = compile_problem(problem, args.backend)
    full_batch = args.optimizer in FULL_BATCH
    if full_batch:  # they choose their own steps
        lr = args.lr
    else:
        lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    try:
        result = fit(
            problem if lazy else module,
            tuple(values[name].array for name in module.PARAMS),
            {name: value.array for name, value in data.items()},
            optimizer=args.optimizer,
            steps=args.steps,
            lr=lr,
            batch_size=args.batch_size,
            tol=args.tol,
            seed=args.seed,
            progress=False if args.quiet else None,
            report_every=args.report_every,
            **hyper,
        )
    except NonFiniteError as exc:
        advice = "" if full_batch else f"; try a smaller --lr than {lr:g}"
        raise ValueError(
            f"{problem.name}: training stopped at step {exc.step}: {exc.reason}; "
            f"nothing written{advice}"
        ) from None
    except lost_worker_errors() as exc:
        raise ValueError(
            f"{problem.name}: training stopped: {lost_worker_message(exc)}; nothing written"
        ) from None
    except RuntimeError as exc:
        if args.backend != "c":
            raise
        # the C module builds its passes on the first call: no compiler, an odd $CC, a
        # failed build or a cache it may not use (its message says which)
        raise SpecError(f"--backend c: {exc}; nothing written") from None
    trained = {n: np.asarray(v) for n, v in zip(module.PARAMS, result.params, strict=True)}
    if result.interrupted:
        return _interrupted(args, result.steps, trained)
    with open(args.out, "wb") as handle:
        np.savez(handle, **trained)
    print(f"wrote {args.out}")
    if args.plot:
        batches = None
        if args.batch_size and result.epochs:
            batches = max(1, round(result.steps / result.epochs))
        title = f"{problem.name}: {args.optimizer}" + ("" if full_batch else f", lr {lr:g}")
        if args.batch_size:
            title += f", batches of {args.batch_size}"
        lossplot.save_loss_plot(result.history, args.plot, title, smooth=batches)
        print(f"wrote {args.plot}")
    first = f"{result.history[0]:.6g} -> " if result.history else ""
    why = "" if result.stopped == "steps" else f", stopped by {result.stopped}"
    epochs = f", {result.epochs:.4g} epochs" if args.batch_size else ""
    unit = "evaluations" if args.optimizer == "lm" else "iterations" if full_batch else "steps"
    ran = f"{result.steps} {hyper.get('method', args.optimizer)} {unit}"
    print(f"loss {first}{result.loss:.6g} after {ran}{epochs}{why}")
    return 0


def _hyper_setting(item: str, optimizer: str) -> tuple[str, object]:
    """``--hyper NAME=VALUE`` as a keyword of ``fit``: a number (a solver's counts, such as
    lbfgs's ``maxcor``, as integers), or for ``--optimizer lm`` the word ``method=NAME``
    choosing SciPy's least-squares method. ``bounds`` is refused: a number is no bounds
    SciPy takes, and a pair of arrays has no ``NAME=VALUE`` form."""
    name, _, word = (part.strip() for part in item.partition("="))
    if name == "bounds":
        raise SpecError(
            f"--hyper {item}: bounds cannot be given on the command line; fit with bounds "
            "from Python: symgen.least_squares(module, x0, data, method='trf', "
            "bounds=(lower, upper)) or symgen.minimize(..., bounds=[(low, high), ...])"
        )
    if name == "method":
        choices = f"{', '.join(METHODS[:-1])} or {METHODS[-1]}"
        if optimizer != "lm":
            raise SpecError(f"--hyper {item}: only --optimizer lm takes a method ({choices})")
        if word not in METHODS:
            raise SpecError(f"--hyper {item}: the least-squares method is one of {choices}")
        return name, word
    name, value = parse_assignment(item)
    number = float(value)
    integral = optimizer in FULL_BATCH and number.is_integer()
    return name, int(number) if integral else number


#: The exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


def interrupted_path(out: str) -> Path:
    """Where ``train --out OUT`` writes the parameters of a run stopped by Ctrl-C:
    ``params.npz`` -> ``params.interrupted.npz`` (never over a finished run's ``OUT``)."""
    path = Path(out)
    return path.with_name(f"{path.stem}.interrupted{path.suffix or '.npz'}")


def _interrupted(args: argparse.Namespace, steps: int, trained: dict[str, object]) -> int:
    """Save the parameters of a run stopped by Ctrl-C after ``steps`` steps; one line."""
    import numpy as np

    path = interrupted_path(args.out)
    with open(path, "wb") as handle:
        np.savez(handle, **trained)
    print(
        f"symgen: interrupted after {steps} of {args.steps} steps; wrote the parameters "
        f"reached to {path} (resume with --init {path})",
        file=sys.stderr,
    )
    return INTERRUPTED


SPEC_HELP = (
    "a Python file that builds a symgen.Problem: path.py, path.py:NAME or package.module:NAME"
)


def _command(sub, name: str, summary: str, usage: str) -> argparse.ArgumentParser:
    """A subcommand: ``summary`` is its line in ``symgen --help`` and the first of its own."""
    return sub.add_parser(
        name, prog=f"symgen {name}", help=summary, description=summary + ".", usage=usage
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="symgen",
        description=DESCRIPTION,
        usage="%(prog)s [-h] [-V] COMMAND ...",
        epilog="Run 'symgen COMMAND --help' for a command's options.",
    )
    parser.add_argument(
        "-V",
        "--version",
        action="version",
        version=f"symgen {__version__}",
        help="print the version",
    )
    sub = parser.add_subparsers(
        title="commands",
        dest="command",
        metavar="COMMAND",
        required=True,
        parser_class=_Parser,
        help="one of:",
    )
    parser.commands = sub.choices  # for errors with the subcommand's usage (see parse)
    for name, summary in (
        ("generate", "write the generated modules of SPEC's problems"),
        ("check", "exit 1 if the generated modules of SPEC are stale (for CI)"),
    ):
        p = _command(sub, name, summary, "%(prog)s SPEC [--backend NAME ...] [-o DIR] [options]")
        p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
        p.add_argument(
            "--backend",
            action="append",
            choices=sorted(BACKENDS),
            help="the module to write: numpy (the default), c or cuda; repeat for several",
        )
        p.add_argument(
            "-o", "--output", default="generated", metavar="DIR", help="folder (default: generated)"
        )
        p.add_argument(
            "--optimizer",
            choices=list(OPTIMIZERS),
            help="bake this optimizer's hyperparameters into its step function",
        )
        for hyper, text in HYPERPARAMETERS.items():
            p.add_argument(f"--{hyper}", type=float, metavar="X", help=text)
    p = _command(
        sub,
        "show",
        "print the loss and its simplified derivatives",
        "%(prog)s SPEC [--format FORMAT] [--program] [--hessian]",
    )
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    p.add_argument(
        "--format",
        choices=show_module.FORMATS,
        default="text",
        help="text (the default; formulas as you would type them), latex or markdown",
    )
    p.add_argument("--program", action="store_true", help="also print the CSE'd statements")
    p.add_argument(
        "--hessian",
        action="store_true",
        help="also print the second derivatives (with --program, the Hessian's statements)",
    )
    p = _command(
        sub,
        "diff",
        "differentiate an expression",
        "%(prog)s EXPR --wrt NAME [--wrt NAME ...] [--at NAME=VALUE ...]",
    )
    p.add_argument(
        "expr", metavar="EXPR", help='the expression, e.g. "(x-4)*(x**2+6)" (parsed, not eval\'d)'
    )
    p.add_argument(
        "--wrt",
        action="append",
        required=True,
        metavar="NAME",
        help="differentiate with respect to NAME; repeat for several (a repeated NAME counts once)",
    )
    p.add_argument(
        "--at",
        action="append",
        metavar="NAME=VALUE",
        help="evaluate the derivative where NAME is VALUE (a number or pi, e, sqrt(2), ...)",
    )
    p = _command(
        sub,
        "train",
        "fit the parameters of SPEC's problem to data",
        "%(prog)s SPEC --data FILE --init FILE.npz|NAME=VALUE ... --out PARAMS.npz [options]",
    )
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP + " (one Problem)")
    p.add_argument(
        "--data",
        metavar="FILE",
        help="data arrays by name: .npz (or .csv columns), or read lazily with dask: "
        "a Zarr store (*.zarr), a folder of NAME.npy files, or Parquet (a file or a folder)",
    )
    p.add_argument(
        "--init",
        action="append",
        metavar="FILE.npz|NAME=VALUE",
        help="initial parameters: an .npz by name, or NAME=VALUE for a scalar (repeatable)",
    )
    p.add_argument("--out", required=True, metavar="PARAMS.npz", help="trained parameters")
    p.add_argument(
        "--backend",
        choices=["numpy", "c"],
        default="numpy",
        help="the module that computes the steps: NumPy (default) or its compiled C passes",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=1000,
        help="steps to run (default: 1000; lbfgs: iterations, lm: evaluations at most)",
    )
    p.add_argument(
        "--optimizer",
        choices=[*OPTIMIZERS, *FULL_BATCH],
        default="adam",
        help="the update rule (default: adam); lbfgs (SciPy's L-BFGS-B), lm "
        "(Levenberg-Marquardt, for least-squares losses) and newton (the module's "
        "newton_step) use all the data at every iteration, with no --lr or --batch-size",
    )
    p.add_argument("--lr", type=float, help=help_text("lr"))
    p.add_argument("--batch-size", type=int, metavar="B", help="rows per step (default: all)")
    p.add_argument(
        "--hyper",
        action="append",
        metavar="NAME=VALUE",
        help=f"optimizer setting: {', '.join(DEFAULTS)}; for lbfgs and lm SciPy's options "
        f"(gtol, maxcor, xtol, ...); for lm method={'|'.join(METHODS)} (repeatable)",
    )
    p.add_argument(
        "--tol", type=float, help="stop when the loss changes by less than this, relatively"
    )
    p.add_argument("--seed", type=int, default=0, help="shuffling seed for --batch-size")
    p.add_argument("--plot", metavar="LOSS.png", help="save the loss curve (needs matplotlib)")
    p.add_argument("--report-every", type=int, metavar="K", help="report every K steps")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or report")
    return parser


COMMANDS = {
    "generate": cmd_generate,
    "check": cmd_check,
    "show": cmd_show,
    "diff": cmd_diff,
    "train": cmd_train,
}


#: What ``symgen diff`` reads as an option; any other word starting with "-" is EXPR.
DIFF_OPTIONS = ("-h", "--help", "--wrt", "--at")


def _expression_last(argv: list[str]) -> list[str]:
    """``diff "-x**2" --wrt x`` as ``diff --wrt x -- "-x**2"``: argparse would read an
    expression that starts with "-" as an unknown option (it takes only negative
    numbers, or words with a space, as positional)."""
    argv = list(argv)
    if not argv or argv[0] != "diff" or "--" in argv:
        return argv
    for i, word in enumerate(argv[1:], 1):
        option = word.partition("=")[0]
        takes_value = argv[i - 1] in DIFF_OPTIONS[2:]
        if word.startswith("-") and not takes_value and not _is_option(option):
            return [*argv[:i], *argv[i + 1 :], "--", word]
    return argv


def _is_option(word: str) -> bool:
    """``word`` names a ``diff`` option, or abbreviates a long one as argparse allows."""
    return word in DIFF_OPTIONS or (
        word.startswith("--") and any(o.startswith(word) for o in DIFF_OPTIONS if o[1] == "-")
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line; an option that its subcommand does not know is an error
    with that subcommand's usage (argparse's own would show the top-level usage)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(
        _expression_last(sys.argv[1:] if argv is None else argv)
    )
    if unknown:
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:  # before or after training (train handles it during)
        print("symgen: interrupted", file=sys.stderr)
        return INTERRUPTED
    except UsageError as exc:
        sys.stderr.write(exc.usage)
        print(f"symgen: error: {exc}", file=sys.stderr)
        return 2
    except (SpecError, OSError, ValueError, TypeError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"symgen: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
