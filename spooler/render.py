"""Rendering a validated experiment into a labscript experiment file, safely.

The file is the apparatus header (trusted, from the configuration) followed by one call
per instruction, ``<object>.<method>([wires], [params])``, and ``<object>.finish()``.
The method comes from the backend's whitelist table, never from the job's text; wires are
written as ``int``, parameters as ``repr`` of finite ``float``. The result is parsed back
with :mod:`ast`: the header must parse to exactly what it parses to alone, and every
generated statement must have one of the allowed shapes. The spooler never executes it.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .backends import Backend
from .errors import ConfigError, RenderError
from .model import Experiment, Instruction
from .strictjson import describe_value

__all__ = ["MARKER", "Renderer"]

MARKER = "# ---- rendered by labspool: one call per instruction ----"
FINISH = "finish"


@dataclass(frozen=True)
class _Header:
    source: str
    statements: tuple[str, ...]  # ast.dump of each top-level statement


class Renderer:
    """Renders experiments of one backend onto one apparatus header."""

    def __init__(self, backend: Backend, header_path: Path, object_name: str) -> None:
        self.backend = backend
        self.header_path = header_path
        self.object_name = object_name
        self.methods = {name: gate.method for name, gate in backend.gates.items()}

    @cached_property
    def header(self) -> _Header:
        try:
            source = self.header_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{self.header_path}: cannot read the apparatus header: {exc}"
            ) from exc
        if not source.endswith("\n"):
            source += "\n"
        try:
            tree = ast.parse(source, filename=str(self.header_path))
        except SyntaxError as exc:
            raise ConfigError(
                f"{self.header_path}: the apparatus header does not parse: {exc}"
            ) from exc
        return _Header(source, tuple(ast.dump(node) for node in tree.body))

    def render(self, experiment: Experiment) -> str:
        """The experiment file's source, checked by :meth:`check` before it is returned."""
        lines = [self.header.source, "\n", MARKER, "\n"]
        lines.extend(f"{self._call(i)}\n" for i in experiment.instructions)
        lines.append(f"{self.object_name}.{FINISH}()\n")
        source = "".join(lines)
        self.check(source)
        return source

    def _call(self, instruction: Instruction) -> str:
        method = self.methods.get(instruction.name) if isinstance(instruction.name, str) else None
        if method is None:
            raise RenderError(f"gate {describe_value(instruction.name)} is not in the whitelist")
        wires = ", ".join(str(_wire(w)) for w in instruction.wires)
        params = ", ".join(repr(_param(p)) for p in instruction.params)
        return f"{self.object_name}.{method}([{wires}], [{params}])"

    def check(self, source: str) -> None:
        """Refuse *source* unless it is the header followed by allowed statements only."""
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise RenderError(f"the rendered experiment does not parse: {exc.msg}") from None
        head = len(self.header.statements)
        if tuple(ast.dump(node) for node in tree.body[:head]) != self.header.statements:
            raise RenderError("the rendered experiment changed the apparatus header")
        body = tree.body[head:]
        if not body or not _is_call(body[-1], self.object_name, {FINISH}, arity=0):
            raise RenderError(
                f"the rendered experiment must end with {self.object_name}.{FINISH}()"
            )
        allowed = set(self.methods.values())
        for node in body[:-1]:
            if not _is_call(node, self.object_name, allowed, arity=2) or not _gate_args(node):
                raise RenderError(
                    f"line {getattr(node, 'lineno', '?')} of the rendered experiment has a "
                    "shape that is not allowed"
                )


def _wire(value: object) -> int:
    if type(value) is not int or value < 0:
        raise RenderError(f"wire {describe_value(value)} is not a non-negative integer")
    return value


def _param(value: object) -> float:
    if type(value) not in (int, float):
        raise RenderError(f"parameter {describe_value(value)} is not a number")
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise RenderError(f"parameter {describe_value(value)} is not finite")
    return number


def _is_call(node: ast.stmt, obj: str, methods: set[str], *, arity: int) -> bool:
    if not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Call):
        return False
    call = node.value
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == obj
        and func.attr in methods
        and not call.keywords
        and len(call.args) == arity
    )


def _gate_args(node: ast.stmt) -> bool:
    assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    wires, params = node.value.args
    return (
        isinstance(wires, ast.List)
        and isinstance(params, ast.List)
        and all(_is_const(e, int) for e in wires.elts)
        and all(_is_float(e) for e in params.elts)
    )


def _is_const(node: ast.expr, kind: type) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is kind


def _is_float(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return _is_const(node, float) and math.isfinite(node.value)  # type: ignore[attr-defined]


def render_all(renderer: Renderer, experiments: Iterable[Experiment]) -> dict[str, str]:
    """Source per experiment name."""
    return {experiment.name: renderer.render(experiment) for experiment in experiments}
