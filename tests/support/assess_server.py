#!/usr/bin/env python3
"""An application that misbehaves on request, for the assessment tests: 127.0.0.1:PORT.
Behaviour is in the path, so one server serves every case:
GET /ok             -> 200 {"status": "healthy"}
GET /fail           -> 500
GET /auth/ok        -> 200;  GET /auth/fail -> 401 (a broken login)
GET /delay/MS       -> sleeps MS milliseconds, then 200
GET /rate/P         -> exactly P of every 100 requests to this path answer 500 (counted per path,
                       spread evenly: request i fails when floor((i+1)P/100) > floor(iP/100))
GET /queue/N        -> Bull's stats shape with N jobs waiting in one queue
"""
import http.server, json, sys, threading, time

port = int(sys.argv[1])
lock = threading.Lock()
counts = {}


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

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
        parts = self.path.strip("/").split("/")
        head = parts[0]
        arg = parts[1] if len(parts) > 1 else ""
        if head == "ok":
            return self._send(200, {"status": "healthy"})
        if head == "fail":
            return self._send(500, {"error": "internal"})
        if head == "auth":
            return self._send(200, {"user": "u"}) if arg == "ok" else self._send(401, {"error": "invalid token"})
        if head == "delay":
            time.sleep(int(arg) / 1000.0)
            return self._send(200, {"status": "slow"})
        if head == "rate":
            p = int(arg)
            with lock:
                i = counts.get(self.path, 0)
                counts[self.path] = i + 1
            failing = ((i + 1) * p) // 100 > (i * p) // 100
            return self._send(500 if failing else 200, {"i": i})
        if head == "queue":
            n = int(arg)
            return self._send(200, {"queues": {"analysis": {"waiting": n, "active": 0, "completed": 10,
                                                            "failed": 0, "delayed": 0}}})
        return self._send(404, {"error": "no such path"})


http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
