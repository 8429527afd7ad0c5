"""Tenant configuration of the sandbox: case types, account types, value lists, reports.

A tenant file is YAML (see `tenant.default.yaml`, the built-in default). It is read and
checked once, every problem collected, and turned into a frozen `Tenant`; the request
handlers never see raw YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loader.errors import LoaderError

DEFAULT_TENANT = Path(__file__).with_name("tenant.default.yaml")

# The value lists every tenant serves from its own type lists (`getvaluelist?Name=CaseType`).
CASE_TYPE_LIST = "CaseType"
ACCOUNT_TYPE_LIST = "AccountType"

_KNOWN_KEYS = {"case_types", "account_types", "value_lists", "checked_fields", "reports"}


@dataclass(frozen=True, slots=True)
class Report:
    """One ad hoc report served by `getreport`."""

    id: str
    name: str
    case_types: tuple[str, ...] = ()  # empty: every case type
    fields: tuple[str, ...] = ()  # empty: every column any case has


BUILT_IN_REPORT = Report(id="1", name="All cases")


@dataclass(frozen=True, slots=True)
class Tenant:
    """What a tenant accepts and serves. Matching of types and values is exact."""

    case_types: tuple[str, ...]
    account_types: tuple[str, ...]
    value_lists: dict[str, tuple[str, ...]]
    checked_fields: dict[str, str]  # case field name → value list name
    reports: dict[str, Report]

    def value_list(self, name: str) -> tuple[str, ...] | None:
        if name == CASE_TYPE_LIST:
            return self.case_types
        if name == ACCOUNT_TYPE_LIST:
            return self.account_types
        return self.value_lists.get(name)


def load_tenant(path: Path | None = None) -> Tenant:
    """Read a tenant file (the built-in default when `path` is None) and check it whole."""
    source = path or DEFAULT_TENANT
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LoaderError(f"{source}: cannot read tenant file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise LoaderError(f"{source}: tenant file is not valid YAML: {exc}") from exc
    problems: list[str] = []
    tenant = _build(document, problems)
    if problems or tenant is None:
        listed = "\n".join(f"  {p}" for p in problems)
        raise LoaderError(f"{source}: tenant file is wrong:\n{listed}")
    return tenant


def _build(document: object, problems: list[str]) -> Tenant | None:
    if not isinstance(document, dict):
        problems.append("the file must be a mapping with keys case_types, account_types, ...")
        return None
    for key in sorted(set(document) - _KNOWN_KEYS):
        problems.append(f"unknown key {key!r} (known: {', '.join(sorted(_KNOWN_KEYS))})")
    case_types = _names(document.get("case_types"), "case_types", problems)
    if not case_types:
        problems.append("case_types: at least one case type is needed")
    account_types = _names(document.get("account_types", []), "account_types", problems)
    value_lists: dict[str, tuple[str, ...]] = {}
    raw_lists = document.get("value_lists", {}) or {}
    if not isinstance(raw_lists, dict):
        problems.append("value_lists: must map a list name to its values")
    else:
        for name, values in raw_lists.items():
            value_lists[str(name)] = _names(values, f"value_lists.{name}", problems)
    checked: dict[str, str] = {}
    raw_checked = document.get("checked_fields", {}) or {}
    if not isinstance(raw_checked, dict):
        problems.append("checked_fields: must map a field name to a value list name")
    else:
        known = {*value_lists, CASE_TYPE_LIST, ACCOUNT_TYPE_LIST}
        for field_name, list_name in raw_checked.items():
            if str(list_name) not in known:
                problems.append(f"checked_fields.{field_name}: no value list named {list_name!r}")
            checked[str(field_name)] = str(list_name)
    reports = {BUILT_IN_REPORT.id: BUILT_IN_REPORT}
    raw_reports = document.get("reports", []) or []
    if not isinstance(raw_reports, list):
        problems.append("reports: must be a list of {id, name, case_types, fields}")
    else:
        for index, raw in enumerate(raw_reports):
            report = _report(raw, f"reports[{index}]", problems)
            if report is not None:
                reports[report.id] = report
    return Tenant(
        case_types=case_types,
        account_types=account_types,
        value_lists=value_lists,
        checked_fields=checked,
        reports=reports,
    )


def _report(raw: Any, where: str, problems: list[str]) -> Report | None:
    if not isinstance(raw, dict) or "id" not in raw:
        problems.append(f"{where}: a report needs at least an id")
        return None
    unknown = set(raw) - {"id", "name", "case_types", "fields"}
    for key in sorted(unknown):
        problems.append(f"{where}: unknown key {key!r}")
    return Report(
        id=str(raw["id"]),
        name=str(raw.get("name", f"Report {raw['id']}")),
        case_types=_names(raw.get("case_types", []), f"{where}.case_types", problems),
        fields=_names(raw.get("fields", []), f"{where}.fields", problems),
    )


def _names(raw: object, where: str, problems: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str | int) for v in raw):
        problems.append(f"{where}: must be a list of names")
        return ()
    return tuple(str(v) for v in raw)
