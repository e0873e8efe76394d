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
