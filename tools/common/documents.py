"""Documents to text blocks, and blocks to chunks.

Parsing keeps structure: headings (with their level), paragraphs, code blocks, table rows, pages
and slides. Chunking packs blocks into chunks of about `size` words with `overlap` words carried
over, starts a new chunk at a heading when the current one has enough in it, never splits a code
block that fits, and gives each chunk the path of headings above it. Incoming content is never
trusted: HTML is converted, never rendered; binary content behind a text extension is refused.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
from dataclasses import dataclass, field
from pathlib import PurePath

TEXT_EXTENSIONS = {".txt", ".text", ".log", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".toml",
                   ".ini", ".cfg", ".conf", ".xml", ".tex", ".org", ".adoc"}
MARKDOWN_EXTENSIONS = {".md", ".markdown", ".mdx"}
HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
CODE_EXTENSIONS = {".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".go", ".rs", ".java", ".kt", ".scala",
                   ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".sh", ".bash", ".zsh", ".ps1",
                   ".sql", ".lua", ".r", ".m", ".pl", ".hs", ".ex", ".exs", ".erl", ".clj", ".dart", ".vue", ".svelte",
                   ".css", ".scss", ".proto", ".graphql", ".tf", ".dockerfile", ".mk"}
OFFICE = {".pdf": "application/pdf",
          ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
          ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
          ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
          ".eml": "message/rfc822"}
SUPPORTED = TEXT_EXTENSIONS | MARKDOWN_EXTENSIONS | HTML_EXTENSIONS | CODE_EXTENSIONS | set(OFFICE)


class ParseError(Exception):
    """The document cannot be read as what its name says; the message says why."""


@dataclass
class Block:
    kind: str  # heading | text | code | row
    text: str
    level: int = 0  # headings: 1 = top


@dataclass
class Parsed:
    title: str
    mime: str
    blocks: list[Block]


@dataclass
class Chunk:
    text: str
    title_path: list[str] = field(default_factory=list)
    position: int = 0


def supported(name: str) -> bool:
    path = PurePath(name)
    return path.suffix.lower() in SUPPORTED or path.name.lower() in ("dockerfile", "makefile", "readme", "license")


def parse(name: str, data: bytes, mime: str | None = None) -> Parsed:
    """Turn a file's bytes into blocks, by its extension (or `mime` for text given without a name)."""
    path = PurePath(name)
    ext = path.suffix.lower()
    stem_title = path.stem or name
    try:
        if ext == ".pdf" or mime == "application/pdf":
            return _pdf(data, stem_title)
        if ext in (".docx", ".xlsx", ".pptx"):
            _check_unpacked_size(data, path.name)
        if ext == ".docx":
            return _docx(data, stem_title)
        if ext == ".xlsx":
            return _xlsx(data, stem_title)
        if ext == ".pptx":
            return _pptx(data, stem_title)
        if ext == ".eml" or mime == "message/rfc822":
            return _eml(data, stem_title)
    except ParseError:
        raise
    except Exception as exc:  # a damaged or hostile file: say so, never crash the ingest
        raise ParseError(f"cannot read {path.name or 'the document'} as {ext.lstrip('.') or mime}: "
                         f"{exc.__class__.__name__}: {str(exc)[:200]}") from None
    text = decode_text(data, path.name or "the text")
    if ext in HTML_EXTENSIONS or mime == "text/html":
        return html_to_blocks(text, stem_title)
    if ext in MARKDOWN_EXTENSIONS or mime == "text/markdown":
        blocks = markdown_blocks(text)
        first = next((b for b in blocks if b.kind == "heading" and b.level == 1), None)
        return Parsed(first.text if first is not None else stem_title, "text/markdown", blocks)
    if ext in CODE_EXTENSIONS or path.name.lower() in ("dockerfile", "makefile"):
        return Parsed(path.name, "text/x-source", code_blocks(text))
    return Parsed(stem_title, "text/plain", text_blocks(text))


MAX_UNPACKED = 64 * 1024 * 1024
"""What an Office file (a zip) may unpack to: a small file that unpacks to gigabytes of XML is a bomb, not a document."""
MAX_RATIO = 100
"""How many times its own size (at least 256 KB) an Office file may unpack to (real ones: 2-20 times)."""


def _check_unpacked_size(data: bytes, name: str) -> None:
    """Refuse a zip that would unpack to more than `MAX_UNPACKED` bytes, or `MAX_RATIO` times its size, from the sizes
    its directory declares (before reading any member), and a member that claims less than it holds (checked as the
    members are read by zipfile itself, which stops at the declared size)."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # not a zip: `parse` says so, as for any broken file
        unpacked = sum(max(0, info.file_size) for info in archive.infolist())
    limit = min(MAX_UNPACKED, max(len(data), 256 * 1024) * MAX_RATIO)
    if unpacked > limit:
        raise ParseError(f"{name} unpacks to {unpacked / 2**20:.0f} MB from {len(data) / 2**20:.1f} MB, over the limit of "
                         f"{limit / 2**20:.0f} MB: it is refused as a decompression bomb")


def decode_text(data: bytes, what: str) -> str:
    head = data[:8192]
    if b"\x00" in head:
        raise ParseError(f"{what} looks binary (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
        controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\t\r\n\f")
        if controls > len(text[:8192]) * 0.05:
            raise ParseError(f"{what} looks binary (control bytes), not text") from None
        return text


def text_blocks(text: str) -> list[Block]:
    return [Block("text", p.strip()) for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]


_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    para: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if para:
            blocks.append(Block("text", "\n".join(para).strip()))
            para.clear()

    for line in text.replace("\r\n", "\n").split("\n"):
        if code is not None:
            if _FENCE.match(line.strip()):
                blocks.append(Block("code", "\n".join(code)))
                code = None
            else:
                code.append(line)
            continue
        if _FENCE.match(line.strip()):
            flush()
            code = []
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            blocks.append(Block("heading", heading.group(2).strip(), len(heading.group(1))))
        elif not line.strip():
            flush()
        else:
            para.append(line)
    flush()
    if code:
        blocks.append(Block("code", "\n".join(code)))
    return [b for b in blocks if b.text]


def code_blocks(text: str) -> list[Block]:
    return [Block("code", part.strip("\n")) for part in re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
            if part.strip()]


_BLOCK_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "td", "th", "dt", "dd",
               "figcaption", "caption")


def html_to_blocks(html: str, fallback_title: str) -> Parsed:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node is not None else ""
    tree.strip_tags(["script", "style", "noscript", "template", "svg", "nav", "iframe", "object", "embed"])
    blocks: list[Block] = []
    for node in tree.css(",".join(_BLOCK_TAGS)):
        parent, nested = node.parent, False
        while parent is not None:
            if parent.tag in _BLOCK_TAGS:
                nested = True
                break
            parent = parent.parent
        if nested:
            continue
        text = node.text(separator=" " if node.tag != "pre" else "", strip=node.tag != "pre")
        text = text.strip("\n") if node.tag == "pre" else re.sub(r"\s+", " ", text)
        if not text.strip():
            continue
        if node.tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            blocks.append(Block("heading", text, int(node.tag[1])))
        else:
            blocks.append(Block("code" if node.tag == "pre" else "text", text))
    if not blocks and tree.body is not None:
        blocks = text_blocks(tree.body.text(separator="\n", strip=True))
    return Parsed(title or fallback_title, "text/html", blocks)


def _pdf(data: bytes, title: str) -> Parsed:
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise ParseError(f"not a readable PDF ({exc})") from None
    try:
        meta_title = (doc.get_metadata_dict().get("Title") or "").strip()
        blocks: list[Block] = []
        for number in range(len(doc)):
            page = doc[number]
            text = page.get_textpage().get_text_range().replace("\r\n", "\n")
            page.close()
            paragraphs = text_blocks(text)
            if paragraphs:
                blocks.append(Block("heading", f"page {number + 1}", 6))
                blocks += paragraphs
    finally:
        doc.close()
    return Parsed(meta_title or title, OFFICE[".pdf"], blocks)


def _docx(data: bytes, title: str) -> Parsed:
    import docx

    document = docx.Document(io.BytesIO(data))
    blocks: list[Block] = []
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name or "") if paragraph.style is not None else ""
        match = re.match(r"Heading (\d)", style)
        if style == "Title":
            blocks.append(Block("heading", text, 1))
        elif match:
            blocks.append(Block("heading", text, int(match.group(1))))
        else:
            blocks.append(Block("text", text))
    for table in document.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells]
            if any(cells):
                blocks.append(Block("row", " | ".join(cells)))
    core_title = (document.core_properties.title or "").strip()
    return Parsed(core_title or title, OFFICE[".docx"], blocks)


def _xlsx(data: bytes, title: str) -> Parsed:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    blocks: list[Block] = []
    try:
        for sheet in book.worksheets:
            blocks.append(Block("heading", sheet.title, 1))
            for row in sheet.iter_rows(values_only=True):
                cells = ["" if v is None else str(v) for v in row]
                if any(c.strip() for c in cells):
                    blocks.append(Block("row", " | ".join(cells).rstrip(" |")))
    finally:
        book.close()
    return Parsed(title, OFFICE[".xlsx"], blocks)


def _pptx(data: bytes, title: str) -> Parsed:
    from pptx import Presentation

    deck = Presentation(io.BytesIO(data))
    blocks: list[Block] = []
    first_title = ""
    for number, slide in enumerate(deck.slides, 1):
        title_shape = slide.shapes.title
        heading = title_shape.text_frame.text.strip() if title_shape is not None else ""
        first_title = first_title or heading
        blocks.append(Block("heading", heading or f"slide {number}", 1))
        for shape in slide.shapes:
            if shape.has_text_frame and (title_shape is None or shape.shape_id != title_shape.shape_id):
                text = shape.text_frame.text.strip()
                if text:
                    blocks += text_blocks(text)
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                blocks.append(Block("text", notes))
    return Parsed((deck.core_properties.title or "").strip() or first_title or title, OFFICE[".pptx"], blocks)


def _eml(data: bytes, title: str) -> Parsed:
    message = email.message_from_bytes(data, policy=email.policy.default)
    subject = str(message.get("subject", "") or "").strip()
    blocks = [Block("heading", subject or title, 1)]
    header = [f"{key}: {message.get(key)}" for key in ("From", "To", "Cc", "Date") if message.get(key)]
    if header:
        blocks.append(Block("text", "\n".join(header)))
    body = message.get_body(preferencelist=("plain", "html"))
    if body is not None:
        content = body.get_content()
        if body.get_content_type() == "text/html":
            blocks += html_to_blocks(content, subject).blocks
        else:
            blocks += text_blocks(content)
    names = [part.get_filename() for part in message.iter_attachments() if part.get_filename()]
    if names:
        blocks.append(Block("text", "Attachments: " + ", ".join(names)))
    return Parsed(subject or title, OFFICE[".eml"], blocks)


# chunking -------------------------------------------------------------------------------------------
def _words(text: str) -> int:
    return len(text.split())


def _split_long(text: str, size: int, code: bool) -> list[str]:
    """A block longer than `size` words, in pieces: by lines for code, by sentences for prose."""
    units = text.split("\n") if code else re.split(r"(?<=[.!?])\s+", text)
    pieces: list[str] = []
    current: list[str] = []
    count = 0
    for unit in units:
        n = _words(unit)
        if n > size:  # one enormous sentence or line: cut it by words
            if current:
                pieces.append(("\n" if code else " ").join(current))
                current, count = [], 0
            words = unit.split()
            pieces += [" ".join(words[i:i + size]) for i in range(0, len(words), size)]
            continue
        if count + n > size and current:
            pieces.append(("\n" if code else " ").join(current))
            current, count = [], 0
        current.append(unit)
        count += n
    if current:
        pieces.append(("\n" if code else " ").join(current))
    return pieces


def chunk(blocks: list[Block], size: int = 180, overlap: int = 30) -> list[Chunk]:
    """Pack blocks into chunks of at most about `size` words, carrying `overlap` words of prose over."""
    chunks: list[Chunk] = []
    headings: list[tuple[int, str]] = []
    parts: list[str] = []
    count = 0
    path: list[str] = []

    def emit(carry: bool) -> None:
        nonlocal parts, count
        if not parts:
            return
        chunks.append(Chunk("\n\n".join(parts), list(path), len(chunks)))
        tail = " ".join(parts[-1].split()[-overlap:]) if carry and overlap and parts[-1] else ""
        parts = [tail] if tail else []
        count = _words(tail)

    for block in blocks:
        if block.kind == "heading":
            if count >= size // 4:
                emit(carry=False)
                parts, count = [], 0
            headings = [h for h in headings if h[0] < block.level] + [(block.level, block.text)]
            if not parts:
                path = [h[1] for h in headings]
            continue
        if not parts:
            path = [h[1] for h in headings]
        n = _words(block.text)
        pieces = [block.text] if n <= size else _split_long(block.text, size, block.kind == "code")
        for piece in pieces:
            m = _words(piece)
            if count + m > size and parts:
                emit(carry=block.kind != "code")
                path = [h[1] for h in headings]
            parts.append(piece)
            count += m
    emit(carry=False)
    return [c for c in chunks if c.text.strip()]
