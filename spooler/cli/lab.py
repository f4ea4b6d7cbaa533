"""The ``lab`` commands: the embedded virtual lab (``up``, ``down``, ``fault``, ``restart``),
BLACS's recovery and plugin (``recover``, ``install-plugin``), and the machine's health as the
spooler recorded it (``status``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from spooler.cli.common import Subcommands, settings_of
from spooler.core.backends import BACKENDS
from spooler.core.errors import LabspoolError
from spooler.core.settings import Settings
from spooler.core.store import JobStore

__all__ = ["NOT_OPERATIONAL_EXIT", "add_commands"]


def add_commands(sub: Subcommands) -> None:
    """``lab`` and its own commands."""
    lab = sub.add_parser("lab", help="the embedded virtual lab and the BLACS plugin")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, metavar="LAB_COMMAND")
    p = lab_sub.add_parser(
        "up", help="build and start the virtual lab under DIR; prints its config"
    )
    p.add_argument("dir", type=Path)
    p.add_argument(
        "--look-ahead-jobs",
        type=int,
        metavar="N",
        help="lab.look_ahead_jobs of its configuration (0: no pipelining)",
    )
    p.add_argument(
        "--look-ahead-shots",
        type=int,
        metavar="N",
        help="lab.look_ahead_shots of its configuration",
    )
    p.add_argument(
        "--load-time-s",
        type=float,
        metavar="S",
        help="how long the apparatus loads atoms in each shot (default 0.01 s)",
    )
    p.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="singlequdit",
        help="the virtual machine (default singlequdit)",
    )
    p.set_defaults(func=_lab_up)
    p = lab_sub.add_parser("down", help="stop every process the lab under DIR started")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=_lab_down)
    p = lab_sub.add_parser(
        "fault",
        help="make a virtual device of the lab under DIR fail on demand (or --clear)",
        description="Make the virtual lab's camera raise at the end of a shot (BLACS then "
        "puts its tab in error and pauses its queue, as with a real device failing).",
    )
    p.add_argument("dir", type=Path)
    p.add_argument("--device", choices=["camera"], default="camera")
    p.add_argument("--job", metavar="JOB", help="only the shots of this job (default: any)")
    how_many = p.add_mutually_exclusive_group()
    how_many.add_argument(
        "--shots", type=int, metavar="N", help="fail the next N shots (default 1)"
    )
    how_many.add_argument("--always", action="store_true", help="fail every shot until cleared")
    how_many.add_argument("--clear", action="store_true", help="no fault any more")
    p.add_argument("--message", metavar="TEXT", help="the exception's message")
    p.set_defaults(func=_lab_fault)
    p = lab_sub.add_parser(
        "restart", help="restart one program of the lab under DIR (runmanager or BLACS)"
    )
    p.add_argument("dir", type=Path)
    p.add_argument("role", choices=["blacs", "runmanager"])
    p.add_argument("--kill", action="store_true", help="SIGKILL it (a crash), not SIGTERM")
    p.set_defaults(func=_lab_restart)
    p = lab_sub.add_parser(
        "recover",
        help="have BLACS restart its device tabs in error and lift its queue's pause",
    )
    p.add_argument("--json", action="store_true", help="the plugin's answer, as it came")
    p.set_defaults(func=_lab_recover)
    p = lab_sub.add_parser("install-plugin", help="install labspool's BLACS plugin (address files)")
    p.add_argument("--labconfig", type=Path, help="add the plugin's lines to this labconfig")
    p.add_argument("--addresses", type=Path, help="the address folder (default: from --config)")
    p.set_defaults(func=_lab_install_plugin)
    p = lab_sub.add_parser(
        "status",
        help="the machine's health as the spooler last recorded it; exit 0 when operational, "
        "3 when not (or unknown)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object, nothing else")
    p.set_defaults(func=_lab_status)


def _lab_up(args: argparse.Namespace) -> int:
    from spooler.virtual.lab import lab_up

    extra = {} if args.load_time_s is None else {"load_time_s": args.load_time_s}
    config = lab_up(
        args.dir,
        backend=args.backend,
        look_ahead_jobs=args.look_ahead_jobs,
        look_ahead_shots=args.look_ahead_shots,
        **extra,
    )
    print(f"runmanager and BLACS are up; stop them with: labspool lab down {args.dir}")
    print(config)
    return 0


def _lab_down(args: argparse.Namespace) -> int:
    from spooler.virtual.lab import lab_down

    stopped = lab_down(args.dir)
    print(f"stopped {len(stopped)} process(es): {' '.join(map(str, stopped))}".rstrip(": "))
    return 0


def _lab_fault(args: argparse.Namespace) -> int:
    from spooler.virtual.camera import DEFAULT_MESSAGE, add_fault, clear_faults
    from spooler.virtual.lab import LabLayout

    layout = LabLayout(args.dir.expanduser().absolute())
    if not layout.lab.is_dir():
        raise LabspoolError(f"no virtual lab in {args.dir} (labspool lab up {args.dir})")
    path = layout.faults_file
    if args.clear:
        print(f"cleared {clear_faults(path)} fault(s) in {path}")
        return 0
    shots = None if args.always else (1 if args.shots is None else args.shots)
    try:
        add_fault(
            path,
            args.device,
            job_id=args.job,
            shots=shots,
            message=args.message or DEFAULT_MESSAGE,
        )
    except ValueError as exc:
        raise LabspoolError(str(exc)) from exc
    which = "every shot" if shots is None else f"the next {shots} shot(s)"
    of = f"of job {args.job}" if args.job else "of any job"
    print(f"the {args.device} fails {which} {of}: {args.message or DEFAULT_MESSAGE} ({path})")
    return 0


def _lab_restart(args: argparse.Namespace) -> int:
    from spooler.virtual.lab import start_role, stop_role

    stopped = stop_role(args.dir, args.role, kill=args.kill)
    how = "killed" if args.kill else "stopped"
    print(f"{how} {args.role} ({len(stopped)} process(es): {' '.join(map(str, stopped))})")
    print(f"{args.role} is up again (pid {start_role(args.dir, args.role)})")
    return 0


def _lab_recover(args: argparse.Namespace) -> int:
    """BLACS's plugin restarts the device tabs in error and lifts the queue's pause."""
    from spooler.core.errors import LabUnavailable
    from spooler.lab import make_lab
    from spooler.lab.blacs import BlacsControl

    settings = settings_of(args)
    try:
        if settings.lab.kind != "none":
            # BLACS not there says so within the hello's 5 s, not the recovery's 60 s
            BlacsControl(settings.folders.control).request("hello")
        answer = make_lab(settings).recover()
    except LabUnavailable as exc:
        print(f"labspool: cannot recover the lab: {exc}", file=sys.stderr)
        if args.json:  # (--json: stdout is JSON, whatever happened)
            print(json.dumps({"ok": False, "error": str(exc)}, indent=1))
        return 1
    _recovered(settings)
    if args.json:
        print(json.dumps(answer, indent=1, sort_keys=True))
        return 0
    for line in _recover_sentences(answer):
        print(line)
    return 1 if answer.get("still_in_error") or answer.get("queue_manager_stopped") else 0


def _recovered(settings: Settings) -> None:
    """An operator recovered BLACS: a device failing again after this is a new fault (the
    monitor counts each against the job whose shot failed: spooler.pipeline.monitor)."""
    from spooler.core.health import FAULT_SEEN_KEY
    from spooler.core.store import JobStore

    if not settings.folders.database.exists():
        return
    store = JobStore(settings.folders.database)
    try:
        with store.transaction() as tx:
            tx.set_meta(FAULT_SEEN_KEY, None)
    finally:
        store.close()


def _recover_sentences(answer: dict[str, object]) -> list[str]:
    """What a recovery did, a sentence per item."""

    def items(value: object) -> list[object]:
        return list(value) if isinstance(value, list) else []

    restarted = [str(n) for n in items(answer.get("restarted"))]
    still = [e for e in items(answer.get("still_in_error")) if isinstance(e, dict)]
    was_paused, unpaused = bool(answer.get("was_paused")), bool(answer.get("unpaused"))
    first = f"restarted {', '.join(restarted)}" if restarted else "nothing was in error"
    if unpaused:
        second = "the queue was paused and is running again"
    elif still:
        second = "the queue stays paused" if was_paused else "the queue was not paused"
    elif was_paused:
        second = "the queue was paused and was unpaused meanwhile"
    else:
        second = "the queue was not paused"
    lines = [f"{first}; {second}"]
    lines += [f"still in error: {e.get('name')}: {e.get('message')}" for e in still]
    if answer.get("queue_manager_stopped"):
        lines.append(
            "BLACS's queue manager has stopped (see BLACS's log) and cannot be started again "
            "safely: restart BLACS (on the virtual lab: labspool lab restart DIR blacs); "
            "labspool makes the shots it held again"
        )
    return lines


NOT_OPERATIONAL_EXIT = 3  # `labspool lab status`: the machine is not operational (or unknown)


def _lab_status(args: argparse.Namespace) -> int:
    """The machine's health from the tree's job store (never creates one). Exit 0 when
    operational, :data:`NOT_OPERATIONAL_EXIT` when not, or when nothing is known."""
    from spooler.core.health import Health, read_health
    from spooler.core.statusview import local_time, machine_document

    settings = settings_of(args)
    database = settings.folders.database
    now = time.time()
    health: Health | None = None
    pending = 0
    if database.exists():
        store = JobStore(database)
        try:
            with store.snapshot() as reader:
                health = read_health(reader, now)
                pending = reader.pending_jobs(settings.backend)
        finally:
            store.close()
    operational = health is not None and health.operational
    code = 0 if operational else NOT_OPERATIONAL_EXIT
    if args.json:
        if health is None:
            machine: dict[str, object] = {
                "operational": False,
                "status_msg": f"no job store yet at {database} (the spooler has not run)",
                "reasons": [],
                "since": None,
                "last_check": None,
            }
        else:
            machine = machine_document(health)
        document = {"backend_name": settings.gateway.backend_name, **machine}
        print(json.dumps({**document, "pending_jobs": pending}, indent=1))
        return code
    if health is None:
        print(f"NOT OPERATIONAL: no job store yet at {database} (the spooler has not run)")
        return code
    since = health.since
    if health.operational:
        print("operational")
    elif since is None:
        print(f"NOT OPERATIONAL: {health.status_msg}")
    else:
        print(f"NOT OPERATIONAL since {local_time(since, now)} ({_minutes(now - since)} min)")
    for reason in health.reasons:
        print(f"  {reason.component}: {reason.message} (since {local_time(reason.since, now)})")
    if health.last_check is not None:
        ago = max(0, round(now - health.last_check))
        print(f"last check: {local_time(health.last_check, now)} ({ago} s ago)")
    else:
        print("last check: never")
    print(f"pending jobs: {pending}")
    return code


def _minutes(seconds: float) -> int:
    return max(0, int(seconds // 60))


def _lab_install_plugin(args: argparse.Namespace) -> int:
    from spooler.lab.plugin import configure_labconfig, install_plugin, labconfig_lines

    if args.addresses:
        addresses, control = args.addresses, None
    else:
        folders = settings_of(args).folders
        addresses, control = folders.addresses, folders.control
    print(f"installed {install_plugin()}")
    if args.labconfig is not None:
        configure_labconfig(args.labconfig, addresses, control)
        print(f"enabled it in {args.labconfig}")
    else:
        print("add these lines to your labconfig:")
        for section, values in labconfig_lines(addresses, control).items():
            print(f"[{section}]")
            for key, value in values.items():
                print(f"{key} = {value}")
    return 0
