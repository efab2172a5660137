#!/usr/bin/env python3
"""The one-page report of scripts/soak.sh, and its verdict.

    soak_report.py LOGS --out REPORT.md

Reads what soak.sh left in LOGS (run.tsv, events.tsv, samples.tsv, load/<workload>/seg-N.*),
prints a text summary, writes a markdown report and exits 1 when the soak did not hold:
  - a client error not explained by a kill burst or the pgtandem restart;
  - pgtandem's RSS or open fds grew by more than 10% after warm-up (median of the last third of
    the samples against the first third's; samples within the warm-up after a restart of
    pgtandem are left out too);
  - a reload outcome other than expected (valid applied, invalid refused, config kept);
  - old != new after catch-up (and repair), or a failed check soak.sh recorded.
"""
import argparse
import json
import os
import re
import statistics
import sys

FLAT_LIMIT = 0.10
RESTART_BEFORE, RESTART_AFTER = 1, 15  # seconds around a pgtandem restart
BURST_AFTER = 3


def read_run(path):
    run, failed = {}, []
    for line in open(path):
        k, _, v = line.rstrip("\n").partition("\t")
        if k == "failed":
            failed.append(v)
        else:
            run[k] = v
    return run, failed


def read_events(path):
    ev = []
    for line in open(path):
        t, kind, detail = line.rstrip("\n").split("\t", 2)
        ev.append((float(t), kind, detail))
    return ev


def read_samples(path):
    rows = []
    if not os.path.exists(path):
        return rows
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        rows.append({"t": float(f[0]), "pid": f[1], "rss": int(f[2]), "fds": int(f[3]),
                     "clients": f[4], "queue": f[5], "journal": f[6]})
    return rows


ERR_SKIP = re.compile(r"^(progress: |pgbench: error: Run was aborted)")


def scan_load(load_dir):
    """Per workload: error messages (epoch, text), segment exits (rc, epoch), tx count, notes."""
    out = {}
    for name in sorted(os.listdir(load_dir)):
        d = os.path.join(load_dir, name)
        if not os.path.isdir(d):
            continue
        w = {"errors": [], "exits": [], "tx": 0.0, "notifications": 0, "segments": 0}
        for fn in sorted(os.listdir(d)):
            p = os.path.join(d, fn)
            if fn.endswith(".err"):
                for line in open(p, errors="replace"):
                    ts, _, text = line.rstrip("\n").partition(" ")
                    m = re.match(r"progress: [\d.]+ s, ([\d.]+) tps", text)
                    if m:
                        w["tx"] += float(m.group(1)) * 10
                        continue
                    # Continuation lines of a multi-line message start with white space.
                    if not text.strip() or text[0] in " \t" or ERR_SKIP.match(text):
                        continue
                    w["errors"].append((int(ts), text))
            elif fn.endswith(".rc"):
                w["segments"] += 1
                rc, _, t = open(p).read().strip().partition(" ")
                w["exits"].append((int(rc), int(t or 0)))
            elif fn.endswith(".out") and name == "listen":
                w["notifications"] += sum(1 for line in open(p, errors="replace")
                                          if line.startswith("Asynchronous notification"))
        out[name] = w
    return out


def median_thirds(samples, key):
    if len(samples) < 6:
        return None
    t0, t1 = samples[0]["t"], samples[-1]["t"]
    span = (t1 - t0) / 3
    first = [s[key] for s in samples if s["t"] <= t0 + span]
    last = [s[key] for s in samples if s["t"] >= t1 - span]
    if not first or not last:
        return None
    a, b = statistics.median(first), statistics.median(last)
    return a, b, (b - a) / a if a else 0.0


def rows_sql(report_path, limit=20):
    """SQL that selects the first differing rows of a verify report (to keep both sides' values
    before repair makes them equal): soak_report.py --rows-sql verify.json"""
    rep = json.load(open(report_path))
    out = []
    for t in rep.get("tables", []):
        keys = t.get("key", [])
        for r in t.get("rows", [])[:limit]:
            cond = " AND ".join(f"{k}::text = '{str(v).replace(chr(39), chr(39) * 2)}'"
                                for k, v in zip(keys, r.get("key", [])))
            if cond:
                out.append(f"SELECT '{t['table']}' AS t, * FROM {t['table']} WHERE {cond};")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--rows-sql":
        sys.stdout.write(rows_sql(sys.argv[2]))
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("logs")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    L = args.logs
    run, failed = read_run(os.path.join(L, "run.tsv"))
    events = read_events(os.path.join(L, "events.tsv"))
    samples = read_samples(os.path.join(L, "samples.tsv"))
    load = scan_load(os.path.join(L, "load"))
    warmup = float(run.get("warmup", 30))
    checks = []  # (ok, name, detail)

    def ev(kind):
        return [e for e in events if e[1] == kind]

    t_start = ev("load-start")[0][0] if ev("load-start") else (samples[0]["t"] if samples else 0)
    t_stop = ev("load-stop")[0][0] if ev("load-stop") else float("inf")
    kills, ups = ev("pgtandem-kill"), ev("pgtandem-up")
    restart_windows = []
    for k in kills:
        up = next((u[0] for u in ups if u[0] >= k[0]), k[0] + 30)
        restart_windows.append((k[0] - RESTART_BEFORE, up + RESTART_AFTER))
    burst_windows = [(b[0], b[0] + BURST_AFTER) for b in ev("kill-burst")]

    def cause(t, workload):
        if t >= t_stop:
            return "end of run"
        if any(a <= t <= b for a, b in restart_windows):
            return "pgtandem restart"
        if workload in ("victims-1", "victims-2", "copy") and any(a <= t <= b for a, b in burst_windows):
            return "kill burst"
        return "unexplained"

    # ------------------------------------------------------------ client errors per cause
    per_cause = {}
    unexplained = []
    killed_by_burst = 0
    for name, w in load.items():
        for t, text in w["errors"]:
            c = cause(t, name)
            per_cause[c] = per_cause.get(c, 0) + 1
            if c == "unexplained":
                unexplained.append((t, name, text))
        for rc, t in w["exits"]:
            if rc == 137:
                killed_by_burst += 1  # SIGKILL: only the kill bursts send it to clients
            elif rc != 0:
                c = cause(t, name)
                if c == "end of run":
                    continue
                per_cause[c] = per_cause.get(c, 0) + 1
                if c == "unexplained":
                    unexplained.append((t, name, f"client exited with code {rc}"))
    per_cause["kill burst (clients SIGKILLed)"] = killed_by_burst
    checks.append((not unexplained, "client errors only from kill bursts and the pgtandem restart",
                   f"{len(unexplained)} unexplained" if unexplained else "none unexplained"))

    # ------------------------------------------------------------ RSS and fds
    settled = [s for s in samples
               if t_start + warmup <= s["t"] <= t_stop
               and not any(u[0] <= s["t"] <= u[0] + warmup for u in ups)]
    flat = {}
    for key, label in (("rss", "RSS"), ("fds", "open fds")):
        r = median_thirds(settled, key)
        flat[key] = r
        if r is None:
            checks.append((False, f"{label} flat after warm-up", f"too few samples ({len(settled)})"))
        else:
            a, b, ch = r
            unit = " kB" if key == "rss" else ""
            checks.append((ch <= FLAT_LIMIT, f"{label} flat after warm-up (growth <= 10%)",
                           f"median {a:.0f}{unit} -> {b:.0f}{unit} ({ch * 100:+.1f}%)"))

    # ------------------------------------------------------------ reloads, verify, the rest
    ok_r, ref_r, bad_r = (int(run.get(k, 0)) for k in ("reloads_ok", "reloads_refused", "reloads_bad"))
    checks.append((bad_r == 0 and ok_r > 0 and ref_r > 0,
                   "reloads: valid applied, invalid refused, running config kept",
                   f"{ok_r} valid applied, {ref_r} invalid refused, {bad_r} wrong"))
    v1, rep, v2 = run.get("verify_rc", ""), run.get("repair_rc", ""), run.get("verify2_rc", "")
    same = v1 == "0" or (v1 == "1" and v2 == "0" and int(run.get("pgtandem_kills", 0)) > 0)
    vdetail = f"verify exit {v1}" + (f" ({run['verify_diffs']})" if run.get("verify_diffs") else "") + \
        (f", repair exit {rep}, verify again exit {v2}" if rep else "")
    checks.append((same, "old == new after catch-up (and repair)", vdetail))
    for f in failed:
        checks.append((False, "soak.sh check", f))
    held = all(c[0] for c in checks)

    # ------------------------------------------------------------ report
    def count(kind):
        return len(ev(kind))

    lines = []
    lines.append(f"# pgtandem soak under faults: {'HELD' if held else 'FAILED'}")
    lines.append("")
    lines.append(f"`{run.get('command', '')}` · {run.get('version', '')} · {run.get('cores', '?')} cores · "
                 f"pgbench scale {run.get('scale')} · warm-up {run.get('warmup')} s · "
                 f"samples every {run.get('sample_every')} s")
    lines.append("")
    lines.append("| check | result | |")
    lines.append("|---|---|---|")
    for ok, name, detail in checks:
        lines.append(f"| {name} | {'ok' if ok else '**FAILED**'} | {detail} |")
    lines.append("")
    lines.append("**Faults** (all during the same run)")
    lines.append("")
    lines.append(f"- reloads every 5 s: {ok_r} valid applied, {ref_r} invalid refused")
    lines.append(f"- `new` restarted {run.get('new_restarts')}x, frozen (SIGSTOP 10 s) {run.get('new_freezes')}x")
    lines.append(f"- network delay/loss windows on the link to `new`: {run.get('net_windows')} ({run.get('net')})")
    lines.append(f"- kill bursts: {run.get('bursts')} ({run.get('burst_kills')} client processes SIGKILLed)")
    kill_note = "; ".join(k[2] for k in kills)
    lines.append(f"- pgtandem SIGKILLed and restarted {run.get('pgtandem_kills')}x ({kill_note})")
    lines.append("")
    lines.append("**Load** (through pgtandem; transactions from pgbench's progress lines, approximate)")
    lines.append("")
    lines.append("| workload | runs | transactions | error messages |")
    lines.append("|---|---|---|---|")
    for name, w in load.items():
        extra = f" ({w['notifications']} notifications received)" if name == "listen" else ""
        tx = f"~{w['tx']:.0f}" if w["tx"] else "-"
        lines.append(f"| {name}{extra} | {w['segments']} | {tx} | {len(w['errors'])} |")
    lines.append("")
    lines.append("**Client errors per cause**: " +
                 ", ".join(f"{k}: {v}" for k, v in sorted(per_cause.items())))
    if unexplained:
        lines.append("")
        lines.append("Unexplained (first 10):")
        lines.append("")
        for t, name, text in unexplained[:10]:
            lines.append(f"- +{t - t_start:.0f} s {name}: `{text[:200]}`")
    lines.append("")
    lines.append(f"**pgtandem RSS and fds** ({len(samples)} samples, {len(settled)} after warm-up): " +
                 ", ".join(f"{'RSS' if k == 'rss' else 'fds'} first third {r[0]:.0f} -> last third {r[1]:.0f} "
                           f"({r[2] * 100:+.1f}%)" for k, r in flat.items() if r) +
                 (f"; max RSS {max(s['rss'] for s in samples)} kB, max fds {max(s['fds'] for s in samples)}"
                  if samples else ""))
    lines.append("")
    lines.append(f"**Catch-up**: {run.get('catchup_note')} · **verify**: {vdetail}")
    lines.append("")
    for side in ("old", "new"):
        p = os.path.join(L, f"verify-1-rows-{side}.txt")
        if os.path.exists(p):
            rows = [r for r in open(p).read().splitlines() if r.strip()][:10]
            lines.append(f"Differing rows before repair, on {side}: " + "; ".join(f"`{r}`" for r in rows))
            lines.append("")
    lines.append("**Timeline** (seconds from the load's start; kill bursts and network windows "
                 "counted above): " + "; ".join(
                     f"+{t - t_start:.0f} {kind}" for t, kind, _ in events
                     if kind not in ("kill-burst", "net-on", "net-off")))
    lines.append("")
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    # Text summary on stdout: the checks and the counts.
    print()
    print(f"=== pgtandem soak: {'HELD' if held else 'FAILED'} ===")
    for ok, name, detail in checks:
        print(f"  {'ok    ' if ok else 'FAILED'} {name}: {detail}")
    print("  client errors per cause: " + ", ".join(f"{k}: {v}" for k, v in sorted(per_cause.items())))
    for t, name, txt in unexplained[:10]:
        print(f"    unexplained +{t - t_start:.0f}s {name}: {txt[:160]}")
    print(f"  faults: {ok_r + ref_r + bad_r} reloads, {run.get('new_restarts')} restarts of new, "
          f"{run.get('new_freezes')} freezes, {run.get('net_windows')} network windows, "
          f"{run.get('bursts')} kill bursts, {run.get('pgtandem_kills')} pgtandem SIGKILL")
    print(f"  catch-up: {run.get('catchup_note')}")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
