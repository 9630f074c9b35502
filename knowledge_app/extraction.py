"""Text out of uploaded files, which are untrusted: the type is detected from the bytes (never from the client's
content type), and every format is read within limits. ``extract`` returns sections of text, each with where it
came from (a page, a sheet, a heading path); anything it cannot read raises ExtractionError with a message a person
understands.

- PDF (pypdf): page limit; encrypted files and files without a text layer (scans) are reported as such.
- DOCX (python-docx) and XLSX (openpyxl, read-only): zip entry, size and compression-ratio limits, and any XML with
  a DTD refused before parsing (Office files never carry one; entity expansion attacks do); sheet, row and
  column limits.
- HTML (the standard library's parser: no entities beyond HTML's own, no network), CSV, JSON, Markdown, text.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from django.conf import settings

TYPES = ("pdf", "docx", "xlsx", "html", "csv", "json", "md", "txt")
MAX_ZIP_ENTRIES = 5_000
MAX_ZIP_RATIO = 100  # uncompressed / compressed, per entry
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024
MAX_SHEETS = 50
MAX_SHEET_ROWS = 200_000
MAX_SHEET_COLUMNS = 500
MAX_TEXT_CHARS = 20_000_000


class ExtractionError(Exception):
    """The file cannot be read; ``str(exc)`` says why, for a person."""


@dataclass
class Section:
    """A run of text and where it came from: ``page`` (PDF), ``sheet`` (XLSX), ``heading`` (a path of headings)."""

    text: str
    where: dict[str, Any] = field(default_factory=dict)


def detect_type(data: bytes, name: str = "") -> str:
    """Return the file's type (one of TYPES) from its bytes; the name only tells text formats apart.

    Raises ExtractionError for a format that is not supported (a binary file, an archive, an image...).
    """
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except (zipfile.BadZipFile, ValueError):
            raise ExtractionError("The file is a damaged zip archive.") from None
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        raise ExtractionError("The file is a zip archive, not a Word (.docx) or Excel (.xlsx) document.")
    text = _decode(data)
    lower = name.lower()
    head = text.lstrip()[:1000].lower()
    if head.startswith(("<!doctype html", "<html")) or (head.startswith("<") and "<body" in text[:20_000].lower()):
        return "html"
    if lower.endswith((".htm", ".html")):
        return "html"
    if head[:1] in ("{", "["):
        try:
            json.loads(text)
        except ValueError:
            pass
        else:
            return "json"
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".md", ".markdown")) or re.search(r"(?m)^#{1,6} \S", text[:20_000]):
        return "md"
    return "txt"


def _decode(data: bytes) -> str:
    """Return the bytes as text (UTF-8, or UTF-16 with its mark); raise ExtractionError for binary data."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ExtractionError("The file claims to be UTF-16 text but is not.") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ExtractionError(
            "The file is not text in a format we read (PDF, Word, Excel, HTML, CSV, JSON, Markdown or UTF-8 text)."
        ) from None
    if "\x00" in text:
        raise ExtractionError("The file holds binary data, not text.")
    return text


def extract(data: bytes, kind: str) -> list[Section]:
    """Return the file's text in sections. Raises ExtractionError (why, for a person) when it cannot be read or
    holds no text."""
    if len(data) > settings.KNOWLEDGE_MAX_FILE_BYTES:
        raise ExtractionError(f"The file is larger than {settings.KNOWLEDGE_MAX_FILE_BYTES:,} bytes.")
    reader = _READERS.get(kind)
    if reader is None:
        raise ExtractionError(f"Files of type {kind!r} are not read.")
    sections = [s for s in reader(data) if s.text.strip()]
    if not sections:
        raise ExtractionError("The file holds no text.")
    if sum(len(s.text) for s in sections) > MAX_TEXT_CHARS:
        raise ExtractionError(f"The file holds more than {MAX_TEXT_CHARS:,} characters of text.")
    return sections


def _pdf(data: bytes) -> list[Section]:
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise ExtractionError("The PDF is password-protected; upload it without a password.")
        pages = len(reader.pages)
        if pages > settings.KNOWLEDGE_MAX_PDF_PAGES:
            raise ExtractionError(
                f"The PDF has {pages:,} pages; at most {settings.KNOWLEDGE_MAX_PDF_PAGES:,} are read."
            )
        sections = [Section(page.extract_text() or "", {"page": n}) for n, page in enumerate(reader.pages, 1)]
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OSError):
        raise ExtractionError("The PDF is damaged or incomplete and could not be read.") from None
    if pages and not any(s.text.strip() for s in sections):
        raise ExtractionError("The PDF has no text layer (a scan?); text recognition (OCR) is not supported.")
    return sections


def _office_zip(data: bytes) -> zipfile.ZipFile:
    """Return the archive of a DOCX or XLSX after checking its entries: how many, how large, how compressed, and
    that no XML part carries a DTD (entity expansion: "billion laughs")."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError):
        raise ExtractionError("The document is a damaged zip archive.") from None
    if len(entries) > MAX_ZIP_ENTRIES:
        raise ExtractionError(f"The document has more than {MAX_ZIP_ENTRIES:,} parts.")
    total = 0
    for entry in entries:
        total += entry.file_size
        if entry.file_size > 1024 * 1024 and entry.file_size > MAX_ZIP_RATIO * max(entry.compress_size, 1):
            raise ExtractionError("The document expands far beyond its size (a zip bomb?); it was not read.")
    if total > MAX_UNZIPPED_BYTES:
        raise ExtractionError(f"The document unpacks to more than {MAX_UNZIPPED_BYTES // 1024 // 1024} MB.")
    for entry in entries:
        if entry.filename.endswith((".xml", ".rels")):
            with archive.open(entry) as part:
                head = part.read(4096)
            if b"<!DOCTYPE" in head.upper() or b"<!ENTITY" in head.upper():
                raise ExtractionError("The document contains XML entity declarations, which are refused.")
    return archive


def _docx(data: bytes) -> list[Section]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    _office_zip(data)
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ExtractionError(f"The Word document could not be read ({type(exc).__name__}).") from None
    sections: list[Section] = []
    headings: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        if lines:
            sections.append(Section("\n".join(lines), {"heading": list(headings)} if headings else {}))
            lines.clear()

    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        level = re.match(r"Heading (\d)", style)
        if level or style == "Title":
            flush()
            depth = int(level.group(1)) if level else 1
            headings[depth - 1 :] = [paragraph.text.strip()]
            lines.append(paragraph.text)
        elif paragraph.text.strip():
            lines.append(paragraph.text)
    flush()
    for table in document.tables:
        rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
        sections.append(Section("\n".join(rows), {"table": True}))
    return sections


def _xlsx(data: bytes) -> list[Section]:
    import openpyxl

    _office_zip(data)
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a malformed workbook
        raise ExtractionError(f"The Excel workbook could not be read ({type(exc).__name__}).") from None
    try:
        if len(workbook.sheetnames) > MAX_SHEETS:
            raise ExtractionError(f"The workbook has {len(workbook.sheetnames)} sheets; at most {MAX_SHEETS} are read.")
        sections = []
        for sheet in workbook.worksheets:
            # The sheet's declared size, read before any row: a tiny file may declare a million rows.
            if (sheet.max_row or 0) > MAX_SHEET_ROWS:
                raise ExtractionError(
                    f"The sheet {sheet.title!r} spans {sheet.max_row:,} rows; at most {MAX_SHEET_ROWS:,} are read."
                )
            rows: list[str] = []
            cells_read = sheet.iter_rows(values_only=True, max_col=MAX_SHEET_COLUMNS, max_row=MAX_SHEET_ROWS + 1)
            for n, row in enumerate(cells_read, 1):
                if n > MAX_SHEET_ROWS:
                    raise ExtractionError(f"The sheet {sheet.title!r} has more than {MAX_SHEET_ROWS:,} rows.")
                cells = ["" if value is None else str(value) for value in row]
                if any(cells):
                    rows.append(" | ".join(cells).rstrip(" |"))
            sections.append(Section("\n".join(rows), {"sheet": sheet.title}))
        return sections
    finally:
        workbook.close()


class _HTMLText(HTMLParser):
    """Collects visible text by heading; scripts, styles and templates are skipped."""

    SKIP = {"script", "style", "template", "noscript", "head"}
    BLOCKS = {"p", "div", "li", "tr", "br", "section", "article", "table", "pre", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.headings: list[str] = []
        self.parts: list[str] = []
        self.skipping = 0
        self.heading: int | None = None
        self.heading_text: list[str] = []

    def flush(self) -> None:
        text = re.sub(r"[ \t]+", " ", "".join(self.parts))
        text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
        if text:
            self.sections.append(Section(text, {"heading": list(self.headings)} if self.headings else {}))
        self.parts.clear()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.flush()
            self.heading, self.heading_text = int(tag[1]), []
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(self.skipping - 1, 0)
        elif self.heading is not None and tag == f"h{self.heading}":
            title = " ".join("".join(self.heading_text).split())
            self.headings[self.heading - 1 :] = [title]
            self.parts.append(title + "\n")
            self.heading = None

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.heading is not None:
            self.heading_text.append(data)
        else:
            self.parts.append(data)


def _html(data: bytes) -> list[Section]:
    parser = _HTMLText()
    parser.feed(_decode(data))
    parser.close()
    parser.flush()
    return parser.sections


def _markdown(data: bytes) -> list[Section]:
    sections: list[Section] = []
    headings: list[str] = []
    lines: list[str] = []
    fenced = False
    for line in _decode(data).splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        heading = None if fenced else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading:
            if "".join(lines).strip():
                sections.append(Section("\n".join(lines).strip(), {"heading": list(headings)} if headings else {}))
            lines = []
            headings[len(heading.group(1)) - 1 :] = [heading.group(2)]
        lines.append(line)
    if "".join(lines).strip():
        sections.append(Section("\n".join(lines).strip(), {"heading": list(headings)} if headings else {}))
    return sections


def _csv(data: bytes) -> list[Section]:
    text = _decode(data)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:10_000], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [" | ".join(cell.strip() for cell in row) for row in csv.reader(io.StringIO(text), dialect)]
    except csv.Error as exc:
        raise ExtractionError(f"The CSV file could not be read ({exc}).") from None
    return [Section("\n".join(row for row in rows if row.strip(" |")))]


def _json(data: bytes) -> list[Section]:
    try:
        value = json.loads(_decode(data))
    except ValueError as exc:
        raise ExtractionError(f"The JSON file is not valid JSON ({exc}).") from None
    return [Section(json.dumps(value, ensure_ascii=False, indent=1))]


def _text(data: bytes) -> list[Section]:
    return [Section(_decode(data))]


_READERS = {
    "pdf": _pdf,
    "docx": _docx,
    "xlsx": _xlsx,
    "html": _html,
    "md": _markdown,
    "csv": _csv,
    "json": _json,
    "txt": _text,
}
