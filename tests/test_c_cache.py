"""The C backend's cache of compiled passes: nothing is loaded that this user did not build
from this source with this compiler, these flags and for this CPU, or that changed since.

Each case plants what an attacker or an accident leaves in the cache (a library of another
user, a writable folder, a truncated or patched file, a library of the same name on the
library path, a build killed half-way) and checks that it is never loaded: a library that
would be loaded runs its constructor, which writes a marker file."""

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgen

COMPILER = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C compiler")
as_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another user needs root"
)
#: The user that owns what another user plants (nobody).
OTHER = 65534

a, b, t, y = sp.symbols("a b t y")
EXPECTED = 3 * (1 + np.sin(2.0))  # the loss at a=1, b=2, t=(1, 1, 1), y=(0, 0, 0)


def problem(name):
    return symgen.Problem((a * t - y) ** 2 + sp.sin(b * t), params=[a, b], data=[t, y], name=name)


def loss(module):
    return module.loss(1.0, 2.0, t=np.ones(3), y=np.zeros(3))


def library_name(name, monkeypatch, tmp_path):
    """The file name module ``name``'s library has in any cache (with the current CC): the
    name an attacker plants a library under."""
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(tmp_path / "probe-cache"))
    assert loss(symgen.compile(problem(name), "c")) == pytest.approx(EXPECTED)
    (built,) = (tmp_path / "probe-cache").glob(f"{name}_*.so")
    return built.name


def plant(path, marker):
    """A library at ``path`` whose constructor writes ``marker``, with a record of its sha256
    (as a build would write it), both 0600: what another user (or root) could leave."""
    source = path.with_suffix(".planted.c")
    source.write_text(
        "#include <stdio.h>\n"
        "__attribute__((constructor)) static void planted(void)\n"
        f'{{ FILE* f = fopen("{marker}", "w"); if (f) fclose(f); }}\n'
    )
    subprocess.run([COMPILER, "-shared", "-fPIC", "-o", str(path), str(source)], check=True)
    source.unlink()
    digest = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True).stdout
    record = path.with_name(path.name + ".sha256")
    record.write_text(f"{digest.split()[0]}  {path.name}\n")
    for file in (path, record):
        file.chmod(0o600)
    return path, record


RUNNER = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("planted_case", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(repr(module.loss(1.0, 2.0, t=np.ones(3), y=np.zeros(3))))
"""


def run_module(tmp_path, name, env=None, cwd=None, start_new_session=False, wait=True):
    """Runs module ``name`` in a new process (a crash there is an exit status here)."""
    source = tmp_path / f"{name}_c.py"
    if not source.exists():
        source.write_text(symgen.generate(problem(name), "c"))
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    command = [sys.executable, str(runner), str(source)]
    environment = {**os.environ, **(env or {})}
    if not wait:
        return subprocess.Popen(
            command, env=environment, cwd=cwd, start_new_session=start_new_session,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    return subprocess.run(command, env=environment, cwd=cwd, capture_output=True, text=True)


def mode(path):
    return oct(path.stat().st_mode & 0o7777)


# -- the cache folder -----------------------------------------------------------------------


def test_folders_and_files_are_private_whatever_the_umask(tmp_path, monkeypatch):
    cache = tmp_path / "made" / "for" / "cache"
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(cache))
    module = symgen.compile(problem("umask"), "c")
    previous = os.umask(0)
    try:
        assert loss(module) == pytest.approx(EXPECTED)
    finally:
        os.umask(previous)
    for folder in (tmp_path / "made", tmp_path / "made" / "for", cache):
        assert mode(folder) == "0o700", folder
    (library,) = cache.glob("umask_*.so")
    assert [mode(library), mode(library.with_name(library.name + ".sha256"))] == ["0o600"] * 2
    assert sorted(p.name for p in cache.iterdir()) == [library.name, f"{library.name}.sha256"]


@pytest.mark.parametrize("permissions", [0o777, 0o775, 0o1777, 0o757])
def test_a_cache_others_can_write_is_refused_and_nothing_in_it_loaded(
    tmp_path, monkeypatch, permissions
):
    name = library_name("writable", monkeypatch, tmp_path)
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(permissions)
    marker = tmp_path / "planted-ran"
    plant(cache / name, marker)
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(cache))
    module = symgen.compile(problem("writable"), "c")
    with pytest.raises(RuntimeError, match="can be written by others.*SYMGEN_CACHE_DIR to a"):
        loss(module)
    assert not marker.exists()


@pytest.mark.parametrize("permissions", [0o777, 0o1777])
def test_a_folder_above_the_cache_that_anyone_can_rename_in_is_refused(
    tmp_path, monkeypatch, permissions
):
    above = tmp_path / "above"
    above.mkdir()
    above.chmod(permissions)
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(above / "cache"))
    module = symgen.compile(problem("above"), "c")
    if permissions & 0o1000:  # sticky, as /tmp: no one can rename what is not theirs
        assert loss(module) == pytest.approx(EXPECTED)
    else:
        with pytest.raises(RuntimeError, match="a folder above it.*written by anyone"):
            loss(module)


@as_root
@pytest.mark.parametrize("where", ["cache", "above"])
def test_a_cache_folder_of_another_user_is_refused(tmp_path, monkeypatch, where):
    name = library_name("foreign", monkeypatch, tmp_path)
    cache = tmp_path / "theirs" / "cache"
    cache.mkdir(parents=True, mode=0o700)
    marker = tmp_path / "planted-ran"
    planted = plant(cache / name, marker)
    for path in (*planted, cache) if where == "cache" else (cache.parent,):
        os.chown(path, OTHER, OTHER)
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(cache))
    module = symgen.compile(problem("foreign"), "c")
    with pytest.raises(RuntimeError, match=f"belongs to user {OTHER}"):
        loss(module)
    assert not marker.exists()


def test_cache_dir_dot_loads_the_library_in_it_not_one_on_the_library_path(tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(mode=0o700)
    elsewhere.mkdir()
    env = {"SYMGEN_CACHE_DIR": "."}
    first = run_module(tmp_path, "dot", env, cwd=work)
    assert first.returncode == 0, first.stderr
    assert float(first.stdout) == pytest.approx(EXPECTED)
    (built,) = work.glob("dot_*.so")
    marker = tmp_path / "planted-ran"
    plant(elsewhere / built.name, marker)
    again = run_module(tmp_path, "dot", {**env, "LD_LIBRARY_PATH": str(elsewhere)}, cwd=work)
    assert again.returncode == 0, again.stderr
    assert float(again.stdout) == pytest.approx(EXPECTED)
    assert not marker.exists()


# -- the library ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, reason",
    [
        ("writable", "can be written by others"),
        pytest.param("owner", f"belongs to user {OTHER}", marks=as_root),
        pytest.param("record owner", f"sha256 belongs to user {OTHER}", marks=as_root),
        ("no record", "sha256: No such file"),
        ("record of another library", "not the one recorded"),
    ],
)
def test_a_planted_library_is_not_loaded_but_built_again(tmp_path, monkeypatch, change, reason):
    name = library_name("planted", monkeypatch, tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    marker = tmp_path / "planted-ran"
    library, record = plant(cache / name, marker)
    if change == "writable":
        library.chmod(0o666)
    elif change == "owner":
        os.chown(library, OTHER, OTHER)
    elif change == "record owner":
        os.chown(record, OTHER, OTHER)
    elif change == "no record":
        record.unlink()
    else:
        record.write_text(f"{'0' * 64}  {name}\n")
    done = run_module(tmp_path, "planted", {"SYMGEN_CACHE_DIR": str(cache)})
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(EXPECTED)
    assert reason in done.stderr and "building it again" in done.stderr
    assert not marker.exists()
    assert library.stat().st_uid == record.stat().st_uid == os.geteuid()
    assert [mode(library), mode(record)] == ["0o600", "0o600"]


@pytest.mark.parametrize("damage", ["truncated", "patched"])
def test_a_damaged_library_is_built_again_not_loaded(tmp_path, monkeypatch, damage):
    """A truncated library mapped into a process is a SIGBUS, a patched one runs what was
    patched in: neither is loaded (the process runs on and gets the right loss)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(cache))
    built = symgen.compile(problem("damaged"), "c")._build()
    good = built.read_bytes()
    if damage == "truncated":
        built.write_bytes(good[: len(good) // 3])
    else:  # the same size, one instruction byte changed
        middle = len(good) // 2
        built.write_bytes(good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1 :])
    done = run_module(tmp_path, "damaged", {"SYMGEN_CACHE_DIR": str(cache)})
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(EXPECTED)
    assert "sha256 is not the one recorded" in done.stderr
    assert built.read_bytes() == good  # the build is reproducible


def test_an_intact_library_this_system_cannot_load_is_built_again(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(cache))
    module = symgen.compile(problem("unloadable"), "c")
    built = module._build()
    built.write_bytes(b"\x7fELF for another system")  # with a record that matches it
    digest = subprocess.run(["sha256sum", str(built)], capture_output=True, text=True).stdout
    built.with_name(built.name + ".sha256").write_text(digest)
    assert loss(module) == pytest.approx(EXPECTED)
    assert built.read_bytes()[:4] == b"\x7fELF" and b"another system" not in built.read_bytes()


# -- the key --------------------------------------------------------------------------------


def names_with(monkeypatch, compilers, env=None):
    """The file name of the library one module builds under each value of CC (a new module
    each: the compiler is asked once per process and module)."""
    names = []
    for compiler in compilers:
        monkeypatch.setenv("CC", compiler)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        names.append(symgen.compile(problem("keyed"), "c")._build().name)
    return names


def links(flags, tmp_path):
    source = tmp_path / "empty.c"
    source.write_text("int f(int x) { return x + 1; }\n")
    command = [COMPILER, *flags, "-shared", "-fPIC", "-o", str(tmp_path / "empty.so"), str(source)]
    return subprocess.run(command, capture_output=True).returncode == 0


def test_the_key_follows_the_compiler_and_its_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(tmp_path / "cache"))
    wrapper = tmp_path / "wrapper-cc"
    wrapper.write_text(f'#!/bin/sh\nexec {COMPILER} "$@"\n')
    wrapper.chmod(0o755)
    variants = [f"{COMPILER} -O1", f"{COMPILER} -ffast-math", str(wrapper)]
    if links(["-fsanitize=address"], tmp_path):  # a library that loads only under ASan
        variants.append(f"{COMPILER} -fsanitize=address")
    plain, again, *others = names_with(monkeypatch, [COMPILER, COMPILER, *variants])
    assert plain == again  # the same compiler and flags: the same library
    assert len({plain, *others}) == 1 + len(variants)
    # The same wrapper edited (another compiler behind it, or another version):
    wrapper.write_text(f'#!/bin/sh\n# another version\nexec {COMPILER} "$@"\n')
    assert names_with(monkeypatch, [str(wrapper)]) != [others[2]]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 -march names")
def test_the_key_follows_the_instruction_sets_of_the_cpu(tmp_path, monkeypatch):
    """The same compiler, same command, same flags on a CPU with fewer instruction sets
    (here: a compiler whose -march=native means another CPU) gets another library."""
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(tmp_path / "cache"))
    wrapper = tmp_path / "cpu-cc"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ -n "$OTHER_CPU" ]; then\n'
        '  for arg; do shift; [ "$arg" = -march=native ] && arg=-march=$OTHER_CPU;'
        ' set -- "$@" "$arg"; done\n'
        "fi\n"
        f'exec {COMPILER} "$@"\n'
    )
    wrapper.chmod(0o755)
    (here,) = names_with(monkeypatch, [str(wrapper)], {"OTHER_CPU": ""})
    (baseline,) = names_with(monkeypatch, [str(wrapper)], {"OTHER_CPU": "x86-64"})
    (again,) = names_with(monkeypatch, [str(wrapper)], {"OTHER_CPU": ""})
    assert here == again != baseline


def test_the_compiler_is_asked_once_per_process(tmp_path, monkeypatch):
    probes = tmp_path / "probes"
    wrapper = tmp_path / "counting-cc"
    wrapper.write_text(
        f'#!/bin/sh\ncase " $* " in *" -dM "*) echo probe >> {probes};; esac\n'
        f'exec {COMPILER} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", str(wrapper))
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(tmp_path / "cache"))
    module = symgen.compile(problem("asked"), "c")
    assert module._build() == module._build() and loss(module) == pytest.approx(EXPECTED)
    assert probes.read_text() == "probe\n"


@pytest.mark.parametrize(
    "cc, message",
    [
        ('gcc "-O2', "is not a command (No closing quotation)"),
        ("/nonexistent/cc -O2", "names no program found on PATH"),
        ("no-such-compiler-here", "names no program found on PATH"),
        ("{script}", "cannot run the C compiler"),
    ],
)
def test_odd_cc_values_are_clear_errors(tmp_path, monkeypatch, cc, message):
    script = tmp_path / "no-interpreter"
    script.write_text("echo this script has no #! line\n")
    script.chmod(0o755)
    monkeypatch.setenv("CC", cc.format(script=script))
    monkeypatch.setenv("SYMGEN_CACHE_DIR", str(tmp_path / "cache"))
    module = symgen.compile(problem("oddcc"), "c")
    with pytest.raises(RuntimeError, match=f"oddcc: .*{re.escape(message)}"):
        loss(module)


# -- builds ---------------------------------------------------------------------------------


def test_a_build_killed_half_way_leaves_nothing_that_breaks_the_next_run(tmp_path):
    """kill -9 while the compiler runs: the next run builds and loads the library, and
    removes the killed build's temporary folder once it is old."""
    cache, slow, started = tmp_path / "cache", tmp_path / "slow", tmp_path / "started"
    wrapper = tmp_path / "slow-cc"  # the same compiler for both runs, slow while `slow` exists
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" -shared "*) [ -e {slow} ] && touch {started} && sleep 60;; esac\n'
        f'exec {COMPILER} "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {"SYMGEN_CACHE_DIR": str(cache), "CC": str(wrapper)}
    slow.touch()
    killed = run_module(tmp_path, "killed", env, start_new_session=True, wait=False)
    deadline = time.monotonic() + 60
    while not started.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), killed.communicate()
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate()
    (left,) = (p for p in cache.iterdir())  # the killed build's folder, nothing else
    assert left.name.startswith(".build-") and left.is_dir()

    slow.unlink()
    done = run_module(tmp_path, "killed", env)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(EXPECTED)
    assert left.exists()  # young: it could be a build still running
    old = time.time() - 3600
    os.utime(left, (old, old))
    done = run_module(tmp_path, "killed", env)
    assert done.returncode == 0, done.stderr
    assert not left.exists()
    assert sorted(Path(p).suffix for p in os.listdir(cache)) == [".sha256", ".so"]


def test_a_c_module_imports_only_numpy_and_the_standard_library():
    source = symgen.generate(problem("imports"), "c")
    imported = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imported - sys.stdlib_module_names == {"numpy"}


def test_a_c_module_carries_the_library_cache_of_symgen():
    """The checks are written once (symgen.library_cache, which the CUDA emulator's cache
    uses too): a C module carries that code as it is."""
    import inspect

    from symgen import library_cache

    source = symgen.generate(problem("carried"), "c")
    for function in library_cache.EMBEDDED:
        assert inspect.getsource(function) in source
