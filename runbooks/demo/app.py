#!/usr/bin/env python3
"""The demo application: a small HTTP service with a health endpoint. This is release v1.0.0
(good); setup.sh derives the bad release v1.1.0 from it.

It reads its config (JSON) and its SQLite database, as a real app would; /health answers 200
only when both are usable. Started by runbook's `process` service backend.
"""
import argparse, json, os, sqlite3, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1.0.0"


def check(config_path, db_path):
    with open(config_path) as f:
        cfg = json.load(f)
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        (projects,) = db.execute("SELECT count(*) FROM projects").fetchone()
    return {"status": "ok", "version": VERSION, "env": cfg.get("env"), "projects": projects}


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            try:
                self._send(200, check(self.server.config, self.server.db))
            except Exception as e:  # the health check reports, it never crashes the server
                self._send(503, {"status": "error", "version": VERSION, "error": str(e)})
        elif self.path == "/version":
            self._send(200, {"version": VERSION})
        else:
            self._send(404, {"error": "not found"})

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--db", required=True)
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.config, srv.db = a.config, a.db
    print(f"demo app {VERSION} listening on 127.0.0.1:{a.port} (pid {os.getpid()})", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
