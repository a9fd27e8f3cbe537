"""Hostile and broken messages: what the internet delivers to a mailbox. Each entry is (name, raw bytes)."""

from __future__ import annotations

import base64
import os


def _multipart(boundary: str, parts: list[bytes], subtype: str = "mixed") -> bytes:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    return (f"Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\r\n\r\n".encode() + body
            + b"--" + boundary.encode() + b"--\r\n")


def _head(subject: str, extra: str = "") -> bytes:
    return (f"From: Mallory <mallory@elsewhere.test>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@elsewhere.test>\r\nMIME-Version: 1.0\r\n{extra}").encode()


def nested(depth: int) -> bytes:
    inner = b"Content-Type: text/plain\r\n\r\nthe bottom of the well\r\n"
    for level in range(depth):
        inner = _multipart(f"b{level}", [inner])
    return inner


def corpus() -> list[tuple[str, bytes]]:
    big = base64.encodebytes(os.urandom(20 * 2**20)).replace(b"\n", b"\r\n")
    script_html = (b"<html><head><script>alert('pwned')</script><style>body{display:none}</style></head>"
                   b"<body onload=\"steal()\"><p>Dear customer,</p><p>click <a href=\"javascript:evil()\">here</a>"
                   b"</p><iframe src=\"http://tracker.invalid/\"></iframe><img src=\"http://tracker.invalid/p.gif\">"
                   b"<object data=\"x.swf\"></object></body></html>")
    messages = [
        ("no headers at all", b"just a body, no header block\r\n"),
        ("garbage header lines", _head("garbage headers") + b"this is not a header\r\n: no name\r\n\x01\x02: \xff\xfe\r\n"
                                                            b"\r\nbody\r\n"),
        ("multipart without boundary", _head("no boundary") + b"Content-Type: multipart/mixed\r\n\r\n--x\r\n"
                                                              b"Content-Type: text/plain\r\n\r\nlost\r\n--x--\r\n"),
        ("boundary never closed", _head("unclosed") + b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
                                                      b"Content-Type: text/plain\r\n\r\nstill open\r\n"),
        ("nested 300 deep", _head("deep nesting") + nested(300)),
        ("10000 parts", _head("many parts") + _multipart("many", [b"Content-Type: text/plain\r\n\r\nx"] * 10000)),
        ("unknown charset", _head("klingon") + b"Content-Type: text/plain; charset=x-klingon-42\r\n\r\n"
                                               b"Qapla\xe2\x80\x99 \xff\xfe\r\n"),
        ("wrong charset", _head("lying charset") + b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
                                                   b"caf\xe9 cr\xe8me br\xfbl\xe9e\r\n"),
        ("broken base64", _head("bad base64") + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                                                b"!!!not base64 at all===\r\nSGVsbG8=\r\n"),
        ("broken quoted-printable", _head("bad qp") + b"Content-Type: text/plain\r\n"
                                                      b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=4=\r\n"),
        ("20 MB attachment", _head("huge attachment") + _multipart("big", [
            b"Content-Type: text/plain\r\n\r\nthe file you asked for",
            b"Content-Type: application/octet-stream; name=\"big.bin\"\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"big.bin\"\r\n\r\n" + big])),
        ("HTML with scripts", _head("html with scripts") + b"Content-Type: text/html; charset=utf-8\r\n\r\n"
         + script_html + b"\r\n"),
        ("subject with encoded CRLF", _head("=?utf-8?b?" + base64.b64encode(b"hello\r\nBcc: victim@elsewhere.test")
                                            .decode() + "?=") + b"\r\nbody\r\n"),
        ("encoded word with bad encoding", _head("=?utf-8?q?=FF=FE=?= =?unknown?b?SGk=?= =?utf-8?b?***?=")
         + b"\r\nbody\r\n"),
        ("100 KB subject", _head("long " + "x" * 100_000) + b"\r\nbody\r\n"),
        ("NUL bytes", _head("nul bytes") + b"X-Nul: a\x00b\r\n\r\nbody with \x00 NUL \x00 bytes\r\n"),
        ("message/rfc822 nested 60 deep", _head("rfc822 russian doll") + _doll(60)),
        ("garbage content-type", _head("garbage type") + b"Content-Type: ;;;===\"\"\"; charset=\"\r\n\r\nbody\r\n"),
        ("attachment names that are paths", _head("path names") + _multipart("names", [
            b"Content-Type: text/plain\r\n\r\nsee files",
            b"Content-Type: text/plain; name=\"../../.bashrc\"\r\nContent-Disposition: attachment; "
            b"filename=\"../../.bashrc\"\r\n\r\nrm -rf ~",
            b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=\"C:\\\\Windows\\\\x.exe\"\r\n\r\nMZ",
            b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename*=utf-8''%0D%0Aevil%00.txt"
            b"\r\n\r\nx"])),
        ("nonsense addresses and date", b"From: <<<@@@>>>, \"unterminated <x@\r\nTo: " + b", ".join(
            f"user{i}@example.test".encode() for i in range(500)) + b"\r\nDate: the day after tomorrow\r\n"
            b"Subject: bad addresses\r\n\r\nbody\r\n"),
        ("8-bit headers", b"From: J\xc3\xbcrgen <j@elsewhere.test>\r\nSubject: Gr\xfc\xdfe \xc3\xa9t\xc3\xa9\r\n\r\n"
                          b"hallo\r\n"),
        ("deep HTML", _head("deep html") + b"Content-Type: text/html\r\n\r\n" + b"<div>" * 20000 + b"bottom"
         + b"</div>" * 20000 + b"\r\n"),
        ("alternative with only broken parts", _head("broken alternative") + _multipart("alt", [
            b"Content-Type: text/html; charset=nope\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%%",
            b"Content-Type: text/plain; charset=utf-7\r\n\r\n+ZeVnLIqe-"], subtype="alternative")),
        ("header folding bomb", _head("folding") + b"X-Fold: a\r\n" + b" b\r\n" * 50000 + b"\r\nbody\r\n"),
    ]
    return messages


def _doll(depth: int) -> bytes:
    inner = b"Subject: the smallest doll\r\nContent-Type: text/plain\r\n\r\ncore\r\n"
    for level in range(depth):
        inner = (f"Subject: doll {level}\r\nContent-Type: message/rfc822\r\n\r\n").encode() + inner
    return b"Content-Type: message/rfc822\r\n\r\n" + inner
