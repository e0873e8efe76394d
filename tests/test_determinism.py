"""Generated files are byte-identical across runs and hash seeds, and match generated/."""

import os
import subprocess
import sys

import pytest

from examples import C_SPECS, CUDA_SPECS, SPECS


def generate_all(root, out, seed):
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    jobs = [(spec, "numpy") for spec in SPECS] + [(spec, "cuda") for spec in CUDA_SPECS]
    jobs += [(spec, "c") for spec in C_SPECS]
    for spec, backend in jobs:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "symgen",
                "generate",
                spec,
                "--backend",
                backend,
                "-o",
                str(out),
            ],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.mark.slow
def test_same_bytes_whatever_the_hash_seed(root, tmp_path):
    runs = [generate_all(root, tmp_path / f"seed{seed}", seed) for seed in (0, 1, 4242)]
    numpy_files = len(SPECS) - 1 + 7  # examples/derivatives.py:TABLE writes 7 modules
    assert len(runs[0]) == numpy_files + len(CUDA_SPECS) + len(C_SPECS)
    assert runs[0] == runs[1] == runs[2]
    committed = {name: (root / "generated" / name).read_bytes() for name in runs[0]}
    assert runs[0] == committed
