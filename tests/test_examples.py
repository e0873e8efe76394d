"""The example scripts run and print what the README and WORKLOADS.md say."""

import subprocess
import sys

import pytest

import symgen
from examples import rosenbrock


def test_rosenbrock_plot(tmp_path):
    pytest.importorskip("matplotlib")
    module = symgen.compile(rosenbrock.rosenbrock)
    path = rosenbrock.descend(module, steps=500)
    out = tmp_path / "rosenbrock.png"
    rosenbrock.plot(module, path, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_rosenbrock_script(root):
    proc = subprocess.run(
        [sys.executable, "examples/rosenbrock.py"], cwd=root, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "after 10000 steps: x = 1.00806, y = 1.01622" in proc.stdout


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_huber_script(root, backend):
    """The Huber fit stays near the true line where least squares follows the outliers."""
    proc = subprocess.run(
        [sys.executable, "examples/huber.py", backend], cwd=root, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "loss: 5.5834 -> 3.0218 after 2000 Adam steps"
    assert lines[1] == "  a = +2.002   (least squares +2.008, true +2.000)"
    assert lines[2] == "  b = -0.809   (least squares +1.018, true -1.000)"


def test_derivatives_script(root):
    proc = subprocess.run(
        [sys.executable, "examples/derivatives.py"], cwd=root, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 8
    assert lines[3].split("d/dx = ")[1].split() == [
        "3*x**2",
        "-",
        "8*x",
        "+",
        "6",
        "->",
        "6,",
        "1,",
        "2",
    ]
    assert lines[5].endswith("-> 6.18198051534, 6.46410161514")


def test_training_pictures_draw_the_loss_curves(tmp_path):
    """examples/training_pictures.py: every optimizer lowers the W2 and W3 losses, and the
    curves are drawn (the README shows docs/*_optimizers.png, made by the same code)."""
    pytest.importorskip("matplotlib")
    from examples import logistic, mlp, training_pictures

    curves = training_pictures.logistic_curves(symgen.compile(logistic.logistic), n=2000, steps=30)
    assert len(curves) == 4
    for label, losses in curves.items():
        assert len(losses) == 30 and losses[-1] < losses[0], label
    out = tmp_path / "logistic.png"
    training_pictures.plot_curves(curves, out, "W2", "loss per sample", log=False)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    curves = training_pictures.mlp_curves(symgen.compile(mlp.mlp), steps=20)
    sgd, adam = curves["SGD, lr 1e-4"], curves["Adam, lr 1e-3"]
    assert sgd[0] == pytest.approx(53178.40, rel=1e-3)  # WORKLOADS.md W3, epoch 1
    assert sgd[-1] < sgd[0] and adam[-1] < adam[0]
    out = tmp_path / "mlp.png"
    training_pictures.plot_curves(curves, out, "W3", "loss")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_shows_the_committed_pictures(root):
    readme = (root / "README.md").read_text()
    for name in ("rosenbrock_optimizers", "logistic_optimizers", "mlp_optimizers"):
        assert f"](docs/{name}.png)" in readme
        assert (root / "docs" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _CupyWithoutDevice:
    """A CuPy whose runtime finds no driver, as on a machine without a GPU."""

    class cuda:  # noqa: N801 - cupy.cuda
        class runtime:  # noqa: N801 - cupy.cuda.runtime
            @staticmethod
            def getDeviceCount():  # noqa: N802 - CuPy's name
                raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver is too old")


def test_gpu_fit_says_why_it_falls_back(monkeypatch):
    from examples import gpu_fit

    monkeypatch.setitem(sys.modules, "cupy", None)  # not installed
    module, xp, what = gpu_fit.pick()
    assert module.__name__.endswith("curve_fit_numpy") and xp.__name__ == "numpy"
    assert what.startswith("NumPy module (CuPy is not installed: pip install 'symgen[cuda12]'")
    monkeypatch.setitem(sys.modules, "cupy", _CupyWithoutDevice)
    assert gpu_fit.gpu_cupy() == (
        None,
        "CuPy finds no CUDA device (RuntimeError: cudaErrorInsufficientDriver: CUDA driver is "
        "too old)",
    )


def test_gpu_fit_prints_the_module_and_the_reason_first(root):
    code = (
        "import sys, runpy; sys.modules['cupy'] = None; "
        "sys.argv = ['gpu_fit.py', '--samples', '2000', '--steps', '8']; "
        "runpy.run_path('examples/gpu_fit.py', run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "NumPy module (CuPy is not installed: pip install 'symgen[cuda12]' (CUDA 12) or "
        "'symgen[cuda13]'): 2,000 samples, 8 Adam steps"
    )
    assert lines[1].startswith("  step 2: loss ") and lines[-6].startswith("  a = ")
