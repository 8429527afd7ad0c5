"""What an xlsx workbook says about its cells, read once before any sheet is streamed.

The package parts are followed through their relationships (transitional or strict
namespaces alike) to the sheets (name, visibility, worksheet part), the 1904 date flag, the
number format of each cell style and the shared strings. Each style's format code is
classified here, once, into the `Kind` of value a numeric cell with that style becomes;
`loader.xlsx` streams the worksheet XML and converts each cell by that decision (its
docstring gives the conversion rules).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from enum import Enum
from xml.etree import ElementTree

from loader.errors import SourceError

# Excel's built-in number formats that matter for conversion (ids not listed are General).
# 14-22 and 45-47 are dates and times; 49 is text.
_BUILTIN: dict[int, str] = {
    1: "0", 2: "0.00", 3: "#,##0", 4: "#,##0.00", 9: "0%", 10: "0.00%", 11: "0.00E+00",
    12: "# ?/?", 13: "# ??/??", 14: "mm-dd-yy", 15: "d-mmm-yy", 16: "d-mmm", 17: "mmm-yy",
    18: "h:mm AM/PM", 19: "h:mm:ss AM/PM", 20: "h:mm", 21: "h:mm:ss", 22: "m/d/yy h:mm",
    37: "#,##0 ;(#,##0)", 38: "#,##0 ;[Red](#,##0)", 39: "#,##0.00;(#,##0.00)",
    40: "#,##0.00;[Red](#,##0.00)", 45: "mm:ss", 46: "[h]:mm:ss", 47: "mmss.0", 48: "##0.0E+0",
    49: "@",
}  # fmt: skip


class Kind(Enum):
    """What a numeric cell becomes, decided once per number format."""

    NUMBER = "number"
    DATETIME = "datetime"
    DATE = "date"
    TIME = "time"
    TEXT = "text"  # '@': the number as General shows it, as text
    PADDED = "padded"  # an integer pattern with leading zeros or literals: Excel's text


@dataclass(frozen=True, slots=True)
class NumberFormat:
    code: str
    kind: Kind
    pattern: str = ""  # PADDED only: '0', '#', '?' placeholders and literal characters


_QUOTED = re.compile(r'"[^"]*"|\\.|_.|\*.')
_BRACKET = re.compile(r"\[[^\]]*\]")
_ELAPSED = re.compile(r"\[(h+|m+|s+)\]", re.IGNORECASE)


def _sections(code: str) -> list[str]:
    """Split a format code on ';' outside quotes and escapes."""
    out, cur, quoted, escape = [], [], False, False
    for ch in code:
        if escape:
            cur.append(ch)
            escape = False
        elif ch == "\\":
            cur.append(ch)
            escape = True
        elif ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == ";" and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def classify(code: str) -> NumberFormat:
    """Decide what a numeric cell with this format code becomes (see `loader.xlsx`)."""
    first = _sections(code)[0]
    if first.strip() == "@":
        return NumberFormat(code, Kind.TEXT)
    if _ELAPSED.search(first):
        return NumberFormat(code, Kind.NUMBER)
    bare = _BRACKET.sub("", _QUOTED.sub("", first)).lower()
    bare = bare.replace("am/pm", "").replace("a/p", "")
    if "general" not in bare and any(ch in bare for ch in "dymhs"):
        has_date = "d" in bare or "y" in bare
        has_time = "h" in bare or "s" in bare
        if not has_date and not has_time:  # 'mmm', 'mmmm yyyy' without y: months
            has_date = True
        if has_date and has_time:
            return NumberFormat(code, Kind.DATETIME)
        return NumberFormat(code, Kind.DATE if has_date else Kind.TIME)
    pattern = _padded_pattern(first)
    if pattern is not None:
        return NumberFormat(code, Kind.PADDED, pattern)
    return NumberFormat(code, Kind.NUMBER)


def _padded_pattern(section: str) -> str | None:
    """The placeholder/literal pattern of an integer format that shows text a number would
    lose (a leading zero, or separators between digits); None for an ordinary number."""
    if "[" in section:  # colours and conditions: phone '[<=9999999]###-####' is a number
        return None
    chars: list[str] = []
    i = 0
    while i < len(section):
        ch = section[i]
        if ch == '"':
            end = section.find('"', i + 1)
            end = len(section) if end < 0 else end
            chars.extend(section[i + 1 : end])
            i = end + 1
            continue
        if ch == "\\" and i + 1 < len(section):
            chars.append(section[i + 1])
            i += 2
            continue
        if ch in "0#?" or ch in " -()/":
            chars.append(ch)
        else:  # '.', ',', '%', 'E', fractions...: an ordinary number format
            return None
        i += 1
    pattern = "".join(chars)
    digits = [k for k, ch in enumerate(pattern) if ch in "0#?"]
    if not digits:
        return None
    body = pattern[digits[0] : digits[-1] + 1]
    leading_zero = pattern[digits[0]] == "0" and len(digits) >= 2
    inner_literal = any(ch not in "0#?" for ch in body)
    return pattern if leading_zero or inner_literal else None


# ---------------------------------------------------------------- workbook metadata


@dataclass(frozen=True, slots=True)
class SheetInfo:
    name: str
    state: str  # visible, hidden, veryHidden
    part: str  # path of the worksheet XML inside the zip


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(elem: ElementTree.Element, name: str) -> str | None:
    """An attribute by local name, whatever its namespace (transitional or strict)."""
    for key, value in elem.attrib.items():
        if _local(key) == name:
            return value
    return None


def _resolve(base_dir: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    parts = [p for p in base_dir.split("/") if p]
    for piece in target.split("/"):
        if piece == "..":
            if parts:
                parts.pop()
        elif piece and piece != ".":
            parts.append(piece)
    return "/".join(parts)


class Workbook:
    """The metadata of an xlsx file, read once. Holds the open zip; close() releases it."""

    def __init__(self, path: str, zf: zipfile.ZipFile) -> None:
        self.path = path
        self.zip = zf
        names = set(zf.namelist())
        root_rels = self._rels("_rels/.rels")
        book_part = next(
            (t for t, kind in root_rels.values() if kind.endswith("/officeDocument")),
            "xl/workbook.xml",
        )
        if book_part not in names:
            raise SourceError("is a zip file but not an Excel workbook", path=path)
        book_dir = book_part.rsplit("/", 1)[0] if "/" in book_part else ""
        book_rels = self._rels(_rels_path(book_part))
        book = self._xml(book_part)
        self.date1904 = False
        self.sheets: list[SheetInfo] = []
        for elem in book.iter():
            tag = _local(elem.tag)
            if tag == "workbookPr":
                self.date1904 = (_attr(elem, "date1904") or "").lower() in ("1", "true")
            elif tag == "sheet":
                rid = _attr(elem, "id") or ""
                target, kind = book_rels.get(rid, ("", ""))
                if kind and not kind.endswith("/worksheet"):
                    continue  # chartsheets and dialog sheets hold no cells
                part = _resolve(book_dir, target)
                name = _attr(elem, "name") or ""
                self.sheets.append(SheetInfo(name, _attr(elem, "state") or "visible", part))
        styles_part, strings_part = "", ""
        for target, kind in book_rels.values():
            if kind.endswith("/styles"):
                styles_part = _resolve(book_dir, target)
            elif kind.endswith("/sharedStrings"):
                strings_part = _resolve(book_dir, target)
        self.formats = self._styles(styles_part) if styles_part in names else []
        self.strings = self._shared_strings(strings_part) if strings_part in names else []

    def _read(self, part: str) -> bytes:
        try:
            return self.zip.read(part)
        except KeyError:
            return b""
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            message = f"cannot read {part} from the workbook: {exc}"
            raise SourceError(message, path=self.path) from exc

    def _xml(self, part: str) -> ElementTree.Element:
        data = self._read(part)
        try:
            return ElementTree.fromstring(data)
        except ElementTree.ParseError as exc:
            raise SourceError(f"{part} is not valid XML: {exc}", path=self.path) from exc

    def _rels(self, part: str) -> dict[str, tuple[str, str]]:
        """Relationship id -> (target, type)."""
        if part not in self.zip.NameToInfo:
            return {}
        return {
            rel.get("Id", ""): (rel.get("Target", ""), rel.get("Type", ""))
            for rel in self._xml(part).iter()
            if _local(rel.tag) == "Relationship"
        }

    def _styles(self, part: str) -> list[NumberFormat]:
        """The number format of each cell style index (`s` attribute)."""
        root = self._xml(part)
        codes = dict(_BUILTIN)
        xfs: list[int] = []
        for elem in root:
            tag = _local(elem.tag)
            if tag == "numFmts":
                for fmt in elem:
                    fid, code = _attr(fmt, "numFmtId"), _attr(fmt, "formatCode")
                    if fid is not None and fid.isdigit() and code is not None:
                        codes[int(fid)] = code
            elif tag == "cellXfs":
                for xf in elem:
                    xf_fmt = _attr(xf, "numFmtId") or "0"
                    xfs.append(int(xf_fmt) if xf_fmt.isdigit() else 0)
        cache: dict[str, NumberFormat] = {}
        out = []
        for fmt_id in xfs:
            code = codes.get(fmt_id, "General")
            if code not in cache:
                cache[code] = classify(code)
            out.append(cache[code])
        return out

    def _shared_strings(self, part: str) -> list[str]:
        strings: list[str] = []
        try:
            with self.zip.open(part) as stream:
                for _event, elem in ElementTree.iterparse(stream):
                    if _local(elem.tag) == "si":
                        strings.append(_rich_text(elem))
                        elem.clear()
        except ElementTree.ParseError as exc:
            raise SourceError(f"{part} is not valid XML: {exc}", path=self.path) from exc
        return strings

    def close(self) -> None:
        self.zip.close()


def _rels_path(part: str) -> str:
    head, _, tail = part.rpartition("/")
    return f"{head}/_rels/{tail}.rels" if head else f"_rels/{tail}.rels"


def _rich_text(si: ElementTree.Element) -> str:
    """The text of a string item: its runs joined, phonetic guides (rPh) left out."""
    parts: list[str] = []
    for child in si:
        tag = _local(child.tag)
        if tag == "t":
            parts.append(child.text or "")
        elif tag == "r":
            for sub in child:
                if _local(sub.tag) == "t":
                    parts.append(sub.text or "")
    return unescape_ooxml("".join(parts))


_OOXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def unescape_ooxml(text: str) -> str:
    """Excel escapes control characters in strings as `_x000D_`."""
    if "_x" not in text:
        return text
    return _OOXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def open_workbook(path: str) -> Workbook:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise SourceError("is not an xlsx workbook (not a zip file)", path=path) from exc
    except OSError as exc:
        raise SourceError(f"cannot be read: {exc.strerror or exc}", path=path) from exc
    try:
        return Workbook(path, zf)
    except BaseException:
        zf.close()
        raise
