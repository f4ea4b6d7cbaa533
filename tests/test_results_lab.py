"""The result daemon end to end on the virtual lab: DONE jobs with result files and CSVs."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from tests.labtools import VirtualLab, in_lab, needs_suite, virtual_lab
from tests.test_virtual_lab import experiment

pytestmark = [pytest.mark.lab, pytest.mark.slow, needs_suite]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualLab]:
    root = tmp_path_factory.mktemp("results") / "lab"
    with virtual_lab(root, max_engaged_jobs=1, result_daemon=True) as running:
        yield running


def done(lab: VirtualLab, job_id: str, timeout_s: float = 300) -> dict[str, Any]:
    status = lab.wait_for_status(job_id, lambda s: s.get("status") in ("DONE", "ERROR"), timeout_s)
    assert status["status"] == "DONE", status
    return json.loads((lab.settings.folders.results / f"{job_id}.json").read_text())  # type: ignore[no-any-return]


def binomial_p_value(counts: np.ndarray, atoms: int, p_up: float) -> float:
    edges = np.unique(stats.binom.ppf(np.linspace(0, 1, 9)[1:-1], atoms, p_up))
    bins = np.concatenate(([-0.5], edges + 0.5, [atoms + 0.5]))
    observed = np.histogram(counts, bins)[0]
    cdf = stats.binom.cdf(bins[1:] - 0.5, atoms, p_up) - stats.binom.cdf(
        bins[:-1] - 0.5, atoms, p_up
    )
    return float(stats.chisquare(observed, cdf / cdf.sum() * len(counts)).pvalue)


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
