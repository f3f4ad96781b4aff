#!/usr/bin/env python3
"""What a Prometheus scrape of imppd's /metrics costs the server (standard library only).

  scrape.py loop PORT INTERVAL_S OUT   GET /metrics every INTERVAL_S seconds until stopped
                                       (SIGTERM), one line per scrape in OUT: "epoch bytes"
  scrape.py probe PID PORT N           N scrapes back to back: imppd's CPU (utime+stime of
                                       /proc/PID/stat) over them, less its CPU over the same
                                       wall time right after with no scrape, per scrape;
                                       prints "US_PER_SCRAPE BYTES"
  scrape.py report ROOT                the runs ROOT/A1, ROOT/B1, ... of benches/sip/scrape.sh
                                       (A: never scraped, B: scraped): server CPU per 10k
                                       NOTIFY of each storm, medians, B against A in %, and
                                       the probe's cost per scrape

The scrape is what Prometheus does: a new TCP connection, one GET, the answer read to its
end (imppd closes after one request).
"""
import os
import signal
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def scrape(port):
    """One GET /metrics; the bytes of the answer (head and body)."""
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: imppd\r\n\r\n")
        size = 0
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return size
            size += len(chunk)


def cpu_ticks(pid):
    # Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def loop(port, interval, out):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with open(out, "a") as log:
        next_at = time.monotonic()
        while not stop:
            try:
                size = scrape(port)
                log.write(f"{time.time():.3f} {size}\n")
                log.flush()
            except OSError as e:
                print(f"scrape failed: {e}", file=sys.stderr)
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)


def probe(pid, port, n):
    hz = os.sysconf("SC_CLK_TCK")
    size = scrape(port)
    t0, w0 = cpu_ticks(pid), time.monotonic()
    for _ in range(n):
        scrape(port)
    t1, w1 = cpu_ticks(pid), time.monotonic()
    time.sleep(w1 - w0)
    t2 = cpu_ticks(pid)
    busy, idle = (t1 - t0) / hz, (t2 - t1) / hz
    print(f"{max(0.0, busy - idle) / n * 1e6:.0f} {size}")


def marks(d):
    values = {}
    for line in open(os.path.join(d, "marks.env")):
        key, _, value = line.strip().partition("=")
        values[key] = value
    return values


def report(root):
    sys.path.insert(0, HERE)
    import sipbench  # the storms' figures, read as run.sh's own report reads them

    rows = {"A": [], "B": []}
    for name in sorted(os.listdir(root), key=lambda n: (n[1:], n[0])):
        d = os.path.join(root, name)
        if not (os.path.isdir(d) and name[:1] in rows and name[1:].isdigit()):
            continue
        storms = {s["tag"]: s for s in sipbench.figures(d)["storms"]}
        m = marks(d)
        probe_us, probe_bytes = (m.get("SCRAPE_PROBE") or "- -").split()
        rows[name[0]].append({
            "name": name,
            "nom": storms.get("NOM", {}).get("cpu_per_10k"),
            "sat": storms.get("SAT", {}).get("cpu_per_10k"),
            "cpu": sum(s["cpu_s"] for s in storms.values()),
            "scrapes": int(m.get("SCRAPES", 0)),
            "probe_us": None if probe_us == "-" else float(probe_us),
            "bytes": probe_bytes,
        })

    def fmt(v, f):
        return "-" if v is None else f.format(v)

    print("A: /metrics never scraped; B: scraped every SCRAPE_S s through both storms")
    print(f"{'run':<5}{'CPU s/10k NOTIFY nominal':>26}{'saturation':>12}{'storm CPU s':>13}"
          f"{'scrapes':>9}{'probe us/scrape':>17}")
    for side in ("A", "B"):
        for r in rows[side]:
            print(f"{r['name']:<5}{fmt(r['nom'], '{:.3f}'):>26}{fmt(r['sat'], '{:.3f}'):>12}"
                  f"{fmt(r['cpu'], '{:.2f}'):>13}{r['scrapes']:>9}{fmt(r['probe_us'], '{:.0f}'):>17}")

    def med(side, key):
        vals = [r[key] for r in rows[side] if r[key] is not None]
        return statistics.median(vals) if vals else None

    for key, label in (("nom", "nominal"), ("sat", "saturation")):
        a, b = med("A", key), med("B", key)
        change = (b / a - 1) * 100 if a and b else None
        print(f"median CPU s/10k NOTIFY, {label}: A {fmt(a, '{:.3f}')}, B {fmt(b, '{:.3f}')}, "
              f"B against A {fmt(change, '{:+.2f}')} %")
    a_cpu, b_cpu = med("A", "cpu"), med("B", "cpu")
    scrapes = med("B", "scrapes")
    if a_cpu is not None and b_cpu is not None and scrapes:
        print(f"storm CPU: median A {a_cpu:.2f} s, B {b_cpu:.2f} s with {scrapes:.0f} scrapes: "
              f"{(b_cpu - a_cpu) / scrapes * 1e3:+.2f} ms per scrape from the difference "
              f"(as noisy as the runs)")
    probe_us = med("B", "probe_us")
    if probe_us is not None:
        sizes = sorted({r["bytes"] for r in rows["B"]})
        print(f"median probe: {probe_us:.0f} us of server CPU per scrape of {', '.join(sizes)} "
              f"bytes, all subscriptions held (CPU over back-to-back scrapes less idle CPU)")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "loop":
        loop(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    elif cmd == "probe":
        probe(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "report":
        report(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
