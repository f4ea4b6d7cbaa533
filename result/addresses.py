"""Address files and the shots they name: untrusted input, checked before anything is moved.

An address file (written by labspool's BLACS plugin, one per finished shot) names a shot
file the result daemon will copy, archive and then delete, so nothing in it is believed
until checked:

1. the address file: a regular file (no symlink, FIFO, hard link) of at most
   ``limits.address_file_max_bytes``, strict JSON (UTF-8, no NaN, no duplicate keys), an
   object whose ``job_id``, ``experiment``, ``shot_index`` and ``attempt`` have the right
   types, naming a job the store knows;
2. the shot's path: absolute, without ``.`` or ``..``, in the shot folder of exactly that
   job, attempt and experiment (``Folders.shot_folder``, or a recovery's folder in it), no
   symbolic link anywhere below the
   shots folder, a regular file with one link;
3. the shot itself: an HDF5 file that lyse can read as a labscript shot (a ``globals``
   group, a ``sequence_id``), whose own globals name the same job, experiment, shot index
   and attempt as the address.

A failure of 1 or 2, or globals that name another job, is :class:`BadAddress`: the address
is refused (quarantined) and the file it names is never touched. A failure of 3 otherwise is
:class:`DamagedShot`: the shot is ours (it is where runmanager writes that job's shots) but
cannot be read, so it is quarantined with the address, kept, and its job ends ``ERROR``.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from result.archive import StoreUnavailable, is_transient
from spooler.core.errors import JobRejected, LabspoolError
from spooler.core.fsutil import read_regular_file
from spooler.core.headless import headless
from spooler.core.jobid import is_valid_job_id
from spooler.core.names import escaped
from spooler.core.settings import Folders, GlobalNames
from spooler.core.strictjson import describe_value, loads_strict

if TYPE_CHECKING:
    from spooler.core.store import Reader

__all__ = ["Address", "BadAddress", "DamagedShot", "check_shot", "read_address"]

_EXPERIMENT = re.compile(r"experiment_(0|[1-9][0-9]{0,5})")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class BadAddress(LabspoolError):
    """The address file is refused; the file it names is not touched."""


class DamagedShot(LabspoolError):
    """The shot is the job's but cannot be read as a labscript shot."""


@dataclass(frozen=True)
class Address:
    shot: Path  # checked: the shot folder of (job_id, attempt, experiment)
    job_id: str
    experiment: str
    shot_index: int
    attempt: int


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_address(path: Path, view: Reader, folders: Folders, *, max_bytes: int) -> Address:
    """An address file's content, checked (steps 1 and 2 of the module's list)."""
    try:
        what = "the address file"
        data: Any = loads_strict(
            read_regular_file(path, max_bytes, what=what), max_depth=4, what=what
        )
    except JobRejected as exc:
        raise BadAddress(str(exc)) from exc
    except OSError as exc:
        raise BadAddress(f"unreadable address file: {exc.strerror or exc}") from exc
    if not isinstance(data, dict):
        raise BadAddress("the address file is not a JSON object")
    shot, job_id, experiment = data.get("shot"), data.get("job_id"), data.get("experiment")
    index, attempt = _int(data.get("shot_index")), data.get("attempt")
    if not isinstance(shot, str):
        raise BadAddress("the address file names no shot")
    if not isinstance(job_id, str) or not is_valid_job_id(job_id):
        raise BadAddress(f"the address names no labspool job (job_id {describe_value(job_id)})")
    if not isinstance(experiment, str) or not _EXPERIMENT.fullmatch(experiment):
        raise BadAddress(f"the address names no experiment ({describe_value(experiment)})")
    if index is None or index < 0:
        shown = describe_value(data.get("shot_index"))
        raise BadAddress(f"the address has no shot index ({shown})")
    job = view.get(job_id)
    if job is None:
        raise BadAddress(f"the address names job {job_id}, which labspool does not know")
    if attempt is None:
        attempt = job.attempt
    elif _int(attempt) is None or not 1 <= attempt <= job.attempt:
        raise BadAddress(
            f"the address names attempt {describe_value(attempt)} of job {job_id}, which has "
            f"had {job.attempt}"
        )
    path = _shot_path(shot, folders, job_id, attempt, experiment)
    return Address(path, job_id, experiment, index, attempt)


def _shot_path(text: str, folders: Folders, job_id: str, attempt: int, experiment: str) -> Path:
    shown = describe_value(escaped(text), 200)
    pure = PurePosixPath(text)
    if "\x00" in text or not pure.is_absolute():
        raise BadAddress(f"the shot {shown} is not an absolute path")
    if any(part in (".", "..") for part in text.split("/")):
        raise BadAddress(f"the shot path {shown} contains '.' or '..'")
    if pure.suffix != ".h5":
        raise BadAddress(f"the shot {shown} is not an .h5 file")
    path = Path(text)
    folder = folders.shot_folder(job_id, attempt, experiment)
    if not folders.is_shot_folder(path.parent, job_id, attempt, experiment):
        raise BadAddress(
            f"the shot {shown} is not in the shot folder of {job_id} attempt {attempt} "
            f"{experiment} ({folder})"
        )
    # No symbolic link below the shots folder: each part is looked at, not followed.
    current = folders.shots
    for part in path.relative_to(folders.shots).parts:
        current = current / part
        try:
            info = current.lstat()
        except FileNotFoundError:
            raise BadAddress(f"the shot {shown} does not exist") from None
        if stat.S_ISLNK(info.st_mode):
            raise BadAddress(f"the shot path {shown} goes through a symbolic link ({current.name})")
    if not stat.S_ISREG(info.st_mode):
        raise BadAddress(f"the shot {shown} is not a regular file")
    if info.st_nlink != 1:
        raise BadAddress(f"the shot {shown} has {info.st_nlink} hard links")
    return path


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return None


def check_shot(address: Address, names: GlobalNames) -> None:
    """Step 3: the shot is a labscript shot of what the address says (opened read-only).

    Imports the suite's ``h5_lock`` before h5py, as the suite requires (lyse refuses to be
    imported after a plain h5py), so it needs the daemon's labscript profile active."""
    import labscript_utils.h5_lock  # noqa: F401  (first: the suite's rule)

    headless()  # the suite's import installed its Tk exception hook
    import h5py

    path = address.shot
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        head = os.pread(fd, len(_HDF5_SIGNATURE), 0)
    finally:
        os.close(fd)
    if head != _HDF5_SIGNATURE:
        raise DamagedShot(
            "not an HDF5 file (empty)" if not head else "not an HDF5 file (no HDF5 signature)"
        )
    try:
        with h5py.File(path, "r") as shot:
            if "globals" not in shot or not isinstance(shot["globals"], h5py.Group):
                raise DamagedShot("not a labscript shot: it has no globals group")
            if _text(shot.attrs.get("sequence_id")) is None:
                raise DamagedShot("not a labscript shot: it has no sequence_id")
            shot_globals = dict(shot["globals"].attrs)
    except DamagedShot:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError, ... on damage
        if is_transient(exc):  # the lock server did not answer: not the shot's fault
            raise StoreUnavailable(f"zlock did not answer while opening the shot: {exc}") from exc
        raise DamagedShot(f"cannot be read as HDF5: {type(exc).__name__}: {exc}") from exc
    claims: list[tuple[str, object]] = [
        (names.job_id, address.job_id),
        (names.experiment_name, address.experiment),
        (names.shot, address.shot_index),
    ]
    if names.attempt in shot_globals:
        claims.append((names.attempt, address.attempt))
    for name, claimed in claims:
        if name not in shot_globals:
            raise DamagedShot(f"not a labspool shot: its globals have no {name}")
        value: Any = shot_globals[name]
        own: Any = _text(value) if isinstance(claimed, str) else value
        if isinstance(claimed, int) and not isinstance(own, bool):
            with contextlib.suppress(TypeError, ValueError):
                own = int(own)  # numpy integers
        if own != claimed:
            raise BadAddress(
                f"the address says {name} = {describe_value(claimed)} but the shot's own "
                f"globals say {describe_value(own)}"
            )
