#!/usr/bin/env python3
"""End-to-end test of scripts/demo.sh (issue 16): runs the demo with --quick, then checks its HTML
report: the phase table (html.parser), the inline SVG timeline, and a screenshot taken with headless
Chromium (the PNG decoded with zlib/struct: big enough, many colours, the chart's own colours there).

  report_test.py --pgtandem BIN --repo ROOT [--screenshot OUT.png]
  report_test.py --report FILE.html [--screenshot OUT.png]    (check an existing report only)

Fails when the demo exits non-zero (a phase's check failed), so CI fails with it.
"""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from html.parser import HTMLParser

PHASES = ["setup", "preflight", "mirroring", "backfill", "verify", "shadow", "fault",
          "read shift", "flip", "final verify"]


class ReportParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.headers = []
        self.rows = []
        self.svg = 0
        self.polylines = []
        self.lines = 0
        self.texts = []
        self._cell = None
        self._row = None
        self._in_svg = False
        self._in_text = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.svg += 1
            self._in_svg = True
        elif tag == "polyline" and self._in_svg:
            self.polylines.append(a.get("points", ""))
        elif tag == "line" and self._in_svg:
            self.lines += 1
        elif tag == "text" and self._in_svg:
            self._in_text = True
            self.texts.append("")
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "svg":
            self._in_svg = False
        elif tag == "text":
            self._in_text = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row and not self.headers:
                self.headers = self._row
            elif self._row:
                self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._in_text and self.texts:
            self.texts[-1] += data


def check_html(path, problems):
    p = ReportParser()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    p.feed(text)
    if "<script" in text or "http://" in text.replace('xmlns="http://www.w3.org/2000/svg"', "") \
            or "https://" in text:
        problems.append("the report is not self-contained (script or external reference)")
    want_cols = ["phase", "duration", "tps", "p50 ms", "p99 ms", "client errors", "reads by new",
                 "mirror lag", "shadow mismatches", "pause at flip", "check"]
    for c in want_cols:
        if c not in p.headers:
            problems.append(f"table header lacks {c!r}: {p.headers}")
    names = [r[0] for r in p.rows]
    want = [f"{i} {n}" for i, n in enumerate(PHASES, 1)]
    if names != want:
        problems.append(f"phase rows {names}, want {want}")
    col = {c: p.headers.index(c) for c in want_cols if c in p.headers}
    for r in p.rows:
        if len(r) < len(p.headers):
            problems.append(f"short row {r}")
            continue
        if "check" in col and r[col["check"]] != "ok":
            problems.append(f"phase {r[0]}: {r[col['check']]} ({r[-1]})")
        if "client errors" in col and r[col["client errors"]] not in ("0", "-"):
            problems.append(f"phase {r[0]}: client errors {r[col['client errors']]}")
    by_name = {r[0].split(" ", 1)[1]: r for r in p.rows if " " in r[0]}
    # Phases with load have numbers; the flip has a pause; the read shift served reads from new.
    for name in PHASES[2:]:
        r = by_name.get(name)
        if r and "tps" in col and r[col["tps"]] == "-":
            problems.append(f"phase {name}: no client load recorded")
    flip = by_name.get("flip")
    if flip and "pause at flip" in col and not flip[col["pause at flip"]].endswith("ms"):
        problems.append(f"flip row has no pause: {flip}")
    shift = by_name.get("read shift")
    if shift and "reads by new" in col and shift[col["reads by new"]] in ("-", "0"):
        problems.append(f"read shift row: no reads served by new: {shift}")
    if p.svg < 1:
        problems.append("no inline <svg>")
    series = [pts for pts in p.polylines if len(pts.split()) >= 5]
    if len(series) < 4:
        problems.append(f"the SVG has {len(series)} data series with 5+ points, want 4+")
    if p.lines < 10:
        problems.append(f"the SVG has {p.lines} lines (grid, phase boundaries), want 10+")
    legend = " ".join(p.texts)
    for i in range(3, 11):
        if f"{i} {PHASES[i - 1]}" not in legend:
            problems.append(f"the SVG does not name phase {i} {PHASES[i - 1]}")
    return p


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos = 8
    idat = b""
    width = height = depth = ctype = None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype})")
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    bpp = 3 if ctype == 2 else 4
    stride = width * bpp
    rows = []
    prev = bytearray(stride)
    i = 0
    for _ in range(height):
        ftype = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 0xFF
            elif ftype == 2:
                line[x] = (line[x] + b) & 0xFF
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[x] = (line[x] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    pixels = [[tuple(r[x * bpp:x * bpp + 3]) for x in range(0, width, 2)] for r in rows[::2]]
    return width, height, pixels


def close(c, want, tol=40):
    return all(abs(c[i] - want[i]) <= tol for i in range(3))


def screenshot(report, out, problems):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        problems.append("chromium not installed (scripts/install-deps.sh installs it)")
        return
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
               "--no-first-run", f"--screenshot={out}", "--window-size=1200,900",
               "file://" + os.path.abspath(report)]
        if os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if not os.path.exists(out):
        problems.append(f"chromium wrote no screenshot (exit {r.returncode}): {r.stderr[-500:]}")
        return
    size = os.path.getsize(out)
    if size < 20000:
        problems.append(f"screenshot only {size} bytes")
    w, h, px = png_pixels(out)
    if (w, h) != (1200, 900):
        problems.append(f"screenshot is {w}x{h}, want 1200x900")
    colours = {}
    for row in px:
        for c in row:
            colours[c] = colours.get(c, 0) + 1
    total = sum(colours.values())
    top = max(colours.values())
    if len(colours) < 16 or top / total > 0.97:
        problems.append(f"screenshot looks blank: {len(colours)} colours, most common {top / total:.0%}")
    # The chart's own strokes: the first workload (blue) and p99 (red).
    for name, rgb in (("throughput line (blue)", (0x1f, 0x77, 0xb4)), ("p99 line (red)", (0xd6, 0x27, 0x28))):
        n = sum(cnt for c, cnt in colours.items() if close(c, rgb))
        if n < 20:
            problems.append(f"screenshot: the {name} is not visible ({n} pixels)")
    print(f"screenshot {out}: {w}x{h}, {size} bytes, {len(colours)} colours")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pgtandem")
    ap.add_argument("--repo")
    ap.add_argument("--report", help="check this report only (no demo run)")
    ap.add_argument("--screenshot", help="keep the screenshot here")
    args = ap.parse_args()
    problems = []
    tmp = tempfile.mkdtemp(prefix="pgtandem-demo-test.")
    try:
        report = args.report
        if not report:
            if not (args.pgtandem and args.repo):
                ap.error("--pgtandem and --repo, or --report")
            report = os.path.join(tmp, "demo-report.html")
            cmd = [os.path.join(args.repo, "scripts", "demo.sh"), "--quick", "--no-deps", "--no-build",
                   "--pgtandem", args.pgtandem, "--logs", os.path.join(tmp, "logs"), "--report", report]
            print("$", " ".join(cmd), flush=True)
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                problems.append(f"scripts/demo.sh --quick exited {r.returncode}")
        if not os.path.exists(report):
            problems.append(f"no report at {report}")
        else:
            p = check_html(report, problems)
            print(f"report {report}: {len(p.rows)} phase rows, {len(p.polylines)} SVG series")
            png = args.screenshot or os.path.join(tmp, "report.png")
            screenshot(report, png, problems)
    finally:
        if problems:
            print(f"kept {tmp} (logs, report)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    for pr in problems:
        print("FAIL:", pr)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
