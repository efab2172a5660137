#!/usr/bin/env python3
"""The numbers behind scripts/demo.sh (stdlib only).

  demo_report.py metric FILE NAME [label=value ...]        sum of a metric in a /metrics scrape
  demo_report.py delta BEFORE AFTER NAME [label=value ...] its growth between two scrapes
  demo_report.py pause LOGS T0 T1                         max client latency (ms) of transactions
                                                          that completed in [T0, T1]
  demo_report.py report LOGS --out FILE.html              the phase table (stdout) and the HTML report
                                                          (inline SVG timeline); exit 1 when a phase
                                                          failed or a client saw an error

LOGS is the demo's log directory:
  phases.tsv        index, name, start, end (epoch seconds), ok (1/0), summary line
  events.tsv        time, kind (flip, flip-done, shift, fault), detail
  metrics/NAME.prom /metrics scrapes: start.prom when pgtandem came up, phase-NN.prom at each phase's end
  load/WORKLOAD/seg-N.tx.*  pgbench -l per-transaction logs of one pgbench run (a segment)
  load/WORKLOAD/seg-N.err   pgbench's stderr, each line prefixed with the epoch second it was written
  load/WORKLOAD/seg-N.rc    pgbench's exit code
"""
import glob
import html
import math
import os
import re
import sys
from collections import defaultdict

LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


# ----------------------------------------------------------------------------- metrics

def parse_metrics(path):
    samples = []
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE_RE.match(line)
        if m:
            try:
                value = float(m.group(3))
            except ValueError:
                continue
            samples.append((m.group(1), dict(LABEL_RE.findall(m.group(2) or "")), value))
    return samples


def metric_sum(samples, name, want=None):
    want = want or {}
    return sum(v for n, labels, v in samples
               if n == name and all(labels.get(k) == x for k, x in want.items()))


def parse_want(args):
    want = {}
    for a in args:
        k, _, v = a.partition("=")
        want[k] = v
    return want


# ----------------------------------------------------------------------------- client load

class Load:
    """Every transaction the pgbench runs completed: (end epoch, latency ms, workload), failures, errors."""

    def __init__(self, logs):
        self.tx = []          # (end_epoch, latency_ms, workload)
        self.failed = []      # (epoch, workload)
        self.errors = []      # (epoch, workload, text): aborted clients, failed connections
        for wdir in sorted(glob.glob(os.path.join(logs, "load", "*"))):
            if not os.path.isdir(wdir):
                continue
            workload = os.path.basename(wdir)
            for path in sorted(glob.glob(os.path.join(wdir, "seg-*.tx*"))):
                self._read_tx(path, workload)
            for path in sorted(glob.glob(os.path.join(wdir, "seg-*.err"))):
                self._read_err(path, workload)
        self.tx.sort()

    def _read_tx(self, path, workload):
        # client_id transaction_no time script_no time_epoch time_us [schedule_lag]
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 6:
                    continue
                try:
                    end = int(fields[4]) + int(fields[5]) / 1e6
                except ValueError:
                    continue
                if fields[2] in ("failed", "serialization", "deadlock"):
                    self.failed.append((end, workload))
                elif fields[2] != "skipped":
                    self.tx.append((end, int(fields[2]) / 1000.0, workload))

    def _read_err(self, path, workload):
        rc_path = path[:-4] + ".rc"
        try:
            rc = int(open(rc_path).read().strip() or 0)
        except (OSError, ValueError):
            rc = None  # still running, or killed
        aborted = 0
        last_time = None
        first_error = None
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                when, _, text = line.rstrip("\n").partition(" ")
                try:
                    when = float(when)
                except ValueError:
                    continue
                last_time = when
                if "aborted in command" in text:
                    aborted += 1
                    self.errors.append((when, workload, text.strip()))
                elif first_error is None and ("error" in text.lower() or "fatal" in text.lower()):
                    first_error = (when, text.strip())
        if rc not in (0, None) and aborted == 0:
            when, text = first_error or (last_time or 0, f"pgbench exited with code {rc}")
            self.errors.append((when, workload, text))

    def window(self, t0, t1):
        return [t for t in self.tx if t0 <= t[0] < t1]

    def workloads(self):
        # The write path first (tpcb), then the reads.
        return sorted({w for _, _, w in self.tx} | {w for _, w in self.failed}, key=lambda w: (w != "tpcb", w))


def quantile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


# ----------------------------------------------------------------------------- phases

def read_tsv(path, ncols):
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= ncols:
                    rows.append(parts)
    except OSError:
        pass
    return rows


def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def phase_rows(logs, load):
    phases = read_tsv(os.path.join(logs, "phases.tsv"), 6)
    events = read_tsv(os.path.join(logs, "events.tsv"), 3)
    start_metrics = parse_metrics(os.path.join(logs, "metrics", "start.prom"))
    prev = start_metrics
    rows = []
    workloads = load.workloads()
    for idx, name, t0, t1, ok, summary in (p[:6] for p in phases):
        t0, t1 = float(t0), float(t1)
        cur = parse_metrics(os.path.join(logs, "metrics", f"phase-{int(idx):02d}.prom"))
        row = {"idx": int(idx), "name": name, "t0": t0, "t1": t1, "ok": ok == "1",
               "summary": summary, "duration": t1 - t0}
        tx = load.window(t0, t1)
        lat = sorted(t[1] for t in tx)
        dur = max(t1 - t0, 1e-9)
        loaded = bool(tx) or any(t0 <= e[0] < t1 for e in load.errors)
        row["loaded"] = loaded
        row["tps"] = {w: sum(1 for t in tx if t[2] == w) / dur for w in workloads} if loaded else None
        row["p50"] = quantile(lat, 0.50)
        row["p99"] = quantile(lat, 0.99)
        row["max"] = lat[-1] if lat else None
        row["errors"] = (sum(1 for e in load.failed if t0 <= e[0] < t1) +
                         sum(1 for e in load.errors if t0 <= e[0] < t1)) if loaded else None
        row["error_texts"] = [e[2] for e in load.errors if t0 <= e[0] < t1][:3]
        if cur is not None and prev is not None:
            def d(n, **want):
                return metric_sum(cur, n, want) - metric_sum(prev, n, want)
            reads_all = d("pgtandem_route_decisions_total")
            reads_new = d("pgtandem_route_decisions_total", target="new")
            row["reads_new"] = (reads_new, reads_all)
            lag_n = d("pgtandem_mirror_lag_seconds_count")
            lag_s = d("pgtandem_mirror_lag_seconds_sum")
            row["lag_ms"] = lag_s / lag_n * 1000 if lag_n > 0 else None
            row["mirrored"] = lag_n
            row["shadow"] = (d("pgtandem_shadow_reads_total", outcome="mismatch"),
                             d("pgtandem_shadow_reads_total", outcome="match") +
                             d("pgtandem_shadow_reads_total", outcome="mismatch"))
        else:
            row["reads_new"] = row["lag_ms"] = row["shadow"] = None
        if cur is not None:
            prev = cur
        flips = []
        open_flip = None
        for when, kind, detail in (e[:3] for e in events):
            when = float(when)
            if not t0 <= when <= t1:
                continue
            if kind == "flip":
                open_flip = (when, detail)
            elif kind == "flip-done" and open_flip:
                window = load.window(open_flip[0], when + 1.0)
                pause = max((t[1] for t in window), default=None)
                flips.append({"label": open_flip[1], "t0": open_flip[0], "t1": when,
                              "pause_ms": pause})
                open_flip = None
        row["flips"] = flips
        row["pause_ms"] = max((f["pause_ms"] for f in flips if f["pause_ms"] is not None),
                              default=None)
        if row["errors"]:
            row["ok"] = False
        rows.append(row)
    return rows, events


COLUMNS = ["phase", "duration", "tps", "p50 ms", "p99 ms", "client errors", "reads by new",
           "mirror lag", "shadow mismatches", "pause at flip", "check"]


def cells(row):
    tps = row["tps"]
    reads = row["reads_new"]
    shadow = row["shadow"]
    return [
        f"{row['idx']} {row['name']}",
        f"{row['duration']:.1f} s",
        "-" if tps is None else "+".join(f"{v:.0f}" for v in tps.values()),
        fmt_ms(row["p50"]),
        fmt_ms(row["p99"]),
        "-" if row["errors"] is None else str(row["errors"]),
        "-" if reads is None else (f"{reads[0]:.0f} ({100 * reads[0] / reads[1]:.0f}%)"
                                   if reads[1] else "0"),
        "-" if row["lag_ms"] is None else f"{row['lag_ms']:.1f} ms",
        "-" if shadow is None else (f"{shadow[0]:.0f} of {shadow[1]:.0f}" if shadow[1] else "0"),
        "-" if row["pause_ms"] is None else f"{row['pause_ms']:.0f} ms",
        "ok" if row["ok"] else "FAILED",
    ]


def text_table(rows, workloads):
    table = [COLUMNS] + [cells(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    out = []
    for n, r in enumerate(table):
        out.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                             for i, c in enumerate(r)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    notes = [f"tps: {' + '.join(workloads) or 'no load'} (pgbench at a fixed rate, through pgtandem);"
             " latency: every client transaction, schedule lag included",
             "reads by new: reads pgtandem sent to new (share of all the reads it routed, TPC-B's included);"
             " mirror lag: mean time from the primary's answer to the write applied on the other side;"
             " shadow mismatches: of the shadow reads compared; pause at flip: the longest client"
             " transaction from the reload until one second after every session moved"]
    return "\n".join(out), notes


# ----------------------------------------------------------------------------- SVG timeline

def svg_timeline(rows, events, load, width=1100):
    loaded = [r for r in rows if r["loaded"]]
    if not load.tx or not loaded:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="600" height="40">' \
               '<text x="10" y="25">no client load recorded</text></svg>'
    t_start = min(r["t0"] for r in loaded)
    t_end = max(r["t1"] for r in loaded)
    span = max(t_end - t_start, 1.0)
    nsec = int(math.ceil(span))
    workloads = load.workloads()
    per_sec = defaultdict(lambda: defaultdict(int))
    lat_sec = defaultdict(list)
    for end, lat, w in load.tx:
        s = int(end - t_start)
        if 0 <= s < nsec:
            per_sec[s][w] += 1
            lat_sec[s].append(lat)

    left, right, top = 70, 20, 40
    ph = 150  # panel height
    gap = 50
    height = top + ph + gap + ph + 70
    pw = width - left - right

    def x(t):
        return left + pw * (t - t_start) / span

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]

    # Panel 1: throughput.
    y1 = top
    tps_max = max((sum(per_sec[s].values()) for s in range(nsec)), default=1)
    tps_max = max(tps_max, max((per_sec[s][w] for s in range(nsec) for w in workloads), default=1))
    tps_top = nice_ceiling(tps_max * 1.1)
    out.append(f'<text x="{left}" y="{y1 - 8}" font-size="13" font-weight="bold">'
               'Throughput (transactions per second, by workload)</text>')
    out.append(f'<rect x="{left}" y="{y1}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>')
    for frac in (0, 0.25, 0.5, 0.75, 1):
        yy = y1 + ph - frac * ph
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + pw}" y2="{yy:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{tps_top * frac:.0f}</text>')
    for i, w in enumerate(workloads):
        pts = " ".join(f"{x(t_start + s + 0.5):.1f},{y1 + ph - ph * per_sec[s][w] / tps_top:.1f}"
                       for s in range(nsec))
        out.append(f'<polyline fill="none" stroke="{colors[i % len(colors)]}" stroke-width="1.5" '
                   f'points="{pts}"><title>{html.escape(w)} tps</title></polyline>')
        out.append(f'<rect x="{left + pw - 150 + i * 75}" y="{y1 + 6}" width="10" height="10" '
                   f'fill="{colors[i % len(colors)]}"/><text x="{left + pw - 136 + i * 75}" '
                   f'y="{y1 + 15}">{html.escape(w)}</text>')

    # Panel 2: latency, log scale.
    y2 = y1 + ph + gap
    lat_max = max((max(v) for v in lat_sec.values() if v), default=1.0)
    lo = 0.1
    hi = 10 ** math.ceil(math.log10(max(lat_max, 1.0) * 1.2))

    def ly(ms):
        ms = min(max(ms, lo), hi)
        return y2 + ph - ph * (math.log10(ms) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    out.append(f'<text x="{left}" y="{y2 - 8}" font-size="13" font-weight="bold">'
               'Client latency per second (ms, log scale): p50, p99 and max</text>')
    out.append(f'<rect x="{left}" y="{y2}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>')
    decade = lo
    while decade <= hi * 1.0001:
        yy = ly(decade)
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + pw}" y2="{yy:.1f}" stroke="#e5e5e5"/>')
        label = f"{decade:g}"
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{label}</text>')
        decade *= 10
    series = [("p50", 0.5, "#2ca02c", 1.2), ("p99", 0.99, "#d62728", 1.5), ("max", 1.0, "#999999", 0.8)]
    for label, q, color, sw in series:
        pts = []
        for s in range(nsec):
            v = sorted(lat_sec.get(s, []))
            if v:
                pts.append(f"{x(t_start + s + 0.5):.1f},{ly(quantile(v, q)):.1f}")
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="{sw}" points="{" ".join(pts)}">'
                   f'<title>latency {label}</title></polyline>')
    for i, (label, _, color, _) in enumerate(series):
        out.append(f'<rect x="{left + pw - 170 + i * 55}" y="{y2 + 6}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{left + pw - 156 + i * 55}" y="{y2 + 15}">{label}</text>')

    # Phase boundaries and flips, across both panels.
    for n, r in enumerate(loaded):
        xx = x(r["t0"])
        if n % 2:
            for yy in (y1, y2):
                out.append(f'<rect x="{xx:.1f}" y="{yy}" width="{x(r["t1"]) - xx:.1f}" height="{ph}" '
                           'fill="#000" fill-opacity="0.035"/>')
        out.append(f'<line x1="{xx:.1f}" y1="{y1}" x2="{xx:.1f}" y2="{y2 + ph}" stroke="#555" '
                   f'stroke-dasharray="3,3"><title>{r["idx"]} {html.escape(r["name"])}</title></line>')
        mid = x((r["t0"] + r["t1"]) / 2)
        color = "#333" if r["ok"] else "#d62728"
        if x(r["t1"]) - xx >= 12:  # too narrow phases are named in the legend only
            out.append(f'<text x="{mid:.1f}" y="{y1 + ph + 16}" text-anchor="middle" font-weight="bold" '
                       f'fill="{color}">{r["idx"]}</text>')
    for r in loaded:
        for f in r["flips"]:
            xx = x(f["t0"])
            out.append(f'<line x1="{xx:.1f}" y1="{y1}" x2="{xx:.1f}" y2="{y2 + ph}" stroke="#d62728" '
                       f'stroke-width="1.5"><title>{html.escape(f["label"])}</title></line>')
            out.append(f'<text x="{xx + 3:.1f}" y="{y2 + ph - 5}" fill="#d62728">'
                       f'{html.escape(f["label"].split()[0])}</text>')
    # Steps inside phases: the fault, each read-shift percentage.
    for when, kind, detail in (e[:3] for e in events):
        when = float(when)
        if kind not in ("shift", "fault") or not t_start <= when <= t_end:
            continue
        xx = x(when)
        label = "fault" if kind == "fault" else detail.rsplit(" ", 1)[-1]
        out.append(f'<line x1="{xx:.1f}" y1="{y1}" x2="{xx:.1f}" y2="{y1 + ph}" stroke="#e08a00" '
                   f'stroke-width="1"><title>{html.escape(detail)}</title></line>')
        out.append(f'<text x="{xx + 3:.1f}" y="{y1 + ph - 5}" fill="#b36b00">{html.escape(label)}</text>')
    # Time axis.
    step = nice_step(span / 10)
    t = 0.0
    while t <= span + 1e-9:
        xx = x(t_start + t)
        out.append(f'<text x="{xx:.1f}" y="{y2 + ph + 16}" text-anchor="middle" fill="#777">{t:.0f}</text>')
        t += step
    out.append(f'<text x="{left + pw / 2:.1f}" y="{y2 + ph + 34}" text-anchor="middle" fill="#555">'
               'seconds since the client load started (numbers: phases; red: primary flips)</text>')
    legend = "   ".join(f"{r['idx']} {r['name']}" for r in loaded)
    out.append(f'<text x="{left}" y="{y2 + ph + 56}" fill="#333">{html.escape(legend)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def nice_ceiling(v):
    if v <= 0:
        return 1
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def nice_step(v):
    return max(1, nice_ceiling(v))


# ----------------------------------------------------------------------------- HTML

CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px 0; }
.verdict { font-size: 16px; margin: 8px 0 16px 0; font-weight: bold; }
.ok { color: #2a7d2a; } .failed { color: #c62828; }
table { border-collapse: collapse; font-size: 13px; margin: 12px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; white-space: normal; } td:first-child, th:first-child { text-align: left; }
th:last-child { text-align: left; }
td.summary { text-align: left; color: #555; font-size: 12px; white-space: normal; min-width: 320px; }
tr.failed td { background: #fdecea; }
p.note { color: #555; font-size: 12px; max-width: 1100px; }
"""


def html_report(rows, events, load, meta, text_notes):
    ok = all(r["ok"] for r in rows) and rows
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>pgtandem demo: old to new, live</title>", f"<style>{CSS}</style></head><body>",
             "<h1>pgtandem demo: a live migration from old to new</h1>",
             f'<p class="note">{html.escape(meta)}</p>',
             f'<div class="verdict {"ok" if ok else "failed"}">'
             f'{"Every phase passed." if ok else "Some phase FAILED: see the table."}</div>',
             svg_timeline(rows, events, load),
             "<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS) +
             "<th>what happened</th></tr></thead><tbody>"]
    for r in rows:
        cls = "" if r["ok"] else ' class="failed"'
        summary = r["summary"]
        if r["error_texts"]:
            summary += " | client errors: " + "; ".join(r["error_texts"])
        parts.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells(r)) +
                     f'<td class="summary">{html.escape(summary)}</td></tr>')
    parts.append("</tbody></table>")
    for n in text_notes:
        parts.append(f'<p class="note">{html.escape(n)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- commands

def cmd_report(argv):
    logs = argv[0]
    out = None
    meta = ""
    i = 1
    while i < len(argv):
        if argv[i] == "--out":
            out = argv[i + 1]
            i += 2
        elif argv[i] == "--meta":
            meta = argv[i + 1]
            i += 2
        else:
            raise SystemExit(f"demo_report.py report: unknown argument {argv[i]}")
    load = Load(logs)
    rows, events = phase_rows(logs, load)
    table, notes = text_table(rows, load.workloads())
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(html_report(rows, events, load, meta, notes))
    print(table)
    for n in notes:
        print(n)
    total_errors = len(load.failed) + len(load.errors)
    failed = [r for r in rows if not r["ok"]]
    if total_errors:
        print(f"client errors: {total_errors}")
        for e in load.errors[:5]:
            print(f"  {e[1]}: {e[2]}")
    if failed or total_errors or not rows:
        return 1
    return 0


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    cmd = argv[1]
    if cmd == "metric":
        s = parse_metrics(argv[2])
        if s is None:
            print("nan")
            return 1
        print(f"{metric_sum(s, argv[3], parse_want(argv[4:])):.6g}")
        return 0
    if cmd == "delta":
        a, b = parse_metrics(argv[2]), parse_metrics(argv[3])
        if a is None or b is None:
            print("nan")
            return 1
        want = parse_want(argv[5:])
        print(f"{metric_sum(b, argv[4], want) - metric_sum(a, argv[4], want):.6g}")
        return 0
    if cmd == "pause":
        load = Load(argv[2])
        window = load.window(float(argv[3]), float(argv[4]))
        print(f"{max((t[1] for t in window), default=0):.1f}")
        return 0
    if cmd == "report":
        return cmd_report(argv[2:])
    print(f"demo_report.py: unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
