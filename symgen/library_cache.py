"""A private cache of the shared libraries symgen builds, checked before anything in it is
loaded (loading a library runs its code).

Two users: every C-backend module, which is standalone and so carries the source of the
functions in ``EMBEDDED`` (``symgen.backends.c`` copies it in), and the CUDA emulator
(``symgen.testing.kernel_build``), through ``cache_root``, ``compiler_identity`` and
``cached_library``. What is checked:

1. the folder (``_private_folder``): made absolute, missing folders created 0700 whatever
   the umask; it must be this user's and writable by no one else, and each folder above
   it this user's or root's and writable by others only if sticky (as /tmp is);
2. the key, the library's file name, is the caller's: the source and the build commands,
   with the compiler's identity (``_compiler_identity``: its program's path, size and time
   of change, and what it predefines with the flags: its version, its target and the
   instruction sets that ``-march=native`` enables on this CPU);
3. the files (``_untrusted``): a library is loaded only if it and its record
   (``NAME.sha256``, as ``sha256sum`` writes it) are this user's regular files that no one
   else can write, and its sha256 is the recorded one; otherwise it is built again, with
   a warning saying why;
4. builds (``_cached_library``) run in a private temporary folder in the cache and rename
   the library and its record into place, so that no one finds half a file; the folder of
   a build that was killed is removed by a later one once it is 10 minutes old
   (``_remove_stale_builds``).

The callers load the path they get by its absolute name (no library search path).
"""

import functools
import hashlib
import os
import shutil
import stat
import tempfile
import time
import warnings
from pathlib import Path


def cache_root(variable, *parts):
    """The cache folder ``$variable``, else ``parts`` under $XDG_CACHE_HOME or ~/.cache."""
    return _cache_root(variable, *parts)


def compiler_identity(compiler, flag_sets, language, run):
    """What a key holds of the compiler ``compiler`` (see ``_compiler_identity``)."""
    return _compiler_identity(tuple(compiler), tuple(map(tuple, flag_sets)), language, run)


def cached_library(root, name, build, *, who, what, variable, again=False):
    """The absolute path of the library ``name`` in the cache folder ``root``: the one there
    if it is intact, else (or when ``again``) made by ``build(scratch, name)``, which
    returns the path of the library it built in the folder ``scratch``. ``who`` starts the
    messages, ``what`` names the cache in them, ``variable`` is the environment variable
    that chooses another folder."""
    folder = _private_folder(root, who, what, variable)
    return _cached_library(folder, name, build, who, again)


def _cache_root(variable, *parts):
    """The cache folder the environment variable ``variable`` names, else the folder
    ``parts`` in this user's caches ($XDG_CACHE_HOME, else ~/.cache)."""
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get(variable) or os.path.join(home, *parts)


def _private_folder(root, who, what, variable):
    """``root`` as an absolute path; missing folders are created 0700. It is used only if no
    other user can change what is in it: it must be this user's and writable by no one
    else, and each folder above it this user's or root's, and writable by others only if
    sticky (as /tmp is), so that no one else can rename it either."""
    folder = Path(os.path.realpath(root))
    for missing in reversed([p for p in (folder, *folder.parents) if not p.exists()]):
        try:
            missing.mkdir(mode=0o700)
            missing.chmod(0o700)  # whatever the umask
        except FileExistsError:  # made by another process meanwhile: checked below
            pass
        except OSError as exc:
            raise RuntimeError(
                f"{who}: cannot write {what} {root!r} ({exc}); set {variable} to a writable folder"
            ) from None
    user = os.geteuid()
    for place in (folder, *folder.parents):
        info = place.stat()
        mode = stat.S_IMODE(info.st_mode)
        if place == folder and info.st_uid != user:
            problem = f"belongs to user {info.st_uid}"
        elif place == folder and mode & 0o022:
            problem = f"can be written by others (mode {mode:o})"
        elif info.st_uid not in (0, user):
            problem = f"(a folder above it) belongs to user {info.st_uid}"
        elif mode & 0o002 and not mode & stat.S_ISVTX:
            problem = f"(a folder above it) can be written by anyone (mode {mode:o})"
        else:
            continue
        raise RuntimeError(
            f"{who}: not using {what} {folder}: {place} {problem}, so another user could"
            f" replace a library in it; set {variable} to a folder that only you can write"
        )
    return folder


@functools.cache
def _compiler_identity(compiler, flag_sets, language, run):
    """What a cache key holds of the compiler (asked once per process): its program (path,
    size and time of change: a reinstalled compiler or an edited wrapper script), and what
    it predefines (``run``, on the command, gives its output) with the first of
    ``flag_sets`` it accepts: its version, its target, each instruction set that
    -march=native enables on this CPU (__AVX2__, ...), and what flags in the command
    change (__SANITIZE_ADDRESS__, ...)."""
    program = os.path.realpath(compiler[0])
    info = os.stat(program)
    identity = [program, str(info.st_size), str(info.st_mtime_ns)]
    for flags in flag_sets:
        done = run([*compiler, *flags, "-dM", "-E", "-x", language, os.devnull])
        identity += [str(done.returncode), done.stdout]
        if done.returncode == 0:
            break
    return tuple(identity)


def _cached_library(folder, name, build, who, again=False, prefix=".build-"):
    """The path of the library ``name`` in the checked ``folder``: the one there if
    ``_untrusted`` finds nothing against it (else a warning from ``who`` says what it found),
    otherwise (or when ``again``) the one ``build(scratch, name)`` makes in the temporary
    folder ``scratch`` and returns. A build runs in a private temporary folder in the cache
    (named ``prefix``...) and then renames the library and its record into place, so that
    no one ever finds half a file."""
    path = folder / name
    record = path.with_name(path.name + ".sha256")  # as `sha256sum` writes it
    _remove_stale_builds(folder, prefix)
    if not again and os.path.lexists(path):
        reason = _untrusted(path, record)
        if reason is None:
            return path
        warnings.warn(f"{who}: not loading {path} ({reason}); building it again", stacklevel=2)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=folder) as scratch:
        built = build(Path(scratch), path.name)
        written = Path(scratch) / record.name
        written.write_text(f"{_sha256(built)}  {path.name}\n")
        for file in (built, written):
            file.chmod(0o600)  # whatever the umask
        os.replace(built, path)
        os.replace(written, record)
    return path


def _untrusted(path, record):
    """Why the library at ``path`` is not loaded, or None: it and its record must be this
    user's regular files that no one else can write, and the library's sha256 the one in
    the record (written by the build that made it)."""
    for file in (path, record):
        try:
            info = os.lstat(file)
        except OSError as exc:
            return f"{file.name}: {exc.strerror}"
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode):
            return f"{file.name} is not a regular file"
        if info.st_uid != os.geteuid():
            return f"{file.name} belongs to user {info.st_uid}"
        if mode & 0o022:
            return f"{file.name} can be written by others (mode {mode:o})"
    try:
        recorded = record.read_text().split()
        actual = _sha256(path)
    except (OSError, ValueError) as exc:
        return f"cannot read it: {exc}"
    if recorded[:1] != [actual]:
        return "its sha256 is not the one recorded when it was built"
    return None


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _remove_stale_builds(folder, prefix, seconds=600):
    """Removes the temporary folders (named ``prefix``...) of builds that were killed (kill
    -9, power loss): those older than ``seconds``, which no running build still uses."""
    for scratch in folder.glob(prefix + "*"):
        try:
            if time.time() - scratch.lstat().st_mtime > seconds:
                shutil.rmtree(scratch)
        except OSError:  # removed by another process meanwhile
            pass


#: The functions a C-backend module carries (their source, in this order): all but the
#: public ones, which call them for symgen's own code (the module calls them itself).
EMBEDDED = (
    _cache_root,
    _private_folder,
    _compiler_identity,
    _cached_library,
    _untrusted,
    _sha256,
    _remove_stale_builds,
)

__all__ = ["EMBEDDED", "cache_root", "cached_library", "compiler_identity"]
