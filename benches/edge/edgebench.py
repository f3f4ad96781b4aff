#!/usr/bin/env python3
"""Driver of benches/edge/run.sh (standard library only): presence at the edge under load.

  edgebench.py setup SOCKET N                 on the server's control socket: every
                                              presentity sip:p<K>@example.test a user (its
                                              devices read their rules over XCAP with its
                                              password) and a rule allowing example.test
  edgebench.py accounts N DEVICES D SPORT HPORT   the `account = ...` lines of device D
  edgebench.py drive KEY=VALUE...             the watchers and the presence changes of one
                                              mode (below); prints one `result ...` line
  edgebench.py report RESULTS                 the tables of all modes (medians of the reps)

Presentity K (0..N-1) is online when K is even: its presence changes on device (K/2) %
DEVICES, through that device's control socket (`{"cmd":"publish",...}`, what `imppd ctl
publish` sends, one connection per change and no process); an odd K is offline and changes
by a SIP PUBLISH to the server. Every state carries its sequence number in the PIDF note
(`eb-seq:N`), so a watcher knows which changes it saw.

`drive` is the watchers: W dialogs per presentity (watcher sip:w<K>x<J>@example.test), over a
few UDP sockets (and TCP connections to the devices after a `302`), in one selectors loop.
Each dialog subscribes to sip:p<K>@example.test at the server, answers every NOTIFY `200`,
keeps the route set of its `2xx` (Record-Route) for its refreshes, follows a `302` to the
Contact it names (TCP when it says transport=tcp), and subscribes again at once, in a new
dialog at the server, after `terminated;reason=deactivated` or when its TCP connection to a
device closes (a flow-aware watcher: RFC 5626 §4.4). A NOTIFY's Contact says who serves the
dialog: the server's port, or a device's.

Phases of `drive`: initial states (seq 0) for every presentity; the subscriptions (SUB_RATE
a second) until every dialog has a state; SETTLE seconds; the storm (RATE changes a second
for STORM_S seconds, presentities in a shuffled order, each change the next sequence number
of its presentity) and the drain (no NOTIFY for QUIET seconds); counts over that window: the
server's NOTIFY requests sent (`imppd_sip_requests_sent_total{method="NOTIFY"}` at /metrics),
of which relayed (NOTIFY answers it passed on as a proxy: `imppd_sip_answers_total
{method="NOTIFY"}`), its CPU and the devices' (utime+stime, /proc/PID/stat); then whether
every dialog ended on its presentity's last state. Then, with KILL=1, device 0 is killed
(SIGKILL) and every watcher it served is timed until a NOTIFY from the server reaches it in
a new dialog.
"""
import heapq
import json
import os
import random
import re
import selectors
import signal
import socket
import statistics
import sys
import time
import urllib.request

DOMAIN = "example.test"
PASSWORD = "edge-pw"
COMPACT = {b"i": b"call-id", b"v": b"via", b"f": b"from", b"t": b"to", b"m": b"contact",
           b"l": b"content-length", b"o": b"event", b"c": b"content-type"}
RETRY_S = 0.5   # a watcher's pause before it subscribes again after a failure
SEQ = re.compile(rb"eb-seq:(\d+)")
HOSTPORT = re.compile(rb"(?:@|sip:)([0-9.]+):(\d+)")


def presentity(k):
    return f"sip:p{k}@{DOMAIN}"


def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, IndexError, ValueError):
        return 0


def ctl_request(path, cmd, args):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data)


def ctl_batch(path, requests, width=64):
    """many control requests, `width` connections at a time (the control thread serves them
    one after another; it polls for new ones only when none waits)"""
    failed = []
    for i in range(0, len(requests), width):
        socks = []
        for cmd, args in requests[i:i + width]:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(path)
            s.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
            socks.append((s, cmd, args))
        for s, cmd, args in socks:
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            answer = json.loads(data or b"{}")
            if not answer.get("ok"):
                failed.append((cmd, args, answer.get("error")))
    return failed


def setup(path, n):
    reqs = []
    for k in range(n):
        reqs.append(("users", ["add", presentity(k), PASSWORD]))
        reqs.append(("rules", ["add", presentity(k), DOMAIN, "allow"]))
    failed = ctl_batch(path, reqs)
    for f in failed[:5]:
        print("setup failed:", f, file=sys.stderr)
    if failed:
        raise SystemExit(f"{len(failed)} setup requests failed")


def accounts(n, devices, d, sport, hport):
    for k in range(0, n, 2):
        if (k // 2) % devices == d:
            print(f"account = {presentity(k)},password={PASSWORD},registrar=tcp:127.0.0.1:{sport},"
                  f"serve=yes,keepalive=2,xcap=http://127.0.0.1:{hport}/xcap-root")


def metrics(url):
    """(NOTIFY requests sent, NOTIFY answers passed on, PUBLISH answers) from /metrics"""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    sent = relayed = publish = 0
    for line in text.splitlines():
        if line.startswith('imppd_sip_requests_sent_total{method="NOTIFY"}'):
            sent = int(float(line.split()[-1]))
        elif line.startswith('imppd_sip_answers_total{method="NOTIFY"'):
            relayed += int(float(line.split()[-1]))
        elif line.startswith('imppd_sip_answers_total{method="PUBLISH"'):
            publish += int(float(line.split()[-1]))
    return sent, relayed, publish


def parse(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    h = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        k = COMPACT.get(k, k)
        h.setdefault(k, []).append(v.strip())
    return lines[0], h, body


def one(h, name):
    v = h.get(name)
    return v[0] if v else b""


def pidf(k, seq):
    uri = presentity(k)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" '
            f'entity="{uri}"><tuple id="eb"><status><basic>open</basic></status></tuple>'
            f'<note>eb-seq:{seq}</note></presence>').encode()


class Driver:
    def __init__(self, o):
        self.o = o
        self.n, self.w = int(o["N"]), int(o["W"])
        self.devices = int(o["DEVICES"])
        host, port = o["SERVER"].rsplit(":", 1)
        self.server = (host, int(port))
        self.server_port = int(port)
        self.dev_socks = o["DEV_SOCKS"].split(",")
        self.dev_pids = [int(p) for p in o["DEV_PIDS"].split(",")]
        self.dev_ports = [int(p) for p in o["DEV_PORTS"].split(",")]
        self.sel = selectors.DefaultSelector()
        self.udp = []
        for _ in range(int(o.get("SOCKETS", 4))):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, ("udp", s))
            self.udp.append(s)
        self.tcp = {}  # (host, port) -> [sock, inbuf, dialogs on it]
        slots = self.n * self.w
        # per slot (presentity k = slot // w, watcher j = slot % w)
        self.call = [None] * slots       # current Call-ID
        self.last = [-1] * slots         # last sequence number seen
        self.covered = [0] * slots       # changes covered (sum of increments)
        self.served = [0] * slots        # port of the Contact of the last NOTIFY
        self.back_at = [0.0] * slots     # take-back: when the server served it again
        self.dialogs = {}                # Call-ID -> dialog dict
        self.seq = [0] * self.n          # last sequence number published (answered)
        self.sent_seq = [0] * self.n
        self.etag = [None] * self.n
        self.pending = {}                # (Call-ID, CSeq) -> transaction
        self.timers = []                 # heap of (when, key)
        self.later = []                  # heap of (when, slot): subscriptions to make again
        self.ctl_inflight = {}
        self.notifies = 0
        self.from_server = 0   # NOTIFYs of dialogs the server serves (its Contact)
        self.from_device = 0   # NOTIFYs of dialogs a device serves (relayed, or direct)
        self.states = 0
        self.last_notify = time.time()
        self.killed_port = None
        self.kill_time = 0.0
        self.counter = 0
        self.errors = {}
        self.rng = random.Random(int(o.get("SEED", 1)))
        self.pub_sock = self.udp[0]

    # --- sending -------------------------------------------------------------------------
    def token(self):
        self.counter += 1
        return f"{self.counter:x}{self.rng.getrandbits(32):08x}"

    def err(self, what):
        self.errors[what] = self.errors.get(what, 0) + 1

    def send_udp(self, sock, data, addr):
        try:
            sock.sendto(data, addr)
        except (BlockingIOError, OSError):
            self.err("udp send failed")

    def tcp_conn(self, addr):
        c = self.tcp.get(addr)
        if c:
            return c
        s = socket.create_connection(addr, timeout=5)
        s.setblocking(False)
        c = [s, b"", set(), b""]  # socket, input buffer, Call-IDs, output buffer
        self.tcp[addr] = c
        self.sel.register(s, selectors.EVENT_READ, ("tcp", addr))
        return c

    def send_tcp(self, addr, data):
        c = self.tcp_conn(addr)
        c[3] += data
        self.flush(addr)

    def flush(self, addr):
        c = self.tcp.get(addr)
        if not c or not c[3]:
            return
        try:
            n = c[0].send(c[3])
            c[3] = c[3][n:]
        except BlockingIOError:
            pass
        except OSError:
            self.tcp_closed(addr)
            return
        self.sel.modify(c[0], selectors.EVENT_READ | (selectors.EVENT_WRITE if c[3] else 0),
                        ("tcp", addr))

    def request(self, d, method, extra=b"", body=b""):
        """a request of dialog d (initial when it has no To tag)"""
        d["cseq"] += 1
        branch = "z9hG4bK" + self.token()
        if d["tcp"]:
            s = self.tcp_conn(d["dest"])[0]
            lh, lp = s.getsockname()
            via = f"SIP/2.0/TCP {lh}:{lp};branch={branch}"
            contact = f"<sip:{d['user']}@{lh}:{lp};transport=tcp>"
        else:
            lh, lp = d["sock"].getsockname()
            via = f"SIP/2.0/UDP {lh}:{lp};branch={branch};rport"
            contact = f"<sip:{d['user']}@{lh}:{lp}>"
        to = d["to"] + (f";tag={d['remote_tag']}" if d["remote_tag"] else "")
        route = "".join(f"Route: {r}\r\n" for r in d["route"])
        head = (f"{method} {d['ruri']} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
                f"From: <sip:{d['user']}@{DOMAIN}>;tag={d['tag']}\r\nTo: {to}\r\n"
                f"Call-ID: {d['call']}\r\nCSeq: {d['cseq']} {method}\r\n{route}"
                f"Contact: {contact}\r\n").encode()
        data = head + extra + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        key = (d["call"], d["cseq"])
        self.transmit(key, data, d)

    def transmit(self, key, data, d):
        now = time.time()
        if d["tcp"]:
            self.send_tcp(d["dest"], data)
            self.pending[key] = [data, d, 0.5, now + 32, True]
        else:
            self.send_udp(d["sock"], data, d["dest"])
            self.pending[key] = [data, d, 0.5, now + 32, False]
        heapq.heappush(self.timers, (now + 0.5, key))

    def subscribe(self, slot):
        k, j = divmod(slot, self.w)
        call = "eb" + self.token()
        d = {"slot": slot, "k": k, "call": call, "tag": self.token(), "user": f"w{k}x{j}",
             "to": f"<{presentity(k)}>", "ruri": presentity(k), "remote_tag": None,
             "route": [], "cseq": 0, "tcp": False, "dest": self.server,
             "sock": self.udp[slot % len(self.udp)], "redirects": 0}
        self.call[slot] = call
        self.dialogs[call] = d
        self.request(d, "SUBSCRIBE", b"Event: presence\r\nAccept: application/pidf+xml\r\n"
                     b"Expires: 3600\r\n")

    def publish(self, k, seq):
        """PUBLISH of offline presentity k to the server (modifying its publication)"""
        d = self.dialogs.get(("pub", k))
        if d is None:
            d = {"slot": None, "k": k, "call": "ebpub" + self.token(), "tag": self.token(),
                 "user": f"p{k}", "to": f"<{presentity(k)}>", "ruri": presentity(k),
                 "remote_tag": None, "route": [], "cseq": 0, "tcp": False,
                 "dest": self.server, "sock": self.pub_sock, "pub": True}
            self.dialogs[("pub", k)] = d
            self.dialogs[d["call"]] = d
        self.sent_seq[k] = seq
        extra = b"Event: presence\r\nExpires: 3600\r\nContent-Type: application/pidf+xml\r\n"
        if self.etag[k]:
            extra += b"SIP-If-Match: " + self.etag[k] + b"\r\n"
        d["seq_of"] = d.get("seq_of", {})
        d["seq_of"][d["cseq"] + 1] = seq
        self.request(d, "PUBLISH", extra, pidf(k, seq))

    def change_on_device(self, k, seq):
        dev = (k // 2) % self.devices
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.dev_socks[dev])
            s.sendall(json.dumps({"cmd": "publish",
                                  "args": [presentity(k), "open", f"eb-seq:{seq}"]}).encode() + b"\n")
        except OSError:
            self.err("device control refused")
            s.close()
            return
        s.setblocking(False)
        self.sent_seq[k] = seq
        self.ctl_inflight[s] = (k, seq, b"")
        self.sel.register(s, selectors.EVENT_READ, ("ctl", s))

    def change(self, k, seq):
        if k % 2 == 0:
            self.change_on_device(k, seq)
        else:
            self.publish(k, seq)

    # --- receiving -----------------------------------------------------------------------
    def on_udp(self, sock):
        for _ in range(256):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            self.on_message(data, lambda out, s=sock, a=addr: self.send_udp(s, out, a))

    def on_tcp(self, addr):
        c = self.tcp.get(addr)
        if not c:
            return
        try:
            chunk = c[0].recv(262144)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.tcp_closed(addr)
            return
        buf = c[1] + chunk
        while True:
            buf = buf.lstrip(b"\r\n")
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            m = re.search(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*(\d+)", buf[:end + 2], re.I)
            length = int(m.group(1)) if m else 0
            if len(buf) < end + 4 + length:
                break
            self.on_message(buf[:end + 4 + length], lambda out, a=addr: self.send_tcp(a, out))
            buf = buf[end + 4 + length:]
        c[1] = buf

    def tcp_closed(self, addr):
        c = self.tcp.pop(addr, None)
        if not c:
            return
        try:
            self.sel.unregister(c[0])
        except (KeyError, ValueError):
            pass
        c[0].close()
        # the dialogs on it: subscribe again at the server, in new dialogs
        now = time.time()
        for call in c[2]:
            d = self.dialogs.pop(call, None)
            if d and d["slot"] is not None and self.call[d["slot"]] == call:
                self.err("dialog lost with its TCP connection: subscribed again at the server")
                self.resubscribe(d["slot"], now)

    def resubscribe(self, slot, now):
        self.subscribe(slot)
        if self.killed_port:
            self.dialogs[self.call[slot]]["after_kill"] = True

    def on_ctl(self, s):
        k, seq, buf = self.ctl_inflight[s]
        try:
            chunk = s.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        buf += chunk
        if chunk and not buf.endswith(b"\n"):
            self.ctl_inflight[s] = (k, seq, buf)
            return
        self.sel.unregister(s)
        s.close()
        del self.ctl_inflight[s]
        try:
            ok = json.loads(buf).get("ok")
        except ValueError:
            ok = False
        if ok:
            self.seq[k] = max(self.seq[k], seq)
        else:
            self.err("device publish failed")

    def on_message(self, data, reply):
        start, h, body = parse(data)
        if start.startswith(b"SIP/2.0 "):
            self.on_response(int(start[8:11]), h, body)
            return
        method = start.split(b" ", 1)[0]
        ok = (b"SIP/2.0 200 OK\r\n" + b"".join(b"Via: " + v + b"\r\n" for v in h.get(b"via", []))
              + b"From: " + one(h, b"from") + b"\r\nTo: " + one(h, b"to") + b"\r\nCall-ID: "
              + one(h, b"call-id") + b"\r\nCSeq: " + one(h, b"cseq") + b"\r\nContent-Length: 0\r\n\r\n")
        if method != b"NOTIFY":
            reply(ok.replace(b"200 OK", b"405 Method Not Allowed", 1))
            return
        reply(ok)
        call = one(h, b"call-id").decode()
        d = self.dialogs.get(call)
        now = time.time()
        self.last_notify = now
        if d is None or d["slot"] is None:
            self.err("NOTIFY of no dialog")
            return
        cseq = int(one(h, b"cseq").split()[0])
        if cseq <= d.get("notify_cseq", 0):
            return  # a retransmission
        d["notify_cseq"] = cseq
        self.notifies += 1
        slot = d["slot"]
        if self.call[slot] != call:
            return  # an old dialog of this slot
        contact = HOSTPORT.search(one(h, b"contact"))
        port = int(contact.group(2)) if contact else 0
        if port:
            self.served[slot] = port
            if port == self.server_port:
                self.from_server += 1
            else:
                self.from_device += 1
            if self.killed_port and port == self.server_port and not self.back_at[slot] \
                    and d.get("after_kill"):
                self.back_at[slot] = now
        m = SEQ.search(body)
        if m:
            seq = int(m.group(1))
            if seq > self.last[slot]:
                self.states += 1
                if self.last[slot] >= 0:
                    self.covered[slot] += seq - self.last[slot]
                self.last[slot] = seq
        state = one(h, b"subscription-state")
        if state.startswith(b"terminated"):
            self.dialogs.pop(call, None)
            reason = state.partition(b"reason=")[2].split(b";")[0].decode() or "none"
            self.err(f"terminated;reason={reason}")
            if reason == "deactivated" or reason in ("timeout", "probation", "giveup"):
                self.resubscribe(slot, now)

    def on_response(self, status, h, body):
        if status < 200:
            return
        call = one(h, b"call-id").decode()
        cseq, _, method = one(h, b"cseq").decode().partition(" ")
        key = (call, int(cseq))
        t = self.pending.pop(key, None)
        if t is None:
            return
        d = t[1]
        if method == "PUBLISH":
            k = d["k"]
            seq = d["seq_of"].pop(int(cseq), None)
            if 200 <= status < 300:
                self.etag[k] = one(h, b"sip-etag") or self.etag[k]
                if seq is not None:
                    self.seq[k] = max(self.seq[k], seq)
            else:
                self.err(f"PUBLISH {status}")
                if status == 412:
                    self.etag[k] = None
            return
        if d["slot"] is None or self.call[d["slot"]] != call:
            return
        if 200 <= status < 300:
            to = one(h, b"to").decode()
            tag = re.search(r";tag=([^;>\s]+)", to)
            if tag and not d["remote_tag"]:
                d["remote_tag"] = tag.group(1)
                d["route"] = [r.decode() for r in reversed(h.get(b"record-route", []))]
                # the remote target; requests go to the first hop of the route set
                # (the server, which record-routed), or to the device itself
                contact = re.search(r"<([^>]+)>", one(h, b"contact").decode())
                if contact:
                    d["ruri"] = contact.group(1)
        elif status in (301, 302) and d["redirects"] < 3:
            contact = re.search(r"<([^>]+)>", one(h, b"contact").decode())
            if not contact:
                self.err("302 without Contact")
                return
            target = contact.group(1)
            hp = HOSTPORT.search(target.encode())
            d["redirects"] += 1
            d["ruri"] = target
            d["dest"] = (hp.group(1).decode(), int(hp.group(2)))
            d["tcp"] = "transport=tcp" in target.lower()
            if d["tcp"]:
                try:
                    self.tcp_conn(d["dest"])[2].add(call)
                except OSError:
                    # a device that died before the server saw its flow close: subscribe
                    # at the server again a little later, as a watcher retries
                    self.err("302 to an unreachable device: retried at the server")
                    self.dialogs.pop(call, None)
                    heapq.heappush(self.later, (time.time() + RETRY_S, d["slot"]))
                    return
            self.err("302 followed")
            self.request(d, "SUBSCRIBE", b"Event: presence\r\nAccept: application/pidf+xml\r\n"
                         b"Expires: 3600\r\n")
        else:
            self.err(f"SUBSCRIBE {status}")

    # --- the loop ------------------------------------------------------------------------
    def timer_turn(self, now):
        while self.later and self.later[0][0] <= now:
            _, slot = heapq.heappop(self.later)
            self.resubscribe(slot, now)
        while self.timers and self.timers[0][0] <= now:
            _, key = heapq.heappop(self.timers)
            t = self.pending.get(key)
            if t is None:
                continue
            data, d, interval, deadline, tcp = t
            if now >= deadline:
                del self.pending[key]
                self.err("request timed out")
                continue
            if not tcp:
                self.send_udp(d["sock"], data, d["dest"])
            t[2] = min(interval * 2, 4.0)
            heapq.heappush(self.timers, (now + t[2], key))

    def turn(self, timeout):
        for key, _ in self.sel.select(timeout):
            kind, what = key.data
            if kind == "udp":
                self.on_udp(what)
            elif kind == "tcp":
                if _ & selectors.EVENT_WRITE:
                    self.flush(what)
                if _ & selectors.EVENT_READ:
                    self.on_tcp(what)
            else:
                self.on_ctl(what)
        self.timer_turn(time.time())

    def run_until(self, done, limit, step=0.01):
        end = time.time() + limit
        while not done() and time.time() < end:
            self.turn(step)
        return done()

    def run_for(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            self.turn(0.01)

    def paced(self, items, rate, action):
        """action(item) for each item, `rate` a second, while serving the sockets"""
        t0 = time.time()
        for i, item in enumerate(items):
            due = t0 + i / rate
            while True:
                now = time.time()
                if now >= due:
                    break
                self.turn(min(due - now, 0.01))
            action(item)
            if i % 64 == 0:
                self.turn(0)
        return time.time() - t0


def median(xs):
    return statistics.median(xs) if xs else 0.0


def drive(o):
    d = Driver(o)
    n, w = d.n, d.w
    mode = o["MODE"]
    rate, storm_s = float(o["RATE"]), float(o["STORM_S"])
    server_pid = int(o["SERVER_PID"])
    out = {"mode": mode, "rep": o.get("REP", "1"), "n": n, "w": w}
    log = lambda msg: print(f"[{time.strftime('%T')}] {mode}: {msg}", file=sys.stderr, flush=True)
    # initial states
    for k in range(n):
        d.change(k, 0)
        if k % 32 == 0:
            d.turn(0)
    d.run_until(lambda: not d.pending and not d.ctl_inflight, 60)
    d.run_for(1.0)
    # subscriptions
    t = time.time()
    slots = list(range(n * w))
    d.rng.shuffle(slots)
    d.paced(slots, float(o.get("SUB_RATE", 2000)), d.subscribe)
    ok = d.run_until(lambda: min(d.last) >= 0, 300, 0.05)
    out["subscribe_s"] = round(time.time() - t, 1)
    if not ok:
        out["unsubscribed"] = sum(1 for x in d.last if x < 0)
    log(f"{n * w} dialogs with a state in {out['subscribe_s']} s")
    d.run_for(float(o.get("SETTLE", 3)))
    on_devices = sum(1 for p in d.served if p != d.server_port)
    online_slots = sum(1 for s in range(n * w) if (s // w) % 2 == 0)
    out["dialogs_on_devices"] = on_devices
    out["online_dialogs"] = online_slots
    # the storm
    order = list(range(n))
    d.rng.shuffle(order)
    changes = int(rate * storm_s)
    m0 = metrics(o["METRICS"])
    c0 = ticks(server_pid)
    dc0 = sum(ticks(p) for p in d.dev_pids)
    me0 = ticks(os.getpid())
    n0, s0, fs0, fd0 = d.notifies, d.states, d.from_server, d.from_device
    perf = None
    if o.get("PERF"):
        # perf record of the server over the storm and its drain (PERF=FILE)
        import subprocess
        perf = subprocess.Popen(["perf", "record", "-q", "-F", "499", "-g", "-p", str(server_pid),
                                 "-o", o["PERF"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    t0 = time.time()
    def one_change(i):
        k = order[i % n]
        d.change(k, d.sent_seq[k] + 1)
    storm_took = d.paced(range(changes), rate, one_change)
    d.last_notify = time.time()
    quiet = float(o.get("QUIET", 2))
    d.run_until(lambda: time.time() - d.last_notify > quiet and not d.ctl_inflight, 120, 0.05)
    t1 = time.time()
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    m1 = metrics(o["METRICS"])
    clk = os.sysconf("SC_CLK_TCK")
    out["storm_s"] = round(storm_took, 2)
    out["window_s"] = round(t1 - t0, 2)
    out["changes"] = changes
    out["server_notify"] = m1[0] - m0[0]
    out["server_relayed_answers"] = m1[1] - m0[1]
    out["watchers_from_server"] = d.from_server - fs0
    out["watchers_from_devices"] = d.from_device - fd0
    out["server_publish"] = m1[2] - m0[2]
    out["server_cpu_s"] = round((ticks(server_pid) - c0) / clk, 3)
    out["devices_cpu_s"] = round((sum(ticks(p) for p in d.dev_pids) - dc0) / clk, 3)
    out["driver_cpu_s"] = round((ticks(os.getpid()) - me0) / clk, 3)
    out["notifies"] = d.notifies - n0
    out["states"] = d.states - s0
    expected = sum(d.seq[s // w] for s in range(n * w))
    out["covered_pct"] = round(100.0 * sum(d.covered) / expected, 2) if expected else 0
    out["final_ok"] = sum(1 for s in range(n * w) if d.last[s] == d.seq[s // w])
    out["final_missed"] = n * w - out["final_ok"]
    out["errors_to_storm_end"] = ";".join(f"{k}={v}" for k, v in sorted(d.errors.items())).replace(" ", "_")
    log(f"storm: {out}")
    # take-back
    if o.get("KILL", "0") == "1" and mode != "off":
        port = d.dev_ports[0]
        victims = [s for s in range(n * w) if d.served[s] == port]
        out["kill_watchers"] = len(victims)
        d.killed_port = port
        d.kill_time = time.time()
        os.kill(d.dev_pids[0], signal.SIGKILL)
        if mode == "redirect":
            pass  # the watchers' connections to it close: they subscribe at the server again
        d.run_until(lambda: all(d.back_at[s] for s in victims), float(o.get("KILL_WAIT", 60)), 0.002)
        backs = [d.back_at[s] - d.kill_time for s in victims if d.back_at[s]]
        out["back_n"] = len(backs)
        out["back_median_ms"] = round(1000 * median(backs), 1)
        out["back_max_ms"] = round(1000 * max(backs), 1) if backs else 0
        log(f"take-back: {len(backs)} of {len(victims)} watchers back at the server, "
            f"median {out['back_median_ms']} ms, max {out['back_max_ms']} ms")
    out["errors"] = ";".join(f"{k}={v}" for k, v in sorted(d.errors.items())).replace(" ", "_")
    print("result " + " ".join(f"{k}={v}" for k, v in out.items()), flush=True)


def report(path):
    runs = []
    with open(path) as f:
        for line in f:
            if line.startswith("result "):
                runs.append(dict(kv.split("=", 1) for kv in line.split()[1:]))
    if not runs:
        raise SystemExit("no results")
    modes = []
    for r in runs:
        if r["mode"] not in modes:
            modes.append(r["mode"])

    def med(mode, f):
        xs = [f(r) for r in runs if r["mode"] == mode]
        xs = [x for x in xs if x is not None]
        return median(xs) if xs else None

    def num(r, k):
        return float(r[k]) if k in r else None

    r0 = runs[0]
    print(f"\n{r0['n']} presentities x {r0['w']} watchers, half online on devices; "
          f"medians of {max(sum(1 for r in runs if r['mode'] == m) for m in modes)} repetitions\n")
    print("| migration | dialogs on devices | server NOTIFY/s sent | of which its own | relayed for devices | "
          "devices' NOTIFY/s | server CPU (cores) | server CPU per change | devices CPU (cores) | "
          "states/s at watchers | covered | last state missed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for m in modes:
        per = lambda k: med(m, lambda r: num(r, k) / num(r, "storm_s"))
        per_change = med(m, lambda r: 1e6 * num(r, "server_cpu_s") / num(r, "changes"))
        on = med(m, lambda r: num(r, "dialogs_on_devices"))
        online = med(m, lambda r: num(r, "online_dialogs"))
        relayed = med(m, lambda r: (num(r, "server_notify") - num(r, "watchers_from_server"))
                      / num(r, "storm_s"))
        print(f"| {m} | {on:,.0f} of {online:,.0f} | {per('server_notify'):,.0f} | "
              f"{per('watchers_from_server'):,.0f} | {max(relayed, 0):,.0f} | "
              f"{per('watchers_from_devices'):,.0f} | {per('server_cpu_s'):.3f} | "
              f"{per_change:,.0f} us | {per('devices_cpu_s'):.3f} | {per('states'):,.0f} | "
              f"{med(m, lambda r: num(r, 'covered_pct')):.2f}% | "
              f"{med(m, lambda r: num(r, 'final_missed')):,.0f} |")
    print("\n| migration | watchers of the killed device | back at the server | take-back median | maximum |")
    print("|---|---|---|---|---|")
    for m in modes:
        if med(m, lambda r: num(r, "kill_watchers")) is None:
            continue
        print(f"| {m} | {med(m, lambda r: num(r, 'kill_watchers')):,.0f} | "
              f"{med(m, lambda r: num(r, 'back_n')):,.0f} | "
              f"{med(m, lambda r: num(r, 'back_median_ms')):,.0f} ms | "
              f"{med(m, lambda r: num(r, 'back_max_ms')):,.0f} ms |")
    print("\nper run:")
    for r in runs:
        print("  " + " ".join(f"{k}={v}" for k, v in r.items()))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "setup":
        setup(sys.argv[2], int(sys.argv[3]))
    elif cmd == "accounts":
        accounts(*(int(a) for a in sys.argv[2:7]))
    elif cmd == "drive":
        drive(dict(a.split("=", 1) for a in sys.argv[2:]))
    elif cmd == "report":
        report(sys.argv[2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
