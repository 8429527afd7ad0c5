"""Load a YAML mapping spec in fixed steps: read, parse (keeping the line and column of
every node), validate the whole document against `schemas/spec.schema.json` collecting
every error, check what a schema cannot (step ids, operations, look-up files, regexes,
templates), raise one `SpecError` with every problem, and only then build frozen objects.
Parsing and the schema step are `loader.specdoc`'s; this module holds the typed objects,
the semantic checks and the order of the steps.

    spec = load_spec("mappings/complaints.yaml")
    spec.steps[0].fields[0].name   # 'Type'
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from loader import resources
from loader.errors import SpecError, SpecProblem
from loader.specdoc import Document, format_path, schema_problems, suggest
from loader.transforms import Transform, make

Scalar = str | int | float | bool
Test = Literal["equals", "in", "not_empty", "empty", "matches"]
TESTS: tuple[Test, ...] = ("equals", "in", "not_empty", "empty", "matches")
SOURCES = ("from", "value", "template", "from_step")
DEFAULT_TRUE = frozenset({"true", "yes", "y", "1"})
DEFAULT_FALSE = frozenset({"false", "no", "n", "0"})
NO_KEY_WARNING = (
    "no source.key: rows are identified by row number and content; "
    "reordering the file breaks resume"
)


@dataclass(frozen=True, slots=True)
class SourceSpec:
    file: Path  # resolved relative to the spec file's folder
    sheet: str | None = None
    header_row: int = 1
    key: tuple[str, ...] = ()
    encoding: str | None = None
    delimiter: str | None = None


@dataclass(frozen=True, slots=True)
class ColumnTest:
    """`{column: X, <test>: operand}`; `empty: false` is read as `not_empty: true`."""

    column: str
    test: Test
    operand: str | tuple[str, ...] | None = None  # text for equals/matches, texts for in


@dataclass(frozen=True, slots=True)
class AllOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    condition: Condition


Condition = ColumnTest | AllOf | AnyOf | Not


@dataclass(frozen=True, slots=True)
class LookupFile:
    file: Path
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class BooleanWords:
    true: frozenset[str]  # lower-case, stripped
    false: frozenset[str]


@dataclass(frozen=True, slots=True)
class Template:
    text: str
    # (literal text, column read after it or None for the tail), in order
    parts: tuple[tuple[str, str | None], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for _, c in self.parts if c is not None))


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """A place where the spec names a source column, so a missing column can be reported
    at its spec line."""

    column: str
    path: str  # e.g. "steps[0].fields.Customer.Email.from"
    line: int | None
    col: int | None
    step: str | None = None
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # payload field, dotted: Customer.Email
    line: int
    path: str  # spec path, e.g. "steps[0].fields.Customer.Email"
    columns: tuple[str, ...]  # every source column it reads: from, template, when
    column: str | None = None  # `from`
    value: Scalar | None = None
    template: Template | None = None
    from_step: str | None = None
    default: Scalar | None = None
    map: Mapping[str, Scalar] | None = None  # inline map over the look-up file's entries
    map_file: LookupFile | None = None
    on_unmapped: Literal["error", "keep", "default"] = "error"
    date: tuple[str, ...] = ()
    format: str | None = None
    timezone: str | None = None
    to_timezone: str | None = None
    number: bool = False
    decimals: int | None = None
    integer: bool = False
    boolean: BooleanWords | None = None
    transform: tuple[Transform, ...] = ()
    required: bool = False
    pii: bool = False
    when: Condition | None = None


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    operation: str
    fields: tuple[Field, ...]
    when: Condition | None = None
    schema: Path | None = None  # overlay JSON Schema with tenant rules
    upload_type: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class Spec:
    path: Path
    name: str
    version: int
    source: SourceSpec
    target: str
    steps: tuple[Step, ...]
    sha256: str  # of the spec bytes and every look-up file's bytes
    warnings: tuple[str, ...] = ()
    references: tuple[ColumnRef, ...] = ()  # every column named, with its spec line

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def pii_fields(self, step_id: str) -> frozenset[str]:
        return frozenset(f.name for f in self.step(step_id).fields if f.pii)

    def with_source(self, path: str | Path) -> Spec:
        """The same spec reading another file (the CLI's --source, relative to the cwd)."""
        return dataclasses.replace(
            self, source=dataclasses.replace(self.source, file=Path(path).resolve())
        )


def load_spec(path: str | Path) -> Spec:
    """Load, validate and build a spec. Raises SpecError listing every problem found."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise SpecError(SpecProblem(str(path), None, None, "", "spec file not found")) from exc
    except OSError as exc:
        message = f"cannot read the spec file: {exc.strerror}"
        raise SpecError(SpecProblem(str(path), None, None, "", message)) from exc
    doc = Document.parse(str(path), raw)
    problems = schema_problems(doc)
    if problems:
        raise SpecError(problems)
    return _Builder(path, raw, doc).build()


def parse_template(text: str) -> tuple[tuple[str, str | None], ...]:
    """`"{A} and {B}!"` -> (("", "A"), (" and ", "B"), ("!", None)); `{{`/`}}` are braces.
    Raises ValueError with the position of an unbalanced brace."""
    parts: list[tuple[str, str | None]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "{}" and text.startswith(ch * 2, i):
            literal.append(ch)
            i += 2
        elif ch == "{":
            end = text.find("}", i)
            if end == -1 or "{" in text[i + 1 : end]:
                raise ValueError(f"unclosed '{{' at position {i}; write '{{{{' for a literal brace")
            name = text[i + 1 : end]
            if not name.strip():
                raise ValueError(f"empty placeholder at position {i}; name a column: {{Column}}")
            parts.append(("".join(literal), name))
            literal = []
            i = end + 1
        elif ch == "}":
            raise ValueError(f"single '}}' at position {i}; write '}}}}' for a literal brace")
        else:
            literal.append(ch)
            i += 1
    parts.append(("".join(literal), None))
    return tuple(parts)


class _Builder:
    """Semantic checks and typed objects, in one pass over the schema-valid document."""

    def __init__(self, path: Path, raw: bytes, doc: Document) -> None:
        self.path = path
        self.folder = path.parent
        self.doc = doc
        self.problems: list[SpecProblem] = []
        self.refs: list[ColumnRef] = []
        self.hash = hashlib.sha256(raw)
        self.hashed: set[Path] = set()
        self.lookups: dict[Path, dict[str, str]] = {}

    def problem(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def ref(
        self, column: str, path: tuple[str | int, ...], step: str | None, field: str | None
    ) -> None:
        line, col = self.doc.position(path)
        self.refs.append(ColumnRef(column, format_path(path), line, col, step, field))

    def build(self) -> Spec:
        data = self.doc.data
        source = self.source(data["source"])
        target = data.get("target", "icasework")
        steps: list[Step] = []
        ids = [s["id"] for s in data["steps"]]
        for index, sdata in enumerate(data["steps"]):
            if sdata["id"] in ids[:index]:
                self.problem(("steps", index, "id"), f"duplicate step id '{sdata['id']}'")
            steps.append(self.step(index, sdata, target, ids[:index], ids[index + 1 :]))
        if self.problems:
            raise SpecError(sorted(self.problems, key=lambda p: (p.line or 0, p.column or 0)))
        warnings = [] if source.key else [NO_KEY_WARNING]
        for step in steps:
            if step.operation == "createcase" and not any(
                f.name == "ExternalId" for f in step.fields
            ):
                warnings.append(
                    f"step {step.id}: createcase has no ExternalId; "
                    "rows in doubt after a crash cannot be looked up"
                )
        return Spec(
            path=self.path,
            name=data["name"],
            version=data["spec"],
            source=source,
            target=target,
            steps=tuple(steps),
            sha256=self.hash.hexdigest(),
            warnings=tuple(warnings),
            references=tuple(self.refs),
        )

    def source(self, data: dict[str, Any]) -> SourceSpec:
        key = data.get("key", ())
        key = (key,) if isinstance(key, str) else tuple(key)
        for i, column in enumerate(key):
            self.ref(
                column,
                ("source", "key")
                if "key" in data and isinstance(data["key"], str)
                else ("source", "key", i),
                None,
                None,
            )
        return SourceSpec(
            file=(self.folder / data["file"]).resolve(),
            sheet=data.get("sheet"),
            header_row=data.get("header_row", 1),
            key=key,
            encoding=data.get("encoding"),
            delimiter=data.get("delimiter"),
        )

    def step(
        self, index: int, data: dict[str, Any], target: str, earlier: list[str], later: list[str]
    ) -> Step:
        at: tuple[str | int, ...] = ("steps", index)
        operation = data["operation"]
        self.check_operation((*at, "operation"), target, operation)
        upload_type = data.get("upload_type")
        if operation == "uploaddata" and upload_type is None:
            self.problem(at, "operation uploaddata needs upload_type: customers, accounts or cases")
        if operation != "uploaddata" and upload_type is not None:
            self.problem((*at, "upload_type"), "upload_type only goes with operation uploaddata")
        schema = None
        if "schema" in data:
            schema = (self.folder / data["schema"]).resolve()
            if not schema.is_file():
                self.problem(
                    (*at, "schema"), f"overlay schema {data['schema']} not found ({schema})"
                )
        when = (
            self.condition(data["when"], (*at, "when"), data["id"], None)
            if "when" in data
            else None
        )
        fields = tuple(
            self.field((*at, "fields", name), name, fdata, data["id"], earlier, later)
            for name, fdata in data["fields"].items()
        )
        line = self.doc.position(at)[0] or 0
        return Step(data["id"], operation, fields, when, schema, upload_type, line)

    def check_operation(self, at: tuple[str | int, ...], target: str, operation: str) -> None:
        if resources.schema_path(target, f"{operation}.schema.json").is_file():
            return
        folder = resources.schema_path(target)
        if not folder.is_dir():
            targets = sorted(p.name for p in resources.schema_path().iterdir() if p.is_dir())
            self.problem(at, f"unknown target '{target}' (targets: {', '.join(targets) or 'none'})")
            return
        known = sorted(p.name.removesuffix(".schema.json") for p in folder.glob("*.schema.json"))
        self.problem(
            at,
            f"unknown operation '{operation}' for target {target}{suggest(operation, known)} "
            f"(operations: {', '.join(known)})",
        )

    def field(
        self,
        at: tuple[str | int, ...],
        name: str,
        data: dict[str, Any],
        step: str,
        earlier: list[str],
        later: list[str],
    ) -> Field:
        given = [k for k in SOURCES if k in data]
        if not given:
            self.problem(at, f"field {name} needs one of from, value, template, from_step")
        elif len(given) > 1:
            self.problem(
                at,
                f"field {name} has {' and '.join(given)}; give exactly one of "
                "from, value, template, from_step",
            )
        if "default" in data and not {"from", "template"} & set(given):
            self.problem((*at, "default"), "default only goes with from or template")
        columns: list[str] = []
        if "from" in data:
            columns.append(data["from"])
            self.ref(data["from"], (*at, "from"), step, name)
        template = None
        if "template" in data:
            try:
                template = Template(data["template"], parse_template(data["template"]))
            except ValueError as exc:
                self.problem((*at, "template"), f"bad template: {exc}")
            else:
                for column in template.columns:
                    columns.append(column)
                    self.ref(column, (*at, "template"), step, name)
        from_step = data.get("from_step")
        if from_step is not None and from_step not in earlier:
            self.problem(
                (*at, "from_step"), self.from_step_message(from_step, step, earlier, later)
            )
        typed = [
            k for k in ("date", "number", "integer", "boolean") if data.get(k, False) is not False
        ]
        if len(typed) > 1:
            self.problem(at, f"field {name} has {' and '.join(typed)}; give at most one of them")
        number = data.get("number", False)
        for key in ("timezone", "to_timezone"):
            if key in data:
                self.check_zone((*at, key), data[key])
        if "to_timezone" in data and "timezone" not in data:
            self.problem(
                (*at, "to_timezone"), "to_timezone needs timezone (the zone of the source values)"
            )
        when = self.condition(data["when"], (*at, "when"), step, name) if "when" in data else None
        if when is not None:
            columns.extend(_columns(when))
        mapping, map_file = self.value_map(at, data)
        on_unmapped = data.get("on_unmapped", "error")
        if "on_unmapped" in data and mapping is None:
            self.problem((*at, "on_unmapped"), "on_unmapped needs map or map_file")
        if on_unmapped == "default" and "default" not in data:
            self.problem((*at, "on_unmapped"), "on_unmapped: default needs a default")
        transforms = tuple(
            self.transform((*at, "transform", i), t)
            for i, t in enumerate(data.get("transform", ()))
        )
        date = data.get("date", ())
        return Field(
            name=name,
            line=self.doc.position(at)[0] or 0,
            path=format_path(at),
            columns=tuple(dict.fromkeys(columns)),
            column=data.get("from"),
            value=data.get("value"),
            template=template,
            from_step=from_step,
            default=data.get("default"),
            map=mapping,
            map_file=map_file,
            on_unmapped=on_unmapped,
            date=(date,) if isinstance(date, str) else tuple(date),
            format=data.get("format"),
            timezone=data.get("timezone"),
            to_timezone=data.get("to_timezone"),
            number=number is not False,
            decimals=number.get("decimals") if isinstance(number, dict) else None,
            integer=data.get("integer", False),
            boolean=_boolean_words(data.get("boolean", False)),
            transform=transforms,
            required=data.get("required", False),
            pii=data.get("pii", False),
            when=when,
        )

    @staticmethod
    def from_step_message(name: str, step: str, earlier: list[str], later: list[str]) -> str:
        rule = "a step can only use ids returned by earlier steps"
        if name == step:
            return f"from_step '{name}' names this step; {rule}"
        if name in later:
            return f"from_step '{name}' names a later step; {rule}"
        listed = ", ".join(earlier) if earlier else "none"
        hint = suggest(name, earlier)
        return f"from_step '{name}' names no earlier step{hint} (earlier steps: {listed})"

    def check_zone(self, at: tuple[str | int, ...], zone: str) -> None:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            hint = suggest(zone, sorted(zoneinfo.available_timezones()))
            self.problem(at, f"unknown time zone '{zone}'{hint}")

    def value_map(
        self, at: tuple[str | int, ...], data: dict[str, Any]
    ) -> tuple[Mapping[str, Scalar] | None, LookupFile | None]:
        if "map" not in data and "map_file" not in data:
            return None, None
        merged: dict[str, Scalar] = {}
        lookup = None
        if "map_file" in data:
            spec = data["map_file"]
            lookup = LookupFile((self.folder / spec["file"]).resolve(), spec["key"], spec["value"])
            merged.update(self.read_lookup((*at, "map_file"), lookup, spec["file"]))
        merged.update(data.get("map", {}))  # the inline map wins over the look-up file
        return merged, lookup

    def read_lookup(
        self, at: tuple[str | int, ...], lookup: LookupFile, given: str
    ) -> dict[str, str]:
        if lookup.file in self.lookups:
            return self.lookups[lookup.file]
        try:
            raw = lookup.file.read_bytes()
        except OSError as exc:
            reason = (
                "not found" if isinstance(exc, FileNotFoundError) else f"unreadable: {exc.strerror}"
            )
            self.problem((*at, "file"), f"look-up file {given} {reason} ({lookup.file})")
            return {}
        try:
            rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
        except (UnicodeDecodeError, csv.Error) as exc:
            self.problem((*at, "file"), f"look-up file {given} is not a UTF-8 CSV file: {exc}")
            return {}
        header = rows[0] if rows else []
        for which in ("key", "value"):
            wanted = getattr(lookup, which)
            close = difflib.get_close_matches(wanted, header, n=1, cutoff=0.6)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            if wanted not in header:
                self.problem(
                    (*at, which),
                    f'column "{wanted}" not found in look-up file {given}'
                    f"{hint} (columns: {', '.join(header)})",
                )
        if lookup.key not in header or lookup.value not in header:
            return {}
        if lookup.file not in self.hashed:
            self.hashed.add(lookup.file)
            self.hash.update(raw)
        k, v = header.index(lookup.key), header.index(lookup.value)
        table = {r[k]: r[v] for r in rows[1:] if len(r) > max(k, v)}
        self.lookups[lookup.file] = table
        return table

    def transform(self, at: tuple[str | int, ...], data: str | dict[str, Any]) -> Transform:
        if isinstance(data, str):
            result = Transform(data)
        else:
            ((name, opts),) = data.items()
            args: tuple[Any, ...]
            if name == "truncate":
                args = (opts,)
            elif name == "replace":
                args = tuple(opts)
            elif name == "regex_replace":
                args = (opts["pattern"], opts["with"])
            elif name == "split":
                args = (opts["sep"], opts["take"])
            else:
                args = (opts["width"], opts.get("char", "0"))
            result = Transform(name, args)
        try:
            make(result)
        except ValueError as exc:
            self.problem(at, f"{result.name}: {exc}")
        return result

    def condition(
        self, data: dict[str, Any], at: tuple[str | int, ...], step: str, field: str | None
    ) -> Condition:
        tests = [k for k in TESTS if k in data]
        groups = [k for k in ("all", "any", "not") if k in data]
        shape_ok = (len(tests) == 1 and not groups and "column" in data) or (
            len(groups) == 1 and not tests and "column" not in data
        )
        if not shape_ok:
            self.problem(
                at,
                "a condition is {column: X, <test>: ...} with one test of "
                f"{', '.join(TESTS)}, or one of all, any, not",
            )
            return AllOf(())
        if groups == ["not"]:
            return Not(self.condition(data["not"], (*at, "not"), step, field))
        if groups:
            items = tuple(
                self.condition(c, (*at, groups[0], i), step, field)
                for i, c in enumerate(data[groups[0]])
            )
            return AllOf(items) if groups == ["all"] else AnyOf(items)
        column, test = data["column"], tests[0]
        self.ref(column, (*at, "column"), step, field)
        operand = data[test]
        if test == "matches":
            try:
                re.compile(operand)
            except re.error as exc:
                self.problem((*at, "matches"), f"bad regular expression {operand!r}: {exc}")
            return ColumnTest(column, "matches", operand)
        if test == "equals":
            return ColumnTest(column, "equals", _text(operand))
        if test == "in":
            return ColumnTest(column, "in", tuple(_text(v) for v in operand))
        # {empty: false} is {not_empty: true}, and the other way round
        if operand is (test == "empty"):
            return ColumnTest(column, "empty")
        return ColumnTest(column, "not_empty")


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _boolean_words(data: bool | dict[str, list[Scalar]]) -> BooleanWords | None:
    if data is False:
        return None
    if data is True:
        return BooleanWords(DEFAULT_TRUE, DEFAULT_FALSE)
    assert isinstance(data, dict)  # the schema allows a boolean or a {true, false} mapping
    words = {k: frozenset(_text(w).strip().lower() for w in data[k]) for k in ("true", "false")}
    return BooleanWords(words["true"], words["false"])


def _columns(condition: Condition) -> list[str]:
    if isinstance(condition, ColumnTest):
        return [condition.column]
    if isinstance(condition, Not):
        return _columns(condition.condition)
    return [c for item in condition.conditions for c in _columns(item)]


__all__ = [
    "AllOf",
    "AnyOf",
    "BooleanWords",
    "ColumnRef",
    "ColumnTest",
    "Condition",
    "Field",
    "LookupFile",
    "Not",
    "SourceSpec",
    "Spec",
    "Step",
    "Template",
    "load_spec",
    "parse_template",
]
