"""``python -m benchmarks.labels [--quick] [--output PATH]``: integer labels against one-hot.

Times ``loss_and_grad`` of a softmax cross-entropy whose targets are integer labels
(``symgen.take``) against the same loss with one-hot targets (the best spelling before
labels existed), in the NumPy and C backends, interleaved (every round times every
contender once; the median over rounds counts), and reports the ratio labels / one-hot
(issue 17: within 1.2x). Two problems:

- ``multinomial``: scikit-learn's ``HalfMultinomialLoss`` over the raw predictions
  ``Z`` (N x K) themselves: ``mean(logsumexp(Z, axis=1) - take(Z, y))``;
- ``softmax regression``: torch's ``cross_entropy(X @ W + b, y)`` with parameters W, b.

Each pair is checked to agree (loss and gradients, rtol 1e-10) before it is timed.
Results go to ``benchmarks/labels_results.md`` (``--quick``: printed only).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

from benchmarks.process import prepare

ROOT = Path(__file__).resolve().parents[1]
#: (problem, N, D, K): the sizes timed.
CASES = [
    ("multinomial", 100_000, 0, 10),
    ("multinomial", 20_000, 0, 100),
    ("softmax regression", 100_000, 20, 10),
]
BACKENDS = ("numpy", "c")


def problems(kind: str):
    """(labels problem, one-hot problem) of ``kind``."""
    import sympy as sp

    import symgen

    N, D, K = sp.symbols("N D K", integer=True, positive=True)
    y, Y = sp.MatrixSymbol("y", N, 1), sp.MatrixSymbol("Y", N, K)
    if kind == "multinomial":
        Z = sp.MatrixSymbol("Z", N, K)
        params, data = [Z], []
        logits = Z
    else:
        X, W, b = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("W", D, K), sp.MatrixSymbol("b", 1, K)
        params, data = [W, b], [X]
        logits = X * W + sp.OneMatrix(N, 1) * b
    lse = symgen.logsumexp(logits, axis=1)
    with_labels = symgen.Problem(
        symgen.sum(lse - symgen.take(logits, y)) / N, params, [*data, y], name="labels"
    )
    one_hot = symgen.Problem(
        (symgen.sum(lse) - symgen.sum(sp.HadamardProduct(Y, logits))) / N,
        params,
        [*data, Y],
        name="onehot",
    )
    return with_labels, one_hot


def arrays(kind: str, n: int, d: int, k: int):
    """(params, data before the targets, labels, one-hot targets)."""
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, n)
    one_hot = np.eye(k)[labels]
    if kind == "multinomial":
        return [rng.standard_normal((n, k)) * 3], [], labels, one_hot
    x = rng.standard_normal((n, d))
    return [rng.standard_normal((d, k)) * 0.3, rng.standard_normal((1, k))], [x], labels, one_hot


def contenders(kind: str, n: int, d: int, k: int, backend: str):
    """The labels and one-hot contenders of one case, checked to agree."""
    import numpy as np

    import symgen

    from .timing import Contender

    with_labels, one_hot = (symgen.compile(p, backend) for p in problems(kind))
    params, data, labels, targets = arrays(kind, n, d, k)
    a = with_labels.loss_and_grad(*params, *data, labels)
    b = one_hot.loss_and_grad(*params, *data, targets)
    if not np.isclose(a[0], b[0], rtol=1e-10) or not all(
        np.allclose(g, h, rtol=1e-10, atol=1e-14) for g, h in zip(a[1], b[1], strict=True)
    ):
        raise SystemExit(f"{kind} ({backend}): the labels and one-hot modules disagree")
    args = [*params, *data]
    return [
        Contender(
            "labels",
            "f(*args, y)",
            {"f": with_labels.loss_and_grad, "args": args, "y": labels},
        ),
        Contender(
            "one-hot", "f(*args, Y)", {"f": one_hot.loss_and_grad, "args": args, "Y": targets}
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.labels", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds; print only")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "labels_results.md")
    args = parser.parse_args(argv)
    settings = prepare()  # one BLAS thread, pinned; before NumPy loads
    from .timing import format_seconds, measure

    budget, least, most = (3, 5, 40) if args.quick else (30, 31, 301)
    rows = []
    for kind, n, d, k in CASES:
        for backend in BACKENDS:
            label = f"{kind} N={n} D={d} K={k} {backend}"
            found = measure(
                contenders(kind, n, d, k, backend),
                budget=budget,
                min_rounds=least,
                max_rounds=most,
                label=label,
            )
            labels, one_hot = found
            ratio = labels.median / one_hot.median
            rows.append(
                f"| {kind} | {n:,} | {d or '-'} | {k} | {backend} | "
                f"{format_seconds(labels.median)} ± {labels.spread:.0%} | "
                f"{format_seconds(one_hot.median)} ± {one_hot.spread:.0%} | "
                f"**{ratio:.2f}x** | {len(labels.samples)} |"
            )
            print(rows[-1], flush=True)
    report = "\n".join(
        [
            "# Integer labels against one-hot targets",
            "",
            f"`python -m benchmarks.labels`, {datetime.date.today()}, Python "
            f"{platform.python_version()} on {platform.machine()}; "
            + "; ".join(settings.lines())
            + ". Medians of interleaved rounds (± half the interquartile range); the "
            "ratio is labels / one-hot (issue 17 asks for at most 1.2x).",
            "",
            "| problem | N | D | K | backend | labels | one-hot | ratio | rounds |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
    if args.quick:
        print(report)
        return
    args.output.write_text(report)
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
