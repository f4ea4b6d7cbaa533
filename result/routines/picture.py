"""A picture of a job: the multi-shot routine labspool ships (``result.multishot_routines``).

:func:`draw_job` returns one PNG, ``<job_id>.png`` (written to ``sds/<job_id>/<job_id>.png``;
the job id in the name, so that a copy mailed or pasted elsewhere still says whose it is),
1200 x 800 pixels (12 x 8 inches at 100 dpi), drawn with matplotlib's Agg canvas on a
figure of its own (no pyplot, no global state: safe in the daemon's process). Its title
says the job id, the backend and when the job was complete (UTC, ISO 8601); then two panels
with the same x axis, the experiment index (``experiment_k`` is k) or the scanned parameter:

- **mean** of the shots' results against the experiment index, with the standard error of
  the mean as error bars: for a Rabi scan (experiment k rotates by k·π/N and counts the
  atoms) this is the Rabi flop;
- **distribution** of the shots' results in each experiment: its histogram turned sideways
  and centred on the experiment's column (a violin of bars), a bar's width the share of the
  experiment's shots with that value, the most frequent filling the column; with at most 3
  values in the whole job (occupations 0 and 1) a bar's width is its share of the whole
  column (drawn behind it). Whole numbers are shown one by one, or in bins of whole numbers
  when the job's results take more than 40 values (hundreds of atoms).

The results are the shots' memory entries (:class:`result.multishot.MultishotInput`):
one value per ``measure``, separated by spaces. Each position in the entry (the first
``measure``, the second, ...) is a series of its own ("measure 1", "measure 2", ...), in
its colour and marker, side by side within an experiment's column in the distribution, up
to 8 (the fermions' eight occupations); with more than 8 values a shot, their sum is shown
instead, and said so. A shot without a
value (``""``, nothing measured) counts in no mean; a job where nothing was measured gets a
picture that says so. The axes say the quantity the backend measures (atoms on the spin
machines, occupation on the fermions).

**A scan** (:mod:`result.routines.scan`): when the experiments have the same instructions
(the same gates on the same wires, in the same order) and exactly one parameter of one
instruction takes a different value in each experiment, that parameter is the x axis, named
by its gate and wires in its unit (``rlx angle θ on wire 0 (rad)`` for a Rabi scan), each
experiment at its value (ticks in fractions of π where the angles are such). Otherwise the x
axis is the experiment index. The instructions are the job file's
(``MultishotInput.experiments``), read again: nothing in them can fail the picture.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from result.routines.scan import Scan, scan_axis
from spooler.core.errors import describe_exception
from spooler.core.logs import for_job
from spooler.core.names import picture_name

if TYPE_CHECKING:
    from result.multishot import MultishotInput

__all__ = [
    "DPI",
    "SIZE_PX",
    "Scan",
    "Series",
    "draw_job",
    "job_series",
    "parse_memory",
    "render",
    "scan_axis",
    "title",
]

log = logging.getLogger(__name__)

SIZE_PX = (1200, 800)
DPI = 100
SERIES_MAX = 8  # positions in a memory entry shown one by one; more: their sum
BINS_MAX = 40  # distinct values shown each as its own bar; more: binned
FEW_LEVELS = 3  # distinct values at most for bars of the share of all shots (0 and 1)

# what each machine's memory holds: the labels of the mean and of a shot's value
_QUANTITIES = {
    "singlequdit": ("mean number of atoms", "atoms"),
    "multiqudit": ("mean number of atoms", "atoms"),
    "nali": ("mean number of atoms", "atoms"),
    "fermions": ("mean occupation", "occupation"),
}
_UNKNOWN = ("mean value", "value")
# what a gate's parameter is (spooler.core.backends names them): its words and unit
INDEX_LABEL = "experiment index (experiment_k)"
_INDEX = re.compile(r"experiment_([0-9]+)")
_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h")


def draw_job(job: MultishotInput) -> dict[str, bytes]:
    """The job's picture: ``{"<job_id>.png": PNG bytes}``."""
    return {picture_name(job.job_id): render(job)}


def parse_memory(entry: str) -> list[float]:
    """A memory entry's values: ``"3 0 7"`` is ``[3.0, 0.0, 7.0]``, ``""`` is ``[]``; a value
    that is not a finite number is a ValueError (the picture fails, said in the result's
    header, rather than drawing something else than the shots gave)."""
    values = [float(value) for value in entry.split()]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"a memory entry that is not finite numbers: {entry!r}")
    return values


@dataclass(frozen=True)
class Series:
    """One curve: a position in the memory entries (or their sum), each experiment's values."""

    label: str
    points: list[tuple[float, list[float]]]  # (experiment index, one value per shot with it)

    def means(self) -> list[tuple[float, float, float]]:
        """(experiment index, mean, standard error of the mean) where there are values."""
        out = []
        for x, values in self.points:
            if not values:
                continue
            n = len(values)
            mean = sum(values) / n
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
            out.append((x, mean, sd / math.sqrt(n)))
        return out


def job_series(job: MultishotInput, scan: Scan | None = None) -> list[Series]:
    """The job's curves (none: nothing was measured): one per position in the memory
    entries, up to ``SERIES_MAX``; past that, one of their sums. Each experiment at its
    index, or at its value of *scan* (the experiments then in the order of their values)."""
    parsed = [
        (
            scan.values[name] if scan else _index(name, position),
            [parse_memory(entry) for entry in job.memory.get(name, [])],
        )
        for position, name in enumerate(job.frames)
    ]
    parsed.sort(key=lambda item: item[0])
    width = max((len(values) for _, shots in parsed for values in shots), default=0)
    if width > SERIES_MAX:
        summed = [(x, [sum(v) for v in shots if v]) for x, shots in parsed]
        return [Series(f"sum of the {width} values", summed)]
    labels = ["mean ± s.e.m."] if width == 1 else [f"measure {i + 1}" for i in range(width)]
    return [
        Series(label, [(x, [v[i] for v in shots if len(v) > i]) for x, shots in parsed])
        for i, label in enumerate(labels)
    ]


def title(job: MultishotInput) -> str:
    """The picture's title: the job, the backend, when it was complete (UTC), its size."""
    when = datetime.fromtimestamp(job.finished_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    shots = sorted({len(job.memory.get(name, [])) for name in job.frames})
    count = len(job.frames)
    many = f"{count} experiment{'s' if count != 1 else ''}"
    if shots:
        each = f"{shots[0]}" if len(shots) == 1 else f"{shots[0]} to {shots[-1]}"
        many += f" of {each} shot{'s' if shots[-1] != 1 else ''}" + (" each" if count > 1 else "")
    return f"Job {job.job_id}  ·  {job.backend}  ·  {when}\n{many}"


def _index(name: str, position: int) -> float:
    match = _INDEX.fullmatch(name)
    return float(match[1]) if match else float(position)


def render(job: MultishotInput) -> bytes:
    """The PNG's bytes."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scan = _scan_or_none(job)
    series = job_series(job, scan)
    xs = list(scan.values.values()) if scan else [_index(n, i) for i, n in enumerate(job.frames)]
    spacing = _spacing(xs)
    mean_label, unit = _QUANTITIES.get(job.backend, _UNKNOWN)
    figure = Figure(figsize=(SIZE_PX[0] / DPI, SIZE_PX[1] / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title(job), fontsize=15)
    mean_axes, spread_axes = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": (1.15, 1)}
    )
    if not series:
        for axes in (mean_axes, spread_axes):
            axes.text(
                0.5,
                0.5,
                "nothing was measured (every memory entry is empty)",
                ha="center",
                va="center",
                transform=axes.transAxes,
                fontsize=13,
                color="0.4",
            )
            axes.set_yticks([])
    else:
        summed = f"\n({series[0].label})" if series[0].label.startswith("sum") else ""
        _means(mean_axes, series, mean_label + summed)
        _distribution(spread_axes, series, f"{unit} per shot{summed}", spacing)
    for axes in (mean_axes, spread_axes):
        axes.grid(True, color="0.88", linewidth=0.8)
        axes.set_axisbelow(True)
    spread_axes.set_xlabel(scan.label if scan else INDEX_LABEL, fontsize=12)
    _experiment_ticks(spread_axes, xs, spacing, in_pi=scan is not None and scan.unit == "rad")
    out = io.BytesIO()
    figure.savefig(
        out,
        format="png",
        dpi=DPI,
        metadata={"Title": f"labspool job {job.job_id}", "Software": "labspool"},
    )
    return out.getvalue()


def _colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    return [colormaps["tab10"](i) for i in range(count)]


def _means(axes: Any, series: list[Series], ylabel: str) -> None:
    colours = _colours(len(series))
    for s, curve in enumerate(series):
        points = curve.means()
        axes.errorbar(
            [x for x, _, _ in points],
            [mean for _, mean, _ in points],
            yerr=[error for _, _, error in points],
            color=colours[s],
            marker=_MARKERS[s % len(_MARKERS)],
            markersize=6,
            linewidth=1.6,
            elinewidth=1.4,
            capsize=4,
            label=curve.label,
        )
    axes.set_ylabel(ylabel, fontsize=12)
    axes.set_title("Mean of the shots (error bars: standard error of the mean)", fontsize=12)
    if len(series) > 1:  # the distribution's bars have the same colours
        axes.legend(
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=10,
            title="value of",
            title_fontsize=10,
            framealpha=0.9,
        )


def _distribution(axes: Any, series: list[Series], ylabel: str, spacing: float) -> None:
    """Each experiment's histogram of each series, turned sideways and centred on its column
    (a violin of bars): a bar's width is the share of the experiment's shots in it, the
    experiment's most frequent value filling the series' column; with at most
    ``FEW_LEVELS`` values in the whole job (occupations 0 and 1) the whole column is all of
    the shots, the bars of an experiment adding up to it."""
    from matplotlib.ticker import MaxNLocator

    every = [v for curve in series for _, values in curve.points for v in values]
    levels = sorted(set(every))
    few = len(levels) <= FEW_LEVELS
    low, high = levels[0], levels[-1]
    integral = all(v.is_integer() for v in levels)
    binned = len(levels) > BINS_MAX
    if not binned:  # each value its own bar
        gaps = [b - a for a, b in itertools.pairwise(levels)]
        step = 1.0 if integral or not gaps else min(gaps)
    elif integral:  # whole numbers in bins of whole numbers, each bar at its bin's middle
        step = math.ceil((high - low + 1) / BINS_MAX)
    else:
        step = (high - low) / BINS_MAX
    height = max(step, (high - low) / BINS_MAX)  # a bar visible however far apart they are

    def place(v: float) -> float:
        if not binned:
            return v
        if integral:
            return low + (v - low) // step * step + (step - 1) / 2
        return low + (min(int((v - low) / step), BINS_MAX - 1) + 0.5) * step

    column = 0.84 * spacing / len(series)  # an experiment's column: 0.84 of the spacing
    colours = _colours(len(series))
    for s, curve in enumerate(series):
        offset = (s - (len(series) - 1) / 2) * column
        ys, widths, lefts = [], [], []
        if few:  # the column, all of the shots, behind each bar
            slots = [(x + offset, v) for x, values in curve.points if values for v in levels]
            axes.barh(
                [v for _, v in slots],
                0.94 * column,
                left=[x - 0.47 * column for x, _ in slots],
                height=height * 0.5,
                color="0.94",
                edgecolor="0.8",
                linewidth=0.5,
            )
        for x, values in curve.points:
            counts: dict[float, int] = {}
            for v in values:
                counts[place(v)] = counts.get(place(v), 0) + 1
            most = len(values) if few else max(counts.values(), default=1)
            for v, n in counts.items():
                bar = 0.94 * column * n / most
                ys.append(v)
                widths.append(bar)
                lefts.append(x + offset - bar / 2)
        axes.barh(
            ys,
            widths,
            left=lefts,
            height=height * (0.5 if few else 0.85),
            color=colours[s],
            alpha=0.85,
            linewidth=0,
            label=curve.label,
        )
    axes.set_ylabel(ylabel, fontsize=12)
    if integral:
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    bins = f" in bins of {step:.3g}" if binned else ""
    scale = "the column is all of them" if few else "the most frequent filling the column"
    axes.set_title(
        f"Distribution of the shots' results{bins} (bar width: share of the experiment's "
        f"shots, {scale})",
        fontsize=12,
    )


def _spacing(xs: list[float]) -> float:
    """The smallest distance between two experiments along x (1 for one experiment)."""
    gaps = [b - a for a, b in itertools.pairwise(sorted(xs)) if b > a]
    return min(gaps) if gaps else 1.0


def _experiment_ticks(axes: Any, xs: list[float], spacing: float, *, in_pi: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    if not xs:
        axes.set_xticks([])
        return
    axes.set_xlim(min(xs) - 0.6 * spacing, max(xs) + 0.6 * spacing)
    if len(xs) <= 25:
        labels = [pi_fraction(x) for x in xs] if in_pi else None
        if labels is None or None in labels:
            labels = [f"{x:.4g}" for x in xs]
        axes.set_xticks(xs, labels)
    elif not in_pi:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def pi_fraction(x: float) -> str | None:
    """*x* as a fraction of π (``3π/4``, ``π``, ``0``) when it is one with a denominator of at
    most 24, else None."""
    share = Fraction(x / math.pi).limit_denominator(24)
    if abs(float(share) * math.pi - x) > 1e-9 * max(1.0, abs(x)):
        return None
    if share == 0:
        return "0"
    top = {1: "π", -1: "-π"}.get(share.numerator, f"{share.numerator}π")
    return top if share.denominator == 1 else f"{top}/{share.denominator}"


def _scan_or_none(job: MultishotInput) -> Scan | None:
    try:
        return scan_axis(job.backend, job.experiments, list(job.frames))
    except Exception as exc:  # a fault of this code, not the job's: the index axis, said
        for_job(log, job.job_id).warning("the picture's scan axis: %s", describe_exception(exc))
        return None
