from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

from spooler.core.backends import get_backend
from spooler.core.errors import RenderError
from spooler.core.model import Experiment, Instruction
from spooler.core.resources import config_dir
from spooler.core.settings import Limits
from spooler.pipeline.render import MARKER, Renderer
from spooler.pipeline.validation import JobValidator
from spooler.virtual import machines

HEADER = config_dir() / "apparatus" / "singlequdit.py"


def renderer(header: Path = HEADER) -> Renderer:
    return Renderer(get_backend("singlequdit"), header, "apparatus")


def single(*instructions: Instruction) -> Experiment:
    return Experiment("experiment_0", tuple(instructions), 1, 1, "sequential")


def test_renders_one_call_per_instruction_after_the_header() -> None:
    source = renderer().render(
        single(
            Instruction("load", (0,), (50.0,)),
            Instruction("rlx", (0,), (0.1 + 0.2,)),
            Instruction("measure", (0,), ()),
        )
    )
    head, tail = source.split(MARKER)
    assert head.rstrip("\n") == HEADER.read_text().rstrip("\n")
    assert tail.strip().splitlines() == [
        "apparatus.load([0], [50.0])",
        "apparatus.rlx([0], [0.30000000000000004])",
        "apparatus.measure([0], [])",
        "apparatus.finish()",
    ]
    compile(source, "experiment_0.py", "exec")


def test_parameters_survive_exactly() -> None:
    value = math.pi / 3
    source = renderer().render(single(Instruction("rlz", (0,), (value,))))
    call = ast.parse(source).body[-2]
    assert isinstance(call, ast.Expr) and isinstance(call.value, ast.Call)
    assert ast.literal_eval(call.value.args[1]) == [value]


@pytest.mark.parametrize(
    "instruction",
    [
        Instruction("import os", (0,), (0.1,)),
        Instruction("rlx", (0,), (float("nan"),)),
        Instruction("rlx", (0,), (float("inf"),)),
        Instruction("rlx", (True,), (0.1,)),
        Instruction("rlx", (0,), ("0.1",)),  # type: ignore[arg-type]
        Instruction("rlx", (-1,), (0.1,)),
        Instruction("__class__", (0,), ()),
    ],
)
def test_render_refuses_what_validation_should_have_stopped(instruction: Instruction) -> None:
    with pytest.raises(RenderError):
        renderer().render(single(instruction))


@pytest.mark.parametrize(
    "tail",
    [
        "import os\napparatus.finish()\n",
        "apparatus.rlx([0], [0.1]); os.system('x')\napparatus.finish()\n",
        "apparatus.rlx([0], [__import__('os')])\napparatus.finish()\n",
        "apparatus.rlx([0], [0.1], extra=1)\napparatus.finish()\n",
        "apparatus.rlx.__globals__([0], [0.1])\napparatus.finish()\n",
        "apparatus.finish.__self__([0], [0.1])\napparatus.finish()\n",
        "other.rlx([0], [0.1])\napparatus.finish()\n",
        "apparatus.rlx([0.5], [0.1])\napparatus.finish()\n",
        "apparatus.rlx([0], [1e999])\napparatus.finish()\n",
        "apparatus.rlx([0], [0.1])\n",
        "apparatus.finish()\nprint(1)\n",
        "def f(): pass\napparatus.finish()\n",
    ],
)
def test_check_refuses_every_other_shape(tail: str) -> None:
    r = renderer()
    with pytest.raises(RenderError):
        r.check(r.header.source + "\n" + tail)


def test_check_notices_a_changed_header(tmp_path: Path) -> None:
    r = renderer()
    changed = r.header.source.replace("start()", "start(); import os")
    with pytest.raises(RenderError, match="changed the apparatus header"):
        r.check(changed + "apparatus.finish()\n")


def test_an_unterminated_header_string_cannot_swallow_the_calls(tmp_path: Path) -> None:
    header = tmp_path / "header.py"
    header.write_text('x = """\n')
    from spooler.core.errors import ConfigError

    with pytest.raises(ConfigError, match="does not parse"):
        _ = renderer(header).header


def test_every_shipped_backend_renders_onto_its_shipped_header() -> None:
    for name in ("singlequdit", "multiqudit", "fermions", "nali"):
        backend = get_backend(name)
        header = config_dir() / "apparatus" / f"{name}.py"
        header = header if header.exists() else config_dir() / "apparatus" / "generic.py"
        tree = ast.parse(header.read_text())
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
        defined = {
            t.id if isinstance(t, ast.Name) else t.name
            for c in classes
            for n in c.body
            for t in ([n] if isinstance(n, ast.FunctionDef) else getattr(n, "targets", []))
        }
        if not classes:  # the header makes one of the shipped virtual machines
            made = next(
                n.value.func.id
                for n in tree.body
                if isinstance(n, ast.Assign)
                and isinstance(n.value, ast.Call)
                and isinstance(n.value.func, ast.Name)
                and any(isinstance(t, ast.Name) and t.id == "apparatus" for t in n.targets)
            )
            defined = set(dir(getattr(machines, made)))
        missing = {g.method for g in backend.gates.values()} - defined
        assert not missing, f"{header.name} lacks {missing} for {name}"


def test_validated_job_renders() -> None:
    validator = JobValidator(get_backend("singlequdit"), Limits())
    job = validator.validate_bytes(
        json.dumps(
            {"experiment_0": {"instructions": [["rlz2", [0], [60]]], "num_wires": 1, "shots": 1}}
        ).encode()
    )
    assert "apparatus.rlz2([0], [60.0])" in renderer().render(job.experiments[0])
