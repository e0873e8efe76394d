"""``python -m benchmarks``: where each kind of run writes its report."""

from pathlib import Path

import pytest

from benchmarks.__main__ import parse
from benchmarks.report import MARKER, write


def test_a_quick_run_leaves_the_committed_benchmarks_alone(root):
    full, quick = parse([]), parse(["--quick"])
    assert (full.mode, full.output) == ("full", root / "BENCHMARKS.md")
    assert quick.mode == "quick" and quick.output != full.output
    ignored = (root / ".gitignore").read_text().splitlines()
    assert f"{quick.output.parent.relative_to(root).as_posix()}/" in ignored
    assert parse(["--quick", "--output", "q.md"]).output == Path("q.md")


def test_write_makes_the_folder_and_keeps_the_notes(tmp_path):
    path = tmp_path / "out" / "report.md"
    write(path, "# Benchmarks\n\ntable 1")
    path.write_text(path.read_text() + "a note\n")
    write(path, "# Benchmarks\n\ntable 2")
    text = path.read_text()
    assert "table 2" in text and "table 1" not in text and text.endswith(f"{MARKER}\n\na note\n")


def test_a_run_of_some_workloads_leaves_the_committed_benchmarks_alone(root):
    only = parse(["--only", "solve-w4,solve-w2"])
    assert only.only == ["solve-w4", "solve-w2"] and only.output != root / "BENCHMARKS.md"
    assert only.output.parent == parse(["--quick"]).output.parent
    assert parse(["--only", "solve-w4", "--output", "o.md"]).output == Path("o.md")
    with pytest.raises(SystemExit):
        parse(["--only", "solve-w9"])
