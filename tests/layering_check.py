#!/usr/bin/env python3
"""Layering check: protocol <- config <- policy <- proxy.

protocol/, config/ and policy/ are pure: no Asio or Boost, no socket or I/O-library headers, no
proxy/ header. protocol/ includes neither config/ nor policy/; config/ does not include policy/.
Every violation is printed as file:line: reason; the exit status is 1 if there is any.

One exception, on purpose: <arpa/inet.h>, for inet_pton/inet_ntop (text <-> address bytes, no
socket): config/ validates listen addresses and CIDRs with it, policy/route matches client CIDRs.

  tests/layering_check.py [--root REPO] [--extra-file PATH:AS ...] [--expect-problems N]

--extra-file checks one more file as if it lived at AS (e.g. policy/x.cc): how the test proves
it catches a bad include without touching the tree.
"""
import argparse
import os
import re
import sys

PURE = ("protocol", "config", "policy")
SOURCE_SUFFIXES = (".h", ".hh", ".hpp", ".cc", ".cpp", ".cxx", ".ipp", ".inc")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')

# (pattern on the included path, reason). Checked for every pure library.
BANNED = [
    (re.compile(r"^(asio|boost)(/|\.hpp$|$)"), "Asio/Boost in a pure library"),
    (re.compile(r"^sys/socket\.h$"), "socket header in a pure library"),
    (re.compile(r"^sys/un\.h$"), "socket header in a pure library"),
    (re.compile(r"^netinet/"), "socket header in a pure library"),
    (re.compile(r"^netdb\.h$"), "socket header in a pure library"),
    (re.compile(r"^arpa/(?!inet\.h$)"), "socket header in a pure library"),
    (re.compile(r"^liburing"), "io_uring in a pure library"),
    (re.compile(r"^(postgresql/)?libpq-fe\.h$"), "libpq in a pure library"),
    (re.compile(r"^(openssl|sys/epoll\.h$)"), "I/O library in a pure library"),
    (re.compile(r"^proxy/"), "proxy/ header in a pure library (proxy depends on it, not back)"),
]
# Upward includes between the pure libraries.
UPWARD = {
    "protocol": ("config/", "policy/"),
    "config": ("policy/",),
    "policy": (),
}


def check_file(path, as_path, problems):
    library = as_path.split("/", 1)[0]
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            included = m.group(2).strip()
            for pattern, reason in BANNED:
                if pattern.search(included):
                    problems.append(f"{as_path}:{number}: includes {included}: {reason}")
            for prefix in UPWARD[library]:
                if included.startswith(prefix):
                    problems.append(
                        f"{as_path}:{number}: includes {included}: {library}/ must not depend on "
                        f"{prefix} (layering: protocol <- config <- policy <- proxy)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("--extra-file", action="append", default=[])
    parser.add_argument("--expect-problems", type=int, default=0,
                        help="exit 0 only if exactly this many problems are found (self-test)")
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    problems = []
    checked = 0
    for library in PURE:
        base = os.path.join(root, library)
        if not os.path.isdir(base):
            problems.append(f"{library}/: missing (run from the repository, or pass --root)")
            continue
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if not name.endswith(SOURCE_SUFFIXES):
                    continue
                full = os.path.join(dirpath, name)
                check_file(full, os.path.relpath(full, root), problems)
                checked += 1
    for extra in args.extra_file:
        path, _, as_path = extra.rpartition(":")
        if as_path.split("/", 1)[0] not in PURE:
            sys.exit(f"--extra-file {extra}: AS must be under {', '.join(PURE)}")
        check_file(path, as_path, problems)
        checked += 1
    for p in problems:
        print(p)
    print(f"layering check: {checked} files, {len(problems)} problem(s)")
    if args.expect_problems:
        print(f"expected {args.expect_problems} problem(s)")
    return 0 if len(problems) == args.expect_problems else 1


if __name__ == "__main__":
    sys.exit(main())
