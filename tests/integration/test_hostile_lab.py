"""Hostile input on the virtual lab: a corpus of bad address and shot files through the
result daemon (twice), bad job files and names through the spooler (twice), and a shot on
which an analysis routine kills the daemon's process. Afterwards good jobs still end DONE."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.labtools import VirtualLab, needs_suite, virtual_lab, wait_until
from tests.virtual.test_virtual_lab import experiment

pytestmark = [pytest.mark.lab, needs_suite]

ROOT = Path(__file__).resolve().parents[2]


def fingerprint(path: Path) -> tuple[str, int, int] | None:
    """What a file is now (content, inode, mtime), to prove it was not touched."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if path.is_symlink():
        return (os.readlink(path), info.st_ino, info.st_mtime_ns)
    if not path.is_file():
        return ("", info.st_ino, info.st_mtime_ns)
    return (hashlib.sha256(path.read_bytes()).hexdigest(), info.st_ino, info.st_mtime_ns)


@dataclass
class Case:
    what: str
    address_name: bytes  # the address file's name in addresses/ (any bytes)
    outcome: str  # "refused": quarantined address, nothing else touched; "ignored": left
    reason: str = ""  # in the reason file
    untouched: list[Path] = field(default_factory=list)


def result_once(lab: VirtualLab) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "result.cli", "--config", str(lab.config), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DISPLAY": ":99"},  # a display that is not there: no window, ever
    )


def build_corpus(lab: VirtualLab, tmp: Path) -> tuple[list[Case], dict[str, str]]:
    """Every hostile case, laid out in the lab's tree; returns them and the damaged shots of
    the job `victim` (shot name -> the reason expected)."""
    import h5py
    import numpy as np

    folders = lab.settings.folders
    addresses = folders.addresses
    victim = {Path(a["shot"]).name: a for a in lab.addresses("victim")}
    other = lab.addresses("other")
    template = next(iter(victim.values()))
    victim_folder = Path(template["shot"]).parent
    other_shot = Path(other[0]["shot"])
    cases: list[Case] = []

    def address(name: bytes, content: bytes | str | dict[str, Any]) -> Path:
        path = Path(os.fsdecode(os.path.join(os.fsencode(addresses), name)))
        data = json.dumps(content) if isinstance(content, dict) else content
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def claim(**changes: Any) -> dict[str, Any]:
        return {**template, "shot_index": 0, **changes}

    def refused(what: str, content: Any, reason: str, *, untouched: tuple[Path, ...] = ()) -> None:
        name = f"hostile_{len(cases):02d}.json".encode()
        address(name, content)
        cases.append(Case(what, name, "refused", reason, list(untouched)))

    # Files the hostile addresses point at, none of which may be touched.
    outside = tmp / "outside" / "secret.h5"
    outside.parent.mkdir()
    shutil.copy(other_shot, outside)
    extra = other_shot.parent / "extra.h5"  # in another job's folder
    shutil.copy(other_shot, extra)
    foreign = victim_folder / "foreign.h5"  # in the victim's folder, another job's globals
    shutil.copy(other_shot, foreign)
    hard = victim_folder / "hard.h5"
    os.link(extra, hard)
    link = victim_folder / "link.h5"
    link.symlink_to(outside)
    fifo = victim_folder / "fifo.h5"
    os.mkfifo(fifo)
    directory = victim_folder / "folder.h5"
    directory.mkdir()
    linked_dir = victim_folder.parent / "experiment_1"
    linked_dir.symlink_to(outside.parent, target_is_directory=True)
    txt = victim_folder / "shot.txt"
    txt.write_text("not a shot")

    refused("invalid JSON", "{not json", "not valid JSON")
    refused("an empty address file", "", "empty")
    refused("a JSON array", "[1, 2]", "not a JSON object")
    refused("a string", '"x"', "not a JSON object")
    refused("NaN", '{"shot": NaN}', "not allowed")
    refused("duplicate keys", '{"shot": "/a.h5", "shot": "/b.h5"}', "appears twice")
    refused("too deep", '{"a": ' * 10 + "1" + "}" * 10, "nests deeper")
    refused("not UTF-8", b'{"shot": "\xff"}', "not valid UTF-8")
    refused("shot of the wrong type", claim(shot=5), "names no shot")
    refused("shot index of the wrong type", claim(shot_index="0"), "no shot index")
    refused("a boolean shot index", claim(shot_index=True), "no shot index")
    refused("a negative shot index", claim(shot_index=-1), "no shot index")
    refused("a job id that is a path", claim(job_id="../victim"), "names no labspool job")
    refused("an unknown job", claim(job_id="nobody"), "does not know")
    refused("an attempt the job never had", claim(attempt=7), "attempt 7")
    refused("an experiment name that is a path", claim(experiment="experiment_0/.."), "no exp")
    refused("a relative shot path", claim(shot="shots/x.h5"), "not an absolute path")
    refused("a NUL in the path", claim(shot=str(victim_folder) + "/a\x00.h5"), "absolute")
    refused("not an .h5 file", claim(shot=str(txt)), "not an .h5 file", untouched=(txt,))
    refused("a path outside the shots folder", claim(shot=str(outside)), "not in the shot folder")
    refused(
        "a '..' path",
        claim(shot=f"{victim_folder}/../../other/experiment_0/{extra.name}"),
        "'.' or '..'",
    )
    refused("a shot of another job", claim(shot=str(extra)), "not in the shot folder")
    refused(
        "a shot whose globals name another job",
        claim(shot=str(foreign)),
        "the shot's own globals say",
        untouched=(foreign,),
    )
    refused("a symlink inside shots/", claim(shot=str(link)), "symbolic link", untouched=(link,))
    refused(
        "a symlinked folder",
        claim(experiment="experiment_1", shot=f"{linked_dir}/secret.h5"),
        "symbolic link",
        untouched=(linked_dir,),
    )
    refused("a hard link", claim(shot=str(hard)), "2 hard links", untouched=(hard, extra))
    refused("a FIFO as the shot", claim(shot=str(fifo)), "not a regular file", untouched=(fifo,))
    refused("a directory as the shot", claim(shot=str(directory)), "not a regular file")
    refused("a shot that does not exist", claim(shot=f"{victim_folder}/gone.h5"), "not exist")
    huge = "{" + " " * (lab.settings.limits.address_file_max_bytes + 10) + "}"
    refused("a huge address file", huge, "more than the limit")

    # Address files that are not regular files, and names of any bytes.
    link_address = addresses / "hostile_link.json"
    target = tmp / "outside" / "address.json"
    target.write_text(json.dumps(claim()))
    link_address.symlink_to(target)
    cases.append(Case("an address that is a symlink", b"hostile_link.json", "refused", "symbolic"))
    hard_address = addresses / "hostile_hard.json"
    os.link(target, hard_address)
    cases.append(Case("a hard-linked address", b"hostile_hard.json", "refused", "hard links"))
    os.mkfifo(addresses / "hostile_fifo.json")
    cases.append(
        Case("an address that is a FIFO", b"hostile_fifo.json", "refused", "not a regular")
    )
    (addresses / "hostile_dir.json").mkdir()
    cases.append(Case("a folder in addresses/", b"hostile_dir.json", "ignored"))
    address(b".hidden.json", claim())
    cases.append(Case("a hidden name", b".hidden.json", "ignored"))
    for name in (b"hostile\xff\xfe.json", b"hostile\nnewline.json", b"h" * 250 + b".json"):
        address(name, "{broken")
        cases.append(Case(f"the name {name[:20]!r}", name, "refused", "not valid JSON"))
    for case in cases:
        case.untouched += [outside, extra, target]

    # The victim's own shots, damaged in place: each must be quarantined (kept).
    shots = sorted(victim)
    real = victim_folder / shots[0]
    data = real.read_bytes()
    damaged: dict[str, str] = {}
    (victim_folder / shots[0]).write_bytes(data[: len(data) // 2])
    damaged[shots[0]] = "cannot be read as HDF5"
    (victim_folder / shots[1]).write_bytes(data[:8] + os.urandom(4096))
    damaged[shots[1]] = "cannot be read as HDF5"
    (victim_folder / shots[2]).write_bytes(b"")
    damaged[shots[2]] = "not an HDF5 file (empty)"
    (victim_folder / shots[3]).write_bytes(b"plain text, no HDF5 signature")
    damaged[shots[3]] = "no HDF5 signature"
    with h5py.File(victim_folder / shots[4], "r+") as shot:
        del shot["globals"]
    damaged[shots[4]] = "it has no globals group"
    with h5py.File(victim_folder / shots[5], "r+") as shot:
        del shot.attrs["sequence_id"]
        shot.create_dataset("junk", data=np.zeros(3))
    damaged[shots[5]] = "it has no sequence_id"
    return cases, damaged


def test_a_hostile_corpus_through_both_daemons_twice(tmp_path: Path) -> None:
    with virtual_lab(tmp_path / "lab", look_ahead_jobs=100, look_ahead_shots=100_000) as lab:
        folders = lab.settings.folders
        lab.submit("victim", {"experiment_0": experiment(1.0, 6, seed=1)}, tmp_path)
        lab.submit("other", {"experiment_0": experiment(1.0, 2, seed=2)}, tmp_path)
        lab.submit("blind", {"experiment_0": experiment(1.0, 2, seed=3)}, tmp_path)
        lab.wait_for_addresses("victim", 6)
        lab.wait_for_addresses("other", 2)
        (blind, _) = lab.wait_for_addresses("blind", 2)
        cases, damaged = build_corpus(lab, tmp_path)
        import h5py

        with h5py.File(blind["shot"], "r+") as shot:  # measured, but the image is lost
            del shot["images"]
        assert len(cases) + len(damaged) >= 30
        before = {p: fingerprint(p) for case in cases for p in case.untouched}

        # The spooler's share: bad job files and names, while it runs, then a restart.
        bad_jobs = sorted((ROOT / "tests" / "bad_jobs").glob("*.json"))
        for path in bad_jobs:
            staged = folders.staging / f".{path.name}.tmp"
            shutil.copy(path, staged)
            os.rename(staged, folders.dump / f"bad_{path.stem}.json")
        for i, name in enumerate([b"job\xff\xfe.json", b"a\nb.json", b"x" * 250 + b".json"]):
            staged = folders.staging / f".n{i}.tmp"
            staged.write_text("{}")
            os.rename(staged, os.path.join(os.fsencode(folders.dump), name))
        waiting = len(bad_jobs) + 3
        wait_until(
            folders.status,
            lambda: len(list(folders.status.glob("*.json"))) >= waiting + 2,
            120,
            "a status file for every bad job",
        )
        assert lab.spooler is not None and lab.spooler.poll() is None, "the spooler died"
        lab.stop_spooler()
        lab.start_spooler()  # the second run over the same tree

        runs = [result_once(lab), result_once(lab)]
        for run in runs:
            assert run.returncode == 0, run.stderr[-3000:]
            for word in ("internal error", "Traceback", "tkinter", "TclError", "tk_exception"):
                assert word not in run.stderr, run.stderr[-3000:]
        assert runs[1].stdout.strip() == "finished 0 shot(s)", runs[1].stdout

        reasons = {  # by the name the item has in the quarantine folder
            p.name.removesuffix(".reason.json"): json.loads(p.read_text())
            for p in folders.quarantine.glob("*.reason.json")
        }
        from spooler.core.items import Quarantine
        from spooler.core.names import escaped, is_plain, plain_name

        wrong = []
        for case in cases:
            address_name = os.fsdecode(case.address_name)
            if case.outcome == "ignored":
                if not os.path.lexists(folders.addresses / address_name):
                    wrong.append(f"{case.what}: not left alone")
                continue
            claimed = address_name if is_plain(address_name) else plain_name(address_name)
            shown = Quarantine.stem_for(claimed)
            if shown not in reasons:
                wrong.append(f"{case.what}: no reason file ({escaped(address_name)})")
                continue
            reason = str(reasons[shown]["reason"])
            if not (reason.startswith("refused: ") and case.reason in reason):
                wrong.append(f"{case.what}: {reason}")
            if not os.path.lexists(folders.quarantine / shown):
                wrong.append(f"{case.what}: the address is not in the quarantine folder")
        assert not wrong, "\n".join(wrong)
        after = {p: fingerprint(p) for p in before}
        touched = [str(p) for p in before if before[p] != after[p]]
        assert not touched, f"files named by refused addresses were touched: {touched}"

        for shot, why in damaged.items():
            quarantined = folders.quarantine / f"victim__{shot}"
            assert quarantined.exists(), shot  # kept, never deleted
            reason = json.loads(
                (quarantined.parent / f"{quarantined.name}.reason.json").read_text()
            )
            assert why in str(reason["reason"]), (shot, reason)
            assert reason["job_id"] == "victim"
        victim = lab.status("victim")
        assert victim["status"] == "ERROR", victim
        assert "6 shot(s) given up" in victim["error_message"]
        other = lab.wait_for_status("other", lambda s: s.get("status") == "DONE", 60)
        assert other["shots_done"] == 2
        blinded = lab.status("blind")  # a readable shot whose analysis fails: archived, ERROR
        assert blinded["status"] == "ERROR" and blinded["shots_done"] == 2, blinded
        assert "camera image (images/top/fluorescence/atoms) is missing" in blinded["error_message"]

        # Afterwards a good job still runs through both daemons.
        lab.start_result_daemon()
        lab.submit("good", {"experiment_0": experiment(3.14159, 3, seed=3)}, tmp_path)
        good = lab.wait_for_status("good", lambda s: s.get("status") in ("DONE", "ERROR"), 180)
        assert good["status"] == "DONE", good
        assert lab.spooler.poll() is None and lab.result is not None and lab.result.poll() is None
        for path in bad_jobs:
            assert lab.status(f"bad_{path.stem}")["status"] == "ERROR", path.name


def _use_the_poison_routine(config: Path, executor: str) -> None:
    settings: dict[str, Any] = yaml.safe_load(config.read_text())
    settings.setdefault("result", {})["routines"] = [
        "result.routines.singlequdit:count_atoms",
        "tests.result.routines_for_tests:die_on_poison",
    ]
    settings["result"]["memory_routine"] = "count_atoms"
    settings["result"]["executor"] = {"kind": executor}
    config.write_text(yaml.safe_dump(settings))


@pytest.mark.parametrize(
    ("executor", "daemon_deaths", "deaths_alone"),
    [("inline", [3], 2), ("processes", [], 3)],
    ids=["inline", "processes"],
)
def test_a_shot_that_kills_its_process_is_handled_alone_then_quarantined(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    executor: str,
    daemon_deaths: list[int],
    deaths_alone: int,
) -> None:
    """inline: the shot kills the daemon, which then analyses it in a process of its own;
    processes: it kills the worker that had it (the daemon lives), and the next ones."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the daemons import the test's routine
    with virtual_lab(
        tmp_path / "lab",
        look_ahead_jobs=100,
        look_ahead_shots=100_000,
        prepare=lambda config: _use_the_poison_routine(config, executor),
    ) as lab:
        lab.submit("poison", {"experiment_0": experiment(1.0, 4, seed=4)}, tmp_path)
        lab.submit("fine", {"experiment_0": experiment(1.0, 3, seed=5)}, tmp_path)
        lab.wait_for_addresses("poison", 4)
        lab.wait_for_addresses("fine", 3)
        deaths = 0
        codes: list[int] = []
        while True:  # what systemd's Restart=on-failure does
            daemon = lab.start_result_daemon()

            def ended(daemon: subprocess.Popen[bytes] = daemon) -> bool:
                return daemon.poll() is not None or (
                    lab.status("fine").get("status") == "DONE"
                    and lab.status("poison").get("status") in ("DONE", "ERROR")
                )

            wait_until(lab.settings.folders.state, ended, 180, "a death or the end")
            if daemon.poll() is None:
                break
            codes.append(daemon.returncode)
            deaths += 1
            lab.result = None
            assert deaths <= 5, "a crash loop"
        assert codes == daemon_deaths, codes
        poison, fine = lab.status("poison"), lab.status("fine")
        assert fine["status"] == "DONE", fine
        assert poison["status"] == "ERROR", poison
        message = poison["error_message"]
        assert ("the result daemon died 1 time(s) while handling this shot" in message) is bool(
            daemon_deaths
        ), message
        assert f"a process analysing it alone died {deaths_alone} time(s) (last: exit code 3)" in (
            message
        )
        assert "shot 1 " in poison["error_message"], poison
        (quarantined,) = [
            p for p in lab.settings.folders.quarantine.glob("poison__*.h5") if p.is_file()
        ]
        assert quarantined.stat().st_size > 0
        assert poison["shots_done"] == 3  # the other three were archived
        lab.stop_result_daemon(signal.SIGTERM)
