"""Regenerate the sample sources in this folder: `python samples/make_samples.py [OUT_DIR]`.

- `complaints.xlsx`: a council's legacy complaints export (sheets Complaints, Accounts,
  and a hidden Lookups sheet), wrong in the ways real exports are wrong;
- `contacts-export.csv`: another system's customer export, Windows-1252, `;`-delimited;
- `cfpb-complaints.csv`: an unchanged copy of the public CFPB complaints sample.

Everything comes from one seeded random generator, so a rerun writes byte-identical files:
the xlsx is rebuilt with fixed zip timestamps and a fixed "modified" property, because
openpyxl stamps both with the current time. The rows planted as wrong are listed in
`PLANTED` (and in README.md); tests/test_samples.py checks the dry run finds exactly those.
"""

from __future__ import annotations

import csv
import io
import random
import re
import shutil
import sys
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

HERE = Path(__file__).resolve().parent
CFPB_SOURCE = Path("/work/shared/data/real/cfpb-complaints-sample.csv")
SEED = 20240514
EXPORTED = datetime(2024, 5, 14, 9, 12)
ZIP_TIME = (2024, 5, 14, 9, 12, 0)

COMPLAINT_ROWS = 1500
ACCOUNT_ROWS = 500
CONTACT_ROWS = 500
COMPLAINTS_HEADER_ROW = 3  # two title rows above the header, as the legacy system exports

COMPLAINT_COLUMNS = [
    "LegacyRef",
    "Received",
    "Channel",
    "Title",
    "FirstName",
    "Surname",
    "Email",
    "Phone",
    "Postcode",
    "Category",
    "Summary",
    "Team",
    "Status",
    "Closed date",
    "AccountRef",
]
ACCOUNT_COLUMNS = [
    "AccountRef",
    "AccountType",
    "Balance",
    "BalanceDate",
    "StartDate",
    "Description",
    "Status",
]
CONTACT_COLUMNS = [
    "CustomerRef",
    "Title",
    "Forename",
    "Surname",
    "Address",
    "Town",
    "County",
    "Postcode",
    "Email",
    "Phone",
]

# Channel codes of the legacy system; mappings/channels.csv and the Lookups sheet hold the
# same table. FAX and SMS are in the data but in neither table: they must be reported.
CHANNELS = [
    ("TEL", "Phone", "Telephone"),
    ("EML", "Email", "E-mail"),
    ("WEB", "Web", "Online form"),
    ("LET", "Letter", "Letter"),
    ("F2F", "In person", "Face to face at a customer service centre"),
    ("SOC", "Social media", "Social media"),
    ("MP", "Letter", "Via the office of an MP or councillor"),
]
CHANNEL_WEIGHTS = [30, 25, 30, 6, 5, 2, 2]
UNKNOWN_CHANNELS = ["FAX", "SMS"]

TITLES = ["Mr", "Mrs", "Ms", "Miss", "Dr", "Mx", ""]
FIRST_NAMES = [
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Zoë", "Siân", "Aoife", "Chloé",
    "Noah", "Oliver", "George", "Arthur", "Muhammad", "Leo", "Harry", "Oscar", "Rhys",
    "Ægir", "José", "Priya", "Mohammed", "Fatima", "Wojciech", "Ngozi", "Seán", "Hannah",
]  # fmt: skip
SURNAMES = [
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "O’Brien", "O'Neill", "McDonald", "Ní Bhriain", "Khan", "Nowak", "Okafor", "Björk",
    "Ellis-Jones", "de la Cruz", "Ahmed", "Müller",
]  # fmt: skip
STREETS = [
    "Acacia Avenue", "High Street", "Station Road", "Church Lane", "Victoria Road",
    "Mill Lane", "The Crescent", "Park View", "Kings Road", "Queen’s Walk",
]  # fmt: skip
TOWNS = [
    ("Northtown", "Northshire", "NT"),
    ("Southbury", "Northshire", "SB"),
    ("Eastham", "Westmoor", "EH"),
    ("Westford", "Westmoor", "WF"),
    ("Little Wittering", "Westmoor", "LW"),
]
CATEGORIES = {
    "Housing": ("Housing Repairs", ["damp in the bathroom", "a broken boiler", "a leaking roof"]),
    "Waste": ("Waste & Recycling", ["a missed bin collection", "fly-tipping", "a broken bin"]),
    "Council Tax": ("Council Tax", ["a wrong bill", "a missing discount", "a refund"]),
    "Parking": ("Parking", ["a parking fine", "a resident permit", "a blocked driveway"]),
    "Planning": ("Planning", ["a neighbour's extension", "a delayed decision", "a hedge"]),
    "Staff": ("Customer Services", ["a rude call handler", "no reply to an email", "a long queue"]),
}
STATUSES = ["Open", "Closed", "On hold"]
ACCOUNT_TYPES = ["CTAX", "NNDR", "HB", "RENT"]
ACCOUNT_STATUSES = ["Live", "Closed", "Suspended", "Arrears"]


@dataclass
class Planted:
    """The rows deliberately made wrong, by reason: (sheet or file, spreadsheet row)."""

    rows: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def add(self, reason: str, where: str, row: int) -> None:
        self.rows.setdefault(reason, []).append((where, row))


PLANTED = Planted()


def generate(out: Path) -> dict[str, list[tuple[str, int]]]:
    """Write complaints.xlsx and contacts-export.csv into `out`; return the planted faults
    by reason. Both files draw from one generator, so they are always written together."""
    out.mkdir(parents=True, exist_ok=True)
    PLANTED.rows.clear()
    rng = random.Random(SEED)
    write_complaints_xlsx(out / "complaints.xlsx", rng)
    write_contacts_csv(out / "contacts-export.csv", rng)
    return {reason: sorted(rows) for reason, rows in PLANTED.rows.items()}


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else HERE
    planted = generate(out)
    # The CFPB file is a verbatim copy; where the shared data folder is absent the
    # committed copy stays as it is.
    if CFPB_SOURCE.exists():
        shutil.copyfile(CFPB_SOURCE, out / "cfpb-complaints.csv")
    for reason, rows in planted.items():
        print(f"{reason}: {', '.join(f'{w}!{r}' for w, r in rows)}")
    return 0


# --- complaints.xlsx -------------------------------------------------------------------


def write_complaints_xlsx(path: Path, rng: random.Random) -> None:
    accounts = account_rows(rng)
    complaints = complaint_rows(rng, [a["AccountRef"] for a in accounts if a["AccountRef"]])
    wb = Workbook()
    ws = wb.active
    assert ws is not None  # a new workbook always has one sheet
    ws.title = "Complaints"
    ws.append(["Legacy complaints extract"])
    ws.append([f"Exported {EXPORTED:%Y-%m-%d %H:%M} by CaseBase 4.2 (all departments)"])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(COMPLAINT_COLUMNS)
    for cell in ws[COMPLAINTS_HEADER_ROW]:
        cell.font = Font(bold=True)
    for record in complaints:
        if record is None:
            ws.append([])  # a truly empty row: no cells at all, as Excel saves it
            continue
        ws.append([record[c] for c in COMPLAINT_COLUMNS])
        row = ws.max_row
        received = ws.cell(row, 2)
        if isinstance(received.value, datetime):
            received.number_format = "dd/mm/yyyy hh:mm"
        phone = ws.cell(row, 8)
        if isinstance(phone.value, int):
            phone.number_format = "00000000000"  # the zero is display-only
        closed = ws.cell(row, 14)
        if isinstance(closed.value, date):
            closed.number_format = "dd/mm/yyyy"
        for column, value in record.get("_errors", {}).items():
            cell = ws.cell(row, COMPLAINT_COLUMNS.index(column) + 1)
            cell.value = value
            cell.data_type = "e"
    ws.freeze_panes = "A4"

    acc = wb.create_sheet("Accounts")
    acc.append(ACCOUNT_COLUMNS)
    for cell in acc[1]:
        cell.font = Font(bold=True)
    for record in accounts:
        acc.append([record[c] for c in ACCOUNT_COLUMNS])
        row = acc.max_row
        if isinstance(record["Balance"], float):
            acc.cell(row, 3).number_format = "#,##0.00"
        for column in (4, 5):
            if isinstance(acc.cell(row, column).value, date):
                acc.cell(row, column).number_format = "dd/mm/yyyy"

    lookups = wb.create_sheet("Lookups")
    lookups.append(["Code", "Method", "Description"])
    for channel in CHANNELS:
        lookups.append(list(channel))
    lookups.sheet_state = "hidden"

    wb.properties.creator = "CaseBase export"
    wb.properties.created = EXPORTED
    buffer = io.BytesIO()
    wb.save(buffer)
    path.write_bytes(deterministic_zip(buffer.getvalue()))


def deterministic_zip(data: bytes) -> bytes:
    """The same workbook with fixed member timestamps and a fixed dcterms:modified:
    openpyxl stamps both with the time of saving, which alone makes every run differ."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rb"\g<1>" + EXPORTED.strftime("%Y-%m-%dT%H:%M:%SZ").encode() + rb"\g<2>",
                    content,
                )
            member = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o600 << 16
            dst.writestr(member, content)
    return out.getvalue()


def account_rows(rng: random.Random) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    number = 1_000_100
    for _ in range(ACCOUNT_ROWS):
        number += rng.randint(1, 40)
        kind = rng.choices(ACCOUNT_TYPES, weights=[60, 15, 15, 10])[0]
        start = date(2005, 1, 1) + timedelta(days=rng.randint(0, 6500))
        street = rng.choice(STREETS)
        town = rng.choice(TOWNS)[0]
        rows.append(
            {
                "AccountRef": f"{kind}-{number}",
                "AccountType": kind if rng.random() > 0.05 else f" {kind.lower()} ",
                "Balance": round(rng.uniform(-250, 2400), 2),
                "BalanceDate": date(2024, 3, 31) - timedelta(days=rng.randint(0, 90)),
                "StartDate": start,
                "Description": f"{rng.randint(1, 180)} {street}, {town}",
                "Status": rng.choice(ACCOUNT_STATUSES),
            }
        )
    # Wrong on purpose: one fault per row, rows drawn without replacement.
    picks = iter(rng.sample(range(1, ACCOUNT_ROWS), 14))
    for _ in range(4):
        i = next(picks)
        rows[i]["AccountType"] = rng.choice(["WATER", "BID"])
        PLANTED.add("account: unknown AccountType", "Accounts", i + 2)
    for _ in range(3):
        i = next(picks)
        rows[i]["Balance"] = rng.choice(["n/k", "TBC", "see notes"])
        PLANTED.add("account: Balance not a number", "Accounts", i + 2)
    for bad in ("31/04/2022", "29/02/2023"):
        i = next(picks)
        rows[i]["BalanceDate"] = bad
        PLANTED.add("account: impossible BalanceDate", "Accounts", i + 2)
    for _ in range(2):
        i = next(picks)
        rows[i]["AccountRef"] = None
        PLANTED.add("account: AccountRef blank", "Accounts", i + 2)
    for _ in range(3):
        i = next(picks)
        rows[i]["AccountRef"] = rows[i - 1]["AccountRef"] or rows[i - 2]["AccountRef"]
        PLANTED.add("account: duplicate AccountRef", "Accounts", i + 2)
    return rows


def complaint_rows(rng: random.Random, account_refs: list[str]) -> list[dict[str, Any] | None]:
    rows = [normal_complaint(rng, n) for n in range(COMPLAINT_ROWS)]
    # A complaint names an account at most once, so a create-account step per complaint
    # (mappings/account-and-case.yaml) never creates the same account twice.
    linked = rng.sample(range(COMPLAINT_ROWS), 380)
    for i, ref in zip(linked, rng.sample(account_refs, len(linked)), strict=True):
        rows[i]["AccountRef"] = ref

    picks = iter(rng.sample(range(10, COMPLAINT_ROWS), 60))
    blank_at = 700  # the blank row goes before this record

    def row_of(i: int) -> int:
        # Spreadsheet row: header on row 3, the blank row shifts later records down one.
        return COMPLAINTS_HEADER_ROW + 1 + i + (1 if i >= blank_at else 0)

    for _ in range(6):
        i = next(picks)
        rows[i]["LegacyRef"] = rows[i - rng.randint(1, 9)]["LegacyRef"]
        PLANTED.add("complaint: duplicate LegacyRef", "Complaints", row_of(i))
    for bad in ("31/02/2021", "30/02/2020 10:15", "31/09/2018"):
        i = next(picks)
        rows[i]["Received"] = bad
        PLANTED.add("complaint: impossible Received date", "Complaints", row_of(i))
    for n in range(10):
        i = next(picks)
        rows[i]["Channel"] = UNKNOWN_CHANNELS[n % 2] if n % 3 else UNKNOWN_CHANNELS[n % 2].lower()
        PLANTED.add("complaint: unknown Channel code", "Complaints", row_of(i))
    for n in range(12):
        i = next(picks)
        rows[i]["Surname"] = None if n % 2 else "  "
        PLANTED.add("complaint: Surname blank", "Complaints", row_of(i))
    bad_emails = ["bob@", "jane.smith@", "j.bloggs@example", "mary at example.com", "@example.org"]
    for n in range(14):
        i = next(picks)
        rows[i]["Email"] = bad_emails[n % len(bad_emails)]
        PLANTED.add("complaint: malformed Email", "Complaints", row_of(i))
    for column in ("Postcode", "Category"):
        i = next(picks)
        rows[i]["_errors"] = {column: "#N/A"}
        PLANTED.add(f"complaint: #N/A error cell in {column}", "Complaints", row_of(i))
    PLANTED.add("complaint: blank row", "Complaints", COMPLAINTS_HEADER_ROW + 1 + blank_at)
    # Not errors, but traps for a careless loader: "n/a" e-mails (the spec blanks them).
    for _ in range(5):
        rows[next(picks)]["Email"] = rng.choice(["n/a", "N/A", "none"])
    return [*rows[:blank_at], None, *rows[blank_at:]]


def normal_complaint(rng: random.Random, n: int) -> dict[str, Any]:
    received = datetime(2012, 1, 1) + timedelta(minutes=rng.randint(0, 12 * 365 * 24 * 60))
    received = received.replace(hour=rng.randint(8, 18))
    first, surname = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
    category = rng.choice(list(CATEGORIES))
    team, topics = CATEGORIES[category]
    status = rng.choices(STATUSES, weights=[25, 70, 5])[0]
    town, _county, prefix = rng.choice(TOWNS)
    record: dict[str, Any] = {
        "LegacyRef": f"C-{100 + n * 3 + rng.randint(0, 2):06d}",
        "Received": hand_typed(rng, received),
        "Channel": messy(rng, rng.choices([c[0] for c in CHANNELS], CHANNEL_WEIGHTS)[0]),
        "Title": messy(rng, rng.choice(TITLES)) or None,
        "FirstName": messy(rng, first),
        "Surname": messy(rng, surname),
        "Email": email(rng, first, surname),
        "Phone": phone(rng),
        "Postcode": postcode(rng, prefix),
        "Category": category,
        "Summary": summary(rng, topics, town),
        "Team": messy(rng, team),
        "Status": messy(rng, status),
        "Closed date": (received + timedelta(days=rng.randint(1, 60))).date()
        if status == "Closed"
        else None,
        "AccountRef": None,
    }
    return record


def hand_typed(rng: random.Random, when: datetime) -> datetime | str:
    """Mostly a real Excel date-time; a few typed by hand as text, in two habits."""
    draw = rng.random()
    if draw < 0.03:
        return f"{when:%d/%m/%Y %H:%M}"
    if draw < 0.04:
        return f"{when.day}/{when.month}/{when:%y}"
    return when


def messy(rng: random.Random, value: str) -> str:
    """Trailing spaces and shouting, as people type them."""
    draw = rng.random()
    if draw < 0.04:
        return value + " "
    if draw < 0.07:
        return value.upper()
    if draw < 0.09:
        return value.lower()
    return value


def email(rng: random.Random, first: str, surname: str) -> str | None:
    if rng.random() < 0.12:
        return None
    # "Zoë O’Brien" -> "zoe.obrien": accents dropped the way mail systems fold them.
    folded = unicodedata.normalize("NFKD", f"{first}.{surname}").encode("ascii", "ignore")
    local = re.sub(r"[^A-Za-z0-9.]", "", folded.decode()) or "resident"
    domain = rng.choice(["example.com", "example.org", "example.net"])
    address = f"{local}{rng.randint(1, 99)}@{domain}"
    return address.upper() if rng.random() < 0.03 else address.lower() + rng.choice(["", "", " "])


def phone(rng: random.Random) -> int | str | None:
    """A number stored as a NUMBER (the zero lives in the cell format), sometimes as text."""
    draw = rng.random()
    if draw < 0.15:
        return None
    digits = rng.choice(["07700900", "01632960", "01134960"]) + f"{rng.randint(0, 999):03d}"
    if draw < 0.18:
        return f"{digits[:5]} {digits[5:]}"
    return int(digits)


def postcode(rng: random.Random, prefix: str) -> str:
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    inward = f"{rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}"
    code = f"{prefix}{rng.randint(1, 19)} {inward}"
    return code.lower() if rng.random() < 0.05 else code


SUMMARY_OPENINGS = [
    "Caller unhappy about {topic}.",
    'Customer says "nobody has called back" about {topic}.',
    "Complaint about {topic}, third time this year.",
    "Resident of {town} reports {topic}; wants compensation, and an apology.",
    "Written complaint re {topic}.\nCopy of letter scanned to file.",
]


def summary(rng: random.Random, topics: list[str], town: str) -> str:
    text = rng.choice(SUMMARY_OPENINGS).format(topic=rng.choice(topics), town=town)
    draw = rng.random()
    if draw < 0.01:
        return "=== URGENT ===\n" + text  # starts with "=": must not become a formula
    if draw < 0.02:
        return f"- {text}\n- asked for a manager"  # starts with "-"
    if draw < 0.1:
        return text + "\n\nFollow-up: " + rng.choice(["none", "chased 2 weeks later", "escalated"])
    return text


# --- contacts-export.csv ---------------------------------------------------------------


def write_contacts_csv(path: Path, rng: random.Random) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(CONTACT_COLUMNS)
    for values in contact_rows(rng):
        writer.writerow(values)
    # cp1252 is what a Windows Excel "CSV (semicolon)" export writes; ’ becomes 0x92.
    path.write_bytes(buffer.getvalue().encode("cp1252"))


def contact_rows(rng: random.Random) -> Iterator[list[str]]:
    rows: list[list[str]] = []
    for n in range(CONTACT_ROWS):
        first, surname = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
        town, county, prefix = rng.choice(TOWNS)
        address = f"{rng.randint(1, 200)} {rng.choice(STREETS)}"
        if rng.random() < 0.1:
            address = f"Flat {rng.randint(1, 12)}, {address}"  # a comma: fine with ";"
        rows.append(
            [
                f"CUS{5000 + n * 2:06d}",
                rng.choice(TITLES),
                first,
                surname,
                address,
                town,
                county,
                postcode(rng, prefix),
                email(rng, first, surname) or "",
                f"0{rng.choice(['7700900', '1632960'])}{rng.randint(0, 999):03d}",
            ]
        )
    rows[17][1:4], rows[17][8] = ["Ms", "Zoë", "O’Brien"], "zoe.obrien@example.com"
    rows[18][1:4], rows[18][8] = ["Mr", "Ægir", "Sørensen"], "aegir.sorensen@example.net"
    rows[19][4] = "12 Queen’s Walk; rear entrance"  # a delimiter inside a quoted field
    picks = iter(rng.sample(range(30, CONTACT_ROWS), 4))
    i = next(picks)
    rows[i][0] = ""
    PLANTED.add("contact: CustomerRef blank", "contacts-export.csv", i + 2)
    i = next(picks)
    rows[i] = rows[i][:7]  # the export cut the record short: Postcode, Email, Phone missing
    PLANTED.add("contact: record cut short (3 missing cells)", "contacts-export.csv", i + 2)
    i = next(picks)
    rows[i][0] = rows[i - 1][0] or rows[i - 2][0]
    PLANTED.add("contact: duplicate CustomerRef", "contacts-export.csv", i + 2)
    i = next(picks)
    rows[i][8] = "anne.o’brien@"
    PLANTED.add("contact: malformed Email", "contacts-export.csv", i + 2)
    yield from rows


if __name__ == "__main__":
    sys.exit(main(sys.argv))
