#!/usr/bin/env python3
"""Helper for benches/sip/run.sh (standard library only).

  sipbench.py freeport                 a port free for both UDP and TCP on 127.0.0.1
  sipbench.py ticks PID...             summed utime+stime of the processes (clock ticks)
  sipbench.py rss PID                  VmRSS in kB
  sipbench.py udpdrops [PORT...]       UDP RcvbufErrors (whole host, /proc/net/snmp), or
                                       the drops of the 127.0.0.1 sockets on PORTs (/proc/net/udp)
  sipbench.py count CSV SUFFIX NTH     last value of the NTH counts column ending in SUFFIX
  sipbench.py report DIR               read DIR/marks.env and the sipp CSVs, print the table

sipp files read: watch/*_counts.csv (-trace_counts), watch/*_.csv and
pub*/*_.csv (-trace_stat), written every -fd period.
"""
import csv
import glob
import os
import socket
import sys


def freeport():
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            t.close()
            continue
        u.close()
        t.close()
        return port
    raise SystemExit("no free port")


def ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            total += int(rest[11]) + int(rest[12])  # utime, stime (fields 14, 15)
        except (OSError, IndexError, ValueError):
            pass
    return total


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def heap_bytes(pid, log):
    """imppd's live heap: SIGUSR1 makes it print 'imppd: heap N bytes live' on its log"""
    import signal
    import time
    def last():
        with open(log) as f:
            lines = [l for l in f if l.startswith("imppd: heap ")]
        return (len(lines), int(lines[-1].split()[2]) if lines else 0)
    seen, _ = last()
    os.kill(int(pid), signal.SIGUSR1)
    for _ in range(100):
        time.sleep(0.05)
        n, value = last()
        if n > seen:
            return value
    return 0


def udpdrops(ports=()):
    """host-wide UDP RcvbufErrors, or the drops of the sockets bound to ports"""
    if ports:
        want = {f"{int(p):04X}" for p in ports}
        total = 0
        with open("/proc/net/udp") as f:
            for line in list(f)[1:]:
                cols = line.split()
                if cols[1].split(":")[1] in want:
                    total += int(cols[-1])
        return total
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def read_csv(pattern):
    files = sorted(glob.glob(pattern))
    if not files:
        return [], []
    with open(files[-1]) as f:
        rows = list(csv.reader(f, delimiter=";"))
    return (rows[0], rows[1:]) if rows else ([], [])


def when(cell):
    # sipp time cells look like "2026-11-24\t13:47:46.738180\t1795528066.738180"
    return float(cell.split("\t")[-1])


def series(pattern, suffix, nth=1):
    """[(epoch, cumulative value)] of the nth column whose name ends in suffix"""
    hdr, rows = read_csv(pattern)
    cols = [i for i, h in enumerate(hdr) if h.endswith(suffix)]
    if len(cols) < nth:
        return []
    i = cols[nth - 1]
    return [(when(r[0]), float(r[i] or 0)) for r in rows if len(r) > i and r[i] != ""]


def last(pattern, name):
    hdr, rows = read_csv(pattern)
    if name not in hdr or not rows:
        return 0.0
    try:
        return float(rows[-1][hdr.index(name)] or 0)
    except ValueError:
        return 0.0


def sum_cols(pattern, suffix):
    hdr, rows = read_csv(pattern)
    if not rows:
        return 0.0
    return sum(float(rows[-1][i] or 0) for i, h in enumerate(hdr) if h.endswith(suffix))


def at(ser, t):
    """cumulative value at time t (last sample at or before t)"""
    v = 0.0
    for ts, val in ser:
        if ts <= t:
            v = val
    return v


def reach(ser, level):
    """time the cumulative series first reaches level, interpolated between samples"""
    prev = None
    for t, v in ser:
        if v >= level:
            if prev is None or v == prev[1]:
                return t
            return prev[0] + (t - prev[0]) * (level - prev[1]) / (v - prev[1])
        prev = (t, v)
    return None


def window_rate(ser, t0, t1):
    """NOTIFYs counted in (t0, t1], their rate between the 5 % and 95 % points,
    and the rate from the first to the last one"""
    base = at(ser, t0)
    part = [(t, v - base) for t, v in ser if t0 <= t <= t1]
    total = (part[-1][1] if part else 0.0)
    if total <= 0:
        return 0, None, None, None
    a, b = reach(part, 0.05 * total), reach(part, 0.95 * total)
    mid = 0.9 * total / (b - a) if a is not None and b is not None and b > a else None
    first, lastt = reach(part, 1), reach(part, total)
    overall = total / (lastt - first) if first is not None and lastt and lastt > first else None
    return total, mid, overall, (lastt - first if overall else None)


def env(path):
    d = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.strip().split("=", 1)
                d[k] = v
    return d


def fmt(v, spec="{:,.0f}"):
    return "-" if v is None else spec.format(v)


def report(d):
    m = env(os.path.join(d, "marks.env"))
    num = {k: float(v) for k, v in m.items() if v.replace(".", "", 1).lstrip("-").isdigit()}
    clk = num["CLK_TCK"]
    subs, pres = int(num["SUBS"]), int(num["PRES"])
    wc, ws = f"{d}/watch/*_counts.csv", f"{d}/watch/*_.csv"

    # subscriptions: 200 answers to the SUBSCRIBE (first 200_Recv column) and
    # initial NOTIFYs (first NOTIFY_Recv column), up to the end of the phase
    ok = series(wc, "_200_Recv", 1)
    init = series(wc, "_NOTIFY_Recv", 1)
    est = at(ok, num["T_SUB_DONE"])
    notified = at(init, num["T_SUB_DONE"])
    t_last = reach(ok, est) if est else None
    sub_rate = est / (t_last - num["T_SUB_START"]) if t_last else None
    sub_fail = subs - est
    sub_cpu = (num["SUB_TICKS1"] - num["SUB_TICKS0"]) / clk / max(1e-9, num["T_SUB_DONE"] - num["T_SUB_START"]) * 100
    sub_sipp = max(0.0, num["SUB_STICKS1"] - num["SUB_STICKS0"]) / clk / max(1e-9, num["T_SUB_DONE"] - num["T_SUB_START"]) * 100
    per_sub = (num["RSS1"] - num["RSS0"]) * 1024 / notified if notified else None
    heap_per_sub = ((num["HEAP1"] - num["HEAP0"]) / notified
                    if notified and "HEAP1" in num else None)

    fan = series(wc, "_NOTIFY_Recv", 2)
    storms = []
    for tag in ("NOM", "SAT"):
        if f"T_{tag}_START" not in num:
            continue
        t0, t1 = num[f"T_{tag}_START"], num[f"T_{tag}_END"]
        total, mid, overall, span = window_rate(fan, t0, t1)
        cpu_s = (num[f"{tag}_TICKS1"] - num[f"{tag}_TICKS0"]) / clk
        wall = t1 - t0
        sipp_w = max(0.0, num[f"{tag}_WTICKS1"] - num[f"{tag}_WTICKS0"]) / clk / wall * 100
        sipp_p = num[f"{tag}_PTICKS"] / clk / wall * 100
        pubdir = f"{d}/pub_{tag.lower()}"
        storms.append({
            "tag": tag, "offered_pub": num[f"{tag}_PUB_RATE"], "updates": int(num[f"{tag}_UPDATES"]),
            "expected": (num[f"{tag}_UPDATES"] + 2) * notified, "delivered": total,
            "mid": mid, "overall": overall, "span": span,
            "cpu_s": cpu_s, "cpu_pct": cpu_s / wall * 100,
            "cpu_per_10k": cpu_s / total * 10000 if total else None,
            "sipp_w": sipp_w, "sipp_p": sipp_p,
            "pub_ok": last(f"{pubdir}/*_.csv", "SuccessfulCall(C)"),
            "pub_fail": last(f"{pubdir}/*_.csv", "FailedCall(C)"),
            "pub_retrans": last(f"{pubdir}/*_.csv", "Retransmissions(C)"),
            "drops": num[f"{tag}_DROPS1"] - num[f"{tag}_DROPS0"],
            "drops_imppd": num[f"{tag}_IDROPS1"] - num[f"{tag}_IDROPS0"],
            "drops_sipp": num[f"{tag}_SDROPS1"] - num[f"{tag}_SDROPS0"],
        })
    notify_retrans = sum_cols(wc, "_NOTIFY_Retrans")
    w_fail = last(ws, "FailedCall(C)")
    w_ok = last(ws, "SuccessfulCall(C)")
    w_unexp = last(ws, "FailedUnexpectedMessage(C)")
    w_retrans = last(ws, "Retransmissions(C)")

    print()
    print(f"== libimpp imppd SIP load: {subs} watchers over {pres} presentities, transport {m['TRANSPORT']}, "
          f"{m['NCPU']} CPUs, sipp on the same cores ==")
    print(f"  subscribe phase: UDP drops on the imppd socket {num['SUB_IDROPS1'] - num['SUB_IDROPS0']:.0f}")
    print(f"  subscribe phase: {est:.0f} SUBSCRIBE 200s, {notified:.0f} initial NOTIFYs, {sub_fail:.0f} not established; "
          f"imppd CPU {sub_cpu:.0f} %, watcher sipp {sub_sipp:.0f} % of one core")
    if "HEAP1" in num:
        print(f"  memory: live heap {num['HEAP0']:.0f} B before, {num['HEAP1']:.0f} B with all subscribed "
              "(after the settle pause: transactions ended)")
    print(f"  memory: VmRSS {num['RSS0']:.0f} kB before, {num['RSS1']:.0f} kB with all subscribed, "
          f"{num['RSS2']:.0f} kB at the end")
    for s in storms:
        name = "nominal" if s["tag"] == "NOM" else "saturation"
        print(f"  PUBLISH storm ({name}): {s['offered_pub']:.0f} PUBLISH/s offered x {s['updates']} updates; "
              f"NOTIFY answered {s['delivered']:.0f} of {s['expected']:.0f} expected in {fmt(s['span'], '{:.1f}')} s; "
              f"{fmt(s['mid'])}/s (5-95 %), {fmt(s['overall'])}/s first-to-last")
        print(f"      imppd CPU {s['cpu_s']:.2f} s ({s['cpu_pct']:.0f} % of one core over the window); "
              f"sipp CPU: watchers {s['sipp_w']:.0f} %, publisher {s['sipp_p']:.0f} %; "
              f"publisher calls ok {s['pub_ok']:.0f} failed {s['pub_fail']:.0f}, PUBLISH retransmissions {s['pub_retrans']:.0f}; "
              f"UDP receive-buffer drops: host {s['drops']:.0f}, "
              f"imppd socket {s['drops_imppd']:.0f}, sipp sockets {s['drops_sipp']:.0f}")
    print(f"  watcher sipp totals: calls ok {w_ok:.0f}, failed {w_fail:.0f} (unexpected messages {w_unexp:.0f}); "
          f"NOTIFY retransmissions received {notify_retrans:.0f}; retransmissions in all (sipp) {w_retrans:.0f}")
    if any(s["delivered"] > s["expected"] for s in storms):
        print("  (NOTIFY counts above expected are retransmitted NOTIFYs that sipp took for new ones)")
    limited = [s for s in storms if s["sipp_w"] >= 85 or s["sipp_p"] >= 85]
    if sub_sipp >= 85:
        print("  WARNING: the watcher sipp used >= 85 % of a core while subscribing: sipp, not imppd, may be the limit")
    for s in storms:
        if s["drops_sipp"] > max(100, s["drops_imppd"]):
            print(f"  WARNING: in the {s['tag']} storm the sipp sockets dropped {s['drops_sipp']:.0f} datagrams "
                  f"(imppd's: {s['drops_imppd']:.0f}): sipp is also a limit there")
    for s in limited:
        print(f"  WARNING: a sipp process used >= 85 % of a core in the {s['tag']} storm: sipp, not imppd, may be the limit")

    nom = next((s for s in storms if s["tag"] == "NOM"), None)
    sat = next((s for s in storms if s["tag"] == "SAT"), None)
    rows = [
        ("SUBSCRIBE established /s", f"{fmt(sub_rate)} (offered {num['SUB_RATE']:.0f}/s, {sub_fail:.0f} failed)",
         "4,953/s at 5k/s offered, 0 failed"),
        ("bytes per subscription", f"{fmt(heap_per_sub)} B live heap ({fmt(per_sub)} B VmRSS) / subscription",
         "1,077 B (shm real_used)"),
        ("NOTIFY/s, nominal storm",
         f"{fmt(nom['mid'])}/s (offered {fmt(nom['offered_pub'] * subs / pres)}/s = {fmt(nom['offered_pub'])} PUBLISH/s)"
         if nom else "-",
         "10,336/s (10k/s = 100 PUBLISH/s offered)"),
        ("NOTIFY/s, saturation storm",
         f"{fmt(sat['mid'])}/s (offered {fmt(sat['offered_pub'] * subs / pres)}/s = {fmt(sat['offered_pub'])} PUBLISH/s)"
         if sat else "-",
         "28,342/s (40k/s = 400 PUBLISH/s offered)"),
        ("imppd CPU s per 10k NOTIFY",
         " / ".join(f"{fmt(s['cpu_per_10k'], '{:.2f}')} s ({'nominal' if s['tag'] == 'NOM' else 'saturation'})"
                    for s in storms) or "-",
         "~0.29 s (derived: 30 % of a core at 10.3k/s)"),
        ("retrans. / failures",
         f"{notify_retrans:.0f} NOTIFY retrans, {w_fail:.0f} watcher + "
         f"{sum(s['pub_fail'] for s in storms):.0f} publisher calls failed",
         "0 at 10k/s; ~2.8k NOTIFY retrans at saturation"),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print()
    print(f"  {'figure':<{w0}} | {'libimpp imppd (this run)':<{w1}} | Kamailio 5.6 (reference*)")
    print(f"  {'-' * w0}-+-{'-' * w1}-+-{'-' * 34}")
    for a, b, c in rows:
        print(f"  {a:<{w0}} | {b:<{w1}} | {c}")
    print("  * reference, measured on this kind of machine (2 vCPU VM, sipp on the same cores, median of 3 runs,")
    print("    10k watchers / 100 presentities, memonly mode), see issue 7 for the side-by-side run; not measured now.")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "freeport":
        print(freeport())
    elif cmd == "ticks":
        print(ticks(sys.argv[2:]))
    elif cmd == "heap":
        print(heap_bytes(sys.argv[2], sys.argv[3]))
    elif cmd == "rss":
        print(rss_kb(sys.argv[2]))
    elif cmd == "udpdrops":
        print(udpdrops(sys.argv[2:]))
    elif cmd == "count":
        ser = series(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        print(int(ser[-1][1]) if ser else 0)
    elif cmd == "report":
        report(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
