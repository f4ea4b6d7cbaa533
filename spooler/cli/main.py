"""The ``labspool`` command line."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from spooler import __version__
from spooler.core.backends import BACKENDS, get_backend
from spooler.core.errors import ConfigError, JobRejected, LabspoolError
from spooler.core.fsutil import read_regular_file
from spooler.core.jobid import is_valid_job_id, parse_job_file_name
from spooler.core.jobs import Jobs
from spooler.core.logs import setup_logging
from spooler.core.scaffold import write_tree
from spooler.core.serve import serve
from spooler.core.settings import ENV_VAR, Settings, find_config, load_settings
from spooler.core.store import JobStore
from spooler.core.timestamps import iso_time, parse_time
from spooler.gateway.users import LIMIT_NAMES, UnknownUser, UserError, UserRecord, Users
from spooler.pipeline.control import QueueControl
from spooler.pipeline.render import Renderer
from spooler.pipeline.validation import JobValidator

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, LabspoolError) as exc:
        print(f"labspool: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`labspool status | head`): end quietly, as a shell tool does;
        # what Python would still flush at exit goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labspool", description="Run remote quantum-simulator jobs on a labscript machine."
    )
    parser.add_argument("--version", action="version", version=f"labspool {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help=f"the configuration file (default: ${ENV_VAR})"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, func: Callable[[argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(func=func)
        return p

    p = command("init", _init, "write a working configuration and folder tree under DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("--backend", default="singlequdit", choices=sorted(BACKENDS))
    p = command("paths", _paths, "show where to drop jobs and where status and result files appear")
    p.add_argument("--json", action="store_true")
    p = command(
        "run", _run, "run the spooler daemon (SIGTERM finishes the current step, then exits)"
    )
    p.add_argument(
        "--once", action="store_true", help="admit what is waiting, try the lab once, exit"
    )
    p = command(
        "submit", _submit, "drop a job file into the dump folder atomically; prints the job id"
    )
    p.add_argument("file", type=Path)
    p.add_argument("--id", dest="job_id", help="the job id (default: a new one)")
    p = command("validate", _validate, "dry run: every check and the rendering; exit 0 when valid")
    p.add_argument("file", type=Path)
    p.add_argument("--id", dest="job_id", help="check this id instead of the one in the file name")
    p.add_argument(
        "--compile",
        action="store_true",
        help="also compile with the real labscript compiler (sandboxed)",
    )
    p = command("status", _status, "the jobs, their progress and estimates")
    p.add_argument("job_id", nargs="?", metavar="JOB")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true", help="a live view, redrawn until Ctrl-C")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between redraws")
    p.add_argument("--count", type=int, help="with --watch: redraw this many times, then exit")
    p = command("cancel", _queue_command(_cancel), "cancel a queued or running job")
    p.add_argument("job_id", metavar="JOB")
    p = command(
        "abort", _queue_command(_abort), "stop the running job now (aborts its shot) and pause"
    )
    p.add_argument("job_id", nargs="?", metavar="JOB", help="default: every running job")
    p = command(
        "requeue", _queue_command(_requeue), "run an ERROR or CANCELLED job again (new attempt)"
    )
    p.add_argument("job_id", metavar="JOB")
    p.add_argument("--front", action="store_true", help="at the front of the queue")
    p = command("move", _queue_command(_move), "change a queued job's place in the queue")
    p.add_argument("job_id", metavar="JOB")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--front", action="store_true")
    where.add_argument("--back", action="store_true")
    where.add_argument("--before", metavar="OTHER")
    p = command(
        "pause",
        _queue_command(_pause, create_store=True),
        "take no new job until resume (survives restarts)",
    )
    p.add_argument("--at", metavar="TIME", help="scheduled stop: 18:00, +2h, or ISO 8601")
    p.add_argument("--reason", default="", help="said in the queued jobs' detail")
    command(
        "resume", _queue_command(_resume, create_store=True), "lift a pause or a scheduled stop"
    )
    p = command("schema", _schema, "print the JSON schema of a job for a backend")
    p.add_argument("backend", nargs="?", choices=sorted(BACKENDS))

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

    p = sub.add_parser(
        "web", help="the HTTP gateway of the qiskit-cold-atom client (API v2), in the foreground"
    )
    p.add_argument(
        "--listen", metavar="HOST:PORT", help="where to listen (default: gateway.listen)"
    )
    p.add_argument("--ssl-certfile", type=Path, help="TLS: the certificate (PEM), with its key")
    p.add_argument("--ssl-keyfile", type=Path, help="TLS: the certificate's private key (PEM)")
    p.set_defaults(func=_web)

    user = sub.add_parser("user", help="the users of the HTTP gateway and their tokens")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="USER_COMMAND")
    p = user_sub.add_parser(
        "add",
        help="make a user with a new token; prints the token once, keeps only its hash",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--operator", action="store_true", help="the user is an operator")
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace an existing user of that name (a new token; the old one stops working; "
        "operator flag and limits as given here)",
    )
    p.add_argument(
        "--queued-jobs-max", type=int, metavar="N", help="default: gateway.queued_jobs_max"
    )
    p.add_argument(
        "--requests-per-s", type=float, metavar="R", help="default: gateway.requests_per_s"
    )
    p.add_argument("--job-bytes-max", type=int, metavar="B", help="default: gateway.job_bytes_max")
    p.set_defaults(func=_user_command(_user_add, create_store=True))
    p = user_sub.add_parser("list", help="the users: operator or not, created, last used, limits")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_user_command(_user_list))
    p = user_sub.add_parser("remove", help="remove a user: their token stops working at once")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_user_command(_user_remove))

    notify = sub.add_parser("notify", help="the lab's notifications (notify.urls)")
    notify_sub = notify.add_subparsers(
        dest="notify_command", required=True, metavar="NOTIFY_COMMAND"
    )
    p = notify_sub.add_parser(
        "test", help="send one test message to every notify URL now; exit 0 when delivered"
    )
    p.set_defaults(func=_notify_test)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(find_config(args.config))


# -- init / paths -----------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    print(write_tree(args.dir, args.backend))
    return 0


def _paths(args: argparse.Namespace) -> int:
    settings = _settings(args)
    paths = {name: str(path) for name, path in settings.folders.as_dict().items()}
    paths["config"] = str(settings.path)
    if args.json:
        print(json.dumps(paths, indent=1))
    else:
        width = max(map(len, paths))
        for name, path in paths.items():
            print(f"{name:<{width}}  {path}")
    return 0


# -- run ----------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from spooler.pipeline.daemon import Spooler

    settings = _settings(args)
    setup_logging(settings.log_level, journal="JOURNAL_STREAM" in os.environ)
    spooler = Spooler(settings)
    try:
        if args.once:
            report = spooler.run_once()
            print(f"admitted {report.admitted} job(s), engaged {report.engaged}")
            return 0
        serve(spooler)
        return 0
    finally:
        spooler.close()


# -- submit / validate --------------------------------------------------------------------


def _submit(args: argparse.Namespace) -> int:
    from spooler.core.submission import submit_job

    settings = _settings(args)
    data = read_regular_file(args.file, settings.limits.job_file_max_bytes)
    print(submit_job(settings.folders, data, job_id=args.job_id))
    return 0


def _validate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    backend = get_backend(settings.backend)
    try:
        if args.job_id is not None:
            if not is_valid_job_id(args.job_id):
                raise JobRejected(f"job id: {args.job_id!r} is not a valid job id")
        else:
            parse_job_file_name(args.file.name)
        job = JobValidator(backend, settings.limits).validate_bytes(
            read_regular_file(args.file, settings.limits.job_file_max_bytes)
        )
        renderer = Renderer(backend, settings.apparatus.header, settings.apparatus.object)
        sources = {e.name: renderer.render(e) for e in job.experiments}
    except JobRejected as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"invalid: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    if args.compile:
        from spooler.lab.compilecheck import compile_experiments

        failures = compile_experiments(sources, shots=job.experiments[0].shots)
        if failures:
            for name, message in failures.items():
                print(f"invalid: {name} does not compile:\n{message}", file=sys.stderr)
            return 1
    compiled = " and compiled" if args.compile else ""
    print(
        f"valid: {len(job.experiments)} experiment(s), {job.total_shots} shot(s) on "
        f"{backend.name}; rendered{compiled}"
    )
    return 0


# -- status / schema ----------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from spooler.core.statusview import as_json, machine_line, render, render_job, snapshot, watch

    settings = _settings(args)
    if args.watch:
        with contextlib.suppress(KeyboardInterrupt):
            watch(settings, interval_s=args.interval, count=args.count)
        return 0
    view = snapshot(settings, args.job_id)
    if args.job_id and not view.documents:
        print(f"labspool: no job {args.job_id!r} in {settings.folders.database}", file=sys.stderr)
        return 1
    if args.json:  # a list (or the job's document): its shape stays; see `lab status --json`
        print(as_json(view, single=bool(args.job_id)))
    elif args.job_id:
        print(render_job(view.documents[0]))
    else:
        print(machine_line(view.health, view.now))
        print(render(view))
    return 0


def _queue_command(
    action: Callable[[QueueControl, argparse.Namespace], str], *, create_store: bool = False
) -> Callable[[argparse.Namespace], int]:
    """A command of queue control: *action* gets the operator's :class:`QueueControl` and
    returns what to print.

    With *create_store* a missing job store is created (and the tree's folders with it): an
    operator pauses a machine before its spooler first starts, and the spooler finds the
    pause in the store. The commands that act on jobs refuse instead, since there is none."""

    def run(args: argparse.Namespace) -> int:
        settings = _settings(args)
        if create_store:
            settings.folders.create()
        elif not settings.folders.database.exists():
            raise LabspoolError(f"no job store at {settings.folders.database}: no job came in yet")
        jobs = Jobs(settings.folders)
        try:
            print(action(QueueControl(jobs, f"{getpass.getuser()}@{socket.gethostname()}"), args))
        finally:
            jobs.close()
        return 0

    return run


def _cancel(control: QueueControl, args: argparse.Namespace) -> str:
    record = control.cancel(args.job_id)
    if record.lab_action:
        return f"{record.job_id}: {record.state}; the spooler withdraws its remaining shots"
    return f"{record.job_id}: {record.state}"


def _abort(control: QueueControl, args: argparse.Namespace) -> str:
    lines = [
        f"{r.job_id}: {r.state} (aborting its shots on the lab)" for r in control.abort(args.job_id)
    ]
    return "\n".join([*lines, "the spooler is paused; `labspool resume` continues with the queue"])


def _requeue(control: QueueControl, args: argparse.Namespace) -> str:
    record = control.requeue(args.job_id, front=args.front)
    position = control.jobs.read.queue_positions([record.job_id])[record.job_id]
    return f"{record.job_id}: QUEUED as attempt {record.attempt}, position {position}"


def _move(control: QueueControl, args: argparse.Namespace) -> str:
    position = control.move(args.job_id, front=args.front, back=args.back, before=args.before)
    return f"{args.job_id}: position {position}"


def _pause(control: QueueControl, args: argparse.Namespace) -> str:
    try:
        at = None if args.at is None else parse_time(args.at, now=time.time())
    except ValueError as exc:
        raise LabspoolError(f"pause --at: {exc}") from exc
    return f"spooler {control.pause(reason=args.reason, at=at).describe()}"


def _resume(control: QueueControl, args: argparse.Namespace) -> str:
    return "resumed" if control.resume() is not None else "the spooler was not paused"


def _schema(args: argparse.Namespace) -> int:
    if args.backend is None:
        settings = _settings(args)
        name, limits = settings.backend, settings.limits
    else:
        from spooler.core.settings import Limits

        name, limits = args.backend, Limits()
    print(
        json.dumps(get_backend(name).json_schema(limits.instructions_per_experiment_max), indent=1)
    )
    return 0


# -- lab -----------------------------------------------------------------------------------


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

    settings = _settings(args)
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

    settings = _settings(args)
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
        folders = _settings(args).folders
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


# -- user ----------------------------------------------------------------------------------


def _user_command(
    action: Callable[[Users | None, argparse.Namespace], str], *, create_store: bool = False
) -> Callable[[argparse.Namespace], int]:
    """A command on the gateway's users (:mod:`spooler.gateway.users`): *action* gets them (None
    when there is no job store yet and *create_store* is false) and returns what to print.
    A refusal (an unknown or existing user, a bad name) exits 1."""

    def run(args: argparse.Namespace) -> int:
        settings = _settings(args)
        if create_store:
            settings.folders.create()
        database = settings.folders.database
        # without create_store, a missing store is not made (listing creates nothing)
        store = JobStore(database) if create_store or database.exists() else None
        try:
            print(action(None if store is None else Users(store, settings), args))
        except UserError as exc:
            print(f"labspool: {exc}", file=sys.stderr)
            return 1
        finally:
            if store is not None:
                store.close()
        return 0

    return run


def _web(args: argparse.Namespace) -> int:
    from spooler.gateway.server import serve

    settings = _settings(args)
    host, port = settings.gateway.address
    if args.listen is not None:
        host, _, text = args.listen.rpartition(":")
        if not host or not text.isdigit() or not 0 < int(text) < 65536:
            raise ConfigError(f"--listen {args.listen!r}: give HOST:PORT, e.g. 127.0.0.1:8090")
        port = int(text)
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise ConfigError("--ssl-certfile and --ssl-keyfile go together")
    serve(
        settings,
        host,
        port,
        ssl_certfile=None if args.ssl_certfile is None else str(args.ssl_certfile),
        ssl_keyfile=None if args.ssl_keyfile is None else str(args.ssl_keyfile),
    )
    return 0


def _user_add(users: Users | None, args: argparse.Namespace) -> str:
    assert users is not None
    user, token = users.add(
        args.name,
        operator=args.operator,
        replace=args.replace,
        queued_jobs_max=args.queued_jobs_max,
        job_bytes_max=args.job_bytes_max,
        requests_per_s=args.requests_per_s,
    )
    role = "an operator" if user.operator else "a user"
    done = "replaced (the old token no longer works)" if args.replace else "added"
    return "\n".join(
        [
            f"{user.name}: {done}, {role}; {user.queued_jobs_max} queued jobs, "
            f"{user.job_bytes_max} bytes a job, {user.requests_per_s:g} requests/s at most",
            "the token, shown only this once (labspool keeps only its hash):",
            token,
        ]
    )


def _user_list(users: Users | None, args: argparse.Namespace) -> str:
    records = [] if users is None else users.records()
    if args.json:
        return json.dumps(
            [
                {
                    "name": r.user.name,
                    "operator": r.user.operator,
                    "created_at": iso_time(r.created_at),
                    "last_used_at": iso_time(r.last_used_at),
                    "queued_jobs_max": r.user.queued_jobs_max,
                    "job_bytes_max": r.user.job_bytes_max,
                    "requests_per_s": r.user.requests_per_s,
                    "own_limits": dict(r.own_limits),
                }
                for r in records
            ],
            indent=1,
        )
    if not records:
        return "no users (`labspool user add NAME` makes one)"

    def limit(record: UserRecord, name: str) -> str:
        value = getattr(record.user, name)
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{shown}*" if name in record.own_limits else shown

    header = ("NAME", "OPERATOR", "CREATED", "LAST USED", *(n.upper() for n in LIMIT_NAMES))
    rows = [
        (
            r.user.name,
            "yes" if r.user.operator else "no",
            iso_time(r.created_at) or "",
            iso_time(r.last_used_at) or "never",
            *(limit(r, n) for n in LIMIT_NAMES),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    if any(r.own_limits for r in records):
        lines.append("* the user's own limit (the others: the gateway section's)")
    return "\n".join(lines)


def _user_remove(users: Users | None, args: argparse.Namespace) -> str:
    if users is None:
        raise UnknownUser(f"there is no user {args.name!r}: there is no job store yet")
    users.remove(args.name)
    return f"{args.name}: removed; their token no longer works"


# -- notify --------------------------------------------------------------------------------


def _notify_test(args: argparse.Namespace) -> int:
    from spooler.pipeline.notifications import send_test

    problems: list[str] = []
    if send_test(_settings(args), problems=problems):
        print("delivered")
        return 0
    print(f"not delivered: {'; '.join(problems)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
