#!/usr/bin/env python3
"""Helper for benches/sip/run.sh (standard library only).

  sipbench.py freeport                 a port free for both UDP and TCP on 127.0.0.1
  sipbench.py ticks PID...             summed utime+stime of the processes (clock ticks)
  sipbench.py rss PID                  VmRSS in kB
  sipbench.py udpdrops [PORT...]       UDP RcvbufErrors (whole host, /proc/net/snmp), or
                                       the drops of the 127.0.0.1 sockets on PORTs (/proc/net/udp)
  sipbench.py count CSV SUFFIX NTH     last value of the NTH counts column ending in SUFFIX
  sipbench.py report DIR               read DIR/marks.env and the sipp CSVs, print the table
  sipbench.py compare DIR...           one table of the key figures of several runs side by
                                       side (benches/sip/compare.sh: Kamailio, then imppd)
  sipbench.py ab ROOT                  the runs ROOT/A1, ROOT/B1, ... of benches/sip/ab.sh:
                                       each run's figures and the medians of A and of B
  sipbench.py heap PID LOG             imppd's live heap (bytes), asked with SIGUSR1
  sipbench.py hwm PID                  VmHWM (peak VmRSS) in kB
  sipbench.py resethwm PID             resets VmHWM to the current VmRSS (/proc/PID/clear_refs)
  sipbench.py memwatch PID LOG S OUT   every S seconds, until PID ends (or this is stopped),
                                       appends "epoch heap_bytes rss_kB" to OUT
  sipbench.py slowreport DIR           the table of benches/sip/slow_watchers.sh

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


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_hwm(pid):
    """VmHWM := VmRSS (writing 5 to clear_refs, Linux 4.0+); False when not allowed"""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memwatch(pid, log, interval, out):
    """samples imppd's live heap and VmRSS every interval seconds while it runs"""
    import time
    with open(out, "a") as f:
        while True:
            try:
                heap = heap_bytes(pid, log)
                rss = rss_kb(pid)
            except (OSError, ProcessLookupError):
                return
            f.write(f"{time.time():.3f} {heap} {rss}\n")
            f.flush()
            time.sleep(interval)


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


def figures(d):
    """the figures of one run (a work directory of run.sh)"""
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
    return dict(locals())


def mib(kb):
    return "-" if kb is None else f"{kb / 1024:,.1f} MiB"


def after_storms(num, what="VmRSS"):
    """lines on the server's memory after the storms (marks RSS_STORMS, HEAP_STORMS, RSS_POST,
    HEAP_POST, RSS2 and HEAP2 of run.sh): live heap and VmRSS against their level with all
    subscribed"""
    lines = []
    rss1, heap1 = num.get("RSS1"), num.get("HEAP1")
    post = f"{num.get('POST_S', 6):.0f} s later"
    for label, rk, hk in (("drained", "RSS_STORMS", "HEAP_STORMS"),
                          (post, "RSS_POST", "HEAP_POST"),
                          ("at the end (un-SUBSCRIBEd)", "RSS2", "HEAP2")):
        if rk not in num:
            continue
        text = f"{label}: {what} {mib(num[rk])}"
        if rss1:
            text += f" ({num[rk] / rss1:.2f}x with all subscribed, {mib(rss1)})"
        if hk in num:
            text += f"; live heap {mib(num[hk] / 1024)}"
            if heap1:
                text += f" ({num[hk] / heap1:.2f}x, {mib(heap1 / 1024)})"
        lines.append(text)
    if "RSS_TRIM" in num:
        lines.append(f"after malloc_trim(0) (TRIM_PROBE): VmRSS {mib(num['RSS_TRIM'])}"
                     + (f" ({num['RSS_TRIM'] / rss1:.2f}x with all subscribed)" if rss1 else ""))
    return lines


def report(d):
    f = figures(d)
    m, num, subs, pres = f["m"], f["num"], f["subs"], f["pres"]
    est, notified, sub_fail, sub_cpu, sub_sipp = f["est"], f["notified"], f["sub_fail"], f["sub_cpu"], f["sub_sipp"]
    sub_rate, per_sub, storms = f["sub_rate"], f["per_sub"], f["storms"]
    heap_per_sub = f["heap_per_sub"]
    notify_retrans, w_fail, w_ok, w_unexp, w_retrans = (
        f["notify_retrans"], f["w_fail"], f["w_ok"], f["w_unexp"], f["w_retrans"])
    server = m.get("SERVER", "imppd")
    if server != "imppd":
        report_other(f, server)
        return

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
    for line in after_storms(num):
        print(f"  memory after the storms: {line}")
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
        ("memory with all subscribed",
         f"live heap {mib(num['HEAP1'] / 1024) if 'HEAP1' in num else '-'}, VmRSS {mib(num['RSS1'])}", "-"),
        ("memory after the storms (drained)",
         f"live heap {mib(num['HEAP_STORMS'] / 1024) if 'HEAP_STORMS' in num else '-'}, "
         f"VmRSS {mib(num.get('RSS_STORMS'))}"
         + (f" ({num['RSS_STORMS'] / num['RSS1']:.2f}x)" if num.get('RSS1') and 'RSS_STORMS' in num else ""),
         "-"),
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


def report_other(f, server):
    """the figures of a run against another server (no fixed reference column)"""
    num = f["num"]
    print()
    print(f"== {server} SIP load: {f['subs']} watchers over {f['pres']} presentities, transport {f['m']['TRANSPORT']} ==")
    print(f"  subscribe: {f['est']:.0f} SUBSCRIBE 200s ({fmt(f['sub_rate'])}/s), {f['notified']:.0f} initial NOTIFYs, "
          f"{f['sub_fail']:.0f} not established; server CPU {f['sub_cpu']:.0f} %, watcher sipp {f['sub_sipp']:.0f} %")
    print(f"  memory (kB): {num['RSS0']:.0f} before, {num['RSS1']:.0f} with all subscribed, {num['RSS2']:.0f} at the end; "
          f"{fmt(f['per_sub'])} B per subscription")
    for line in after_storms(num, "shm real_used"):
        print(f"  memory after the storms: {line}")
    for s in f["storms"]:
        print(f"  storm {s['tag']}: {s['offered_pub']:.0f} PUBLISH/s offered; NOTIFY {s['delivered']:.0f} of "
              f"{s['expected']:.0f}; {fmt(s['mid'])}/s (5-95 %); server CPU {s['cpu_s']:.2f} s "
              f"({fmt(s['cpu_per_10k'], '{:.2f}')} s per 10k NOTIFY); sipp watchers {s['sipp_w']:.0f} %, "
              f"publisher {s['sipp_p']:.0f} %; UDP drops server {s['drops_imppd']:.0f}, sipp {s['drops_sipp']:.0f}")
    print(f"  NOTIFY retransmissions {f['notify_retrans']:.0f}; watcher calls failed {f['w_fail']:.0f}")


MEMORY_HOW = {
    "imppd": "live heap delta",
    "kamailio": "shm real_used delta",
}


def ab(root):
    """server CPU per 10k NOTIFY transactions and NOTIFY rate of the A and B runs of ab.sh"""
    import statistics
    rows = {"A": [], "B": []}
    for name in sorted(os.listdir(root), key=lambda n: (n[1:], n[0])):
        d = os.path.join(root, name)
        if not (os.path.isdir(d) and name[:1] in rows and name[1:].isdigit()):
            continue
        f = figures(d)
        storms = {s["tag"]: s for s in f["storms"]}
        storms["ALL"] = {"retrans": f["notify_retrans"],
                         "drops": sum(s["drops"] for s in f["storms"])}
        rows[name[0]].append((name, storms))
    keys = [("NOM", "cpu_per_10k", "CPU s/10k NOTIFY, nominal", "{:.3f}"),
            ("SAT", "cpu_per_10k", "CPU s/10k NOTIFY, saturation", "{:.3f}"),
            ("NOM", "mid", "NOTIFY/s, nominal", "{:,.0f}"),
            ("SAT", "mid", "NOTIFY/s, saturation", "{:,.0f}"),
            # A disturbed run: datagrams dropped by any socket of the host (sipp's, or
            # another program's) during the storms, NOTIFYs the watchers saw twice.
            ("ALL", "drops", "UDP drops (host)", "{:,.0f}"),
            ("ALL", "retrans", "NOTIFY retrans", "{:,.0f}")]

    def val(storms, tag, key):
        s = storms.get(tag)
        return s[key] if s and s[key] is not None else None

    print("run  " + " | ".join(f"{k[2]:>28}" for k in keys))
    print("     (medians of the CPU and rate columns; drops and retransmissions tell disturbed runs)")
    for side in ("A", "B"):
        for name, storms in rows[side]:
            print(f"{name:<4} " + " | ".join(f"{fmt(val(storms, t, k), f):>28}" for t, k, _, f in keys))
    medians = {}
    for side in ("A", "B"):
        meds = []
        for t, k, _, f in keys:
            vals = [v for v in (val(s, t, k) for _, s in rows[side]) if v is not None]
            meds.append(statistics.median(vals) if vals else None)
        medians[side] = meds
        print(f"med{side} " + " | ".join(f"{fmt(m, f):>28}" for m, (_, _, _, f) in zip(meds, keys)))
    ratios = [b / a if a and b else None for a, b in zip(medians["A"], medians["B"])]
    print("B/A  " + " | ".join(f"{fmt(r, '{:.2f}x'):>28}" for r in ratios))


def memory_at(r, rss_key, heap_key):
    """'heap H / RSS R' (imppd) or 'shm S' (Kamailio: run.sh's memory sample is its shm)"""
    num = r["num"]
    if rss_key not in num:
        return "-"
    if r["m"].get("SERVER", "imppd") != "imppd":
        return f"shm {num[rss_key] / 1024:,.1f}"
    heap = f"heap {num[heap_key] / 1048576:,.1f} / " if heap_key in num else ""
    return f"{heap}RSS {num[rss_key] / 1024:,.1f}"


def ratio_at(r, rss_a, rss_b, heap_a, heap_b):
    num = r["num"]
    if rss_a not in num or not num.get(rss_b):
        return "-"
    text = f"{num[rss_a] / num[rss_b]:.2f}x"
    if num.get(heap_b) and heap_a in num:
        text = f"heap {num[heap_a] / num[heap_b]:.2f}x / RSS " + text
    return text


def compare(dirs):
    """one table: a column per run (server and watcher generator), then for each generator
    run against both servers the ratio imppd / Kamailio"""
    runs = [figures(d) for d in dirs]
    servers = [r["m"].get("SERVER", "imppd") for r in runs]
    gens = [r["m"].get("WATCHERS", "sipp") for r in runs]
    names = [f"{s} ({g})" for s, g in zip(servers, gens)]
    pairs = []
    for g in dict.fromkeys(gens):
        k = next((i for i, r in enumerate(runs) if gens[i] == g and servers[i] == "kamailio"), None)
        i = next((i for i, r in enumerate(runs) if gens[i] == g and servers[i] == "imppd"), None)
        if k is not None and i is not None:
            pairs.append((g, k, i))

    def storm(r, tag):
        return next((s for s in r["storms"] if s["tag"] == tag), None)

    def offered(r, tag):
        s = storm(r, tag)
        return s["offered_pub"] * r["subs"] / r["pres"] if s else None

    def get(r, tag, key):
        s = storm(r, tag)
        return s[key] if s else None

    rows = [
        ("SUBSCRIBEs established /s", [r["sub_rate"] for r in runs], "{:,.0f}", "higher"),
        ("  (offered /s; not established)", None,
         [f"{r['num']['SUB_RATE']:,.0f}; {r['sub_fail']:,.0f}" for r in runs], None),
        ("NOTIFY transactions /s, nominal (5-95 %)", [get(r, "NOM", "mid") for r in runs], "{:,.0f}", "higher"),
        ("  (offered NOTIFY/s; answered of expected)", None,
         [f"{fmt(offered(r, 'NOM'))}; {fmt(get(r, 'NOM', 'delivered'))} of {fmt(get(r, 'NOM', 'expected'))}"
          for r in runs], None),
        ("NOTIFY transactions /s, saturation (5-95 %)", [get(r, "SAT", "mid") for r in runs], "{:,.0f}", "higher"),
        ("  (offered NOTIFY/s; answered of expected)", None,
         [f"{fmt(offered(r, 'SAT'))}; {fmt(get(r, 'SAT', 'delivered'))} of {fmt(get(r, 'SAT', 'expected'))}"
          for r in runs], None),
        ("server CPU s per 10k NOTIFY, nominal", [get(r, "NOM", "cpu_per_10k") for r in runs], "{:.3f}", "lower"),
        ("server CPU s per 10k NOTIFY, saturation", [get(r, "SAT", "cpu_per_10k") for r in runs], "{:.3f}", "lower"),
        ("bytes per subscription",
         [r["heap_per_sub"] if r.get("heap_per_sub") is not None else r["per_sub"] for r in runs],
         "{:,.0f}", "lower"),
        ("  (how)", None, [MEMORY_HOW.get(n, "?") for n in servers], None),
        ("memory with all subscribed, MiB", None, [memory_at(r, "RSS1", "HEAP1") for r in runs], None),
        ("memory after the storms, MiB", None, [memory_at(r, "RSS_STORMS", "HEAP_STORMS") for r in runs], None),
        ("  (after the storms / with all subscribed)", None,
         [ratio_at(r, "RSS_STORMS", "RSS1", "HEAP_STORMS", "HEAP1") for r in runs], None),
        ("NOTIFY retransmissions seen by watchers", [r["notify_retrans"] for r in runs], "{:,.0f}", None),
        ("watcher generator CPU % of a core (nominal / saturation)", None,
         [f"{fmt(get(r, 'NOM', 'sipp_w'))} / {fmt(get(r, 'SAT', 'sipp_w'))}" for r in runs], None),
    ]
    head = ["figure"] + names + [f"imppd / kamailio ({g})" for g, _, _ in pairs]
    table = []
    for label, vals, spec, better in rows:
        if vals is None:
            cells = list(spec) + [""] * len(pairs)
        else:
            cells = [fmt(v, spec) for v in vals]
            for _, k, i in pairs:
                ratio = ""
                if vals[k] and vals[i] is not None:
                    ratio = f"{vals[i] / vals[k]:.2f}x" + (f" ({better} is better)" if better else "")
                cells.append(ratio)
        table.append([label] + cells)
    widths = [max(len(str(row[i])) for row in table + [head]) for i in range(len(head))]
    r0 = runs[0]
    print()
    print(f"== side by side: {r0['subs']} watchers over {r0['pres']} presentities, transport {r0['m']['TRANSPORT']}, "
          f"{r0['m']['NCPU']} CPUs, load generators on the same cores ==")
    print("  " + " | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("  " + "-+-".join("-" * w for w in widths))
    for row in table:
        print("  " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def kv_file(path):
    d = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if "=" in line:
                    k, v = line.split("=", 1)
                    d[k] = v
    except OSError:
        pass
    return d


def summary_line(path, prefix):
    """key=value pairs of the last line starting with prefix in path"""
    d = {}
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    d = dict(w.split("=", 1) for w in line[len(prefix):].split() if "=" in w)
    except OSError:
        pass
    return d


def slow_figures(d):
    """the figures of one run of benches/sip/slow_watchers.sh (work directory d)"""
    m = env(os.path.join(d, "marks.env"))
    num = {k: float(v) for k, v in m.items() if v.replace(".", "", 1).lstrip("-").isdigit()}
    clk = num["CLK_TCK"]
    subs, pres = int(num["SUBS"]), int(num["PRES"])
    wc = f"{d}/watch/*_counts.csv"
    initial = series(wc, "_NOTIFY_Recv", 1)
    later = series(wc, "_NOTIFY_Recv", 2)
    retrans = series(wc, "_NOTIFY_Retrans", 1)
    t0, t_pub, t_end = num["T_STORM_START"], num["T_PUB_END"], num["T_DRAINED"]
    subscribed = at(initial, num["T_SUB_DONE"])
    new_in_storm = at(later, t_end) - at(later, t0)
    retrans_in_storm = at(retrans, t_end) - at(retrans, t0)
    # the last NOTIFY of the storm: when the later-NOTIFY count reached its final value
    last_notify = reach([(t, v) for t, v in later if t >= t0], at(later, t_end)) if later else None
    samples = []
    try:
        with open(os.path.join(d, "memwatch.txt")) as f:
            for line in f:
                t, h, r = line.split()
                samples.append((float(t), int(h), int(r)))
    except OSError:
        pass
    storm = [s for s in samples if t0 <= s[0] <= t_end and s[1] > 0]
    peak_heap = max((s[1] for s in storm), default=None)
    peak_rss_sampled = max((s[2] for s in storm), default=None)
    pub = summary_line(os.path.join(d, "publisher.out"), "sip_publisher: summary ")
    fin = kv_file(os.path.join(d, "watch", "swarm_final.txt"))
    cpu_s = (num["STORM_TICKS1"] - num["STORM_TICKS0"]) / clk
    return dict(locals())


def slowreport(d):
    f = slow_figures(d)
    num, subs, pres, pub, fin = f["num"], f["subs"], f["pres"], f["pub"], f["fin"]
    mb = lambda b: "-" if b is None else f"{b / 1048576:,.1f} MiB"
    kmb = lambda k: "-" if k is None else f"{k / 1024:,.1f} MiB"
    growth = f["peak_heap"] - num["HEAP1"] if f["peak_heap"] is not None else None
    pub_ok = float(pub.get("ok", 0))
    span = f["t_end"] - f["t0"]
    offered = pub_ok * subs / pres
    on = int(fin.get("on_final_state", -1))
    watched = subs - int(fin.get("not_subscribed", subs))
    max_un = int(fin.get("max_unanswered_per_dialog", -1))
    drain = (f["last_notify"] - f["t_pub"]) if f["last_notify"] else None
    ok_heap = growth is not None and growth < 20e6
    ok_final = fin != {} and on == subs
    ok_one = 0 <= max_un <= 1
    print()
    print(f"== imppd, slow watchers: {subs} watchers over {pres} presentities answering each NOTIFY "
          f"after {num['DELAY_MS']:.0f} ms; {num['PUB_RATE']:.0f} PUBLISH/s for {num['STORM_S']:.0f} s; "
          f"{num['NCPU']:.0f} CPUs, load generators on the same cores ==")
    rows = [
        ("subscribed (initial NOTIFY received)", f"{f['subscribed']:,.0f} of {subs:,}", ""),
        ("PUBLISH storm", f"{float(pub.get('sent', 0)):,.0f} sent in {float(pub.get('seconds', 0)):.1f} s, "
         f"{pub_ok:,.0f} answered 2xx, {float(pub.get('failed', 0)):,.0f} failed, "
         f"{float(pub.get('skipped', 0)):,.0f} turns skipped, {float(pub.get('retrans', 0)):,.0f} retransmitted", ""),
        ("live heap: with all subscribed / peak in storm", f"{mb(num['HEAP1'])} / {mb(f['peak_heap'])} "
         f"({len(f['storm'])} samples)", ""),
        ("live heap: peak growth in the storm", mb(growth), "< 20 MB (19.1 MiB)"),
        ("live heap: after the drain / at the end", f"{mb(num['HEAP2'])} / {mb(num.get('HEAP3'))}", ""),
        ("VmRSS: with all subscribed / peak (VmHWM) in storm", f"{kmb(num['RSS1'])} / {kmb(num.get('HWM'))}", ""),
        ("VmRSS: after the drain / at the end", f"{kmb(num['RSS2'])} / {kmb(num.get('RSS3'))}", ""),
        ("NOTIFYs received in the storm (new CSeq)", f"{f['new_in_storm']:,.0f} ({f['new_in_storm'] / span:,.0f}/s over "
         f"{span:.1f} s; {f['new_in_storm'] / max(1, watched):.1f} per watcher)", ""),
        ("  notifications offered (2xx PUBLISHes x watchers)", f"{offered:,.0f} (merged: "
         f"{max(0.0, offered - f['new_in_storm']):,.0f})", ""),
        ("  NOTIFY retransmissions received", f"{f['retrans_in_storm']:,.0f}", ""),
        ("NOTIFYs of one dialog unanswered at once (max)", f"{max_un} ({fin.get('overlaps', '-')} overlaps)", "<= 1"),
        ("watchers on the last published state", f"{on:,} of {subs:,} (behind {fin.get('behind', '-')}, "
         f"ahead {fin.get('ahead', '-')}, without a sequence {fin.get('without_sequence', '-')})", "all"),
        ("drain: last NOTIFY after the last PUBLISH", "-" if drain is None else f"{drain:.1f} s", ""),
        ("imppd CPU over the storm and drain", f"{f['cpu_s']:.1f} s ({f['cpu_s'] / span * 100:.0f} % of one core)", ""),
        ("UDP drops: imppd socket / generators", f"{num['IDROPS1'] - num['IDROPS0']:,.0f} / "
         f"{num['SDROPS1'] - num['SDROPS0']:,.0f}", ""),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"  {'figure':<{w0}} | {'this run':<{w1}} | target")
    print(f"  {'-' * w0}-+-{'-' * w1}-+-{'-' * 8}")
    for a, b, c in rows:
        print(f"  {a:<{w0}} | {b:<{w1}} | {c}")
    verdict = "PASS" if ok_heap and ok_final and ok_one else "FAIL"
    print(f"  {verdict}: heap growth {'<' if ok_heap else '>='} 20 MB; "
          f"{'every' if ok_final else 'NOT every'} watcher on the final state; "
          f"{'at most one' if ok_one else 'MORE than one'} NOTIFY in flight per dialog")


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
    elif cmd == "hwm":
        print(status_kb(sys.argv[2], "VmHWM"))
    elif cmd == "resethwm":
        print(1 if reset_hwm(sys.argv[2]) else 0)
    elif cmd == "memwatch":
        memwatch(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
    elif cmd == "slowreport":
        slowreport(sys.argv[2])
    elif cmd == "udpdrops":
        print(udpdrops(sys.argv[2:]))
    elif cmd == "count":
        ser = series(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        print(int(ser[-1][1]) if ser else 0)
    elif cmd == "report":
        report(sys.argv[2])
    elif cmd == "compare":
        compare(sys.argv[2:])
    elif cmd == "ab":
        ab(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
