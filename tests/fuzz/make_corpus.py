#!/usr/bin/env python3
"""Writes the checked-in seed corpus of every fuzz target: tests/fuzz/corpus/<target>/.

Usage: make_corpus.py [OUT_DIR]     (default: tests/fuzz/corpus next to this script)

Deterministic; rerun it after changing an input format (see each fuzz_<target>.cc header) and
commit the result. Sources: the captured sessions in tests/unit/protocol/data (fuzz_protocol,
through make_seeds.py, and fuzz_write_capture), examples/*.toml, the TOML blocks of docs/*.md and
tests/unit/config/data (fuzz_config), RFC 7677's SCRAM exchange (fuzz_scram_server, fuzz_userlist)
and journal lines in format_journal_line's format (fuzz_journal). Small on purpose: libFuzzer
grows the corpus from these in its working copy (scripts/fuzz.sh).
"""
import base64
import json
import os
import re
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import make_seeds  # noqa: E402  (the stream helpers and the full fuzz_protocol seed set)

MAX_SEED = 4096  # bytes of a capture kept in one seed


def msg(t, body=b""):
    return t.encode() + struct.pack("!i", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


# ------------------------------------------------------------------------------------------------
# fuzz_protocol: a few seeds of each mode from the captures (make_seeds.py makes them all).

def protocol_seeds():
    out = []
    data = make_seeds.DATA
    bodies = {}
    for name in sorted(os.listdir(data)):
        if not name.endswith(".fe.bin"):
            continue
        base = name[:-len(".fe.bin")]
        fe = open(os.path.join(data, name), "rb").read()
        be = open(os.path.join(data, base + ".be.bin"), "rb").read()
        skip, answers = make_seeds.startup_len(fe)
        if re.search(r"startup|ssl|gss|cancel|replication|simple_query", base):
            out.append((base + "_startup", bytes([2, 0]) + fe[:max(skip, 8)]))
        if base.startswith("probe_") or base.endswith("_1"):
            continue
        out.append((base + "_fe", bytes([0, 0x21]) + fe[skip:skip + MAX_SEED]))
        out.append((base + "_be", bytes([1, 0x0f]) + be[answers:answers + MAX_SEED]))
        for stream in (fe[skip:], be[answers:]):
            pos = 0
            while len(stream) - pos >= 5:
                (length,) = struct.unpack("!i", stream[pos + 1:pos + 5])
                if length < 4 or pos + 1 + length > len(stream):
                    break
                t = stream[pos:pos + 1]
                if t not in bodies and length <= MAX_SEED:
                    bodies[t] = stream[pos + 5:pos + 1 + length]
                pos += 1 + length
    for t, body in sorted(bodies.items()):
        out.append(("body_%02x" % t[0], bytes([3, t[0]]) + body))
    return out


# ------------------------------------------------------------------------------------------------
# fuzz_config: whole TOML files.

def config_seeds():
    out = []
    for d in ("examples", os.path.join("tests", "unit", "config", "data")):
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            if name.endswith(".toml"):
                out.append((name[:-5], open(os.path.join(ROOT, d, name), "rb").read()))
    targets = b'[targets.old]\nhost = "127.0.0.1"\nport = 5432\n[targets.new]\nport = 5433\n'
    for name in sorted(os.listdir(os.path.join(ROOT, "docs"))):
        if not name.endswith(".md"):
            continue
        text = open(os.path.join(ROOT, "docs", name), encoding="utf-8").read()
        for i, block in enumerate(re.findall(r"```toml\n(.*?)```", text, re.S)):
            block = block.encode()
            if b"[targets." not in block:
                block = targets + block
            out.append(("%s_%d" % (name[:-3], i), block))
    # fuzz_config's first finding (tests/unit/config/toml_unicode_test.cc): U+FCFF before a key.
    out.append(("toml_u_fcff", b"\xef\xb3\xbfrg[tc%ts   #  "))
    return out


# ------------------------------------------------------------------------------------------------
# fuzz_userlist: hand-written userlists.

RFC_VERIFIER = ("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
                "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=")


def userlist_seeds():
    md5 = "md5" + "0123456789abcdef" * 2
    return [
        ("scram", ('"user" "%s"\n' % RFC_VERIFIER).encode()),
        ("mixed", ('; pgbouncer auth_file\n"alice" "%s"\n"bob" "%s"\n# comment\n\n'
                   '"carol" "plain password"\n' % (RFC_VERIFIER, md5)).encode()),
        ("quotes", b'"we""ird" "pa""ss"\r\n  \t"x" \t "y"  \r\n'),
        ("errors", b'"a" "b" extra\n"unterminated\n"" "empty"\n"a" "dup"\n"c"\n'),
        ("bad_scram", b'"u" "SCRAM-SHA-256$0:AA==$AA==:AA=="\n'),
        ("verifier", RFC_VERIFIER.encode()),
        ("nul", b'"a" "b\0"\n'),
    ]


# ------------------------------------------------------------------------------------------------
# fuzz_scram_server: flags, length of the client-first, client-first, client-final.

RFC_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
             b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")


def scram_seeds():
    def seed(flags, first, final):
        return bytes([flags, len(first)]) + first + final
    return [
        ("rfc", seed(0, RFC_FIRST, RFC_FINAL)),
        ("rfc_mock", seed(1, RFC_FIRST, RFC_FINAL)),
        ("repair", seed(2, RFC_FIRST, b"c=,r=,p=")),
        ("repair_ext", seed(2, b"y,,n=,r=abc,x=ext", b"c=eSws,r=abc,x=1,p=AAAA")),
        ("random_nonce", seed(0x12, RFC_FIRST, RFC_FINAL)),
        ("random_fails", seed(0x30, RFC_FIRST, RFC_FINAL)),
        ("plus", seed(4, b"p=tls-server-end-point,,n=,r=x", b"")),
        ("authzid", seed(0, b"n,a=admin,n=,r=x", b"")),
        ("extension", seed(0, b"n,,m=ext,n=,r=x", b"")),
        ("no_data", seed(8, b"", b"")),
        ("final_first", seed(0x40, b"", RFC_FINAL)),
        ("wrong_proof", seed(0, RFC_FIRST, RFC_FINAL[:-5] + b"AAAA=")),
    ]


# ------------------------------------------------------------------------------------------------
# fuzz_journal: mode byte, then a line (0), a file (1) or an entry built field by field (2).

def journal_line(seq, **kw):
    b64 = lambda b: base64.b64encode(b).decode()
    sql = kw.get("sql", "INSERT INTO t VALUES (1)")
    unit = msg("Q", cstr(sql))
    entry = {
        "seq": seq, "ts": "2026-12-06T04:00:00.000Z", "target": kw.get("target", "new"),
        "reason": kw.get("reason", "mirror_error"), "detail": kw.get("detail", "boom"),
        "uncertain": kw.get("uncertain", False),
        "session": {
            "id": "1733450000-%d" % seq, "user": "app", "database": "shop",
            "params": [["application_name", "psql"], ["client_encoding", "UTF8"]],
            "state": [b64(msg("Q", cstr("SET search_path = app")))] if kw.get("state") else [],
            "prepared": ([["s1", b64(msg("P", cstr("s1") + cstr("UPDATE t SET x = $1")
                                          + b"\0\0"))]] if kw.get("prepared") else []),
        },
        "unit": {
            "bytes": b64(unit), "responses": 1, "primary": [["INSERT 0 1", ""]],
            "binds": ["s1"] if kw.get("prepared") else [], "session_state": False,
            "transaction": kw.get("transaction", False), "nondeterministic": False,
            "first_sql": sql,
        },
    }
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()


def journal_seeds():
    unit = b'"unit":{"bytes":"UwAAAAQ=","responses":1}'
    lines = [
        ("plain", journal_line(1)),
        ("rich", journal_line(42, detail="caf\u00e9 \"quoted\"\n\ttab\x01", state=True,
                              prepared=True, transaction=True, uncertain=True,
                              reason="connection_lost", target="old")),
        ("escapes", b' { "seq" : 7 , "target" : "new" , "detail" : "\\u00e9\\u20ac\\ud83d\\ude00'
                    b'\\/\\b\\f" , ' + unit.replace(b":1}", b':1, "extra":[1,null,{}]}') +
                    b' , "future" : { "x" : [ ] } } '),
        ("minimal", b'{"seq":1,"target":"new",' + unit + b"}"),
        ("dup_key", b'{"seq":1,"seq":2,"target":"new",' + unit + b"}"),
        ("deep", b'{"seq":1,"target":"new","x":[[[[[[[[[[[[]]]]]]]]]]]],' + unit + b"}"),
        ("bad_base64", b'{"seq":1,"target":"new","unit":{"bytes":"UwAAAA=","responses":1}}'),
        ("big_seq", b'{"seq":18446744073709551615,"target":"new",' + unit + b"}"),
    ]
    out = [("line_" + n, b"\0" + l) for n, l in lines]
    out.append(("file", b"\1" + journal_line(1) + b"\n" + journal_line(2, state=True) + b"\n"))
    out.append(("file_torn", b"\1" + journal_line(1) + b"\n" + journal_line(2)[:50]))
    out.append(("file_garbage_last", b"\1" + journal_line(5) + b"\nnot json\n\n"))
    out.append(("file_empty", b"\1"))
    out.append(("built", b"\2" + bytes([0x3f, 0xff] + [0] * 6) + bytes(range(1, 200))))
    return out


# ------------------------------------------------------------------------------------------------
# fuzz_write_capture: options byte, then records (tag, [type], length, body) in session order.

FE_TYPES = "QPBEDSHCdcfFX"
BE_TYPES = "ZCE13G"


def record(backend, t, body):
    table = BE_TYPES if backend else FE_TYPES
    tag = 0x80 if backend else 0
    if t in table:
        tag |= table.index(t)
        head = bytes([tag])
    else:
        head = bytes([tag | 0x40, ord(t)])
    if len(body) > 255:
        return bytes([head[0] | 0x20]) + head[1:] + struct.pack("!H", min(len(body), 65535)) + body
    return head + bytes([len(body)]) + body


def fe_msgs(stream):
    return [(stream[p:p + 1].decode("latin1"), stream[p + 5:p + 1 + n])
            for p, n in iter_frames(stream)]


def iter_frames(stream):
    pos = 0
    while len(stream) - pos >= 5:
        (length,) = struct.unpack("!i", stream[pos + 1:pos + 5])
        if length < 4 or pos + 1 + length > len(stream):
            return
        yield pos, length
        pos += 1 + length


def interleave(fe, be, limit=MAX_SEED):
    """Frontend messages up to each Query/Sync, then the backend's answers up to its
    ReadyForQuery: the order a proxy sees them."""
    out = b""
    f = fe_msgs(fe)
    b = [(t, body) for t, body in fe_msgs(be) if t in BE_TYPES]
    i = j = 0
    while i < len(f) and len(out) < limit:
        while i < len(f):
            t, body = f[i]
            out += record(False, t, body)
            i += 1
            if t in "QSF":
                break
        while j < len(b):
            t, body = b[j]
            out += record(True, t, body)
            j += 1
            if t == "Z":
                break
    return out


def q(sql):
    return record(False, "Q", cstr(sql))


def cc(tag):
    return record(True, "C", cstr(tag))


def z(status):
    return record(True, "Z", status.encode())


def err(code):
    return record(True, "E", b"SERROR\0C" + code.encode() + b"\0Mboom\0\0")


def ext(name, sql, params=()):
    p = record(False, "P", cstr(name) + cstr(sql) + b"\0\0")
    bind = cstr("") + cstr(name) + b"\0\0" + struct.pack("!h", len(params))
    for v in params:
        bind += struct.pack("!i", len(v)) + v
    bind += b"\0\0"
    return (p + record(False, "B", bind) + record(False, "E", cstr("") + b"\0\0\0\0")
            + record(False, "S", b""))


def write_capture_seeds():
    out = [
        ("autocommit", b"\0" + q("INSERT INTO t VALUES (1)") + cc("INSERT 0 1") + z("I")),
        ("read", b"\0" + q("SELECT 1") + cc("SELECT 1") + z("I")),
        ("txn_commit", b"\0" + q("BEGIN") + cc("BEGIN") + z("T") + q("UPDATE t SET x = 1")
         + cc("UPDATE 3") + z("T") + q("SELECT now()") + cc("SELECT 1") + z("T") + q("COMMIT")
         + cc("COMMIT") + z("I")),
        ("txn_rollback", b"\0" + q("BEGIN; DELETE FROM t") + cc("BEGIN") + cc("DELETE 1") + z("T")
         + q("INSERT INTO t VALUES (1/0)") + err("22012") + z("E") + q("ROLLBACK")
         + cc("ROLLBACK") + z("I")),
        ("savepoint", b"\0" + q("BEGIN") + cc("BEGIN") + z("T") + q("SAVEPOINT a") + cc("SAVEPOINT")
         + z("T") + q("INSERT INTO t DEFAULT VALUES") + err("23505") + z("E")
         + q("ROLLBACK TO SAVEPOINT a") + cc("ROLLBACK") + z("T") + q("COMMIT AND CHAIN")
         + cc("COMMIT") + z("T") + q("COMMIT") + cc("COMMIT") + z("I")),
        ("session_state", b"\1" + q("SET search_path = app; PREPARE p AS INSERT INTO t VALUES ($1)")
         + cc("SET") + cc("PREPARE") + z("I") + q("EXECUTE p(1)") + cc("INSERT 0 1") + z("I")
         + q("DEALLOCATE ALL") + cc("DEALLOCATE ALL") + z("I") + q("DISCARD ALL")
         + cc("DISCARD ALL") + z("I")),
        ("extended", b"\2" + ext("", "INSERT INTO t VALUES ($1)", [b"1"])
         + record(True, "1", b"") + record(True, "C", cstr("INSERT 0 1")) + z("I")
         + ext("s1", "UPDATE t SET x = $1", [b"2"]) + record(True, "1", b"") + cc("UPDATE 1")
         + z("I") + record(False, "C", b"Ss1\0") + record(False, "S", b"")
         + record(True, "3", b"") + z("I")),
        ("primary_only", b"\0" + q("SELECT pg_terminate_backend(42)") + cc("SELECT 1") + z("I")
         + q("BEGIN; INSERT INTO t VALUES (1); SELECT pg_cancel_backend(1); COMMIT")
         + cc("BEGIN") + cc("INSERT 0 1") + cc("SELECT 1") + cc("COMMIT") + z("I")),
        ("copy", b"\0" + q("COPY t FROM STDIN") + record(True, "G", b"\0\0\1\0\0")
         + record(False, "d", b"1\n2\n") + record(False, "c", b"") + cc("COPY 2") + z("I")),
        ("function_call", b"\0" + record(False, "F", struct.pack("!ih", 2096, 0) + b"\0\1"
                                         + struct.pack("!i", 2) + b"42\0\0")
         + record(True, "E", b"") + z("I")),
        ("nondeterministic", b"\4" + q("INSERT INTO t VALUES (random(), nextval('s'), f(1))")
         + cc("INSERT 0 1") + z("I")),
        ("error_stream", b"\0" + q("INSERT INTO t VALUES (1)") + bytes([0x80 | 0x10 | 2, 0])
         + z("I")),
    ]
    for base in ("pgbench_extended_1", "pgbench_prepared_1", "copy", "libpq_binary"):
        fe = open(os.path.join(make_seeds.DATA, base + ".fe.bin"), "rb").read()
        be = open(os.path.join(make_seeds.DATA, base + ".be.bin"), "rb").read()
        # The last connection of the capture (pgbench opens several), past its startup packet
        # and, on the backend side, past its login (AuthenticationOk ... ReadyForQuery).
        code = fe.rfind(b"\x00\x03\x00\x00")
        (length,) = struct.unpack("!i", fe[code - 4:code])
        login = be.rfind(b"R\0\0\0\x08\0\0\0\0")
        first_z = be.find(b"Z\0\0\0\5", login)
        out.append(("capture_" + base, b"\0" + interleave(fe[code - 4 + length:], be[first_z + 6:])))
    return out


# ------------------------------------------------------------------------------------------------
# fuzz_answer_match: a control byte (ReadyForQuery count, units, the answer to change), a cut seed,
# then a server's answers.

def answer_match_seeds():
    def cc(tag):
        return msg("C", cstr(tag))

    def err(code):
        return msg("E", b"SERROR\0C" + cstr(code) + b"Mboom\0\0")

    def z(status):
        return msg("Z", status.encode())

    bind = msg("2")
    tpcb = b"".join(bind + cc(t) for t in ["BEGIN", "UPDATE 1", "UPDATE 1", "UPDATE 1",
                                           "INSERT 0 1", "COMMIT"]) + z("I")
    row = msg("D", struct.pack("!hi", 1, 3) + b"abc")
    return [
        ("tpcb_joined", bytes([0x10, 7]) + tpcb),
        ("tpcb_unchanged", bytes([0xf4, 3]) + tpcb),
        ("three_requests", bytes([0x22, 11]) + cc("SET") + z("I") + row + cc("SELECT 1") + z("T") +
         cc("COMMIT") + z("I")),
        ("error_skips_rest", bytes([0x30, 5]) + cc("BEGIN") + err("23505") + z("E")),
        ("no_code", bytes([0x00, 1]) + msg("E", b"Mno code\0\0") + z("I")),
        ("streamed_row", bytes([0x00, 9]) + msg("D", struct.pack("!hi", 1, 9000) + b"x" * 100)),
        ("bad_type", bytes([0x00, 2]) + cc("BEGIN") + b"\x01\0\0\0\5"),
    ]


TARGETS = {
    "fuzz_protocol": protocol_seeds,
    "fuzz_config": config_seeds,
    "fuzz_userlist": userlist_seeds,
    "fuzz_scram_server": scram_seeds,
    "fuzz_journal": journal_seeds,
    "fuzz_write_capture": write_capture_seeds,
    "fuzz_answer_match": answer_match_seeds,
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    total = 0
    for target, make in TARGETS.items():
        d = os.path.join(out, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        seeds = make()
        for name, data in seeds:
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
        print(f"{target}: {len(seeds)} seeds")
    print(f"{total} bytes in {out}")


if __name__ == "__main__":
    main()
