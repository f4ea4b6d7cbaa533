"""Shared fixtures: a fresh labspool tree per test, written by ``labspool init``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spooler.cli.main import main
from spooler.core.health import Reason, encode_reasons
from spooler.core.settings import Settings, load_settings
from spooler.core.states import JobState
from spooler.core.store import JobStore
from spooler.pipeline.daemon import Spooler
from tests.fakes import Clock, RecordingLab

Job = dict[str, Any]

# matplotlib (the picture's tests) keeps its caches in MPLCONFIGDIR, else in the home folder,
# which the tests must leave alone: a folder of the run, removed at its end
_MATPLOTLIB = tempfile.TemporaryDirectory(prefix="labspool-tests-matplotlib-")
os.environ.setdefault("MPLCONFIGDIR", _MATPLOTLIB.name)


def init_tree(root: Path, backend: str = "singlequdit") -> Settings:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["init", str(root), "--backend", backend]) == 0
    return load_settings(out.getvalue().strip())


def with_lab(settings: Settings, **keys: object) -> Settings:
    """The tree's configuration with these keys of its ``lab`` section changed."""
    import yaml

    raw = yaml.safe_load(settings.path.read_text(encoding="utf-8"))
    raw["lab"].update(keys)
    settings.path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_settings(settings.path)


@pytest.fixture
def tree(tmp_path: Path) -> Settings:
    """A complete labspool tree for the singlequdit backend."""
    return init_tree(tmp_path / "lab")


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[[str], Settings]:
    def make(backend: str) -> Settings:
        return init_tree(tmp_path / backend, backend)

    return make


def add_users(settings: Settings, users: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Gateway users of *settings*' tree, each with the keywords of ``Users.add``
    (``operator``, limits); their tokens by name."""
    from spooler.core.store import JobStore
    from spooler.gateway.users import Users

    store = JobStore(settings.folders.database)
    try:
        directory = Users(store, settings)
        return {name: directory.add(name, **options)[1] for name, options in users.items()}
    finally:
        store.close()


def record_job(
    settings: Settings,
    job_id: str,
    user: str | None,
    *states: JobState,
    source_name: str | None = None,
) -> None:
    """A job in *settings*' store (2 experiments, 10 shots), through the job model, taken
    through *states*; one that ends ERROR says "the atoms were lost"."""
    from spooler.core.jobs import Jobs

    jobs = Jobs(settings.folders)
    name = f"file_{job_id}-{user}.json" if user else f"{job_id}.json"
    try:
        with jobs.change() as tx:
            tx.add_job(
                job_id=job_id,
                backend=settings.backend,
                source_name=source_name or name,
                claim_name=name,
                submitter=user,
            )
            tx.set_counts(job_id, experiments=2, shots_requested=10)
        for state in states:
            with jobs.change() as tx:
                message = "the atoms were lost" if state is JobState.ERROR else None
                tx.transition(job_id, state, error_message=message)
    finally:
        jobs.close()


def good_job(shots: int = 3, experiments: int = 1, angle: float = 0.7) -> Job:
    return {
        f"experiment_{i}": {
            "instructions": [["load", [0], [50.0]], ["rlx", [0], [angle]], ["measure", [0], []]],
            "num_wires": 1,
            "shots": shots,
            "wire_order": "sequential",
        }
        for i in range(experiments)
    }


def drop(settings: Settings, name: str, content: bytes | str | Job) -> Path:
    """Put a job file into the dump folder the way a producer should: write, then rename in."""
    if isinstance(content, dict):
        data = json.dumps(content).encode()
    elif isinstance(content, str):
        data = content.encode()
    else:
        data = content
    staged = settings.folders.staging / f".{name}.tmp"
    staged.write_bytes(data)
    target = settings.folders.dump / name
    os.rename(staged, target)
    return target


@pytest.fixture
def lab() -> RecordingLab:
    return RecordingLab()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def spooler(tree: Settings, lab: RecordingLab, clock: Clock) -> Iterator[Spooler]:
    """A spooler on a fresh tree with the test double of the lab and hand-moved clocks."""
    s = Spooler(tree, lab=lab, clock=clock, wall_clock=lambda: 1.7e9 + clock.now)
    yield s
    s.close()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(autouse=True, scope="session")
def _leave_the_users_labscript_profile_alone() -> Iterator[None]:
    """Fail the run if anything created a labscript profile in the user's home folder."""
    import getpass

    profile = Path(f"~{getpass.getuser()}").expanduser() / "labscript-suite"
    existed = profile.exists()
    yield
    if not existed and profile.exists():
        pytest.fail(f"the tests created {profile}; labscript must only run in a sandbox")


@pytest.fixture(autouse=True)
def _no_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("LABSPOOL_CONFIG", raising=False)
    yield


def record_health(
    tree: Settings, operational: bool, reasons: list[Reason], since: float, at: float
) -> None:
    """The machine's health as the spooler's monitor records it, checked at *at*."""
    tree.folders.create()
    store = JobStore(tree.folders.database, clock=lambda: at)
    try:
        with store.transaction() as tx:
            tx.set_health(operational=operational, reasons=encode_reasons(reasons), since=since)
    finally:
        store.close()


@contextlib.contextmanager
def running_spooler(settings: Settings) -> Iterator[Spooler]:
    """A spooler daemon (the test double of the lab) running its loop in a thread until the
    block ends; then stopped, its thread joined and closed."""
    spooler = Spooler(settings, lab=RecordingLab())
    ready = threading.Event()
    thread = threading.Thread(target=spooler.run, kwargs={"on_ready": ready.set})
    thread.start()
    try:
        assert ready.wait(30)
        yield spooler
    finally:
        spooler.request_stop()
        thread.join(30)
        spooler.close()
    assert not thread.is_alive()
