"""labspool's BLACS plugin (its functions, without BLACS) and its installation."""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path

import h5py
import pytest

from spooler.lab.blacs_plugin.labspool_addresses import shot_record, write_address_file
from spooler.lab.plugin import PLUGIN_NAME, configure_labconfig

NAMES = {
    "job_id": "labspool_job_id",
    "experiment": "labspool_experiment",
    "shot": "labspool_shot",
    "attempt": "labspool_attempt",
}


def make_shot(path: Path, **globals_: object) -> Path:
    with h5py.File(path, "w") as f:
        group = f.create_group("globals")
        for key, value in globals_.items():
            group.attrs[key] = value
        f.attrs["run number"] = 3
        f.create_group("data")
    return path


def test_the_address_file_names_the_shot_job_experiment_and_index(tmp_path: Path) -> None:
    shot = make_shot(
        tmp_path / "s.h5",
        labspool_job_id="job1",
        labspool_experiment="experiment_2",
        labspool_shot=3,
        labspool_attempt=2,
    )
    record = shot_record(str(shot), NAMES)
    folder = tmp_path / "addresses"
    folder.mkdir()
    path = Path(write_address_file(str(folder), record))
    assert path.name == "job1__experiment_2__00003.json"
    written = json.loads(path.read_text())
    assert written["shot"] == str(shot) and written["job_id"] == "job1"
    assert written["experiment"] == "experiment_2" and written["shot_index"] == 3
    assert written["run_number"] == 3 and written["format"] == "labspool.address/1"
    assert written["attempt"] == 2
    assert sorted(os.listdir(folder)) == ["job1__experiment_2__00003.json"], (
        "no temporary file left"
    )


def test_a_second_address_for_the_same_shot_never_replaces_the_first(tmp_path: Path) -> None:
    shot = make_shot(
        tmp_path / "s.h5", labspool_job_id="j", labspool_experiment="experiment_0", labspool_shot=0
    )
    first = write_address_file(str(tmp_path), shot_record(str(shot), NAMES))
    second = write_address_file(str(tmp_path), shot_record(str(shot), NAMES))
    assert Path(first).name == "j__experiment_0__00000.json"
    assert Path(second).name == "j__experiment_0__00000_rep1.json"


def test_a_shot_without_labspool_globals_still_gets_an_address(tmp_path: Path) -> None:
    shot = make_shot(tmp_path / "s.h5")
    path = Path(write_address_file(str(tmp_path), shot_record(str(shot), NAMES)))
    assert path.name == "nojob__noexperiment__noshot.json"


def test_hostile_globals_cannot_escape_the_folder(tmp_path: Path) -> None:
    shot = make_shot(
        tmp_path / "s.h5",
        labspool_job_id="../../etc/x",
        labspool_experiment="/abs",
        labspool_shot=1,
    )
    folder = tmp_path / "addresses"
    folder.mkdir()
    path = Path(write_address_file(str(folder), shot_record(str(shot), NAMES)))
    assert path.parent == folder


def test_configure_labconfig_adds_the_plugin_and_keeps_the_rest(tmp_path: Path) -> None:
    labconfig = tmp_path / "lab.ini"
    labconfig.write_text(
        "[DEFAULT]\napparatus_name = x\nlog = %(apparatus_name)s/log\n\n"
        "[BLACS/plugins]\ntheme = True\n"
    )
    configure_labconfig(labconfig, tmp_path / "addresses")
    config = configparser.ConfigParser(interpolation=None)
    config.read(labconfig)
    assert config.get("BLACS/plugins", PLUGIN_NAME) == "True"
    assert config.get("BLACS/plugins", "theme") == "True"
    assert config.get("labspool", "address_folder") == str(tmp_path / "addresses")
    assert config.get("DEFAULT", "log") == "%(apparatus_name)s/log"


def test_configure_labconfig_refuses_a_missing_file(tmp_path: Path) -> None:
    from spooler.core.errors import LabspoolError

    with pytest.raises(LabspoolError, match="cannot read the labconfig"):
        configure_labconfig(tmp_path / "nope.ini", tmp_path)
