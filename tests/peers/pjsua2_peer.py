#!/usr/bin/env python3
"""Two PJSIP user agents (pjsua2, PJSIP's Python binding; PyPI package pjsua2-python) against
imppd over TLS: alice and bob register with digest, publish their presence (PUBLISH, RFC
3903), watch each other (SUBSCRIBE/NOTIFY) and exchange MESSAGEs, each over its own TLS
connection to imppd, verifying imppd's certificate against the run's CA. An account on a
TLS transport that trusts another CA must not register, nor one whose server's certificate,
from the right CA, does not name the address it connects to (the imppd on --unnamed-port
has a certificate without 127.0.0.1). Run by tests/tls_peers.rs, which makes the
certificates and starts both imppd.

    pjsua2_peer.py --port TLS_PORT --unnamed-port TLS_PORT --ca CA_FILE
                   --stranger-ca OTHER_CA_FILE [--domain D] [--password-suffix=-pw]

Each step prints "PASS step" or "FAIL step: why" and the run stops at the first failure; it
ends with "steps: N ok, M failed" and exits 1 on any failure. Every wait is bounded.
"""

import argparse
import sys
import time

import pjsua2 as pj


class Account(pj.Account):
    def __init__(self, name):
        super().__init__()
        self.name = name
        self.reg_codes = []
        self.reg_reasons = []
        self.received = []  # (from URI, body)
        self.sent = {}  # body -> status code of its MESSAGE
        self.buddies = []

    def onRegState(self, prm):
        self.reg_codes.append(prm.code)
        self.reg_reasons.append(prm.reason)

    def onInstantMessage(self, prm):
        self.received.append((prm.fromUri, prm.msgBody))

    def onInstantMessageStatus(self, prm):
        self.sent[prm.msgBody] = prm.code


class Buddy(pj.Buddy):
    def __init__(self):
        super().__init__()
        self.states = []  # (status, RPID activity, note) as NOTIFYs came

    def onBuddyState(self):
        # Keep the BuddyInfo alive while its member is read: SWIG's proxy of a member of a
        # temporary dangles once the temporary is collected.
        info = self.getInfo()
        p = info.presStatus
        self.states.append((STATUS.get(p.status, p.status), ACTIVITY.get(p.activity, p.activity),
                            p.note))


STATUS = {
    pj.PJSUA_BUDDY_STATUS_UNKNOWN: "unknown",
    pj.PJSUA_BUDDY_STATUS_ONLINE: "online",
    pj.PJSUA_BUDDY_STATUS_OFFLINE: "offline",
}
ACTIVITY = {
    pj.PJRPID_ACTIVITY_UNKNOWN: "-",
    pj.PJRPID_ACTIVITY_AWAY: "away",
    pj.PJRPID_ACTIVITY_BUSY: "busy",
}


class Failed(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--unnamed-port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--stranger-ca", required=True)
    ap.add_argument("--domain", default="example.test")
    ap.add_argument("--password-suffix", default="-pw")
    ap.add_argument("--verbose", action="store_true", help="PJSIP's log with every message")
    a = ap.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    # Everything runs on this thread, in ep.libHandleEvents: no locking needed above.
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "pjsua2 imppd TLS peer test"
    cfg.logConfig.level = 4
    cfg.logConfig.consoleLevel = 5 if a.verbose else 2
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()

    def tls_transport(ca):
        t = pj.TransportConfig()
        t.boundAddress = "127.0.0.1"
        t.port = 0
        t.tlsConfig.CaListFile = ca
        # Verify imppd's certificate: its chain, and that it names the host connected to.
        t.tlsConfig.verifyServer = True
        t.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
        return ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, t)

    trusted = tls_transport(a.ca)
    untrusted = tls_transport(a.stranger_ca)
    ep.libStart()

    server = f"sip:127.0.0.1:{a.port};transport=tls"
    steps = []

    def pump(what, cond, timeout=8.0):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() >= deadline:
                raise Failed(f"no {what} within {timeout:.0f} s ({state()})")
            ep.libHandleEvents(20)

    def state():
        """What the accounts saw, for a failure's message."""
        seen = []
        for acc in (alice, bob):
            if acc is not None:
                seen.append(f"{acc.name}: registrations {acc.reg_codes}, "
                            f"got {[b for _, b in acc.received]}, sent {acc.sent}, "
                            f"watching {[b.states for b in acc.buddies]}")
        return "; ".join(seen)

    def step(name, fn):
        try:
            fn()
        except Failed as e:
            steps.append((name, str(e)))
            print(f"FAIL {name}: {e}", flush=True)
            raise
        steps.append((name, None))
        print(f"PASS {name}", flush=True)

    def account(user, transport, server=server):
        acc = Account(user)
        c = pj.AccountConfig()
        c.idUri = f"sip:{user}@{a.domain}"
        c.regConfig.registrarUri = server
        c.regConfig.timeoutSec = 300
        c.sipConfig.proxies.append(server + ";lr")
        c.sipConfig.transportId = transport
        c.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", "*", user, 0, user + a.password_suffix)
        )
        c.presConfig.publishEnabled = True
        acc.create(c)
        return acc

    def presence(status, activity, note):
        p = pj.PresenceStatus()
        p.status = status
        p.activity = activity
        p.note = note
        return p

    def watch(acc, other):
        b = Buddy()
        bc = pj.BuddyConfig()
        bc.uri = f"sip:{other}@{a.domain}"
        bc.subscribe = True
        b.create(acc, bc)
        acc.buddies.append(b)
        return b

    def message(sender, buddy, receiver, text):
        prm = pj.SendInstantMessageParam()
        prm.content = text
        buddy.sendInstantMessage(prm)
        pump(f"{receiver.name}'s copy of {text!r}",
             lambda: any(body == text for _, body in receiver.received))
        pump(f"the answer to {sender.name}'s MESSAGE", lambda: text in sender.sent)
        if sender.sent[text] // 100 != 2:
            raise Failed(f"{sender.name}'s MESSAGE answered {sender.sent[text]}")
        got = [f for f, body in receiver.received if body == text][0]
        if f"{sender.name}@{a.domain}" not in got:
            raise Failed(f"{receiver.name} got it from {got}")

    alice = bob = None
    strangers = []
    try:
        alice = account("alice", trusted)
        bob = account("bob", trusted)

        def registered():
            pump("REGISTER 200 for both",
                 lambda: 200 in alice.reg_codes and 200 in bob.reg_codes)
            for acc in (alice, bob):
                if acc.reg_codes[0] != 200:
                    raise Failed(f"{acc.name} registered with {acc.reg_codes}")

        step("alice and bob register over TLS with digest", registered)

        def published():
            alice.setOnlineStatus(
                presence(pj.PJSUA_BUDDY_STATUS_ONLINE, pj.PJRPID_ACTIVITY_UNKNOWN,
                         "alice at her desk"))
            bob.setOnlineStatus(
                presence(pj.PJSUA_BUDDY_STATUS_ONLINE, pj.PJRPID_ACTIVITY_UNKNOWN,
                         "bob over TLS"))

        step("alice and bob publish", published)

        sees_alice = watch(bob, "alice")
        sees_bob = watch(alice, "bob")

        def watching():
            pump("bob's NOTIFY with alice's note",
                 lambda: ("online", "-", "alice at her desk") in sees_alice.states)
            pump("alice's NOTIFY with bob's note",
                 lambda: ("online", "-", "bob over TLS") in sees_bob.states)

        step("each sees the other online, with the published note", watching)

        def busy():
            alice.setOnlineStatus(
                presence(pj.PJSUA_BUDDY_STATUS_ONLINE, pj.PJRPID_ACTIVITY_BUSY,
                         "alice in a meeting"))
            pump("bob's NOTIFY of alice's change",
                 lambda: ("online", "busy", "alice in a meeting") in sees_alice.states)

        step("alice turns busy and bob is told", busy)

        step("alice writes to bob",
             lambda: message(alice, sees_bob, bob, "hello bob, over TLS"))
        step("bob writes to alice",
             lambda: message(bob, sees_alice, alice, "hello alice, over TLS"))

        def offline():
            alice.setOnlineStatus(
                presence(pj.PJSUA_BUDDY_STATUS_OFFLINE, pj.PJRPID_ACTIVITY_UNKNOWN, ""))
            pump("bob's NOTIFY of alice going offline",
                 lambda: sees_alice.states[-1][0] == "offline")

        step("alice goes offline and bob is told", offline)

        def refused(why, acc):
            pump(f"an answer or failure of the REGISTER ({why})", lambda: acc.reg_codes)
            if 200 in acc.reg_codes:
                raise Failed(f"registered ({why})")
            # PJSIP refused the certificate (PJSIP_TLS_ECERTVERIF): the REGISTER never left.
            if "certificate" not in acc.reg_reasons[0].lower():
                raise Failed(f"failed, but not on the certificate: {acc.reg_reasons}")

        def stranger_ca():
            strangers.append(account("alice", untrusted))
            refused("a CA that did not sign imppd's certificate", strangers[-1])

        step("an account trusting another CA does not register", stranger_ca)

        def unnamed():
            other = f"sip:127.0.0.1:{a.unnamed_port};transport=tls"
            strangers.append(account("alice", trusted, server=other))
            refused("a certificate that does not name 127.0.0.1", strangers[-1])

        step("an account does not register where the certificate does not name the address",
             unnamed)
    except Failed:
        pass
    finally:
        for acc in [alice, bob] + strangers:
            if acc is not None:
                for b in acc.buddies:
                    b.subscribePresence(False)
                acc.shutdown()
        ep.libHandleEvents(200)
        ep.libDestroy()

    failed = sum(1 for _, why in steps if why is not None)
    print(f"steps: {len(steps) - failed} ok, {failed} failed", flush=True)
    return 0 if steps and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
