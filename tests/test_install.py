"""`pip install .` (not editable) into a fresh virtualenv finds every backend's templates."""

import json
import os
import re
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


def _extras(root):
    import tomllib

    with open(root / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]["optional-dependencies"]


def test_cuda_extras_name_cupy_wheels(root):
    """``symgen[cuda12]``/``symgen[cuda13]`` require CuPy's prebuilt wheels, never the
    ``cupy`` source distribution (which needs the CUDA toolkit to build)."""
    extras = _extras(root)
    assert extras["cuda12"] == ["cupy-cuda12x>=13"]
    assert extras["cuda13"] == ["cupy-cuda13x>=13"]
    requirements = [r for reqs in extras.values() for r in reqs]
    assert not [r for r in requirements if re.match(r"cupy\b(?!-)", r)], requirements


def test_every_pip_install_of_symgen_names_an_extra_that_exists(root):
    extras = set(_extras(root))
    texts = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    texts += sorted((root / "symgen").rglob("*.py")) + sorted((root / "examples").rglob("*.py"))
    named = set()
    for path in texts:
        text = path.read_text(encoding="utf-8")
        groups = re.findall(r"symgen\[([\w,-]+)\]", text)  # "symgen[cuda12]"
        groups += [  # pip install ".[dev]"
            g
            for line in text.splitlines()
            if "pip install" in line
            for g in re.findall(r"\.\[([\w,-]+)\]", line)
        ]
        named |= {(path.name, extra) for group in groups for extra in group.split(",")}
    assert {extra for _, extra in named} >= {"cuda12", "cuda13", "dev"}
    assert not {(name, e) for name, e in named if e not in extras}


#: pip's words when it cannot reach an index (then the dry run says nothing about symgen).
OFFLINE = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution")


@pytest.mark.parametrize(
    ("extra", "wheel"), [("cuda12", "cupy-cuda12x"), ("cuda13", "cupy-cuda13x")]
)
def test_pip_dry_run_resolves_cuda_extras_to_wheels(root, tmp_path, extra, wheel):
    """What a fresh machine's ``pip install "symgen[cuda12]"`` would install: binary wheels
    only (``--only-binary :all:``, so a source distribution fails the resolution). Needs the
    package index (CI has it); skipped when pip cannot reach one."""
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        + ["--only-binary", ":all:", "--quiet", "--report", str(report), f".[{extra}]"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 and any(word in proc.stderr for word in OFFLINE):
        pytest.skip(f"no package index reachable: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    installs = json.loads(report.read_text())["install"]
    names = {item["metadata"]["name"].lower(): item for item in installs}
    assert wheel in names and "symgen" in names
    assert names[wheel]["download_info"]["url"].endswith(".whl")
