"""``symgen train``: round trips on .npz and .csv data, every error path, progress output."""

import os
import subprocess
import sys

import numpy as np
import pytest

from examples import curve_fit
from symgen.cli.commands import main

CURVE = "examples/curve_fit.py"
MATRIX_SPEC = """\
import sympy as sp
import symgen

M, N_I, N_O = sp.symbols("M N_I N_O", integer=True, positive=True)
X, Y = sp.MatrixSymbol("X", M, N_I), sp.MatrixSymbol("Y", M, N_O)
W = sp.MatrixSymbol("W", N_I, N_O)
linear = symgen.Problem(symgen.sum(symgen.square(X * W - Y)) / M, params=[W], data=[X, Y],
                        name="linear")
"""


@pytest.fixture(autouse=True)
def _in_root(root, monkeypatch):
    monkeypatch.chdir(root)


@pytest.fixture
def curve_files(tmp_path):
    ts, ys = curve_fit.synthetic(n=500)
    np.savez(tmp_path / "data.npz", t=ts, y=ys)
    np.savez(tmp_path / "init.npz", **dict(zip("abcdeg", curve_fit.START, strict=True)))
    return tmp_path


@pytest.fixture
def matrix_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5))
    w = rng.standard_normal((5, 2))
    (tmp_path / "linear.py").write_text(MATRIX_SPEC)
    np.savez(tmp_path / "data.npz", X=x, Y=x @ w)
    np.savez(tmp_path / "init.npz", W=np.zeros((5, 2)))
    np.savez(tmp_path / "true.npz", W=w)
    return tmp_path


def one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("symgen: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_round_trip_per_sample_npz_with_plot(curve_files, capsys):
    out, png = curve_files / "params.npz", curve_files / "loss.png"
    argv = (
        f"train {CURVE} --data {curve_files}/data.npz --init {curve_files}/init.npz"
        f" --steps 2000 --lr 0.02 --out {out} --plot {png}"
    ).split()
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["step", "epoch", "loss", "elapsed"]
    assert lines[-3:-1] == [f"wrote {out}", f"wrote {png}"]
    first, final = lines[-1].removeprefix("loss ").split(" after ")[0].split(" -> ")
    assert lines[-1].endswith("after 2000 adam steps") and float(final) < 1e-3 < float(first)
    with np.load(out) as params:
        assert sorted(params.files) == ["a", "b", "c", "d", "e", "g"]
        got = [float(params[name]) for name in "abcdeg"]
    np.testing.assert_allclose(got, curve_fit.TRUE, atol=0.05)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_round_trip_csv_minibatches_and_scalar_init(curve_files, capsys):
    ts, ys = curve_fit.synthetic(n=400, seed=3)
    csv = curve_files / "data.csv"
    np.savetxt(csv, np.c_[ys, ts], delimiter=",", header="y,t", comments="")  # any column order
    inits = [
        f"--init={name}={value}" for name, value in zip("bcdeg", curve_fit.START[1:], strict=True)
    ]
    out = curve_files / "p.npz"
    argv = (
        f"train {CURVE} --data {csv} --init a=pi/3 {' '.join(inits)} --steps 400 --lr 0.02"
        f" --batch-size 64 --out {out} -q"
    ).split()
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"wrote {out}"  # -q: no report
    assert lines[1].endswith("after 400 adam steps, 57.16 epochs")  # 7 batches an epoch
    with np.load(out) as params:
        assert params["a"].shape == () and abs(float(params["a"]) - 0.7) < 0.1


def test_round_trip_matrix_problem(matrix_files, capsys):
    out = matrix_files / "W.npz"
    argv = (
        f"train {matrix_files}/linear.py --data {matrix_files}/data.npz"
        f" --init {matrix_files}/init.npz --optimizer momentum --lr 0.05 --steps 300"
        f" --out {out} --quiet"
    ).split()
    assert main(argv) == 0
    with np.load(out) as params, np.load(matrix_files / "true.npz") as true:
        np.testing.assert_allclose(params["W"], true["W"], atol=1e-6)
    assert "after 300 momentum steps" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        # a missing array names it and the shape it should have
        ("missing_X", ["data 'X' (M, N_I) is missing from", "data.npz", "arrays: Y"]),
        # a wrong shape names the array, the expected symbolic shape and the actual one
        ("narrow_X", ["data 'X' in", "has shape (40, 4); expected (M, N_I) with N_I = 5 from W"]),
        ("short_Y", ["data 'Y' in", "has shape (39, 2); expected (M, N_O) with M = 40 from X"]),
        ("flat_Y", ["data 'Y' in", "has shape (40,); expected a 2-D array (M, N_O)"]),
        ("missing_W", ["no initial value for parameter 'W' (N_I, N_O)", "init.npz"]),
        ("nan_X", ["data 'X' in", "1 missing, non-numeric or non-finite value(s)", "X[1, 2]"]),
    ],
)
def test_matrix_errors_exit_2_naming_the_array(matrix_files, capsys, change, fragments):
    with np.load(matrix_files / "data.npz") as data:
        x, y = data["X"], data["Y"]
    arrays = {
        "missing_X": dict(Y=y),
        "narrow_X": dict(X=x[:, :4], Y=y),
        "short_Y": dict(X=x, Y=y[:39]),
        "flat_Y": dict(X=x, Y=y[:, 0]),
        "missing_W": dict(X=x, Y=y),
        "nan_X": dict(X=np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x), Y=y),
    }[change]
    np.savez(matrix_files / "data.npz", **arrays)
    if change == "missing_W":
        np.savez(matrix_files / "init.npz", V=np.zeros((5, 2)))
    out = matrix_files / "W.npz"
    argv = (
        f"train {matrix_files}/linear.py --data {matrix_files}/data.npz"
        f" --init {matrix_files}/init.npz --out {out}"
    ).split()
    argv = [
        "train",
        str(matrix_files / "linear.py"),
        "--data",
        str(matrix_files / "data.npz"),
        "--init",
        str(matrix_files / "init.npz"),
        "--out",
        str(out),
    ]
    assert main(argv) == 2
    line = one_error_line(capsys)
    for fragment in fragments:
        assert fragment in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--init", "a=1"], ["no initial value for parameter 'b'", "--init b=VALUE"]),
        (["--init", "INIT", "--init", "z=1"], ["--init z=1", "no parameter 'z'"]),
        (["--init", "INIT", "--init", "a=__import__('os')"], ["bad value for 'a'"]),
        (["--init", "INIT", "--init", "a=x+1"], ["must be a number"]),
        (["--init", "INIT", "--data", "nope.npz"], ["file not found: nope.npz"]),
        (["--init", "INIT", "--data", "DIR/init.npz"], ["data 't' (N,) is missing from"]),
        (["--init", "INIT", "--data", "DIR/data.txt"], [".npz file of arrays", ".csv file"]),
        (["--init", "INIT", "--optimizer", "sgd", "--lr", "1e6"], ["stopped at step", "--lr"]),
        (["--init", "INIT", "--hyper", "beta3=1"], ["'beta3'", "beta1, beta2, eps"]),
        (["--init", "INIT", "--plot", "no/such/dir/loss.png"], ["--plot", "does not exist"]),
    ],
)
def test_per_sample_errors_exit_2(curve_files, capsys, args, fragments):
    (curve_files / "data.txt").write_text("not a data file\n")
    args = [
        a.replace("INIT", str(curve_files / "init.npz")).replace("DIR", str(curve_files))
        for a in args
    ]
    if "--data" not in args:
        args += ["--data", str(curve_files / "data.npz")]
    out = curve_files / "params.npz"
    assert main(["train", CURVE, *args, "--steps", "50", "--out", str(out), "-q"]) == 2
    line = one_error_line(capsys)
    for fragment in fragments:
        assert fragment in line
    assert not out.exists()


@pytest.mark.parametrize("method", ["trf", "dogbox"])
def test_lm_takes_scipys_least_squares_method(curve_files, capsys, method):
    out = curve_files / "params.npz"
    args = ["--data", str(curve_files / "data.npz"), "--init", str(curve_files / "init.npz")]
    args += ["--optimizer", "lm", "--hyper", f"method={method}", "--out", str(out), "-q"]
    assert main(["train", CURVE, *args]) == 0
    assert f"{method} evaluations, stopped by tolerance" in capsys.readouterr().out
    trained = np.load(out)
    np.testing.assert_allclose([trained[n] for n in "abcdeg"], curve_fit.TRUE, atol=0.05)


@pytest.mark.parametrize(
    ("optimizer", "hyper", "fragments"),
    [
        ("lm", "bounds=1", ["--hyper bounds=1", "bounds cannot be given on the command line"]),
        ("lbfgs", "bounds=0", ["bounds cannot be given", "symgen.minimize(..., bounds="]),
        ("lm", "method=newton", ["--hyper method=newton", "one of lm, trf or dogbox"]),
        ("lbfgs", "method=trf", ["only --optimizer lm takes a method (lm, trf or dogbox)"]),
    ],
)
def test_hyper_bounds_and_method_errors_are_one_line(
    curve_files, capsys, optimizer, hyper, fragments
):
    out = curve_files / "params.npz"
    args = ["--data", str(curve_files / "data.npz"), "--init", str(curve_files / "init.npz")]
    args += ["--optimizer", optimizer, "--hyper", hyper, "--out", str(out), "-q"]
    assert main(["train", CURVE, *args]) == 2
    line = one_error_line(capsys)
    for fragment in fragments:
        assert fragment in line
    assert not out.exists()


def test_csv_with_bad_values_and_no_data_problem(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    csv.write_text("t,y\n0.5,1.0\n1.5,oops\n")
    init = [f"--init={n}=0" for n in "abcdeg"]
    assert main(["train", CURVE, "--data", str(csv), *init, "--out", str(tmp_path / "p.npz")]) == 2
    assert "data 'y' in" in one_error_line(capsys)
    argv = f"train examples/rosenbrock.py --init x=2 --init y=2 --data {csv} --out {tmp_path}/p.npz"
    argv = argv.split()
    assert main(argv) == 2
    assert "rosenbrock takes no data" in one_error_line(capsys)
    argv = ["train", "examples/derivatives.py:TABLE", "--out", str(tmp_path / "p.npz")]
    assert main(argv) == 2
    assert "train needs exactly one" in one_error_line(capsys)


TRAIN_ROSENBROCK = [
    sys.executable,
    "-m",
    "symgen",
    *"train examples/rosenbrock.py --init x=2 --init y=2 --steps 20000 --lr 0.01".split(),
]


def test_progress_bar_in_a_terminal(tmp_path, root):
    pytest.importorskip("tqdm")
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(
        [*TRAIN_ROSENBROCK, "--out", str(tmp_path / "p.npz")],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        cwd=root,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode()
    assert "20000/20000" in text and "step/s" in text and "loss=" in text  # tqdm's bar
    assert "epoch     loss" not in text  # not the plain report
    assert "after 20000 adam steps" in text


def test_plain_report_in_a_pipe(tmp_path, root):
    proc = subprocess.run(
        [*TRAIN_ROSENBROCK, "--out", str(tmp_path / "p.npz")],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["step", "epoch", "loss", "elapsed"]
    assert [line.split()[0] for line in lines[1:11]] == [str(k) for k in range(2000, 20001, 2000)]
    assert "step/s" not in proc.stdout + proc.stderr and "\r" not in proc.stdout
    assert proc.stderr == ""
