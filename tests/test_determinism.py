"""Generated files are byte-identical across runs and hash seeds, and match generated/."""

import os
import subprocess
import sys

import pytest

from examples import C_SPECS, CUDA_SPECS, SPECS

#: One process per hash seed generates every spec with every backend it is committed for,
#: one `symgen generate` after another in the same interpreter (so a file also must not
#: depend on what the process generated before it).
_GENERATE_ALL = """
import sys
from symgen.cli.commands import main
out, jobs = sys.argv[1], sys.argv[2:]
for spec, backend in zip(jobs[::2], jobs[1::2]):
    if main(["generate", spec, "--backend", backend, "-o", out]) != 0:
        sys.exit(f"symgen generate {spec} --backend {backend} failed")
"""


def _start(root, out, seed):
    """A process that writes every generated file into ``out`` under PYTHONHASHSEED=seed."""
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    jobs = [(spec, "numpy") for spec in SPECS] + [(spec, "cuda") for spec in CUDA_SPECS]
    jobs += [(spec, "c") for spec in C_SPECS]
    arguments = [value for job in jobs for value in job]
    command = [sys.executable, "-c", _GENERATE_ALL, str(out), *arguments]
    return subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.mark.slow
def test_same_bytes_whatever_the_hash_seed(root, tmp_path):
    outs = [tmp_path / f"seed{seed}" for seed in (0, 1, 4242)]
    processes = [_start(root, out, seed) for out, seed in zip(outs, (0, 1, 4242), strict=True)]
    for process in processes:  # the three seeds side by side
        _, errors = process.communicate(timeout=600)
        assert process.returncode == 0, errors.decode()
    runs = [{p.name: p.read_bytes() for p in sorted(out.iterdir())} for out in outs]
    numpy_files = len(SPECS) - 1 + 7  # examples/derivatives.py:TABLE writes 7 modules
    assert len(runs[0]) == numpy_files + len(CUDA_SPECS) + len(C_SPECS)
    assert runs[0] == runs[1] == runs[2]
    committed = {name: (root / "generated" / name).read_bytes() for name in runs[0]}
    assert runs[0] == committed
