"""Recovery of lost shots, with the test double of the lab: only the missing shots, never while
BLACS holds some, never twice."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from spooler.core.settings import Settings
from spooler.core.states import JobState
from spooler.pipeline.daemon import Spooler
from tests.conftest import drop, good_job
from tests.fakes import Clock, RecordingLab


def received(spooler: Spooler, job_id: str, indices: list[int]) -> None:
    """The result daemon received these shots of experiment_0 (its ledger)."""
    with spooler.jobs.change() as tx:
        for index in indices:
            tx.execute(
                "INSERT INTO shots (address, job_id, attempt, experiment, shot_index, "
                "local_path, state, received_at) VALUES (?, ?, 1, 'experiment_0', ?, '/x.h5', "
                "'archived', 0)",
                (f"{job_id}__{index}", job_id, index),
            )


def running(spooler: Spooler, tree: Settings, shots: int) -> None:
    drop(tree, "j.json", good_job(shots=shots))
    spooler.run_once()
    assert spooler.jobs.read.require("j").state is JobState.RUNNING


def later(spooler: Spooler, clock: Clock, seconds: float) -> None:
    clock.now += seconds
    spooler.step()


def test_the_missing_shots_of_a_stalled_experiment_are_made_again_once(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    running(spooler, tree, shots=6)
    received(spooler, "j", [0, 1, 3])
    folder = tree.folders.shot_folder("j", 1, "experiment_0")
    address = tree.folders.addresses / "j__experiment_0__00004.json"
    address.write_text(json.dumps({"job_id": "j", "attempt": 1, "shot_index": 4}))
    later(spooler, clock, tree.lab.stalled_after_s / 2)
    assert len(lab.engaged()) == 1  # not quiet long enough
    later(spooler, clock, tree.lab.stalled_after_s)
    assert len(lab.engaged()) == 2
    again = lab.engaged()[-1]
    assert again["shot_indices"] == [2, 5] and again["experiment_name"] == "experiment_0"
    withdrawn = [arg for name, arg in lab.calls if name == "withdraw"]
    assert withdrawn == [([folder], False)]  # what is left of the lost round is refused
    outputs = [arg for name, arg in lab.calls if name == "set_shot_output_folder"]
    assert outputs[-1] == folder / "recovery-1"
    record = spooler.jobs.read.require("j")
    assert record.state is JobState.RUNNING
    assert "Recovery: the machine lost 2 shot(s) of experiment_0 (shots 2, 5" in record.detail
    assert spooler.jobs.read.experiments("j", 1)[0].recoveries == 1
    (folder / "recovery-1").mkdir(exist_ok=True)
    later(spooler, clock, tree.lab.health_interval_s)
    assert len(lab.engaged()) == 2  # just engaged again: not stalled
    later(spooler, clock, tree.lab.stalled_after_s + 1)  # lost again (BLACS died again)
    assert len(lab.engaged()) == 3
    withdrawn = [arg for name, arg in lab.calls if name == "withdraw"]
    assert withdrawn[-1] == ([folder, folder / "recovery-1"], False)


def test_no_recovery_while_blacs_holds_a_shot_of_the_experiment(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    running(spooler, tree, shots=3)
    folder = tree.folders.shot_folder("j", 1, "experiment_0")
    lab.blacs = dataclasses.replace(lab.blacs, queued=1, queued_folders={str(folder): 1})
    later(spooler, clock, 10 * tree.lab.stalled_after_s)
    lab.blacs = dataclasses.replace(
        lab.blacs, queued=0, queued_folders={}, running=str(folder / "x.h5")
    )
    later(spooler, clock, 10 * tree.lab.stalled_after_s)
    assert len(lab.engaged()) == 1
    lab.blacs = dataclasses.replace(lab.blacs, running=None)
    received(spooler, "j", [0, 1, 2])  # every shot made: nothing lost
    later(spooler, clock, 10 * tree.lab.stalled_after_s)
    assert len(lab.engaged()) == 1


def test_an_experiment_waiting_behind_one_still_at_work_is_not_lost(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    """runmanager compiles and BLACS runs in the order engaged: while an experiment engaged
    earlier is still at work (here: in BLACS's queue), the ones after it wait, however long
    (CI saw a long compile of the first experiments taken for the loss of the later ones)."""
    drop(tree, "j.json", good_job(shots=3, experiments=2))
    spooler.run_once()
    assert len(lab.engaged()) == 2
    first = tree.folders.shot_folder("j", 1, "experiment_0")
    lab.blacs = dataclasses.replace(lab.blacs, queued=3, queued_folders={str(first): 3})
    later(spooler, clock, 10 * tree.lab.stalled_after_s)
    assert len(lab.engaged()) == 2, "experiment_1 waits behind experiment_0"
    lab.blacs = dataclasses.replace(lab.blacs, queued=0, queued_folders={})
    received(spooler, "j", [0, 1, 2])  # experiment_0 made; experiment_1's shots never came
    later(spooler, clock, 10 * tree.lab.stalled_after_s)
    assert len(lab.engaged()) == 3
    again = lab.engaged()[-1]
    assert again["experiment_name"] == "experiment_1" and again["shot_indices"] == [0, 1, 2]


def test_no_recovery_while_the_machine_is_down(
    spooler: Spooler, tree: Settings, lab: RecordingLab, clock: Clock
) -> None:
    running(spooler, tree, shots=3)
    lab.blacs = dataclasses.replace(lab.blacs, paused=True, status="Queue paused")
    later(spooler, clock, 10 * tree.lab.stalled_after_s)
    assert len(lab.engaged()) == 1
    lab.recover()
    later(spooler, clock, tree.lab.health_interval_s)
    assert len(lab.engaged()) == 2


def test_a_recovery_folder_is_the_experiments_own(tree: Settings) -> None:
    folders = tree.folders
    base = folders.shot_folder("j", 2, "experiment_1")
    assert folders.is_shot_folder(base, "j", 2, "experiment_1")
    assert folders.is_shot_folder(base / "recovery-3", "j", 2, "experiment_1")
    assert not folders.is_shot_folder(base / "recovery-0", "j", 2, "experiment_1")
    assert not folders.is_shot_folder(base / "other", "j", 2, "experiment_1")
    assert not folders.is_shot_folder(base, "j", 1, "experiment_1")
    assert folders.shot_owner(base / "recovery-3") == ("j", 2)
    assert folders.shot_owner(folders.shot_folder("k", 1, "experiment_0")) == ("k", 1)
    assert folders.shot_owner(Path("/elsewhere/j/experiment_0")) is None
