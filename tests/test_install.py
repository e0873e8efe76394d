"""`pip install .` (not editable) into a fresh virtualenv finds every backend's templates."""

import os
import shutil
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_pip_install_into_fresh_venv(root, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(
        root,
        src,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "__pycache__",
            "*.egg-info",
            "build",
            "dist",
            ".pytest_cache",
            ".ruff_cache",
            ".hypothesis",
        ),
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", str(src)],
        check=True,
        env=env,
        capture_output=True,
        timeout=900,
    )
    shutil.rmtree(src / "symgen")  # only the installed copy may be used now
    work = tmp_path / "work"
    work.mkdir()
    spec = work / "quad.py"
    spec.write_text(
        "import sympy as sp\nimport symgen\nx, y = sp.symbols('x y')\n"
        "quad = symgen.Problem((x - 3)**2 + x*y + y**2, params=[x, y], name='quad')\n"
    )
    symgen = venv / "bin" / "symgen"
    out = subprocess.run(
        [str(symgen), "generate", "quad.py", "-o", "gen"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote gen/quad_numpy.py" in out.stdout
    for backend in ("c", "cuda"):  # their templates are installed too
        out = subprocess.run(
            [str(symgen), "generate", "quad.py", "-o", "gen", "--backend", backend],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"wrote gen/quad_{backend}.py" in out.stdout
    check = subprocess.run(
        [
            str(py),
            "-c",
            "import sys; sys.path.insert(0, 'gen'); import quad_numpy as m; "
            "import symgen, pathlib; print(m.loss_and_grad(1.0, 2.0)); "
            "print(pathlib.Path(symgen.__file__).parent.parent != pathlib.Path.cwd())",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.splitlines() == ["(10.0, (-2.0, 5.0))", "True"]
