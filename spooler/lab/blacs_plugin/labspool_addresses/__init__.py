"""BLACS plugin of labspool: one address file per finished shot.

On BLACS's ``shot_complete`` callback it writes one file,
``<address folder>/<job>__<experiment>__<shot>.json``, with the shot's path and what
labspool's result daemon needs to attribute it (job id, experiment, shot index; read from
the shot's globals), atomically: a temporary file in the same folder, fsync, a rename to the
final name (never over an existing one: BLACS calls the plugin for one shot at a time), fsync
of the folder.

Configure it in the labconfig (``labspool lab install-plugin`` prints these lines):

    [BLACS/plugins]
    labspool_addresses = True

    [labspool]
    address_folder = /path/to/addresses
    # optional: ready_file (touched once BLACS is up), control_folder (requests from
    # labspool to withdraw or abort a job's shots, to report BLACS's queue and devices in
    # error, to restart those and lift the pause; see control.py), and the names of the
    # globals: job_id_global, experiment_global, shot_global, attempt_global

It deliberately imports nothing from labspool, so that it runs in any BLACS environment.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import time
from collections.abc import Iterable
from typing import Any

from .control import ControlServer, QueueSnapshot, TabState
from .files import fsync_folder, write_hidden

name = "labspool address files"
module = "labspool_addresses"
logger = logging.getLogger(f"BLACS.plugin.{module}")

FORMAT = "labspool.address/1"


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


def _safe(text: object, fallback: str) -> str:
    text = _text(text) or ""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:100]
    return cleaned.lstrip(".") or fallback


def shot_record(h5_path: str, names: dict[str, str]) -> dict[str, Any]:
    """What an address file says about a shot (read from the shot's globals)."""
    import h5py

    with h5py.File(h5_path, "r") as shot:
        shot_globals = dict(shot["globals"].attrs) if "globals" in shot else {}
        run_number = shot.attrs.get("run number")
    index = shot_globals.get(names["shot"])
    attempt = shot_globals.get(names["attempt"])
    return {
        "format": FORMAT,
        "shot": os.path.abspath(h5_path),
        "job_id": _text(shot_globals.get(names["job_id"])),
        "experiment": _text(shot_globals.get(names["experiment"])),
        "shot_index": None if index is None else int(index),
        "attempt": None if attempt is None else int(attempt),
        "run_number": None if run_number is None else int(run_number),
        "completed_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "host": socket.gethostname(),
    }


def write_address_file(folder: str, record: dict[str, Any]) -> str:
    """Publish *record* as a new address file in *folder*; returns its path."""
    index = record["shot_index"]
    job, experiment = _safe(record["job_id"], "nojob"), _safe(record["experiment"], "noexperiment")
    stem = f"{job}__{experiment}__{'noshot' if index is None else f'{index:05d}'}"
    tmp = write_hidden(folder, stem, (json.dumps(record, indent=1) + "\n").encode())
    try:
        attempt = 0
        while True:
            suffix = "" if attempt == 0 else f"_rep{attempt}"
            final = os.path.join(folder, f"{stem}{suffix}.json")
            if not os.path.exists(final):
                break
            attempt += 1
        os.rename(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_folder(folder)
    return final


class Plugin:
    def __init__(self, initial_settings: dict[str, Any]) -> None:
        from labscript_utils.labconfig import LabConfig

        config = LabConfig()
        self.folder = config.get("labspool", "address_folder")
        self.ready_file = config.get("labspool", "ready_file", fallback=None)
        self.names = {
            "job_id": config.get("labspool", "job_id_global", fallback="labspool_job_id"),
            "experiment": config.get(
                "labspool", "experiment_global", fallback="labspool_experiment"
            ),
            "shot": config.get("labspool", "shot_global", fallback="labspool_shot"),
            "attempt": config.get("labspool", "attempt_global", fallback="labspool_attempt"),
        }
        self.control_folder = config.get("labspool", "control_folder", fallback=None)
        self.control: ControlServer | None = None
        self.running: str | None = None  # the shot BLACS is running
        self.running_since: float | None = None  # since when (wall clock)
        # changes whenever BLACS starts again
        self.instance = f"{os.getpid()}-{time.time():.6f}"
        os.makedirs(self.folder, exist_ok=True)

    def on_pre_transition_to_buffered(self, h5_path: str) -> None:
        self.running_since = time.time()
        self.running = os.path.abspath(h5_path)

    def on_science_over(self, h5_path: str) -> None:
        self.running = None
        self.running_since = None

    def on_shot_complete(self, h5_path: str) -> None:
        try:
            path = write_address_file(self.folder, shot_record(h5_path, self.names))
            logger.info("address file %s for %s", path, h5_path)
        except Exception:
            # BLACS goes on; the shot stays where it is and a rescan can find it.
            logger.exception("could not write the address file for %s", h5_path)

    def get_callbacks(self) -> dict[str, Any]:
        return {
            "shot_complete": self.on_shot_complete,
            "pre_transition_to_buffered": self.on_pre_transition_to_buffered,
            "science_over": self.on_science_over,
        }

    def plugin_setup_complete(self, blacs_data: dict[str, Any] | None = None) -> None:
        if self.control_folder and blacs_data is not None:
            ops = BlacsQueue(blacs_data["experiment_queue"], self)
            self.control = ControlServer(self.control_folder, ops, instance=self.instance)
            ops.refuse_withdrawn(self.control)
            self.control.start()
        if self.ready_file:
            with open(self.ready_file, "w") as ready:
                ready.write(f"{os.getpid()}\n")

    def get_menu_class(self) -> None:
        return None

    def get_notification_classes(self) -> list[Any]:
        return []

    def get_setting_classes(self) -> list[Any]:
        return []

    def set_menu_instance(self, menu: object) -> None:
        pass

    def set_notification_instances(self, notifications: object) -> None:
        pass

    def get_save_data(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        if self.control is not None:
            self.control.stop()


class BlacsQueue:
    """BLACS's queue manager as the control server's :class:`QueueOps` (Qt's main thread)."""

    def __init__(self, queue_manager: Any, plugin: Plugin) -> None:
        self.manager = queue_manager
        self.plugin = plugin

    def refuse_withdrawn(self, control: ControlServer) -> None:
        """Shots of a withdrawn job that runmanager still sends are refused, not queued.

        BLACS's server hands every new shot to ``process_request`` of its queue manager;
        runmanager stops compiling an experiment at the first shot BLACS does not add."""
        accept = self.manager.process_request

        def process_request(h5_filepath: str) -> str:
            if control.refuses(h5_filepath):
                logger.info("refused %s: its job was withdrawn by labspool", h5_filepath)
                return "Refused by labspool: this job was cancelled or aborted\n"
            return accept(h5_filepath)  # type: ignore[no-any-return]

        self.manager.process_request = process_request

    def queued(self) -> list[str]:
        from qtutils import inmain

        model = self.manager._model
        return inmain(  # type: ignore[no-any-return]
            lambda: [str(model.item(i).text()) for i in range(model.rowCount())]
        )

    def remove(self, paths: Iterable[str]) -> list[str]:
        from qtutils import inmain

        wanted = set(paths)
        model = self.manager._model

        def take() -> list[str]:
            removed = []
            for row in reversed(range(model.rowCount())):
                path = str(model.item(row).text())
                if path in wanted:
                    model.takeRow(row)
                    removed.append(path)
            return removed[::-1]

        return inmain(take)  # type: ignore[no-any-return]

    def running(self) -> str | None:
        return self.plugin.running

    def abort(self) -> bool:
        from qtutils import inmain

        button = self.manager._ui.queue_abort_button

        def click() -> bool:
            if not button.isEnabled():
                return False
            button.click()
            return True

        return inmain(click)  # type: ignore[no-any-return]

    def running_since(self) -> float | None:
        return self.plugin.running_since

    def snapshot(self) -> QueueSnapshot:
        from qtutils import inmain

        manager, model = self.manager, self.manager._model

        def read() -> QueueSnapshot:
            return QueueSnapshot(
                paused=bool(manager.manager_paused),
                status=str(manager.get_status()),
                queued=[str(model.item(i).text()) for i in range(model.rowCount())],
                tabs=self._tabs(),
                manager_alive=bool(manager.manager.is_alive()),
            )

        return inmain(read)  # type: ignore[no-any-return]

    def paused(self) -> bool:
        return bool(self.manager.manager_paused)  # (BLACS reads it in its main thread)

    def set_paused(self, paused: bool) -> None:
        self.manager.manager_paused = paused  # (BLACS sets it in its main thread)

    def tabs(self) -> list[TabState]:
        from qtutils import inmain

        return inmain(self._tabs)  # type: ignore[no-any-return]

    def _tabs(self) -> list[TabState]:
        """(In the main thread.) BLACS's device tabs: ``BLACS.tablist``, name -> tab."""
        return [
            TabState(str(name), str(tab.state), str(tab.error_message or ""))
            for name, tab in self.manager.BLACS.tablist.items()
        ]

    def restart(self, name: str) -> None:
        from qtutils import inmain

        inmain(self.manager.BLACS.tablist[name].restart)
