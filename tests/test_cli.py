"""The command line: generate, check, show, diff, and every error path."""

import subprocess
import sys

import pytest

from symgen.cli.commands import main

SPEC = "examples/rosenbrock.py"


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "symgen", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture(autouse=True)
def _in_root(root, monkeypatch):
    monkeypatch.chdir(root)


def test_generate_then_check(tmp_path, capsys):
    assert main(["generate", SPEC, "-o", str(tmp_path)]) == 0
    written = tmp_path / "rosenbrock_numpy.py"
    assert f"wrote {written}" in capsys.readouterr().out
    assert "from examples/rosenbrock.py, problem 'rosenbrock'" in written.read_text()
    assert main(["check", SPEC, "-o", str(tmp_path)]) == 0
    written.write_text(written.read_text() + "# edited\n")
    assert main(["check", SPEC, "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "stale" in err and f"{written} (differs)" in err


def test_check_lists_missing_files(tmp_path, capsys):
    assert main(["check", "examples/derivatives.py:TABLE", "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("(missing)") == 7 and "d_cubic_numpy.py" in err


def test_committed_generated_files_are_fresh(capsys):
    from examples import C_SPECS, CUDA_SPECS, SPECS

    for spec in SPECS:
        assert main(["check", spec, "-o", "generated"]) == 0, capsys.readouterr().err
    for spec in CUDA_SPECS:
        assert main(["check", spec, "--backend", "cuda", "-o", "generated"]) == 0
    for spec in C_SPECS:
        assert main(["check", spec, "--backend", "c", "-o", "generated"]) == 0


def test_console_entry_point_and_module():
    proc = run("diff", "(x-4)*(x**2+6)", "--wrt", "x")
    assert proc.returncode == 0
    assert proc.stdout == "3*x**2 - 8*x + 6\n"


@pytest.mark.parametrize(
    ("expr", "wrt", "at", "expected"),
    [
        ("(x-4)*(x**2+6)", ["x"], [], ["3*x**2 - 8*x + 6"]),
        ("(x-4)*(x**2+6)", ["x"], ["x=2"], ["2"]),
        ("x^2", ["x"], ["x=3"], ["6"]),
        ("exp(x)", ["x"], ["x=2"], ["7.38905609893065"]),
        ("sin(x)", ["x"], ["x=pi"], ["-1"]),
        ("(sqrt(x)+1)**3", ["x"], [], ["3*(sqrt(x) + 1)**2/(2*sqrt(x))"]),
        ("(x+2*y)**2", ["x", "y"], [], ["d/dx: 2*x + 4*y", "d/dy: 4*x + 8*y"]),
        ("(x+2*y)**2", ["x", "y"], ["x=1", "y=2"], ["d/dx: 10", "d/dy: 20"]),
    ],
)
def test_diff(capsys, expr, wrt, at, expected):
    argv = (
        ["diff", expr]
        + [a for w in wrt for a in ("--wrt", w)]
        + [a for p in at for a in ("--at", p)]
    )
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == expected


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["diff", "__import__('os').system('echo pwned')", "--wrt", "x"], "unsupported"),
        (["diff", "x.real", "--wrt", "x"], "x.real"),
        (["diff", "gamma(x)", "--wrt", "x"], "gamma"),
        (["diff", "x +", "--wrt", "x"], "cannot parse"),
        (["diff", "x**2", "--wrt", "y"], "'y' does not appear"),
        (["diff", "x*y", "--wrt", "x", "--at", "x=1"], "no value for y"),
        (["diff", "x**2", "--wrt", "x", "--at", "x=y"], "must be a number"),
        (["diff", "log(x)", "--wrt", "x", "--at", "x=0"], "not finite"),
        (["generate", "examples/nope.py"], "not found"),
        (["generate", "examples/derivatives.py"], "examples/derivatives.py:TABLE"),
        (["generate", "examples/derivatives.py:NOPE"], "no attribute 'NOPE'"),
        (["generate", "examples/derivatives.py:POINTS"], "not a symgen.Problem"),
        (["generate", "no_such_module:thing"], "cannot import"),
    ],
)
def test_errors_are_one_line_exit_2(capsys, argv, fragment):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("symgen: error: ")
    assert fragment in lines[0]


@pytest.mark.parametrize(
    ("argv", "usage", "error"),
    [
        (
            ["genrate", SPEC],
            "usage: symgen [-h] [-V] COMMAND ...",
            "unknown command 'genrate' (did you mean 'generate'? "
            "choose from generate, check, show, diff, train)",
        ),
        (
            ["frobnicate"],
            "usage: symgen [-h] [-V] COMMAND ...",
            "unknown command 'frobnicate' (choose from generate, check, show, diff, train)",
        ),
        (
            ["show", SPEC, "--format", "late"],
            "usage: symgen show SPEC [--format FORMAT] [--program] [--hessian]",
            "argument --format: invalid choice 'late' (did you mean 'latex'? "
            "choose from text, latex, markdown)",
        ),
        (
            ["generate", SPEC, "--backend", "cdua"],
            "usage: symgen generate SPEC [--backend NAME ...] [-o DIR] [options]",
            "argument --backend: invalid choice 'cdua' (did you mean 'cuda'? "
            "choose from c, cuda, numpy)",
        ),
        (
            ["generate", SPEC, "--outptu", "x"],
            "usage: symgen generate SPEC [--backend NAME ...] [-o DIR] [options]",
            "unrecognized arguments: --outptu x",
        ),
        (
            ["diff", "x**2"],
            "usage: symgen diff EXPR --wrt NAME [--wrt NAME ...] [--at NAME=VALUE ...]",
            "the following arguments are required: --wrt",
        ),
        (
            [],
            "usage: symgen [-h] [-V] COMMAND ...",
            "the following arguments are required: COMMAND",
        ),
    ],
)
def test_usage_errors_print_the_usage_then_one_error_line(capsys, argv, usage, error):
    """Like ruff, black and git: a mistake in the command line itself shows how to call
    the command (the subcommand's usage for a subcommand), and a misspelt choice gets a
    suggestion; one prefix, exit status 2."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [usage, f"symgen: error: {error}"]


def test_version(capsys):
    from symgen import __version__

    for flag in ("--version", "-V"):
        proc = run(flag)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"symgen {__version__}\n", "")


def _parsers():
    from symgen.cli.commands import build_parser

    top = build_parser()
    return [top, *top.commands.values()]


def test_every_option_and_argument_has_help_and_every_command_a_description():
    for parser in _parsers():
        assert parser.description and "\n" not in parser.description, parser.prog
        for action in parser._actions:
            assert action.help, f"{parser.prog}: {action.option_strings or action.dest}"
    top = _parsers()[0]
    commands = next(a for a in top._actions if a.dest == "command")
    assert [c.dest for c in commands._choices_actions] == list(top.commands)
    assert all(c.help for c in commands._choices_actions)


def test_help_is_plain_text(capsys):
    for parser in _parsers():
        text = parser.format_help()
        assert "`" not in text and "::" not in text, parser.prog
    proc = run("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: symgen [-h] [-V] COMMAND")
    assert "generate" in proc.stdout and "`" not in proc.stdout


def test_repeated_wrt_is_one_derivative(capsys):
    assert main(["diff", "x**3 + y", "--wrt", "x", "--wrt", "x"]) == 0
    assert capsys.readouterr().out == "3*x**2\n"
    assert main(["diff", "x*y", "--wrt", "y", "--wrt", "x", "--wrt", "y"]) == 0
    assert capsys.readouterr().out.splitlines() == ["d/dy: x", "d/dx: y"]


def test_errors_from_subprocess_have_no_traceback(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sympy as sp\nimport symgen\nx = sp.Symbol('x')\n"
        "P = symgen.Problem(sp.gamma(x), params=[x])\n"
    )
    proc = run("generate", str(bad), "-o", str(tmp_path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "unsupported function 'gamma'" in proc.stderr and "supported: " in proc.stderr


def test_spec_with_several_problems(tmp_path, capsys):
    two = tmp_path / "two.py"
    two.write_text(
        "import sympy as sp\nimport symgen\nx = sp.Symbol('x')\n"
        "A = symgen.Problem(x**2, [x], name='a')\nB = symgen.Problem(x**3, [x], name='b')\n"
    )
    assert main(["show", str(two)]) == 2
    assert "several Problems (A, B)" in capsys.readouterr().err
    assert main(["show", f"{two}:B"]) == 0
    assert "∂L/∂x = 3*x**2" in capsys.readouterr().out


def test_spec_without_problem_and_broken_spec(tmp_path, capsys):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert main(["show", str(empty)]) == 2
    assert "defines no symgen.Problem" in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\ny = undefined_name\n")
    assert main(["show", str(broken)]) == 2
    assert "broken.py:2: NameError" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("files", "error"),
    [
        (  # the spec's own line, named as the user named the file
            {"spec.py": "import sympy as sp\n\nx = sp.Symbol('x')\nP = x + undefined_name\n"},
            "spec.py:4: NameError: name 'undefined_name' is not defined",
        ),
        (  # a SpecError raised inside symgen: the spec's line that called it
            {
                "spec.py": "import sympy as sp\nimport symgen\n\nx = sp.Symbol('x')\n"
                "P = symgen.Problem(\n    sp.gamma(x), params=[x]\n)\n"
            },
            "spec.py:5: unsupported function 'gamma'",
        ),
        (
            {"spec.py": "import sympy as sp\nx = (\n"},
            "spec.py:2: SyntaxError: '(' was never closed",
        ),
        (  # a module of the user's that the spec imports: its line, as Python's last frame
            {"spec.py": "import helper\n", "helper.py": "a = 1\nb = a / 0\n"},
            "helper.py:2: ZeroDivisionError: division by zero",
        ),
    ],
)
def test_errors_in_a_spec_file_name_its_file_and_line(tmp_path, monkeypatch, capsys, files, error):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "helper", raising=False)
    assert main(["show", "spec.py"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"symgen: error: {error}"), lines


def test_show_formats(capsys):
    assert main(["show", "examples/derivatives.py:TABLE"]) == 0
    out = capsys.readouterr().out
    assert "∂L/∂x = 3*x**2 - 8*x + 6" in out and "∂L/∂y = 4*x + 8*y" in out
    assert main(["show", "examples/derivatives.py:TABLE", "--format", "latex"]) == 0
    assert r"\frac{\partial L}{\partial x} = 3 x^{2} - 8 x + 6" in capsys.readouterr().out
    assert main(["show", "examples/derivatives.py:TABLE", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| parameter | derivative |" in out and r"$\frac{\partial L}{\partial x} = 2 x$" in out


def test_show_program_is_the_generated_code(capsys):
    assert main(["show", "examples/curve_fit.py", "--program"]) == 0
    out = capsys.readouterr().out
    assert "∂ℓ/∂g = 2*(d*t**2 + e*t + g - y + exp(-a*t)*sin(b*t + c))" in out
    program = out.split("loss_and_grad\n", 1)[1]
    generated = open("generated/curve_fit_numpy.py").read()
    statements = [line for line in program.splitlines() if not line.startswith(("#", "return"))]
    assert len(statements) > 10
    for line in statements:
        assert f"    {line}\n" in generated
    assert program.count("np.exp(") == 1  # the shared exponential is computed once


BIAS_SPEC = """\
import sympy as sp
import symgen

M, D = sp.symbols("M D", integer=True, positive=True)
X, y, w = sp.MatrixSymbol("X", M, D), sp.MatrixSymbol("y", M, 1), sp.MatrixSymbol("w", D, 1)
b = sp.Symbol("b")
linear = symgen.Problem(
    symgen.sum(symgen.square(X * w + b * sp.OneMatrix(M, 1) - y)), params=[w, b], data=[X, y]
)
"""


@pytest.mark.parametrize("fmt", ["text", "latex", "markdown"])
def test_show_matrix_problem_with_a_scalar_parameter(tmp_path, capsys, fmt):
    spec = tmp_path / "linear.py"
    spec.write_text(BIAS_SPEC)
    assert main(["show", str(spec), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "scalars: b" in out and "w (D, 1)" in out
    if fmt == "text":
        assert "∂L/∂w = X.T*(2 * X*w - 2 * y + 2 * b)" in out
        assert "∂L/∂b = sum(2 * X*w - 2 * y + 2 * b)" in out


INTEGER_DIMS_SPEC = """\
import sympy as sp
import symgen

N = sp.symbols("N", integer=True, positive=True)
X, W, Y = sp.MatrixSymbol("X", N, 3), sp.MatrixSymbol("W", 3, 2), sp.MatrixSymbol("Y", N, 2)
b = sp.MatrixSymbol("b", 1, 2)
net = symgen.Problem(
    symgen.sum(symgen.square(symgen.tanh(X * W + symgen.ones(N) * b) - Y)), [W, b], [X, Y]
)
"""


@pytest.mark.parametrize("fmt", ["text", "latex", "markdown"])
@pytest.mark.parametrize("hessian", [False, True], ids=["gradient", "hessian"])
def test_show_matrix_problem_of_integer_dimensions(tmp_path, capsys, fmt, hessian):
    """Dimensions that are numbers (``W`` 3 x 2, the bias row 1 x 2) print as symbolic ones
    do: `show` used to end in "symgen: error: Matrices have mismatching shape: (2, 1)"."""
    spec = tmp_path / "net.py"
    spec.write_text(INTEGER_DIMS_SPEC)
    assert main(["show", str(spec), "--format", fmt, *(["--hessian"] if hessian else [])]) == 0
    out = capsys.readouterr().out
    assert "W (3, 2), b (1, 2), X (N, 3), Y (N, 2)" in out
    if fmt == "text":
        assert "∂L/∂W = 2 * X.T*((-tanh(X*W + b)**2 + 1) ⊙ (tanh(X*W + b) - Y))" in out
        assert "∂L/∂b = sum(2 * ((-tanh(X*W + b)**2 + 1) ⊙ (tanh(X*W + b) - Y)), axis=0)" in out
        assert ("∂²L/∂W∂b · v_b = 2 * X.T*(" in out) == hessian
    if fmt == "latex":
        assert r"\operatorname{tanh}\left(X W + b\right) - Y" in out


UNNAMED = "import sympy as sp\nimport symgen\nx = sp.Symbol('x')\nP = symgen.Problem({}, [x])\n"


def test_unnamed_problems_are_named_after_their_spec(tmp_path, capsys):
    """Two spec files of unnamed problems write two files, not one problem_numpy.py."""
    out = tmp_path / "out"
    for stem, loss in (("square", "x**2"), ("cube-2", "x**3")):
        (tmp_path / f"{stem}.py").write_text(UNNAMED.format(loss))
        assert main(["generate", str(tmp_path / f"{stem}.py"), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cube_2_numpy.py", "square_numpy.py"]
    assert "problem 'square'" in (out / "square_numpy.py").read_text()
    # picked by attribute: the attribute's name; a list's items numbered
    (tmp_path / "several.py").write_text(
        UNNAMED.format("x**2")
        + "Q = symgen.Problem(x**4, [x], name='quartic')\n"
        + "TABLE = [symgen.Problem(x**5, [x]), Q, symgen.Problem(x**6, [x])]\n"
    )
    assert main(["generate", f"{tmp_path / 'several.py'}:P", "-o", str(out)]) == 0
    assert main(["generate", f"{tmp_path / 'several.py'}:TABLE", "-o", str(out)]) == 0
    written = capsys.readouterr().out
    for name in ("P", "TABLE_0", "quartic", "TABLE_2"):
        assert f"{out / name}_numpy.py" in written


def test_problems_sharing_a_name_are_refused(tmp_path, capsys):
    spec = tmp_path / "clash.py"
    spec.write_text(
        "import sympy as sp\nimport symgen\nx = sp.Symbol('x')\n"
        "PAIR = [symgen.Problem(x**2, [x], name='f'), symgen.Problem(x**3, [x], name='f')]\n"
    )
    assert main(["generate", f"{spec}:PAIR", "-o", str(tmp_path / "out")]) == 2
    assert "several problems are named 'f'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unnamed_problem_outside_a_spec_is_called_problem():
    import sympy as sp

    import symgen

    x = sp.Symbol("x")
    unnamed = symgen.Problem(x**2, [x])
    assert (unnamed.name, unnamed.named) == ("problem", False)
    renamed = unnamed.renamed("square")
    assert (renamed.name, renamed.named, unnamed.name) == ("square", True, "problem")
    assert renamed.loss == unnamed.loss and renamed.params == unnamed.params


def test_a_module_spec_is_found_from_the_current_folder(tmp_path):
    """`symgen show package.module:NAME` finds the package in the current folder, as
    `python -m` would: the console script's path has its own folder first, not it
    (`-I` runs the CLI with neither the current folder nor PYTHONPATH on the path)."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "spec.py").write_text(
        "import sympy as sp\nimport symgen\nx = sp.Symbol('x')\n"
        "quartic = symgen.Problem((x - 1) ** 4, params=[x], name='quartic')\n"
    )
    shown = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; from symgen.cli import main; sys.exit(main())",
         "show", "mypkg.spec:quartic"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "∂L/∂x = 4*(x - 1)**3" in shown.stdout
