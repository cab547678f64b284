#!/usr/bin/env python3
"""A stand-in for 002's Node API in front of its Bull queues: 127.0.0.1:PORT, state in DIR.

The queues start from DIR/queues.json: {"name": {"waiting": n, "active": n, "fail_rate": 0.0,
"stuck": false}, ...}. Time is counted in reads of GET /api/queue/stats (one tick each), so a
test is deterministic on a loaded machine: each tick one active job of every queue finishes (it
is not stuck), and a queue that is not paused takes up to 2 waiting jobs, each of which completes
or fails (fail_rate of them fail). GET /health, /api/version, /api/projects, /api/analysis answer
200. Every POST is appended to DIR/requests.log as {"path": ..., "active": total active jobs};
POST /api/queue/pause-all, /resume-all, /<q>/pause, /<q>/resume and /clean-all act on the model.
"""
import http.server, json, os, sys, threading

port, state = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
queues = {}
for name, q in json.load(open(os.path.join(state, "queues.json"))).items():
    queues[name] = {"waiting": int(q.get("waiting", 0)), "active": int(q.get("active", 0)),
                    "completed": int(q.get("completed", 0)), "failed": int(q.get("failed", 0)),
                    "paused": False, "fail_rate": float(q.get("fail_rate", 0.0)),
                    "stuck": bool(q.get("stuck", False)), "owed": 0.0}


def finish(q, n):
    for _ in range(n):
        q["owed"] += q["fail_rate"]
        if q["owed"] >= 1.0:
            q["owed"] -= 1.0
            q["failed"] += 1
        else:
            q["completed"] += 1


def tick():
    for q in queues.values():
        if q["stuck"]:
            continue
        if q["active"] > 0:
            q["active"] -= 1
            finish(q, 1)
        if not q["paused"]:
            k = min(2, q["waiting"])
            q["waiting"] -= k
            finish(q, k)


def public():
    return {n: {k: q[k] for k in ("waiting", "active", "completed", "failed", "paused")}
            for n, q in queues.items()}


class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock:
            if self.path == "/api/queue/stats":
                tick()
                return self._send(200, public())
        if self.path in ("/health", "/api/version", "/api/projects", "/api/analysis"):
            return self._send(200, {"status": "ok", "path": self.path})
        self._send(404, {"error": "not found"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        with lock:
            path = self.path
            parts = path.strip("/").split("/")
            if path == "/api/queue/pause-all":
                for q in queues.values():
                    q["paused"] = True
            elif path == "/api/queue/resume-all":
                for q in queues.values():
                    q["paused"] = False
            elif path == "/api/queue/clean-all":
                for q in queues.values():
                    q["failed"] = 0
            elif len(parts) == 4 and parts[:2] == ["api", "queue"] and parts[2] in queues \
                    and parts[3] in ("pause", "resume"):
                queues[parts[2]]["paused"] = parts[3] == "pause"
            active = sum(q["active"] for q in queues.values())
            with open(os.path.join(state, "requests.log"), "a") as f:
                f.write(json.dumps({"path": path, "active": active}) + "\n")
        self._send(200, {"ok": True})


http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
