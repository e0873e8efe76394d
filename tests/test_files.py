"""Generated files are written atomically, with the umask's mode; their headers name the
spec the same way wherever symgen runs."""

import os

import pytest

from symgen import files
from symgen.cli.commands import main


def test_write_atomic_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "m.py"
    files.write_atomic(target, "one\n")
    files.write_atomic(target, "two\n")
    assert target.read_text() == "two\n"
    assert [p.name for p in target.parent.iterdir()] == ["m.py"]


def test_failure_half_way_leaves_old_file(tmp_path, monkeypatch):
    target = tmp_path / "m.py"
    target.write_text("old\n")

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        files.write_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.py"]  # no temporary left behind


def test_failure_while_writing_leaves_old_file(tmp_path, monkeypatch):
    target = tmp_path / "m.py"
    target.write_text("old\n")
    real_fsync = os.fsync

    def broken_fsync(fd):
        real_fsync(fd)
        raise OSError("write error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="write error"):
        files.write_atomic(target, "new " * 10000)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.py"]


def test_cli_generate_failure_keeps_old_file(root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(root)
    target = tmp_path / "rosenbrock_numpy.py"
    target.write_text("old\n")
    monkeypatch.setattr(os, "replace", lambda s, d: (_ for _ in ()).throw(OSError("no space")))
    assert main(["generate", "examples/rosenbrock.py", "-o", str(tmp_path)]) == 2
    assert "no space" in capsys.readouterr().err
    assert target.read_text() == "old\n"


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002], ids=oct)
def test_written_files_get_the_umask_mode(tmp_path, mask):
    """Like a file that ``open`` creates: 0666 less the umask (``mkstemp`` alone gives 0600)."""
    old = os.umask(mask)
    try:
        files.write_atomic(tmp_path / "m.py", "x = 1\n")
        assert (tmp_path / "m.py").stat().st_mode & 0o777 == 0o666 & ~mask
        assert files.umask() == mask
    finally:
        os.umask(old)


def _project(tmp_path):
    """A project with a spec in specs/ and its generated module in out/."""
    project = tmp_path / "project"
    (project / "specs").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    spec = project / "specs" / "line.py"
    spec.write_text(
        "import sympy as sp\nimport symgen\n"
        "a, t, y = sp.symbols('a t y')\n"
        "PROBLEM = symgen.Problem((a*t - y)**2, params=[a], data=[t, y])\n"
    )
    return project, spec


def test_check_passes_wherever_it_runs(tmp_path, monkeypatch, capsys):
    """The header names the spec from its project's root, not from the cwd."""
    project, spec = _project(tmp_path)
    monkeypatch.chdir(project)
    assert main(["generate", "specs/line.py", "-o", "out"]) == 0
    header = (project / "out" / "line_numpy.py").read_text().splitlines()[0]
    assert "from specs/line.py, problem 'line'" in header
    for cwd, spec_arg, out in [
        (project / "specs", "line.py", "../out"),
        (tmp_path, "project/specs/line.py:PROBLEM", "project/out"),
        ("/", str(spec), str(project / "out")),
    ]:
        monkeypatch.chdir(cwd)
        argv = ["check", spec_arg, "-o", out]
        if ":" in spec_arg:  # the :attr part is recorded too, so generate that first
            assert main(["generate", *argv[1:]]) == 0
        assert main(argv) == 0, capsys.readouterr().err


def test_spec_outside_any_project_is_named_by_its_file(tmp_path, monkeypatch, capsys):
    project, spec = _project(tmp_path)
    (project / "pyproject.toml").unlink()
    if any((p / m).exists() for p in spec.parents for m in ("pyproject.toml", ".git")):
        pytest.skip("the temporary folder lies inside a project")
    monkeypatch.chdir(project)
    assert main(["generate", "specs/line.py", "-o", "out"]) == 0
    assert "from line.py, problem" in (project / "out" / "line_numpy.py").read_text()
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(spec), "-o", str(project / "out")]) == 0
