"""Provenance: the result's header and the DONE status file name what the shots ran with
(result/provenance.py), also after a reprocess; shot files made here with h5py alone, lyse's
DataFrame without lyse (as in test_multishot.py)."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas
import pytest

import spooler
from result.finishing import JobFinisher
from result.multishot import MultishotInput
from result.provenance import (
    HEADER_MARKER,
    connection_table_sha256,
    header_sha256,
    labspool_version,
    shot_marks,
)
from result.reprocess import Reprocessor
from result.task import routines_version
from spooler.core.backends import get_backend
from spooler.core.jobs import Jobs
from spooler.core.model import Experiment, Instruction
from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.core.store.provenance import Provenance
from spooler.core.store.shots import Ledger
from spooler.pipeline.render import MARKER, Renderer
from tests.result.multishot_frames import FINISHED_AT, shot_flat
from tests.result.test_multishot import lyse_free, with_result
from tests.result.test_result_daemon import Clock, running_job

__all__ = ["lyse_free"]  # the fixture, used here by name

ROOT = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = Path("/work/client-venv/bin/python")
VERSION = "tests.routines:count@0123456789ab"
HEADER = b"from labscript import start\nstart()\napparatus = Machine()\n"
RUN_TIME = 1_773_500_000.0  # the first shot's run time (Unix)
_STR = h5py.special_dtype(vlen=str)
_TABLE_DTYPE = [("name", "S256"), ("class", _STR), ("parent", _STR), ("properties", _STR)]

seen: list[MultishotInput] = []


def remember(job: MultishotInput) -> dict[str, bytes]:
    """A multi-shot routine that keeps its input (the job file's experiments)."""
    seen.append(job)
    return {}


def table(*devices: str) -> Any:
    rows = np.empty(len(devices), dtype=_TABLE_DTYPE)
    for i, name in enumerate(devices):
        rows[i] = (name.encode(), "DummyDevice", "None", "{}")
    return rows


def write_shot(path: Path, header: bytes, devices: tuple[str, ...], calls: str) -> None:
    """A shot file as labscript leaves it, as far as provenance reads it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    script = header + b"\n" + MARKER.encode() + b"\n" + calls.encode()
    with h5py.File(path, "w") as shot:
        shot.create_dataset("script", data=script)
        shot.create_dataset("connection table", data=table(*devices), maxshape=(None,))


class Lab:
    """A running job whose shots are archived: shot files on the store, ledger rows."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = Clock(FINISHED_AT)
        self.jobs = Jobs(settings.folders, clock=self.clock)
        self.finisher = JobFinisher(
            settings, self.jobs, get_backend(settings.backend), wall_clock=self.clock
        )

    def shot_path(self, job_id: str, experiment: str, i: int) -> Path:
        return self.settings.folders.stored_shot(job_id, experiment, f"{i:04d}.h5")

    def complete(
        self,
        job_id: str,
        shots: dict[str, int],
        *,
        header: bytes = HEADER,
        devices: tuple[str, ...] = ("clock", "camera"),
        run_times: bool = True,
        job_file: dict[str, Any] | None = None,
    ) -> None:
        running_job(self.settings, job_id, shots, self.clock.now)
        if job_file is not None:
            folder = self.settings.folders.jobs / job_id
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "job.json").write_text(json.dumps(job_file))
        n = 0
        with self.jobs.change() as tx:
            for name, count in shots.items():
                for i in range(count):
                    path = self.shot_path(job_id, name, i)
                    write_shot(path, header, devices, f"apparatus.rlx([0], [{i}.0])\n")
                    flat = shot_flat(job_id, name, i, str(i))
                    if run_times:  # as lyse reads it: a time in the lab's zone
                        at = pandas.Timestamp(RUN_TIME + 10 * n, unit="s", tz="UTC")
                        flat[("run time",)] = at.tz_convert("Europe/Berlin")
                    n += 1
                    address = f"{job_id}__{name}__{i}"
                    Ledger.claim(
                        tx,
                        address,
                        job_id=job_id,
                        attempt=1,
                        experiment=name,
                        shot_index=i,
                        local_path=f"/shots/{i}.h5",
                    )
                    Ledger.archived(
                        tx,
                        address,
                        sds_path=str(path),
                        size=1,
                        sha256="0" * 64,
                        frame=pickle.dumps(flat),
                        memory=str(i),
                        error=None,
                        routines=VERSION,
                    )

    def result(self, job_id: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(
            (self.settings.folders.results / f"{job_id}.json").read_text()
        )
        return document

    def status(self, job_id: str) -> dict[str, Any]:
        return self.jobs.status_files.read(job_id)


@pytest.fixture
def lab(tree: Settings, lyse_free: None) -> Iterator[Lab]:
    made = Lab(tree)
    yield made
    made.jobs.close()


def test_the_result_and_the_done_status_file_name_what_the_shots_ran_with(lab: Lab) -> None:
    lab.complete("prov", {"experiment_0": 3, "experiment_1": 2})
    assert lab.status("prov")["provenance"] is None, "not before the job is DONE"
    lab.clock.now += 7
    lab.finisher.check_all()
    assert lab.jobs.read.require("prov").state is JobState.DONE
    provenance = lab.result("prov")["header"]["provenance"]
    assert provenance == {
        "labspool_version": spooler.__version__,
        "backend": {"name": "singlequdit", "version": "0.0.1"},
        "apparatus_header_sha256": hashlib.sha256(HEADER).hexdigest(),
        "connection_table_sha256": connection_table_sha256(table("clock", "camera")),
        "routines": VERSION,
        "multishot_routines": "result.routines.picture:draw_job@"
        + hashlib.sha256((ROOT / "result/routines/picture.py").read_bytes()).hexdigest()[:12],
        "shots": {
            "count": 5,
            "first": "2026-03-14T14:53:20.000+00:00",
            "last": "2026-03-14T14:54:00.000+00:00",
            "clock": "run time",
        },
    }
    assert lab.status("prov")["provenance"] == provenance
    assert lab.result("prov")["header"]["artefacts"] == {
        "prov.png": str(lab.settings.folders.picture("prov"))
    }


def test_qiskit_reads_a_result_with_provenance(lab: Lab) -> None:
    lab.complete("forqiskit", {"experiment_0": 2})
    lab.finisher.check_all()
    path = lab.settings.folders.results / "forqiskit.json"
    if find_spec("qiskit") is not None:
        from qiskit.result import Result

        result = Result.from_dict(lab.result("forqiskit"))
        assert result.get_memory(0) == ["0", "1"]
        assert result.to_dict()["header"]["provenance"]["routines"] == VERSION
    if not CLIENT_PYTHON.exists():
        pytest.skip("the released client's venv is not there (scripts/client_venv.sh)")
    done = subprocess.run(  # the released client: qiskit-terra 0.23's Result.from_dict
        [str(CLIENT_PYTHON), str(ROOT / "tests/client/check_result.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["errors"] == []
    code = (
        "import json, sys\n"
        "from qiskit.result import Result\n"
        "result = Result.from_dict(json.load(open(sys.argv[1])))\n"
        "print(json.dumps(result.header.provenance))\n"
    )
    read = subprocess.run(
        [str(CLIENT_PYTHON), "-c", code, str(path)], capture_output=True, text=True, timeout=300
    )
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout) == lab.result("forqiskit")["header"]["provenance"]


def test_shots_that_disagree_are_all_named_and_an_unreadable_shot_is_none(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    lab.complete("mixed", {"experiment_0": 2, "experiment_1": 1})
    write_shot(lab.shot_path("mixed", "experiment_0", 1), b"other = 1\n", ("clock",), "")
    lab.shot_path("mixed", "experiment_1", 0).write_bytes(b"not a shot")
    lab.finisher.check_all()
    provenance = lab.result("mixed")["header"]["provenance"]
    assert provenance["apparatus_header_sha256"] == [
        hashlib.sha256(HEADER).hexdigest(),
        hashlib.sha256(b"other = 1\n").hexdigest(),
    ]
    assert provenance["connection_table_sha256"] == [
        connection_table_sha256(table("clock", "camera")),
        connection_table_sha256(table("clock")),
    ]
    assert "cannot read" in caplog.text and "mixed" in caplog.text
    assert lab.jobs.read.require("mixed").state is JobState.DONE


def test_without_run_times_the_shots_times_are_when_they_were_received(lab: Lab) -> None:
    lab.complete("old", {"experiment_0": 2}, run_times=False)
    rows = Ledger.of_job(lab.jobs.read, "old", 1)
    lab.finisher.check_all()
    shots = lab.result("old")["header"]["provenance"]["shots"]
    assert shots["clock"] == "received" and shots["count"] == 2
    assert shots["first"] == lab.status("old")["provenance"]["shots"]["first"]
    assert shots["first"][:19] <= shots["last"][:19]
    assert min(r.received_at for r in rows) > RUN_TIME


def test_a_shot_without_labspool_s_marker_has_no_header_hash(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as shot:
        shot.create_dataset("script", data="print('hand-written')\n")
    assert shot_marks(path) == (None, None)
    assert header_sha256(b"a = 1\n") is None


def test_the_header_hash_is_sha256sum_of_the_configured_header(tree: Settings) -> None:
    """What the spooler renders: the hash of the header in it is the header file's."""
    assert HEADER_MARKER == MARKER
    backend = get_backend("singlequdit")
    renderer = Renderer(backend, tree.apparatus.header, tree.apparatus.object)
    experiment = Experiment(
        "experiment_0",
        (Instruction("load", (0,), (50.0,)), Instruction("rlx", (0,), (0.7,))),
        1,
        3,
        "sequential",
    )
    rendered = renderer.render(experiment).encode()
    assert header_sha256(rendered) == hashlib.sha256(tree.apparatus.header.read_bytes()).hexdigest()


def test_the_routines_get_the_job_file_s_experiments(tree: Settings, lyse_free: None) -> None:
    settings = with_result(tree, multishot_routines=["tests.result.test_provenance:remember"])
    lab = Lab(settings)
    try:
        job_file = {"experiment_0": {"instructions": [["rlx", [0], [0.5]]], "shots": 1}}
        lab.complete("withfile", {"experiment_0": 1}, job_file=job_file)
        lab.complete("pruned", {"experiment_0": 1})
        seen.clear()
        lab.finisher.check_all()
    finally:
        lab.jobs.close()
    assert {job.job_id: job.experiments for job in seen} == {"withfile": job_file, "pruned": {}}


def test_a_reprocess_writes_the_provenance_again(lab: Lab, tree: Settings) -> None:
    """Reprocess rewrites a DONE job's outputs through JobFinisher.write_outputs: the shots'
    files are read again (here: a header changed) and both the result and the status file
    show the new provenance."""
    lab.complete("again", {"experiment_0": 2})
    lab.finisher.check_all()
    first = lab.result("again")["header"]["provenance"]
    reprocessor = Reprocessor(tree)
    try:
        with lab.jobs.change() as tx:  # every shot analysed with this version already
            for row in Ledger.of_job(tx, "again", 1):
                Ledger.reanalysed(
                    tx,
                    row.address,
                    memory=row.memory,
                    error=None,
                    size=1,
                    sha256="0" * 64,
                    frame=row.frame or b"",
                    routines=reprocessor.version,
                )
        for i in range(2):
            write_shot(lab.shot_path("again", "experiment_0", i), b"new = 2\n", ("clock",), "")
        report = reprocessor.run(["again"])
    finally:
        reprocessor.close()
    assert report.jobs_rewritten.first == ["again"] and report.shots == 0
    provenance = lab.result("again")["header"]["provenance"]
    assert provenance["apparatus_header_sha256"] == hashlib.sha256(b"new = 2\n").hexdigest()
    assert provenance["apparatus_header_sha256"] != first["apparatus_header_sha256"]
    assert provenance["routines"] == reprocessor.version == routines_version(tree.result.routines)
    assert "written_at" not in provenance, "the same shots and routines: the same bytes"
    assert lab.status("again")["provenance"] == provenance
    assert Provenance.of(lab.jobs.read, "again", 1) == provenance


def test_the_store_keeps_one_provenance_per_attempt(tree: Settings) -> None:
    jobs = Jobs(tree.folders)
    try:
        assert Provenance.of(jobs.read, "j", 1) is None
        with jobs.change() as tx:
            Provenance.record(tx, "j", 1, {"a": 1})
            Provenance.record(tx, "j", 1, {"a": 2})
            Provenance.record(tx, "j", 2, {"a": 3})
        assert Provenance.of(jobs.read, "j", 1) == {"a": 2}
        assert Provenance.of(jobs.read, "j", 2) == {"a": 3}
    finally:
        jobs.close()


def test_the_labspool_version_is_the_package_s() -> None:
    assert labspool_version() == spooler.__version__


def test_copying_a_shot_keeps_its_marks(tmp_path: Path) -> None:
    """The hashes are of the content, not of the file: a copy (the archive) has the same."""
    write_shot(tmp_path / "a.h5", HEADER, ("clock", "camera"), "apparatus.finish()\n")
    shutil.copyfile(tmp_path / "a.h5", tmp_path / "b.h5")
    write_shot(tmp_path / "c.h5", HEADER, ("clock", "camera"), "apparatus.other()\n")
    marks = shot_marks(tmp_path / "a.h5")
    assert marks == shot_marks(tmp_path / "b.h5") == shot_marks(tmp_path / "c.h5")
    assert marks[0] == hashlib.sha256(HEADER).hexdigest()
