"""Reading and writing the user's files safely.

Inputs: only regular files are read (a FIFO would hang, ``/dev/zero`` would never end),
and never more than a size limit, checked before reading. Outputs: a regular file (or a
new one) is replaced atomically (a temporary file beside it, then a rename); a character
device or a FIFO (``-o /dev/stdout``, a pipe) is written through, as a shell redirection
would; anything else (a folder, a block device, a socket) is refused. A symbolic link is
followed, so the link stays and its target is what gets written.

The limits can be raised for one run with the environment variable ``STUDIO_MAX_FILE_MB``
(a whole number of MiB), which replaces every input limit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

MiB = 2**20
LIMIT_ENV = "STUDIO_MAX_FILE_MB"
# Default limits, in bytes, on what one input file may hold (after decompression for archives).
PROJECT_LIMIT = 64 * MiB  # a 100,000-layer project is about 20 MiB
DATA_LIMIT = 1024 * MiB  # a dataset file, the arrays it declares, or a weights file
MODEL_LIMIT = 1024 * MiB  # a model file, and each member of a .keras archive


class NotRegularFileError(OSError):
    """The path names a FIFO, a device, a socket or a folder, not a regular file."""


class FileTooLargeError(OSError):
    """The file, or what it declares, exceeds the size limit. ``strerror`` states the limit."""


def limit(default: int) -> int:
    """``default``, or the limit that STUDIO_MAX_FILE_MB sets (ignored unless a positive integer)."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text) * MiB
    return default


def too_large(what: str, size: int, maximum: int) -> FileTooLargeError:
    """The error for ``what`` (e.g. "the file is", "member 'x' unpacks to") of ``size`` bytes over ``maximum``."""
    return FileTooLargeError(errno.EFBIG, f"{what} {size:,} bytes; {limit_text(maximum)}")


def limit_text(maximum: int) -> str:
    return f"the limit is {maximum:,} bytes (set {LIMIT_ENV} to a number of MiB to raise it)"


def kind_of(mode: int) -> str:
    """A file type in words: "a FIFO", "a character device"..."""
    for test, words in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "not a regular file"


def check_regular_file(path: str | os.PathLike, maximum: int | None) -> int:
    """The size of the regular file at ``path`` (links followed); raises OSError otherwise.

    Raises NotRegularFileError for anything else (without opening it, so a FIFO cannot
    block), FileTooLargeError beyond ``maximum`` bytes, and the usual OSError when missing.
    """
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFileError(errno.EINVAL, f"is {kind_of(info.st_mode)}, not a regular file")
    if maximum is not None and info.st_size > maximum:
        raise too_large("the file is", info.st_size, maximum)
    return info.st_size


def read_regular_file(path: str | os.PathLike, maximum: int) -> bytes:
    """The bytes of a regular file of at most ``maximum`` bytes (see :func:`check_regular_file`)."""
    check_regular_file(path, maximum)
    with open(path, "rb") as handle:
        data = handle.read(maximum + 1)  # a file that grew since stat() is still cut at the limit
    if len(data) > maximum:
        raise too_large("the file is", len(data), maximum)
    return data


# ----- outputs ----------------------------------------------------------------------------------


def _through(path: Path) -> tuple[Path, bool]:
    """(the path to write, whether to write through to it) for an output ``path``."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return Path(os.path.realpath(path)), False  # a new file, or the target of a dangling link
    resolved = os.path.realpath(path)
    descriptor = _is_descriptor_link(path, resolved)
    if stat.S_ISREG(mode) and not descriptor:
        return Path(resolved), False  # replace a link's target, keeping the link
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or (descriptor and stat.S_ISREG(mode)):
        return path, True  # opened as given: /dev/stdout is a link that realpath cannot follow
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder")
    raise NotRegularFileError(
        errno.EINVAL, f"is {kind_of(mode)}; only a regular file, a FIFO or a terminal is written"
    )


def _is_descriptor_link(path: Path, resolved: str) -> bool:
    """True for /dev/stdout, /dev/fd/N, /proc/self/fd/N: an open descriptor, even onto a regular
    file (``> out.txt``), is written through, never replaced."""
    return str(path).startswith(("/dev/", "/proc/")) or resolved.startswith("/proc/")


class StagedOutput:
    """An output written to a temporary file first, then committed to its place in one step.

    For a regular file, :meth:`commit` renames the temporary file over it (keeping the old
    file's permissions); for a character device or a FIFO it copies the bytes through.
    """

    def __init__(self, path: str | os.PathLike, suffix: str = "") -> None:
        self.path = Path(path)
        self.target, self.through = _through(self.path)
        directory = tempfile.gettempdir() if self.through else str(self.target.parent)
        descriptor, name = tempfile.mkstemp(
            prefix=f".{self.target.name}.", suffix=f".tmp{suffix}", dir=directory
        )
        os.close(descriptor)
        self.temp = Path(name)

    def commit(self) -> None:
        try:
            if self.through:
                with (
                    open(self.temp, "rb") as source,
                    open(self.target, "ab") as sink,
                ):  # append: never truncate a redirected stdout
                    shutil.copyfileobj(source, sink)
                return
            with open(self.temp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(self.temp, _mode_for(self.target))
            os.replace(self.temp, self.target)
        finally:
            self.discard()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.temp)


@contextlib.contextmanager
def staged_output(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """``with staged_output(path) as temp: save(temp)``: committed only if the block succeeds."""
    staged = StagedOutput(path, suffix)
    try:
        yield staged.temp
    except BaseException:
        staged.discard()
        raise
    staged.commit()


def write_output(path: str | os.PathLike, write: Callable[[BinaryIO], None], suffix: str = "") -> None:
    """Call ``write(binary_handle)`` and put the result at ``path`` (see the module doc)."""
    with staged_output(path, suffix) as temp, open(temp, "wb") as handle:
        write(handle)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    write_output(path, lambda handle: handle.write(data))


def _mode_for(target: Path) -> int:
    """The old file's permissions, or the usual ones for a new file (mkstemp makes 0o600)."""
    with contextlib.suppress(OSError):
        return os.stat(target).st_mode & 0o777
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


# ----- what archives declare --------------------------------------------------------------------


def zip_members(path: str | os.PathLike) -> list:
    """The members a zip archive's central directory declares; none for a file that is not a zip
    archive or whose directory is damaged (the reader reports that). Nothing is inflated."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return []
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.infolist()
    except zipfile.BadZipFile:
        return []


def check_zip_declared_sizes(path: str | os.PathLike, maximum: int) -> None:
    """Raise FileTooLargeError when a zip archive's members declare more than ``maximum`` bytes in all.

    Reads only the central directory, so a decompression bomb is refused before inflating.
    Not a zip file: nothing to check here (the reader reports it).
    """
    total = 0
    for info in zip_members(path):
        if info.file_size > maximum:
            raise too_large(f"member {info.filename!r} unpacks to", info.file_size, maximum)
        total += info.file_size
    if total > maximum:
        raise too_large("the archive unpacks to", total, maximum)


def check_npz_declared_sizes(path: str | os.PathLike, maximum: int, noun: str = "array") -> None:
    """Raise FileTooLargeError when an .npz (or .npy) file declares arrays of more than ``maximum`` bytes.

    The zip directory and each array's header are read, never the data: what ``np.load``
    would allocate is known before it does. Damaged headers raise ValueError.
    """
    import zipfile

    check_zip_declared_sizes(path, maximum)
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            if handle.read(6) == b"\x93NUMPY":
                handle.seek(0)
                _check_npy_header(handle, f"the {noun}", maximum)
        return
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".npy"):
                with archive.open(info) as member:
                    total += _check_npy_header(member, f"{noun} {info.filename[:-4]!r}", maximum)
    if total > maximum:
        raise too_large("the arrays together are", total, maximum)


def _check_npy_header(handle: BinaryIO, what: str, maximum: int) -> int:
    """The data size that an .npy header declares, checked against ``maximum``."""
    import math

    import numpy as np

    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    size = math.prod(shape) * dtype.itemsize
    if size > maximum:
        raise too_large(f"{what} is too large to load: its shape {shape} of {dtype} is", size, maximum)
    return size


def commit_all(staged: list[StagedOutput]) -> None:
    """Commit several staged outputs as one change: if one fails, those already replaced get their
    old files back (kept as hard links until the end), and every temporary file is removed."""
    backups: dict[Path, Path | None] = {}
    committed: list[Path] = []
    try:
        for output in staged:
            backups[output.target] = None
            if not output.through and output.target.is_file():
                backups[output.target] = output.temp.with_name(output.temp.name + ".old")
                os.link(output.target, backups[output.target])
            output.commit()
            committed.append(output.target)
    except BaseException:
        for target in committed:
            with contextlib.suppress(OSError):
                backup = backups[target]
                if backup is None:
                    os.unlink(target)
                else:
                    os.replace(backup, target)
        raise
    finally:
        for output in staged:
            output.discard()
        for backup in backups.values():
            if backup is not None:
                with contextlib.suppress(OSError):
                    os.unlink(backup)
