#!/usr/bin/env python3
"""Checks deploy/: the Dockerfile, the Kubernetes manifests, the Prometheus rules and the Grafana
dashboard, against each other and against pgtandem itself.

  check_deploy.py --pgtandem build/proxy/pgtandem [--repo .] [--promtool promtool]

Registered in ctest as deploy_manifests. Exit status 0 when every check passes, 1 otherwise (every
failed check is listed). Needs python3, python3-yaml and promtool (Debian: prometheus).
"""

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

# Prometheus' own series, present for every scrape target: the only name not from proxy/telemetry/metrics.cc.
PROMETHEUS_SERIES = {"up"}
# Being added for issue 6 (shadow mismatches by statement fingerprint); not in metrics.cc yet.
PENDING_METRICS = {"pgtandem_shadow_mismatches_by_fingerprint_total"}
# Images the Dockerfile may build from.
ALLOWED_BASES = {"debian:bookworm", "debian:bookworm-slim"}
# In debian:bookworm-slim already (apt itself needs them).
BASE_IMAGE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}
# Grafana's variables, as the dashboard uses them, replaced for promtool.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
    "${datasource}": "",
    "$job": "pgtandem",
    "$instance": ".*",
}


class Checker:
    def __init__(self):
        self.failures = []
        self.passed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"FAIL: {what}", flush=True)
        return ok


def warn(message):
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Kubernetes helpers


def load_yaml_docs(path, c):
    try:
        with open(path) as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        c.check(False, f"{path}: does not parse as YAML: {e}")
        return []


def selector_matches(match_labels, labels):
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def resolve_port(port, container):
    """A probe's or Service's targetPort (number or name) -> the container's port number."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def container_port(container, name):
    for p in container.get("ports", []):
        if p.get("name") == name:
            return p.get("containerPort")
    return None


def parse_host_port(text):
    m = re.fullmatch(r"(\[[^\]]*\]|[^:]*):(\d+)", text)
    return (m.group(1), int(m.group(2))) if m else (None, None)


def mount_for(path, mounts):
    """The volumeMount whose mountPath contains `path` (longest prefix), or None."""
    best = None
    for m in mounts:
        root = m["mountPath"].rstrip("/")
        if path == root or path.startswith(root + "/"):
            if best is None or len(root) > len(best["mountPath"].rstrip("/")):
                best = m
    return best


def cpu_cores(quantity):
    q = str(quantity)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


# --------------------------------------------------------------------------------------------
# Dockerfile helpers


def dockerfile_instructions(text):
    """[(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def build_packages(install_deps):
    """The packages of the '# build' group of scripts/install-deps.sh."""
    lines = install_deps.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# build")
    packages = []
    for line in lines[start + 1 :]:
        if line.strip().startswith("#") or line.strip().startswith(")"):
            break
        packages += line.split()
    return packages


# --------------------------------------------------------------------------------------------
# PromQL helpers

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
    # Aggregations: "sum by (x) (...)" leaves "sum by" once the label list is gone.
    "sum", "min", "max", "avg", "count", "group", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values",
}


def metric_names(expr):
    """Metric names an expression selects (a small PromQL scanner, enough for our rules)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range and subquery durations
    # Label lists of grouping and matching clauses.
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)
    names = set()
    for m in re.finditer(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])", e):
        name = m.group(1)
        rest = e[m.end() :].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if name.lower() in PROMQL_WORDS:
            continue
        names.add(name)
    return names


def exported_metrics(metrics_cc):
    names = set(re.findall(r'"(pgtandem_[a-z0-9_]+)"', metrics_cc))
    histograms = set(
        re.findall(
            r'MetricFamily\s+\w+\s*\{\s*"(pgtandem_[a-z0-9_]+)"[^;]*?MetricType::Histogram',
            metrics_cc,
        )
    )
    # Histograms built with prometheus-cpp's builder: BuildHistogram().Name("...").
    histograms |= set(re.findall(r'BuildHistogram\(\)\s*\.Name\(\s*"(pgtandem_[a-z0-9_]+)"', metrics_cc))
    for h in histograms:
        names |= {h + "_bucket", h + "_sum", h + "_count"}
    return names, histograms


def promtool_check_rules(promtool, path):
    r = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pgtandem", required=True, help="the pgtandem binary (--check-config)")
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[2]))
    ap.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    args = ap.parse_args()

    repo = Path(args.repo)
    deploy = repo / "deploy"
    k8s_dir = deploy / "kubernetes"
    c = Checker()

    # ---------------------------------------------------------------- every YAML/JSON parses
    yaml_files = sorted(p for p in deploy.rglob("*") if p.suffix in (".yaml", ".yml"))
    c.check(len(yaml_files) >= 7, f"deploy/ has the expected YAML files, found {len(yaml_files)}")
    docs_by_file = {p: load_yaml_docs(p, c) for p in yaml_files}
    for p, docs in docs_by_file.items():
        c.check(len(docs) > 0, f"{p}: is empty")

    # ---------------------------------------------------------------- Kubernetes objects
    objects = {}  # kind -> [object]
    for p in sorted(k8s_dir.glob("*.yaml")):
        if p.name == "kustomization.yaml":
            continue
        for d in docs_by_file.get(p, []):
            ok = isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and (
                d.get("metadata") or {}
            ).get("name")
            if c.check(ok, f"{p.name}: every object has apiVersion, kind and metadata.name"):
                objects.setdefault(d["kind"], []).append((p.name, d))

    kustomization = (docs_by_file.get(k8s_dir / "kustomization.yaml") or [{}])[0]
    resources = kustomization.get("resources", [])
    for r in resources:
        c.check((k8s_dir / r).is_file(), f"kustomization.yaml: resource {r} exists")
    for p in k8s_dir.glob("*.yaml"):
        if p.name in ("kustomization.yaml", "secret.example.yaml"):
            continue
        c.check(p.name in resources, f"kustomization.yaml lists {p.name}")
    c.check("secret.example.yaml" not in resources,
            "kustomization.yaml does not apply the example Secret (placeholder credentials)")

    def one(kind):
        found = objects.get(kind, [])
        c.check(len(found) == 1, f"exactly one {kind} in deploy/kubernetes (found {len(found)})")
        return found[0][1] if found else {}

    dep = one("Deployment")
    svc = one("Service")
    pdb = one("PodDisruptionBudget")
    cm = one("ConfigMap")
    secret = next((d for f, d in objects.get("Secret", []) if f == "secret.example.yaml"), {})

    spec = dep.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    pod_labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    containers = pod.get("containers", [])
    c.check(len(containers) == 1, "the Deployment's pod has one container")
    ctr = next((x for x in containers if x.get("name") == "pgtandem"), containers[0] if containers else {})
    mounts = ctr.get("volumeMounts", [])
    volumes = {v["name"]: v for v in pod.get("volumes", [])}

    c.check(spec.get("replicas") == 3, f"Deployment replicas == 3 (got {spec.get('replicas')})")
    c.check(selector_matches(spec.get("selector", {}).get("matchLabels", {}), pod_labels),
            "Deployment selector matches its pod template's labels")

    # Non-root, read-only root filesystem, no privilege escalation.
    psc = pod.get("securityContext", {})
    c.check(psc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot is true")
    c.check(isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] != 0,
            f"pod runs as a non-root uid (runAsUser {psc.get('runAsUser')})")
    for x in containers + pod.get("initContainers", []):
        sc = x.get("securityContext", {})
        name = x.get("name")
        c.check(sc.get("readOnlyRootFilesystem") is True, f"container {name}: readOnlyRootFilesystem")
        c.check(sc.get("allowPrivilegeEscalation") is False,
                f"container {name}: allowPrivilegeEscalation is false")
        c.check("ALL" in sc.get("capabilities", {}).get("drop", []), f"container {name}: drops ALL capabilities")
        c.check(sc.get("runAsUser", 10001) != 0 and sc.get("runAsNonRoot", True) is not False,
                f"container {name}: does not override runAsNonRoot")
        res = x.get("resources", {})
        c.check("memory" in res.get("requests", {}) and "cpu" in res.get("requests", {})
                and "memory" in res.get("limits", {}),
                f"container {name}: cpu/memory requests and a memory limit")

    # Probes: HTTP on the admin port, /readyz and /healthz.
    admin_port = container_port(ctr, "admin")
    pg_port = container_port(ctr, "postgres")
    c.check(admin_port is not None and pg_port is not None,
            "the container names its ports 'postgres' and 'admin'")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = ctr.get(probe, {}).get("httpGet", {})
        c.check(get.get("path") == path, f"{probe} is an HTTP GET of {path} (got {get.get('path')})")
        c.check(admin_port is not None and resolve_port(get.get("port"), ctr) == admin_port,
                f"{probe} targets the admin port {admin_port} (got {get.get('port')})")

    # Graceful rolling update: preStop sleep, grace period > preStop + drain deadline.
    pre = ctr.get("lifecycle", {}).get("preStop", {})
    pre_cmd = pre.get("exec", {}).get("command", [])
    pre_sleep = 0.0
    if pre_cmd[:1] == ["sleep"] and len(pre_cmd) == 2:
        pre_sleep = float(pre_cmd[1])
    elif "sleep" in pre:
        pre_sleep = float(pre["sleep"].get("seconds", 0))
    c.check(pre_sleep >= 3, f"preStop hook sleeps a few seconds before SIGTERM (got {pre_cmd or pre})")
    grace = pod.get("terminationGracePeriodSeconds", 30)

    # Anti-affinity across nodes for this Deployment's pods.
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    terms = [t.get("podAffinityTerm", t) for t in
             anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
             + anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])]
    c.check(any(t.get("topologyKey") == "kubernetes.io/hostname"
                and selector_matches(t.get("labelSelector", {}).get("matchLabels", {}), pod_labels)
                for t in terms),
            "podAntiAffinity spreads the pods across nodes (kubernetes.io/hostname, own labels)")

    # Service and PDB select the Deployment's pods.
    c.check(selector_matches(svc.get("spec", {}).get("selector", {}), pod_labels),
            "Service selector matches the Deployment's pod labels")
    sports = svc.get("spec", {}).get("ports", [])
    c.check(any(p.get("port") == 5432 and resolve_port(p.get("targetPort"), ctr) == pg_port for p in sports),
            f"Service maps port 5432 to the container's postgres port {pg_port}")
    c.check(any(p.get("port") != 5432 and resolve_port(p.get("targetPort"), ctr) == admin_port for p in sports),
            f"Service has a separate port for the admin endpoint {admin_port}")
    c.check(len({p.get("name") for p in sports}) == len(sports) and all(p.get("name") for p in sports),
            "Service ports are named (required with several ports)")
    pspec = pdb.get("spec", {})
    c.check(pdb.get("apiVersion") == "policy/v1", "PodDisruptionBudget is policy/v1")
    c.check(pspec.get("minAvailable") == 2, f"PDB minAvailable == 2 (got {pspec.get('minAvailable')})")
    c.check(selector_matches(pspec.get("selector", {}).get("matchLabels", {}), pod_labels),
            "PDB selector matches the Deployment's pod labels")
    c.check(isinstance(pspec.get("minAvailable"), int) and pspec["minAvailable"] < spec.get("replicas", 0),
            "PDB leaves room for one voluntary disruption")

    # ---------------------------------------------------------------- Dockerfile
    dockerfile = deploy / "Dockerfile"
    instr = dockerfile_instructions(dockerfile.read_text())
    froms = [a for i, a in instr if i == "FROM"]
    bases = [a.split()[0] for a in froms]
    c.check(len(froms) >= 2, f"Dockerfile is multi-stage ({len(froms)} FROM)")
    c.check(all(b in ALLOWED_BASES for b in bases), f"every stage is Debian 12: {bases}")
    c.check(bases[-1:] == ["debian:bookworm-slim"], "the runtime stage is debian:bookworm-slim")
    stages = []  # [(FROM args, [(instr, args)])]
    for i, a in instr:
        if i == "FROM":
            stages.append((a, []))
        elif stages:
            stages[-1][1].append((i, a))
    build_stage = " ".join(a for i, a in (stages[0][1] if stages else []) if i == "RUN")
    runtime = stages[-1][1] if stages else []
    c.check(re.search(r"--target[ =]pgtandem\b", build_stage) is not None,
            "the build stage builds the pgtandem target")
    c.check("-DCMAKE_BUILD_TYPE=Release" in build_stage, "the build stage configures a Release build")
    for pkg in build_packages((repo / "scripts/install-deps.sh").read_text()):
        c.check(re.search(rf"(?<![\w.+-]){re.escape(pkg)}(?![\w.+-])", build_stage) is not None,
                f"the build stage installs {pkg} (scripts/install-deps.sh, build group)")
    users = [a for i, a in runtime if i == "USER"]
    user = users[-1].split(":")[0] if users else "root"
    c.check(user not in ("root", "0", ""), f"the runtime stage runs as a non-root USER (got {user!r})")
    uid = psc.get("runAsUser")
    c.check(user == str(uid), f"the image's USER ({user}) is the pod's runAsUser ({uid})")
    exposed = " ".join(a for i, a in runtime if i == "EXPOSE").split()
    c.check({"6432", "9930"} <= {e.split("/")[0] for e in exposed}, f"EXPOSE 6432 9930 (got {exposed})")
    entry = [a for i, a in runtime if i == "ENTRYPOINT"]
    entrypoint = json.loads(entry[-1]) if entry else []
    c.check(entrypoint == ["pgtandem", "--config", "/etc/pgtandem/pgtandem.toml"],
            f"ENTRYPOINT runs pgtandem --config /etc/pgtandem/pgtandem.toml (got {entrypoint})")
    copies = [a for i, a in runtime if i == "COPY"]
    c.check(any("--from=" in a and a.split()[-1] == "/usr/local/bin/pgtandem" for a in copies),
            "the runtime stage copies the binary from the build stage to /usr/local/bin/pgtandem")
    # Every library folder the top-level CMakeLists.txt always builds is copied into the build stage.
    root_cmake = (repo / "CMakeLists.txt").read_text()
    unconditional = re.sub(r"(?ms)^if\(.*?^endif\(\)", "", root_cmake)
    copied = set()
    for i, a in instr:
        if i == "COPY" and "--from=" not in a:
            words = [w for w in shlex.split(a) if not w.startswith("--")]
            for src in words[:-1]:
                copied.add(src.rstrip("/"))
                c.check((repo / src).exists(), f"Dockerfile COPY source {src} exists in the repository")
    for sub in re.findall(r"add_subdirectory\((\w+)\)", unconditional):
        c.check(sub in copied, f"the Dockerfile copies {sub}/ (add_subdirectory in CMakeLists.txt)")
    ignore_file = deploy / "Dockerfile.dockerignore"
    if c.check(ignore_file.is_file(), "deploy/Dockerfile.dockerignore exists"):
        patterns = [l.strip() for l in ignore_file.read_text().splitlines()
                    if l.strip() and not l.startswith("#") and not l.startswith("!")]
        for src in copied:
            c.check(not any(fnmatch.fnmatch(src, p.rstrip("/")) or fnmatch.fnmatch(src.split("/")[0], p.rstrip("/"))
                            for p in patterns),
                    f"Dockerfile.dockerignore does not exclude {src}, which the Dockerfile copies")

    # The runtime stage installs a package for every shared library the binary needs.
    runtime_apt = " ".join(a for i, a in runtime if i == "RUN")
    needed = subprocess.run(["readelf", "-d", args.pgtandem], capture_output=True, text=True)
    ldd = subprocess.run(["ldd", args.pgtandem], capture_output=True, text=True)
    if c.check(needed.returncode == 0 and ldd.returncode == 0, f"readelf/ldd can read {args.pgtandem}"):
        paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd.stdout, re.M))
        paths.update({os.path.basename(p): p for p in re.findall(r"^\s*(/\S+) \(", ldd.stdout, re.M)})
        for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", needed.stdout):
            pkg = None
            path = paths.get(lib)
            # dpkg knows a file by the path its package installed it at: with merged /usr that may
            # be the /lib or the /usr/lib spelling, the symlink or its target.
            for candidate in ([path, os.path.realpath(path)] if path else []):
                for spelling in (candidate, re.sub(r"^/usr/", "/", candidate), "/usr" + candidate):
                    owner = subprocess.run(["dpkg", "-S", spelling], capture_output=True, text=True)
                    if owner.returncode == 0:
                        pkg = pkg or owner.stdout.split(":")[0]
            c.check(pkg is not None and (pkg in BASE_IMAGE_PACKAGES or
                                         re.search(rf"(?<![\w.+-]){re.escape(pkg)}(?![\w.+-])", runtime_apt)),
                    f"the runtime stage provides {lib} (Debian package {pkg})")

    # ---------------------------------------------------------------- ConfigMap <-> --config
    config_path = entrypoint[entrypoint.index("--config") + 1] if "--config" in entrypoint else None
    if "command" in ctr:
        cmd = ctr["command"] + ctr.get("args", [])
        config_path = cmd[cmd.index("--config") + 1] if "--config" in cmd else None
    else:
        c.check("--config" not in ctr.get("args", []), "the container's args do not repeat --config")
    c.check(config_path is not None, "the container runs pgtandem with --config")
    config_mount = mount_for(config_path or "", mounts)
    toml_text = None
    if c.check(config_mount is not None, f"{config_path} is on a volume mount"):
        c.check("subPath" not in config_mount,
                "the config is mounted as a directory, not with subPath (kubelet never updates subPath "
                "mounts, so hot reload would not see ConfigMap edits)")
        vol = volumes.get(config_mount["name"], {})
        cm_ref = vol.get("configMap", {})
        c.check(cm_ref.get("name") == cm.get("metadata", {}).get("name"),
                f"the config volume is the ConfigMap {cm.get('metadata', {}).get('name')}")
        rel = os.path.relpath(config_path, config_mount["mountPath"])
        items = cm_ref.get("items")
        key = next((i["key"] for i in items if i["path"] == rel), None) if items else rel
        c.check(key in cm.get("data", {}),
                f"the ConfigMap has the key {key!r} that --config {config_path} reads")
        toml_text = cm.get("data", {}).get(key)

    # ---------------------------------------------------------------- the ConfigMap's TOML
    cfg = {}
    if toml_text is not None:
        try:
            cfg = tomllib.loads(toml_text)
        except tomllib.TOMLDecodeError as e:
            c.check(False, f"the ConfigMap's pgtandem.toml parses as TOML: {e}")
    host, port = parse_host_port(cfg.get("admin", {}).get("listen", "127.0.0.1:9930"))
    c.check(host in ("0.0.0.0", "*", "[::]"),
            f"admin.listen binds all interfaces in the pod so probes and scrapes reach it (got {host})")
    c.check(port == admin_port, f"admin.listen's port {port} is the container's admin port {admin_port}")
    listen = [parse_host_port(a) for a in cfg.get("listen", {}).get("addresses", ["127.0.0.1:6432"])]
    c.check(any(h in ("0.0.0.0", "*", "[::]") and p == pg_port for h, p in listen),
            f"listen.addresses has all interfaces on the postgres port {pg_port} (got {listen})")
    c.check("tls" not in cfg, "no [tls] table in the ConfigMap (keep it commented until it lands)")
    drain_ms = cfg.get("shutdown", {}).get("drain_timeout_ms")
    c.check(isinstance(drain_ms, int) and drain_ms > 0, "[shutdown] drain_timeout_ms is set")
    if isinstance(drain_ms, int):
        c.check(grace > pre_sleep + drain_ms / 1000,
                f"terminationGracePeriodSeconds ({grace}) > preStop sleep ({pre_sleep}) + "
                f"drain_timeout_ms ({drain_ms / 1000} s): SIGKILL never cuts a drain short")
    workers = cfg.get("workers", 0)
    cpu = ctr.get("resources", {}).get("requests", {}).get("cpu")
    c.check(workers != 0 and cpu is not None and workers <= max(1, round(cpu_cores(cpu))),
            f"workers ({workers}) is set and fits the CPU request ({cpu}); 0 would count the node's cores")
    # Files pgtandem reads are mounted; files it writes are on writable volumes (read-only root).
    read_files = [cfg.get("admin", {}).get("token_file"), cfg.get("mirror", {}).get("credentials_file")]
    for f in filter(None, read_files):
        c.check(mount_for(f, mounts) is not None, f"{f} (read by pgtandem) is on a volume mount")
    state_dir = cfg.get("state_dir", "/var/lib/pgtandem")
    journal = cfg.get("mirror", {}).get("journal_path", "mirror.journal")
    if not journal.startswith("/"):
        journal = state_dir.rstrip("/") + "/" + journal  # resolved against state_dir
    written = [journal if cfg.get("mirror_writes") else None,
               (state_dir.rstrip("/") + "/mirror.running") if cfg.get("mirror_writes") else None,
               cfg.get("shadow", {}).get("mismatch_log")]
    for f in filter(None, written):
        m = mount_for(f, mounts)
        c.check(m is not None and not m.get("readOnly"),
                f"{f} (written by pgtandem) is on a writable volume (the root filesystem is read-only)")
    # The Secret's keys the init container copies are those the example Secret documents.
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for init in pod.get("initContainers", []):
        script = " ".join(init.get("command", []) + init.get("args", []))
        for m in init.get("volumeMounts", []):
            vsrc = volumes.get(m["name"], {}).get("secret")
            if not vsrc:
                continue
            for k in re.findall(re.escape(m["mountPath"].rstrip("/")) + r"/([\w.-]+)", script):
                c.check(k in secret_keys, f"secret.example.yaml documents the key {k} that {init['name']} reads")
            c.check(vsrc.get("secretName") == secret.get("metadata", {}).get("name"),
                    "the Secret volume is the one secret.example.yaml describes")

    # ---------------------------------------------------------------- pgtandem --check-config
    def check_config(text, name):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pgtandem.toml"
            path.write_text(text)
            r = subprocess.run([args.pgtandem, "--check-config", str(path)], capture_output=True, text=True)
        errors = [l for l in r.stderr.splitlines() if l.strip()]
        if r.returncode == 0:
            return []
        return errors or [f"exit status {r.returncode}, no message"]

    if toml_text is not None:
        errors = check_config(toml_text, "ConfigMap")
        c.check(not errors, "pgtandem --check-config accepts the ConfigMap's pgtandem.toml; it says:\n  "
                + "\n  ".join(errors))
    container_toml = deploy / "pgtandem.container.toml"
    errors = check_config(container_toml.read_text(), "image default")
    c.check(not errors, f"pgtandem --check-config accepts {container_toml.name}; it says:\n  " + "\n  ".join(errors))
    c.check(any(a.split()[-1] == "/etc/pgtandem/pgtandem.toml" and "pgtandem.container.toml" in a for a in copies),
            "the image ships deploy/pgtandem.container.toml as /etc/pgtandem/pgtandem.toml")

    # ---------------------------------------------------------------- Prometheus rules
    # Most metrics are registered in proxy/telemetry/metrics.cc, the scrape-time families (bytes,
    # latencies, route decisions) in metrics_families.h; scrape-time gauges (Metrics::add_gauge) in
    # proxy/server*.cc; the migration commands' gauges (issue 13) are rendered by
    # policy/migrate/run_board.cc; catch-up's and the mirror fence's by proxy/mirror/catchup.cc.
    metric_files = sorted(
        set((repo / "proxy/telemetry").glob("metrics*.cc"))
        | set((repo / "proxy/telemetry").glob("metrics*.h"))
        | set((repo / "proxy").glob("server*.cc"))
    ) + [repo / "policy/migrate/run_board.cc", repo / "proxy/mirror/catchup.cc"]
    metrics_cc = "".join(f.read_text() for f in metric_files)
    exported, histograms = exported_metrics(metrics_cc)
    c.check(len(exported) >= 20 and len(histograms) >= 2,
            f"found pgtandem's metrics in proxy/telemetry/metrics*, proxy/server* ({len(exported)} names, histograms {sorted(histograms)})")
    known = exported | PENDING_METRICS | PROMETHEUS_SERIES

    alerts_path = deploy / "prometheus/alerts.yaml"
    rc, out = promtool_check_rules(args.promtool, alerts_path)
    c.check(rc == 0, f"promtool check rules {alerts_path}:\n{out}")
    rules_doc = (docs_by_file.get(alerts_path) or [{}])[0]
    rules = [r for g in rules_doc.get("groups", []) for r in g.get("rules", [])]
    recorded = {r["record"] for r in rules if "record" in r}
    alert_names = {r["alert"] for r in rules if "alert" in r}
    used = set()
    for r in rules:
        label = r.get("alert") or r.get("record")
        for name in metric_names(r.get("expr", "")):
            used.add(name)
            c.check(name in known or name in recorded,
                    f"alerts.yaml {label}: {name} is a metric pgtandem exports (proxy/telemetry/metrics.cc) or a recording rule")
        if "alert" in r:
            ann = r.get("annotations", {})
            for a in ("summary", "description", "runbook"):
                c.check(len(ann.get(a, "").strip()) > 10, f"alert {label} has a {a} annotation")
            c.check(r.get("labels", {}).get("severity") in ("warning", "critical"),
                    f"alert {label} has severity warning or critical")
    for name in ("pgtandem_shadow_mismatches_total", "pgtandem_shadow_reads_total",
                 "pgtandem_mirror_divergences_total", "pgtandem_mirror_writes_total",
                 "pgtandem_mirror_journal_bytes", "pgtandem_mirror_queue_bytes",
                 "pgtandem_mirror_lag_seconds_bucket", "pgtandem_breaker_state",
                 "pgtandem_config_reloads_total", "pgtandem_upstream_connect_failures_total", "up"):
        c.check(name in used, f"alerts.yaml uses {name}")
    c.check(len(alert_names) >= 8 and len(recorded) >= 5,
            f"alerts.yaml has alerts and recording rules ({len(alert_names)} alerts, {len(recorded)} records)")
    tests_file = repo / "tests/deploy/alerts_test.yaml"
    r = subprocess.run([args.promtool, "test", "rules", str(tests_file)], capture_output=True, text=True,
                       cwd=tests_file.parent)
    c.check(r.returncode == 0, f"promtool test rules {tests_file.name} (alerts fire on example series):\n"
            + (r.stdout + r.stderr).strip())

    # ---------------------------------------------------------------- Grafana dashboard
    dash_path = deploy / "grafana/pgtandem-migration.json"
    dash = {}
    try:
        dash = json.loads(dash_path.read_text())
    except json.JSONDecodeError as e:
        c.check(False, f"{dash_path} parses as JSON: {e}")
    c.check(dash.get("schemaVersion", 0) >= 36, f"dashboard schemaVersion >= 36 (got {dash.get('schemaVersion')})")
    tvars = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds_var = tvars.get("datasource", {})
    c.check(ds_var.get("type") == "datasource" and ds_var.get("query") == "prometheus",
            "dashboard has a 'datasource' variable of type datasource (prometheus)")
    panels = []
    for p in dash.get("panels", []):
        panels.append(p)
        panels += p.get("panels", [])
    ids = [p.get("id") for p in panels]
    c.check(len(ids) == len(set(ids)) and None not in ids, "dashboard panel ids are unique")
    exprs = []
    for p in panels:
        if p.get("type") == "row":
            continue
        c.check("gridPos" in p and p.get("title"), f"panel {p.get('id')} has a title and gridPos")
        c.check(p.get("datasource", {}).get("uid") == "${datasource}",
                f"panel {p.get('title')!r} uses the $datasource variable")
        c.check(bool(p.get("targets")), f"panel {p.get('title')!r} has queries")
        for t in p.get("targets", []):
            c.check(t.get("datasource", {}).get("uid") == "${datasource}",
                    f"panel {p.get('title')!r} query {t.get('refId')} uses the $datasource variable")
            exprs.append((p.get("title"), t.get("expr", "")))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            exprs.append((f"annotation {a.get('name')}", a["expr"]))
    c.check(len(exprs) >= 25, f"dashboard has its queries ({len(exprs)})")
    dash_used = set()
    for title, expr in exprs:
        for name in metric_names(expr):
            dash_used.add(name)
            c.check(name in known, f"dashboard panel {title!r}: {name} is a metric pgtandem exports")
    for name in ("pgtandem_shadow_mismatches_by_fingerprint_total", "pgtandem_route_decisions_total",
                 "pgtandem_route_kept_on_primary_total", "pgtandem_mirror_queue_bytes",
                 "pgtandem_mirror_journal_bytes", "pgtandem_mirror_lag_seconds_bucket",
                 "pgtandem_shadow_mismatches_total", "pgtandem_breaker_state",
                 "pgtandem_query_duration_seconds_bucket", "pgtandem_config_reloads_total"):
        c.check(name in dash_used, f"dashboard shows {name}")
    # promtool checks every dashboard query: as recording rules, with Grafana's variables filled in.
    def fill(expr):
        for var, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(var, value)
        return expr
    leftover = [(t, e) for t, e in exprs if "$" in fill(e)]
    c.check(not leftover, f"dashboard queries use only known Grafana variables: {leftover}")
    with tempfile.TemporaryDirectory() as tmp:
        rules_file = Path(tmp) / "dashboard_rules.yaml"
        rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:query_{i}", "expr": fill(e)} for i, (_, e) in enumerate(exprs)]}]}))
        rc, out = promtool_check_rules(args.promtool, rules_file)
    c.check(rc == 0, f"promtool check rules accepts every dashboard query:\n{out}")

    # ---------------------------------------------------------------- README
    readme = (deploy / "README.md").read_text() if (deploy / "README.md").is_file() else ""
    for needle in ("docker build -f deploy/Dockerfile .", "kubectl apply -k deploy/kubernetes",
                   "preStop", "drain_timeout_ms", "..data", "alerts.yaml", "pgtandem-migration.json"):
        c.check(needle in readme, f"deploy/README.md covers {needle!r}")

    # Optional: render the kustomization when kubectl is installed (not a Debian package).
    kubectl = shutil.which("kubectl")
    if kubectl:
        r = subprocess.run([kubectl, "kustomize", str(k8s_dir)], capture_output=True, text=True)
        if c.check(r.returncode == 0, f"kubectl kustomize deploy/kubernetes renders:\n{r.stderr}"):
            rendered = [d for d in yaml.safe_load_all(r.stdout) if d]
            kinds = sorted(d["kind"] for d in rendered)
            c.check(kinds == sorted(["Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]),
                    f"the kustomization renders the five objects (got {kinds})")
            ns = kustomization.get("namespace")
            c.check(all(d["metadata"].get("namespace") == ns for d in rendered if d["kind"] != "Namespace"),
                    f"every rendered object is in namespace {ns}")
    else:
        warn("kubectl not found: `kubectl kustomize` rendering not checked")

    total = c.passed + len(c.failures)
    if c.failures:
        print(f"\ndeploy_manifests: {len(c.failures)} of {total} checks FAILED", flush=True)
        return 1
    print(f"deploy_manifests: all {total} checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
