"""Rendering a validated experiment into a labscript experiment file, safely.

The file is the apparatus header (trusted, from the configuration) followed by one call
per instruction, ``<object>.<method>([wires], [params])``, and ``<object>.finish()``.
The method comes from the backend's whitelist table, never from the job's text; wires are
written as ``int``, parameters as ``repr`` of finite ``float``. The generated part is
parsed back with :mod:`ast` and every statement must have one of the allowed shapes.

The header is checked once, when it is loaded: it must parse on its own as a complete
module ending in a newline. Appending statements that start in column 0 to a complete
module cannot change how the module parses (no bracket, string or block of the header is
left open for them to continue), so the whole file is the header's statements followed by
the checked ones; :meth:`Renderer.check` verifies exactly that on the whole file, and the
tests check that both agree. The spooler never executes the file.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from spooler.core.backends import Backend
from spooler.core.errors import ConfigError, RenderError
from spooler.core.model import Experiment, Instruction
from spooler.core.strictjson import describe_value

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
        self._allowed = set(self.methods.values())

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
        """The experiment file's source; its generated part is checked before it is returned."""
        lines = [MARKER, "\n"]
        lines.extend(f"{self._call(i)}\n" for i in experiment.instructions)
        lines.append(f"{self.object_name}.{FINISH}()\n")
        generated = "".join(lines)
        self.check_generated(generated)
        return f"{self.header.source}\n{generated}"

    def _call(self, instruction: Instruction) -> str:
        method = self.methods.get(instruction.name) if isinstance(instruction.name, str) else None
        if method is None:
            raise RenderError(f"gate {describe_value(instruction.name)} is not in the whitelist")
        wires = ", ".join(str(_wire(w)) for w in instruction.wires)
        params = ", ".join(repr(_param(p)) for p in instruction.params)
        return f"{self.object_name}.{method}([{wires}], [{params}])"

    def check(self, source: str) -> None:
        """Refuse a whole experiment file unless it is the header followed by allowed statements."""
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise RenderError(f"the rendered experiment does not parse: {exc.msg}") from None
        head = len(self.header.statements)
        if tuple(ast.dump(node) for node in tree.body[:head]) != self.header.statements:
            raise RenderError("the rendered experiment changed the apparatus header")
        self._check_statements(tree.body[head:])

    def check_generated(self, generated: str) -> None:
        """Refuse the generated part unless it starts in column 0 with allowed statements only."""
        if not generated.startswith(MARKER):
            raise RenderError("the generated part must start with the labspool marker")
        try:
            tree = ast.parse(generated)
        except SyntaxError as exc:
            raise RenderError(f"the rendered experiment does not parse: {exc.msg}") from None
        self._check_statements(tree.body)

    def _check_statements(self, body: list[ast.stmt]) -> None:
        if not body or not _is_call(body[-1], self.object_name, {FINISH}, arity=0):
            raise RenderError(
                f"the rendered experiment must end with {self.object_name}.{FINISH}()"
            )
        for node in body[:-1]:
            if not _is_call(node, self.object_name, self._allowed, arity=2) or not _gate_args(node):
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
