"""The spec as a YAML document, before it means anything: composed node by node so that
every value and every mapping key keeps its line and column, with duplicate keys reported
(PyYAML keeps the last one silently), booleans read as YAML 1.2 does, and every JSON
Schema error turned into a `SpecProblem` a user can act on: the path, the line and column
to edit, a plain-words message and the nearest valid key or value.

`loader.spec` builds the typed objects from a `Document` that `schema_problems` found
valid; the semantic checks there point at lines through `Document.problem` too.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError

from loader import resources
from loader.errors import SpecError, SpecProblem
from loader.transforms import NAMES

Path_ = tuple[str | int, ...]


class _SpecYAML(yaml.SafeLoader):
    """safe_load with YAML 1.2 booleans: only true/false. YAML 1.1 also reads yes/no/on/off
    as booleans, which silently turns a map code `No` or `ON` into False/True."""


_SpecYAML.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecYAML.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class Document:
    """The parsed spec with the node of every value and of every mapping key, so that a
    problem points at the line and column a user edits."""

    def __init__(
        self, file: str, data: Any, nodes: dict[Path_, yaml.Node], keys: dict[Path_, yaml.Node]
    ):
        self.file = file
        self.data = data
        self.nodes = nodes
        self.keys = keys

    @classmethod
    def parse(cls, file: str, raw: bytes) -> Document:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            message = f"the spec is not UTF-8 text (byte {exc.start})"
            raise SpecError(SpecProblem(file, None, None, "", message)) from exc
        loader = _SpecYAML(text)
        nodes: dict[Path_, yaml.Node] = {}
        keys: dict[Path_, yaml.Node] = {}
        duplicates: list[SpecProblem] = []

        def walk(node: yaml.Node, at: Path_) -> Any:
            nodes[at] = node
            if isinstance(node, yaml.MappingNode):
                loader.flatten_mapping(node)  # resolves `<<:` merge keys
                result: dict[str, Any] = {}
                for key_node, value_node in node.value:
                    # Keys are always names: keep their text (`1:` in a map is the code "1").
                    key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                    if key in result:
                        line, col = _mark(key_node)
                        duplicates.append(
                            SpecProblem(
                                file, line, col, format_path((*at, key)), f"duplicate key '{key}'"
                            )
                        )
                    keys[(*at, key)] = key_node
                    result[key] = walk(value_node, (*at, key))
                return result
            if isinstance(node, yaml.SequenceNode):
                return [walk(item, (*at, i)) for i, item in enumerate(node.value)]
            return loader.construct_object(node, deep=True)

        try:
            root = loader.get_single_node()
            data = walk(root, ()) if root is not None else None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
            message = f"YAML syntax error: {exc.problem or exc.context}"
            raise SpecError(SpecProblem(file, line, col, "", message)) from exc
        except yaml.YAMLError as exc:
            raise SpecError(SpecProblem(file, None, None, "", f"YAML error: {exc}")) from exc
        finally:
            loader.dispose()
        if data is None:
            raise SpecError(SpecProblem(file, None, None, "", "the spec file is empty"))
        if duplicates:
            raise SpecError(duplicates)
        return cls(file, data, nodes, keys)

    def position(self, at: Path_, *, key: bool = False) -> tuple[int | None, int | None]:
        node = self.keys.get(at) if key else None
        while node is None and at:
            node = self.nodes.get(at)
            at = at[:-1]
        return _mark(node if node is not None else self.nodes.get(()))

    def problem(self, at: Path_, message: str, *, key: bool = False) -> SpecProblem:
        line, col = self.position(at, key=key)
        return SpecProblem(self.file, line, col, format_path(at), message)


def _mark(node: yaml.Node | None) -> tuple[int | None, int | None]:
    if node is None:
        return None, None
    return node.start_mark.line + 1, node.start_mark.column + 1


def format_path(at: Path_) -> str:
    """("steps", 0, "fields", "Customer.Email", "map") -> "steps[0].fields.Customer.Email.map"."""
    text = ""
    for part in at:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """ "; did you mean 'default'?" for the nearest choice, or ""."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


_TYPES = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
}


def _got(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _is_transform(at: Path_) -> bool:
    return len(at) >= 2 and at[-2] == "transform" and isinstance(at[-1], int)


def _explain(doc: Document, error: ValidationError) -> list[SpecProblem]:
    at: Path_ = tuple(error.absolute_path)
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extras = [k for k in instance if k not in allowed]
        if _is_transform(at):
            return [doc.problem((*at, k), _unknown_transform(k), key=True) for k in extras]
        return [
            doc.problem(
                (*at, k),
                f"unknown key '{k}'"
                + (suggest(k, allowed) or f"; valid keys: {', '.join(allowed)}"),
                key=True,
            )
            for k in extras
        ]
    if kind == "enum" and _is_transform(at):
        message = _unknown_transform(instance)
    elif kind == "enum" and at == ("spec",):
        message = f"unsupported spec version {instance!r}; this loader reads spec: 1"
    elif kind == "enum":
        message = f"{instance!r} is not one of: {', '.join(map(str, value))}" + suggest(
            str(instance), value
        )
    elif kind == "type":
        expected = [value] if isinstance(value, str) else value
        message = (
            f"wrong type: expected {' or '.join(_TYPES[t] for t in expected)}, got {_got(instance)}"
        )
    elif kind == "required":
        message = f"missing required key {error.message.split(' is a required')[0]}"
    elif kind == "minLength":
        message = "must not be empty"
    elif kind == "pattern" and at[-1:] == ("id",):
        message = (
            f"{instance!r} is not a valid step id: use letters, digits, _ and -, "
            "starting with a letter"
        )
    elif kind in ("minItems", "minProperties"):
        message = "must not be empty" if value == 1 else f"needs at least {value} items"
    elif kind == "maxProperties" and _is_transform(at):
        message = "one transform per list item: write each as its own item"
    else:
        message = error.message
    return [doc.problem(at, message)]


def _unknown_transform(name: Any) -> str:
    hint = suggest(str(name), NAMES)
    return f"unknown transform '{name}'{hint} (valid transforms: {', '.join(NAMES)})"


def schema_problems(doc: Document) -> list[SpecProblem]:
    """Every schema error of the document, in the order of the lines they point at."""
    validator = Draft202012Validator(resources.load_schema("spec.schema.json"))
    problems = [p for error in validator.iter_errors(doc.data) for p in _explain(doc, error)]
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line or 0, p.column or 0))
