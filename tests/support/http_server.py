#!/usr/bin/env python3
"""Test HTTP server: 127.0.0.1:PORT, state in DIR.
GET  /health  -> status from DIR/status (default 200), body {"status": "..."}
GET  /slow    -> sleeps 10 s
GET  /api/metrics -> DIR/metrics.json (the app's numbers), {} without it
POST|PUT|PATCH|DELETE any path -> appended to DIR/requests.log, answered 200 echoing the body
Feature flags, as the source procedure's app (001) has them: POST /api/feature-flags/toggle with
{"flag_name": F, "enabled": B} records the state in DIR/flags.json (after the usual logging);
GET /api/feature-flags/F answers {"name": F, "enabled": B} (true for a flag never toggled).
"""
import http.server, json, os, sys, time

port, state = int(sys.argv[1]), sys.argv[2]

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _flags(self):
        try:
            return json.load(open(os.path.join(state, "flags.json")))
        except Exception:
            return {}

    def do_GET(self):
        prefix = "/api/feature-flags/"
        if self.path.startswith(prefix) and self.path != prefix + "toggle":
            name = self.path[len(prefix):]
            return self._send(200, {"name": name, "enabled": self._flags().get(name, True)})
        if self.path == "/slow":
            time.sleep(10)
        if self.path == "/api/metrics":
            try:
                return self._send(200, json.load(open(os.path.join(state, "metrics.json"))))
            except Exception:
                return self._send(200, {})
        try:
            code = int(open(os.path.join(state, "status")).read().strip())
        except Exception:
            code = 200
        self._send(code, {"status": "ok" if code == 200 else "failing", "path": self.path,
                          "auth": self.headers.get("Authorization", "")})

    do_HEAD = do_GET

    def _change(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        with open(os.path.join(state, "requests.log"), "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path, "body": body,
                                "auth": self.headers.get("Authorization", "")}) + "\n")
        try:
            code = int(open(os.path.join(state, "post_status")).read().strip())
        except Exception:
            code = 200
        try:
            echoed = json.loads(body) if body else {}
        except Exception:
            echoed = {"raw": body}
        if code < 400 and self.path == "/api/feature-flags/toggle" and isinstance(echoed, dict) \
                and "flag_name" in echoed:
            flags = self._flags()
            flags[echoed["flag_name"]] = bool(echoed.get("enabled"))
            with open(os.path.join(state, "flags.json.tmp"), "w") as f:
                json.dump(flags, f)
            os.replace(os.path.join(state, "flags.json.tmp"), os.path.join(state, "flags.json"))
        self._send(code, {"ok": code < 400, "received": echoed})

    do_POST = do_PUT = do_PATCH = do_DELETE = _change

http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
