"""``symgen train --data`` on Parquet: a folder of ``*.parquet`` files (one dataset) or a
single file, read lazily as Dask arrays in row chunks at file and row-group boundaries."""

import pickle
import sys

import numpy as np
import pytest

import symgen
from examples import curve_fit, logistic
from symgen import distributed
from symgen.cli.commands import main
from symgen.errors import SpecError
from symgen.runtime.data import parquet, parquet_columns
from symgen.runtime.data.data_source import read_data
from symgen.runtime.data.lazy import is_lazy

pytest.importorskip("dask.array")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

#: Rows of the three files of the curve-fit folder, in order, and their row groups' size.
SIZES = (700, 1100, 1200)
GROUP = 400
INIT = [f"--init={n}={v}" for n, v in zip("abcdeg", curve_fit.START, strict=True)]


@pytest.fixture(autouse=True)
def _in_root(root, monkeypatch):
    monkeypatch.chdir(root)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)  # Dask's local threads


def write(path, columns, group=GROUP):
    pq.write_table(pa.table(columns), path, row_group_size=group)


@pytest.fixture
def curve(tmp_path):
    """W4 data in data.npz and in a folder of three Parquet files of unequal sizes, named
    so that sorting by name alone would misorder them, beside files that are not data."""
    ts, ys = curve_fit.synthetic(n=sum(SIZES))
    np.savez(tmp_path / "data.npz", t=ts, y=ys)
    folder = tmp_path / "parts"
    folder.mkdir()
    start = 0
    for name, size in zip(("part.2", "part.10", "part.11"), SIZES, strict=True):
        rows = slice(start, start + size)
        # any column order; extra columns are not read
        write(folder / f"{name}.parquet", {"y": ys[rows], "id": np.arange(size), "t": ts[rows]})
        start += size
    pq.write_metadata(pa.schema([("t", pa.float64()), ("y", pa.float64())]), folder / "_metadata")
    (folder / "README.txt").write_text("not data")
    return tmp_path, ts, ys


def train(data, out, *extra):
    args = ["train", curve_fit.__file__, "--data", str(data), *INIT, "--steps", "20"]
    assert main([*args, "--lr", "0.02", "--out", str(out), "-q", *extra]) == 0
    with np.load(out) as saved:
        return [float(saved[n]) for n in "abcdeg"]


def one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("symgen: error: "), captured.err
    return lines[0]


def test_train_on_a_folder_and_a_single_file_matches_npz(curve, capsys):
    tmp, ts, ys = curve
    want = train(tmp / "data.npz", tmp / "npz.npz")
    np.testing.assert_allclose(train(tmp / "parts", tmp / "folder.npz"), want, rtol=1e-10)
    write(tmp / "one.parquet", {"t": ts, "y": ys})
    np.testing.assert_allclose(train(tmp / "one.parquet", tmp / "file.npz"), want, rtol=1e-10)
    assert capsys.readouterr().out.count("after 20 adam steps") == 3
    # mini-batches read chunk by chunk
    train(tmp / "parts", tmp / "batches.npz", "--batch-size", "250")
    assert "after 20 adam steps, 1.5" in capsys.readouterr().out  # 13 batches an epoch


def test_arrays_are_lazy_in_chunks_at_file_and_row_group_boundaries(curve, monkeypatch):
    tmp, ts, ys = curve
    reads = []
    real = parquet_columns.read_row_groups

    def counted(path, groups, columns):
        reads.append((path.rsplit("/", 1)[-1], tuple(groups), tuple(columns)))
        return real(path, groups, columns)

    monkeypatch.setattr(parquet_columns, "read_row_groups", counted)
    values = read_data(curve_fit.curve_fit, str(tmp / "parts"))
    t, y = values["t"].array, values["y"].array
    assert reads == []  # metadata only
    assert is_lazy(values) and values["t"].source == f"in {tmp / 'parts'}"
    assert t.chunks == y.chunks == (SIZES,)  # small row groups of a file merged
    assert t.dtype == np.float64
    np.testing.assert_array_equal(t.blocks[1].compute(), ts[700:1800])
    assert reads == [("part.10.parquet", (0, 1, 2), ("t",))]  # one file, one column
    reads.clear()
    np.testing.assert_array_equal(t.compute(), ts)  # files in number order
    assert sorted(reads) == sorted(
        [("part.2.parquet", (0, 1), ("t",)), ("part.10.parquet", (0, 1, 2), ("t",))]
        + [("part.11.parquet", (0, 1, 2), ("t",))]
    )  # each row group once
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(y)).compute(), ys)  # for workers
    reads.clear()
    np.testing.assert_array_equal(t[750:1000].compute(), ts[750:1000])
    assert reads == [("part.10.parquet", (0,), ("t",))]  # only the row group holding them

    monkeypatch.setattr(parquet, "PARQUET_CHUNK_BYTES", 4000)  # < 2 groups of t, y
    t32 = read_data(
        symgen.Problem(curve_fit.curve_fit.loss, curve_fit.curve_fit.params,
                       curve_fit.curve_fit.data, reduce="mean", dtype="float32"),
        str(tmp / "parts"),
    )["t"].array  # fmt: skip
    assert t32.chunks == ((400, 300, 400, 400, 300, 400, 400, 400),)  # one per row group
    assert t32.dtype == np.float32 and t32.compute().dtype == np.float32
    np.testing.assert_array_equal(t32.compute(), ts.astype(np.float32))


@pytest.mark.parametrize("layout", ["columns", "list"])
def test_matrix_problem_reads_X_0_to_X_D_minus_1_or_a_list_column(tmp_path, layout):
    x, t = logistic.large(n=900, d=3, seed=1)
    folder = tmp_path / "data"
    folder.mkdir()
    for k, rows in enumerate((slice(0, 500), slice(500, 900))):
        if layout == "columns":
            columns = {f"X_{j}": x[rows, j] for j in range(3)}
        else:
            columns = {"X": pa.FixedSizeListArray.from_arrays(pa.array(x[rows].ravel()), 3)}
        columns["t"] = t[rows, 0].astype(np.int8)  # integers are read as numbers
        write(folder / f"part.{k}.parquet", columns, group=200)
    values = read_data(logistic.logistic, str(folder))
    data = {name: value.array for name, value in values.items()}
    assert data["X"].chunks == ((500, 400), (3,)) and data["t"].chunks == ((500, 400), (1,))
    assert data["X"].dtype == data["t"].dtype == np.float64
    w = np.array([[0.3], [-0.2], [0.5]])
    got = distributed.loss_and_grad(logistic.logistic, [w], data)
    want = symgen.compile(logistic.logistic).loss_and_grad(w, x, t)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1][0], want[1][0], rtol=1e-12)


LINEAR_SPEC = """\
import sympy as sp
import symgen

N, D = sp.symbols("N D", integer=True, positive=True)
X, Y, W = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("Y", N, 2), sp.MatrixSymbol("W", D, 2)
linear = symgen.Problem(symgen.sum(symgen.square(X * W - Y)), [W], [X, Y], name="linear")
"""


@pytest.mark.parametrize(
    ("spec", "columns", "fragments"),
    [
        ("curve_fit", {"t": [1.0, 2.0]}, ["data 'y' (N,) needs column y: missing from"]),
        (
            "logistic",
            {"t": [1.0, 0.0], "x_0": [1.0, 2.0]},
            [
                "data 'X' (N, D) needs columns X_0, ..., X_{D-1} (or a fixed-size list column X)",
                "(Parquet columns: t, x_0); logistic needs X (N, D), t (N, 1)",
            ],
        ),
        ("logistic", {"X_0": [1.0, 2.0]}, ["data 't' (N, 1) needs column t (or t_0): missing"]),
        (
            "linear",
            {"X_0": [1.0, 2.0], "X_1": [1.0, 2.0], "Y_0": [1.0, 2.0], "Y_1": [3.0, 4.0]},
            ["'X' in", "has shape (2, 2); expected (N, D) with D = 3 from W"],  # from its init
        ),
        (
            "linear",
            {"X_0": [1.0], "X_2": [1.0], "Y_0": [1.0], "Y_1": [3.0]},
            ["data 'X' (N, D) in", "columns X_0..X_2 lack X_1"],
        ),
        ("curve_fit", {"t": [1.0], "y": ["a"]}, ["column 'y' in", "is string, not numbers"]),
    ],
)
def test_column_mistakes_are_one_line_errors(tmp_path, capsys, spec, columns, fragments):
    path = tmp_path / "data.parquet"
    write(path, columns)
    if spec == "curve_fit":
        args = ["train", curve_fit.__file__, *INIT]
    else:
        if spec == "linear":
            (tmp_path / "linear.py").write_text(LINEAR_SPEC)
        init = tmp_path / "init.npz"
        np.savez(init, w=np.zeros((3, 1)), W=np.zeros((3, 2)))
        spec_file = logistic.__file__ if spec == "logistic" else str(tmp_path / "linear.py")
        args = ["train", spec_file, f"--init={init}"]
    assert main([*args, "--data", str(path), "--out", str(tmp_path / "p.npz")]) == 2
    line = one_error_line(capsys)
    for fragment in fragments:
        assert fragment in line, line


def test_folder_mistakes(curve, capsys):
    tmp, ts, ys = curve
    args = ["train", curve_fit.__file__, *INIT, "--out", str(tmp / "p.npz"), "--data"]
    write(tmp / "parts" / "part.12.parquet", {"t": ts[:5]})
    assert main([*args, str(tmp / "parts")]) == 2
    assert "column 'y' is in" in one_error_line(capsys)
    (tmp / "parts" / "part.12.parquet").unlink()
    write(tmp / "parts" / "part.12.parquet", {"t": ts[:5], "y": [str(v) for v in ys[:5]]})
    assert main([*args, str(tmp / "parts")]) == 2
    assert "column 'y' is string in" in one_error_line(capsys)
    (tmp / "parts" / "part.12.parquet").write_bytes(b"not parquet")
    assert main([*args, str(tmp / "parts")]) == 2
    assert "as a Parquet file" in one_error_line(capsys)
    (tmp / "parts" / "part.12.parquet").unlink()
    np.save(tmp / "parts" / "t.npy", ts)
    assert main([*args, str(tmp / "parts")]) == 2
    assert "both .npy and .parquet files" in one_error_line(capsys)
    assert main([*args, str(tmp / "missing.parquet")]) == 2
    assert "file not found" in one_error_line(capsys)


def test_without_pyarrow_a_clear_error(curve, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(SpecError, match=r"needs pyarrow: pip install 'symgen\[dask\]'"):
        read_data(curve_fit.curve_fit, str(curve[0] / "parts"))
