#!/usr/bin/env python3
"""A local stand-in for Slack: prints what Slack would receive.

    python3 slack_sink.py [--port 18490] [--log FILE] [--json]

Incoming webhooks: POST any path (e.g. /services/T000/B000/XXX) -> "ok".
Web API: POST /api/chat.postMessage and /api/chat.update -> {"ok": true, "ts": ..., "channel": ...}
(threads: a message with thread_ts is shown as a reply). Each message is printed as its
text fallback, colour and Block Kit fields; --json prints the whole payload; --log FILE
appends one JSON line per request ({"path", "auth", "body"}) for tests.
No dependencies beyond the Python standard library.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COLOURS = {"good": "\033[32m", "danger": "\033[31m", "warning": "\033[33m"}
RESET = "\033[0m"


def blocks_text(blocks):
    """The visible text of Block Kit blocks, one line per field/section."""
    out = []
    for b in blocks or []:
        if b.get("type") == "header":
            continue
        if "text" in b and isinstance(b["text"], dict):
            out.append(b["text"].get("text", ""))
        for f in b.get("fields", []):
            out.append(f.get("text", "").replace("\n", ": ", 1))
        for e in b.get("elements", []):
            if e.get("url"):
                out.append(f"[{e.get('text', {}).get('text', 'link')}] {e['url']}")
    return [line for line in out if line]


class Sink(BaseHTTPRequestHandler):
    counter = 0
    lock = threading.Lock()

    def log_message(self, *args):  # quiet: we print our own lines
        pass

    def do_GET(self):  # a readiness check; not recorded
        data = b"slack sink\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_raw": raw}
        with Sink.lock:
            Sink.counter += 1
            ts = f"{int(time.time())}.{Sink.counter:06d}"
            self.server.record(self.path, self.headers.get("Authorization"), body, ts)
        if self.path.startswith("/api/"):
            answer = {"ok": True, "channel": body.get("channel", "C0DEMO"),
                      "ts": body.get("ts", ts)}
            data = json.dumps(answer).encode()
            ctype = "application/json"
        else:
            data, ctype = b"ok", "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, args):
        super().__init__(addr, Sink)
        self.args = args

    def record(self, path, auth, body, ts):
        if self.args.log:
            with open(self.args.log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"path": path, "auth": auth, "body": body}) + "\n")
        colour = ""
        for a in body.get("attachments", []):
            colour = a.get("color", colour)
        where = path.rsplit("/", 1)[-1] if path.startswith("/api/") else "webhook"
        if body.get("thread_ts"):
            where += f" (reply in thread {body['thread_ts']})"
        c = COLOURS.get(colour, "") if sys.stdout.isatty() else ""
        print(f"{c}┃ slack {where} [{colour or 'no colour'}]{RESET if c else ''}", flush=False)
        print(f"┃ {body.get('text', '')}")
        if self.args.json:
            print(json.dumps(body, indent=2, ensure_ascii=False))
        else:
            for b in body.get("blocks", []):
                if b.get("type") == "section" and "text" in b:
                    print(f"┃   {b['text']['text']}")
            for a in body.get("attachments", []):
                for line in blocks_text(a.get("blocks")):
                    print("┃   " + line.replace("\n", "\n┃     "))
        print(flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=18490)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--log", help="append one JSON line per request to this file")
    p.add_argument("--json", action="store_true", help="print whole payloads")
    args = p.parse_args()
    srv = Server((args.host, args.port), args)
    print(f"slack sink listening on http://{args.host}:{srv.server_address[1]}/", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
