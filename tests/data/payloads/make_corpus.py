"""Writes the payload corpus: one `<schema>.jsonl` per operation (and uploaddata variant).

Each line is `{"payload": {...}, "codes": [...]}`: `codes` is the sorted set of error
codes the payload must produce, [] for a valid one. The expectations come from how
each case is built (a handwritten valid payload, then one deliberate defect of a known
kind), not from running the validator. Run it again after editing: the files are
deterministic.

    .venv/bin/python tests/data/payloads/make_corpus.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

Case = tuple[dict[str, Any], list[str]]

BLANKS = ["", "   ", "\t"]
BAD_EMAILS = ["bob@", "@example.org", "bob", "bob@example", "bob smith@example.org", "a@b..c"]
GOOD_EMAILS = ["bob@example.org", "Mary.O'Neil+foi@council.gov.uk", "x@a-b.co"]
BAD_DATES = [
    "23/03/1980",
    "1980-3-23",
    "1980-03-23 10:20:15",
    "1980-03-23T10:20:15Z",
    "1980-03-23T10:20:15+01:00",
    "1980-13-01",
    "1980-03-23T25:00:00",
    "1980-03-23\n",
]
GOOD_DATETIMES = ["1980-03-23T10:20:15", "2024-02-29", "2021-12-31T23:59:59"]
NOT_FLAT = [None, [1, 2], {"a": 1}]


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def put(base: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**base, key: value}


def without(base: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k not in keys}


def createcase() -> list[Case]:
    bases = [
        {"Type": "Complaint"},
        {
            "Type": "Complaint",
            "ExternalId": "LEG-0001",
            "RequestMethod": "Email",
            "RequestDate": "1980-03-23T10:20:15",
            "Customer.Surname": "Smith",
            "Customer.Email": "bob@example.org",
            "Format": "json",
        },
        {
            "Type": "FOI",
            "ExternalId": 12345,
            "Customer.Id": 125123,
            "Agent.Id": "7457625",
            "Label": "FOI - Housing",
            "Status": "New case",
            "RequestDate": "2021-02-15",
        },
        {
            "Type": "Complaint",
            "ExternalAccountId": "12351",
            "ExternalAccountType": "CTAX",
            "Details": "Line one\nLine two, with commas",
            "Team": "Housing",
            "Impact": 3,
            "Urgent": True,
            "Document1.Name": "image.png",
            "Document1.MimeType": "image/png",
            "Document1.URL": "https://files.example.org/a/image.png?sig=1",
            "Document1.URLLoadContent": True,
        },
        {
            "Type": "Complaint",
            "Document2.URL": "http://intranet.local:8080/doc",
            "Document2.URLLoadContent": "false",
            "Agent.Email": "agent@firm.co.uk",
            "Customer.Phone": "01234 567890",
        },
    ]
    cases: list[Case] = [(b, []) for b in bases]
    cases += [(put(bases[1], "Customer.Email", e), []) for e in GOOD_EMAILS]
    cases += [(put(bases[0], "RequestDate", d), []) for d in GOOD_DATETIMES]
    for base in bases[:3]:
        cases.append((without(base, "Type"), ["required"]))
        cases += [(put(base, "Customer.Email", e), ["format"]) for e in BAD_EMAILS]
        cases += [(put(base, "RequestDate", d), ["pattern"]) for d in BAD_DATES[:5]]
        cases.append((put(base, "Format", "csv"), ["enum"]))
    cases += [(put(bases[1], "RequestDate", d), ["pattern"]) for d in BAD_DATES[5:]]
    cases += [(put(bases[0], "Type", b), ["pattern"]) for b in BLANKS]
    cases += [(put(bases[0], "Type", v), ["type"]) for v in [1, True, None]]
    cases += [(put(bases[0], "Customer.Id", v), ["type"]) for v in [1.5, False, None]]
    cases += [(put(bases[0], "ExternalId", b), ["pattern"]) for b in BLANKS]
    cases += [(put(bases[0], "Tenant.Field", v), ["type"]) for v in NOT_FLAT]
    cases += [(put(bases[0], "Agent.Email", "agent at firm"), ["format"])]
    cases += [(put(bases[0], "Customer.Email", "a" * 250 + "@x.org"), ["format", "max-length"])]
    cases += [(put(bases[0], "Customer.Email", 42), ["type"])]
    for url in [
        "ftp://files.example.org/a",
        "www.example.org/a",
        "https://",
        "https://a b/c",
        "https://user@host/x",
        "https://host/x\n",
    ]:
        cases.append((put(bases[0], "Document1.URL", url), ["pattern"]))
    cases.append((put(bases[0], "Document3.URL", "https://h/" + "x" * 2048), ["max-length"]))
    cases.append((put(bases[0], "Document1.URLLoadContent", "yes"), ["pattern"]))
    cases.append((put(bases[0], "Document1.URLLoadContent", 1), ["type"]))
    cases.append((put(bases[0], "Document1.MimeType", "pdf"), ["pattern"]))
    cases.append((put(bases[0], "Document1.Name", ""), ["pattern"]))
    # Names that only look like document keys fall under the flat-value rule.
    cases.append((put(bases[0], "Document0.URL", "not a url"), []))
    cases.append((put(bases[0], "Document1.URL\n", "not a url"), []))
    cases.append((with_(bases[0], Type="", Format="XML", RequestDate="today"), ["enum", "pattern"]))
    cases.append(({}, ["required"]))
    return cases


def updatecustomer() -> list[Case]:
    bases = [
        {"Id": "12317985"},
        {
            "Id": 12317985,
            "NewId": "1283821",
            "AlternativeId1": 12793179,
            "Title": "Mr",
            "FirstName": "John",
            "Surname": "Smith",
            "Organisation": "iCasework",
            "Address": "30 Stamford Street",
            "Town": "London",
            "County": "London",
            "Country": "United Kingdom",
            "Postcode": "SE1 9LQ",
            "Format": "json",
        },
        {
            "Id": "C-9",
            "City": "Denver",
            "State": "CO",
            "ZIPCode": 80202,
            "TwitterUsername": "@thomas_thorpe",
            "Email": "t@example.com",
            "Mobile": "07700900123",
        },
    ]
    cases: list[Case] = [(b, []) for b in bases]
    cases += [(put(bases[0], "Email", e), []) for e in GOOD_EMAILS]
    cases += [(put(bases[0], "TwitterUsername", h), []) for h in ["a", "A_1", "@" + "x" * 15]]
    for base in bases:
        cases.append((without(base, "Id"), ["required"]))
        cases += [(put(base, "Email", e), ["format"]) for e in BAD_EMAILS]
        cases += [(put(base, "Id", b), ["pattern"]) for b in BLANKS]
        cases.append((put(base, "Format", "JSON"), ["enum"]))
        cases.append((put(base, "TwitterUsername", "thomas thorpe"), ["pattern"]))
        cases.append((put(base, "TwitterUsername", "x" * 16), ["pattern"]))
        cases += [(put(base, "Custom", v), ["type"]) for v in NOT_FLAT]
        cases.append((put(base, "Surname", 7), ["type"]))
        cases.append((put(base, "Id", 1.25), ["type"]))
    cases.append((put(bases[0], "NewId", ""), ["pattern"]))
    cases.append((put(bases[0], "ZIPCode", 802.5), ["type"]))
    cases.append(({"Email": "bob@"}, ["format", "required"]))
    return cases


def updatecase() -> list[Case]:
    bases = [
        {"CaseId": "321123"},
        {"ExternalId": "4657845", "Format": "json"},
        {"CaseId": 321123, "Format": "json", "isVulnerable": "true", "numberOfPets": "12"},
        {
            "CaseId": "abc1234",
            "ExternalId": "X-1",
            "Attribute": "Details",
            "Value": "This documentation is great",
        },
        {"ExternalId": "X-2", "Attribute": "numberOfPets", "Value": 12, "flag": False},
    ]
    cases: list[Case] = [(b, []) for b in bases]
    cases.append((put(bases[0], "Value", "orphan value is harmless"), []))
    for base in bases:
        cases.append((without(base, "CaseId", "ExternalId"), ["any-of"]))
        cases.append((put(base, "Format", "csv"), ["enum"]))
        cases += [(put(base, "Extra", v), ["type"]) for v in NOT_FLAT]
        cases.append(
            (
                put(base, "Attribute", "  "),
                ["pattern"] if "Value" in base else ["pattern", "required"],
            )
        )
        cases.append((put(base, "Value", None), ["type"]))
    for base in bases[:3]:
        cases.append((put(base, "Attribute", "Details"), ["required"]))
        cases += [(put(without(base, "ExternalId"), "CaseId", b), ["pattern"]) for b in BLANKS]
        cases += [(put(without(base, "CaseId"), "ExternalId", b), ["pattern"]) for b in BLANKS]
        cases.append((put(base, "CaseId", 1.5), ["type"]))
        cases.append((put(base, "Attribute", 3), ["required", "type"]))
    cases.append(({"Attribute": "Details"}, ["any-of", "required"]))
    cases.append(({}, ["any-of"]))
    cases.append(({"CaseId": None}, ["type"]))
    return cases


def account_bases(remove: bool) -> list[dict[str, Any]]:
    bases: list[dict[str, Any]] = [
        {"Type": "CTAX", "ExternalAccountId": "abc1234"},
        {"Type": "CTAX", "ExternalAccountId": "abc1234", "Balance": "150.00", "Format": "json"},
        {
            "Type": "NNDR",
            "ExternalAccountId": 99812,
            "Balance": -12.5,
            "BalanceDate": "2021-03-21",
            "ClosedDate": "2021-03-21",
            "StartDate": "2001-01-01",
            "EndDate": "2030-12-31",
            "Description": "30 Stamford Street",
            "Status": "New account",
        },
    ]
    if remove:
        bases.append({"Type": "CTAX", "ExternalAccountId": "old-1", "DateRemoved": "2021-09-07"})
    return bases


def accounts(*, strict: bool, remove: bool, has_format: bool = True) -> list[Case]:
    bases = account_bases(remove)
    if not has_format:
        bases = [without(b, "Format") for b in bases]
    cases: list[Case] = [(b, []) for b in bases]
    cases += [(put(bases[0], "Balance", v), []) for v in ["0", "-3.75", 100, 0.5]]
    for base in bases:
        cases.append((without(base, "Type"), ["required"]))
        cases.append((without(base, "ExternalAccountId"), ["required"]))
        cases.append((without(base, "Type", "ExternalAccountId"), ["required"]))
        cases += [(put(base, "Type", b), ["pattern"]) for b in BLANKS[:2]]
        cases.append((put(base, "ExternalAccountId", ""), ["pattern"]))
        cases += [(put(base, "Balance", v), ["pattern"]) for v in ["1,000.00", "£5", "1e3", ""]]
        cases.append((put(base, "Balance", True), ["type"]))
        for name in ["BalanceDate", "StartDate", "EndDate", "ClosedDate"]:
            cases.append((put(base, name, "21/03/2021"), ["pattern"]))
        cases.append((put(base, "StartDate", "2021-03-21T10:00:00"), ["pattern"]))
        if has_format:
            cases.append((put(base, "Format", "csv"), ["enum"]))
        cases.append((put(base, "Colour", "red"), ["additional-properties"] if strict else []))
        cases.append((put(base, "Colour", None), ["additional-properties"] if strict else ["type"]))
    cases.append(({}, ["required"]))
    cases.append((put(bases[0], "Description", 5), ["type"]))
    if strict:
        cases.append((with_(bases[0], Colour="red", Size="L"), ["additional-properties"]))
    if remove:
        cases.append((put(bases[0], "DateRemoved", "yesterday"), ["pattern"]))
    return cases


def upload_customers() -> list[Case]:
    bases = [
        {"Id": "C1"},
        {
            "Id": 2,
            "Title": "Ms",
            "FirstName": "Ann",
            "Surname": "Lee",
            "Organisation": "",
            "Address": "1 High St",
            "Town": "Leeds",
            "County": "West Yorkshire",
            "Country": "UK",
            "Postcode": "LS1 1AA",
            "Email": "ann@example.org",
            "Custom": "x",
        },
        {"Id": "C3", "Surname": "O'Brien", "Email": "ob@example.ie", "Vulnerable": True},
    ]
    cases: list[Case] = [(b, []) for b in bases]
    for base in bases:
        cases.append((without(base, "Id"), ["required"]))
        cases += [(put(base, "Id", b), ["pattern"]) for b in BLANKS]
        cases += [(put(base, "Email", e), ["format"]) for e in BAD_EMAILS]
        cases += [(put(base, "Email", e), []) for e in GOOD_EMAILS]
        cases += [(put(base, "Extra", v), ["type"]) for v in NOT_FLAT]
        cases += [(put(base, name, 1), ["type"]) for name in ["Title", "Surname", "Town"]]
        cases.append((put(base, "Id", 1.5), ["type"]))
    cases.append(({}, ["required"]))
    return cases


def upload_cases() -> list[Case]:
    bases = [
        {"Type": "Complaint", "ExternalId": "H-1"},
        {
            "Type": "Complaint",
            "ExternalId": 77,
            "Customer.Id": "C1",
            "RequestMethod": "Letter",
            "RequestDate": "2009-05-01T09:00:00",
            "Label": "Old",
            "Status": "Closed",
            "Notes": "n",
        },
        {"Type": "FOI", "ExternalId": "F-9", "RequestDate": "2010-01-01", "Pages": 12},
    ]
    cases: list[Case] = [(b, []) for b in bases]
    cases += [(put(bases[0], "RequestDate", d), []) for d in GOOD_DATETIMES]
    for base in bases:
        cases.append((without(base, "Type"), ["required"]))
        cases.append((without(base, "ExternalId"), ["required"]))
        cases += [(put(base, "RequestDate", d), ["pattern"]) for d in BAD_DATES]
        cases += [(put(base, "ExternalId", b), ["pattern"]) for b in BLANKS]
        cases += [(put(base, "Extra", v), ["type"]) for v in NOT_FLAT]
        cases.append((put(base, "Customer.Id", " "), ["pattern"]))
        cases.append((put(base, "Type", 5), ["type"]))
    cases.append(({}, ["required"]))
    return cases


CORPUS = {
    "createcase": createcase,
    "updatecustomer": updatecustomer,
    "updatecase": updatecase,
    "updateaccount": lambda: accounts(strict=True, remove=True),
    "createaccount": lambda: accounts(strict=False, remove=False),
    "uploaddata-customers": upload_customers,
    "uploaddata-accounts": lambda: accounts(strict=False, remove=False, has_format=False),
    "uploaddata-cases": upload_cases,
}


def main() -> None:
    for name, make in CORPUS.items():
        lines = [
            json.dumps({"payload": p, "codes": sorted(set(c))}, ensure_ascii=False)
            for p, c in make()
        ]
        (HERE / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}: {len(lines)} payloads")


if __name__ == "__main__":
    main()
