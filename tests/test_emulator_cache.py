"""The CUDA emulator's cache of compiled kernels is checked as the C backend's is (issue 15:
both use symgen.library_cache): a private folder, a key that follows the compiler, and no
library loaded that this user did not build or that changed since. It used to load any
``KEY.so`` in a predictable, unchecked folder (umask modes, no owner, mode or content
check), and a killed build left its temporary file.

Each case plants a library whose constructor writes a marker file, in a new process."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from symgen.testing import emulator_available

pytestmark = pytest.mark.skipif(not emulator_available(), reason="g++ is not on PATH")
as_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another user needs root"
)
OTHER = 65534  # nobody

RUNNER = """
import sys
from symgen.testing import fakecupy as cp
code = 'extern "C" __global__ void fill(double* y) { y[threadIdx.x] = 2.5 + ID; }'
y = cp.zeros(2)
cp.RawModule(code=code, options=("-DID=" + sys.argv[1],)).get_function("fill")(1, 2, (y,))
print(y.get().tolist())
"""


def run(tmp_path, cache, ident="0", env=None, cwd=None, wait=True):
    """The kernel of module ``ident`` run in a new process with the cache ``cache``."""
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    environment = {**os.environ, "SYMGEN_EMULATOR_CACHE": str(cache), **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(sys.path)
    command = [sys.executable, str(runner), ident]
    if not wait:
        return subprocess.Popen(
            command, env=environment, cwd=cwd, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    return subprocess.run(command, env=environment, cwd=cwd, capture_output=True, text=True)


def ran(done, ident="0"):
    assert done.returncode == 0, done.stderr
    value = 2.5 + float(ident)
    assert done.stdout.strip() == str([value, value])
    return True


def library_name(tmp_path, ident):
    """The file name module ``ident``'s library has in any cache: what an attacker plants."""
    probe = tmp_path / "probe-cache"
    assert ran(run(tmp_path, probe, ident), ident)
    (built,) = probe.glob("*.so")
    return built.name


def plant(path, marker):
    """A library at ``path`` whose constructor writes ``marker``, with a record of its sha256,
    both 0600: what another user (or an edit) could leave."""
    source = path.with_name("planted.c")
    source.write_text(
        "#include <stdio.h>\n"
        "__attribute__((constructor)) static void planted(void)\n"
        f'{{ FILE* f = fopen("{marker}", "w"); if (f) fclose(f); }}\n'
    )
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(path), str(source)], check=True)
    source.unlink()
    digest = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True).stdout
    record = path.with_name(path.name + ".sha256")
    record.write_text(f"{digest.split()[0]}  {path.name}\n")
    for file in (path, record):
        file.chmod(0o600)
    return path, record


def mode(path):
    return oct(path.stat().st_mode & 0o7777)


def test_folders_and_files_are_private_whatever_the_umask(tmp_path):
    cache = tmp_path / "made" / "for" / "cache"
    previous = os.umask(0)
    try:
        assert ran(run(tmp_path, cache))
    finally:
        os.umask(previous)
    for folder in (tmp_path / "made", tmp_path / "made" / "for", cache):
        assert mode(folder) == "0o700", folder
    (library,) = cache.glob("*.so")
    record = library.with_name(library.name + ".sha256")
    assert [mode(library), mode(record)] == ["0o600", "0o600"]
    assert sorted(p.name for p in cache.iterdir()) == [library.name, record.name]


@pytest.mark.parametrize("permissions", [0o777, 0o775])
def test_a_cache_others_can_write_is_refused(tmp_path, permissions):
    name = library_name(tmp_path, "1")
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(permissions)
    marker = tmp_path / "planted-ran"
    plant(cache / name, marker)
    done = run(tmp_path, cache, "1")
    assert done.returncode != 0
    assert "can be written by others" in done.stderr and "SYMGEN_EMULATOR_CACHE" in done.stderr
    assert not marker.exists()


@as_root
def test_a_cache_of_another_user_is_refused(tmp_path):
    name = library_name(tmp_path, "2")
    cache = tmp_path / "theirs"
    cache.mkdir(mode=0o700)
    marker = tmp_path / "planted-ran"
    for path in (*plant(cache / name, marker), cache):
        os.chown(path, OTHER, OTHER)
    done = run(tmp_path, cache, "2")
    assert done.returncode != 0 and f"belongs to user {OTHER}" in done.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    "change, reason",
    [
        ("writable", "can be written by others"),
        ("no record", "sha256: No such file"),
        ("record of another library", "not the one recorded"),
        pytest.param("owner", f"belongs to user {OTHER}", marks=as_root),
    ],
)
def test_a_planted_library_is_not_loaded_but_built_again(tmp_path, change, reason):
    name = library_name(tmp_path, "3")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    marker = tmp_path / "planted-ran"
    library, record = plant(cache / name, marker)
    if change == "writable":
        library.chmod(0o666)
    elif change == "no record":
        record.unlink()
    elif change == "owner":
        os.chown(library, OTHER, OTHER)
    else:
        record.write_text(f"{'0' * 64}  {name}\n")
    done = run(tmp_path, cache, "3")
    assert ran(done, "3")
    assert reason in done.stderr and "building it again" in done.stderr
    assert not marker.exists()
    assert [mode(library), mode(record)] == ["0o600", "0o600"]


@pytest.mark.parametrize("damage", ["truncated", "patched"])
def test_a_damaged_library_is_built_again_not_loaded(tmp_path, damage):
    cache = tmp_path / "cache"
    assert ran(run(tmp_path, cache, "4"), "4")
    (built,) = cache.glob("*.so")
    good = built.read_bytes()
    if damage == "truncated":
        built.write_bytes(good[: len(good) // 3])
    else:
        middle = len(good) // 2
        built.write_bytes(good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1 :])
    done = run(tmp_path, cache, "4")
    assert ran(done, "4")
    assert "sha256 is not the one recorded" in done.stderr
    assert built.read_bytes() == good


def test_cache_dot_loads_the_library_in_it_not_one_on_the_library_path(tmp_path):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(mode=0o700)
    elsewhere.mkdir()
    assert ran(run(tmp_path, ".", "5", cwd=work), "5")
    (built,) = work.glob("*.so")
    marker = tmp_path / "planted-ran"
    plant(elsewhere / built.name, marker)
    again = run(tmp_path, ".", "5", env={"LD_LIBRARY_PATH": str(elsewhere)}, cwd=work)
    assert ran(again, "5")
    assert not marker.exists()


def _gxx_wrapper(folder: Path, body: str) -> dict[str, str]:
    """A ``g++`` first on PATH that runs ``body`` then the real g++; the environment."""
    folder.mkdir()
    real = subprocess.run(["which", "g++"], capture_output=True, text=True).stdout.strip()
    wrapper = folder / "g++"
    wrapper.write_text(f'#!/bin/sh\n{body}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_the_key_follows_the_compiler(tmp_path):
    cache = tmp_path / "cache"
    assert ran(run(tmp_path, cache, "6"), "6")
    env = _gxx_wrapper(tmp_path / "bin", "# another g++")
    assert ran(run(tmp_path, cache, "6", env=env), "6")
    assert len(list(cache.glob("*.so"))) == 2  # another compiler program: another library


def test_a_build_killed_half_way_leaves_nothing_that_breaks_the_next_run(tmp_path):
    cache, slow, started = tmp_path / "cache", tmp_path / "slow", tmp_path / "started"
    body = f'case " $* " in *" -o "*) [ -e {slow} ] && touch {started} && sleep 60;; esac'
    env = _gxx_wrapper(tmp_path / "bin", body)
    slow.touch()
    killed = run(tmp_path, cache, "7", env=env, wait=False)
    deadline = time.monotonic() + 60
    while not started.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), killed.communicate()
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate()
    (left,) = cache.iterdir()  # the killed build's folder, nothing else
    assert left.name.startswith(".build-") and left.is_dir()
    slow.unlink()
    assert ran(run(tmp_path, cache, "7", env=env), "7")
    assert left.exists()  # young: it could be a build still running
    old = time.time() - 3600
    os.utime(left, (old, old))
    assert ran(run(tmp_path, cache, "7", env=env), "7")
    assert not left.exists()
    assert sorted(p.suffix for p in cache.iterdir()) == [".sha256", ".so"]
