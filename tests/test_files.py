"""Generated files are written atomically."""

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
