"""Chaos on the virtual lab: both daemons SIGKILLed 100 times at random while jobs flow and an
operator cancels, requeues, pauses and resumes; afterwards nothing is lost or done twice.

Jobs (1-3 experiments of 2-10 shots) are submitted before and during the storm. Each round
picks a daemon at random, usually waits until it holds its lock (an event: its pid in the
lock file), then for a random moment (a short delay, or the next change it makes on disk),
kills it with SIGKILL and starts it again at once, as systemd's ``Restart=on-failure`` would.
Between kills, operator commands come at random. After the storm both daemons run until
every job is final and nothing is left to process; then the files and the job store are
checked against each other (see :func:`audit`).

The seed is printed; ``LABSPOOL_CHAOS_SEED=N`` runs with seed N again (the moments are real
time, so a rerun takes the same decisions, not the same interleaving), and
``LABSPOOL_CHAOS_KILLS`` changes the number of kills (100).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
import random
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from tests.labtools import VirtualLab, cli, needs_suite, virtual_lab, wait_until
from tests.virtual.test_virtual_lab import experiment

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.long, needs_suite]

KILLS = int(os.environ.get("LABSPOOL_CHAOS_KILLS", "100"))
FINAL = ("DONE", "ERROR", "CANCELLED")
DRAIN_TIMEOUT_S = 420.0  # after the storm, for every job to end and every shot to be filed
QUIET_S = 5.0  # ... and then nothing may change for this long (a cancelled job's last shot)


# -- helpers ----------------------------------------------------------------------------------


class _Changed(FileSystemEventHandler):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.event.set()


@contextmanager
def watching(folder: Path) -> Iterator[threading.Event]:
    """An event set whenever something changes in *folder* (the caller clears it)."""
    changed = threading.Event()
    observer = Observer()
    observer.schedule(_Changed(changed), str(folder), recursive=True)
    observer.start()
    try:
        yield changed
    finally:
        observer.stop()
        observer.join()


def wait_for_change(folder: Path, timeout_s: float) -> bool:
    """Wait until something changes in *folder* (True) or *timeout_s* passes (False)."""
    with watching(folder) as changed:
        return changed.wait(timeout_s)


def read_db(lab: VirtualLab, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{lab.settings.folders.database}?mode=ro", uri=True, timeout=30)
    try:
        return list(db.execute(sql, args))
    finally:
        db.close()


def job_states(lab: VirtualLab) -> dict[str, tuple[str, int, str | None]]:
    """job_id: (state, attempt, lab_action)."""
    if not lab.settings.folders.database.exists():
        return {}
    return {
        j: (s, a, action)
        for j, s, a, action in read_db(lab, "SELECT job_id, state, attempt, lab_action FROM jobs")
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Plan:
    """What the test submits: job_id -> [(experiment, shots)] and the job document."""

    shots: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def make(cls, rng: random.Random, count: int) -> Plan:
        plan = cls()
        for n in range(count):
            job_id = f"chaos{n:02d}"
            document: dict[str, Any] = {}
            for e in range(rng.randint(1, 3)):
                shots = rng.randint(2, 10)
                document[f"experiment_{e}"] = experiment(
                    rng.uniform(0.0, math.pi), shots, seed=rng.randrange(1000)
                )
                plan.shots.setdefault(job_id, []).append((f"experiment_{e}", shots))
            plan.documents[job_id] = document
        return plan


@dataclass
class Chaos:
    """The storm's record."""

    lab: VirtualLab
    rng: random.Random
    operator: str
    kills: Counter[str] = field(default_factory=Counter)
    moments: Counter[str] = field(default_factory=Counter)
    died_alone: list[str] = field(default_factory=list)
    killed: dict[int, str] = field(default_factory=dict)  # pid: which daemon, when
    started: float = field(default_factory=time.monotonic)
    commands: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # commands the state no longer allowed
    cancelled: set[tuple[str, int]] = field(default_factory=set)  # (job, attempt)
    requeued: set[str] = field(default_factory=set)
    paused: bool = False

    # -- the daemons ----------------------------------------------------------------------

    def process(self, daemon: str) -> subprocess.Popen[bytes]:
        process = self.lab.spooler if daemon == "spooler" else self.lab.result
        assert process is not None
        return process

    def start(self, daemon: str) -> None:
        if daemon == "spooler":
            self.lab.start_spooler()
        else:
            self.lab.start_result_daemon(wait=False)

    def holds_lock(self, daemon: str) -> bool:
        process = self.process(daemon)
        lock = self.lab.settings.folders.state / f"{daemon}.lock"
        try:
            return lock.read_text().strip() == str(process.pid)
        except FileNotFoundError:
            return False

    def wait_for_lock(self, daemon: str) -> None:
        process = self.process(daemon)
        wait_until(
            self.lab.settings.folders.state,
            lambda: self.holds_lock(daemon) or process.poll() is not None,
            90,
            f"the {daemon} to hold its lock",
        )

    def check_alive(self, daemon: str, when: str) -> None:
        """A daemon that exited by itself is noted (a failure) and started again."""
        process = self.process(daemon)
        code = process.poll()
        if code is not None:
            self.died_alone.append(f"{daemon} pid {process.pid} exited {code} ({when})")
            print(f"chaos: the {daemon} (pid {process.pid}) exited by itself with {code}")
            self.start(daemon)

    def kill(self, daemon: str) -> None:
        self.check_alive(daemon, "before a kill")
        process = self.process(daemon)
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.kills[daemon] += 1
        at = time.monotonic() - self.started
        self.killed[process.pid] = f"the {daemon} killed at {at:.1f} s"
        self.start(daemon)  # at once, as Restart=on-failure does

    def wait_for_a_moment(self, daemon: str) -> None:
        """A random moment in the daemon's life: mostly once it holds its lock, after a short
        random delay or at the next change it makes on disk; sometimes during start-up."""
        folders = self.lab.settings.folders
        if self.rng.random() < 0.8:
            self.wait_for_lock(daemon)
            kind = self.rng.choice(("soon", "later", "event"))
        else:
            kind = "start-up"
        self.moments[kind] += 1
        if kind == "start-up":
            time.sleep(self.rng.uniform(0.0, 1.5))
        elif kind == "soon":
            time.sleep(self.rng.uniform(0.02, 0.6))
        elif kind == "later":
            time.sleep(self.rng.uniform(0.6, 3.0))
        else:
            # The result daemon: its next claim or filing of a shot; the spooler: the next
            # status file written (claims, admissions, submissions, notes).
            folder = folders.processed if daemon == "result" else folders.status
            if self.rng.random() < 0.5 and daemon == "result":
                folder = folders.result_claimed
            wait_for_change(folder, 5.0)
            time.sleep(self.rng.uniform(0.0, 0.05))

    # -- the operator ---------------------------------------------------------------------

    def command(self, *argv: str, allowed: tuple[str, ...] = ()) -> bool:
        """Run a labspool command; a refusal the state explains (*allowed*) is noted."""
        result = cli("--config", str(self.lab.config), *argv)
        self.commands.append(" ".join(argv))
        if result.returncode == 0:
            return True
        assert any(a in result.stderr for a in allowed), (
            f"labspool {' '.join(argv)} failed unexpectedly: {result.stderr}"
        )
        self.refused.append(f"{' '.join(argv)}: {result.stderr.strip().splitlines()[-1]}")
        return False

    def operate(self, plan: Plan) -> None:
        states = {j: s for j, s in job_states(self.lab).items() if j in plan.shots}
        live = sorted(j for j, (state, _, _) in states.items() if state in ("QUEUED", "RUNNING"))
        ended = sorted(j for j, (state, _, _) in states.items() if state in ("ERROR", "CANCELLED"))
        # Each job is cancelled at most twice, so that the queue still drains.
        cancels = Counter(j for j, _ in self.cancelled)
        live = [j for j in live if cancels[j] < 2]
        choices = ["pause"] if not self.paused else ["resume"] * 3
        choices += ["cancel"] * bool(live) + ["requeue"] * 2 * bool(ended)
        what = self.rng.choice(choices)
        if what == "cancel":
            job_id = self.rng.choice(live)
            attempt = states[job_id][1]
            if self.command("cancel", job_id, allowed=("there is nothing to cancel",)):
                self.cancelled.add((job_id, attempt))
        elif what == "requeue":
            job_id = self.rng.choice(ended)
            if self.command(
                "requeue",
                job_id,
                *(["--front"] if self.rng.random() < 0.3 else []),
                allowed=("has not yet withdrawn", "only ERROR or CANCELLED jobs are requeued"),
            ):
                self.requeued.add(job_id)
        elif what == "pause":
            self.command("pause", "--reason", "chaos")
            self.paused = True
        else:
            self.command("resume")
            self.paused = False


# -- the audit --------------------------------------------------------------------------------


@dataclass
class AddressRecord:
    where: str  # the file, relative to the tree
    job_id: str
    attempt: int
    experiment: str
    shot_index: int
    shot: str


def _attempt_of(shot: str) -> int:
    parent = Path(shot).parent.parent.name
    return int(parent.split("-", 1)[1]) if parent.startswith("attempt-") else 1


def address_records(lab: VirtualLab) -> list[AddressRecord]:
    """Every address file BLACS's plugin wrote, wherever it is now: processed/, the
    quarantine folder (moved there with a reason file), or still waiting."""
    folders = lab.settings.folders
    root = lab.root
    found: list[tuple[Path, str]] = []
    found += [(p, str(p.relative_to(root))) for p in sorted(folders.processed.iterdir())]
    found += [(p, str(p.relative_to(root))) for p in sorted(folders.addresses.glob("*.json"))]
    found += [(p, str(p.relative_to(root))) for p in sorted(folders.result_claimed.iterdir())]
    if folders.quarantine.is_dir():
        for reason_file in sorted(folders.quarantine.glob("*.reason.json")):
            reason = json.loads(reason_file.read_text())
            for source, target in reason["moved"].items():
                source_parent = Path(source).parent
                if source_parent in (folders.addresses, folders.result_claimed):
                    found.append((folders.quarantine / target, f"quarantine/{target}"))
    records = []
    for path, where in found:
        if path.name.startswith("."):
            continue
        data = json.loads(path.read_text())
        attempt = data.get("attempt")
        records.append(
            AddressRecord(
                where,
                data["job_id"],
                int(attempt) if attempt is not None else _attempt_of(data["shot"]),
                data["experiment"],
                int(data["shot_index"]),
                data["shot"],
            )
        )
    return records


def audit(lab: VirtualLab, plan: Plan, chaos: Chaos) -> tuple[dict[str, Any], list[str], list[str]]:
    """Figures, problems (failures) and remarks (reported, not failures).

    * nothing lost: every address file the plugin wrote (in processed/ or the quarantine
      folder) is one shot of the ledger, archived at sds/<job>/<experiment>/ with the
      ledger's SHA-256, or quarantined with its reason file;
    * nothing twice: one address file per (job, attempt, experiment, shot index), one
      archived ledger row per shot, no file name twice in a job's folder on the store, no
      file on the store the ledger has not archived;
    * nothing left over: no shot that ran still in shots/, none of a DONE job's attempt;
    * every job final and explained by its transitions (a chain from INITIALIZING to its
      state; CANCELLED only by the test, naming the operator; later attempts only by the
      test's requeues; ERROR with an error_message; DONE with every expected shot archived
      and its result file), its status file saying the same; a job the test never touched
      that is not DONE is a remark, with its error_message;
    * no temporary file (``.*.tmp``) anywhere in the tree, no work copy (``.*.work``) on the
      store, nothing in state/result-work, state/result-claimed or addresses/."""
    folders = lab.settings.folders
    problems: list[str] = []
    remarks: list[str] = []

    ledger = read_db(
        lab,
        "SELECT address, job_id, attempt, experiment, shot_index, local_path, state, sds_path, "
        "sha256, error FROM shots",
    )
    by_local: dict[str, list[tuple[Any, ...]]] = {}
    for row in ledger:
        by_local.setdefault(row[5], []).append(row)

    # Nothing lost: every address file's shot is once on the store (checksum as recorded) or
    # quarantined.
    records = address_records(lab)
    lost: list[str] = []
    archived_shots = 0
    for record in records:
        if record.where.endswith(".missing"):
            lost.append(f"{record.where}: the daemon found neither the shot nor its archive")
            continue
        rows = by_local.get(record.shot, [])
        if len(rows) != 1:
            lost.append(f"{record.where}: {len(rows)} ledger rows for {record.shot}")
            continue
        (row,) = rows
        state, sds_path, recorded_sha = row[6], row[7], row[8]
        if state == "archived":
            stored = Path(sds_path)
            expected_place = (
                folders.sds / record.job_id / record.experiment / Path(record.shot).name
            )
            if stored != expected_place:
                lost.append(f"{record.where}: archived at {stored}, not {expected_place}")
            elif not stored.is_file():
                lost.append(f"{record.where}: {stored} is not on the store")
            elif sha256(stored) != recorded_sha:
                lost.append(f"{record.where}: {stored} differs from the ledger's checksum")
            else:
                archived_shots += 1
        elif state == "quarantined":
            if not (sds_path and Path(sds_path).is_file()):
                lost.append(f"{record.where}: quarantined without a reason file ({sds_path})")
        else:
            lost.append(f"{record.where}: its ledger row is {state!r}")
    problems += [f"lost: {x}" for x in lost]

    # Nothing twice: one address per shot (run once), one archived row per shot, one file of
    # a name per job on the store.
    duplicated: list[str] = []
    runs = Counter((r.job_id, r.attempt, r.experiment, r.shot_index) for r in records)
    duplicated += [f"run {n} times: {key}" for key, n in runs.items() if n > 1]
    archived_rows = Counter(
        (row[1], row[2], row[3], row[4]) for row in ledger if row[6] == "archived"
    )
    duplicated += [f"archived {n} times: {key}" for key, n in archived_rows.items() if n > 1]
    rows_per_shot = Counter(row[5] for row in ledger)
    duplicated += [f"{n} ledger rows for {p}" for p, n in rows_per_shot.items() if n > 1]
    recorded_on_store = {row[7] for row in ledger if row[6] == "archived"}
    for job_folder in sorted(p for p in folders.sds.iterdir() if p.is_dir()):
        names = Counter(p.name for p in job_folder.rglob("*.h5"))
        duplicated += [f"{job_folder.name}: {n} files named {x}" for x, n in names.items() if n > 1]
        for stored in job_folder.rglob("*.h5"):
            if str(stored) not in recorded_on_store:
                problems.append(f"on the store but not archived in the ledger: {stored}")
    problems += [f"duplicated: {x}" for x in duplicated]

    # Left over: a shot that ran and is still in shots/, or any shot of a DONE job's attempt.
    left_over: dict[str, str] = {}  # a shot file: why it should not be there
    for record in records:
        if Path(record.shot).exists():
            left_over[record.shot] = f"it ran ({record.where}) and is not archived"
    states = {
        j: (s, a, e, action)
        for j, s, a, e, action in read_db(
            lab, "SELECT job_id, state, attempt, error_message, lab_action FROM jobs"
        )
    }
    for job_id, (state, attempt, _, _) in states.items():
        if state != "DONE":
            continue
        for name, _ in plan.shots.get(job_id, []):
            folder = folders.shot_folder(job_id, attempt, name)
            left_over.update((str(p), f"a shot of DONE {job_id}") for p in folder.glob("*.h5"))
    problems += [f"left over: {p}: {why}" for p, why in sorted(left_over.items())]

    # Every job final, and its history explains its state.
    unknown = sorted(set(states) - set(plan.shots))
    if unknown:
        problems.append(f"jobs the test did not submit: {unknown}")
    touched = {j for j, _ in chaos.cancelled} | chaos.requeued
    untouched_not_done: list[str] = []
    for job_id, shots in plan.shots.items():
        if job_id not in states:
            problems.append(f"{job_id}: not in the job store")
            continue
        state, attempt, error_message, lab_action = states[job_id]
        history = read_db(
            lab,
            "SELECT attempt, from_state, to_state, note FROM transitions WHERE job_id = ? "
            "ORDER BY rowid",
            (job_id,),
        )
        tag = f"{job_id} ({state}, attempt {attempt})"
        if state not in FINAL:
            problems.append(f"{tag}: not final")
        if lab_action is not None:
            problems.append(f"{tag}: lab action {lab_action!r} still pending")
        previous = None
        for h_attempt, h_from, h_to, _ in history:
            if h_from != previous:
                problems.append(f"{tag}: history jumps from {previous} to {h_from}->{h_to}")
            previous = h_to
            if h_attempt > attempt:
                problems.append(f"{tag}: a transition of attempt {h_attempt}")
        if not history or history[-1][2] != state or history[-1][0] != attempt:
            problems.append(f"{tag}: its last transition is {history[-1:]}")
        for h_attempt, _, h_to, note in history:
            if h_to == "CANCELLED":
                if (job_id, h_attempt) not in chaos.cancelled:
                    problems.append(f"{tag}: attempt {h_attempt} CANCELLED, not by the test")
                if f"by {chaos.operator}" not in (note or ""):
                    problems.append(f"{tag}: CANCELLED with a note not naming the operator: {note}")
            if h_to == "QUEUED" and h_attempt > 1 and job_id not in chaos.requeued:
                problems.append(f"{tag}: requeued as attempt {h_attempt}, not by the test")
        if state == "ERROR" and not error_message:
            problems.append(f"{tag}: ERROR without an error_message")
        if state == "DONE":
            expected = dict(shots)
            experiments = read_db(
                lab,
                "SELECT name, shots_expected, engaged_at FROM experiments "
                "WHERE job_id = ? AND attempt = ?",
                (job_id, attempt),
            )
            if {n: s for n, s, _ in experiments} != expected:
                problems.append(f"{tag}: experiments {experiments}, expected {expected}")
            for name, count in expected.items():
                archived = archived_rows_of(ledger, job_id, attempt, name)
                if archived != list(range(count)):
                    problems.append(f"{tag}: {name} archived shots {archived} of {count}")
            result_file = folders.results / f"{job_id}.json"
            if not result_file.is_file():
                problems.append(f"{tag}: no result file")
            else:
                result = json.loads(result_file.read_text())
                lengths = [len(r["data"]["memory"]) for r in result["results"]]
                if lengths != [count for _, count in shots]:
                    problems.append(f"{tag}: result memory lengths {lengths}")
        if job_id not in touched and state != "DONE":
            untouched_not_done.append(f"{job_id} {state}: {error_message}")
        # The status file says what the store says.
        status = lab.status(job_id)
        if (status.get("status"), status.get("attempt")) != (state, attempt) or len(
            status.get("history", [])
        ) != len(history):
            problems.append(
                f"{tag}: the status file says {status.get('status')} attempt "
                f"{status.get('attempt')} with {len(status.get('history', []))} transitions, "
                f"the store {len(history)}"
            )
    remarks += [f"never touched by the test, not DONE: {x}" for x in untouched_not_done]

    # Nothing left: no temporary file anywhere, nothing half done.
    temporaries = sorted(str(p.relative_to(lab.root)) for p in lab.root.rglob(".*.tmp"))
    for name in temporaries:
        # .<name>.<pid>.<thread>.tmp (labspool's write_atomic and Batch), .<name>.<pid>.tmp
        fields = Path(name).name.split(".")
        pids = [int(f) for f in fields if f.isdigit() and int(f) in chaos.killed]
        whose = f" (pid {pids[0]}: {chaos.killed[pids[0]]})" if pids else ""
        problems.append(f"temporary file left: {name}{whose}")
    # the analysis tasks' work copies beside the archived shots (.<shot>.<random>.work)
    for copy in sorted(folders.sds.rglob(".*.work")):
        problems.append(f"work copy left on the store: {copy.relative_to(lab.root)}")
    for folder in (folders.state / "result-work", folders.result_claimed, folders.addresses):
        leftovers = sorted(p.name for p in folder.iterdir())
        if folder == folders.addresses:
            leftovers = [n for n in leftovers if n.endswith(".json")]
        if leftovers:
            problems.append(f"{folder.relative_to(lab.root)} is not empty: {leftovers}")

    ledger_states = Counter(row[6] for row in ledger)
    final_states = Counter(s for s, _, _, _ in states.values())
    figures: dict[str, Any] = {
        "seed": None,
        "kills_spooler": chaos.kills["spooler"],
        "kills_result": chaos.kills["result"],
        "moments": dict(chaos.moments),
        "died_alone": len(chaos.died_alone),
        "jobs": dict(sorted(final_states.items())),
        "jobs_total": len(states),
        "attempts_total": sum(a for _, a, _, _ in states.values()),
        "operator_commands": len(chaos.commands),
        "commands_refused": len(chaos.refused),
        "cancels": len(chaos.cancelled),
        "requeues": len(chaos.requeued),
        "shots_made": len(records),
        "shots_archived": ledger_states.get("archived", 0),
        "shots_archived_verified": archived_shots,
        "shots_quarantined": ledger_states.get("quarantined", 0),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "left_over": len(left_over),
        "temporaries": len(temporaries),
        "untouched_not_done": untouched_not_done,
        "errors": {j: e for j, (s, _, e, _) in states.items() if s == "ERROR"},
        "quarantine_reasons": dict(
            Counter((row[9] or "").split(" (")[0] for row in ledger if row[6] == "quarantined")
        ),
    }
    return figures, problems, remarks


def archived_rows_of(
    ledger: list[tuple[Any, ...]], job_id: str, attempt: int, experiment_name: str
) -> list[int]:
    return sorted(
        row[4]
        for row in ledger
        if row[1:4] == (job_id, attempt, experiment_name) and row[6] == "archived"
    )


def log_lines(lab: VirtualLab, words: tuple[str, ...], limit: int = 40) -> list[str]:
    """Evidence for a failure: lines of the daemons' logs with any of *words* (a message
    repeated is shown once, with its count), and the errors BLACS printed (its plugin's
    threads print there what they could not log)."""
    seen: dict[str, list[Any]] = {}  # message without its time: [first line, count]
    sources = [(lab.root / n, words) for n in ("spooler.log", "result.log")]
    sources.append((lab.root / "lab" / "logs" / "blacs.log", ("Exception in thread", "Error:")))
    for path, wanted in sources:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if any(w in line for w in wanted):
                key = f"{path.name}: {line[24:] if line[:2] == '20' else line}"
                seen.setdefault(key, [f"{path.name}: {line}", 0])[1] += 1
    lines = [first if n == 1 else f"{first} (x{n})" for first, n in seen.values()]
    return lines[-limit:]


# -- the test ---------------------------------------------------------------------------------


def drained(lab: VirtualLab, plan: Plan) -> bool:
    folders = lab.settings.folders
    states = job_states(lab)
    return (
        all(j in states for j in plan.shots)
        and all(s in FINAL and action is None for s, _, action in states.values())
        and not list(folders.addresses.glob("*.json"))
        and not any(folders.result_claimed.iterdir())
        and not list(folders.dump.glob("*.json"))
        and not any(folders.claimed.iterdir())
    )


def snapshot(lab: VirtualLab) -> tuple[int, int, int]:
    folders = lab.settings.folders
    quarantined = len(list(folders.quarantine.glob("*"))) if folders.quarantine.is_dir() else 0
    return len(list(folders.processed.iterdir())), len(list(folders.sds.rglob("*.h5"))), quarantined


@pytest.mark.timeout(1200)
def test_chaos_both_daemons_killed_at_random_while_an_operator_works(tmp_path: Path) -> None:
    seed = int(os.environ.get("LABSPOOL_CHAOS_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"\nchaos: seed {seed} (LABSPOOL_CHAOS_SEED={seed} to take the same decisions)")
    rng = random.Random(seed)
    started = time.monotonic()
    plan = Plan.make(rng, rng.randint(14, 20))
    job_ids = list(plan.shots)
    first = rng.randint(4, 7)
    moments = range(3, max(3 + len(job_ids), KILLS * 85 // 100))  # submitted before kill n
    later = dict(
        zip(sorted(rng.sample(moments, len(job_ids) - first)), job_ids[first:], strict=True)
    )
    print(
        f"chaos: {len(job_ids)} jobs, {sum(s for v in plan.shots.values() for _, s in v)} shots; "
        f"{first} before the storm, the others during it; {KILLS} kills"
    )
    sources = tmp_path / "sources"
    sources.mkdir()
    operator = f"{getpass.getuser()}@{socket.gethostname()}"
    with virtual_lab(tmp_path / "lab", result_daemon=True) as lab:
        chaos = Chaos(lab, rng, operator, started=started)
        for job_id in job_ids[:first]:
            lab.submit(job_id, plan.documents[job_id], sources)
        for n in range(KILLS):
            if n in later:
                lab.submit(later[n], plan.documents[later[n]], sources)
            if rng.random() < 0.25:
                chaos.operate(plan)
            daemon = rng.choice(("spooler", "result"))
            chaos.wait_for_a_moment(daemon)
            chaos.kill(daemon)
            if n % 10 == 9:
                counts = Counter(s for s, _, _ in job_states(lab).values())
                print(
                    f"chaos: {n + 1} kills at {time.monotonic() - started:.0f} s, "
                    f"jobs {dict(counts)}, shots filed/stored/quarantine {snapshot(lab)}"
                )
        for n, job_id in later.items():
            if n >= KILLS:  # a short storm (LABSPOOL_CHAOS_KILLS): the rest after it
                lab.submit(job_id, plan.documents[job_id], sources)
        storm_s = time.monotonic() - started
        lab.labspool("resume")
        chaos.paused = False
        for daemon in ("spooler", "result"):
            chaos.check_alive(daemon, "after the storm")
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        quiet_since, last = time.monotonic(), snapshot(lab)
        with watching(lab.settings.folders.state) as changed:  # the store changes with all
            while True:
                changed.clear()
                for daemon in ("spooler", "result"):
                    chaos.check_alive(daemon, "while draining")
                now = snapshot(lab)
                if now != last or not drained(lab, plan):
                    quiet_since, last = time.monotonic(), now
                elif time.monotonic() - quiet_since >= QUIET_S:
                    break
                if time.monotonic() > deadline:
                    states = job_states(lab)
                    stuck = {j: s for j, s in states.items() if s[0] not in FINAL or s[2]}
                    evidence = log_lines(lab, tuple(stuck) or ("ERROR",))
                    folders = lab.settings.folders
                    pytest.fail(
                        f"seed {seed}: not drained {DRAIN_TIMEOUT_S:.0f} s after the storm: "
                        f"{stuck}, addresses {sorted(os.listdir(folders.addresses))}, "
                        f"claimed {sorted(os.listdir(folders.result_claimed))}\n"
                        + "\n".join(evidence)
                    )
                changed.wait(1.0)  # the quiet period is timed, so wake at least each second
        alive = {d: chaos.process(d).poll() is None for d in ("spooler", "result")}
        wall_s = time.monotonic() - started
        figures, problems, remarks = audit(lab, plan, chaos)
        figures.update(seed=seed, wall_s=round(wall_s, 1), storm_s=round(storm_s, 1))
        if not all(alive.values()):
            problems.append(f"a daemon is not alive at the end: {alive}")
        problems += [f"died by itself: {d}" for d in chaos.died_alone]
        summary_path = tmp_path / "chaos-summary.json"
        summary_path.write_text(
            json.dumps(
                {
                    **figures,
                    "problems": problems,
                    "remarks": remarks,
                    "commands": chaos.commands,
                    "refused": chaos.refused,
                },
                indent=1,
            )
            + "\n"
        )
        print(
            f"chaos: seed {seed}: kills spooler {figures['kills_spooler']} result "
            f"{figures['kills_result']}; jobs {figures['jobs']}; shots made "
            f"{figures['shots_made']}, archived {figures['shots_archived']}, quarantined "
            f"{figures['shots_quarantined']}, lost {figures['lost']}, duplicated "
            f"{figures['duplicated']}, left over {figures['left_over']}; commands "
            f"{figures['operator_commands']} ({figures['commands_refused']} refused); wall "
            f"{wall_s:.0f} s (storm {storm_s:.0f} s)"
        )
        print(f"chaos: summary in {summary_path}")
        for remark in remarks:
            print(f"chaos: remark: {remark}")
        if problems:
            jobs = sorted({p.split(" ", 1)[0] for p in problems if p.startswith("chaos")})
            evidence = log_lines(lab, tuple(jobs) or ("ERROR", "Traceback"))
            pytest.fail(
                f"seed {seed}: {len(problems)} problem(s):\n"
                + "\n".join(problems[:60])
                + "\nlog lines:\n"
                + "\n".join(evidence)
            )
