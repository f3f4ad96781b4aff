#!/usr/bin/env python3
"""Helper for benches/network/run.sh (standard library only).

  netbench.py probe PID LOG        SIGUSR1 to imppd; prints "heap=N rss_kb=N" and the
                                   counters of its guard line ("rate_refused=N ...")
  netbench.py stats FILE T0        NOTIFY figures of tls_swarm watch's stats file from
                                   epoch T0 on: "notifies=N first=T last=T"
  netbench.py report RESULTS       the tables of run.sh from its results file (one record a
                                   line: a section name, then key=value pairs)

Process ticks, free ports and UDP drops come from benches/sip/sipbench.py.
"""
import os
import signal
import statistics
import sys
import time


def probe(pid, log):
    """imppd prints 'imppd: guard ...' then 'imppd: heap N bytes live' on SIGUSR1"""
    def lines():
        with open(log, errors="replace") as f:
            return [l.rstrip("\n") for l in f if l.startswith("imppd: ")]
    seen = sum(1 for l in lines() if l.startswith("imppd: heap "))
    os.kill(int(pid), signal.SIGUSR1)
    for _ in range(200):
        time.sleep(0.05)
        all_lines = lines()
        heaps = [i for i, l in enumerate(all_lines) if l.startswith("imppd: heap ")]
        if len(heaps) > seen:
            i = heaps[-1]
            out = {"heap": int(all_lines[i].split()[2])}
            guard = [l for l in all_lines[:i] if l.startswith("imppd: guard ")]
            if guard:
                for word in guard[-1].replace(";", " ").split():
                    if "=" in word:
                        k, v = word.split("=", 1)
                        if k == "open":
                            k = "connections_open"
                        elif k in ("refused", "timed_out"):
                            k = "connections_" + k
                        out[k] = v
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out["rss_kb"] = int(line.split()[1])
            return " ".join(f"{k}={v}" for k, v in out.items())
    raise SystemExit("imppd did not answer SIGUSR1")


def stats(path, t0):
    """later NOTIFYs counted from t0: how many, when the first and the last came"""
    rows = []
    with open(path) as f:
        for line in f:
            cols = line.split()
            if len(cols) >= 4:
                rows.append((float(cols[0]), int(cols[3])))
    before = [n for t, n in rows if t <= t0]
    base = before[-1] if before else 0
    after = [(t, n) for t, n in rows if t > t0]
    if not after:
        return "notifies=0 first=0 last=0"
    final = after[-1][1]
    first = next((t for t, n in after if n > base), after[0][0])
    # the first sample that shows the final count: the last NOTIFY came before it
    last = next(t for t, n in after if n == final)
    return f"notifies={final - base} first={first:.3f} last={last:.3f}"


def records(path):
    out = []
    with open(path) as f:
        for line in f:
            words = line.split()
            if not words:
                continue
            rec = {"section": words[0]}
            for w in words[1:]:
                if "=" in w:
                    k, v = w.split("=", 1)
                    try:
                        rec[k] = float(v)
                    except ValueError:
                        rec[k] = v
            out.append(rec)
    return out


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec="{:,.0f}"):
    return "-" if v is None else spec.format(v)


def table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))


def report(path):
    recs = records(path)
    clk = next((r["clk_tck"] for r in recs if "clk_tck" in r), 100.0)
    info = next((r for r in recs if r["section"] == "info"), {})
    if info:
        print(f"imppd {info.get('imppd', '?')} (tree {info.get('tree', '?')}); "
              f"{int(info.get('ncpu', 0))} CPUs; "
              f"reps {int(info.get('reps', 0))}; results in {path}")

    hs = [r for r in recs if r["section"] == "handshake"]
    if hs:
        rows, groups = [], []
        for r in hs:
            secs = r["seconds"]
            r["rate"] = r["handshakes"] / secs
            r["cpu_us"] = r["imppd_ticks"] / clk / r["handshakes"] * 1e6 if r["handshakes"] else None
            r["gen_us"] = r["gen_ticks"] / clk / r["handshakes"] * 1e6 if r["handshakes"] else None
            r["share"] = r["imppd_ticks"] / clk / secs
            if r["group"] not in groups:
                groups.append(r["group"])
            r["ceiling"] = 1e6 / r["cpu_us"] if r["cpu_us"] else None
            rows.append([f"{r['group']} #{int(r['rep'])}", fmt(r["handshakes"]), fmt(r["failed"]),
                         fmt(r["rate"]), fmt(r["cpu_us"]), fmt(r["ceiling"]),
                         fmt(r["share"], "{:.2f}"), fmt(r["gen_us"])])
        for g in groups:
            mine = [r for r in hs if r["group"] == g]
            rows.append([f"{g} median", fmt(med([r["handshakes"] for r in mine])),
                         fmt(med([r["failed"] for r in mine])),
                         fmt(med([r["rate"] for r in mine])), fmt(med([r["cpu_us"] for r in mine])),
                         fmt(med([r["ceiling"] for r in mine])),
                         fmt(med([r["share"] for r in mine]), "{:.2f}"),
                         fmt(med([r["gen_us"] for r in mine]))])
        table("1. TLS handshakes (full, TLS 1.3, ECDSA P-256 certificate; key exchange group as named)",
              ["run", "handshakes", "failed", "handshakes/s", "imppd CPU us/handshake",
               "one core's worth (1 s / CPU)", "imppd cores busy", "generator CPU us/handshake"],
              rows)

    mem = [r for r in recs if r["section"] == "memory"]
    if mem:
        rows = []
        for r in mem:
            held = r["server_open"] or 0
            r["heap_per"] = (r["heap1"] - r["heap0"]) / held if held else None
            r["rss_per"] = (r["rss1"] - r["rss0"]) * 1024 / held if held else None
            rows.append([f"{r['transport']} #{int(r['rep'])}", fmt(r["held"]), fmt(held),
                         fmt(r["failed"]),
                         fmt(r["heap0"] / 1048576, "{:.1f}"), fmt(r["heap1"] / 1048576, "{:.1f}"),
                         fmt(r["rss0"] / 1024, "{:.1f}"), fmt(r["rss1"] / 1024, "{:.1f}"),
                         fmt(r["heap_per"]), fmt(r["rss_per"])])
        for t in ["TLS", "TCP", "WSS", "WS"]:
            mine = [r for r in mem if r["transport"] == t]
            if mine:
                rows.append([f"{t} median", fmt(med([r["held"] for r in mine])),
                             fmt(med([r["server_open"] for r in mine])),
                             fmt(med([r["failed"] for r in mine])), "", "", "", "",
                             fmt(med([r["heap_per"] for r in mine])),
                             fmt(med([r["rss_per"] for r in mine]))])
        method = mem[0].get("method", "REGISTER")
        table(f"2. Idle connections held (each: handshake, one {method} answered 200, then idle)",
              ["run", "held (client)", "open (imppd)", "failed", "heap before MiB",
               "heap held MiB", "VmRSS before MiB", "VmRSS held MiB", "heap B/conn",
               "VmRSS B/conn"], rows)
        tls = med([r["heap_per"] for r in mem if r["transport"] == "TLS"])
        tcp = med([r["heap_per"] for r in mem if r["transport"] == "TCP"])
        tls_rss = med([r["rss_per"] for r in mem if r["transport"] == "TLS"])
        if tls is not None:
            verdict = "met" if max(tls, tls_rss or 0) <= 20000 else "MISSED"
            print(f"   TLS: {tls:,.0f} B live heap, {tls_rss:,.0f} B VmRSS per idle connection: "
                  f"target <= 20 kB {verdict}"
                  + (f"; TLS minus TCP: {tls - tcp:,.0f} B heap" if tcp is not None else ""))
        for t, target in (("WS", 8000), ("WSS", 20000)):
            heap = med([r["heap_per"] for r in mem if r["transport"] == t])
            rss = med([r["rss_per"] for r in mem if r["transport"] == t])
            if heap is not None:
                verdict = "met" if max(heap, rss or 0) <= target else "MISSED"
                print(f"   {t}: {heap:,.0f} B live heap, {rss:,.0f} B VmRSS per idle connection: "
                      f"target <= {target // 1000} kB {verdict}")

    nt = [r for r in recs if r["section"] == "notify"]
    if nt:
        rows = []
        for r in nt:
            span = r["last"] - r["first"]
            r["rate"] = r["notifies"] / span if span > 0 and r["notifies"] else None
            r["cpu_us"] = r["imppd_ticks"] / clk / r["notifies"] * 1e6 if r["notifies"] else None
            r["gen_us"] = r["gen_ticks"] / clk / r["notifies"] * 1e6 if r["notifies"] else None
            r["share"] = r["imppd_ticks"] / clk / span if span > 0 else None
            offered = r["published"] * r["per_presentity"]
            r["delivered"] = r["notifies"] / offered if offered else None
            r["pub_per_s"] = r["published"] / r["pub_seconds"] if r.get("pub_seconds") else None
            rows.append([f"{r['transport']} {int(r['pub_rate'])}/s #{int(r['rep'])}",
                         fmt(r["pub_per_s"]), fmt(offered), fmt(r["notifies"]),
                         fmt(r["delivered"] * 100 if r["delivered"] is not None else None, "{:.0f}%"),
                         fmt(r["rate"]), fmt(r["cpu_us"], "{:.1f}"), fmt(r["share"], "{:.2f}"),
                         fmt(r["gen_us"], "{:.1f}")])
        keys = []
        for r in nt:
            k = (r["pub_rate"], r["transport"])
            if k not in keys:
                keys.append(k)
        meds = {}
        for k in keys:
            mine = [r for r in nt if (r["pub_rate"], r["transport"]) == k]
            meds[k] = (med([r["rate"] for r in mine]), med([r["cpu_us"] for r in mine]))
            rows.append([f"{k[1]} {int(k[0])}/s median", fmt(med([r["pub_per_s"] for r in mine])), "",
                         fmt(med([r["notifies"] for r in mine])),
                         fmt(med([r["delivered"] * 100 for r in mine if r["delivered"] is not None]), "{:.0f}%"),
                         fmt(meds[k][0]), fmt(meds[k][1], "{:.1f}"),
                         fmt(med([r["share"] for r in mine]), "{:.2f}"),
                         fmt(med([r["gen_us"] for r in mine]), "{:.1f}")])
        table("3. NOTIFY transactions: watchers over UDP, TCP, TLS, WS and WSS, a publisher over UDP "
              "(offered = PUBLISHes answered x watchers each)",
              ["run (PUBLISH/s asked)", "PUBLISH/s answered", "NOTIFYs offered",
               "NOTIFYs answered", "delivered",
               "NOTIFY/s", "imppd CPU us/NOTIFY", "imppd cores busy",
               "generator CPU us/NOTIFY"], rows)
        for rate in sorted({k[0] for k in keys}):
            b = meds.get((rate, "TCP"))
            for t in ("UDP", "TLS", "WS", "WSS"):
                a = meds.get((rate, t))
                if a and b and None not in a + b:
                    print(f"   {int(rate)} PUBLISH/s: {t}/TCP NOTIFY/s {a[0] / b[0]:.2f}x, "
                          f"CPU per NOTIFY {a[1] / b[1]:.2f}x")

    fl = [r for r in recs if r["section"] == "flood"]
    if fl:
        rows = []
        for r in fl:
            rows.append([f"{r['kind']} #{int(r['rep'])}", fmt(r["p50_ms"], "{:.2f}"),
                         fmt(r["p99_ms"], "{:.2f}"), fmt(r["max_ms"], "{:.1f}"),
                         f"{int(r['answered'])}/{int(r['sent'])}", fmt(r["lost"]),
                         fmt(r["retransmitted"]),
                         fmt(r.get("offered")), fmt(r.get("offered_rate")),
                         fmt(r.get("answered_503")), fmt(r.get("answered_200")),
                         fmt(r.get("rate_refused")), fmt(r.get("rate_dropped")),
                         fmt(r.get("queue_dropped")), fmt(r.get("udp_drops")),
                         fmt(r.get("cpu_us_per_datagram"), "{:.2f}")])
        for kind in ["alone", "flood"]:
            mine = [r for r in fl if r["kind"] == kind]
            if mine:
                g = lambda k: med([r.get(k) for r in mine])
                rows.append([f"{kind} median", fmt(g("p50_ms"), "{:.2f}"), fmt(g("p99_ms"), "{:.2f}"),
                             fmt(g("max_ms"), "{:.1f}"), "", fmt(g("lost")), fmt(g("retransmitted")),
                             fmt(g("offered")), fmt(g("offered_rate")), fmt(g("answered_503")),
                             fmt(g("answered_200")), fmt(g("rate_refused")), fmt(g("rate_dropped")),
                             fmt(g("queue_dropped")), fmt(g("udp_drops")),
                             fmt(g("cpu_us_per_datagram"), "{:.2f}")])
        m = fl[0].get("method", "REGISTER")
        table(f"4. UDP flood from 127.0.0.2 (OPTIONS, 1 in 10 garbage) against {m}s from "
              "127.0.0.1 (default rate limit 200/s bursts 1000)",
              ["run", "p50 ms", "p99 ms", "max ms", "answered/sent", "lost", "retransmitted",
               "flood offered", "offered/s", "503 received", "200 received",
               "imppd refused (503)", "imppd dropped", "queue dropped", "kernel UDP drops",
               "imppd CPU us/datagram"], rows)


def main(argv):
    if len(argv) >= 3 and argv[0] == "probe":
        print(probe(argv[1], argv[2]))
    elif len(argv) >= 3 and argv[0] == "stats":
        print(stats(argv[1], float(argv[2])))
    elif len(argv) >= 2 and argv[0] == "report":
        report(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
