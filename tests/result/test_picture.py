"""The shipped multi-shot routine: a job's picture (result/routines/picture.py)."""

from __future__ import annotations

import dataclasses
import io
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from result.routines.picture import (
    SIZE_PX,
    draw_job,
    job_series,
    parse_memory,
    pi_fraction,
    scan_axis,
    title,
)
from tests.result.multishot_frames import job_of, rabi_memory, rabi_p, wires_memory

ROOT = Path(__file__).resolve().parents[2]


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """The PNG's chunks (type, data), each one's CRC checked."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "the PNG signature"
    out, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + data) == crc, f"the CRC of {kind!r}"
        out.append((kind, data))
        at += 12 + length
    return out


def check_png(png: bytes) -> tuple[int, int]:
    """A well-formed PNG's size in pixels (IHDR first, IEND last, the image decodable)."""
    from PIL import Image

    found = chunks(png)
    assert found[0][0] == b"IHDR" and found[-1] == (b"IEND", b"")
    width, height = struct.unpack(">II", found[0][1][:8])
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
    return width, height


def colours(png: bytes) -> set[object]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}


def test_a_rabi_scan_is_one_png_of_the_documented_size_named_after_the_job() -> None:
    files = draw_job(job_of(rabi_memory(), job_id="rabi-7"))
    assert list(files) == ["rabi-7.png"]
    png = files["rabi-7.png"]
    assert check_png(png) == SIZE_PX == (1200, 800)
    assert (31, 119, 180) in colours(png), "the series in matplotlib's first colour"
    text = {data for kind, data in chunks(png) if kind == b"tEXt"}
    assert b"Title\x00labspool job rabi-7" in text


def test_the_mean_of_a_rabi_scan_follows_the_rabi_flop() -> None:
    """Experiment k rotates by k·π/N: the means rise as N·sin²(θ/2), within their errors."""
    experiments, shots, atoms = 11, 200, 50
    memory = rabi_memory(experiments, shots, atoms, scan=math.pi, seed=11)
    (series,) = job_series(job_of(memory))
    means = series.means()
    assert [x for x, _, _ in means] == list(range(experiments))
    for k, (_, mean, sem) in enumerate(means):
        p = rabi_p(k, experiments, math.pi)
        expected_sem = math.sqrt(atoms * p * (1 - p) / shots)
        assert abs(mean - atoms * p) <= 5 * expected_sem + 1e-9, f"experiment {k}"
        assert sem == pytest.approx(expected_sem, rel=0.3, abs=1e-9)
    assert [m for _, m, _ in means] == sorted(m for _, m, _ in means), "a rising flop"


def test_each_measured_value_is_a_series_up_to_eight() -> None:
    memory = wires_memory(4, experiments=3, shots=30)
    job = job_of(memory, backend="multiqudit")
    series = job_series(job)
    assert [s.label for s in series] == ["measure 1", "measure 2", "measure 3", "measure 4"]
    for w, curve in enumerate(series):
        for k, (x, mean, _) in enumerate(curve.means()):
            column = [int(entry.split()[w]) for entry in memory[f"experiment_{k}"]]
            assert x == k
            assert mean == pytest.approx(np.mean(column))
    assert check_png(draw_job(job)[f"{job.job_id}.png"]) == SIZE_PX


def test_eight_occupations_are_eight_series() -> None:
    memory = wires_memory(8, draw=lambda rng, k, w: int(rng.random() < (k + w) % 3 / 2))
    job = job_of(memory, job_id="hop", backend="fermions")
    assert len(job_series(job)) == 8
    assert check_png(draw_job(job)["hop.png"]) == SIZE_PX


def test_more_than_eight_values_are_summed() -> None:
    memory = wires_memory(12, experiments=2, shots=5)
    (series,) = job_series(job_of(memory))
    assert series.label == "sum of the 12 values"
    for k, (_, mean, _) in enumerate(series.means()):
        sums = [sum(map(int, entry.split())) for entry in memory[f"experiment_{k}"]]
        assert mean == pytest.approx(np.mean(sums))


def test_shots_that_measured_nothing_count_in_no_mean() -> None:
    job = job_of({"experiment_0": ["2", "", "4"], "experiment_1": ["", ""], "experiment_2": ["7"]})
    (series,) = job_series(job)
    (x0, mean0, sem0), (x2, mean2, sem2) = series.means()  # experiment_1: no mean
    assert (x0, mean0, x2, mean2, sem2) == (0, 3, 2, 7, 0)
    assert sem0 == pytest.approx(1.0)  # the standard deviation √2 of 2 values
    assert check_png(draw_job(job)["flop.png"]) == SIZE_PX


def test_shots_with_fewer_values_count_in_the_series_they_have() -> None:
    job = job_of({"experiment_0": ["1 10", "3", "5 30"]})
    first, second = job_series(job)
    assert first.points == [(0.0, [1.0, 3.0, 5.0])]
    assert second.points == [(0.0, [10.0, 30.0])]


def test_a_job_that_measured_nothing_still_gets_a_picture() -> None:
    job = job_of({"experiment_0": ["", ""], "experiment_1": [""]}, job_id="dark")
    assert job_series(job) == []
    assert check_png(draw_job(job)["dark.png"]) == SIZE_PX
    lone = job_of({"experiment_0": ["5"]}, job_id="lone")
    assert check_png(draw_job(lone)["lone.png"]) == SIZE_PX


def test_wide_and_fractional_values_are_drawn() -> None:
    wide = job_of(rabi_memory(5, 50, 500, seed=2), job_id="wide")  # more than 40 values: binned
    fractions = job_of(
        {f"experiment_{k}": [f"{k / 7 + i / 100:.3f}" for i in range(9)] for k in (0, 1)}
    )
    for job in (wide, fractions):
        assert check_png(draw_job(job)[f"{job.job_id}.png"]) == SIZE_PX


def test_the_title_says_the_job_the_backend_and_the_time_in_utc() -> None:
    job = job_of(rabi_memory(3, 4), job_id="t-1", backend="nali", finished_at=1_773_500_966.5)
    assert title(job) == "Job t-1  ·  nali  ·  2026-03-14T15:09:26Z\n3 experiments of 4 shots each"


def test_the_picture_is_the_same_for_the_same_job_and_differs_for_another() -> None:
    """Reprocessing rewrites the same bytes; a picture that ignored the data would not differ."""
    a, b = (draw_job(job_of(rabi_memory(seed=s)))["flop.png"] for s in (1, 2))
    assert a == draw_job(job_of(rabi_memory(seed=1)))["flop.png"]
    assert a != b


@pytest.mark.parametrize("entry", ["3 x", "nan", "1 inf"])
def test_a_memory_entry_that_is_not_numbers_fails_the_picture(entry: str) -> None:
    with pytest.raises(ValueError):
        draw_job(job_of({"experiment_0": ["1", entry]}))


def test_parse_memory() -> None:
    assert parse_memory("3 0 7") == [3.0, 0.0, 7.0]
    assert parse_memory("") == []
    assert parse_memory(" 0  1 ") == [0.0, 1.0]


def test_no_pyplot_no_global_state() -> None:
    """The daemon's process: drawing imports no pyplot and leaves matplotlib's settings."""
    code = (
        "import sys, matplotlib\n"
        # dict's own items: reading rcParams['backend'] would import pyplot itself
        "settings = lambda: repr(sorted(dict.items(matplotlib.rcParams)))\n"
        "before = settings()\n"
        "from tests.result.multishot_frames import job_of, rabi_memory\n"
        "from result.routines.picture import draw_job\n"
        "draw_job(job_of(rabi_memory(3, 5)))\n"
        "print('matplotlib.pyplot' in sys.modules, settings() == before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


def rabi_experiments(angles: list[float], atoms: int = 50) -> dict[str, Any]:
    """A Rabi scan's experiments as the job file has them: load, rlx by the angle, measure."""
    return {
        f"experiment_{k}": {
            "instructions": [["load", [0], [atoms]], ["rlx", [0], [a]], ["measure", [0], []]],
            "num_wires": 1,
            "shots": 4,
            "wire_order": "sequential",
        }
        for k, a in enumerate(angles)
    }


def scan_job(experiments: dict[str, Any], memory: dict[str, list[str]], **kw: Any) -> Any:
    return dataclasses.replace(job_of(memory, **kw), experiments=experiments)


def test_a_rabi_scan_is_drawn_against_the_angle_in_radians() -> None:
    angles = [k * math.pi / 4 for k in range(5)]
    memory = rabi_memory(5, 20, 50, scan=math.pi, seed=3)
    job = scan_job(rabi_experiments(angles), memory)
    scan = scan_axis("singlequdit", job.experiments, list(job.frames))
    assert scan is not None
    assert scan.label == "rlx angle θ on wire 0 (rad)" and scan.unit == "rad"
    assert list(scan.values.values()) == angles
    (series,) = job_series(job, scan)
    assert [x for x, _, _ in series.means()] == angles
    assert [pi_fraction(a) for a in angles] == ["0", "π/4", "π/2", "3π/4", "π"]
    assert pi_fraction(1.0) is None
    assert check_png(draw_job(job)["flop.png"]) == SIZE_PX


def test_the_scan_axis_changes_the_picture() -> None:
    """The same shots drawn against the angle or the index: different pictures."""
    memory = rabi_memory(4, 10, 50, seed=4)
    scanned = draw_job(scan_job(rabi_experiments([0.0, 0.5, 1.0, 2.0]), memory))["flop.png"]
    assert scanned != draw_job(job_of(memory))["flop.png"]


def test_a_hubbard_scan_names_the_interaction_on_its_eight_wires() -> None:
    def hubbard(u: float) -> dict[str, Any]:
        return {
            "instructions": [
                ["load", [0], []],
                ["load", [3], []],
                ["fhop", [0, 1, 2, 3], [0.8]],
                ["fint", list(range(8)), [u]],
                ["measure", [0], []],
                ["measure", [1], []],
            ],
            "num_wires": 8,
            "shots": 3,
        }

    experiments = {f"experiment_{k}": hubbard(0.3 * k) for k in range(4)}
    scan = scan_axis("fermions", experiments, list(experiments))
    assert scan is not None and scan.label == "fint angle θ on wires 0–7 (rad)"
    memory = wires_memory(2, experiments=4, shots=3, draw=lambda rng, k, w: int(rng.random() < 0.5))
    job = scan_job(experiments, memory, backend="fermions")
    assert check_png(draw_job(job)["flop.png"]) == SIZE_PX


def test_a_gate_twice_on_one_wire_says_which() -> None:
    experiments = {
        f"experiment_{k}": {
            "instructions": [["rlx", [0], [0.5]], ["rlz", [0], [1.0]], ["rlx", [0], [0.1 * k]]]
        }
        for k in range(3)
    }
    scan = scan_axis("singlequdit", experiments, list(experiments))
    assert scan is not None and scan.label == "the 2nd rlx angle θ on wire 0 (rad)"
    load = {f"experiment_{k}": {"instructions": [["load", [0], [10 * (k + 1)]]]} for k in range(3)}
    scan = scan_axis("singlequdit", load, list(load))
    assert scan is not None and scan.label == "load atom number on wire 0" and scan.unit == ""


ODD: list[Any] = [
    None,
    "rlx",
    {"instructions": "rlx"},
    {"instructions": [["rlx", [0]]]},
    {"instructions": [["rlx", [0], ["0.5"]]]},
    {"instructions": [["rlx", [0], [True]]]},
    {"instructions": [["rlx", [0.5], [0.5]]]},
    {"instructions": [[7, [0], [0.5]]]},
    {"instructions": [["rlx", [0], [float("nan")]]]},
    {"instructions": [["rlx", [0], [1e400]]]},
    {"instructions": [["rlx", [0], [[0.5]]]]},
]


@pytest.mark.parametrize("odd", ODD)
def test_odd_instructions_are_drawn_against_the_index(odd: Any) -> None:
    experiments = rabi_experiments([0.0, 1.0, 2.0])
    experiments["experiment_1"] = odd
    memory = rabi_memory(3, 5, 10, seed=1)
    assert scan_axis("singlequdit", experiments, list(memory)) is None
    assert check_png(draw_job(scan_job(experiments, memory))["flop.png"]) == SIZE_PX


def instructions(*params: tuple[float, float], gates: tuple[str, str] = ("load", "rlx")) -> Any:
    return {
        f"experiment_{k}": {"instructions": [[gates[0], [0], [a]], [gates[1], [0], [b]]]}
        for k, (a, b) in enumerate(params)
    }


@pytest.mark.parametrize(
    ("backend", "experiments", "why"),
    [
        ("singlequdit", instructions((10, 0.1), (20, 0.2)), "two parameters vary"),
        ("singlequdit", instructions((10, 0.1), (10, 0.1)), "none varies"),
        ("singlequdit", instructions((10, 0.1), (10, 0.2), (10, 0.1)), "a value repeats"),
        ("singlequdit", instructions((10, 0.1)), "one experiment"),
        ("nosuch", instructions((10, 0.1), (10, 0.2)), "an unknown backend"),
        ("singlequdit", instructions((10, 0.1), (10, 0.2), gates=("load", "warp")), "a gate"),
        (
            "singlequdit",
            {
                "experiment_0": {"instructions": [["rlx", [0], [0.1]]]},
                "experiment_1": {"instructions": [["rlz", [0], [0.2]]]},
            },
            "different gates",
        ),
        (
            "singlequdit",
            {
                "experiment_0": {"instructions": [["rlx", [0], [0.1]]]},
                "experiment_1": {"instructions": [["rlx", [0], [0.1]], ["rlx", [0], [0.2]]]},
            },
            "different lengths",
        ),
        ("singlequdit", {}, "no job file"),
    ],
)
def test_otherwise_the_x_axis_is_the_experiment_index(
    backend: str, experiments: dict[str, Any], why: str
) -> None:
    names = list(experiments) or ["experiment_0", "experiment_1"]
    assert scan_axis(backend, experiments, names) is None, why


def test_a_job_of_many_instructions_is_not_read_for_a_scan() -> None:
    many = [["rlz", [0], [0.5]]] * 6000
    experiments = {
        f"experiment_{k}": {"instructions": [*many, ["rlx", [0], [0.1 * k]]]} for k in range(2)
    }
    assert scan_axis("singlequdit", experiments, list(experiments)) is None


def test_a_fault_of_the_scan_axis_leaves_the_index_and_the_picture(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("result.routines.picture.scan_axis", broken)
    memory = rabi_memory(3, 5, 10, seed=1)
    job = scan_job(rabi_experiments([0.0, 1.0, 2.0]), memory)
    assert draw_job(job)["flop.png"] == draw_job(job_of(memory))["flop.png"]
    assert "a bug" in caplog.text
