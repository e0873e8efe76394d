"""Every code block of README.md and docs/*.md runs as written, so a doc that drifts fails.

What runs, each chain of blocks in a fresh temporary folder holding copies of examples/
and generated/ (the current directory of the code; imports come from the repository):

- ```python: executed in a fresh namespace. A block of ``>>>`` lines is a doctest (its
  output is compared; ``...`` elides). A block with an ``if __name__ == "__main__":`` guard
  runs as a script in a process of its own (Dask's worker processes import it).
- ```sh / ```console: each ``$ COMMAND`` line (``symgen ...`` or ``python ...``) runs and its
  output (stdout and stderr, as a terminal shows them) is compared with the lines below
  it (``...`` elides); a block without ``$`` lines is a list of commands that must succeed.
- A fence without a language is output or a diagram: not code, not run.

The HTML comment on the line above a fence, if any, says otherwise:

- ``<!-- not run: REASON -->``: skipped, with its reason (installs, a GPU, minutes).
- ``<!-- continues the block above -->``: runs in the namespace of the python block above.
- ``<!-- excerpt of PATH -->``: code shown in part: each line but ``...`` is a line of PATH.
- ``<!-- run on the CPU emulator -->``: runs inside ``symgen.testing.fake_cupy_installed()``.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*$")
COMMENT = re.compile(r"^\s*<!--\s*(?P<text>.*?)\s*-->\s*$")
#: The comments that say how to treat the block below them.
MARKS = re.compile(
    r"not run: (?P<skip>\S.*)|(?P<continues>continues the block above)"
    r"|excerpt of (?P<excerpt>\S+)|(?P<emulator>run on the CPU emulator)"
)
LANGUAGES = {"python", "sh", "console", ""}
OPTIONS = doctest.ELLIPSIS


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # the opening fence's, from 1
    lang: str
    text: str
    mark: str  # the comment on the line above the fence, or ""

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.line}"

    def marked(self, group: str) -> str | None:
        match = MARKS.fullmatch(self.mark)
        return match[group] if match else None


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent = fence["indent"]
        end = next(
            j for j in range(i + 1, len(lines)) if lines[j].rstrip() == f"{indent}```".rstrip()
        )
        text = "".join(line[len(indent) :] + "\n" for line in lines[i + 1 : end])
        comment = COMMENT.match(lines[i - 1]) if i else None
        found.append(Block(path, i + 1, fence["lang"], text, comment["text"] if comment else ""))
        i = end + 1
    return found


ALL = [block for path in DOCS for block in blocks(path)]


def chains() -> list[list[Block]]:
    """The code blocks, each with the ones that continue it."""
    out: list[list[Block]] = []
    for block in ALL:
        if not block.lang:
            continue
        if block.marked("continues"):
            assert out and out[-1][-1].lang == "python", f"{block.name}: no python block above"
            out[-1].append(block)
        else:
            out.append([block])
    return out


def test_every_block_is_code_the_runner_knows_or_text():
    assert len(ALL) >= 25  # the parser found the blocks
    for block in ALL:
        assert block.lang in LANGUAGES, f"{block.name}: ```{block.lang}: use python, sh or none"
        assert not block.mark or MARKS.fullmatch(block.mark), f"{block.name}: {block.mark!r}"
        assert block.lang or not block.mark, f"{block.name}: a text block is never run"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for folder in ("examples", "generated"):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("out", "__pycache__")
        )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _env() -> dict[str, str]:
    """This environment, with the repository importable (symgen, examples, generated)."""
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


# -- python ---------------------------------------------------------------------------


def _is_script(block: Block) -> bool:
    return re.search(r'^if __name__ == "__main__":', block.text, re.MULTILINE) is not None


def _run_python(block: Block, namespace: dict, workdir: Path) -> None:
    if _is_script(block):
        script = workdir / f"doc_{block.line}.py"
        script.write_text(block.text, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, script.name], cwd=workdir, env=_env(), capture_output=True, text=True
        )
        assert done.returncode == 0, f"{block.name}:\n{done.stdout}\n{done.stderr}"
        return
    emulator = contextlib.nullcontext()
    if block.marked("emulator"):
        from symgen.testing import fake_cupy_installed

        emulator = fake_cupy_installed()
    loaded = set(sys.modules)
    try:
        with emulator:
            if block.text.lstrip().startswith(">>>"):
                _doctest(block, namespace)
            else:
                code = compile(block.text, f"{block.path.name}, block at line {block.line}", "exec")
                exec(code, namespace)
    finally:  # generated modules imported here (perhaps bound to the emulator) are dropped
        for name in set(sys.modules) - loaded:
            if name.startswith("generated"):
                del sys.modules[name]


def _doctest(block: Block, namespace: dict) -> None:
    test = doctest.DocTestParser().get_doctest(
        block.text, namespace, block.name, str(block.path), block.line
    )
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    runner.run(test, out=report.write, clear_globs=False)
    namespace.update(test.globs)
    assert runner.failures == 0, report.getvalue()


# -- sh -------------------------------------------------------------------------------


def _logical_lines(text: str) -> list[str]:
    """The lines of ``text`` with ``\\``-continued ones joined."""
    out: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(pending + (line.strip() if pending else line))
        pending = ""
    return out


def commands(block: Block) -> list[tuple[str, str | None]]:
    """``(command, expected output or None)`` for each command of a shell block."""
    lines = _logical_lines(block.text)
    if not any(line.startswith("$ ") for line in lines):
        return [(line, None) for line in lines if line.strip() and not line.startswith("#")]
    out: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            assert out, f"{block.name}: output before the first $ line"
            out[-1][1].append(line)
    return [(command, "".join(f"{line}\n" for line in lines)) for command, lines in out]


def _argv(block: Block, command: str) -> list[str]:
    argv = shlex.split(command, comments=True)
    programs = {"symgen": [sys.executable, "-m", "symgen"], "python": [sys.executable]}
    assert argv[0] in programs, (
        f"{block.name}: the runner runs symgen and python commands only, not {argv[0]!r}; "
        "mark the block <!-- not run: REASON --> if it is not meant to run"
    )
    return programs[argv[0]] + argv[1:]


def _run_shell(block: Block, workdir: Path) -> None:
    checker = doctest.OutputChecker()
    for command, expected in commands(block):
        done = subprocess.run(
            _argv(block, command),
            cwd=workdir,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if expected is None:
            assert done.returncode == 0, f"{block.name}: $ {command}\n{done.stdout}"
        elif not checker.check_output(expected, done.stdout, OPTIONS):
            pytest.fail(f"{block.name}: $ {command}\nexpected:\n{expected}\ngot:\n{done.stdout}")


# -- the tests ------------------------------------------------------------------------


def _param(chain: list[Block]):
    slow = any(b.lang == "python" and _is_script(b) for b in chain)
    return pytest.param(chain, id=chain[0].name, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("chain", [_param(c) for c in chains()])
def test_block_runs_as_written(chain, workdir):
    namespace: dict = {"__name__": "__doc_block__"}
    for block in chain:
        if block.marked("skip"):
            pytest.skip(f"{block.name}: not run: {block.marked('skip')}")
        excerpt = block.marked("excerpt")
        if excerpt:
            have = {line.strip() for line in (ROOT / excerpt).read_text().splitlines()}
            shown = [line.strip() for line in block.text.splitlines()]
            missing = [line for line in shown if line and line != "..." and line not in have]
            assert not missing, f"{block.name}: not in {excerpt}: {missing}"
        elif block.lang == "python":
            _run_python(block, namespace, workdir)
        else:
            _run_shell(block, workdir)
