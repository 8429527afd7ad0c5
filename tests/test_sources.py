"""Tests for loader.sources, loader.xlsx and loader.xlsxbook: structure checks as
frictionless reports them, encodings, dialects, resume offsets, and xlsx fidelity against
openpyxl."""

from __future__ import annotations

import shutil
import zipfile
from datetime import date, datetime, time
from pathlib import Path

import openpyxl
import pytest

from loader.errors import SourceError
from loader.sources import Table, fingerprint, open_table
from loader.xlsx import render_padded
from loader.xlsxbook import Kind, classify

EDGE = Path(__file__).parent / "data" / "edge-cases"


def flat(table: Table) -> list[tuple[int | None, int | None, str]]:
    rows = list(table)
    return [(i.row, i.column_number, i.code) for i in table.header_issues] + [
        (i.row, i.column_number, i.code) for row in rows for i in row.issues
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("invalid.csv", [(None, 3, "blank-label"), (None, 4, "duplicate-label"),
                         (2, 3, "missing-cell"), (2, 4, "missing-cell"), (3, 3, "missing-cell"),
                         (3, 4, "missing-cell"), (4, None, "blank-row"), (5, 5, "extra-cell")]),
        ("duplicate-headers.csv", [(None, 3, "duplicate-label"), (None, 5, "duplicate-label")]),
        ("blank-headers.csv", [(None, 2, "blank-label")]),
        ("defective-rows.csv", [(2, 3, "missing-cell"), (3, 4, "extra-cell")]),
        ("blank-rows.csv", [(4, None, "blank-row")]),
        ("structure-errors.csv", [(4, None, "blank-row"), (5, 4, "extra-cell"),
                                  (5, 5, "extra-cell"), (5, 6, "extra-cell")]),
        ("blank-rows-multiple.csv", [(n, None, "blank-row") for n in range(4, 15)]),
    ],
)  # fmt: skip
def test_structure_issues_match_frictionless(name: str, expected: list[tuple]) -> None:
    with open_table(EDGE / name) as table:
        assert flat(table) == expected


def test_issue_messages_and_severity() -> None:
    with open_table(EDGE / "invalid.csv") as table:
        rows = list(table)
        blank, duplicate = table.header_issues
    assert blank.message == "column C (number 3) has no label in the header"
    assert duplicate.message == 'column D repeats the label "name" of column B'
    assert {blank.severity, duplicate.severity} == {"warning"}
    missing = rows[0].issues[0]
    assert missing.message == 'row 2 has 2 cells, the header has 4: no cell for column C ""'
    assert missing.severity == "error"
    assert rows[2].blank and rows[2].issues[0].severity == "warning"
    assert rows[2].values == [None, None, None, None]
    extra = rows[3].issues[0]
    assert (extra.message, extra.value, extra.cell) == (
        "row 5 has 5 cells, the header has 4",
        "3",
        "E5",
    )
    assert rows[3].values == ["2", "german", "1", "2"] and rows[3].extra == ["3"]


@pytest.mark.parametrize(
    ("name", "encoding", "delimiter", "header", "first"),
    [
        ("bom.csv", "utf-8-sig", ",", ["id", "name"], ["1", "english"]),
        ("latin1.csv", "cp1252", ",", ["id", "name"], ["1", "english"]),
        ("table-infer-iso-8859-7.csv", "iso8859_7", ",", ["id", "age", "name"],
         ["1", "39", "Λεωνιδας"]),
        ("delimiter.csv", "utf-8", ";", ["id", "name"], ["1", "english"]),
        ("table.tsv", "utf-8", "\t", ["id", "name"], ["1", "english"]),
        ("escaping.csv", "utf-8", ",", ["ID", "Test"], ["1", "Test line 1"]),
        ("leading-zeros.csv", "utf-8", ",", ["value"], ["01"]),
        ("timezone.csv", "utf-8", ",", ["datetime", "time"], ["2020-01-01T15:00:00", "15:00:00"]),
    ],
)  # fmt: skip
def test_csv_dialects(name: str, encoding: str, delimiter: str, header: list, first: list) -> None:
    with open_table(EDGE / name) as table:
        rows = list(table)
    assert (table.kind, table.encoding, table.delimiter, table.header) == (
        "csv", encoding, delimiter, header,
    )  # fmt: skip
    assert rows[0].values == first
    assert not [i for row in rows for i in row.issues]


def test_decoded_text_of_legacy_and_unicode_files() -> None:
    assert list(open_table(EDGE / "latin1.csv"))[1].values == ["2", "©"]
    greek = [row.values[2] for row in open_table(EDGE / "table-infer-iso-8859-7.csv")]
    assert greek == ["Λεωνιδας", "Αλεξανδρος", "Μυρων", "Ευστοργιος"]
    assert list(open_table(EDGE / "bom.csv"))[1].values == ["2", "中国人"]
    assert list(open_table(EDGE / "table.tsv"))[2].values == ["3", "\\N"]  # no NULL magic


def test_escaping_with_backslash_is_not_csv() -> None:
    # RFC 4180 escapes a quote by doubling it; a backslash is an ordinary character, so the
    # third record reads as Excel reads it.
    values = [row.values[1] for row in open_table(EDGE / "escaping.csv")]
    assert values == ["Test line 1", 'Test " line 2', 'Test \\ line 3"']


def test_doublequote_and_large_cells() -> None:
    rows = list(open_table(EDGE / "doublequote.csv"))
    assert len(rows) == 5 and rows[0].values[4] == "2019"
    big = list(open_table(EDGE / "issue-1066-largecellsize.csv"))
    assert len(big) == 19 and len(big[0].values[0]) > 5000 and big[0].values[1] == "test"


def test_quoted_newline_is_one_row_and_offsets_point_at_records(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    data = 'id,note\r\n1,"line one\nline two"\r\n2,plain\r\n3,"é"\r\n'.encode()
    path.write_bytes(data)
    rows = list(open_table(path))
    assert [row.number for row in rows] == [2, 3, 4]
    assert rows[0].values == ["1", "line one\nline two"]
    assert [data[row.offset :].split(b",")[0] for row in rows if row.offset] == [b"1", b"2", b"3"]


def test_resume_at_offset(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("id,name\n" + "".join(f"{n},name {n}\n" for n in range(1, 1001)))
    rows = list(open_table(path))
    middle = rows[500]
    resumed = list(open_table(path, start=(middle.number, middle.offset)))
    assert [(r.number, r.values, r.offset) for r in resumed] == [
        (r.number, r.values, r.offset) for r in rows[500:]
    ]
    by_count = list(open_table(path, start=(middle.number, None)))
    assert [r.values for r in by_count] == [r.values for r in rows[500:]]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_offsets_and_issues_around_quoted_newlines_and_bad_bytes(
    tmp_path: Path, ending: bytes
) -> None:
    """Every row's offset is where its record starts, and resuming there reads the rest."""
    lines = [b"id,name,note", b'1,Zo\xc3\xab,"two', b'lines"', b"2,caf\xe9,x", b"", b"3,,",
             b'4,"a,b",\xe2\x82\xac', b"5,last,no newline"]  # fmt: skip
    data = ending.join(lines)
    path = tmp_path / "blocks.csv"
    path.write_bytes(data)

    def read(start: tuple[int, int | None] | None = None) -> list[tuple[object, ...]]:
        with open_table(path, encoding="utf-8", start=start) as table:
            return [(r.number, r.values, r.offset, [i.code for i in r.issues]) for r in table]

    rows = read()
    assert [r[:2] for r in rows] == [
        (2, ["1", "Zoë", "two" + ending.decode() + "lines"]), (3, ["2", "caf\ufffd", "x"]),
        (4, [None, None, None]), (5, ["3", None, None]), (6, ["4", "a,b", "€"]),
        (7, ["5", "last", "no newline"]),
    ]  # fmt: skip
    assert [r[3] for r in rows] == [[], ["encoding-error"], ["blank-row"], [], [], []]
    for k, (number, values, offset, _) in enumerate(rows):
        assert isinstance(offset, int) and isinstance(values, list)
        first = values[0].encode() + b"," if values[0] else ending  # the blank row: a newline
        assert data[:offset].endswith(ending) and data[offset:].startswith(first)
        assert read((number, offset)) == rows[k:]  # resuming at each offset


def test_resume_offset_outside_the_file(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text("id\n1\n")
    with pytest.raises(SourceError) as info:
        open_table(path, start=(2, 999))
    assert str(info.value) == (
        f"{path}: cannot resume at byte 999: the header ends at byte 3 and the file has 5 "
        "bytes; has the file changed since the run began?"
    )


def test_header_row_skips_title_rows() -> None:
    with open_table(EDGE / "skip-rows.csv", header_row=2) as table:
        rows = list(table)
    assert table.header == ["id", "name"]
    assert [(r.number, r.values) for r in rows] == [
        (3, ["1", "english"]), (4, ["# it's a comment!", None]), (5, ["2", "中国人"]),
    ]  # fmt: skip
    assert [(i.row, i.code) for i in rows[1].issues] == [(4, "missing-cell")]


def test_encoding_error_is_reported_per_row(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"id,name\n1,caf\xc3\xa9\n2,caf\xe9\n3,ok\n")
    rows = list(open_table(path, encoding="utf-8"))
    assert rows[0].values == ["1", "café"] and rows[1].values == ["2", "caf\ufffd"]
    assert [(i.row, i.code) for r in rows for i in r.issues] == [(3, "encoding-error")]


def test_non_ascii_far_from_the_start_decides_the_encoding(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_bytes(b"id,name\n" + b"1,plain\n" * 20000 + "2,Zoë\n".encode("cp1252"))
    with open_table(path) as table:
        last = list(table)[-1]
    assert table.encoding == "cp1252" and last.values == ["2", "Zoë"] and not last.issues


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty: there is no header row to read"),
        (b"\x00\x01\x02binary", "is not a text file (it contains NUL bytes): expected CSV/TSV "
                                "text or an xlsx workbook"),
        (b"\xff\xfei\x00d\x00", "is UTF-16 text, which is not supported: save it as CSV UTF-8"),
        (b"\n", "row 1, the header, is blank"),
    ],
)  # fmt: skip
def test_unreadable_csv(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(SourceError) as info:
        open_table(path)
    assert str(info.value) == f"{path}: {message}"


def test_header_only_file_has_no_rows() -> None:
    with open_table(EDGE / "without-rows.csv") as table:
        assert table.header == ["id", "name"] and list(table) == []


def test_missing_file() -> None:
    with pytest.raises(SourceError, match="file not found"):
        open_table(EDGE / "nope.csv")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("table.xls", "legacy .xls is not supported: open it in Excel and save as .xlsx"),
        ("table-with-ints-floats-dates.xls",
         "legacy .xls is not supported: open it in Excel and save as .xlsx"),
    ],
)  # fmt: skip
def test_legacy_xls(name: str, message: str) -> None:
    with pytest.raises(SourceError) as info:
        open_table(EDGE / name)
    assert str(info.value).endswith(message)


def test_encrypted_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "locked.xlsx"
    path.write_bytes(
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600 + "EncryptionInfo".encode("utf-16-le")
    )
    with pytest.raises(SourceError, match="is password-protected"):
        open_table(path)


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "doc.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("word/document.xml", "<w/>")
    with pytest.raises(SourceError) as info:
        open_table(path)
    assert str(info.value) == f"{path}: is a zip file but not an Excel workbook"


# ---------------------------------------------------------------- xlsx


def test_sheets_by_name_and_missing_sheet() -> None:
    assert next(iter(open_table(EDGE / "sheets.xlsx"))).values == [1, "london"]
    with open_table(EDGE / "sheets.xlsx", sheet="Sheet3") as table:
        assert table.header == ["id", "name"]  # 'id ' stripped
        assert next(iter(table)).values == [3, "rome"]
    with pytest.raises(SourceError) as info:
        open_table(EDGE / "sheets.xlsx", sheet="sheet 2")
    assert str(info.value).endswith(
        'no sheet named "sheet 2"; the workbook has "Sheet1", "Sheet2", "Sheet3"; '
        'did you mean "Sheet2"?'
    )


def test_formulas_read_as_cached_values() -> None:
    with open_table(EDGE / "table.xlsx") as table:
        assert (table.sheet, table.header) == ("Лист1", ["id", "name"])
        assert [r.values for r in table] == [[1, "english"], [2, "中国人"]]


def test_floating_point_error_adjusted_as_excel_shows() -> None:
    values = [r.values[1:] for r in open_table(EDGE / "adjust-floating-point-error.xlsx")]
    assert values[1] == [68.665, 274.66, 274.66]
    assert values[3] == [12.1, 968, 968]


def test_number_formats_keep_numbers_and_dates() -> None:
    with open_table(EDGE / "preserve-formatting.xlsx") as table:
        (row,) = list(table)
    assert row.values[1:6] == [1000.5577] * 5
    assert row.values[6:] == [date(2040, 5, 20)] * 5
    multicode = [r.values[0] for r in open_table(EDGE / "number-format-multicode.xlsx")]
    assert multicode == [4.51119775197299, -9.03233986479077, 15.7929464439101]


def test_title_rows_and_1904_dates() -> None:
    with open_table(EDGE / "skip-rows.xlsx", header_row=2) as table:
        rows = list(table)
    assert table.header == ["A", "B"]
    assert [(r.number, r.values) for r in rows] == [(3, [8, 9]), (4, [None, "TOTAL"])]


def test_multiline_headers_and_merged_cells() -> None:
    with open_table(EDGE / "multiline-headers.xlsx") as table:
        rows = list(table)
    assert table.header == [
        "Region", "Caloric contribution", "Cumulative impact of changes on cost of food basket",
    ]  # fmt: skip
    assert [(r.number, r.blank) for r in rows[:2]] == [(2, True), (3, True)]
    assert rows[-1].values == ["A", "B", "C"] and rows[-1].extra == ["D"]
    with open_table(EDGE / "merged-cells.xlsx") as table:
        assert table.header == ["data"] and list(table) == []


def test_header_not_on_row_one() -> None:
    with pytest.raises(SourceError) as info:
        open_table(EDGE / "issue-1024.xlsx")
    assert str(info.value).endswith(
        'sheet "IPC" has nothing in row 1, the header row; its first row with data is row 7: '
        "set header_row"
    )


@pytest.fixture
def workbook(tmp_path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Cases"
    ws.append(["Ref", "Phone", "Received", "At", "Rate", "Open", "Amount", "Code", "Text"])
    ws.append(
        ["A1", 7700900123, datetime(2021, 3, 4, 10, 30), time(9, 15), 0.25, True, 12.5, 1234, 42]
    )
    ws.append(["A2", None, datetime(2021, 3, 5), None, None, False, 7.0, 12, 3.5])
    ws.append([])
    ws.append(["A3", "=1/0", None, None, None, None, None, None, None, "spill"])
    for row in ws.iter_rows(min_row=2):
        row[1].number_format = "00000000000"
        row[2].number_format = "dd/mm/yyyy hh:mm"
        row[3].number_format = "hh:mm"
        row[4].number_format = "0%"
        row[6].number_format = '"£"#,##0.00'
        row[7].number_format = "000-000"
        row[8].number_format = "@"
    ws["C3"].number_format = "dd/mm/yyyy"
    hidden = wb.create_sheet("Secret")
    hidden.sheet_state = "hidden"
    hidden.append(["k"])
    hidden.append(["v"])
    wb.move_sheet("Secret", offset=-1)
    path = tmp_path / "cases.xlsx"
    wb.save(path)
    # openpyxl writes no cached value for a formula: give B5 an error value as Excel would.
    with zipfile.ZipFile(path) as zf:
        parts = {name: zf.read(name) for name in zf.namelist()}
    sheet = "xl/worksheets/sheet2.xml"
    parts[sheet] = parts[sheet].replace(
        b'<c r="B5" s="1"><f>1/0</f><v /></c>',
        b'<c r="B5" s="1" t="e"><f>1/0</f><v>#DIV/0!</v></c>',
    )
    assert b"#DIV/0!" in parts[sheet]
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return path


def test_typed_cells(workbook: Path) -> None:
    with open_table(workbook) as table:
        rows = list(table)
    assert table.sheet == "Cases"  # the first visible sheet
    assert rows[0].values == [
        "A1", "07700900123", datetime(2021, 3, 4, 10, 30), time(9, 15), 0.25, True, 12.5,
        "001-234", "42",
    ]  # fmt: skip
    assert rows[1].values == ["A2", None, date(2021, 3, 5), None, None, False, 7, "000-012", "3.5"]
    assert (rows[2].number, rows[2].blank) == (4, True)
    error = rows[3].issues
    assert [(i.code, i.cell, i.value, i.message) for i in error] == [
        ("extra-cell", "J5", "spill", "row 5 has 10 cells, the header has 9"),
        ("cell-error", "B5", "#DIV/0!", "Cases!B5 holds the error #DIV/0!"),
    ]
    assert rows[3].values[1] is None
    assert open_table(workbook, sheet="Secret").header == ["k"]


def test_cell_forms_the_tokeniser_meets(workbook: Path, tmp_path: Path) -> None:
    """Cells as other writers spell them: self-closing, attributes in another order or
    with a '/', no r, preserved spaces, rich text, and booleans and strings with formulas."""
    with zipfile.ZipFile(workbook) as zf:
        parts = {name: zf.read(name) for name in zf.namelist()}
    sheet = "xl/worksheets/sheet2.xml"
    head, rest = parts[sheet].split(b"<sheetData>")
    tail = rest.split(b"</sheetData>")[1]
    cells = (
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>a</t></is></c>'
        b'<c r="B1" t="inlineStr"><is><t>b</t></is></c><c r="C1" t="inlineStr"><is><t>c</t>'
        b'</is></c><c r="D1" t="inlineStr"><is><t>d</t></is></c></row>'
        b'<row r="2"><c r="A2" s="0"/><c t="inlineStr" r="B2"><is><t>x &amp; y</t></is></c>'
        b'<c r="C2" t="inlineStr" x="a/b"><is><t xml:space="preserve"> sp </t></is></c>'
        b'<c t="b"><v>1</v></c></row>'
        b'<row r="3" spans="1:4"><c r="A3" t="inlineStr"><is><r><t>ri</t></r><r><t>ch</t></r>'
        b'</is></c><c r="B3" t="str"><f>"q"</f><v>q</v></c><c r="D3"><v>2.50</v></c></row>'
        b'<row r="4"/>'
    )
    parts[sheet] = head + b"<sheetData>" + cells + b"</sheetData>" + tail
    path = tmp_path / "forms.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    with open_table(path) as table:
        rows = [(r.number, r.values) for r in table]
    assert table.header == ["a", "b", "c", "d"]
    assert rows == [(2, [None, "x & y", " sp ", True]), (3, ["rich", "q", None, 2.5])]
    # Rows without r count on from the row before; self-closing rows hold no cells.
    numbered = (
        cells.split(b'<row r="2">')[0]
        + b'<row r="2"/><row><c t="b"><v>0</v></c></row><row r="5" spans="1:1"/>'
        + b'<row r="6"/><row spans="1:1"><c r="B7"><v>7</v></c></row><row r="9" x="1">'
        + b'<c r="A9" t="inlineStr"><is><t>nine</t></is></c></row>'
    )
    parts[sheet] = head + b"<sheetData>" + numbered + b"</sheetData>" + tail
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    with open_table(path) as table:
        rows = [(r.number, r.values, r.blank) for r in table]
    assert rows == [
        (2, [None] * 4, True), (3, [False, None, None, None], False), (4, [None] * 4, True),
        (5, [None] * 4, True),
        (6, [None] * 4, True), (7, [None, 7, None, None], False), (8, [None] * 4, True),
        (9, ["nine", None, None, None], False),
    ]  # fmt: skip


@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_chunk_boundaries_do_not_change_rows(
    workbook: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    import loader.xlsx as module

    def read() -> list[tuple[object, ...]]:
        with open_table(workbook) as table:
            return [(r.number, r.values, [i.code for i in r.issues]) for r in table]

    expected = read()
    monkeypatch.setattr(module, "CHUNK", chunk)
    assert read() == expected


@pytest.mark.parametrize(
    "code", ["00000000000", "000", "dd/mm/yyyy hh:mm", "dd/mm/yyyy", "hh:mm", "000-000", "0%"]
)
def test_per_format_conversions_equal_number(workbook: Path, code: str) -> None:
    from loader import xlsx

    book = xlsx.open_workbook(str(workbook))
    try:
        converter = xlsx.Converter(book)
        fmt = classify(code)
        convert = converter._number_of(fmt)
        for raw in [b"0", b"7", b"007", b"7700900123", b"1234567890123456", b"12.5",
                    b"-3", b"43330.59097222222", b"1e400", b"2958466", b"abc", b"60"]:  # fmt: skip
            assert convert(raw) == converter.number(raw, fmt), raw
    finally:
        book.close()


def test_xlsx_start_skips_rows(workbook: Path) -> None:
    assert [r.number for r in open_table(workbook, start=(4, None))] == [4, 5]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("General", Kind.NUMBER), ("0", Kind.NUMBER), ("0.00", Kind.NUMBER), ("#,##0", Kind.NUMBER),
        ("0%", Kind.NUMBER), ('"£"#,##0.00', Kind.NUMBER), ("0.00E+00", Kind.NUMBER),
        ("[<=9999999]###-####;(###) ###-####", Kind.NUMBER), ("[h]:mm:ss", Kind.NUMBER),
        ("@", Kind.TEXT), ("00000000000", Kind.PADDED), ("000-000", Kind.PADDED),
        ("00\\-00\\-00", Kind.PADDED), ("dd/mm/yyyy", Kind.DATE), ("mmm-yy", Kind.DATE),
        ("h:mm AM/PM", Kind.TIME), ("mm:ss", Kind.TIME), ("dd/mm/yyyy hh:mm", Kind.DATETIME),
        ("0.0_);[RED]\\(0.0\\)", Kind.NUMBER),
    ],
)  # fmt: skip
def test_classify_number_formats(code: str, kind: Kind) -> None:
    assert classify(code).kind is kind


@pytest.mark.parametrize(
    ("pattern", "value", "text"),
    [("00000000000", 7700900123, "07700900123"), ("000-000", 1234, "001-234"),
     ("00000", 1234567, "1234567"), ("00-00-00", 112233, "11-22-33"), ("000", 0, "000"),
     ("00000000000", 5, "00000000005"), ("0", 42, "42")],
)  # fmt: skip
def test_render_padded(pattern: str, value: int, text: str) -> None:
    assert render_padded(pattern, value) == text


@pytest.mark.parametrize(
    "name",
    ["adjust-floating-point-error.xlsx", "sheets.xlsx", "table.xlsx", "preserve-formatting.xlsx",
     "number-format-multicode.xlsx", "multiline-headers.xlsx"],
)  # fmt: skip
def test_fidelity_against_openpyxl(name: str) -> None:
    """Same values as openpyxl after our rules (15 digits, int when integral, dates without
    a time part as dates); openpyxl gives formulas' text, so formula cells are left out."""
    wb = openpyxl.load_workbook(EDGE / name, data_only=True)
    ws = wb.worksheets[0]
    expected: dict[int, list[object]] = {}
    for row in ws.iter_rows(min_row=2):
        values: list[object] = []
        for cell in row:
            value = cell.value
            if isinstance(value, float):
                value = float(f"{value:.15g}")
                value = int(value) if value.is_integer() else value
            if isinstance(value, datetime) and classify(cell.number_format).kind is Kind.DATE:
                value = value.date()
            values.append(value)
        expected[row[0].row] = values
    with open_table(EDGE / name) as table:
        for got in table:
            want = expected[got.number][: len(got.values) + len(got.extra)]
            mine = (got.values + got.extra)[: len(want)]
            assert [m for m, w in zip(mine, want, strict=True) if w is not None] == [
                w for w in want if w is not None
            ]


def test_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    shutil.copy(EDGE / "invalid.csv", path)
    first = fingerprint(path)
    assert len(first) == 64 and first == fingerprint(EDGE / "invalid.csv")
    path.write_bytes(path.read_bytes() + b"\n")
    assert fingerprint(path) != first
