"""Office, e-book and PDF files generated for the tests and bench/parse_formats.py.

Every writer takes the same small description of a document (:class:`Doc`: a title and
sections, each with a heading, paragraphs, a bullet list, an optional table and speaker
notes) and writes it with the writer side of the library that reads the format
(python-docx, python-pptx, openpyxl, ebooklib, odfpy) or fpdf2 for PDFs, so no test
file is ever downloaded. A section becomes a slide in a presentation, a chapter in an
EPUB and a sheet (its table) in a workbook.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Table = list[list[str]]  # the first row is the header


@dataclass
class Section:
    heading: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    table: Table | None = None
    notes: str = ""


@dataclass
class Doc:
    title: str
    sections: list[Section]


def make_docx(path: Path, doc: Doc, rendered_pages: bool = False) -> Path:
    """``rendered_pages``: every section after the first starts a new page, recorded as
    Word records the pages it laid out (a ``w:lastRenderedPageBreak`` before the
    heading's text), which python-docx, having no layout, never writes itself."""
    import docx
    from docx.oxml import OxmlElement

    d = docx.Document()
    d.core_properties.title = doc.title
    d.add_heading(doc.title, level=0)
    for i, s in enumerate(doc.sections):
        heading = d.add_heading(s.heading, level=1)
        if rendered_pages and i > 0:
            heading.runs[0]._r.insert(0, OxmlElement("w:lastRenderedPageBreak"))
        for p in s.paragraphs:
            d.add_paragraph(p)
        for b in s.bullets:
            d.add_paragraph(b, style="List Bullet")
        if s.table:
            t = d.add_table(rows=len(s.table), cols=len(s.table[0]))
            for r, row in enumerate(s.table):
                for c, value in enumerate(row):
                    t.cell(r, c).text = value
    d.save(str(path))
    return path


def make_pptx(path: Path, doc: Doc) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    prs.core_properties.title = doc.title
    for s in doc.sections:
        slide = prs.slides.add_slide(prs.slide_layouts[1])  # title and content
        slide.shapes.title.text = s.heading
        body = slide.placeholders[1].text_frame
        lines = s.paragraphs + s.bullets
        body.text = lines[0] if lines else ""
        for line in lines[1:]:
            body.add_paragraph().text = line
        if s.table:
            shape = slide.shapes.add_table(
                len(s.table), len(s.table[0]), Inches(0.5), Inches(4.5), Inches(9), Inches(2)
            )
            for r, row in enumerate(s.table):
                for c, value in enumerate(row):
                    shape.table.cell(r, c).text = value
        if s.notes:
            slide.notes_slide.notes_text_frame.text = s.notes
    prs.save(str(path))
    return path


def make_xlsx(path: Path, doc: Doc) -> Path:
    """One sheet per section that has a table, named after the heading."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    wb.properties.title = doc.title
    for s in doc.sections:
        if s.table:
            ws = wb.create_sheet(s.heading[:31])
            for row in s.table:
                ws.append([_cell_value(v) for v in row])
    wb.save(str(path))
    return path


def _cell_value(text: str) -> str | int | float:
    """Numbers are stored as numbers, as a spreadsheet user would type them."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def make_csv(path: Path, doc: Doc) -> Path:
    """The first table of the document."""
    table = next(s.table for s in doc.sections if s.table)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(table)
    return path


def make_epub(path: Path, doc: Doc) -> Path:
    """One chapter (XHTML file) per section."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier(f"mixrag-test-{abs(hash(doc.title))}")
    book.set_title(doc.title)
    book.set_language("en")
    chapters = []
    for i, s in enumerate(doc.sections, start=1):
        ch = epub.EpubHtml(title=s.heading, file_name=f"chap_{i:02d}.xhtml", lang="en")
        ch.content = _html_section(s)
        book.add_item(ch)
        chapters.append(ch)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    return path


def _html_section(s: Section) -> str:
    from html import escape

    parts = [f"<h1>{escape(s.heading)}</h1>"]
    parts += [f"<p>{escape(p)}</p>" for p in s.paragraphs]
    if s.bullets:
        parts.append("<ul>" + "".join(f"<li>{escape(b)}</li>" for b in s.bullets) + "</ul>")
    if s.table:
        head = "".join(f"<th>{escape(v)}</th>" for v in s.table[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in s.table[1:]
        )
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
    return "<html><body>" + "".join(parts) + "</body></html>"


def make_odt(path: Path, doc: Doc, soft_pages: bool = False) -> Path:
    """``soft_pages``: every section after the first starts a new page, recorded as
    LibreOffice records the pages it laid out (a ``text:soft-page-break``)."""
    from odf import table as odt_table
    from odf import text
    from odf.opendocument import OpenDocumentText

    odt = OpenDocumentText()
    _odf_title(odt, doc.title)
    for i, s in enumerate(doc.sections):
        if soft_pages and i > 0:
            odt.text.addElement(text.SoftPageBreak())
        odt.text.addElement(text.H(outlinelevel=1, text=s.heading))
        for p in s.paragraphs:
            odt.text.addElement(text.P(text=p))
        if s.bullets:
            lst = text.List()
            for b in s.bullets:
                item = text.ListItem()
                item.addElement(text.P(text=b))
                lst.addElement(item)
            odt.text.addElement(lst)
        if s.table:
            odt.text.addElement(_odf_table(odt_table, text, s.heading, s.table))
    odt.save(str(path))
    return path


def make_ods(path: Path, doc: Doc) -> Path:
    """One sheet per section that has a table, as :func:`make_xlsx`."""
    from odf import table as odt_table
    from odf import text
    from odf.opendocument import OpenDocumentSpreadsheet

    ods = OpenDocumentSpreadsheet()
    _odf_title(ods, doc.title)
    for s in doc.sections:
        if s.table:
            ods.spreadsheet.addElement(_odf_table(odt_table, text, s.heading, s.table))
    ods.save(str(path))
    return path


def make_odp(path: Path, doc: Doc) -> Path:
    """One page (slide) per section: title and text frames, the table in a frame, notes."""
    from odf import draw, presentation, style, text
    from odf import table as odt_table
    from odf.opendocument import OpenDocumentPresentation

    odp = OpenDocumentPresentation()
    _odf_title(odp, doc.title)
    layout = style.PageLayout(name="layout")
    odp.automaticstyles.addElement(layout)
    master = style.MasterPage(name="master", pagelayoutname=layout)
    odp.masterstyles.addElement(master)
    for i, s in enumerate(doc.sections, start=1):
        page = draw.Page(name=f"page{i}", masterpagename=master)
        odp.presentation.addElement(page)
        for y, kind, lines in (
            ("1cm", "title", [s.heading]),
            ("4cm", "outline", s.paragraphs + s.bullets),
        ):
            frame = draw.Frame(width="20cm", height="3cm", x="1cm", y=y)
            frame.setAttrNS(_PRESENTATION_NS, "class", kind)
            box = draw.TextBox()
            for line in lines:
                box.addElement(text.P(text=line))
            frame.addElement(box)
            page.addElement(frame)
        if s.table:
            frame = draw.Frame(width="20cm", height="6cm", x="1cm", y="10cm")
            frame.addElement(_odf_table(odt_table, text, s.heading, s.table))
            page.addElement(frame)
        if s.notes:
            notes = presentation.Notes()
            frame = draw.Frame(width="20cm", height="3cm", x="1cm", y="20cm")
            box = draw.TextBox()
            box.addElement(text.P(text=s.notes))
            frame.addElement(box)
            notes.addElement(frame)
            page.addElement(notes)
    odp.save(str(path))
    return path


_PRESENTATION_NS = "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"


def _odf_title(document: object, title: str) -> None:
    from odf import dc

    document.meta.addElement(dc.Title(text=title))  # type: ignore[attr-defined]


def _odf_table(odt_table: object, text: object, name: str, rows: Table) -> object:
    t = odt_table.Table(name=name)  # type: ignore[attr-defined]
    for row in rows:
        tr = odt_table.TableRow()  # type: ignore[attr-defined]
        for value in row:
            cell = odt_table.TableCell()  # type: ignore[attr-defined]
            cell.addElement(text.P(text=value))  # type: ignore[attr-defined]
            tr.addElement(cell)
        t.addElement(tr)
    return t


def make_pdf(path: Path, doc: Doc) -> Path:
    """One page per section: heading, paragraphs, bullets, and the table drawn as a grid."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(doc.title)
    for s in doc.sections:
        pdf.add_page()
        pdf.set_font("helvetica", style="B", size=16)
        pdf.multi_cell(0, 10, s.heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=11)
        for p in s.paragraphs:
            pdf.multi_cell(0, 6, p, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        for b in s.bullets:
            pdf.multi_cell(0, 6, f"- {b}", new_x="LMARGIN", new_y="NEXT")
        if s.table:
            pdf.ln(4)
            with pdf.table() as t:
                for row in s.table:
                    r = t.row()
                    for value in row:
                        r.cell(value)
    pdf.output(str(path))
    return path


def encrypt_ooxml(src: Path, dst: Path, password: str = "secret") -> Path:
    """A password-protected copy of a .docx/.xlsx/.pptx, as Office writes one (msoffcrypto)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    with src.open("rb") as f, dst.open("wb") as out:
        OOXMLFile(f).encrypt(password, out)
    return dst


def encrypt_pdf(dst: Path, text: str, password: str = "secret") -> Path:
    """A PDF that opens only with a password (fpdf2's RC4 encryption)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password=password)
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    pdf.output(str(dst))
    return dst


def truncate(src: Path, dst: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` of a file, as an interrupted download or copy leaves it."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


WRITERS: dict[str, Callable[[Path, Doc], Path]] = {
    ".docx": make_docx,
    ".pptx": make_pptx,
    ".xlsx": make_xlsx,
    ".csv": make_csv,
    ".epub": make_epub,
    ".odt": make_odt,
    ".ods": make_ods,
    ".odp": make_odp,
    ".pdf": make_pdf,
}


def write_all(folder: Path, doc: Doc, suffixes: Sequence[str] = tuple(WRITERS)) -> list[Path]:
    """``doc`` written once in each format, as ``folder/<stem>.<suffix>``."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = doc.title.lower().replace(" ", "-")
    return [WRITERS[s](folder / f"{stem}{s}", doc) for s in suffixes]
