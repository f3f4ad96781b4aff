#!/usr/bin/env python3
"""One PJSIP user agent (pjsua2, PJSIP's Python binding; PyPI package pjsua2-python) that
registers with digest and watches one buddy, reporting what it sees for a test that drives
everything else: run by tests/edge_peers.rs, which moves the buddy's presence agent between
a device and the server under it and reads this output.

    pjsua2_watcher.py --server ADDR:PORT --user bob --password PW --buddy alice
                      [--domain D] [--transport udp|tcp] [--seconds 90]

Output, one line each, flushed at once:
    REG <code>                          each registration outcome
    BUDDY <sub-state> <term-reason|-> <online|offline|unknown> <note|->
                                        each buddy state pjsua2 reports
and PJSIP's own log at level 5 (every SIP message sent and received, whole). It runs until
its stdin closes or says "quit", or --seconds pass, then un-subscribes and exits 0.
Nothing here decides when to subscribe again: PJSIP does, as in any pjsua application.
"""

import argparse
import select
import sys
import time

import pjsua2 as pj

STATUS = {
    pj.PJSUA_BUDDY_STATUS_UNKNOWN: "unknown",
    pj.PJSUA_BUDDY_STATUS_ONLINE: "online",
    pj.PJSUA_BUDDY_STATUS_OFFLINE: "offline",
}


class Writer(pj.LogWriter):
    """PJSIP's log to stdout, flushed per entry (C stdio would buffer it on a pipe)."""

    def write(self, entry):
        sys.stdout.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")
        sys.stdout.flush()


class Account(pj.Account):
    def onRegState(self, prm):
        print(f"REG {prm.code}", flush=True)


class Buddy(pj.Buddy):
    def onBuddyState(self):
        # Keep the BuddyInfo alive while its members are read (SWIG proxies of a member of
        # a temporary dangle once the temporary is collected).
        info = self.getInfo()
        p = info.presStatus
        print(f"BUDDY {info.subStateName} {info.subTermReason or '-'} "
              f"{STATUS.get(p.status, p.status)} {p.note or '-'}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--buddy", required=True)
    ap.add_argument("--domain", default="example.test")
    ap.add_argument("--transport", default="udp", choices=["udp", "tcp"])
    ap.add_argument("--seconds", type=float, default=90.0)
    a = ap.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    # Everything runs on this thread, in ep.libHandleEvents.
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "pjsua2 imppd edge watcher"
    writer = Writer()
    cfg.logConfig.writer = writer
    cfg.logConfig.level = 5
    cfg.logConfig.consoleLevel = 5
    cfg.logConfig.msgLogging = 1
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    t = pj.TransportConfig()
    t.boundAddress = "127.0.0.1"
    t.port = 0
    kind = pj.PJSIP_TRANSPORT_TCP if a.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
    transport = ep.transportCreate(kind, t)
    ep.libStart()

    server = f"sip:{a.server};transport={a.transport}"
    acc = Account()
    c = pj.AccountConfig()
    c.idUri = f"sip:{a.user}@{a.domain}"
    c.regConfig.registrarUri = server
    c.regConfig.timeoutSec = 300
    c.sipConfig.proxies.append(server + ";lr")
    c.sipConfig.transportId = transport
    c.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", a.user, 0, a.password))
    acc.create(c)

    buddy = Buddy()
    bc = pj.BuddyConfig()
    bc.uri = f"sip:{a.buddy}@{a.domain}"
    bc.subscribe = True
    buddy.create(acc, bc)

    deadline = time.monotonic() + a.seconds
    while time.monotonic() < deadline:
        ep.libHandleEvents(10)
        ready, _, _ = select.select([sys.stdin], [], [], 0)
        if ready:
            line = sys.stdin.readline()
            if not line or line.strip() == "quit":
                break
    buddy.subscribePresence(False)
    acc.shutdown()
    ep.libHandleEvents(200)
    ep.libDestroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
