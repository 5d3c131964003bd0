#!/usr/bin/env python3
"""Benchmark etcdops side by side with etcdctl/etcdutl on the same data, in the same run.

Each comparison alternates the commands (A B A B ...) so machine drift cancels, and reports the
median wall time, user+sys CPU and peak RSS (from wait4) of each, their ratio, and the target.
Data: Kubernetes-shaped databases written by a real etcd 3.5.1 with client TLS, generated once
by examples/bench_fill.rs and cached in .cache/bench/.

    python3 scripts/bench.py            # 64 MB, 256 MB, 1 GB; writes docs/performance.md
    python3 scripts/bench.py --with-4g  # also 4 GB
    python3 scripts/bench.py --quick    # 64 MB, one run each; writes target/bench-quick.md

Run through scripts/bench.sh, which builds the release binaries first.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
ETCD_DIR = ROOT / ".cache" / "etcd-3.5.1"
ETCDOPS = ROOT / "target" / "release" / "etcdops"
FILL = ROOT / "target" / "release" / "examples" / "bench_fill"
MIB = 1024 * 1024
SIZES = {"64MB": 64 * 10**6, "256MB": 256 * 10**6, "1GB": 10**9, "4GB": 4 * 10**9}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(cmd):
    """Run cmd; return (wall seconds, user+sys seconds, peak RSS bytes).

    Linux keeps a process's peak RSS across exec, so anything forked from this Python process
    reports Python's footprint as its own. The command is therefore started by /usr/bin/time,
    whose fork is small, and its peak RSS is read from time's `%M`; CPU comes from wait4 (which
    includes the reaped command), wall from our clock."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as rss_file:
        start = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *cmd],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            sys.exit(f"benchmark command failed ({code}): {' '.join(map(str, cmd))}\n{err}")
        rss_kib = int(rss_file.read().split()[-1])
    return wall, usage.ru_utime + usage.ru_stime, rss_kib * 1024


def compare(name, commands, runs, cleanup=None):
    """Alternate the commands `runs` times after one warm-up each; medians per command.
    `cleanup`, if given, runs (unmeasured) before every command, e.g. to remove its output."""
    def one(cmd):
        if cleanup:
            cleanup()
        return measure(cmd)
    for cmd in commands.values():
        one(cmd)
    samples = {label: [] for label in commands}
    for _ in range(runs):
        for label, cmd in commands.items():
            samples[label].append(one(cmd))
    if cleanup:
        cleanup()
    result = {}
    for label, s in samples.items():
        result[label] = tuple(statistics.median(x[i] for x in s) for i in range(3))
    print(f"{name}: " + ", ".join(f"{k} {v[0]:.3f}s" for k, v in result.items()), flush=True)
    return result


def pki(dirpath):
    """CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    d = Path(dirpath)
    if (d / "client.key").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", d / "ca.key", "-out", d / "ca.crt", "-days", "3650", "-subj", "/CN=bench-ca")
    for name, usage in [("server", "serverAuth,clientAuth"), ("client", "clientAuth")]:
        ext = d / f"{name}.ext"
        ext.write_text(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr", "-subj", f"/CN={name}")
        ossl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.crt", "-CAkey", d / "ca.key",
             "-CAcreateserial", "-out", d / f"{name}.crt", "-days", "3650", "-extfile", ext)
    return d


class Cluster:
    """Real etcd 3.5.1 members with client TLS on loopback; stopped by the PIDs we started."""

    def __init__(self, members, certs, quota=8 * 1024**3, restore_from=None):
        self.dir = tempfile.mkdtemp(prefix="etcdops-bench-", dir=CACHE)
        self.certs = certs
        names = [f"b{i}" for i in range(members)]
        self.clients = [f"https://127.0.0.1:{free_port()}" for _ in names]
        peers = [f"http://127.0.0.1:{free_port()}" for _ in names]
        initial = ",".join(f"{n}={p}" for n, p in zip(names, peers))
        if restore_from is not None:
            # Serve an existing snapshot: restore it (with etcdutl; this is setup, not measured).
            for n, p in zip(names, peers):
                subprocess.run([ETCD_DIR / "etcdutl", "snapshot", "restore", restore_from,
                                f"--data-dir={self.dir}/{n}", f"--name={n}", f"--initial-cluster={initial}",
                                f"--initial-advertise-peer-urls={p}"], check=True, capture_output=True)
        self.procs = []
        for n, c, p in zip(names, self.clients, peers):
            log = open(Path(self.dir) / f"{n}.log", "w")
            self.procs.append(subprocess.Popen([
                ETCD_DIR / "etcd", f"--name={n}", f"--data-dir={self.dir}/{n}",
                f"--listen-client-urls={c}", f"--advertise-client-urls={c}",
                f"--listen-peer-urls={p}", f"--initial-advertise-peer-urls={p}",
                f"--initial-cluster={initial}", f"--quota-backend-bytes={quota}",
                f"--cert-file={certs}/server.crt", f"--key-file={certs}/server.key",
                f"--trusted-ca-file={certs}/ca.crt", "--client-cert-auth",
                "--logger=zap", "--log-level=error",
            ], stdout=log, stderr=log))
        for c in self.clients:
            for _ in range(150):
                if subprocess.run(self.etcdctl(c, "endpoint", "health"), capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
            else:
                self.stop()
                sys.exit(f"etcd at {c} did not become healthy; logs in {self.dir}")

    def tls(self):
        c = self.certs
        return [f"--cacert={c}/ca.crt", f"--cert={c}/client.crt", f"--key={c}/client.key"]

    def etcdctl(self, endpoints, *args):
        return [ETCD_DIR / "etcdctl", f"--endpoints={endpoints}", *self.tls(), *args]

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def cert_tree(certs):
    """A kubeadm-sized tree of 30 certificates signed by the bench CA (made once)."""
    d = CACHE / "cert-tree"
    if (d / "c29.crt").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    for i in range(30):
        subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", d / f"c{i}.key", "-out", d / f"c{i}.csr", "-subj", f"/CN=leaf-{i}"],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", d / f"c{i}.csr", "-CA", certs / "ca.crt",
                        "-CAkey", certs / "ca.key", "-CAcreateserial", "-out", d / f"c{i}.crt",
                        "-days", str(30 + i * 20)], check=True, capture_output=True)
        (d / f"c{i}.csr").unlink()
    shutil.copy(certs / "ca.crt", d / "ca.crt")
    return d


class S3Server:
    """SeaweedFS (`weed mini`, from scripts/test-deps.sh) serving S3 over HTTPS on loopback with
    one SigV4 identity; awscli from the same script is the peer client."""

    KEY, SECRET = "AKIABENCH", "bench-secret-key-0123456789"

    def __init__(self, certs):
        self.dir = tempfile.mkdtemp(prefix="etcdops-bench-s3-", dir=CACHE)
        cfg = Path(self.dir) / "s3.json"
        cfg.write_text(json.dumps({"identities": [{"name": "bench", "credentials": [
            {"accessKey": self.KEY, "secretKey": self.SECRET}], "actions": ["Admin", "Read", "Write", "List"]}]}))
        self.port = free_port()
        args = [ROOT / ".cache/seaweedfs-4.48/weed", "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", f"-dir={self.dir}/data", f"-s3.config={cfg}",
                "-s3.autoCreateBucket=false", f"-s3.port.https={self.port}",
                f"-s3.cert.file={certs}/server.crt", f"-s3.key.file={certs}/server.key",
                "-s3.port.iceberg=0", "-s3.port.lance=0"]
        for flag in ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                     "filer.port.grpc", "s3.port", "s3.port.grpc", "webdav.port", "admin.port", "admin.port.grpc"]:
            args.append(f"-{flag}={free_port()}")
        os.makedirs(f"{self.dir}/data")
        self.log = open(Path(self.dir) / "weed.log", "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        self.endpoint = f"https://127.0.0.1:{self.port}"
        self.ca = f"{certs}/ca.crt"
        os.environ.update({"AWS_ACCESS_KEY_ID": self.KEY, "AWS_SECRET_ACCESS_KEY": self.SECRET,
                           "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})
        for _ in range(300):
            if subprocess.run(self.aws("s3", "mb", "s3://bench"), capture_output=True).returncode == 0:
                return
            time.sleep(0.3)
        self.stop()
        sys.exit(f"SeaweedFS did not serve S3; log in {self.dir}")

    def aws(self, *args):
        return [ROOT / ".cache/awscli/bin/aws", "--endpoint-url", self.endpoint, "--ca-bundle", self.ca, *args]

    def flags(self):
        return ["--s3-endpoint", self.endpoint, "--s3-endpoint-ca", self.ca]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def dataset(label, certs):
    """The cached snapshot of a database of about SIZES[label] bytes, made on first use."""
    path = CACHE / f"k8s-{label}.db"
    if path.exists():
        return path
    print(f"generating {label} of Kubernetes-shaped data ...", flush=True)
    cluster = Cluster(1, certs)
    try:
        c = cluster.certs
        subprocess.run([FILL, cluster.clients[0], f"{c}/ca.crt", f"{c}/client.crt", f"{c}/client.key",
                        str(SIZES[label])], check=True)
        part = path.with_suffix(".part")
        subprocess.run(cluster.etcdctl(cluster.clients[0], "snapshot", "save", part),
                       check=True, capture_output=True)
        part.rename(path)
    finally:
        cluster.stop()
    return path


def fresh_in_cache(path):
    """Drop `path` from the page cache and read it back in once, so that every command compared
    on it finds it cached the same way: how a file came into the page cache (written in small
    pieces long ago, or read in by readahead) changed the kernel's copy out of it threefold
    here (0.19 s against 0.06 s for 1 GB into the same buffer)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while os.read(fd, 4 << 20):
            pass
    finally:
        os.close(fd)


def versions():
    out = {}
    for name, cmd in [("etcdops", [ETCDOPS, "--version"]), ("etcdutl", [ETCD_DIR / "etcdutl", "version"]),
                      ("etcdctl", [ETCD_DIR / "etcdctl", "version"])]:
        out[name] = subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
    out["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                   capture_output=True, text=True).stdout.strip()
    return out


def machine():
    model, microcode, flags = "unknown", "unknown", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and model == "unknown":
            model = value
        elif key == "microcode" and microcode == "unknown":
            microcode = value
        elif key == "flags" and not flags:
            flags = set(value.split())
    features = ", ".join(f for f in ["sha_ni", "avx2", "vaes", "avx512f"] if f in flags) or "none of sha_ni/avx2/vaes"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return (f"{os.cpu_count()} cores ({model}, microcode {microcode}; {features}), {mem / 1024**3:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}")


def alignment_effect(path, runs):
    """Seconds to pread `path` (in the page cache) through a 1 MiB buffer that starts on a page
    boundary, and through one that starts 16 bytes past it (where an allocator's Vec lands):
    the kernel's copy speed depends on it, so a number from one machine is not compared with
    another's blindly."""
    import ctypes
    n = 1 << 20
    raw = (ctypes.c_char * (n + 8192))()
    base = ctypes.addressof(raw)
    out = {}
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        for label, extra in [("aligned", 0), ("+16 bytes", 16)]:
            start = (-base) % 4096 + extra
            view = memoryview(raw).cast("B")[start:start + n]
            times = []
            for _ in range(max(runs, 3)):
                t, pos = time.perf_counter(), 0
                while pos < size:
                    got = os.preadv(fd, [view], pos)
                    if got == 0:
                        break
                    pos += got
                times.append(time.perf_counter() - t)
            out[label] = statistics.median(times)
    finally:
        os.close(fd)
    return out


def row(name, ours, peer, peer_label, targets):
    """A markdown table row: medians, ratios and whether each target is met."""
    wall_ratio = ours[0] / peer[0]
    cpu_ratio = ours[1] / peer[1] if peer[1] > 0 else float("nan")
    verdicts = []
    for kind, limit in targets:
        if kind == "wall":
            verdicts.append(f"wall ≤ {limit}x: {'met' if wall_ratio <= limit else 'MISSED'}")
        elif kind == "cpu":
            verdicts.append(f"CPU ≤ {limit}x: {'met' if cpu_ratio <= limit else 'MISSED'}")
        elif kind == "rss":
            verdicts.append(f"RSS ≤ {limit} MiB: {'met' if ours[2] <= limit * MIB else 'MISSED'}")
    return (f"| {name} | {ours[0]:.3f} s / {ours[1]:.3f} s / {ours[2] / MIB:.1f} MiB "
            f"| {peer_label}: {peer[0]:.3f} s / {peer[1]:.3f} s / {peer[2] / MIB:.1f} MiB "
            f"| {wall_ratio:.2f}x | {cpu_ratio:.2f}x | {'; '.join(verdicts)} |")


def proc_cpu(pid):
    """user+sys seconds of a live process (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def logged_through(dest):
    """The last revision a segment in `dest` completes (from the segment names)."""
    best = 0
    for name in os.listdir(dest):
        if ".log-" in name and name.endswith(".json"):
            best = max(best, int(name.split(".log-")[1].split("-")[0]))
    return best


def revision_log(certs, quick):
    """`snapshot follow` under a write load, then the offline replay against applying the same
    puts to a real etcd through gRPC. Returns (rows, facts)."""
    rate, seconds = (2000, 10) if quick else (2000, 60)
    total = 20_000 if quick else 500_000
    flush = "10s"
    server = Cluster(1, certs)
    dest = Path(server.dir) / "log"
    dest.mkdir()
    out = CACHE / "pitr-restore"
    rows, facts = [], {}
    try:
        ep = server.clients[0]
        etcd_pid = server.procs[0].pid
        follower = subprocess.Popen([ETCDOPS, "snapshot", "follow", f"{dest}/", f"--flush={flush}",
                                     "--compress=zstd", f"--endpoints={ep}", *server.tls()],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not any(".log-" in n and n.endswith(".json") for n in os.listdir(dest)):
            time.sleep(0.1)
        base_through = logged_through(dest)
        etcd_cpu0, ours_cpu0 = proc_cpu(etcd_pid), proc_cpu(follower.pid)
        # The sustained load, then the rest of the puts as fast as etcd takes them.
        samples, durable = [], []
        for puts, r, k in [(rate * seconds, rate, 64), (total - rate * seconds, 0, 64)]:
            if puts <= 0:
                continue
            load = subprocess.Popen([FILL, ep, f"{certs}/ca.crt", f"{certs}/client.crt", f"{certs}/client.key",
                                     f"puts={puts}", f"rate={r}", f"in_flight={k}"],
                                    stdout=subprocess.PIPE, text=True)
            for line in load.stdout:
                t_ns, rev = map(int, line.split())
                if r:
                    samples.append((t_ns / 1e9, rev))
                durable.append((time.time(), logged_through(dest)))
            if load.wait() != 0:
                sys.exit("the load generator failed")
            if r:
                etcd_cpu, ours_cpu = proc_cpu(etcd_pid) - etcd_cpu0, proc_cpu(follower.pid) - ours_cpu0
        final = samples[-1][1] if samples else 0
        last_rev = int(json.loads(subprocess.run(server.etcdctl(ep, "endpoint", "status", "-w", "json"),
                                                 capture_output=True, check=True).stdout)[0]["Status"]["header"]["revision"])
        while logged_through(dest) < last_rev:
            durable.append((time.time(), logged_through(dest)))
            time.sleep(0.1)
        durable.append((time.time(), logged_through(dest)))
        peak = proc_peak_rss(follower.pid)
        follower.send_signal(signal.SIGTERM)
        follower.wait(timeout=60)
        # Lag: from the moment the load had reached a revision to the moment a segment held it.
        lags = []
        for t, rev in samples:
            reached = next((dt for dt, d in durable if d >= rev and dt >= t), None)
            if reached is not None and rev > base_through:
                lags.append(reached - t)
        lags.sort()
        p99 = lags[int(len(lags) * 0.99) - 1] if lags else float("nan")
        facts["lag"] = (p99, flush, rate, seconds)
        facts["cpu"] = (ours_cpu, etcd_cpu)
        facts["rss"] = peak
        seg_bytes = plain = events = 0
        for name in os.listdir(dest):
            if ".log-" in name and name.endswith(".json"):
                m = json.loads((dest / name).read_text())
                seg_bytes += m["object_size"]
                plain += m["plain_size"]
                events += m["events"]
        facts["size"] = (events, seg_bytes, plain)

        def clean():
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run(["sync"], check=True)
        clean()
        replay = measure([ETCDOPS, "snapshot", "restore", f"{dest}/", f"--data-dir={out}"])
        clean()
        # The same puts applied to a real etcd through gRPC (as etcd-backup-restore restores
        # its deltas: into an etcd started from the base), 64 in flight.
        base = sorted(n for n in os.listdir(dest) if n.endswith(".db.zst"))[0]
        plain_base = CACHE / "pitr-base.db"
        subprocess.run(["sh", "-c", f"zstd -d -q -f -o {plain_base} {dest / base}"], check=True)
        target = Cluster(1, certs, restore_from=plain_base)
        try:
            apply = measure([FILL, target.clients[0], f"{certs}/ca.crt", f"{certs}/client.crt",
                             f"{certs}/client.key", f"puts={events}", "rate=0", "in_flight=64"])
        finally:
            target.stop()
            plain_base.unlink(missing_ok=True)
        facts["replay"] = (events, replay, apply)
        rows.append(row(f"restore to the last revision of a revision log ({events:,} changes after the base: offline replay + restore)",
                        replay, apply, "the same puts through gRPC into an etcd on the base, 64 in flight",
                        [("wall", 0.05)]))
    finally:
        if follower.poll() is None:
            follower.kill()
        server.stop()
        shutil.rmtree(out, ignore_errors=True)
    return rows, facts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="64 MB only, one run each, output to target/")
    ap.add_argument("--with-4g", action="store_true", help="also the 4 GB database")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    for tool in [ETCDOPS, FILL, ETCD_DIR / "etcd", ETCD_DIR / "etcdutl"]:
        if not tool.exists():
            sys.exit(f"{tool} missing: run bash scripts/bench.sh (it builds and installs what is needed)")
    runs = 1 if args.quick else args.runs
    labels = ["64MB"] if args.quick else ["64MB", "256MB", "1GB"] + (["4GB"] if args.with_4g else [])
    # The comparisons with other tools are made on this one; a 4 GB database only adds scaling rows.
    compared = labels[0] if args.quick else "1GB"
    certs = pki(CACHE / "pki")
    etcdutl = ETCD_DIR / "etcdutl"
    rows, scaling = [], []

    for label in labels:
        db = dataset(label, certs)
        fresh_in_cache(db)
        r = compare(f"status {label}", {
            "etcdops": [ETCDOPS, "snapshot", "status", "-w", "json", db],
            "etcdops-skip-hash": [ETCDOPS, "snapshot", "status", "--skip-hash-check", "-w", "json", db],
            "etcdutl": [etcdutl, "snapshot", "status", "-w", "json", db],
            "openssl": ["openssl", "dgst", "-sha256", db],
        }, runs)
        size = db.stat().st_size
        scaling.append((label, size, r))
        if label == compared:
            rows.append(row(f"snapshot status, {label}, integrity check + sha256 (default), vs hashing the file",
                            r["etcdops"], r["openssl"], "`openssl dgst -sha256`", [("wall", 1.05)]))
            rows.append(row(f"snapshot status, {label}, integrity check + sha256 (default), vs etcdutl",
                            r["etcdops"], r["etcdutl"], "etcdutl", [("rss", 128)]))
            rows.append(row(f"snapshot status, {label}, integrity check, no sha256 (`--skip-hash-check`, etcdutl's work)",
                            r["etcdops-skip-hash"], r["etcdutl"], "etcdutl", [("wall", 0.33), ("rss", 128)]))

    # snapshot ls SOURCE at every size: the live keyspace (no peer reads a snapshot's keys offline).
    ls_scaling = []
    for label in labels:
        db = dataset(label, certs)
        r = compare(f"ls {label}", {
            "summary": [ETCDOPS, "snapshot", "ls", db, "--summary"],
            "keys-only": [ETCDOPS, "snapshot", "ls", db, "--keys-only", "-w", "json"],
        }, runs)
        ls_scaling.append((label, db.stat().st_size, r))

    # snapshot restore at every size: etcdops vs etcdutl vs the disk's floor (dd).
    out = CACHE / "restore-out"

    def clean():
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        subprocess.run(["sync"], check=True)

    restore_scaling = []
    for label in labels:
        db = dataset(label, certs)
        fresh_in_cache(db)
        r = compare(f"restore {label}", {
            "etcdops": [ETCDOPS, "snapshot", "restore", db, f"--data-dir={out}"],
            "etcdutl": [etcdutl, "snapshot", "restore", db, f"--data-dir={out}"],
            "dd": ["dd", f"if={db}", f"of={out}", "bs=4M", "conv=fsync", "status=none"],
            "openssl": ["openssl", "dgst", "-sha256", db],
        }, runs, cleanup=clean)
        restore_scaling.append((label, db.stat().st_size, r))
    big = dataset(compared, certs)
    r = next(r for label, _, r in restore_scaling if label == compared)
    rows.append(row(f"snapshot restore, {compared}", r["etcdops"], r["etcdutl"], "etcdutl",
                    [("wall", 0.33), ("rss", 64)]))
    # The physical floor of a verified restore: writing the bytes durably, or hashing them,
    # whichever is slower (a restore must do both).
    floor_label = "dd" if r["dd"][0] >= r["openssl"][0] else "openssl"
    rows.append(row(f"snapshot restore, {compared}, vs the physical floor: max(`dd bs=4M conv=fsync`, "
                    f"`openssl dgst -sha256`) = {floor_label}",
                    r["etcdops"], r[floor_label], floor_label, [("wall", 1.25)]))

    # snapshot save from a server holding the largest database, etcdops vs etcdctl.
    server = Cluster(1, certs, restore_from=big)
    try:
        out_ours, out_theirs = CACHE / "save-etcdops.db", CACHE / "save-etcdctl.db"
        ep = server.clients[0]
        local = r = compare(f"save {compared}", {
            "etcdops": [ETCDOPS, "snapshot", "save", out_ours, f"--endpoints={ep}", *server.tls()],
            "etcdctl": server.etcdctl(ep, "snapshot", "save", out_theirs),
        }, runs)
        rows.append(row(f"snapshot save, {compared}, TLS on loopback (same server)", r["etcdops"], r["etcdctl"],
                        "etcdctl", [("wall", 0.95), ("cpu", 0.5), ("rss", 32)]))
        for f in (out_ours, out_theirs):
            f.unlink(missing_ok=True)

        # Off the node: S3 on loopback (SeaweedFS, HTTPS), etcdops vs etcdctl/etcdutl + aws s3 cp.
        s3 = S3Server(certs)
        try:
            staged = CACHE / "save-staged.db"
            peer_save = " && ".join([
                " ".join(map(str, server.etcdctl(ep, "snapshot", "save", staged))) + " >/dev/null",
                " ".join(map(str, s3.aws("s3", "cp", "--only-show-errors", staged, "s3://bench/peer/etcd.db"))),
            ])
            r = compare(f"save to s3 {compared}", {
                "etcdops": [ETCDOPS, "snapshot", "save", "s3://bench/ours/", f"--endpoints={ep}", *server.tls(),
                            *s3.flags()],
                "etcdctl+aws": ["sh", "-c", peer_save],
            }, runs)
            rows.append(row(f"snapshot save to s3://, {compared}, TLS etcd and HTTPS S3 on loopback",
                            r["etcdops"], r["etcdctl+aws"], "etcdctl save + aws s3 cp",
                            [("wall", 0.5), ("cpu", 0.4), ("rss", 64)]))
            rows.append(row(f"snapshot save to s3://, {compared}, vs a local save of the same server in this run",
                            r["etcdops"], local["etcdops"], "`etcdops snapshot save FILE`", [("wall", 1.5)]))
            names = subprocess.run(s3.aws("s3", "ls", "s3://bench/ours/"), capture_output=True, text=True,
                                   check=True).stdout.split()
            name = sorted(n for n in names if n.endswith(".db"))[-1]
            peer_restore = " && ".join([
                " ".join(map(str, s3.aws("s3", "cp", "--only-show-errors", "s3://bench/peer/etcd.db", staged))),
                f"{etcdutl} snapshot restore {staged} --data-dir={out} >/dev/null 2>&1",
            ])
            r = compare(f"restore from s3 {compared}", {
                "etcdops": [ETCDOPS, "snapshot", "restore", f"s3://bench/ours/{name}", f"--data-dir={out}",
                            *s3.flags()],
                "aws+etcdutl": ["sh", "-c", peer_restore],
            }, runs, cleanup=clean)
            rows.append(row(f"snapshot restore from s3://, {compared}", r["etcdops"], r["aws+etcdutl"],
                            "aws s3 cp + etcdutl restore", [("wall", 0.6), ("rss", 64)]))
            staged.unlink(missing_ok=True)
        finally:
            s3.stop()
    finally:
        server.stop()

    cluster = Cluster(3, certs)
    try:
        eps = ",".join(cluster.clients)
        tls = cluster.tls()
        r = compare("health 3 members", {
            "etcdops": [ETCDOPS, "health", f"--endpoints={eps}", *tls],
            "etcdctl": [ETCD_DIR / "etcdctl", "endpoint", "health", f"--endpoints={eps}", *tls],
        }, max(runs, 3) if not args.quick else 1)
        rows.append(row("health, 3-member cluster, TLS (process start to exit)",
                        r["etcdops"], r["etcdctl"], "etcdctl", [("wall", 0.5)]))
    finally:
        cluster.stop()

    tree = cert_tree(certs)
    r = compare("cert-expiry 30 certificates", {
        "etcdops": [ETCDOPS, "cert-expiry", "--warn-days=0", tree],
        "openssl": ["sh", "-c", f"for f in {tree}/*.crt; do openssl x509 -enddate -noout -in \"$f\"; done"],
    }, max(runs, 3) if not args.quick else 1)
    rows.append(row("cert-expiry, 31 certificates (keys checked, signatures verified)", r["etcdops"], r["openssl"],
                    "`openssl x509 -enddate` loop", []))

    pitr_rows, pitr = revision_log(certs, args.quick)
    rows += pitr_rows

    v = versions()
    align = alignment_effect(dataset(compared, certs), runs)
    out = [
        "# Performance",
        "",
        f"Generated by `bash scripts/bench.sh{' --with-4g' if args.with_4g else ''}` — do not edit by hand; rerun it."
        if not args.quick
        else "Quick run (`bash scripts/bench.sh --quick`): one run each on 64 MB; not the published numbers.",
        "",
        f"- Machine: {machine()}",
        f"- Versions: {v['etcdops']} (commit {v['commit']}); {v['etcdutl']}; {v['etcdctl'].strip()}",
        f"- Reading the {compared} file from the page cache into a 1 MiB buffer: {align['aligned']:.3f} s page-aligned,"
        f" {align['+16 bytes']:.3f} s 16 bytes past a page ({align['+16 bytes'] / align['aligned']:.2f}x): etcdops reads"
        " into page-aligned buffers (src/buf.rs).",
        f"- Method: commands alternated, {runs} run(s) each after one warm-up, median shown; each snapshot is dropped"
        " from the page cache and read back in once before its commands are compared, so that all find it cached alike;"
        " wall time, user+sys CPU and peak RSS from `wait4`.",
        "- Data: Kubernetes-shaped keys (`/registry/<resource>/<namespace>/<name>`), values 1–20 KB with one in a"
        " thousand of 200 KB–1 MB, 10% updates, 2% deletes, a final compaction; written by etcd 3.5.1 with client TLS"
        " (`examples/bench_fill.rs`) and saved with `etcdctl snapshot save`.",
        "",
        "## etcdops vs the tools people use today",
        "",
        "Cells: wall / CPU / peak RSS (medians). Ratios are etcdops ÷ peer.",
        "",
        "| what | etcdops | peer | wall ratio | CPU ratio | targets |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "## Scaling of `snapshot status`",
        "",
        "| database | file size | etcdops wall | etcdops RSS | etcdops `--skip-hash-check` wall | etcdutl wall | etcdutl RSS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, size, r in scaling:
        out.append(f"| {label} | {size / 10**6:.0f} MB | {r['etcdops'][0]:.3f} s | {r['etcdops'][2] / MIB:.1f} MiB "
                   f"| {r['etcdops-skip-hash'][0]:.3f} s | {r['etcdutl'][0]:.3f} s | {r['etcdutl'][2] / MIB:.1f} MiB |")
    out += [
        "",
        "## Scaling of `snapshot restore`",
        "",
        "| database | file size | etcdops wall | etcdops RSS | etcdutl wall | etcdutl RSS | dd wall | openssl sha256 wall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, size, r in restore_scaling:
        out.append(f"| {label} | {size / 10**6:.0f} MB | {r['etcdops'][0]:.3f} s | {r['etcdops'][2] / MIB:.1f} MiB "
                   f"| {r['etcdutl'][0]:.3f} s | {r['etcdutl'][2] / MIB:.1f} MiB | {r['dd'][0]:.3f} s "
                   f"| {r['openssl'][0]:.3f} s |")
    out += [
        "",
        "## Scaling of `snapshot ls SOURCE`",
        "",
        "The live keyspace of a snapshot, rebuilt from the `key` bucket (no other tool reads it offline): held in"
        " memory without values, so memory grows with the number of live keys.",
        "",
        "| database | file size | `--summary` wall | `--summary` RSS | `--keys-only -w json` wall | `--keys-only -w json` RSS |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, size, r in ls_scaling:
        out.append(f"| {label} | {size / 10**6:.0f} MB | {r['summary'][0]:.3f} s | {r['summary'][2] / MIB:.1f} MiB "
                   f"| {r['keys-only'][0]:.3f} s | {r['keys-only'][2] / MIB:.1f} MiB |")
    p99, flush, rate, seconds = pitr["lag"]
    ours_cpu, etcd_cpu = pitr["cpu"]
    events, seg_bytes, plain = pitr["size"]
    n, replay, apply = pitr["replay"]
    out += [
        "",
        "## The revision log (`snapshot follow`, restore to a revision)",
        "",
        f"- Load: {rate} single puts/s of 1 KB values for {seconds} s (etcd, the load generator and the follower"
        f" on the same {os.cpu_count()} cores), then the rest of {n:,} puts as fast as etcd takes them; `--flush {flush}`, zstd.",
        f"- Lag of the durable revision behind the load, p99: {p99:.1f} s (target ≤ {flush} + 2 s:"
        f" {'met' if p99 <= float(flush.rstrip('s')) + 2 else 'MISSED'}).",
        f"- Follower CPU during the sustained load: {ours_cpu:.2f} s against etcd's {etcd_cpu:.2f} s"
        f" ({ours_cpu / etcd_cpu * 100:.1f} %; target ≤ 15 %: {'met' if ours_cpu <= 0.15 * etcd_cpu else 'MISSED'});"
        f" peak RSS {pitr['rss'] / MIB:.1f} MiB (target ≤ 64 MiB: {'met' if pitr['rss'] <= 64 * MIB else 'MISSED'}).",
        f"- Stored: {seg_bytes / max(events, 1):.0f} bytes per change with zstd, against {plain / max(events, 1):.0f}"
        f" bytes per change in the segment format (key, 1 KB value, revisions, lease, time).",
        f"- Restore to the last revision: {replay[0]:.2f} s for {n:,} changes replayed offline and restored, against"
        f" {apply[0]:.2f} s to apply the same puts through gRPC ({apply[0] / replay[0]:.1f}x faster; target ≥ 20x:"
        f" {'met' if apply[0] >= 20 * replay[0] else 'MISSED'}).",
    ]
    notes = ROOT / "docs" / "performance-notes.md"
    if notes.exists() and not args.quick:
        out += ["", notes.read_text().rstrip()]
    target = ROOT / ("target/bench-quick.md" if args.quick else "docs/performance.md")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(out) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
