"""The lab as runmanager's remote API: globals, experiment file, output folder, engage.

runmanager compiles the shots of an experiment and sends them to BLACS. Its remote API
answers when the shots are queued for compilation, not when they are compiled or run: it
has no call that reports a compile error (those go to its window's output box only). A
shot that never compiles is noticed by the shots that never arrive.

Its ``abort`` call is not used: it sets a flag that only the compile loop clears, so when
nothing is compiling it aborts the *next* experiment engaged, whichever job that is.
Instead BLACS's labspool plugin refuses the shots of a withdrawn job, and runmanager stops
compiling an experiment at the first shot BLACS refuses.

Errors: no answer within the timeout (or no server) is :class:`LabUnavailable` (the job
waits QUEUED and labspool asks again later); anything runmanager raises back, such as
"Global x not found in any active group", is :class:`LabRejected` with runmanager's message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spooler.core.errors import LabRejected, LabUnavailable
from spooler.core.settings import GlobalNames, RunmanagerSettings
from spooler.lab.blacs import BlacsControl, Withdrawal
from spooler.lab.interface import LabObservation

__all__ = ["PROBE_TIMEOUT_S", "RunmanagerLab"]

PROBE_TIMEOUT_S = 2.0


class RunmanagerLab:
    def __init__(
        self, settings: RunmanagerSettings, names: GlobalNames, blacs: BlacsControl
    ) -> None:
        # Imported here: runmanager.remote reads the labconfig at import, so the caller
        # activates the right labscript profile first (spooler.lab.make_lab does).
        import zprocess.utils
        from runmanager.remote import Client

        self.settings = settings
        self.names = names
        self.blacs = blacs
        self.where = f"runmanager at {settings.host}:{settings.port}"
        self._client = Client(host=settings.host, port=settings.port, timeout=settings.timeout_s)
        # Asking whether runmanager is there must not block the spooler for the full timeout.
        self._probe = Client(
            host=settings.host, port=settings.port, timeout=min(settings.timeout_s, PROBE_TIMEOUT_S)
        )
        self._timeout_error: type[BaseException] = zprocess.utils.TimeoutError

    def _call(self, command: str, *args: Any, probe: bool = False, **kwargs: Any) -> Any:
        client = self._probe if probe else self._client
        try:
            return getattr(client, command)(*args, **kwargs)
        except self._timeout_error as exc:
            answer = f"{self.where} did not answer within {client.timeout:g} s"
            raise LabUnavailable(answer) from exc
        except OSError as exc:  # zmq errors derive from it
            raise LabUnavailable(f"{self.where}: {exc}") from exc
        except Exception as exc:
            raise LabRejected(f"runmanager: {_message(exc)}") from exc

    def observe(self) -> LabObservation:
        try:
            self._call("say_hello", probe=True)
            runmanager = None
        except (LabUnavailable, LabRejected) as exc:
            runmanager = str(exc)
        try:
            return LabObservation(runmanager, self.blacs.report())
        except LabUnavailable as exc:
            return LabObservation(runmanager, None, str(exc))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # the control folder full or read-only, or an answer of the wrong shape
            return LabObservation(runmanager, None, f"BLACS's plugin could not be asked: {exc}")

    def recover(self) -> dict[str, Any]:
        return self.blacs.recover()

    def set_globals(self, values: Mapping[str, object]) -> None:
        existing = set(self._call("get_globals", raw=True))
        shots = int(values["shots"])  # type: ignore[call-overload]
        if not existing:
            # runmanager answers before it has opened its globals files at start-up.
            raise LabUnavailable(f"{self.where} has no active globals yet (still starting?)")
        if self.names.shot not in existing:
            raise LabRejected(
                f"the apparatus' globals have no {self.names.shot!r}, so runmanager cannot be "
                f"told to make {shots} shot(s); add it to an active group with expansion 'outer'"
            )
        wanted = {
            self.names.job_id: repr(values["job_id"]),
            self.names.experiment_name: repr(values["experiment_name"]),
            self.names.shot: (
                # a tuple, not a list: runmanager guesses 'outer' for a list and, when the
                # next value (range(n)) is no list, sets the shot global's expansion to none
                repr(tuple(int(i) for i in values["shot_indices"]))  # type: ignore[attr-defined]
                if values.get("shot_indices") is not None
                else f"range({shots})"
            ),
            self.names.seed: repr(values.get("seed")),
            self.names.attempt: repr(values.get("attempt", 1)),
        }
        self._call("set_globals", {k: v for k, v in wanted.items() if k in existing}, raw=True)

    def set_labscript_file(self, path: Path) -> None:
        self._call("set_labscript_file", str(path))

    def set_shot_output_folder(self, path: Path) -> None:
        self._call("set_shot_output_folder", str(path))

    def n_shots(self) -> int:
        return int(self._call("n_shots"))

    def engage(self) -> None:
        self._call("engage")

    def withdraw(self, folders: Sequence[Path], *, abort: bool) -> Withdrawal:
        return self.blacs.withdraw(folders, abort=abort)


def _message(exc: BaseException) -> str:
    """runmanager sends the server's traceback along; keep the message a person reads."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__
