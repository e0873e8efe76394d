"""Pictures of ``symgen.fit`` at work: optimizers compared on W1, W2 and W3.

    python examples/training_pictures.py          # needs matplotlib; writes examples/out/*.png
    python examples/training_pictures.py docs     # the copies the README shows

- ``rosenbrock_optimizers.png``: SGD, momentum and Adam paths from (2, 2) over
  the Rosenbrock contours (the picture in the README's Training section,
  copied to docs/).
- ``logistic_optimizers.png``: the W2 logistic loss per sample on N = 20000
  synthetic samples, full batch (SGD, momentum, Adam) and mini-batches (Adam).
- ``mlp_optimizers.png``: the W3 two-layer ReLU network on its seed data,
  SGD (lr 1e-4, the tutorial's) against Adam.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import symgen  # noqa: E402
from examples import logistic, mlp  # noqa: E402

#: (label, fit arguments) of each Rosenbrock run; all start at (2, 2).
ROSENBROCK_RUNS = [
    ("SGD, lr 1e-3", dict(optimizer="sgd", lr=1e-3, steps=5000), "tab:red"),
    ("momentum 0.9, lr 1e-4", dict(optimizer="momentum", lr=1e-4, steps=5000), "darkorange"),
    ("Adam, lr 0.02", dict(optimizer="adam", lr=0.02, steps=5000), "tab:blue"),
]


def rosenbrock_paths(module, start=(2.0, 2.0)):
    """{label: (color, list of (x, y) after every step, result)} for ROSENBROCK_RUNS."""
    paths = {}
    for label, options, color in ROSENBROCK_RUNS:
        path = [start]
        result = symgen.fit(
            module,
            start,
            progress=False,
            callback=lambda step, loss, params, path=path: path.append(params),
            **options,
        )
        paths[label] = (color, path, result)
    return paths


def plot_rosenbrock(module, paths, filename, dpi=90):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The style of examples/rosenbrock.py: log-spaced contours, the minimum as a star.
    xs, ys = np.meshgrid(np.linspace(-0.5, 2.5, 300), np.linspace(-0.5, 4.5, 300))
    zs = np.vectorize(module.loss)(xs, ys)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contour(xs, ys, np.log10(zs + 1e-3), levels=20, cmap="viridis", linewidths=0.8)
    for order, (label, (color, path, _)) in enumerate(paths.items()):
        px, py = zip(*path, strict=True)
        end = f"({px[-1]:.3f}, {py[-1]:.3f})"
        # later runs underneath, so that the early ones stay visible where paths meet
        ax.plot(
            px,
            py,
            ".-",
            color=color,
            markersize=2.5,
            linewidth=1.2,
            label=f"{label} -> {end}",
            zorder=10 - order,
        )
    ax.plot([2], [2], "ko", markersize=6, label="start (2, 2)", zorder=11)
    ax.plot([1], [1], "k*", markersize=12, label="minimum (1, 1)", zorder=11)
    steps = {r.steps for _, _, r in paths.values()}
    ax.set_xlim(-0.5, 2.5)
    ax.set_ylim(-0.5, 4.5)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"Rosenbrock: {'/'.join(map(str, sorted(steps)))} steps of symgen.fit")
    ax.legend(loc="upper left", fontsize=9.5)
    fig.savefig(filename, dpi=dpi, bbox_inches="tight", pil_kwargs={"optimize": True})
    plt.close(fig)


def logistic_curves(module, n=20_000, steps=300):
    """{label: (steps, full-data loss per sample after each step)} on W2's synthetic data."""
    x, t = logistic.large(n=n, d=16)
    runs = [
        ("SGD, lr 2e-5", dict(optimizer="sgd", lr=2e-5)),
        ("momentum 0.9, lr 5e-6", dict(optimizer="momentum", lr=5e-6)),
        ("Adam, lr 0.05", dict(optimizer="adam", lr=0.05)),
        ("Adam, lr 0.02, batches of 500", dict(optimizer="adam", lr=0.02, batch_size=500)),
    ]
    curves = {}
    for label, options in runs:
        losses = []

        def record(step, loss, params, losses=losses):
            losses.append(module.loss(*params, X=x, t=t) / n)

        symgen.fit(
            module,
            (np.zeros((x.shape[1], 1)),),
            {"X": x, "t": t},
            steps=steps,
            progress=False,
            callback=record,
            **options,
        )
        curves[label] = losses
    return curves


def mlp_curves(module, steps=300):
    """{label: loss before each step} for W3 on the tutorial's seed data."""
    curves = {}
    for label, options in [
        ("SGD, lr 1e-4", dict(optimizer="sgd", lr=1e-4)),
        ("Adam, lr 1e-3", dict(optimizer="adam", lr=1e-3)),
        ("Adam, lr 1e-2", dict(optimizer="adam", lr=1e-2)),
    ]:
        x, y, w1, w2 = mlp.seed_data()
        result = symgen.fit(
            module, (w1, w2), {"X": x, "Y": y}, steps=steps, progress=False, **options
        )
        curves[label] = result.history
    return curves


def plot_curves(curves, filename, title, ylabel, log=True, dpi=100):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, linewidth=1.5, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.savefig(filename, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def main(folder: str | None = None):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: no pictures (pip install 'symgen[plot]')")
        return
    from generated import logistic_numpy, mlp_numpy, rosenbrock_numpy

    out = Path(folder) if folder else ROOT / "examples" / "out"
    out.mkdir(parents=True, exist_ok=True)

    paths = rosenbrock_paths(rosenbrock_numpy)
    for label, (_, path, result) in paths.items():
        print(f"rosenbrock {label}: ({path[-1][0]:.5f}, {path[-1][1]:.5f}), loss {result.loss:.3g}")
    plot_rosenbrock(rosenbrock_numpy, paths, out / "rosenbrock_optimizers.png")
    print(f"saved {out / 'rosenbrock_optimizers.png'}")

    curves = logistic_curves(logistic_numpy)
    for label, losses in curves.items():
        print(f"logistic {label}: loss per sample {losses[0]:.4f} -> {losses[-1]:.4f}")
    plot_curves(
        curves,
        out / "logistic_optimizers.png",
        "W2 logistic regression, N = 20000, D = 16",
        "loss per sample (all data, after the step)",
        log=False,
    )
    print(f"saved {out / 'logistic_optimizers.png'}")

    curves = mlp_curves(mlp_numpy)
    for label, losses in curves.items():
        print(f"mlp {label}: loss {losses[0]:.1f} -> {losses[-1]:.3g}")
    plot_curves(
        curves,
        out / "mlp_optimizers.png",
        "W3 two-layer ReLU network (float32), seed data",
        "loss (before the step)",
    )
    print(f"saved {out / 'mlp_optimizers.png'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
