#!/usr/bin/python3
"""faultproxy.py - a fault-injecting HTTP reverse proxy for S3 tests (stdlib only).

Listens on 127.0.0.1 (a free port unless --port is given), forwards every request to
--upstream with the request line, Host and all other headers untouched (SigV4 signatures stay
valid) and bodies streamed, and applies the fault named in --mode-file, which is read at each
request. Modes (one line; N = how many requests get the fault, omitted = every request):

    ok                  forward normally
    <code> [N]          answer <code> (e.g. 500, 503, 429, 404) with an S3 XML error body
    slowdown [N]        answer 503 with <Code>SlowDown</Code>
    reset [N]           close the connection with a TCP reset, no response
    truncate [N]        forward, then send the headers with the full Content-Length and only
                        half of the body, and close (a response with an empty body, such as
                        HEAD or PUT, is cut inside its status line)
    delay MS [N]        wait MS milliseconds, then forward
    hang [N]            never answer; hold the connection until the client gives up

The count restarts whenever the file is rewritten (new mtime or content); after N faults the
proxy forwards normally until the file changes. Each request is logged to --log with the fault
applied. --port-file receives the port once listening. If the upstream is unreachable the
client's connection is reset. SIGTERM stops the proxy.
"""

import argparse
import http.client
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding"}
S3_CODES = {
    400: "BadRequest",
    403: "AccessDenied",
    404: "NoSuchKey",
    429: "SlowDown",
    500: "InternalError",
    501: "NotImplemented",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class ModeError(ValueError):
    pass


def parse_mode(text):
    """Returns (kind, arg, count): kind in ok/status/reset/truncate/delay/hang."""
    words = text.split()
    if not words or words[0] == "ok":
        return ("ok", None, None)
    kind, rest = words[0].lower(), words[1:]
    arg = None
    try:
        if kind.isdigit():
            arg = int(kind)
            if not 100 <= arg <= 599:
                raise ModeError("status out of range")
            kind = "status"
        elif kind == "slowdown":
            kind, arg = "status", "slowdown"
        elif kind == "delay":
            if not rest:
                raise ModeError("delay needs MS")
            arg = int(rest[0])
            rest = rest[1:]
        elif kind not in ("reset", "truncate", "hang"):
            raise ModeError("unknown mode")
        count = int(rest[0]) if rest else None
        if len(rest) > 1 or (count is not None and count < 0):
            raise ModeError("bad count")
    except ValueError as e:
        raise ModeError("bad mode %r: %s" % (text.strip(), e)) from None
    return (kind, arg, count)


class State:
    """Mode file tracking and the request log, shared by all handler threads."""

    def __init__(self, mode_file, log_path):
        self.mode_file = mode_file
        self.lock = threading.Lock()
        self.key = None
        self.remaining = None
        self.log_file = open(log_path, "a", buffering=1) if log_path else sys.stderr
        self.seq = 0
        self.stopping = threading.Event()

    def next_fault(self):
        """Returns (seq, (kind, arg), note) for the next request."""
        with self.lock:
            self.seq += 1
            seq = self.seq
            try:
                st = os.stat(self.mode_file)
                with open(self.mode_file) as f:
                    text = f.read()
            except OSError:
                text, st = "ok", None
            key = (st.st_mtime_ns, st.st_ino, text) if st else None
            try:
                kind, arg, count = parse_mode(text)
            except ModeError as e:
                return seq, ("ok", None), "BAD-MODE(%s)" % e
            if key != self.key:
                self.key = key
                self.remaining = count
            if kind == "ok":
                return seq, ("ok", None), ""
            if self.remaining is None:
                return seq, (kind, arg), ""
            if self.remaining > 0:
                self.remaining -= 1
                return seq, (kind, arg), " (%d left)" % self.remaining
            return seq, ("ok", None), ""

    def log(self, line):
        with self.lock:
            stamp = time.strftime("%H:%M:%S", time.gmtime()) + ".%03d" % (time.time() % 1 * 1000)
            self.log_file.write("%s %s\n" % (stamp, line))
            self.log_file.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultproxy"

    # quiet: we log ourselves
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout, BrokenPipeError):
            self.close_connection = True

    def do_any(self):
        st = self.server.state
        seq, (kind, arg), note = st.next_fault()
        what = kind if kind in ("ok", "reset", "truncate", "hang") else "%s %s" % (kind, arg)
        prefix = "#%d %s %s fault=%s%s" % (seq, self.command, self.path, what, note)
        if kind == "reset":
            st.log(prefix + " -> reset")
            self.reset()
            return
        if kind == "hang":
            st.log(prefix + " -> hanging")
            self.hang()
            st.log("#%d client gave up" % seq)
            return
        if kind == "status":
            self.discard_body()
            code = 503 if arg == "slowdown" else arg
            self.send_error_xml(code, "SlowDown" if arg == "slowdown" else None)
            st.log(prefix + " -> %d injected" % code)
            return
        if kind == "delay":
            time.sleep(arg / 1000.0)
        self.forward(prefix, truncate=(kind == "truncate"))

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_any
    do_OPTIONS = do_PATCH = do_any

    # --- faults --------------------------------------------------------------------------
    def reset(self):
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    def hang(self):
        """Reads and drops whatever the client sends until it closes or we stop."""
        self.close_connection = True
        sock = self.connection
        while not self.server.state.stopping.is_set():
            r, _, _ = select.select([sock], [], [], 0.5)
            if r:
                try:
                    if not sock.recv(CHUNK):
                        return
                except OSError:
                    return

    def discard_body(self):
        for _ in self.body_chunks():
            pass

    def send_error_xml(self, code, s3code=None):
        s3code = s3code or S3_CODES.get(code, "InjectedFault")
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
            "<Message>fault injected by faultproxy</Message><Resource>%s</Resource>"
            "<RequestId>faultproxy</RequestId></Error>" % (s3code, xml_escape(self.path))
        ).encode()
        self.send_response_only(code)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", "faultproxy")
        if code == 503 or code == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # --- forwarding ----------------------------------------------------------------------
    def body_chunks(self):
        """Yields the raw request body bytes as received (chunked encoding kept as is)."""
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("client closed in chunked body")
                yield line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers up to the empty line
                        t = self.rfile.readline(65537)
                        if not t:
                            raise ConnectionError("client closed in trailers")
                        yield t
                        if t in (b"\r\n", b"\n"):
                            return
                left = size + 2  # data and its CRLF
                while left > 0:
                    data = self.rfile.read(min(CHUNK, left))
                    if not data:
                        raise ConnectionError("client closed in chunk")
                    left -= len(data)
                    yield data
        else:
            left = int(self.headers.get("Content-Length", "0") or 0)
            while left > 0:
                data = self.rfile.read(min(CHUNK, left))
                if not data:
                    raise ConnectionError("client closed in body")
                left -= len(data)
                yield data

    def forward(self, prefix, truncate=False):
        st = self.server.state
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=600)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            early = None
            for data in self.body_chunks():
                if early is None:
                    try:
                        conn.send(data)
                    except OSError as e:
                        # the upstream may have answered early (e.g. 4xx) and closed: drain
                        # the client's body and relay that answer if there is one
                        early = e
                        self.close_connection = True
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            st.log(prefix + " -> upstream error %s: %s; resetting client" % (type(e).__name__, e))
            conn.close()
            self.reset()
            return
        try:
            self.relay(resp, prefix, truncate)
        finally:
            conn.close()

    def relay(self, resp, prefix, truncate):
        st = self.server.state
        headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
        has_len = resp.getheader("Content-Length") is not None
        if resp.getheader("Connection", "").lower() == "close":
            self.close_connection = True
        if truncate:
            body = resp.read() if self.command != "HEAD" else b""
            if not has_len:
                headers.append(("Content-Length", str(len(body))))
            head = self.head_bytes(resp, headers)
            self.close_connection = True
            if body:
                self.wfile.write(head + body[: len(body) // 2])
                st.log(prefix + " -> %d truncated body %d of %d bytes"
                       % (resp.status, len(body) // 2, len(body)))
            else:
                # nothing to cut in an empty body: cut the status line (cut headers alone
                # are accepted by some clients as a complete response)
                self.wfile.write(head[: head.index(b"\r\n") // 2])
                st.log(prefix + " -> %d truncated headers (empty body)" % resp.status)
            return  # close_connection: the server closes with a FIN after this request
        chunked = not has_len and self.command != "HEAD" and resp.status not in (204, 304)
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        self.wfile.write(self.head_bytes(resp, headers))
        sent = 0
        while True:
            data = resp.read1(CHUNK) if self.command != "HEAD" else b""
            if not data:
                break
            sent += len(data)
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        st.log(prefix + " -> %d (%d bytes)" % (resp.status, sent))

    def head_bytes(self, resp, headers):
        lines = ["HTTP/1.1 %d %s" % (resp.status, resp.reason)]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of the S3 server")
    ap.add_argument("--mode-file", required=True)
    ap.add_argument("--log", help="request log (default stderr)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="written with the port once listening")
    args = ap.parse_args()

    up = urllib.parse.urlsplit(args.upstream)
    if up.scheme != "http" or up.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("faultproxy: upstream must be http on loopback, got %s" % args.upstream)
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.upstream = up
    srv.state = State(args.mode_file, args.log)
    port = srv.server_address[1]

    def stop(_sig, _frame):
        srv.state.stopping.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    srv.state.log("listening on 127.0.0.1:%d -> %s" % (port, args.upstream))
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()
    srv.state.log("stopped")


if __name__ == "__main__":
    main()
