#!/usr/bin/env python3
"""Hostile HTTP server for tests/hostile: 127.0.0.1:PORT, one behaviour per MODE.
brackets  every request: 200, application/json, 400 KB of nested brackets ([[[...]]], 200,000 deep)
object    every request: 200, application/json, {"a":{"a":...1...}} 100,000 deep
echo      GET: 200 {"ok": true}; POST/PUT: 200 echoing the JSON body received as {"received": ...}
stall     accepts connections, reads the request, never answers
trickle   answers a valid-looking response one byte per second, forever
wide      every request: 200, application/json, one object of 200,000 keys (about 3.5 MB)
"""
import http.server, socket, sys, threading, time

port, mode = int(sys.argv[1]), sys.argv[2]


def raw_server(handle):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def stall(c):
    try:
        c.recv(65536)
        time.sleep(3600)
    finally:
        c.close()


def trickle(c):
    try:
        c.recv(65536)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        for b in head + b"[" * 100000:
            c.send(bytes([b]))
            time.sleep(1)
    except OSError:
        pass
    finally:
        c.close()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, data):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        if mode == "brackets":
            return self._send(b"[" * 200000 + b"]" * 200000)
        if mode == "object":
            return self._send(b'{"a":' * 100000 + b"1" + b"}" * 100000)
        if mode == "wide":
            return self._send(b"{" + b",".join(b'"key%d":%d' % (i, i) for i in range(200000)) + b"}")
        self._send(b'{"ok": true}')

    do_HEAD = do_GET

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b"null"
        if mode in ("brackets", "object", "wide"):
            return self.do_GET()
        self._send(b'{"received": ' + body + b"}")

    do_PUT = do_PATCH = do_DELETE = do_POST


if mode == "stall":
    raw_server(stall)
elif mode == "trickle":
    raw_server(trickle)
else:
    http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
