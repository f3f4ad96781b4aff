#!/usr/bin/env python3
"""Helper for benches/rls/run.sh (standard library only).

  rlsbench.py stats FILE T0            the busy-lamp counters of a tls_swarm watch stats file
                                       (--blf) from epoch T0 on, as key=value words
  rlsbench.py expected LISTS FINAL     the changes the phones should learn of: for every user,
                                       the sequence number of its last PUBLISH answered 2xx
                                       (sip_publisher --final-file) times the phones that
                                       have it as a key (the rls-services LISTS document)
  rlsbench.py report RESULTS           the table of run.sh from its results file (one record
                                       a line: a section name, then key=value pairs)

Process ticks and free ports come from benches/sip/sipbench.py, SIGUSR1 heap probes from
benches/network/netbench.py.
"""
import re
import statistics
import sys

# The columns of a tls_swarm watch --blf stats line.
COLS = ["t", "subscribed", "initial", "later", "failed", "closed", "states", "covered",
        "bytes"]


def rows(path):
    out = []
    with open(path) as f:
        for line in f:
            cols = line.split()
            if len(cols) == len(COLS):
                out.append({k: float(v) for k, v in zip(COLS, cols)})
    return out


def stats(path, t0):
    """the counters' growth from t0 to the last sample, and when NOTIFYs came"""
    rs = rows(path)
    before = [r for r in rs if r["t"] <= t0]
    base = before[-1] if before else {k: 0.0 for k in COLS}
    after = [r for r in rs if r["t"] > t0]
    if not after:
        return "notifies=0 states=0 covered=0 bytes=0 first=0 last=0 failed=0 closed=0"
    final = after[-1]
    first = next((r["t"] for r in after if r["later"] > base["later"]), after[0]["t"])
    last = next(r["t"] for r in after if r["later"] == final["later"])
    d = lambda k: int(final[k] - base[k])
    return (f"notifies={d('later')} states={d('states')} covered={d('covered')} "
            f"bytes={d('bytes')} first={first:.3f} last={last:.3f} "
            f"failed={int(final['failed'])} closed={int(final['closed'])}")


def expected(lists, final):
    watchers = {}
    with open(lists) as f:
        for user in re.findall(r'<rl:entry uri="sip:user(\d+)@', f.read()):
            watchers[int(user)] = watchers.get(int(user), 0) + 1
    total = 0
    changes = 0
    with open(final) as f:
        for line in f:
            p, seq = line.split()
            total += int(seq) * watchers.get(int(p), 0)
            changes += int(seq)
    return f"expected_covered={total} changes_acked={changes}"


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


def table(title, header, rows_):
    print(f"\n{title}")
    widths = [max(len(str(r[i])) for r in [header] + rows_) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in rows_:
        print(line(r))


def derived(r, clk):
    """per-run figures of one record of run.sh"""
    secs = r["pub_seconds"]
    cpu_us = r["imppd_ticks"] / clk * 1e6
    out = {
        "notify_rate": r["notifies"] / secs,
        "state_rate": r["states"] / secs,
        "covered_rate": r["covered"] / secs,
        "covered_share": r["covered"] / r["expected_covered"] if r["expected_covered"] else None,
        "published_rate": r["published"] / secs,
        "cpu_per_change": cpu_us / r["published"] if r["published"] else None,
        "cpu_per_state": cpu_us / r["states"] if r["states"] else None,
        "cpu_per_covered": cpu_us / r["covered"] if r["covered"] else None,
        "cores": r["imppd_ticks"] / clk / (r["cpu_seconds"] or secs),
        "bytes_per_notify": r["bytes"] / r["notifies"] if r["notifies"] else None,
        "states_per_notify": r["states"] / r["notifies"] if r["notifies"] else None,
        "heap_per_phone": (r["heap1"] - r["heap0"]) / r["phones"],
        # What the second half of the phones added, per phone: one more phone once every
        # user is watched (run.sh probes the heap between the halves).
        "heap_per_more": (r["heap1"] - r["heapm"]) / (r["phones"] - r["half"])
        if "heapm" in r and r["phones"] > r.get("half", r["phones"]) else None,
        "rss_per_phone": (r["rss1"] - r["rss0"]) * 1024 / r["phones"],
        "subscribe_s": r.get("subscribe_s"),
    }
    return out


def report(path):
    recs = records(path)
    info = next((r for r in recs if r["section"] == "info"), {})
    clk = info.get("clk_tck", 100.0)
    if info:
        print(f"imppd {info.get('imppd', '?')} (tree {info.get('tree', '?')}); "
              f"{int(info.get('ncpu', 0))} CPUs; reps {int(info.get('reps', 0))}; "
              f"{int(info.get('phones', 0))} phones x {int(info.get('keys', 0))} keys of "
              f"{int(info.get('users', 0))} users; storm {info.get('rate', '?')} changes/s "
              f"for {info.get('storm_s', '?')} s; list batching {info.get('batch_ms', '?')} ms; "
              f"results in {path}")
    runs = [r for r in recs if r["section"] == "storm"]
    conns = [(r["heap1"] - r["heap0"]) / r["phones"] for r in recs if r["section"] == "conns"]
    conn = med(conns)
    if not runs:
        print("no runs recorded")
        return
    by_mode = {}
    for r in runs:
        by_mode.setdefault(r["mode"], []).append(derived(r, clk))
        print(f"  {r['mode']:6} #{int(r['rep'])}: "
              + ", ".join(f"{k} {fmt(v, '{:,.2f}')}" for k, v in derived(r, clk).items()))
    m = {mode: {k: med([d[k] for d in ds]) for k in ds[0]} for mode, ds in by_mode.items()}
    modes = [x for x in ("single", "list") if x in m]
    table(
        "Busy-lamp storm (medians): NOTIFY transactions and resource states per second",
        ["mode", "changes/s published", "NOTIFY/s", "states/s delivered",
         "changes/s covered", "covered / published x watchers", "states per NOTIFY",
         "bytes per NOTIFY"],
        [[x, fmt(m[x]["published_rate"]), fmt(m[x]["notify_rate"]), fmt(m[x]["state_rate"]),
          fmt(m[x]["covered_rate"]), fmt(m[x]["covered_share"] and m[x]["covered_share"] * 100,
                                         "{:.1f}%"),
          fmt(m[x]["states_per_notify"], "{:.2f}"), fmt(m[x]["bytes_per_notify"])]
         for x in modes])
    cpu_modes = modes + (["none"] if "none" in m else [])
    table(
        "imppd CPU over the storm (utime+stime, from the storm's start until the NOTIFYs stop)",
        ["mode", "us per change published", "us per state delivered", "us per change covered",
         "cores busy"],
        [[x + (" (no phones)" if x == "none" else ""), fmt(m[x]["cpu_per_change"], "{:,.1f}"),
          fmt(m[x]["cpu_per_state"], "{:,.2f}"), fmt(m[x]["cpu_per_covered"], "{:,.2f}"),
          fmt(m[x]["cores"], "{:.2f}")]
         for x in cpu_modes])
    table(
        "Memory per phone (after every phone's first NOTIFY, less before the SUBSCRIBEs)",
        ["mode", "live heap per phone", "of the second half", "VmRSS per phone",
         "seconds to subscribe all"],
        [[x + (" (1 list subscription)" if x == "list" else " (its single subscriptions)"),
          fmt(m[x]["heap_per_phone"]), fmt(m[x]["heap_per_more"]), fmt(m[x]["rss_per_phone"]),
          fmt(m[x]["subscribe_s"], "{:.1f}")] for x in modes])
    if "single" in m and "list" in m:
        s, l = m["single"], m["list"]
        ratio = lambda a, b: a / b if a is not None and b else None
        n = ratio(s["notify_rate"], l["notify_rate"])
        c = ratio(l["cpu_per_change"], s["cpu_per_change"])
        cc = ratio(l["cpu_per_covered"], s["cpu_per_covered"])
        print()
        print(f"NOTIFY transactions single / list: {fmt(n, '{:.1f}')}x "
              f"(target >= 10x: {'met' if n and n >= 10 else 'MISSED'})")
        print(f"CPU list / single, per change published: {fmt(c, '{:.2f}')} "
              f"(target <= 0.33: {'met' if c and c <= 1 / 3 else 'MISSED'}); "
              f"per change covered: {fmt(cc, '{:.2f}')}")
        if "none" in m and m["none"]["cpu_per_change"] is not None:
            z = m["none"]["cpu_per_change"]
            above = ratio(l["cpu_per_change"] - z, s["cpu_per_change"] - z)
            print(f"  the storm alone costs {fmt(z, '{:,.1f}')} us per change (no phones); above "
                  f"that, list / single: {fmt(above, '{:.2f}')}")
    if "list" in m:
        per, more = m["list"]["heap_per_phone"], m["list"]["heap_per_more"]
        keys = int(info.get("keys", 0))
        print(f"live heap per list phone: {fmt(per)} over all phones (the users' own state "
              f"included); {fmt(more)} for each phone of the second half (once every user "
              f"is watched); VmRSS: {fmt(m['list']['rss_per_phone'])}")
        if conn is not None:
            print(f"  a phone's TCP connection alone (mode conn, runs: "
                  f"{', '.join(fmt(c) for c in conns)}; median): {fmt(conn)}")
        if conn is not None and more is not None:
            sub = more - conn
            print(f"bytes per list subscription of {keys} resources (a phone of the second "
                  f"half, less its connection): {fmt(sub)} (target <= 4,096: "
                  f"{'met' if sub <= 4096 else 'MISSED'}); over all phones, less the "
                  f"connection: {fmt(per - conn)}")
        else:
            print(f"bytes per list subscription of {keys} resources (live heap per phone, "
                  f"connection and users' state included: add mode conn to tell the "
                  f"connection apart): {fmt(per)} (target <= 4,096: "
                  f"{'met' if per is not None and per <= 4096 else 'MISSED'})")

def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "stats" and len(sys.argv) == 4:
        print(stats(sys.argv[2], float(sys.argv[3])))
    elif cmd == "expected" and len(sys.argv) == 4:
        print(expected(sys.argv[2], sys.argv[3]))
    elif cmd == "report" and len(sys.argv) == 3:
        report(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
