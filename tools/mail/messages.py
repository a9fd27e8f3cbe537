"""Reading and writing messages: never trusting what arrives, never letting a caller smuggle a header in.

Reading turns any RFC 822 bytes (broken MIME, unknown charsets, deep nesting, huge parts) into headers,
a text body, HTML as converted text (never rendered) and an attachment list; nothing here raises on bad
input. Writing builds drafts, replies and forwards with `email.message.EmailMessage` after checking every
value a caller gave for line breaks.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message
from typing import Any

from tools.mail.imap import MailError

MAX_DEPTH = 20
MAX_PARTS = 500
MAX_TEXT = 200_000
POLICY = email.policy.default.clone(linesep="\r\n", max_line_length=78)
"""What the hub writes: RFC 5322 with CRLF."""


def parse(raw: bytes) -> Message:
    """Parse without ever raising (the parser records defects instead)."""
    try:
        return email.message_from_bytes(raw, policy=email.policy.default)
    except Exception:  # pragma: no cover - the feed parser is defensive; this is the belt to its braces
        return email.message_from_bytes(raw, policy=email.policy.compat32)


def header(message: Message, name: str) -> str:
    """A header as text; a malformed one comes back as its raw (unfolded, decoded where possible) form."""
    try:
        value = message.get(name)
        text = "" if value is None else str(value)
    except Exception:
        try:
            raw = message.get_all(name, failobj=[]) if hasattr(message, "get_all") else []
            text = " ".join(str(email.header.make_header(email.header.decode_header(str(v)))) for v in raw)
        except Exception:
            text = ""
    return re.sub(r"[\r\n\t]+\s*", " ", text).strip()[:2000]


def addresses(message: Message, name: str) -> list[str]:
    try:
        values = message.get_all(name, failobj=[])
        pairs = email.utils.getaddresses([str(v) for v in values])
    except Exception:
        return []
    return [display_address(n, a) for n, a in pairs if a and "@" in a][:200]


def display_address(name: str, address: str) -> str:
    """`Name <address>` for people to read (Unicode kept; quoted when the name has specials)."""
    name = re.sub(r"[\r\n\t]+", " ", name).strip()
    address = re.sub(r"\s+", "", address)
    if not name:
        return address
    if re.search(r'[(),.:;<>@\[\]"\\]', name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def _unfold(value: Any) -> str:
    """A compat32 header value decoded (RFC 2047 words) to one line of text; never raises."""
    import email.header

    text = str(value)
    try:
        text = str(email.header.make_header(email.header.decode_header(text)))
    except Exception:
        pass
    return re.sub(r"[\r\n\t]+\s*", " ", text).strip()[:2000]


def summary(raw_headers: bytes) -> dict[str, Any]:
    """Subject, addresses, date and Message-ID from a header block: the light parse a listing needs
    (the legacy header parser plus RFC 2047 decoding, about 5x quicker than the full one)."""
    from email.parser import BytesHeaderParser

    try:
        head = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw_headers)
    except Exception:
        head = Message()

    def people(name: str) -> list[str]:
        try:
            pairs = email.utils.getaddresses([_unfold(v) for v in head.get_all(name, [])])
        except Exception:
            return []
        return [display_address(n, a) for n, a in pairs if a and "@" in a][:200]

    return {"from": people("from"), "to": people("to"), "subject": _unfold(head.get("subject", "")),
            "date": _unfold(head.get("date", "")), "message_id": _unfold(head.get("message-id", ""))}


def _decode(part: Message) -> str:
    """A text part as str: its declared charset when that decodes cleanly, else UTF-8, else Windows-1252
    (what mislabelled Western mail nearly always is; for an unknown charset, UTF-8 with replacement
    characters); never an exception."""
    try:
        payload = part.get_payload(decode=True) or b""
    except Exception:
        return ""
    if not isinstance(payload, bytes):
        return ""
    payload = payload[: MAX_TEXT * 4]
    try:
        declared = part.get_content_charset() or "utf-8"
    except Exception:
        declared = "utf-8"
    known, text = True, None
    for charset in (declared, "utf-8"):
        try:
            text = payload.decode(charset)
            break
        except LookupError:
            known = False
        except (UnicodeDecodeError, ValueError):
            continue
    if text is None:
        text = payload.decode("cp1252" if known else "utf-8", "replace")
    return text.replace("\r\n", "\n")


def html_to_text(html: str) -> str:
    """Readable text from HTML: scripts, styles and embedded objects dropped, nothing fetched or run."""
    from tools.common.documents import html_to_blocks

    try:
        blocks = html_to_blocks(html[: MAX_TEXT * 4], "")
    except Exception:
        return re.sub(r"<[^>]*>", " ", html)[:MAX_TEXT]
    return "\n\n".join(b.text for b in blocks.blocks)[:MAX_TEXT]


@dataclass
class Attachment:
    index: int
    filename: str
    content_type: str
    size: int
    part: Message


def _leaves(message: Message) -> tuple[list[Message], bool]:
    """Leaf parts, depth-first, bounded in depth and count (iterative: no recursion to exhaust); the flag
    says whether the bounds cut anything off."""
    leaves: list[Message] = []
    stack: list[tuple[Message, int]] = [(message, 0)]
    seen, cut = 0, False
    while stack:
        if seen >= MAX_PARTS:
            return leaves, True
        part, depth = stack.pop()
        seen += 1
        try:
            children = part.get_payload() if part.is_multipart() else None
        except Exception:
            children = None
        if isinstance(children, list):
            if depth >= MAX_DEPTH:
                cut = True
                continue
            stack.extend((child, depth + 1) for child in reversed(children) if isinstance(child, Message))
        else:
            leaves.append(part)
    return leaves, cut


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:
        name = ""
    return re.sub(r"[\x00-\x1f/\\]", "_", str(name)).strip()[:255]


def _disposition(part: Message) -> str:
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:
        return ""


@dataclass
class Reading:
    headers: dict[str, Any]
    text: str
    html_text: str
    attachments: list[Attachment]
    defects: int
    truncated: bool

    def view(self) -> dict[str, Any]:
        return {**self.headers, "text": self.text, "html_as_text": self.html_text,
                "attachments": [{"index": a.index, "filename": a.filename, "content_type": a.content_type,
                                 "size": a.size} for a in self.attachments],
                "defects": self.defects, "truncated": self.truncated}


def read(raw: bytes) -> Reading:
    message = parse(raw)
    headers = {
        "subject": header(message, "subject"), "from": addresses(message, "from"), "to": addresses(message, "to"),
        "cc": addresses(message, "cc"), "reply_to": addresses(message, "reply-to"), "date": header(message, "date"),
        "message_id": header(message, "message-id"), "in_reply_to": header(message, "in-reply-to"),
        "references": header(message, "references")[:4000],
    }
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    leaves, cut = _leaves(message)
    for part in leaves:
        ctype = _content_type(part)
        name = _filename(part)
        disposition = _disposition(part)
        if not name and disposition != "attachment" and ctype in ("text/plain", "text/html"):
            (plain if ctype == "text/plain" else html).append(_decode(part))
            continue
        if ctype.startswith("multipart/"):
            continue
        try:
            payload = part.get_payload(decode=False)
            size = len(payload) * 3 // 4 if isinstance(payload, str) and "base64" in str(
                part.get("content-transfer-encoding", "")).lower() else len(payload or "")
        except Exception:
            size = 0
        attachments.append(Attachment(len(attachments), name or f"part-{len(attachments) + 1}", ctype, size, part))
    text = "\n\n".join(p for p in plain if p.strip())
    html_text = "\n\n".join(html_to_text(h) for h in html if h.strip())
    truncated = cut or len(text) > MAX_TEXT or len(html_text) > MAX_TEXT
    defects = sum(len(getattr(p, "defects", ())) for p in [message, *leaves])
    return Reading(headers, text[:MAX_TEXT], html_text[:MAX_TEXT], attachments, defects, truncated)


def attachment_bytes(attachment: Attachment) -> bytes:
    try:
        data = attachment.part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    try:
        return attachment.part.as_bytes()
    except Exception:
        return b""


# writing --------------------------------------------------------------------------------------------
def clean_header(value: Any, what: str, limit: int = 998) -> str:
    if not isinstance(value, str):
        raise MailError(f"{what}: expected text")
    if any(ch in value for ch in "\r\n\x00"):
        raise MailError(f"{what}: line breaks are not allowed in a header (this is how header injection works)")
    if len(value) > limit:
        raise MailError(f"{what}: longer than {limit} characters")
    return value


def clean_addresses(values: Any, what: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or len(values) > 100:
        raise MailError(f"{what}: expected a list of up to 100 addresses")
    out = []
    for number, value in enumerate(values):
        where = f"{what}[{number}]"
        clean_header(value, where, 320)
        pairs = email.utils.getaddresses([value])
        if len(pairs) != 1 or not re.fullmatch(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+", pairs[0][1] or ""):
            raise MailError(f"{where}: {value!r} is not one e-mail address")
        name, address = pairs[0]
        out.append(email.utils.formataddr((name, address)) if name else address)
    return out


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.splitlines())


def reply_subject(subject: str, prefix: str) -> str:
    if re.match(rf"^\s*{prefix}:", subject, re.I):
        return subject
    return f"{prefix}: {subject}".strip()


def compose(*, sender: str, to: list[str], cc: list[str], bcc: list[str], subject: str, body: str,
            html: str | None = None, original: Reading | None = None, mode: str = "new",
            attachments: list[tuple[str, str, bytes]] = (), domain: str = "junction.local") -> EmailMessage:
    """A new message; for replies and forwards, `original` (as `read` gave it) supplies threading headers, the
    quoted text and the forwarded attachments. Every value must already have been checked
    (`clean_header`/`clean_addresses`)."""
    message = EmailMessage(policy=POLICY)
    message["From"] = sender
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    if bcc:
        message["Bcc"] = ", ".join(bcc)
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain=domain)
    text = body
    forwarded: list[Attachment] = []
    if original is not None:
        was = original.headers
        who = ", ".join(was["from"]) or "someone"
        original_text = original.text or original.html_text
        if mode in ("reply", "reply_all"):
            if was["message_id"]:
                message["In-Reply-To"] = was["message_id"]
                message["References"] = " ".join(x for x in (was["references"], was["message_id"]) if x)[-4000:]
            text = f"{body}\n\nOn {was['date']}, {who} wrote:\n{_quote(original_text)}\n"
        elif mode == "forward":
            lines = ["---------- Forwarded message ----------", f"From: {who}", f"Date: {was['date']}",
                     f"Subject: {was['subject']}", f"To: {', '.join(was['to'])}", ""]
            text = f"{body}\n\n" + "\n".join(lines) + "\n" + original_text + "\n"
            forwarded = original.attachments
    message["Subject"] = subject
    message.set_content(text.replace("\r\n", "\n"))
    if html:
        message.add_alternative(html, subtype="html")
    for attachment in forwarded:
        maintype, _, subtype = attachment.content_type.partition("/")
        if maintype in ("multipart", "message"):
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(attachment_bytes(attachment), maintype=maintype or "application",
                               subtype=subtype or "octet-stream", filename=attachment.filename)
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


def to_bytes(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=POLICY)
