"""Benchmark the mail provider: search and read over a mailbox of 10,000 messages, through the hub vs straight IMAP.

Starts the test Dovecot + Postfix (tests/fixtures/mail_server.py; needs root and the Debian packages that
scripts/test.sh installs), delivers N generated messages to alice's INBOX over one LMTP connection, starts
the hub (`junction serve`) with alice as a mail account, and then, alternating per operation:

* search: `mail__search` (one criterion from a rotating set: subject word, sender, body word, unseen,
  flagged; newest 20 with their summaries) vs the same with imaplib directly: UID SEARCH + UID FETCH of
  the page's flags, size and headers on an already selected session (the baseline: Dovecot's own time
  plus the wire);
* read: `mail__read` of a random message (full parse, HTML converted) vs UID FETCH BODY.PEEK[] directly;
* new mail: from the end of an LMTP delivery to `notifications/resources/updated` at a subscribed MCP client
  vs to `* n EXISTS` on a raw IDLE connection of the benchmark's own.

Prints ONE JSON line with p50/p99 (ms) of each, and the hub/direct ratios. Progress goes to stderr.

    .venv/bin/python tests/bench/mail_bench.py                 # 10,000 messages, 200 of each operation
    .venv/bin/python tests/bench/mail_bench.py --quick         # 300 messages, 20 of each (smoke run)
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import json
import os
import platform
import random
import smtplib
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.mail_server import MailServer, available  # noqa: E402
from tests.helpers import serve_hub  # noqa: E402

USER = "alice@example.test"
WORDS = ("invoice budget meeting travel report launch design review contract roadmap hiring security outage "
         "migration quarterly forecast customer renewal partner webinar release sprint incident audit payroll "
         "backup database network printer laptop office holiday training feedback proposal").split()
NAMES = [f"{first} {last}" for first in ("Ada", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana", "Ivo", "Jun")
         for last in ("Stone", "Marsh", "Reed", "Frost", "Vale")]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def message(number: int, rng: random.Random) -> bytes:
    name = rng.choice(NAMES)
    sender = name.lower().replace(" ", ".") + "@partners.test"
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))).capitalize() + f" #{number}"
    paragraphs = ["\r\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(rng.randint(1, 4)))
                  for _ in range(rng.randint(1, 5))]
    text = "\r\n\r\n".join(paragraphs)
    head = (f"From: {name} <{sender}>\r\nTo: Alice <{USER}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, {1 + number % 28:02d} Jun 2026 09:{number % 60:02d}:00 +0000\r\n"
            f"Message-ID: <m{number}@partners.test>\r\nMIME-Version: 1.0\r\n")
    if number % 3 == 0:  # a third are HTML newsletters with a text alternative
        html = "".join(f"<p>{p}</p>" for p in paragraphs)
        return (head + "Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n--b\r\n"
                "Content-Type: text/html; charset=utf-8\r\n\r\n<html><body>" + html + "</body></html>\r\n--b--\r\n"
                ).encode()
    return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n").encode()


def seed(mail: MailServer, count: int) -> float:
    rng = random.Random(7)
    started = time.perf_counter()
    lmtp = smtplib.LMTP("127.0.0.1", mail.ports["LMTP"], timeout=60)
    try:
        for number in range(count):
            lmtp.sendmail("news@partners.test", [USER], message(number, rng))
    finally:
        lmtp.quit()
    return time.perf_counter() - started


def criteria(step: int, rng: random.Random) -> tuple[dict[str, Any], list[str]]:
    """One search for the hub (tool arguments) and the same for imaplib (UID SEARCH arguments)."""
    word = rng.choice(WORDS)
    kind = step % 5
    if kind == 0:
        return {"subject": word}, ["SUBJECT", f'"{word}"']
    if kind == 1:
        name = rng.choice(NAMES).split()[0].lower()
        return {"from": name}, ["FROM", f'"{name}"']
    if kind == 2:
        return {"text": word}, ["BODY", f'"{word}"']
    if kind == 3:
        return {"unseen": True}, ["UNSEEN"]
    return {"flagged": True}, ["FLAGGED"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def figures(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(values) * 1000, 2), "p99_ms": round(percentile(values, 0.99) * 1000, 2)}


async def announcements(url: str, mail: MailServer, count: int) -> tuple[list[float], list[float]]:
    """Deliver over LMTP, time `resources/updated` for the INBOX through the hub and `* n EXISTS` on a raw
    IDLE connection of our own (the baseline: Dovecot's own notification delay)."""
    import mcp_types as types
    from mcp import Client

    updated = asyncio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ServerNotification) and message.method == "notifications/resources/updated":
            updated.set()

    raw = imaplib.IMAP4("127.0.0.1", mail.ports["IMAP"])
    raw.login(USER, mail.users[USER])
    raw.select("INBOX", readonly=True)
    hub_times, direct_times = [], []
    async with Client(url, mode="legacy", message_handler=on_message) as client:
        await client.subscribe_resource("mail://alice/INBOX")
        deadline = time.monotonic() + 60  # until the hub's IDLE watcher has the INBOX selected
        while (await client.call_tool("mail__accounts", {})).structured_content["accounts"][0]["watching"] != ["INBOX"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the hub's IDLE watcher did not start")
            await asyncio.sleep(0.1)
        for number in range(count):
            tag = raw._new_tag()
            raw.send(tag + b" IDLE\r\n")
            assert raw._get_line().startswith(b"+")
            updated.clear()
            started = time.perf_counter()
            await asyncio.to_thread(mail.deliver_lmtp, USER, f"Subject: ping {number}\r\n\r\nx\r\n".encode())

            def exists() -> float:
                while b"EXISTS" not in raw._get_line():
                    pass
                return time.perf_counter()

            seen = await asyncio.to_thread(exists)
            direct_times.append(seen - started)
            await asyncio.wait_for(updated.wait(), 60)
            hub_times.append(time.perf_counter() - started)
            raw.send(b"DONE\r\n")
            while not raw._get_line().startswith(tag):
                pass
            await asyncio.sleep(0.3)
    raw.logout()
    return hub_times, direct_times


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from mcp import Client

    mail = MailServer.create().start()
    work = Path(tempfile.mkdtemp(prefix="junction-mail-bench-"))
    try:
        log(f"seeding {args.messages} messages over LMTP ...")
        seed_seconds = seed(mail, args.messages)
        log(f"seeded in {seed_seconds:.1f} s")
        imap = imaplib.IMAP4("127.0.0.1", mail.ports["IMAP"])
        imap.starttls(ssl.create_default_context(cafile=str(mail.ca_file)))
        imap.login(USER, mail.users[USER])
        imap.select("INBOX", readonly=True)
        _, found = imap.uid("SEARCH", "ALL")
        uids = [int(u) for u in found[0].split()]
        assert len(uids) == args.messages, f"{len(uids)} messages in the INBOX, expected {args.messages}"
        config = (f'[providers.mail.accounts.alice]\nusername = "{USER}"\npassword = "${{MAIL_BENCH_PASSWORD}}"\n'
                  f'imap_host = "127.0.0.1"\nimap_port = {mail.ports["IMAP"]}\nimap_tls = "starttls"\n'
                  f'smtp_port = {mail.ports["SUBMISSION"]}\nsmtp_tls = "starttls"\nca_file = "{mail.ca_file}"\n'
                  'watch = ["INBOX"]\n')
        rng = random.Random(11)
        times: dict[str, list[float]] = {"search_hub": [], "search_direct": [], "read_hub": [], "read_direct": []}
        errors = 0
        with serve_hub(work, config, env={"MAIL_BENCH_PASSWORD": mail.users[USER]}) as hub:
            async with Client(hub.url, mode="2026-07-28", read_timeout_seconds=60) as client:
                for warm in range(3):  # the hub's IMAP session is opened and the folder selected
                    await client.call_tool("mail__search", {"account": "alice", "subject": WORDS[warm]})
                    await client.call_tool("mail__read", {"account": "alice", "uid": uids[warm]})
                for step in range(args.ops):
                    hub_args, imap_args = criteria(step, rng)
                    uid = rng.choice(uids)
                    started = time.perf_counter()
                    _, page = imap.uid("SEARCH", *imap_args)
                    newest = [int(u) for u in page[0].split()][-20:]
                    if newest:
                        imap.uid("FETCH", ",".join(map(str, newest)), "(UID FLAGS RFC822.SIZE INTERNALDATE "
                                 "BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID)])")
                    times["search_direct"].append(time.perf_counter() - started)
                    started = time.perf_counter()
                    result = await client.call_tool("mail__search", {"account": "alice", "limit": 20, **hub_args})
                    times["search_hub"].append(time.perf_counter() - started)
                    if result.is_error or result.structured_content["total"] != len(page[0].split()):
                        errors += 1
                        log(f"search {hub_args}: {result.content[0].text[:200]}")
                    started = time.perf_counter()
                    imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
                    times["read_direct"].append(time.perf_counter() - started)
                    started = time.perf_counter()
                    read = await client.call_tool("mail__read", {"account": "alice", "uid": uid})
                    times["read_hub"].append(time.perf_counter() - started)
                    if read.is_error or f"#{uid - uids[0]}" not in read.structured_content["subject"]:
                        errors += 1
                        log(f"read {uid}: {read.content[0].text[:200]}")
            log("new-mail announcements ...")
            times["idle_hub"], times["idle_direct"] = await announcements(hub.url, mail, args.announcements)
        imap.logout()
        report = {
            "bench": "mail", "ok": errors == 0, "errors": errors, "messages": args.messages, "ops": args.ops,
            "seed_seconds": round(seed_seconds, 1),
            "search": {"hub": figures(times["search_hub"]), "direct": figures(times["search_direct"])},
            "read": {"hub": figures(times["read_hub"]), "direct": figures(times["read_direct"])},
            "new_mail": {"hub": figures(times["idle_hub"]), "direct": figures(times["idle_direct"]),
                         "deliveries": args.announcements},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "loadavg": [round(x, 2) for x in os.getloadavg()]},
        }
        for op in ("search", "read"):
            report[op]["p50_ratio"] = round(report[op]["hub"]["p50_ms"] / max(report[op]["direct"]["p50_ms"], 1e-3), 2)
        return report
    finally:
        mail.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--ops", type=int, default=200, help="searches and reads measured (each)")
    parser.add_argument("--announcements", type=int, default=20, help="deliveries timed until announced")
    parser.add_argument("--quick", action="store_true", help="300 messages, 20 operations, 5 deliveries")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.ops, args.announcements = 300, 20, 5
    why = available()
    if why:
        print(json.dumps({"bench": "mail", "ok": False, "error": f"no mail server: {why}"}))
        return 1
    report = asyncio.run(run(args))
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
