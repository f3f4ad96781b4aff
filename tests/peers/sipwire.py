"""A little SIP over TLS for the peer scripts of this folder: framing by Content-Length,
requests with MD5 digest (RFC 2617/7616, qop=auth) when challenged, and answers. Standard
library only; the scripts run with python3 from tests/tls_peers.rs."""

import hashlib
import re
import secrets
import socket
import ssl
import time

__all__ = ["Message", "Conn", "tls_client", "answer"]


class Message:
    """One SIP message: its first line, headers (names lower-cased, in order) and body."""

    def __init__(self, raw):
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        self.first = lines[0]
        self.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name.strip().lower(), value.strip()))
        parts = self.first.split(" ", 2)
        self.is_request = not self.first.startswith("SIP/2.0")
        self.method = parts[0] if self.is_request else None
        self.status = None if self.is_request else int(parts[1])

    def all(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def get(self, name, default=None):
        found = self.all(name)
        return found[0] if found else default

    def __repr__(self):
        return self.first


class Conn:
    """A SIP connection over a connected (TLS) socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def local(self):
        host, port = self.sock.getsockname()[:2]
        return f"{host}:{port}"

    def send(self, text):
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def read(self, timeout=5.0):
        """The next whole message; raises TimeoutError, or EOFError when the peer closed."""
        deadline = time.monotonic() + timeout
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buf[:end].decode("utf-8", "replace").lower()
                m = re.search(r"^(?:content-length|l)\s*:\s*(\d+)", head, re.M)
                length = int(m.group(1)) if m else 0
                if len(self.buf) >= end + 4 + length:
                    raw, self.buf = self.buf[: end + 4 + length], self.buf[end + 4 + length :]
                    return Message(raw)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no whole SIP message in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the peer closed the connection")
            self.buf += chunk

    def request(self, method, uri, sender, to, extra="", body="", call_id=None, cseq=1,
                auth=None):
        call_id = call_id or secrets.token_hex(8)
        text = (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS {self.local()};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{sender}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <{to}>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"{extra}"
            + (f"{auth}\r\n" if auth else "")
            + f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
        )
        self.send(text)
        return call_id

    def final(self, call_id, timeout=5.0):
        """The final answer to `call_id`; requests meanwhile are answered 200."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.read(max(0.01, deadline - time.monotonic()))
            if m.is_request:
                answer(self, m, 200)
            elif m.get("call-id") == call_id and m.status >= 200:
                return m

    def transact(self, method, uri, sender, to, user, password, extra="", body=""):
        """A request, and again with digest credentials if challenged: the final answer."""
        call_id = self.request(method, uri, sender, to, extra, body)
        got = self.final(call_id)
        if got.status in (401, 407):
            # 401 from a registrar, 407 from a proxy (a request imppd relays to another
            # domain): the challenge and the credentials travel in headers named to match.
            asks, answers = (
                ("www-authenticate", "Authorization")
                if got.status == 401
                else ("proxy-authenticate", "Proxy-Authorization")
            )
            challenge = next(
                (c for c in got.all(asks) if "md5" in c.lower()),
                got.get(asks),
            )
            auth = f"{answers}: " + digest(challenge, method, uri, user, password)
            call_id = self.request(method, uri, sender, to, extra, body, call_id, 2, auth)
            got = self.final(call_id)
        return got


def digest(challenge, method, uri, user, password):
    params = dict(re.findall(r'(\w+)\s*=\s*"?([^",]*)"?', challenge.split(" ", 1)[1]))
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    ha1 = md5(f"{user}:{params['realm']}:{password}")
    ha2 = md5(f"{method}:{uri}")
    out = (
        f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{uri}", algorithm=MD5'
    )
    if "qop" in params:
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        out += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response = md5(f"{ha1}:{params['nonce']}:{ha2}")
    out += f', response="{response}"'
    if "opaque" in params:
        out += f', opaque="{params["opaque"]}"'
    return out


def tls_client(port, ca, name, cert=None, timeout=5.0):
    """A TLS connection to 127.0.0.1:`port` that accepts only a certificate chaining to `ca`
    and naming `name` (checked by OpenSSL during the handshake)."""
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(*cert)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=name)
    except BaseException:
        raw.close()
        raise


def answer(conn, request, status, reason="OK"):
    text = f"SIP/2.0 {status} {reason}\r\n"
    for name in ("via", "from", "to", "call-id", "cseq"):
        for value in request.all(name):
            if name == "to" and "tag=" not in value:
                value += ";tag=" + secrets.token_hex(4)
            text += f"{name}: {value}\r\n"
    conn.send(text + "Content-Length: 0\r\n\r\n")
