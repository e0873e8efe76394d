"""Smoke test of the GPU benchmark (``python -m benchmarks.gpu``) on the CPU emulator.

Only that the script runs end to end and reports what it must (the three workloads, the
checks, missing contenders listed as missing): emulated timings mean nothing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")


def test_emulated_run_writes_every_workload(root, tmp_path) -> None:
    out = tmp_path / "gpu_results.md"
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--emulate", "--quick", "--without", "jax"]
        + ["--out", str(out)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert text.strip() in done.stdout  # printed as well as written
    assert "EMULATED" in text
    for heading in ("## W4 — curve fit", "## W3 large — two-layer ReLU", "## W2 large — logistic"):
        assert heading in text
    tables = [line for line in text.splitlines() if line.startswith("| contender |")]
    assert len(tables) == 6  # W4 float64/float32, W3 loss_and_grad/sgd_step, W2 float64/float32
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    symgen_rows = [r for r in rows if r.startswith("| symgen `")]
    assert len(symgen_rows) == 6 and all("| reference |" in r for r in symgen_rows)
    jax_rows = [r for r in rows if r.startswith("| JAX ")]
    assert len(jax_rows) == 6
    assert all("missing: not run (`--without jax`)" in r for r in jax_rows)
    torch_rows = [r for r in rows if r.startswith("| PyTorch ")]
    assert len(torch_rows) == 6
    if importlib.util.find_spec("torch") is None:
        assert "- torch: missing: not installed" in text
    if "- torch: missing:" in text:  # not installed, or its import failed
        assert all("| missing: " in r for r in torch_rows), torch_rows
    else:  # torch on the CPU stands in for torch on the GPU
        assert all("| ok (" in r for r in torch_rows), torch_rows
    assert "MISMATCH" not in text
    assert "every contender that ran agrees with symgen's module" in text
