"""The commands on jobs themselves: ``submit`` drops one in, ``validate`` dry-runs every check
on one, ``status`` shows them, ``schema`` prints what a job may contain."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from spooler.cli.common import Subcommands, command, settings_of
from spooler.core.backends import BACKENDS, get_backend
from spooler.core.errors import JobRejected, LabspoolError
from spooler.core.fsutil import read_regular_file
from spooler.core.jobid import is_valid_job_id, parse_job_file_name
from spooler.core.states import JobState
from spooler.pipeline.render import Renderer
from spooler.pipeline.validation import JobValidator

__all__ = ["add_commands", "add_schema"]


def add_commands(sub: Subcommands) -> None:
    """``submit``, ``validate`` and ``status``."""
    p = command(
        sub, "submit", _submit, "drop a job file into the dump folder atomically; prints the job id"
    )
    p.add_argument("file", type=Path)
    p.add_argument("--id", dest="job_id", help="the job id (default: a new one)")
    p = command(
        sub, "validate", _validate, "dry run: every check and the rendering; exit 0 when valid"
    )
    p.add_argument("file", type=Path)
    p.add_argument("--id", dest="job_id", help="check this id instead of the one in the file name")
    p.add_argument(
        "--compile",
        action="store_true",
        help="also compile with the real labscript compiler (sandboxed)",
    )
    p = command(sub, "status", _status, "the jobs, their progress and estimates")
    p.add_argument("job_id", nargs="?", metavar="JOB")
    p.add_argument(
        "--json",
        action="store_true",
        help="the job's status document, or a list of every job's in the order they came",
    )
    p.add_argument(
        "--json-lines",
        action="store_true",
        help="JSON lines: each job's status document on a line of its own",
    )
    p.add_argument(
        "--state",
        dest="states",
        action="append",
        type=str.upper,
        choices=[s.value for s in JobState],
        metavar="STATE",
        help="only the jobs in this state (again for more states): "
        + ", ".join(s.value for s in JobState),
    )
    p.add_argument(
        "--last",
        type=int,
        metavar="N",
        help="only the last N jobs that came (the table: the running and queued jobs, and "
        "the last N others)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="say how far a listing of every job is on standard error (default: when the "
        "output is not a terminal but standard error is, and after a second)",
    )
    p.add_argument("--watch", action="store_true", help="a live view, redrawn until Ctrl-C")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between redraws")
    p.add_argument("--count", type=int, help="with --watch: redraw this many times, then exit")


def add_schema(sub: Subcommands) -> None:
    """``schema`` (after the queue's commands in the help)."""
    p = command(sub, "schema", _schema, "print the JSON schema of a job for a backend")
    p.add_argument("backend", nargs="?", choices=sorted(BACKENDS))


def _submit(args: argparse.Namespace) -> int:
    from spooler.core.submission import submit_job

    settings = settings_of(args)
    data = read_regular_file(args.file, settings.limits.job_file_max_bytes)
    print(submit_job(settings.folders, data, job_id=args.job_id))
    return 0


def _validate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
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


def _status(args: argparse.Namespace) -> int:
    from spooler.core import statusview

    settings = settings_of(args)
    if args.last is not None and args.last < 0:
        raise LabspoolError("status: --last must be 0 or more")
    if args.watch:
        with contextlib.suppress(KeyboardInterrupt):
            statusview.watch(settings, interval_s=args.interval, count=args.count)
        return 0
    if args.job_id:
        view = statusview.snapshot(settings, args.job_id)
        if not view.documents:
            database = settings.folders.database
            print(f"labspool: no job {args.job_id!r} in {database}", file=sys.stderr)
            return 1
        if args.json_lines:
            print(json.dumps(view.documents[0]))
        elif args.json:  # the job's document: the shape of its status file
            print(json.dumps(view.documents[0], indent=1))
        else:
            print(statusview.render_job(view.documents[0]))
        return 0
    selection = statusview.Selection(
        None if args.states is None else frozenset(JobState(s) for s in args.states), args.last
    )
    progress = None
    if args.progress or (args.progress is None and _progress_wanted()):
        progress = statusview.Progress(sys.stderr, after_s=0.0 if args.progress else 1.0)
    if args.json or args.json_lines:  # (a list: its shape stays)
        statusview.write_json(
            settings, sys.stdout, selection, lines=args.json_lines, progress=progress
        )
    else:
        statusview.write_table(settings, sys.stdout, selection, progress=progress)
    return 0


def _progress_wanted() -> bool:
    """A listing's progress by default: when its output goes elsewhere than the terminal
    the person who asked for it looks at."""
    return sys.stderr.isatty() and not sys.stdout.isatty()


def _schema(args: argparse.Namespace) -> int:
    if args.backend is None:
        settings = settings_of(args)
        name, limits = settings.backend, settings.limits
    else:
        from spooler.core.settings import Limits

        name, limits = args.backend, Limits()
    print(
        json.dumps(get_backend(name).json_schema(limits.instructions_per_experiment_max), indent=1)
    )
    return 0
