"""The result daemon end to end on the virtual lab: DONE jobs with result files and CSVs."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from tests.labtools import (
    VirtualLab,
    binomial_p_value,
    in_lab,
    needs_suite,
    virtual_lab,
    wait_until,
)
from tests.virtual.test_virtual_lab import experiment

pytestmark = [pytest.mark.lab, pytest.mark.slow, needs_suite]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualLab]:
    root = tmp_path_factory.mktemp("results") / "lab"
    with virtual_lab(root, result_daemon=True) as running:
        yield running


def cli_result(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "result.cli", *args], capture_output=True, text=True, timeout=300
    )


def done(lab: VirtualLab, job_id: str, timeout_s: float = 300) -> dict[str, Any]:
    status = lab.wait_for_status(job_id, lambda s: s.get("status") in ("DONE", "ERROR"), timeout_s)
    assert status["status"] == "DONE", status
    return json.loads((lab.settings.folders.results / f"{job_id}.json").read_text())  # type: ignore[no-any-return]


def test_jobs_end_done_with_a_result_per_shot(lab: VirtualLab, tmp_path: Path) -> None:
    jobs = {
        "flop": {
            "experiment_0": experiment(0.0, 3, seed=1),
            "experiment_1": experiment(math.pi, 4, seed=2),
            "experiment_2": experiment(1.0, 2, measure=False),
        },
        "stats": {"experiment_0": experiment(1.2, 100, atoms=100, seed=77)},
    }
    for job_id, job in jobs.items():
        lab.submit(job_id, job, tmp_path)
    results = {job_id: done(lab, job_id) for job_id in jobs}

    flop = results["flop"]
    assert flop["status"] == "finished" and flop["success"] is True and flop["job_id"] == "flop"
    assert flop["backend_name"] == "singlequdit" and flop["display_name"] == "SingleQudit"
    assert [r["header"]["name"] for r in flop["results"]] == [
        "experiment_0",
        "experiment_1",
        "experiment_2",
    ]
    memory = [r["data"]["memory"] for r in flop["results"]]
    assert memory == [["0"] * 3, ["50"] * 4, ["", ""]]  # rlx 0, rlx pi on 50 atoms, no measure
    for result in flop["results"]:
        on_store = list((lab.settings.folders.sds / "flop" / result["header"]["name"]).glob("*.h5"))
        assert result["shots"] == len(result["data"]["memory"]) == len(on_store)

    counts = np.array([int(m) for m in results["stats"]["results"][0]["data"]["memory"]])
    assert len(counts) == 100
    assert binomial_p_value(counts, 100, math.sin(0.6) ** 2) > 1e-3
    assert binomial_p_value(counts, 100, math.sin(0.3) ** 2) < 1e-6  # a wrong rotation fails

    # Nothing left behind locally; every address file filed; every shot once on the store.
    assert not list(lab.settings.folders.shots.glob("*/*/*.h5"))
    assert not list(lab.settings.folders.addresses.glob("*.json"))
    assert len(list(lab.settings.folders.processed.glob("*.json"))) == 9 + 100
    names = [p.name for p in lab.settings.folders.sds.glob("*/*/*.h5")]
    assert len(names) == len(set(names)) == 109
    assert not list(lab.settings.folders.sds.rglob(".*.tmp"))
    status = lab.status("flop")
    assert status["shots_done"] == status["shots_expected"] == 9
    assert "Done: 9 shot(s) analysed" in status["detail"]

    # Provenance: what the shots ran with, read back from them (result/provenance.py)
    from result.provenance import connection_table_sha256
    from spooler.virtual.layout import LabLayout

    provenance = flop["header"]["provenance"]
    assert status["provenance"] == provenance
    header = lab.settings.apparatus.header.read_bytes()
    assert provenance["apparatus_header_sha256"] == hashlib.sha256(header).hexdigest()
    with h5py.File(LabLayout(lab.root).connection_table_h5, "r") as blacs_table:
        blacs = connection_table_sha256(blacs_table["connection table"])
    assert provenance["connection_table_sha256"] == blacs, "BLACS's own connection table"
    db = sqlite3.connect(lab.settings.folders.database)
    try:
        (routines,) = db.execute("SELECT DISTINCT routines FROM shots WHERE job_id = 'flop'")
    finally:
        db.close()
    assert provenance["routines"] == routines[0] and "@" in routines[0]
    shots = provenance["shots"]
    assert shots["count"] == 9 and shots["clock"] == "run time"
    assert shots["first"] < shots["last"] <= status["updated_at"]


@pytest.mark.skipif(find_spec("qiskit") is None, reason="qiskit is not installed")
def test_qiskit_reads_the_result(lab: VirtualLab, tmp_path: Path) -> None:
    from qiskit.result import Result

    lab.submit("forqiskit", {"experiment_0": experiment(math.pi, 3, seed=5)}, tmp_path)
    result = Result.from_dict(done(lab, "forqiskit"))
    assert result.success and result.job_id == "forqiskit"
    assert result.get_memory(0) == ["50", "50", "50"]


def test_the_csv_is_lyses_dataframe_of_the_archived_shots(lab: VirtualLab, tmp_path: Path) -> None:
    lab.submit(
        "csv",
        {"experiment_0": experiment(0.8, 5, seed=9), "experiment_1": experiment(2.0, 3, seed=10)},
        tmp_path,
    )
    done(lab, "csv")
    store = lab.settings.folders.sds / "csv"
    for name in ("experiment_0", "experiment_1"):
        # lyse's own function on the archived shots, in shot order, in the lab's profile.
        script = f"""
import sys
from pathlib import Path
from lyse.dataframe_utilities import get_dataframe_from_shots  # before h5py: the suite's h5_lock
import h5py
shots = sorted(Path({str(store / name)!r}).glob('*.h5'),
               key=lambda p: int(h5py.File(p, 'r')['globals'].attrs['labspool_shot']))
sys.stdout.write(get_dataframe_from_shots([str(p) for p in shots]).to_csv())
"""
        lyse = in_lab(lab.root, script)
        assert lyse.returncode == 0, lyse.stderr
        ours = (store / f"{name}.csv").read_text()
        assert ours == lyse.stdout
        header = ours.splitlines()[0]
        assert "count_atoms" in ours and "labspool_shot" in header


def test_the_dataframe_of_shots_with_other_columns_is_lyses_too(
    lab: VirtualLab, tmp_path: Path
) -> None:
    """Shots without an image (no ``measure``) have fewer columns and column levels than
    those with one: the DataFrame built from the ledger's rows, interleaved, is still lyse's
    ``concat_with_padding`` of each archived shot's ``get_dataframe_from_shot``."""
    lab.submit(
        "mixed",
        {
            "experiment_0": experiment(0.8, 3, seed=15),
            "experiment_1": experiment(0.8, 2, measure=False, seed=16),
        },
        tmp_path,
    )
    done(lab, "mixed")
    script = f"""
import sys
from lyse.dataframe_utilities import concat_with_padding, get_dataframe_from_shot
from spooler.core.store.shots import Ledger
from result.outputs import experiment_frame
from spooler.core.store import JobStore

store = JobStore(__import__("pathlib").Path({str(lab.settings.folders.database)!r}))
rows = Ledger.of_job(store.read, "mixed", 1)
assert [r.experiment for r in rows] == ["experiment_0"] * 3 + ["experiment_1"] * 2
order = [rows[3], rows[0], rows[4], rows[1], rows[2]]
ours = experiment_frame(order).to_csv()
lyse = concat_with_padding(*[get_dataframe_from_shot(r.sds_path) for r in order]).to_csv()
assert ours == lyse, (ours, lyse)
sys.stdout.write(ours)
"""
    checked = in_lab(lab.root, script)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "count_atoms" in checked.stdout


def test_a_late_shot_with_an_old_name_is_archived_not_lost(lab: VirtualLab, tmp_path: Path) -> None:
    from spooler.lab.blacs_plugin.labspool_addresses import write_address_file

    lab.submit("late", {"experiment_0": experiment(math.pi, 2, seed=4)}, tmp_path)
    before = done(lab, "late")
    archived = sorted((lab.settings.folders.sds / "late" / "experiment_0").glob("*.h5"))
    # The same shot comes again, as a new file, addressed with shot index 0 again.
    late = lab.settings.folders.shots / "late" / "experiment_0" / "late_again.h5"
    late.parent.mkdir(parents=True, exist_ok=True)
    late.write_bytes(archived[0].read_bytes())
    record = {
        "format": "labspool.address/1",
        "shot": str(late),
        "job_id": "late",
        "experiment": "experiment_0",
        "shot_index": 0,
        "run_number": 0,
    }
    write_address_file(str(lab.settings.folders.addresses), record)
    target = lab.settings.folders.sds / "late" / "experiment_0" / "late_again.h5"
    wait_until(
        lab.settings.folders.shots,
        lambda: target.exists() and not late.exists(),
        60,
        "the late shot archived and its local copy removed",
    )
    with h5py.File(target, "r") as new, h5py.File(archived[0], "r") as old:
        image = "images/top/fluorescence/atoms"
        assert np.array_equal(new[image][()], old[image][()])  # its data intact
        assert new["results/count_atoms"].attrs["atoms"] == 50  # and analysed
    assert not late.exists()
    assert lab.status("late")["status"] == "DONE"
    assert json.loads((lab.settings.folders.results / "late.json").read_text()) == before
    assert "belongs to no running job" in (lab.root / "result.log").read_text()


def test_reprocess_runs_the_analysis_again_on_the_archived_shots_while_the_daemon_runs(
    lab: VirtualLab, tmp_path: Path
) -> None:
    lab.submit("again", {"experiment_0": experiment(math.pi, 3, seed=8)}, tmp_path)
    before = done(lab, "again")
    csv = lab.settings.folders.sds / "again" / "experiment_0.csv"
    csv_before = csv.read_bytes()
    assert lab.result is not None and lab.result.poll() is None
    same = cli_result("--config", str(lab.config), "reprocess", "again")
    assert same.returncode == 0, same.stderr
    assert "reprocessed 0 shot(s)" in same.stdout and "3 carried that version" in same.stdout
    routines = ["--routine", "result.routines.singlequdit:count_atoms"]
    routines += ["--routine", "tests.result.routines_for_tests:parity"]
    again = cli_result("--config", str(lab.config), "reprocess", "again", *routines)
    assert again.returncode == 0, again.stderr
    assert "reprocessed 3 shot(s) of 1 job(s) with result.routines.singlequdit:count_atoms@" in (
        again.stdout
    )
    assert ";tests.result.routines_for_tests:parity@" in again.stdout
    assert "again: CSVs and result rewritten" in again.stdout
    assert "reprocessing: 3/3 shots (100%)" in again.stderr
    assert cli_result("--config", str(lab.config), "reprocess", "nosuchjob").returncode == 2
    after = json.loads((lab.settings.folders.results / "again.json").read_text())
    provenance = after["header"].pop("provenance")
    earlier = before["header"].pop("provenance")
    assert after == before, "the same shots counted the same: the result is unchanged"
    assert provenance["routines"] == again.stdout.split(" with ", 1)[1].split()[0]
    assert provenance["routines"] != earlier["routines"], "the provenance names the new routines"
    assert {k: v for k, v in provenance.items() if k != "routines"} == {
        k: v for k, v in earlier.items() if k != "routines"
    }
    assert b"parity" not in csv_before and b"parity" in csv.read_bytes(), "its new column"
    status = lab.status("again")
    assert status["status"] == "DONE" and "Reprocessed 3 archived shot(s) with" in status["detail"]
    with sqlite3.connect(f"file:{lab.settings.folders.database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT sds_path, sha256 FROM shots WHERE job_id = 'again'").fetchall()
    assert len(rows) == 3
    for path, sha in rows:
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha
        with h5py.File(path, "r") as shot:
            atoms = int(shot["results/count_atoms"].attrs["atoms"])
            assert int(shot["results/parity"].attrs["parity"]) == atoms % 2
    assert lab.result.poll() is None, "the daemon ran on meanwhile"
