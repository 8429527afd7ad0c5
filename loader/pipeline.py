"""Rows in, checked payloads out: the shared front half of `validate` and `run`.

`prepare(spec)` opens the source, compiles the spec against its header (a column the
spec names but the file lacks stops here, as a spec error), compiles one payload
validator per step, and then streams `Checked` rows: each row's payloads, every issue
found in it (structure, mapping, schema, duplicate key), and whether it may be sent.
Nothing here sends, writes or remembers more than the keys seen so far.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from loader.errors import SpecError, SpecProblem
from loader.issues import Issue
from loader.mapping import Mapper, StepRef
from loader.sources import Row, Table, open_table
from loader.spec import Spec, Step
from loader.validate import PayloadValidator, operation_schema

_NONE: frozenset[tuple[str | None, str | None]] = frozenset()

# A from_step value is unknown until the earlier step has run; validate the rest of
# the payload with a neutral stand-in so the schema's other rules still apply.
STEP_REF_STAND_IN = "1"


@dataclass(slots=True)
class Checked:
    row: Row
    key: str
    payloads: dict[str, dict[str, Any]]  # step id -> flat payload (StepRef for from_step values)
    issues: list[Issue]  # structure + mapping + schema issues of this row
    valid: bool  # no error-severity issue: the row may be sent

    @property
    def blank(self) -> bool:
        return self.row.blank


class Prepared:
    """An open source with its compiled mapping and validators; iterate for `Checked` rows."""

    def __init__(self, spec: Spec, *, start: tuple[int, int | None] | None = None) -> None:
        self.spec = spec
        src = spec.source
        self.table: Table = open_table(
            src.file,
            sheet=src.sheet,
            header_row=src.header_row,
            encoding=src.encoding,
            delimiter=src.delimiter,
            start=start,
        )
        try:
            self.mapper = Mapper(spec, self.table.header, sheet=self.table.sheet)
            self.validators = {step.id: _validator(spec, step) for step in spec.steps}
            self._fast_valid = {sid: v.fast_valid for sid, v in self.validators.items()}
            # Only a step with from_step fields can hold a StepRef to stand in for.
            self._with_refs = frozenset(
                step.id for step in spec.steps if any(f.from_step for f in step.fields)
            )
        except BaseException:
            self.table.close()
            raise

    @property
    def header_issues(self) -> list[Issue]:
        return self.table.header_issues

    def __iter__(self) -> Iterator[Checked]:
        sheet = self.table.sheet
        seen: dict[str, int] = {}  # key -> first row: a duplicate key would be sent twice
        for row in self.table:
            if row.blank:
                yield Checked(row, "", {}, list(row.issues), True)
                continue
            mapped = self.mapper.map_row(row)
            issues = row.issues + mapped.issues if row.issues else mapped.issues
            first = seen.setdefault(mapped.key, row.number)
            if first != row.number and mapped.key:
                issues.append(
                    Issue(
                        code="duplicate-key",
                        message=f"key {mapped.key!r} is also on row {first}; "
                        "a key must identify one row",
                        row=row.number,
                        sheet=sheet,
                        value=mapped.key,
                    )
                )
            # A field the mapping already refused is not reported again by the schema.
            refused: AbstractSet[tuple[str | None, str | None]] = (
                {(i.step, i.field) for i in mapped.issues if i.field} if mapped.issues else _NONE
            )
            for step_id, payload in mapped.payloads.items():
                # The common valid payload costs one fast check and no generator.
                if step_id in self._with_refs or not self._fast_valid[step_id](payload):
                    issues.extend(self._schema_issues(row, step_id, payload, refused))
            valid = not issues or not any(i.severity == "error" for i in issues)
            yield Checked(row, mapped.key, mapped.payloads, issues, valid)

    def _schema_issues(
        self,
        row: Row,
        step_id: str,
        payload: dict[str, Any],
        refused: AbstractSet[tuple[str | None, str | None]],
    ) -> Iterator[Issue]:
        if step_id in self._with_refs and any(isinstance(v, StepRef) for v in payload.values()):
            payload = {
                k: STEP_REF_STAND_IN if isinstance(v, StepRef) else v for k, v in payload.items()
            }
        for err in self.validators[step_id].errors(payload):
            if (step_id, err.field) in refused:
                continue
            column, number = self.mapper.origin(step_id, err.field) if err.field else (None, None)
            yield Issue(
                code=err.code,
                message=err.message,
                row=row.number,
                sheet=self.table.sheet,
                column=column,
                column_number=number,
                field=err.field,
                value=None if err.value is None else _text(err.value),
                step=step_id,
            )

    def close(self) -> None:
        self.table.close()

    def __enter__(self) -> Prepared:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def prepare(spec: Spec, *, start: tuple[int, int | None] | None = None) -> Prepared:
    """Open `spec`'s source and compile everything once. `start` resumes a CSV at a byte offset."""
    return Prepared(spec, start=start)


def _validator(spec: Spec, step: Step) -> PayloadValidator:
    schema = operation_schema(spec.target, step.operation, variant=step.upload_type)
    overlay = _overlay(spec, step.schema) if step.schema else None
    return PayloadValidator(schema, overlay)


def _overlay(spec: Spec, path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise SpecError(
            SpecProblem(str(spec.path), None, None, "steps.schema", f"cannot read {path}: {exc}")
        ) from exc
    except json.JSONDecodeError as exc:
        raise SpecError(
            SpecProblem(
                str(path), exc.lineno, exc.colno, "", f"overlay schema is not JSON: {exc.msg}"
            )
        ) from exc
    if not isinstance(data, dict):
        raise SpecError(SpecProblem(str(path), 1, 1, "", "overlay schema must be a JSON object"))
    return data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
