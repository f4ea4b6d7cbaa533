"""The ``labspool`` command line."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .backends import BACKENDS, get_backend
from .control import QueueControl
from .errors import ConfigError, JobRejected, LabspoolError
from .fsutil import read_regular_file
from .jobid import is_valid_job_id, parse_job_file_name
from .jobs import Jobs
from .logs import setup_logging
from .render import Renderer
from .scaffold import write_tree
from .serve import serve
from .settings import ENV_VAR, Settings, find_config, load_settings
from .store import JobStore
from .timestamps import iso_time, parse_time
from .users import LIMIT_NAMES, UnknownUser, UserError, UserRecord, Users
from .validation import JobValidator

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, LabspoolError) as exc:
        print(f"labspool: {exc}", file=sys.stderr)
        return 2


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
    p = lab_sub.add_parser("install-plugin", help="install labspool's BLACS plugin (address files)")
    p.add_argument("--labconfig", type=Path, help="add the plugin's lines to this labconfig")
    p.add_argument("--addresses", type=Path, help="the address folder (default: from --config)")
    p.set_defaults(func=_lab_install_plugin)

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
    from .daemon import Spooler

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
    from .submission import submit_job

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
        from .compilecheck import compile_experiments

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
    from .statusview import as_json, render, render_job, snapshot, watch

    settings = _settings(args)
    if args.watch:
        with contextlib.suppress(KeyboardInterrupt):
            watch(settings, interval_s=args.interval, count=args.count)
        return 0
    view = snapshot(settings, args.job_id)
    if args.json:
        print(as_json(view, single=bool(args.job_id)))
    elif args.job_id:
        print(render_job(view.documents[0]))
    else:
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
        from .settings import Limits

        name, limits = args.backend, Limits()
    print(
        json.dumps(get_backend(name).json_schema(limits.instructions_per_experiment_max), indent=1)
    )
    return 0


# -- lab -----------------------------------------------------------------------------------


def _lab_up(args: argparse.Namespace) -> int:
    from .lab.virtual import lab_up

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
    from .lab.virtual import lab_down

    stopped = lab_down(args.dir)
    print(f"stopped {len(stopped)} process(es): {' '.join(map(str, stopped))}".rstrip(": "))
    return 0


def _lab_install_plugin(args: argparse.Namespace) -> int:
    from .lab.plugin import configure_labconfig, install_plugin, labconfig_lines

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
    """A command on the gateway's users (:mod:`spooler.users`): *action* gets them (None
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
    import uvicorn

    from .gateway.app import make_app

    settings = _settings(args)
    host, port = settings.gateway.address
    if args.listen is not None:
        host, _, text = args.listen.rpartition(":")
        if not host or not text.isdigit() or not 0 < int(text) < 65536:
            raise ConfigError(f"--listen {args.listen!r}: give HOST:PORT, e.g. 127.0.0.1:8090")
        port = int(text)
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise ConfigError("--ssl-certfile and --ssl-keyfile go together")
    uvicorn.run(
        make_app(settings),
        host=host,
        port=port,
        log_level="info",
        access_log=False,  # its lines carry the query string, and so the users' tokens
        timeout_keep_alive=5,  # slow or idle clients do not hold connections open
        limit_concurrency=1000,  # beyond that, 503 at once rather than a growing backlog
        server_header=False,
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


if __name__ == "__main__":
    sys.exit(main())
