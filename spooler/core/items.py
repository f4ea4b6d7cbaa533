"""One rule for both daemons: no single item (a job file, a shot) can stop a daemon.

Work comes in items. An unexpected exception while handling one gives up that item, never
the daemon (each daemon says what giving up means: a job ends ``ERROR`` with ``internal
error while <step>: <type>: <message>``, an address or a shot goes to the quarantine
folder). An item can also kill the whole process (a segfault in a C library on a corrupt
file, running out of memory, ``os._exit`` in an analysis routine), where no exception
handler runs. For those, :class:`DeathCounter` records durably, before an item is started,
that it is started, and removes the record when it is done; a record found by the next
process (of the same boot: a power cut is not the item's fault) means the previous one died
on that item. The daemons load what they import lazily (the labscript suite) before they
start the first item, so that the window in which a death counts is the item's own work.
After ``limits.item_deaths_max`` deaths the item is given up instead of started again (the
dead-letter queue of SQS and RabbitMQ), so a systemd restart loop ends after a few restarts
with the item quarantined. A SIGKILL from outside during an item counts as a death too (the
next process cannot tell it from the OOM killer); the window is kept short for that reason.

:class:`Quarantine` is the folder of what was given up: each item moved there (never
replacing anything) with ``<name>.reason.json`` beside it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

from spooler.core.fsutil import exists_in, free_name, fsync_dir, write_atomic
from spooler.core.names import escaped, is_plain, plain_name
from spooler.core.store import JobStore, Reader, Transaction
from spooler.core.store.starts import ItemStarts
from spooler.core.timestamps import iso_time

__all__ = ["REASON_SUFFIX", "DeathCounter", "Quarantine"]

log = logging.getLogger(__name__)

REASON_SUFFIX = ".reason.json"  # beside each quarantined item: why it was given up
# An item's name here, plus ".<n>", "--<companion>" or ".reason.json", within NAME_MAX (255)
_STEM_MAX_BYTES = 120


@cache
def boot_id() -> str:
    """This boot of the machine (Linux's random boot id; elsewhere, the boot time)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return str(round(time.time() - time.monotonic()))


class DeathCounter:
    """Durable starts of items, per daemon and kind of item, in the job store."""

    def __init__(self, store: JobStore, daemon: str, deaths_max: int) -> None:
        self.store = store
        self.daemon = daemon
        self.deaths_max = deaths_max

    def deaths(self, view: Reader, kind: str, key: str) -> int:
        """How often a process of this daemon died while handling the item (started, not
        ended) since the machine booted: a reboot or a power cut is not the item's fault."""
        row = ItemStarts.get(view, self.daemon, kind, key)
        return 0 if row is None or row[1] != boot_id() else row[0]

    def poisoned(self, view: Reader, kind: str, key: str) -> int | None:
        """The number of deaths when the item must not be started again, else None."""
        deaths = self.deaths(view, kind, key)
        return deaths if deaths >= self.deaths_max else None

    def begin(self, tx: Transaction, kind: str, key: str) -> None:
        """Record a start (durable when *tx* commits): call before the item's work."""
        ItemStarts.count(tx, self.daemon, kind, key, boot=boot_id())

    def end(self, tx: Transaction, kind: str, key: str) -> None:
        """The item is done (or given up): forget its starts."""
        ItemStarts.forget(tx, self.daemon, kind, key)

    def started(self, kind: str, key: str) -> None:
        with self.store.transaction() as tx:
            self.begin(tx, kind, key)

    def ended(self, kind: str, key: str) -> None:
        with self.store.transaction() as tx:
            self.end(tx, kind, key)


class Quarantine:
    """The quarantine folder: given-up items, each with ``<name>.reason.json`` beside it."""

    def __init__(
        self,
        folder: Path,
        daemon: str,
        *,
        clock: Callable[[], float] = time.time,
        store: JobStore | None = None,
    ) -> None:
        self.folder = folder
        self.daemon = daemon
        self.clock = clock
        self.store = (
            store  # where a notification of each item is left (spooler.pipeline.notifications)
        )

    def put(
        self,
        item: Path | None,
        reason: str,
        *,
        name: str | None = None,
        job_id: str | None = None,
        extra: dict[str, object] | None = None,
        files: tuple[Path, ...] = (),
    ) -> Path:
        """Move *item* (and *files*, things that go with it) here and write why.

        *item* None: nothing to move (say, the file was gone), only the reason is written,
        under *name*. Returns the reason file. A name already here gets a suffix; nothing is
        ever replaced."""
        self.folder.mkdir(parents=True, exist_ok=True)
        base = name or (item.name if item is not None else "item")
        stem = self._free(self.stem_for(base))
        moved: dict[str, str] = {}
        targets = [(item, stem)] + [(f, f"{stem}--{self.stem_for(f.name)}") for f in files]
        for source, target_name in targets:
            if source is None or not (source.exists() or source.is_symlink()):
                continue
            os.rename(source, self.folder / target_name)  # a symlink is moved, never followed
            moved[escaped(str(source))] = target_name
            fsync_dir(source.parent)
        document = {
            "item": escaped(item.name) if item is not None else escaped(base),
            "from": None if item is None else escaped(str(item.parent)),
            "reason": reason,
            "job_id": job_id,
            "daemon": self.daemon,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": iso_time(self.clock()),
            "moved": moved,
            **(extra or {}),
        }
        reason_file = self.folder / f"{stem}{REASON_SUFFIX}"
        write_atomic(reason_file, json.dumps(document, indent=1).encode() + b"\n")
        if self.store is not None:
            with self.store.transaction() as tx:
                tx.notify(
                    "quarantine",
                    f"The {self.daemon} quarantined {document['item']}",
                    f"{reason}\nKept in {reason_file}.\nWhat to do: read the reason file; "
                    "the item is kept there and nothing else waits for it.",
                    job_id=job_id,
                )
        return reason_file

    @staticmethod
    def stem_for(name: str) -> str:
        """The name an item gets here: plain, and short enough for its companions' names."""
        if not is_plain(name):
            return plain_name(name)
        if len(name.encode()) > _STEM_MAX_BYTES:
            return plain_name(name, prefix=name.encode()[:100].decode("utf-8", "ignore"))
        return name

    def _free(self, base: str) -> str:
        return free_name(base, exists_in(self.folder, REASON_SUFFIX), keep_suffix=False)

    def reasons(self) -> list[dict[str, object]]:
        """Every reason file's content (for tests and the operator's tools)."""
        out = []
        for path in sorted(self.folder.glob(f"*{REASON_SUFFIX}")):
            out.append(json.loads(path.read_text(encoding="utf-8")))
        return out
