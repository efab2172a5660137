#!/usr/bin/env python3
"""Capture real PostgreSQL 15 wire traffic for the protocol/ unit tests.

Starts a throwaway cluster (initdb as the unprivileged `postgres` user when run as root), then:

  sessions: real clients (psql, pgbench, libpq through ctypes, a raw protocol client) talk to the
            server through a relay that records both directions. For each session NAME it writes
            NAME.fe.bin (client->server bytes) and NAME.be.bin (server->client bytes).
  probes:   malformed or unusual input sent straight to the server; PROBE.fe.bin holds what was
            sent and PROBE.be.bin everything the server answered before it closed the connection.
            The tests compare protocol/errors.cc against these answers.

Usage: capture.py [--pg-bin /usr/lib/postgresql/15/bin] [--out DIR] [--keep]
"""

import argparse
import ctypes
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# ------------------------------------------------------------------------------------------------
# Throwaway cluster


class Cluster:
    def __init__(self, pg_bin, root):
        self.pg_bin = pg_bin
        self.root = root
        self.data = os.path.join(root, "data")
        self.sock = os.path.join(root, "sock")
        self.port = free_port()

    def _run(self, *args, **kw):
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        return subprocess.run(cmd, check=True, **kw)

    def start(self):
        os.makedirs(self.sock, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        self._run(os.path.join(self.pg_bin, "initdb"), "-D", self.data, "--auth=trust",
                  "-U", "postgres", stdout=subprocess.DEVNULL)
        conf = f"""
port = {self.port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{self.sock}'
fsync = off
shared_buffers = 16MB
wal_level = logical
max_wal_senders = 4
max_replication_slots = 4
lc_messages = 'C'
"""
        hba = """
local all all trust
host all md5user 127.0.0.1/32 md5
host all scramuser 127.0.0.1/32 scram-sha-256
host all pwuser 127.0.0.1/32 password
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""
        self._write(os.path.join(self.data, "postgresql.conf"), conf, append=True)
        self._write(os.path.join(self.data, "pg_hba.conf"), hba)
        self._run(os.path.join(self.pg_bin, "pg_ctl"), "-D", self.data, "-l",
                  os.path.join(self.root, "log"), "-w", "start", stdout=subprocess.DEVNULL)
        self.psql("-c", "set password_encryption='md5'; create user md5user password 'md5pw';"
                  " set password_encryption='scram-sha-256';"
                  " create user scramuser password 'scrampw'; create user pwuser password 'plainpw';")

    def stop(self):
        self._run(os.path.join(self.pg_bin, "pg_ctl"), "-D", self.data, "-m", "fast", "stop",
                  stdout=subprocess.DEVNULL)

    def _write(self, path, text, append=False):
        with open(path, "a" if append else "w") as f:
            f.write(text)

    def psql(self, *args):
        subprocess.run([os.path.join(self.pg_bin, "psql"), "-X", "-q", "-h", self.sock, "-p",
                        str(self.port), "-U", "postgres", "-d", "postgres"] + list(args),
                       check=True, stdout=subprocess.DEVNULL)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------------------------------------
# Recording relay


class Relay:
    """Accepts connections on an ephemeral port and relays each to the server, recording bytes."""

    def __init__(self, server_port):
        self.server_port = server_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.sessions = []  # [fe bytearray, be bytearray, threads]
        self.stop = False
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        self.listener.settimeout(0.2)
        while not self.stop:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            server = socket.create_connection(("127.0.0.1", self.server_port))
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fe, be = bytearray(), bytearray()
            t1 = threading.Thread(target=self._pump, args=(client, server, fe), daemon=True)
            t2 = threading.Thread(target=self._pump, args=(server, client, be), daemon=True)
            self.sessions.append((fe, be, (t1, t2)))
            t1.start()
            t2.start()

    @staticmethod
    def _pump(src, dst, log):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                log.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def finish(self):
        deadline = time.time() + 10
        for _, _, threads in self.sessions:
            for t in threads:
                t.join(max(0.0, deadline - time.time()))
        self.stop = True
        self.acceptor.join()
        self.listener.close()
        return [(bytes(fe), bytes(be)) for fe, be, _ in self.sessions]


def save(out, name, fe, be):
    with open(os.path.join(out, name + ".fe.bin"), "wb") as f:
        f.write(fe)
    with open(os.path.join(out, name + ".be.bin"), "wb") as f:
        f.write(be)
    print(f"{name:28s} fe={len(fe):6d} be={len(be):6d}")


def record(cluster, out, name, client):
    relay = Relay(cluster.port)
    client(relay.port)
    sessions = relay.finish()
    for i, (fe, be) in enumerate(sessions):
        save(out, name if i == 0 else f"{name}_{i}", fe, be)


# ------------------------------------------------------------------------------------------------
# Clients


def run(cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def psql_client(pg_bin, script, user="postgres", sslmode="disable", password=None):
    def client(port):
        env = dict(os.environ, PGSSLMODE=sslmode, PGGSSENCMODE="disable",
                   PGAPPNAME="capture")
        if password:
            env["PGPASSWORD"] = password
        run([os.path.join(pg_bin, "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(port),
             "-U", user, "-d", "postgres", "-v", "ON_ERROR_STOP=0", "-f", "-"],
            input=script.encode(), env=env, stderr=subprocess.DEVNULL)
    return client


SIMPLE_SQL = r"""
SET application_name = 'capture_simple';
SELECT 1 AS one, NULL::text AS nul, ''::text AS empty, 'x' AS s, 2.5::numeric AS n;
SELECT g, repeat('ab', g) FROM generate_series(1, 12) g;
DO $$ BEGIN RAISE NOTICE 'hello from %', 'capture' USING DETAIL = 'a detail', HINT = 'a hint'; END $$;
SELECT 1/0;
SELECT * FROM no_such_table WHERE x = 1;
CREATE TEMP TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5) g;
UPDATE t SET v = 'u' WHERE id <= 3;
DELETE FROM t WHERE id = 5;
BEGIN;
INSERT INTO t VALUES (10, 'ten');
SELECT count(*) FROM t;
INSERT INTO t VALUES (10, 'dup');
ROLLBACK;
LISTEN capture_channel;
NOTIFY capture_channel, 'payload one';
SELECT pg_notify('capture_channel', 'payload two');
SELECT 'multi' AS a; SELECT 'statement' AS b;
"""

COPY_SQL = r"""
CREATE TEMP TABLE c (a int, b text, d bytea);
COPY c FROM STDIN;
1	one	\\x0102
2	\N	\\x
3	three	\N
\.
COPY c TO STDOUT;
COPY c TO STDOUT (FORMAT csv, HEADER);
COPY (SELECT a, b FROM c ORDER BY a) TO STDOUT (FORMAT binary);
COPY c FROM STDIN (FORMAT csv);
4,four,\x04
\.
COPY c FROM STDIN;
not_an_int	x	\N
\.
SELECT count(*) FROM c;
"""

PGBENCH_SCRIPT = r"""
\set id random(1, 5)
SELECT :id::int AS id, repeat('x', :id) AS pad;
INSERT INTO bench_t VALUES (:id, 'row');
UPDATE bench_t SET v = 'upd' WHERE id = :id;
"""


def pgbench_client(pg_bin, mode):
    def client(port):
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write(PGBENCH_SCRIPT)
            path = f.name
        os.chmod(path, 0o644)
        env = dict(os.environ, PGSSLMODE="disable", PGGSSENCMODE="disable")
        run([os.path.join(pg_bin, "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(port), "-U",
             "postgres", "-M", mode, "-c", "1", "-t", "3", "-f", path, "postgres"], env=env,
            stderr=subprocess.DEVNULL)
        os.unlink(path)
    return client


class PGArgBlock(ctypes.Structure):
    class _U(ctypes.Union):
        _fields_ = [("ptr", ctypes.c_void_p), ("integer", ctypes.c_int)]
    _fields_ = [("len", ctypes.c_int), ("isint", ctypes.c_int), ("u", _U)]


def libpq_client(port):
    """Extended protocol with binary parameters and results, pipelining, fast-path call."""
    pq = ctypes.CDLL("libpq.so.5")
    pq.PQconnectdb.restype = ctypes.c_void_p
    pq.PQconnectdb.argtypes = [ctypes.c_char_p]
    pq.PQexecParams.restype = ctypes.c_void_p
    pq.PQexecParams.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_char_p),
                                ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int),
                                ctypes.c_int]
    pq.PQprepare.restype = ctypes.c_void_p
    pq.PQprepare.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                             ctypes.POINTER(ctypes.c_uint)]
    pq.PQexecPrepared.restype = ctypes.c_void_p
    pq.PQexecPrepared.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                  ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_int),
                                  ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    pq.PQdescribePrepared.restype = ctypes.c_void_p
    pq.PQdescribePrepared.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    pq.PQexec.restype = ctypes.c_void_p
    pq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    pq.PQgetvalue.restype = ctypes.c_char_p
    pq.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    pq.PQclear.argtypes = [ctypes.c_void_p]
    pq.PQfinish.argtypes = [ctypes.c_void_p]
    pq.PQstatus.argtypes = [ctypes.c_void_p]
    pq.PQfn.restype = ctypes.c_void_p
    pq.PQfn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                        ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.POINTER(PGArgBlock),
                        ctypes.c_int]
    for name in ("PQenterPipelineMode", "PQexitPipelineMode", "PQpipelineSync"):
        getattr(pq, name).argtypes = [ctypes.c_void_p]
    pq.PQsendQueryParams.argtypes = pq.PQexecParams.argtypes
    pq.PQgetResult.restype = ctypes.c_void_p
    pq.PQgetResult.argtypes = [ctypes.c_void_p]

    conn = pq.PQconnectdb(f"host=127.0.0.1 port={port} user=postgres dbname=postgres "
                          f"sslmode=disable gssencmode=disable application_name=capture_libpq"
                          .encode())
    if pq.PQstatus(conn) != 0:
        raise RuntimeError("libpq connect failed")

    def params(values):
        n = len(values)
        vals = (ctypes.c_char_p * n)(*[v for v, _ in values])
        lens = (ctypes.c_int * n)(*[len(v) if v is not None else 0 for v, _ in values])
        fmts = (ctypes.c_int * n)(*[f for _, f in values])
        return n, vals, lens, fmts

    # Binary int4, int8, bytea, a text param and a NULL; binary results.
    n, vals, lens, fmts = params([(struct.pack("!i", 42), 1), (struct.pack("!q", -7), 1),
                                  (b"\x00\x01\xff", 1), (b"text value", 0), (None, 1)])
    oids = (ctypes.c_uint * n)(23, 20, 17, 25, 25)
    pq.PQclear(pq.PQexecParams(conn, b"SELECT $1::int4 + 1, $2::int8, $3::bytea, $4::text, $5",
                               n, oids, vals, lens, fmts, 1))
    # Named prepared statement, described, executed twice (text and binary results).
    ptypes = (ctypes.c_uint * 2)(23, 25)
    pq.PQclear(pq.PQprepare(conn, b"stmt1", b"SELECT $1 * 2 AS doubled, upper($2) AS up", 2,
                            ptypes))
    pq.PQclear(pq.PQdescribePrepared(conn, b"stmt1"))
    for fmt in (0, 1):
        n, vals, lens, fmts = params([(struct.pack("!i", 21), 1), (b"abc", 0)])
        pq.PQclear(pq.PQexecPrepared(conn, b"stmt1", n, vals, lens, fmts, fmt))
    # An error inside the extended protocol (skips to Sync).
    pq.PQclear(pq.PQexecParams(conn, b"SELECT 1/$1::int", 1, None,
                               (ctypes.c_char_p * 1)(b"0"), None, None, 0))
    # Pipeline: several Parse/Bind/Describe/Execute before one Sync.
    pq.PQenterPipelineMode(conn)
    for i in range(3):
        v = (ctypes.c_char_p * 1)(str(i).encode())
        pq.PQsendQueryParams(conn, b"SELECT $1::int AS i, now() IS NOT NULL", 1, None, v, None,
                             None, 0)
    pq.PQpipelineSync(conn)
    for _ in range(3):  # each query's results end with a NULL
        r = pq.PQgetResult(conn)
        while r is not None:
            pq.PQclear(r)
            r = pq.PQgetResult(conn)
    pq.PQclear(pq.PQgetResult(conn))  # the PGRES_PIPELINE_SYNC result
    pq.PQexitPipelineMode(conn)
    # Fast-path function call: int4pl(40, 2).
    res = pq.PQexec(conn, b"SELECT 'int4pl'::regproc::oid")
    fnoid = int(pq.PQgetvalue(res, 0, 0))
    pq.PQclear(res)
    args = (PGArgBlock * 2)()
    for i, v in enumerate((40, 2)):
        args[i].len = 4
        args[i].isint = 1
        args[i].u.integer = v
    out = ctypes.c_int(0)
    outlen = ctypes.c_int(0)
    pq.PQclear(pq.PQfn(conn, fnoid, ctypes.byref(out), ctypes.byref(outlen), 1, args, 2))
    pq.PQfinish(conn)


# Raw protocol client: what libraries rarely send.


def msg(t, body=b""):
    return t + struct.pack("!i", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def startup(params, version=(3, 0)):
    body = struct.pack("!HH", *version)
    for k, v in params:
        body += cstr(k) + cstr(v)
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def read_until(sock, pred, timeout=5.0):
    """Reads from sock until pred(buf) or EOF; returns (buf, eof)."""
    buf = bytearray()
    sock.settimeout(timeout)
    while not pred(buf):
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return bytes(buf), False
        if not data:
            return bytes(buf), True
        buf.extend(data)
    return bytes(buf), False


def backend_types(buf):
    types, pos = [], 0
    while pos + 5 <= len(buf):
        (n,) = struct.unpack("!i", buf[pos + 1:pos + 5])
        if pos + 1 + n > len(buf):
            break
        types.append(chr(buf[pos]))
        pos += 1 + n
    return types


def first_value(buf):
    """The first column of the first DataRow in buf, as an int."""
    pos = 0
    while buf[pos:pos + 1] != b"D":
        pos += 1 + struct.unpack("!i", buf[pos + 1:pos + 5])[0]
    (n,) = struct.unpack("!i", buf[pos + 7:pos + 11])
    return int(buf[pos + 11:pos + 11 + n])


def ends_with_ready(buf):
    return backend_types(buf)[-1:] == ["Z"]


def raw_client(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exchange(data):
        s.sendall(data)
        read_until(s, ends_with_ready)

    exchange(startup([("user", "postgres"), ("database", "postgres"),
                      ("application_name", "capture_raw"), ("client_encoding", "UTF8")]))
    exchange(msg(b"Q", cstr("")))  # EmptyQueryResponse
    exchange(msg(b"Q", cstr("CREATE TEMP TABLE r (id int, v text); "
                            "INSERT INTO r SELECT g, 'v' || g FROM generate_series(1, 5) g")))
    # Named statement with a declared parameter type, described; a named portal run with a row
    # limit (PortalSuspended), then to the end.
    exchange(msg(b"P", cstr("s1") + cstr("SELECT id, v FROM r WHERE id >= $1 ORDER BY id") +
                 struct.pack("!hI", 1, 23)) +
             msg(b"D", b"S" + cstr("s1")) +
             msg(b"B", cstr("p1") + cstr("s1") + struct.pack("!hh", 1, 1) +
                 struct.pack("!h", 1) + struct.pack("!i", 4) + struct.pack("!i", 2) +
                 struct.pack("!hh", 1, 0)) +
             msg(b"D", b"P" + cstr("p1")) +
             msg(b"E", cstr("p1") + struct.pack("!i", 2)) +
             msg(b"E", cstr("p1") + struct.pack("!i", 0)) +
             msg(b"C", b"P" + cstr("p1")) +
             msg(b"C", b"S" + cstr("s1")) +
             msg(b"S"))
    # A statement without result rows (NoData) and a Flush before Sync.
    exchange(msg(b"P", cstr("") + cstr("UPDATE r SET v = $1 WHERE id = $2") +
                 struct.pack("!h", 0)) +
             msg(b"B", cstr("") + cstr("") + struct.pack("!h", 0) + struct.pack("!h", 2) +
                 struct.pack("!i", 3) + b"new" + struct.pack("!i", -1) + struct.pack("!h", 0)) +
             msg(b"D", b"P" + cstr("")) +
             msg(b"E", cstr("") + struct.pack("!i", 0)) +
             msg(b"H"))
    exchange(msg(b"S"))
    # COPY FROM STDIN aborted with CopyFail.
    s.sendall(msg(b"Q", cstr("COPY r FROM STDIN")))
    read_until(s, lambda b: "G" in backend_types(b))
    exchange(msg(b"d", b"9\tnine\n") + msg(b"f", cstr("client gave up")))
    # Fast-path FunctionCall with binary args and result: int4pl(40, 2) = 42.
    s.sendall(msg(b"Q", cstr("SELECT 'int4pl'::regproc::oid::int")))
    buf, _ = read_until(s, ends_with_ready)
    fnoid = first_value(buf)
    exchange(msg(b"F", struct.pack("!I", fnoid) + struct.pack("!hh", 1, 1) +
                 struct.pack("!h", 2) + struct.pack("!ii", 4, 40) + struct.pack("!ii", 4, 2) +
                 struct.pack("!h", 1)))
    s.sendall(msg(b"X"))
    read_until(s, lambda b: False, timeout=2)
    s.close()


def replication_client(port):
    """Logical replication: CopyBothResponse and XLogData CopyData."""
    s = socket.create_connection(("127.0.0.1", port))

    def exchange(data):
        s.sendall(data)
        return read_until(s, ends_with_ready)[0]

    exchange(startup([("user", "postgres"), ("database", "postgres"),
                      ("replication", "database")]))
    exchange(msg(b"Q", cstr("CREATE_REPLICATION_SLOT capture_slot TEMPORARY LOGICAL "
                            "test_decoding")))
    s.sendall(msg(b"Q", cstr("START_REPLICATION SLOT capture_slot LOGICAL 0/0")))
    read_until(s, lambda b: "W" in backend_types(b))
    subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(CLUSTER_PORT), "-U",
                    "postgres", "-c", "CREATE TABLE IF NOT EXISTS repl_t(a int); "
                    "INSERT INTO repl_t VALUES (1)"], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PGSSLMODE="disable"))
    read_until(s, lambda b: b.count(b"COMMIT") >= 1, timeout=5)
    # Standby status update (CopyData 'r'), then CopyDone; the server ends the stream.
    s.sendall(msg(b"d", b"r" + struct.pack("!qqqqB", 0, 0, 0, 0, 0)) + msg(b"c"))
    read_until(s, ends_with_ready)
    s.sendall(msg(b"X"))
    read_until(s, lambda b: False, timeout=2)
    s.close()


CLUSTER_PORT = 0  # the server itself, for the second connection of replication_client


# ------------------------------------------------------------------------------------------------
# Probes: what the server answers to bad input.


def probe(port, name, out, steps, unix_dir=None):
    """steps: list of bytes to send; between steps wait briefly for the server's answer."""
    if unix_dir:
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(unix_dir, f".s.PGSQL.{port}"))
    else:
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sent = bytearray()
    got = bytearray()
    eof = False
    for i, data in enumerate(steps):
        try:
            s.sendall(data)
        except OSError:
            break
        sent.extend(data)
        last = i == len(steps) - 1
        buf, eof = read_until(s, (lambda b: False) if last else
                              (lambda b: len(b) > 0 and (b == b"N" or ends_with_ready(b)
                                                         or "R" in backend_types(b))),
                              timeout=3.0 if last else 2.0)
        got.extend(buf)
        if eof:
            break
    s.close()
    save(out, "probe_" + name, bytes(sent), bytes(got))
    if not eof:
        print(f"  (probe_{name}: connection still open after timeout)")


def probes(port, unix_dir, out):
    user = [("user", "postgres"), ("database", "postgres")]
    ready = startup(user)
    probe(port, "unknown_type", out, [ready, msg(b"Z", b"")])
    probe(port, "unknown_type_high", out, [ready, b"\xff\0\0\0\4"])
    probe(port, "length_too_small", out, [ready, b"Q\0\0\0\3"])
    probe(port, "length_negative", out, [ready, b"Q\xff\xff\xff\xff"])
    probe(port, "sync_too_large", out, [ready, b"S" + struct.pack("!i", 10001)])
    probe(port, "close_at_cap", out, [ready, msg(b"C", b"X" + b"\0" * 9995) + msg(b"S")])
    probe(port, "query_over_small_cap", out, [ready, msg(b"Q", cstr("SELECT 1" + " " * 10000))])
    probe(port, "startup_length_7", out, [struct.pack("!i", 7) + b"\0\3\0"])
    probe(port, "startup_length_10005", out, [struct.pack("!ii", 10005, 3 << 16)])
    # The largest startup packet the server accepts: length word 10004 (body of 10000 bytes).
    # search_path is not reported back in a ParameterStatus, which keeps the answer small.
    body = struct.pack("!HH", 3, 0) + cstr("user") + cstr("postgres") + cstr("search_path")
    body += cstr("a" * (10000 - len(body) - 2)) + b"\0"
    assert len(body) == 10000
    probe(port, "startup_length_10004", out, [struct.pack("!i", len(body) + 4) + body, msg(b"X")])
    # "user\0postgres\0" with the packet's final terminator missing.
    probe(port, "startup_no_terminator", out,
          [struct.pack("!iHH", 22, 3, 0) + cstr("user") + cstr("postgres")])
    probe(port, "startup_no_user", out, [startup([("database", "postgres")])])
    probe(port, "startup_empty_user", out, [startup([("user", ""), ("database", "postgres")])])
    probe(port, "startup_protocol_2", out, [startup(user, (2, 0))])
    probe(port, "startup_protocol_4", out, [startup(user, (4, 1))])
    probe(port, "startup_negotiate", out,
          [startup(user + [("_pq_.some_option", "on"), ("_pq_.other", "x")], (3, 7)),
           msg(b"X")])
    probe(port, "startup_bad_replication", out, [startup(user + [("replication", "maybe")])])
    ssl = struct.pack("!ii", 8, (1234 << 16) | 5679)
    gss = struct.pack("!ii", 8, (1234 << 16) | 5680)
    probe(port, "ssl_piggyback", out, [ssl + ready])
    probe(port, "ssl_twice", out, [ssl, ssl])
    probe(port, "ssl_then_startup", out, [ssl, ready, msg(b"X")])
    # Over TCP a GSSAPI-enabled build answers 'G'; on a Unix socket it answers 'N' (what a proxy
    # without GSSAPI encryption answers).
    probe(port, "gss_piggyback", out, [gss + ready], unix_dir)
    probe(port, "gss_then_ssl_then_startup", out, [gss, ssl, ready, msg(b"X")], unix_dir)
    probe(port, "gss_twice", out, [gss, gss], unix_dir)
    probe(port, "cancel_bad_key", out, [struct.pack("!iiii", 16, (1234 << 16) | 5678, 1, 2)])
    probe(port, "cancel_short", out, [struct.pack("!iii", 12, (1234 << 16) | 5678, 1)])
    pw = [("user", "md5user"), ("database", "postgres")]
    probe(port, "auth_md5_wrong_type", out, [startup(pw), msg(b"Q", cstr("SELECT 1"))])
    probe(port, "auth_md5_too_large", out, [startup(pw), b"p" + struct.pack("!i", 65536)])
    probe(port, "auth_scram_wrong_type", out,
          [startup([("user", "scramuser"), ("database", "postgres")]), msg(b"Q", cstr("x"))])
    probe(port, "auth_scram_too_large", out,
          [startup([("user", "scramuser"), ("database", "postgres")]),
           b"p" + struct.pack("!i", 1025)])
    probe(port, "password_after_auth", out, [ready, msg(b"p", cstr("secret"))])


# ------------------------------------------------------------------------------------------------


def main():
    global CLUSTER_PORT
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg-bin", default="/usr/lib/postgresql/15/bin")
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = ap.parse_args()

    root = tempfile.mkdtemp(prefix="pgtandem-capture-")
    os.chmod(root, 0o755)
    cluster = Cluster(args.pg_bin, root)
    cluster.start()
    CLUSTER_PORT = cluster.port
    try:
        cluster.psql("-c", "CREATE TABLE bench_t (id int, v text)")
        pg = args.pg_bin
        record(cluster, args.out, "simple_query", psql_client(pg, SIMPLE_SQL))
        record(cluster, args.out, "copy", psql_client(pg, COPY_SQL))
        record(cluster, args.out, "pgbench_prepared", pgbench_client(pg, "prepared"))
        record(cluster, args.out, "pgbench_extended", pgbench_client(pg, "extended"))
        record(cluster, args.out, "libpq_binary", libpq_client)
        record(cluster, args.out, "raw_extended", raw_client)
        record(cluster, args.out, "replication", replication_client)
        record(cluster, args.out, "auth_md5",
               psql_client(pg, "SELECT current_user;", "md5user", password="md5pw"))
        record(cluster, args.out, "auth_scram",
               psql_client(pg, "SELECT current_user;", "scramuser", sslmode="prefer",
                           password="scrampw"))
        record(cluster, args.out, "auth_password",
               psql_client(pg, "SELECT current_user;", "pwuser", password="plainpw"))
        probes(cluster.port, cluster.sock, args.out)
    finally:
        if not args.keep:
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)
        else:
            print("cluster left running in", root, "port", cluster.port)


if __name__ == "__main__":
    sys.exit(main())
