"""Extraction from each supported type, detected from the bytes; hostile and broken files refused with a message a
person understands, quickly and without exhausting memory."""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest

from knowledge_app.extraction import ExtractionError, detect_type, extract
from tests.knowledge_app.files import BILLION_LAUGHS, make_docx, make_pdf, make_xlsx, replace_part


def read(data: bytes, name: str = "upload"):
    kind = detect_type(data, name)
    return kind, extract(data, kind)


def refused(data: bytes, name: str = "upload") -> str:
    with pytest.raises(ExtractionError) as caught:
        read(data, name)
    return str(caught.value)


def test_pdf_pages_are_read_with_their_numbers():
    kind, sections = read(make_pdf(["The refund window is 30 days.", "", "Shipping is free over 50 EUR."]))
    assert kind == "pdf"
    assert [(s.where, s.text.strip()) for s in sections] == [
        ({"page": 1}, "The refund window is 30 days."),
        ({"page": 3}, "Shipping is free over 50 EUR."),
    ]


def test_docx_paragraphs_keep_their_heading_path_and_tables_are_read():
    data = make_docx(
        [
            ("Heading 1", "Policies"),
            ("Heading 2", "Refunds"),
            ("Normal", "Refunds take 30 days."),
            ("Heading 2", "Shipping"),
            ("Normal", "Free over 50 EUR."),
        ],
        table=[["Plan", "Price"], ["Pro", "20"]],
    )
    kind, sections = read(data, "anything.bin")  # the name does not decide a binary format
    assert kind == "docx"
    by_heading = {tuple(s.where.get("heading", [])): s.text for s in sections if "heading" in s.where}
    assert "Refunds take 30 days." in by_heading[("Policies", "Refunds")]
    assert "Free over 50 EUR." in by_heading[("Policies", "Shipping")]
    assert [s.text for s in sections if s.where.get("table")] == ["Plan | Price\nPro | 20"]


def test_xlsx_sheets_are_read_by_name():
    data = make_xlsx({"Prices": [["Plan", "Price"], ["Pro", 20]], "Empty": [], "Staff": [["Ada", None, "CTO"]]})
    kind, sections = read(data)
    assert kind == "xlsx"
    assert [(s.where, s.text) for s in sections] == [
        ({"sheet": "Prices"}, "Plan | Price\nPro | 20"),
        ({"sheet": "Staff"}, "Ada |  | CTO"),
    ]


def test_html_text_by_heading_without_scripts_or_styles():
    page = (
        b"<!doctype html><html><head><title>T</title><style>p{}</style></head><body>"
        b"<h1>Guide</h1><p>Intro &amp; more.</p><script>alert('x')</script>"
        b"<h2>Install</h2><p>Run it.</p></body></html>"
    )
    kind, sections = read(page, "page.txt")  # detected from the content
    assert kind == "html"
    assert [(s.where, s.text) for s in sections] == [
        ({"heading": ["Guide"]}, "Guide\n\nIntro & more."),
        ({"heading": ["Guide", "Install"]}, "Install\n\nRun it."),
    ]


def test_markdown_csv_json_and_text():
    kind, sections = read(b"# Title\nIntro\n## Part\nBody\n```\n# not a heading\n```\n", "notes.md")
    assert kind == "md"
    assert [s.where for s in sections] == [{"heading": ["Title"]}, {"heading": ["Title", "Part"]}]
    assert "# not a heading" in sections[1].text
    kind, sections = read(b"name;city\nAda;London\n", "people.csv")
    assert (kind, sections[0].text) == ("csv", "name | city\nAda | London")
    kind, sections = read(b'{"faq": [{"q": "Refunds?", "a": "30 days"}]}')
    assert kind == "json"
    assert json.loads(sections[0].text) == {"faq": [{"q": "Refunds?", "a": "30 days"}]}
    kind, sections = read("Plain text, ünïcode.".encode("utf-16"))
    assert (kind, sections[0].text) == ("txt", "Plain text, ünïcode.")


def test_a_zip_bomb_docx_is_refused_before_it_is_unpacked():
    bomb = replace_part(make_docx([("Normal", "x")]), "word/document.xml", b" " * 20_000_000)
    assert len(bomb) < 200_000
    assert "zip bomb" in refused(bomb)


def test_billion_laughs_is_refused():
    attack = replace_part(make_docx([("Normal", "x")]), "word/document.xml", BILLION_LAUGHS)
    assert "XML entity declarations" in refused(attack)


def test_an_xlsx_declaring_huge_dimensions_is_refused_before_its_rows_are_read():
    workbook = make_xlsx({"Big": [["a"]]})
    sheet = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<dimension ref="A1:XFD1048576"/><sheetData>'
        b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>far</t></is></c></row>'
        b"</sheetData></worksheet>"
    )
    message = refused(replace_part(workbook, "xl/worksheets/sheet1.xml", sheet))
    assert "1,048,576 rows" in message


def test_broken_and_unsupported_files_say_what_is_wrong():
    pdf = make_pdf(["Some text on the page."])
    assert "damaged or incomplete" in refused(pdf[: len(pdf) // 3])
    assert "no text layer" in refused(make_pdf([""]))
    assert "not text in a format we read" in refused(os.urandom(4096) + b"\xff\xfe\xfa", "notes.txt")
    assert "binary data" in refused(b"abc\x00def", "notes.txt")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as plain:
        plain.writestr("notes.txt", "hello")
    assert "not a Word (.docx) or Excel (.xlsx)" in refused(archive.getvalue())
    assert "no text" in refused(b"   \n\n ", "blank.txt")
