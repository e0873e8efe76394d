"""Reliability of training (issue 15): Ctrl-C keeps the progress made, data files are
read lazily and checked (missing or corrupt chunks, non-numbers, odd CSVs), and every
mistake is one line with exit status 2."""

import signal
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import symgen
from examples import curve_fit
from symgen.cli.commands import interrupted_path, main

CURVE = "examples/curve_fit.py"
m, d = sp.symbols("M D", integer=True, positive=True)
X, Y, W = sp.MatrixSymbol("X", m, d), sp.MatrixSymbol("Y", m, 1), sp.MatrixSymbol("w", d, 1)
LINREG = symgen.Problem(symgen.sum(symgen.square(X * W - Y)), [W], [X, Y], name="linreg")


@pytest.fixture(autouse=True)
def _in_root(root, monkeypatch):
    monkeypatch.chdir(root)


@pytest.fixture(scope="module")
def linreg():
    return symgen.compile(LINREG)


@pytest.fixture
def linreg_data():
    rng = np.random.default_rng(0)
    return {"X": rng.standard_normal((20, 2)), "Y": rng.standard_normal((20, 1))}


@pytest.fixture
def curve_files(tmp_path):
    ts, ys = curve_fit.synthetic(n=200)
    np.savez(tmp_path / "data.npz", t=ts, y=ys)
    np.savez(tmp_path / "init.npz", **dict(zip("abcdeg", curve_fit.START, strict=True)))
    return tmp_path


def one_error_line(capsys):
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("symgen: error: "), captured.err
    return lines[0]


def train(files, *extra, data="data.npz"):
    return main(
        ["train", CURVE, "--data", str(files / data), "--init", str(files / "init.npz"),
         "--out", str(files / "out.npz"), "--steps", "3", "-q", *extra]
    )  # fmt: skip


# --- Ctrl-C --------------------------------------------------------------------------


def test_fit_returns_the_partial_result_when_the_callback_is_interrupted(linreg, linreg_data):
    def callback(step, loss, params):
        if step == 4:
            raise KeyboardInterrupt

    w0 = np.ones((2, 1))
    result = symgen.fit(
        linreg, (w0,), linreg_data, optimizer="sgd", lr=0.01, steps=100, callback=callback,
        progress=False,
    )  # fmt: skip
    assert result.stopped == "interrupted" and result.interrupted
    assert result.steps == len(result.history) == len(result.times) == 4
    w = w0.copy()
    for _ in range(4):
        linreg.sgd_step(w, **linreg_data, lr=0.01)
    np.testing.assert_array_equal(result.params[0], w)
    assert np.isfinite(result.loss)


class InterruptedStep:
    """A generated module whose ``sgd_step`` is interrupted on call ``at``, after it has
    updated the parameters in place (as Ctrl-C in the middle of a step may)."""

    def __init__(self, module, at):
        self.module, self.at, self.calls = module, at, 0
        self.PARAMS, self.DATA, self.DTYPE = module.PARAMS, module.DATA, module.DTYPE

    def loss(self, *params, **data):
        return self.module.loss(*params, **data)

    def sgd_step(self, *params, lr, **data):
        self.calls += 1
        out = self.module.sgd_step(*params, **data, lr=lr)
        if self.calls == self.at:
            raise KeyboardInterrupt
        return out


def test_fit_undoes_a_step_cut_short_by_ctrl_c(linreg, linreg_data):
    w0 = np.ones((2, 1))
    spy = InterruptedStep(linreg, at=3)
    result = symgen.fit(spy, (w0,), linreg_data, optimizer="sgd", lr=0.01, steps=100,
                        progress=False)  # fmt: skip
    assert result.stopped == "interrupted" and result.steps == 2
    w = w0.copy()
    for _ in range(2):
        linreg.sgd_step(w, **linreg_data, lr=0.01)
    np.testing.assert_array_equal(result.params[0], w)  # step 3's in-place update undone
    assert "interrupted" in repr(result)


def _default_ctrl_c():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_train_writes_the_parameters_and_exits_130(curve_files):
    out = curve_files / "params.npz"
    command = [sys.executable, "-m", "symgen", "train", CURVE, "--data",
               str(curve_files / "data.npz"), "--init", str(curve_files / "init.npz"),
               "--out", str(out), "--steps", "100000000", "--report-every", "100"]  # fmt: skip
    # Ctrl-C's default action in the child, whatever this process inherited: a suite run in
    # the background of a shell has SIGINT ignored, and Python then installs no handler
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_ctrl_c,
    )
    try:
        assert proc.stdout.readline().split()[0] == "step"  # training has begun
        proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("symgen: interrupted after ")
    saved = interrupted_path(str(out))
    assert saved.name == "params.interrupted.npz" and str(saved) in lines[0]
    assert not out.exists()  # a finished run's output is never overwritten by a partial one
    with np.load(saved) as params:
        assert sorted(params.files) == list("abcdeg")
        assert all(np.isfinite(params[n]) for n in params.files)
        start = dict(zip("abcdeg", curve_fit.START, strict=True))
        assert any(float(params[n]) != start[n] for n in params.files)


# --- values that are not real numbers, odd CSVs, hyperparameters out of range -------------


@pytest.mark.parametrize(
    ("bad", "held"),
    [
        (np.array([[1 + 2j, 0]] * 20), "complex numbers"),
        (np.array([["1", "2"]] * 20), "strings"),
        (np.array([[None, None]] * 20), "Python objects"),
        (np.array([[True, False]] * 20), "booleans"),
    ],
)
def test_fit_refuses_data_that_are_not_real_numbers(linreg, linreg_data, bad, held):
    with pytest.raises(TypeError, match=f"data 'X' must hold real numbers, not {held}"):
        symgen.fit(linreg, (np.ones((2, 1)),), {**linreg_data, "X": bad}, steps=1, progress=False)


@pytest.mark.parametrize(("bad", "held"), [(True, "booleans"), ("0.5", "strings"), (1j, "complex")])
def test_fit_refuses_parameters_that_are_not_real_numbers(bad, held):
    a, b = sp.symbols("a b")
    problem = symgen.Problem((a - 1) ** 2 + (b - 2) ** 2, params=[a, b], name="bowl")
    with pytest.raises(TypeError, match=f"parameter 'a' must hold real numbers, not {held}"):
        symgen.fit(problem, (bad, 0.0), steps=1, progress=False)


@pytest.mark.parametrize(
    ("dtype", "fragment"),
    [(complex, "dtype complex128"), (str, "dtype <U"), (bool, "holds booleans")],
)
def test_train_refuses_data_files_that_are_not_real_numbers(curve_files, capsys, dtype, fragment):
    ts, ys = curve_fit.synthetic(n=20)
    np.savez(curve_files / "bad.npz", t=ts.astype(dtype), y=ys)
    assert train(curve_files, data="bad.npz") == 2
    line = one_error_line(capsys)
    assert "data 't' in " in line and fragment in line


def test_train_reads_a_csv_header_after_a_byte_order_mark(curve_files, capsys):
    ts, ys = curve_fit.synthetic(n=50)
    rows = "\n".join(f"{t},{y}" for t, y in zip(ts, ys, strict=True))
    (curve_files / "bom.csv").write_text("t,y\n" + rows + "\n", encoding="utf-8-sig")
    assert train(curve_files, data="bom.csv") == 0, capsys.readouterr().err


def test_train_says_an_empty_csv_is_empty(curve_files, capsys):
    (curve_files / "empty.csv").write_text("")
    assert train(curve_files, data="empty.csv") == 2
    assert "empty.csv is empty" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("option", "fragment"),
    [("beta1=2", "beta1 must be in [0, 1), got 2.0"), ("eps=0", "eps must be a finite number > 0")],
)
def test_train_refuses_hyperparameters_out_of_range(curve_files, capsys, option, fragment):
    assert train(curve_files, "--hyper", option) == 2
    assert fragment in one_error_line(capsys)
    assert not (curve_files / "out.npz").exists()


def test_fit_refuses_hyperparameters_out_of_range(linreg, linreg_data):
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got 1.5"):
        symgen.fit(linreg, (np.ones((2, 1)),), linreg_data, optimizer="momentum", momentum=1.5,
                   steps=1, progress=False)  # fmt: skip


# --- .npz read lazily -----------------------------------------------------------------


def test_an_unused_array_in_an_npz_is_never_read(curve_files, monkeypatch, capsys):
    ts, ys = curve_fit.synthetic(n=50)
    np.savez_compressed(curve_files / "big.npz", t=ts, y=ys, unused=np.zeros(2**24))
    read = []
    original = np.lib.npyio.NpzFile.__getitem__

    def reading(self, key):
        read.append(key)
        return original(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", reading)
    assert train(curve_files, data="big.npz") == 0, capsys.readouterr().err
    assert "unused" not in read and {"t", "y"} <= set(read)


def _npz_with_a_lying_header(path, shape):
    """An .npz whose arrays' headers claim ``shape`` but hold 64 bytes."""
    import io
    import zipfile

    buf = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    buf.write(bytes(64))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("t.npy", buf.getvalue())
        archive.writestr("y.npy", buf.getvalue())


def test_an_npz_header_larger_than_its_entry_is_corrupt_before_anything_is_allocated(
    curve_files, capsys
):
    _npz_with_a_lying_header(curve_files / "lie.npz", (10**12,))
    assert train(curve_files, data="lie.npz") == 2
    line = one_error_line(capsys)
    assert "array 't' in" in line and "is corrupt" in line and "(1000000000000,)" in line


def test_an_npz_array_larger_than_memory_is_refused_before_it_is_read(
    curve_files, capsys, monkeypatch
):
    from symgen.runtime.data import in_memory

    monkeypatch.setattr(in_memory, "_memory_bytes", lambda: 1000)
    ts, ys = curve_fit.synthetic(n=200)  # 1600 bytes each
    np.savez_compressed(curve_files / "bomb.npz", t=ts, y=ys)
    assert train(curve_files, data="bomb.npz") == 2
    assert "more than this machine's memory" in one_error_line(capsys)


# --- Zarr chunks, lost Dask workers -----------------------------------------------------


@pytest.fixture
def zarr_store(curve_files):
    pytest.importorskip("zarr")
    da = pytest.importorskip("dask.array")
    ts, ys = curve_fit.synthetic(n=200)
    store = curve_files / "data.zarr"
    da.from_array(ts, chunks=50).to_zarr(str(store), component="t")
    da.from_array(ys, chunks=50).to_zarr(str(store), component="y")
    return store


def test_train_on_a_whole_zarr_store(curve_files, zarr_store, capsys):
    assert train(curve_files, data="data.zarr") == 0, capsys.readouterr().err


def test_a_missing_zarr_chunk_is_an_error_naming_the_array_and_chunk(
    curve_files, zarr_store, capsys
):
    (zarr_store / "y" / "c" / "2").unlink()
    assert train(curve_files, data="data.zarr") == 2
    line = one_error_line(capsys)
    assert "array 'y'" in line and "chunk 2 (rows 100 to 149) is missing" in line
    assert not (curve_files / "out.npz").exists()


def test_a_corrupt_zarr_chunk_is_one_line(curve_files, zarr_store, capsys):
    (zarr_store / "t" / "c" / "1").write_bytes(b"not a zstd frame" * 4)
    assert train(curve_files, data="data.zarr") == 2
    line = one_error_line(capsys)
    assert "array 't'" in line and "chunk 1 cannot be read" in line


def test_a_killed_dask_worker_is_one_line(curve_files, capsys, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from symgen.cli import commands

    def dying(*args, **kwargs):
        raise distributed.KilledWorker("symgen-curve_fit-loss-0", "tcp://10.0.0.7:4011", 3)

    monkeypatch.setattr(commands, "fit", dying)
    assert train(curve_files) == 2
    line = one_error_line(capsys)
    assert (
        "task symgen-curve_fit-loss-0 kept dying (4 tries, the last on tcp://10.0.0.7:4011)" in line
    )


def test_a_corrupt_parquet_row_group_is_one_line_naming_the_file(curve_files, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ts, ys = curve_fit.synthetic(n=2000)
    path = curve_files / "data.parquet"
    pq.write_table(pa.table({"t": ts, "y": ys}), path, row_group_size=500, compression="zstd")
    corrupt = bytearray(path.read_bytes())
    corrupt[100:300] = bytes(b ^ 0x5A for b in corrupt[100:300])  # inside the first page
    path.write_bytes(bytes(corrupt))
    assert train(curve_files, data="data.parquet") == 2
    line = one_error_line(capsys)
    assert "data.parquet: row group(s) 0 cannot be read" in line


def test_a_truncated_parquet_file_is_one_line(curve_files, capsys):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ts, ys = curve_fit.synthetic(n=200)
    path = curve_files / "data.parquet"
    pq.write_table(pa.table({"t": ts, "y": ys}), path, row_group_size=50)
    path.write_bytes(path.read_bytes()[:-40])  # a copy cut short: no footer
    assert train(curve_files, data="data.parquet") == 2
    assert "cannot read" in one_error_line(capsys)


# --- more data mistakes (issue 15 item 8: each probe of the issue, one line) -------------


def test_an_npz_array_of_python_objects_is_refused_without_unpickling(curve_files, capsys):
    ts, ys = curve_fit.synthetic(n=20)
    np.savez(curve_files / "objects.npz", t=np.array([None] * 20, dtype=object), y=ys)
    assert train(curve_files, data="objects.npz") == 2
    line = one_error_line(capsys)
    assert "array 't'" in line and "holds Python objects" in line and "corrupt" not in line


def test_a_csv_naming_a_column_twice_is_refused(curve_files, capsys):
    (curve_files / "twice.csv").write_text("t,y,y\n1,2,3\n2,3,4\n")
    assert train(curve_files, data="twice.csv") == 2
    assert "names column(s) y more than once" in one_error_line(capsys)


@pytest.fixture
def npy_folder(curve_files):
    ts, ys = curve_fit.synthetic(n=200)
    folder = curve_files / "arrays"
    folder.mkdir()
    np.save(folder / "t.npy", ts)
    np.save(folder / "y.npy", ys)
    return folder


def test_an_npy_folder_is_memory_mapped_and_an_unused_file_never_read(
    curve_files, npy_folder, monkeypatch, capsys
):
    pytest.importorskip("dask.array")
    from symgen.runtime.data import npy_folder as reader

    huge = npy_folder / "unused.npy"  # 8 GB as its header says, sparse on disk
    with open(huge, "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)}
        )
        handle.truncate(handle.tell() + 8 * 10**9)
    loads, sliced = [], []
    original_load, original_slice = np.load, reader.NpyFile.__getitem__

    def load(path, *args, **kwargs):
        if str(path).startswith(str(npy_folder)):
            loads.append(kwargs.get("mmap_mode"))
        return original_load(path, *args, **kwargs)

    def slicing(self, key):
        sliced.append((self.path, key))
        return original_slice(self, key)

    monkeypatch.setattr(reader.np, "load", load)
    monkeypatch.setattr(reader.NpyFile, "__getitem__", slicing)
    assert train(curve_files, data="arrays") == 0, capsys.readouterr().err
    assert loads and set(loads) == {"r"}  # every file opened memory-mapped
    assert any(path != str(huge) for path, _ in sliced)
    # the unused file is never read: at most Dask's empty probe of its dtype, x[0:0]
    unused = [key for path, key in sliced if path == str(huge)]
    assert all(key[0].start == key[0].stop for key in unused), unused


def test_a_truncated_npy_file_is_one_line(curve_files, npy_folder, capsys):
    pytest.importorskip("dask.array")
    y = npy_folder / "y.npy"
    y.write_bytes(y.read_bytes()[:-100])
    assert train(curve_files, data="arrays") == 2
    line = one_error_line(capsys)
    assert "y.npy" in line and "cannot read" in line


def test_train_with_the_c_backend_and_an_odd_cc_is_one_line(curve_files, capsys, monkeypatch):
    monkeypatch.setenv("CC", 'gcc "-O2')
    assert train(curve_files, "--backend", "c") == 2
    line = one_error_line(capsys)
    assert "--backend c" in line and "is not a command (No closing quotation)" in line
    assert not (curve_files / "out.npz").exists()
