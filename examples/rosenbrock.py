"""W1: the Rosenbrock function, minimised by plain gradient descent.

    symgen generate examples/rosenbrock.py -o generated
    python examples/rosenbrock.py          # runs the descent; saves a contour plot

From (2, 2) with learning rate 0.001, 10000 steps reach (1.00806, 1.01622).
"""

import sympy as sp

import symgen

x, y = sp.symbols("x y")
rosenbrock = symgen.Problem((1 - x) ** 2 + 100 * (y - x**2) ** 2, params=[x, y], name="rosenbrock")


def descend(module, start=(2.0, 2.0), lr=0.001, steps=10000):
    """Plain gradient descent with the generated ``sgd_step``; returns the path."""
    path = [start]
    params = start
    for _ in range(steps):
        _, params = module.sgd_step(*params, lr=lr)
        path.append(params)
    return path


def plot(module, path, filename):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    xs, ys = np.meshgrid(np.linspace(-0.5, 2.5, 300), np.linspace(-0.5, 4.5, 300))
    zs = np.vectorize(module.loss)(xs, ys)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contour(xs, ys, np.log10(zs + 1e-3), levels=30, cmap="viridis")
    px, py = zip(*path, strict=True)
    ax.plot(px, py, "r.-", markersize=2, linewidth=1, label="gradient descent, lr 0.001")
    ax.plot([1], [1], "k*", markersize=12, label="minimum (1, 1)")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Rosenbrock: 10000 steps from (2, 2)")
    ax.legend()
    fig.savefig(filename, dpi=100, bbox_inches="tight")


if __name__ == "__main__":
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from generated import rosenbrock_numpy as module

    path = descend(module)
    print(f"after {len(path) - 1} steps: x = {path[-1][0]:.5f}, y = {path[-1][1]:.5f}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'symgen[plot]')")
    else:
        out = root / "examples" / "out"
        out.mkdir(exist_ok=True)
        plot(module, path, out / "rosenbrock.png")
        print(f"saved {out / 'rosenbrock.png'}")
