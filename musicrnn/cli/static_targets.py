"""What a config's `_target_` accepts, read from its source with `ast` instead of importing it.

The CLIs check a composed config (unknown keys, types, ranges, which representation the data gives and the
model reads) before any work starts. Importing the targets to ask them would import torch (~2 s here) and
Lightning (~4.5 s) just to print a one-line typo error; reading their source takes milliseconds. Modules are
located without being imported (`importlib.util.find_spec` of the top package only, then the package's
folders), names are followed through `from ... import ...` and simple assignments, a class without its own
`__init__` through its bases. Anything this cannot follow returns None, and the caller imports the target
instead (the slow path, same answer).
"""

from __future__ import annotations

import ast
import importlib.util
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Optional, Union

MAX_DEPTH = 12  # import and base-class hops followed before giving up


@dataclass(frozen=True)
class StaticSignature:
    parameters: tuple[str, ...]  # in order, without self
    annotations: dict[str, Any]  # a type where the annotation evaluates to one, else its source text
    open_ended: bool  # takes **kwargs


@cache
def locate(module: str) -> Path | None:
    """The source file of `module`, found without importing it or its packages."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    path = Path(spec.origin)
    if not rest:
        return path
    folder = path.parent
    for part in rest[:-1]:
        folder = folder / part
    for candidate in (folder / f"{rest[-1]}.py", folder / rest[-1] / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name of a `from ... import` in `module` (a package when `path` is __init__.py)."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def resolve(module: str, name: str, depth: int = 0) -> tuple[str, ast.AST] | None:
    """(the module that defines it, its ClassDef / FunctionDef / value expression) of `module.name`."""
    path = locate(module)
    if path is None or depth > MAX_DEPTH:
        return None
    for node in parse(path).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return module, node
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _absolute(module, path, node)
                    return resolve(source, alias.name, depth + 1)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return module, node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return (module, node.value) if node.value is not None else None
    return None


def _module_alias(module: str, alias: str) -> str | None:
    """The module an `import x.y as alias` (or `import alias`) in `module` names."""
    path = locate(module)
    if path is None:
        return None
    for node in parse(path).body:
        if isinstance(node, ast.Import):
            for item in node.names:
                if (item.asname or item.name) == alias:
                    return item.name
    return None


def _resolve_expression(module: str, node: ast.expr, depth: int) -> tuple[str, ast.AST] | None:
    """A class or function named by an expression in `module`: a name, or `module_alias.Name`."""
    if isinstance(node, ast.Name):
        found = resolve(module, node.id, depth + 1)
        if found and isinstance(found[1], (ast.Name, ast.Attribute)):  # `Alias = Original`
            return _resolve_expression(found[0], found[1], depth + 1)
        return found
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        target = _module_alias(module, node.value.id)
        return resolve(target, node.attr, depth + 1) if target else None
    return None


TYPE_NAMES: dict[str, Any] = {
    "int": int, "float": float, "str": str, "bool": bool, "None": None, "Any": Any, "Optional": Optional,
    "Union": Union, "Literal": Literal, "Sequence": Sequence, "Mapping": Mapping, "Iterable": Iterable,
    "list": list, "dict": dict, "tuple": tuple, "List": list, "Dict": dict, "Tuple": tuple,
    "typing": typing,
}  # fmt: skip


def _annotation(node: ast.expr | None) -> Any:
    """The annotation as a type where it evaluates from builtins and typing alone, else its source text
    (which the config checks do not judge)."""
    if node is None:
        return Any
    text = ast.unparse(node)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value  # a quoted annotation
    try:
        return eval(text, {"__builtins__": {}}, dict(TYPE_NAMES))  # noqa: S307 (names of types only)
    except Exception:
        return text


def _function_signature(node: ast.FunctionDef, skip_self: bool) -> StaticSignature:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    if skip_self and positional:
        positional = positional[1:]
    every = [*positional, *args.kwonlyargs]
    return StaticSignature(
        tuple(a.arg for a in every), {a.arg: _annotation(a.annotation) for a in every}, args.kwarg is not None
    )


def _class_signature(module: str, node: ast.ClassDef, depth: int) -> StaticSignature | None:
    if depth > MAX_DEPTH:
        return None
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            return _function_signature(item, skip_self=True)
    if any(isinstance(d, (ast.Name, ast.Attribute, ast.Call)) for d in node.decorator_list):
        return None  # a dataclass or the like writes its own __init__
    if not node.bases:  # object's: no parameters
        return StaticSignature((), {}, False)
    for base in node.bases:
        found = _resolve_expression(module, base, depth)
        if found and isinstance(found[1], ast.ClassDef):
            return _class_signature(found[0], found[1], depth + 1)
        if found is None:
            return None
    return None


def signature(target: str) -> StaticSignature | None:
    """The parameters of the function or class `target` ("package.module.Name"), or None."""
    module, _, name = target.rpartition(".")
    found = resolve(module, name)
    if found is None:
        return None
    where, node = found
    if isinstance(node, (ast.Name, ast.Attribute)):
        found = _resolve_expression(where, node, 0)
        if found is None:
            return None
        where, node = found
    if isinstance(node, ast.FunctionDef):
        return _function_signature(node, skip_self=False)
    if isinstance(node, ast.ClassDef):
        return _class_signature(where, node, 0)
    return None


_UNKNOWN = object()


def _evaluate(module: str, node: ast.AST, depth: int = 0) -> Any:
    """A constant expression: literals, dicts and tuples of them, and `Class.attribute` where the class body
    assigns the attribute a constant expression."""
    if depth > MAX_DEPTH:
        return _UNKNOWN
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        values = [_evaluate(module, e, depth + 1) for e in node.elts]
        return _UNKNOWN if _UNKNOWN in values else tuple(values)
    if isinstance(node, ast.Dict):
        keys = [_evaluate(module, k, depth + 1) if k is not None else _UNKNOWN for k in node.keys]
        values = [_evaluate(module, v, depth + 1) for v in node.values]
        return _UNKNOWN if _UNKNOWN in keys or _UNKNOWN in values else dict(zip(keys, values))
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        found = resolve(module, node.value.id, depth + 1)
        if found and isinstance(found[1], ast.ClassDef):
            return class_attribute(found[0], found[1], node.attr, depth + 1)
    if isinstance(node, ast.Name):
        found = resolve(module, node.id, depth + 1)
        if found and not isinstance(found[1], (ast.ClassDef, ast.FunctionDef)):
            return _evaluate(found[0], found[1], depth + 1)
    return _UNKNOWN


def class_attribute(module: str, node: ast.ClassDef, attribute: str, depth: int = 0) -> Any:
    """The constant a class body (or its bases') assigns to `attribute`."""
    for item in node.body:
        targets = (
            item.targets if isinstance(item, ast.Assign) else [item.target] if isinstance(item, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == attribute for t in targets) and item.value is not None:
            return _evaluate(module, item.value, depth + 1)
    for base in node.bases:
        found = _resolve_expression(module, base, depth)
        if found and isinstance(found[1], ast.ClassDef):
            value = class_attribute(found[0], found[1], attribute, depth + 1)
            if value is not _UNKNOWN:
                return value
    return _UNKNOWN


def attribute(target: str, name: str) -> Any | None:
    """`target.name` for a class `target` whose body assigns `name` a constant expression; None if unknown."""
    module, _, cls = target.rpartition(".")
    found = resolve(module, cls)
    if found is None or not isinstance(found[1], ast.ClassDef):
        return None
    value = class_attribute(found[0], found[1], name)
    return None if value is _UNKNOWN else value


def module_value(module: str, name: str) -> Any | None:
    """The constant expression a module assigns to `name` (a dict of literals, say); None if unknown."""
    found = resolve(module, name)
    if found is None or isinstance(found[1], (ast.ClassDef, ast.FunctionDef)):
        return None
    value = _evaluate(found[0], found[1])
    return None if value is _UNKNOWN else value
