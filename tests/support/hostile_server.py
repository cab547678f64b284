#!/usr/bin/env python3
"""Servers that misbehave the way real ones do, for the timeout tests: 127.0.0.1:PORT.

usage: hostile_server.py MODE PORT LOG [SIZE]
Every event is appended to LOG as one line ("accept", "startup", "query", "cancel", ...) so a
test can wait until the client is where it should be blocked.

blackhole           accepts, reads and discards, never says a word (for any protocol)
http-trickle        answers an HTTP request one byte a second, for ever
http-big-length     answers 200 with SIZE bytes, announced in Content-Length
http-big-stream     answers 200 with SIZE bytes, no length (ends when the connection closes)
redis-trickle       answers every command "+OOOO..." one byte a second, never ending the line
pg-silent           PostgreSQL: completes the startup (AuthenticationOk, BackendKeyData,
                    ReadyForQuery), then never answers a query; a cancel request is accepted
                    and held open, as a server too busy to act on it does
pg-trickle          PostgreSQL: completes the startup, then answers a query with an endless
                    NoticeResponse one byte a second
pg-trickle-startup  PostgreSQL: answers the startup packet one byte a second
"""
import socket, struct, sys, threading, time

mode, port, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
size = int(sys.argv[4]) if len(sys.argv) > 4 else 0
log_lock = threading.Lock()


def log(event):
    with log_lock, open(log_path, "a") as f:
        f.write(event + "\n")


def drain(conn):
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


def trickle(conn, data, forever=b""):
    """Sends data, then `forever` repeated, one byte a second, until the client goes."""
    try:
        i = 0
        while True:
            if i < len(data):
                b = data[i:i + 1]
            elif forever:
                b = forever
            else:
                return
            conn.sendall(b)
            i += 1
            time.sleep(1)
    except OSError:
        pass


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_http_request(conn):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    log("request " + buf.split(b"\r\n", 1)[0].decode(errors="replace"))


def pg_startup(conn):
    """Reads the startup packet (after refusing SSL); False for a cancel request."""
    while True:
        (length,) = struct.unpack("!i", recv_exact(conn, 4))
        body = recv_exact(conn, length - 4)
        (code,) = struct.unpack("!i", body[:4])
        if code == 80877103:  # SSLRequest
            conn.sendall(b"N")
            continue
        if code == 80877104:  # GSSENCRequest
            conn.sendall(b"N")
            continue
        if code == 80877102:  # CancelRequest
            log("cancel")
            return False
        log("startup")
        return True


def pg_ready(conn):
    conn.sendall(b"R" + struct.pack("!ii", 8, 0))  # AuthenticationOk
    for k, v in ((b"server_version", b"15.0"), (b"client_encoding", b"UTF8"),
                 (b"standard_conforming_strings", b"on"), (b"integer_datetimes", b"on")):
        payload = k + b"\0" + v + b"\0"
        conn.sendall(b"S" + struct.pack("!i", 4 + len(payload)) + payload)
    conn.sendall(b"K" + struct.pack("!iii", 12, 4242, 77))  # BackendKeyData
    conn.sendall(b"Z" + struct.pack("!i", 5) + b"I")  # ReadyForQuery, idle


def pg_wait_query(conn):
    # Parse/Bind/... of the extended protocol, or a simple Query: the first message is enough.
    t = recv_exact(conn, 1)
    (length,) = struct.unpack("!i", recv_exact(conn, 4))
    recv_exact(conn, length - 4)
    log("query " + t.decode(errors="replace"))


def handle(conn):
    log("accept")
    try:
        if mode == "blackhole":
            drain(conn)
        elif mode == "http-trickle":
            read_http_request(conn)
            trickle(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n",
                    b"x")
        elif mode in ("http-big-length", "http-big-stream"):
            read_http_request(conn)
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            head += ("Content-Length: %d\r\n" % size) if mode == "http-big-length" else "Connection: close\r\n"
            conn.sendall((head + "\r\n").encode())
            chunk = b"x" * 65536
            sent = 0
            while sent < size:
                n = min(len(chunk), size - sent)
                conn.sendall(chunk[:n])
                sent += n
            log("sent all")
        elif mode == "redis-trickle":
            conn.recv(65536)
            log("command")
            trickle(conn, b"+", b"O")
        elif mode == "pg-silent":
            if pg_startup(conn):
                pg_ready(conn)
                pg_wait_query(conn)
            drain(conn)  # a cancel, or the query, is held: nothing is ever answered or closed
        elif mode == "pg-trickle":
            if pg_startup(conn):
                pg_ready(conn)
                pg_wait_query(conn)
                trickle(conn, b"N" + struct.pack("!i", 1000000), b"x")
            drain(conn)
        elif mode == "pg-trickle-startup":
            if pg_startup(conn):
                trickle(conn, b"R" + struct.pack("!ii", 8, 0), b"")
            drain(conn)
    except (OSError, EOFError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(64)
while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
