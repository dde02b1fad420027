"""The output folder of an audit: replaced as a whole, in one step, or not at all.

:class:`atomic_output_dir` is the only way skinaudit writes an output folder ``OUT``:

1. **Checks first, before any long work**: ``OUT`` must be a folder or absent, must not hold an
   input of the run (``protect``), and may hold only files an earlier skinaudit run wrote there
   (listed in its :data:`MARKER` file) unless ``force``. A folder that cannot be written fails
   here, with one line, not after the audit was computed.
2. **A lock** (``.OUT.lock`` beside it) refuses a second writer of the same folder while the
   first runs. Staging folders left by a killed run (``.OUT.partial-*``) are removed.
3. The run writes into a **staging folder beside** ``OUT`` (the same file system, so the swap
   is a rename). On success the staging folder and ``OUT`` are exchanged in one step
   (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames, the previous audit kept
   aside until the new one is in place), so no reader ever sees a mix of two audits, and files
   of the earlier audit that the new one does not write are gone with it.
4. When ``OUT`` is a mount point (a container or cluster volume) it cannot be renamed: the
   staging folder lives inside it and the entries are moved file by file, the previous ones
   kept aside (``OUT/.skinaudit.previous-*``) and moved back if the move fails.

On an error or an interruption (Ctrl-C, SIGTERM) the staging folder is deleted and ``OUT`` is
left exactly as it was. SIGINT and SIGTERM are held back during the swap itself, so an interruption
lands either before it (nothing changed) or after it (the new audit complete):
:func:`committed` says which.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from .errors import ConfigError, OutputError

__all__ = ["atomic_output_dir", "committed", "MARKER"]

#: The file listing what an audit wrote into its folder (one relative path per line).
MARKER = ".skinaudit-output"
#: Folders this process has replaced completely (see :func:`committed`).
_COMMITTED: list[Path] = []
#: Errors of a full or unwritable disk, turned into one line when writing the staging folder.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def committed() -> list[Path]:
    """Output folders this process has replaced completely (for an honest interruption message)."""
    return list(_COMMITTED)


class atomic_output_dir:
    """Context manager yielding a staging folder that replaces ``out_dir`` as a whole on success.

    Parameters
    ----------
    out_dir : path
    force : bool
        Replace a folder that holds files skinaudit did not write (they are deleted with it).
    protect : iterable of paths
        Inputs of the run (data, labels, model, cache): refused as or inside ``out_dir``,
        even with ``force``.
    keep : bool
        Start the staging folder as a copy of the files of the earlier audit in ``out_dir``
        (``skinaudit report --from OUT --out OUT`` re-renders the report beside them).
    """

    def __init__(self, out_dir, *, force: bool = False, protect=(), keep: bool = False):
        self.out = Path(os.path.abspath(out_dir))  # the staging folder must not be a relative path
        self.force, self.keep = force, keep
        self.protect = [Path(os.path.abspath(p)) for p in protect if p is not None]
        self.tmp = self._lock_fd = self._lock_path = None
        self.inside = False

    # -- opening ----------------------------------------------------------------------------
    def __enter__(self) -> Path:
        try:
            self._open()
        except OSError as exc:
            self._close()
            raise OutputError(f"cannot write the output folder {self.out}: {_reason(exc)}") from None
        except BaseException:
            self._close()
            raise
        return self.tmp

    def _open(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out}: the output path exists and is not a folder")
        for p in self.protect:
            if p == out or out in p.parents:
                raise ConfigError(f"the output folder {out} holds an input of this run ({p}); the audit replaces its "
                                  "output folder as a whole: choose another --out")
        out.parent.mkdir(parents=True, exist_ok=True)
        # a mount point cannot be renamed; a folder in a read-only parent cannot be swapped beside it
        self.inside = out.is_dir() and (os.path.ismount(out) or not os.access(out.parent, os.W_OK))
        self._lock()
        self._check_contents()
        for stale in self._base().glob(self._prefix("partial") + "*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed run (we hold the lock)
        self._recover()
        self.tmp = Path(tempfile.mkdtemp(prefix=self._prefix("partial") + f"{os.getpid()}-", dir=self._base()))
        if self.keep:
            for rel in _listed(out):
                (self.tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(out / rel, self.tmp / rel)

    def _base(self) -> Path:
        return self.out if self.inside else self.out.parent

    def _prefix(self, kind: str) -> str:
        return f".skinaudit.{kind}-" if self.inside else f".{self.out.name}.{kind}-"

    def _lock(self) -> None:
        path = self._base() / (".skinaudit.lock" if self.inside else f".{self.out.name}.lock")
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ConfigError(f"another skinaudit run (process {holder}) is writing {self.out}; wait for it "
                                  "to finish or choose another --out") from None
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file its holder removed while we waited for it
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd, self._lock_path = fd, path

    def _check_contents(self) -> None:
        if not self.out.is_dir():
            return
        listed = set(_listed(self.out))
        foreign = sorted(rel for rel in _files(self.out) if rel not in listed)
        if foreign and not self.force:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise ConfigError(f"the output folder {self.out} holds {len(foreign)} file(s) skinaudit did not write "
                              f"({shown}); the audit replaces the folder as a whole: choose a new or empty folder, "
                              "or pass --force to replace it with everything in it")

    def _recover(self) -> None:
        """A run killed between the two renames of the fallback swap left the previous audit aside
        and no ``OUT``: put it back."""
        if self.inside:
            return
        for prev in sorted(self._base().glob(self._prefix("previous") + "*")):
            if not self.out.exists():
                os.rename(prev, self.out)
            else:
                shutil.rmtree(prev, ignore_errors=True)

    # -- closing ----------------------------------------------------------------------------
    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                try:
                    _write_marker(self.tmp)
                    with _signals_held():
                        self._swap()
                        _COMMITTED.append(self.out)
                except OSError as err:
                    raise OutputError(f"could not replace {self.out} with the new audit: {_reason(err)}; the "
                                      "earlier outputs are untouched") from None
            elif isinstance(exc, OSError) and (exc.errno in _WRITE_ERRNOS or _under(exc.filename, self.tmp)):
                raise OutputError(f"could not write the audit into {self.out}: {_reason(exc)}; the earlier outputs "
                                  "are untouched") from None
        finally:
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
            self._close()
        return False

    def _swap(self) -> None:
        out, tmp = self.out, self.tmp
        if self.inside:
            return self._swap_entries(tmp)
        if not out.exists():
            os.rename(tmp, out)
            return
        try:
            if _exchange(tmp, out):  # tmp now holds the previous audit, deleted on the way out
                return
            prev = Path(tempfile.mkdtemp(prefix=self._prefix("previous"), dir=out.parent))
            os.rename(out, prev)  # replaces the empty folder mkdtemp made
            try:
                os.rename(tmp, out)
            except BaseException:
                os.rename(prev, out)
                raise
            shutil.rmtree(prev, ignore_errors=True)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EBUSY):
                raise
            # OUT is a mount point that ismount() did not see (a bind mount): move entry by entry
            self.inside = True
            incoming = Path(tempfile.mkdtemp(prefix=self._prefix("partial"), dir=out))
            try:
                shutil.copytree(tmp, incoming, dirs_exist_ok=True)
                self._swap_entries(incoming)
            finally:
                shutil.rmtree(incoming, ignore_errors=True)

    def _swap_entries(self, staged: Path) -> None:
        out = self.out
        prev = Path(tempfile.mkdtemp(prefix=self._prefix("previous"), dir=out))
        old = [e for e in os.listdir(out) if not e.startswith(".skinaudit.")]
        new = os.listdir(staged)
        moved_old, moved_new = [], []
        try:
            for e in old:
                os.rename(out / e, prev / e)
                moved_old.append(e)
            for e in new:
                os.rename(staged / e, out / e)
                moved_new.append(e)
        except BaseException:
            for e in moved_new:
                os.rename(out / e, staged / e)
            for e in moved_old:
                os.rename(prev / e, out / e)
            raise
        finally:
            if len(moved_new) == len(new):
                shutil.rmtree(prev, ignore_errors=True)

    def _close(self) -> None:
        if self._lock_fd is not None:
            try:
                os.unlink(self._lock_path)  # while still held: a waiting run re-checks the inode
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None


# -- helpers ----------------------------------------------------------------------------------
def _files(folder: Path) -> list[str]:
    """Relative paths of the files under ``folder``, skinaudit's own working entries left out."""
    found = []
    for root, dirs, names in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if not d.startswith(".skinaudit.")]
            names = [n for n in names if n != MARKER and not n.startswith(".skinaudit.")]
        found += [(rel_root / n).as_posix() for n in names]
    return found


def _listed(folder: Path) -> list[str]:
    """The files the audit in ``folder`` wrote, from its marker (none when absent)."""
    try:
        lines = (folder / MARKER).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [ln for ln in lines[1:] if ln and (folder / ln).is_file()]


def _write_marker(folder: Path) -> None:
    from ._version import __version__

    text = f"skinaudit {__version__}: files this audit wrote; the folder is replaced as a whole by the next one\n"
    (folder / MARKER).write_text(text + "".join(f"{rel}\n" for rel in sorted(_files(folder))), encoding="utf-8")


def _under(path, folder) -> bool:
    if not path or folder is None:
        return False
    try:
        return Path(os.path.abspath(os.fsdecode(path))).is_relative_to(folder)
    except (TypeError, ValueError):
        return False


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the call or
    the file system does not support it."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))


class _signals_held:
    """Hold SIGINT and SIGTERM back for the few system calls of the swap, then deliver them to
    the handlers they were meant for (a Python-level hold: a process signal may reach any
    thread, and only the main thread runs Python's handlers)."""

    def __enter__(self):
        self.caught, self.old = [], {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, lambda signum, frame: self.caught.append(signum))
        return self

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        if self.caught:
            handler = self.old[self.caught[0]]
            if callable(handler):
                handler(self.caught[0], None)  # e.g. KeyboardInterrupt, now that the swap is done
            elif handler == signal.SIG_DFL:
                signal.raise_signal(self.caught[0])
        return False
