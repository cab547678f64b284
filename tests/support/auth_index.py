"""A directory served over HTTP on 127.0.0.1 that requires basic auth, for tests of credentials
that must reach a child through its environment or a private file, never its argv.

usage: AUTH_PASSWORD=... (or AUTH_TOKEN=...) auth_index.py PORT DIR USER   (the password by environment: argv is
world-readable, and the tests check that no command line shows it)
Answers 401 without the right Authorization header; with it, files and directory listings
(the links pip's find-links reads). Every request's path and whether it was authorized is
appended to DIR/../auth_requests.log.
"""
import base64
import functools
import http.server
import os
import sys

port, root, user = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# AUTH_TOKEN instead: a registry's "Authorization: Bearer TOKEN" (npm's _authToken).
if os.environ.get("AUTH_TOKEN"):
    expected = "Bearer " + os.environ["AUTH_TOKEN"]
else:
    expected = "Basic " + base64.b64encode(f"{user}:{os.environ['AUTH_PASSWORD']}".encode()).decode()
log_path = os.path.join(os.path.dirname(os.path.abspath(root)), "auth_requests.log")


class Handler(http.server.SimpleHTTPRequestHandler):
    def _authorized(self):
        ok = self.headers.get("Authorization") == expected
        with open(log_path, "a") as f:
            f.write(f"{'ok' if ok else 'denied'} {self.command} {self.path}\n")
        if not ok:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="index"')
            self.send_header("Content-Length", "0")
            self.end_headers()
        return ok

    def do_GET(self):
        if self._authorized():
            super().do_GET()

    def do_HEAD(self):
        if self._authorized():
            super().do_HEAD()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer.allow_reuse_address = True
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=root))
server.serve_forever()
