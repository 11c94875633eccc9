#!/usr/bin/env python3
"""make bench: harden side by side with its peers on the same inputs, in one
run, several repetitions; prints medians and ratios (never absolute targets:
the machine is shared and noisy), writes target/bench/results.json and the
chart target/bench/chart.svg, and with --write also BENCHMARKS.md's results.

usage: scripts/bench.py [--quick] [--write]
"""
import hashlib, io, json, os, shutil, signal, socket, statistics, subprocess, sys, tarfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARDEN = os.path.join(ROOT, "target/release/harden")
OUT = os.path.join(ROOT, "target/bench")
W = "/tmp/harden-bench"
QUICK = "--quick" in sys.argv
SIZES = [16, 64, 128] if QUICK else [50, 200, 400]  # MiB
REPS = 3

def sh(*cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)

def timed(cmd, before=None):
    """Seconds and peak RSS (KiB) of one run of cmd (a list, or a shell string)."""
    if before:
        before()
    t = time.perf_counter()
    p = subprocess.Popen(cmd, shell=isinstance(cmd, str), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, rusage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"bench: {cmd} failed: {p.stderr.read().decode()[-2000:]}")
    return elapsed, rusage.ru_maxrss

def median(cmd, before=None, reps=REPS):
    runs = [timed(cmd, before) for _ in range(reps)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)

def fresh(*paths):
    def clean():
        for p in paths:
            shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else (os.path.exists(p) and os.remove(p))
    return clean

# ---------- fixtures: a docker-archive with an incompressible and a compressible layer

def write_layer(path, name, size, compressible):
    """A tar layer holding one file of `size` bytes; returns its sha256."""
    class Source(io.RawIOBase):
        def __init__(self):
            self.left = size
            self.text = b"harden benchmark: a compressible line of text, repeated\n" * 1200
        def readable(self):
            return True
        def readinto(self, b):
            k = min(len(b), self.left, 1 << 16)
            memoryview(b).cast("B")[:k] = self.text[:k] if compressible else os.urandom(k)
            self.left -= k
            return k
    with open(path, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as t:
            info = tarfile.TarInfo(name); info.size = size; info.mtime = 0
            t.addfile(info, io.BufferedReader(Source(), 1 << 20))
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

def make_archive(path, mib):
    d = path + ".d"; os.makedirs(d, exist_ok=True)
    half = mib << 19
    layers = []
    for name, compressible in [("random.bin", False), ("text.txt", True)]:
        lp = os.path.join(d, name + ".tar")
        layers.append((write_layer(lp, name, half, compressible), lp))
    busybox = shutil.which("busybox")
    config = json.dumps({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/random.bin"], "Env": ["PATH=/"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + h for h, _ in layers]}}).encode()
    cname = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cname, "RepoTags": [f"bench/img:{mib}"],
                            "Layers": [h + ".tar" for h, _ in layers]}]).encode()
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
        for h, lp in layers:
            t.add(lp, arcname=h + ".tar")
        for name, data in [(cname, config), ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name); info.size = len(data); info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    shutil.rmtree(d)

# ---------- a registry on loopback, and a byte-counting TCP proxy

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

# Trixie's dockerd 26 and containerd 1.7, unpacked by scripts/install-deps test.
NEWER_DOCKERD = "/var/cache/harden-tests/dockerd-trixie/root/usr"

class Engine:
    """A private dockerd on a unix socket, as ../shared/RECIPES.md starts it: bookworm's
    (classic store, vfs), or with containerd's image store (trixie's, native snapshotter)."""
    def __init__(self, containerd_store=False):
        d = os.path.join(W, "dd-ctrd" if containerd_store else "dd"); os.makedirs(d)
        config, storage, dockerd, env = "{}", "vfs", "dockerd", None
        if containerd_store:
            config, storage = '{"features": {"containerd-snapshotter": true}}', "native"
            dockerd = f"{NEWER_DOCKERD}/sbin/dockerd"
            env = dict(os.environ, PATH=f"{NEWER_DOCKERD}/sbin:{NEWER_DOCKERD}/bin:{os.environ['PATH']}")
        open(os.path.join(d, "daemon.json"), "w").write(config)
        self.host = f"unix://{d}/docker.sock"
        self.p = subprocess.Popen([dockerd, "--config-file", f"{d}/daemon.json", "--data-root", f"{d}/data",
                                   "--exec-root", f"{d}/exec", "--pidfile", f"{d}/d.pid", "-H", self.host,
                                   "--storage-driver", storage, "--iptables=false", "--ip6tables=false",
                                   "--bridge=none"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        for _ in range(300):
            if subprocess.run(["docker", "version"], env=dict(os.environ, DOCKER_HOST=self.host),
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise SystemExit("bench: dockerd did not start")
    def stop(self):
        self.p.terminate(); self.p.wait()

class Registry:
    def __init__(self, name):
        self.dir = os.path.join(W, "reg-" + name); shutil.rmtree(self.dir, ignore_errors=True); os.makedirs(self.dir)
        self.addr = f"127.0.0.1:{free_port()}"
        cfg = os.path.join(self.dir, "config.yml")
        open(cfg, "w").write(f"version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.dir}/data}}}}\nhttp: {{addr: {self.addr}}}\n")
        self.p = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = int(self.addr.split(":")[1])
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("bench: the registry did not start")
    def stop(self):
        self.p.send_signal(signal.SIGTERM); self.p.wait()

class Serve:
    """harden serve on a free port, in front of the registry at `upstream`."""
    def __init__(self, upstream):
        self.log = os.path.join(W, f"serve-{time.monotonic_ns()}.log")
        self.p = subprocess.Popen([HARDEN, "serve", "--listen", "127.0.0.1:0", "--upstream", f"up=http://{upstream}"],
                                  stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        for _ in range(400):
            for line in open(self.log):
                if "listening on " in line:
                    self.addr = line.split("listening on ")[1].split()[0].removeprefix("http://")
                    return
            time.sleep(0.025)
        raise SystemExit("bench: harden serve did not start")
    def get(self, path):
        """Seconds of one GET of `path` (body read), on a new connection."""
        t = time.perf_counter()
        host, port = self.addr.split(":")
        c = socket.create_connection((host, int(port)))
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while (chunk := c.recv(1 << 16)):
            data += chunk
        c.close()
        if not data.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"bench: serve answered {data[:200]!r}")
        return time.perf_counter() - t
    def peak_kib(self):
        for line in open(f"/proc/{self.p.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    def stop(self):
        self.p.terminate(); self.p.wait()

class CountingProxy:
    def __init__(self, upstream):
        self.bytes = 0; self.lock = threading.Lock()
        self.sock = socket.socket(); self.sock.bind(("127.0.0.1", 0)); self.sock.listen(64)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        host, port = upstream.split(":")
        def pipe(a, b):
            try:
                while (data := a.recv(1 << 16)):
                    with self.lock:
                        self.bytes += len(data)
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try: s.shutdown(socket.SHUT_RDWR)
                    except OSError: pass
        def accept():
            while True:
                c, _ = self.sock.accept()
                u = socket.create_connection((host, int(port)))
                threading.Thread(target=pipe, args=(c, u), daemon=True).start()
                threading.Thread(target=pipe, args=(u, c), daemon=True).start()
        threading.Thread(target=accept, daemon=True).start()

# ---------- the cases

def main():
    for tool in ["docker-registry", "skopeo", "umoci", "gosu", "setpriv", "dockerd", "docker"]:
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is missing (make deps installs the tools)")
    shutil.rmtree(W, ignore_errors=True); os.makedirs(W); os.makedirs(OUT, exist_ok=True)
    results = {"sizes_mib": SIZES, "reps": REPS}
    stepdown = os.path.join(W, "harden-stepdown")
    sh(HARDEN, "stepdown-binary", "-o", stepdown)

    print("== offline: docker-archive -> docker-archive")
    offline = []
    for mib in SIZES:
        src = os.path.join(W, f"img-{mib}.tar"); make_archive(src, mib)
        dst = os.path.join(W, "out.tar")
        cp = median(["cp", src, dst], fresh(dst))
        # harden fsyncs what it writes (a crash never leaves a half-written
        # file under the final name); cp does not: both floors are shown.
        cp_sync = median(f"cp {src} {dst} && sync {dst}", fresh(dst))
        h = median([HARDEN, "rewrite", "-q", f"docker-archive:{src}", f"docker-archive:{dst}"], fresh(dst))
        # --no-sync: harden as cp and skopeo write (no fsync), for the like-for-like ratios.
        hn = median([HARDEN, "rewrite", "-q", "--no-sync", f"docker-archive:{src}", f"docker-archive:{dst}"],
                    fresh(dst))
        lay = os.path.join(W, "pipe")
        pipeline = (f"skopeo copy -q docker-archive:{src} oci:{lay}:t && "
                    f"umoci config --image {lay}:t --config.user 1000:1000 && "
                    f"umoci insert --image {lay}:t {stepdown} /.harden/harden-stepdown && "
                    f"skopeo copy -q oci:{lay}:t docker-archive:{dst}:bench/img:p")
        pipe = median(pipeline, fresh(lay, dst), reps=1 if mib == SIZES[-1] else REPS)
        row = {"mib": mib, "cp": cp[0], "cp_sync": cp_sync[0], "harden": h[0], "harden_rss_kib": h[1],
               "harden_no_sync": hn[0], "skopeo_umoci": pipe[0]}
        offline.append(row)
        print(f"  {mib:4} MiB  cp {cp[0]:5.2f}s  cp+sync {cp_sync[0]:5.2f}s  harden {h[0]:5.2f}s"
              f" ({h[0]/cp[0]:.2f}x cp, {h[0]/cp_sync[0]:.2f}x cp+sync, peak {h[1]//1024} MiB)"
              f"  --no-sync {hn[0]:5.2f}s ({hn[0]/cp[0]:.2f}x cp)"
              f"  skopeo+umoci {pipe[0]:5.2f}s ({pipe[0]/h[0]:.1f}x harden, {pipe[0]/hn[0]:.1f}x --no-sync)")
    results["offline"] = offline

    print("== OCI layout -> OCI layout")
    layouts = []
    for mib in [SIZES[0], SIZES[-1]]:
        lay = os.path.join(W, f"lay-{mib}")
        sh("skopeo", "copy", "-q", f"docker-archive:{W}/img-{mib}.tar", f"oci:{lay}:t")
        dst = os.path.join(W, "lay-out")
        cp = median(["cp", "-r", lay, dst], fresh(dst))
        h = median([HARDEN, "rewrite", "-q", f"oci:{lay}:t", f"oci:{dst}:h"], fresh(dst))
        layouts.append({"mib": mib, "cp_r": cp[0], "harden": h[0]})
        print(f"  {mib:4} MiB  cp -r {cp[0]:6.2f}s  harden {h[0]:6.3f}s (blobs hard-linked)")
    results["oci_layout"] = layouts

    print("== same registry: pull-rewrite-push")
    reg = Registry("same")
    proxy = CountingProxy(reg.addr)
    same = []
    big = SIZES[-1]
    for mib, src in [(1, None), (big, f"{W}/img-{big}.tar")]:
        if src is None:
            src = os.path.join(W, "img-1.tar"); make_archive(src, 1)
        sh("skopeo", "copy", "-q", "--dest-tls-verify=false", f"docker-archive:{src}", f"docker://{reg.addr}/bench/img:{mib}")
        runs = []
        for i in range(REPS):
            proxy.bytes = 0
            t, rss = timed([HARDEN, "pull-rewrite-push", "-q", f"{proxy.addr}/bench/img:{mib}",
                            f"{proxy.addr}/bench/out{i}:{mib}", "--plain-http"])
            runs.append((t, proxy.bytes, rss))
        t = statistics.median(r[0] for r in runs)
        same.append({"mib": mib, "seconds": t, "bytes": max(r[1] for r in runs), "rss_kib": max(r[2] for r in runs)})
        print(f"  {mib:4} MiB image: {t:.2f}s, {max(r[1] for r in runs)} bytes through the proxy")
    print(f"  time({big} MiB) / time(1 MiB) = {same[1]['seconds'] / same[0]['seconds']:.2f}")
    results["same_registry"] = same

    print("== across registries")
    cross = {"harden": [], "skopeo": []}
    for i in range(REPS):
        for tool in ["harden", "skopeo"]:
            dest = Registry(f"dest-{tool}-{i}")
            if tool == "harden":
                cmd = [HARDEN, "rewrite", "-q", f"docker://{reg.addr}/bench/img:{big}",
                       f"docker://{dest.addr}/bench/img:h", "--plain-http"]
            else:
                cmd = ["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                       f"docker://{reg.addr}/bench/img:{big}", f"docker://{dest.addr}/bench/img:s"]
            cross[tool].append(timed(cmd)[0])
            dest.stop()
    results["cross_registry"] = {k: statistics.median(v) for k, v in cross.items()}
    c = results["cross_registry"]
    print(f"  {big} MiB: harden {c['harden']:.2f}s, skopeo copy {c['skopeo']:.2f}s ({c['skopeo']/c['harden']:.2f}x harden)")

    # A pull through serve against a pull of the original from the registry
    # itself (skopeo to a dir:, no unpacking); manifest latency from a new
    # serve process (cold: read and hardened) and again (warm: one HEAD upstream).
    print("== harden serve: a pull through serve vs a direct pull")
    pulls = {"direct": [], "serve": []}
    serve = Serve(reg.addr)
    manifest = f"/v2/up/bench/img/manifests/{big}"
    serve.get(manifest)
    pull_dir = os.path.join(W, "pulled")
    for i in range(REPS):
        for tool, at in [("direct", f"{reg.addr}/bench/img:{big}"), ("serve", f"{serve.addr}/up/bench/img:{big}")]:
            pulls[tool].append(timed(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{at}",
                                      f"dir:{pull_dir}"], fresh(pull_dir))[0])
    peak = serve.peak_kib()
    serve.stop()
    cold, warm = [], []
    for i in range(REPS):
        fresh_serve = Serve(reg.addr)
        cold.append(fresh_serve.get(manifest))
        warm.append(statistics.median(fresh_serve.get(manifest) for _ in range(5)))
        fresh_serve.stop()
    sv = {"mib": big, "direct": statistics.median(pulls["direct"]), "serve": statistics.median(pulls["serve"]),
          "manifest_cold": statistics.median(cold), "manifest_warm": statistics.median(warm), "serve_rss_kib": peak}
    results["serve"] = sv
    print(f"  {big} MiB: direct {sv['direct']:.2f}s, through serve {sv['serve']:.2f}s "
          f"({sv['serve']/sv['direct']:.2f}x direct); manifest cold {sv['manifest_cold']*1000:.0f} ms, "
          f"warm {sv['manifest_warm']*1000:.1f} ms; serve's peak {peak // 1024} MiB")

    # Both gzip the archive's plain layers on the way; a fresh registry each
    # time (harden's gzip is deterministic: a second push would find the blobs).
    print("== file to registry: docker-archive -> docker:// (layers gzipped)")
    f2r = {"harden": [], "skopeo": [], "harden_mib_stored": [], "skopeo_mib_stored": []}
    for i in range(REPS):
        for tool in ["harden", "skopeo"]:
            dest = Registry(f"f2r-{tool}-{i}")
            src = f"docker-archive:{W}/img-{big}.tar"
            if tool == "harden":
                cmd = [HARDEN, "rewrite", "-q", src, f"docker://{dest.addr}/bench/img:h", "--plain-http"]
            else:
                cmd = ["skopeo", "copy", "-q", "--dest-tls-verify=false", src, f"docker://{dest.addr}/bench/img:s"]
            f2r[tool].append(timed(cmd)[0])
            f2r[tool + "_mib_stored"].append(int(subprocess.check_output(["du", "-sm", dest.dir]).split()[0]))
            dest.stop()
    results["file_to_registry"] = {k: statistics.median(v) for k, v in f2r.items()}
    f = results["file_to_registry"]
    print(f"  {big} MiB: harden {f['harden']:.2f}s ({f['harden_mib_stored']:.0f} MiB stored), skopeo copy "
          f"{f['skopeo']:.2f}s ({f['skopeo_mib_stored']:.0f} MiB stored) ({f['skopeo']/f['harden']:.2f}x harden)")
    reg.stop()

    for key, containerd_store in [("docker_daemon", False), ("docker_daemon_containerd", True)]:
        store = "containerd image store, dockerd 26" if containerd_store else "classic store, dockerd 20.10"
        print(f"== Docker engine ({store}): docker-daemon: -> docker-daemon: vs docker save | harden | docker load")
        engine = Engine(containerd_store)
        try:
            big = SIZES[-1]
            env = dict(os.environ, DOCKER_HOST=engine.host)
            sh("docker", "load", "-q", "-i", f"{W}/img-{big}.tar", env=env)
            name = f"bench/img:{big}"  # the name make_archive gives it
            untag = lambda: subprocess.run(["docker", "rmi", "-f", "bench/img:h"], env=env, capture_output=True)
            pipe = median(f"DOCKER_HOST={engine.host} docker save {name} | {HARDEN} rewrite -q "
                          f"docker-archive:/dev/stdin docker-archive:/dev/stdout:bench/img:h | "
                          f"DOCKER_HOST={engine.host} docker load -q", untag)
            direct = median(f"DOCKER_HOST={engine.host} {HARDEN} rewrite -q docker-daemon:{name} "
                            f"docker-daemon:bench/img:h", untag)
            results[key] = {"mib": big, "save_harden_load": pipe[0], "harden": direct[0],
                            "harden_rss_kib": direct[1]}
            print(f"  {big:4} MiB  save|harden|load {pipe[0]:6.2f}s  docker-daemon: {direct[0]:6.2f}s"
                  f" ({direct[0]/pipe[0]:.2f}x the pipe, peak {direct[1]//1024} MiB)")
        finally:
            engine.stop()

    print("== step-down: TOOL 1000:1000 /bin/true, 3 x 2000 spawns of each (posix_spawn + wait, no shell)")
    spawn = build_c(SPAWN_C, "spawn")
    floor = build_asm(TRAMPOLINE_S, "trampoline")

    def medians(tools, wrap=()):
        """Median us per spawn of each `PREFIX /bin/true`, the tools taking turns spawn by spawn."""
        cmd = [*wrap, spawn, "2000"]
        for i, prefix in enumerate(tools.values()):
            argv = [shutil.which(prefix[0]) or prefix[0]] + prefix[1:] if prefix else []
            cmd += (["::"] if i else []) + argv + ["/bin/true"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
        return dict(zip(tools, map(float, out)))

    host = {"plain /bin/true": [], "harden-stepdown": [stepdown, "1000:1000"],
            "gosu": ["gosu", "1000:1000"],
            "setpriv": ["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups"],
            "exec trampoline (floor)": [floor]}
    # Root on the host holds all 41 capabilities, each one a drop from the
    # bounding set; in a container the step-down has podman's 11 (its own
    # plain /bin/true is the baseline there).
    podman = ["setpriv", "--bounding-set", "-all," + PODMAN_CAPS]
    runs = {n: [] for n in host}
    in_container = []
    for _ in range(3):
        for n, t in medians(host).items():
            runs[n].append(t)
        c = medians({"plain": [], "harden-stepdown": [stepdown, "1000:1000"]}, podman)
        in_container.append(c["harden-stepdown"] / c["plain"])
    us = {n: statistics.median(v) for n, v in runs.items()}
    base = us.pop("plain /bin/true")
    ratio = {n: t / base for n, t in us.items()}
    ratio[CONTAINER_CAPS] = statistics.median(in_container)
    overhead = {n: t - base for n, t in us.items()}
    overhead[CONTAINER_CAPS] = (ratio[CONTAINER_CAPS] - 1) * base
    results["stepdown_us_per_run"] = overhead
    results["stepdown_ratio_to_plain"] = ratio
    print(f"  plain /bin/true {base:7.0f} us per run")
    for n, o in overhead.items():
        print(f"  {n:38} +{o:6.0f} us per run ({ratio[n]:.2f}x plain)")
    print(f"  harden-stepdown overhead / gosu overhead = {overhead['harden-stepdown'] / overhead['gosu']:.2f}")
    print(f"  harden-stepdown overhead / one bare exec = {overhead['harden-stepdown'] / overhead['exec trampoline (floor)']:.2f}")

    sizes = {"harden-stepdown (amd64)": os.path.getsize(stepdown), "gosu": os.path.getsize(shutil.which("gosu"))}
    for arch in ["arm64", "arm", "386", "riscv64", "ppc64le", "s390x"]:
        path = os.path.join(W, "stepdown-" + arch)
        if subprocess.run([HARDEN, "stepdown-binary", "--arch", arch, "-o", path], capture_output=True).returncode == 0:
            sizes[f"harden-stepdown ({arch})"] = os.path.getsize(path)
    results["binary_bytes"] = sizes
    for n, b in sizes.items():
        print(f"  {n:24} {b:>10} bytes ({b / sizes['gosu']:.2f}x gosu)")

    json.dump(results, open(os.path.join(OUT, "results.json"), "w"), indent=2)
    open(os.path.join(OUT, "chart.svg"), "w").write(chart(offline))
    print(f"wrote {OUT}/results.json and {OUT}/chart.svg")
    if "--write" in sys.argv:
        shutil.copy(os.path.join(OUT, "chart.svg"), os.path.join(ROOT, "docs/bench-chart.svg"))
        json.dump(results, open(os.path.join(ROOT, "docs/bench-results.json"), "w"), indent=2)
    shutil.rmtree(W, ignore_errors=True)

CONTAINER_CAPS = "harden-stepdown, podman's capabilities"
# podman's default capabilities (containers.conf), what a container's step-down holds.
PODMAN_CAPS = ("+chown,+dac_override,+fowner,+fsetid,+kill,+net_bind_service,+setfcap,+setgid,"
               "+setpcap,+setuid,+sys_chroot")

# Runs each command N times with posix_spawn + waitpid, the commands taking
# turns; prints each one's median in microseconds.
SPAWN_C = r"""
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
/* spawn N CMD... [:: CMD...]...: the commands take turns, spawn by spawn, so that
   drift of the machine hits each alike; prints each one's median in us. */
int main(int argc, char **argv) {
    int n = atoi(argv[1]), k = 0;
    char **cmds[16];
    cmds[k++] = argv + 2;
    for (int i = 2; i < argc && k < 16; i++)
        if (!strcmp(argv[i], "::")) { argv[i] = NULL; cmds[k++] = argv + i + 1; }
    double *t = malloc(sizeof(double) * n * k);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < k; c++) {
            struct timespec a, b;
            pid_t pid;
            int st;
            clock_gettime(CLOCK_MONOTONIC, &a);
            if (posix_spawn(&pid, cmds[c][0], NULL, NULL, cmds[c], environ) != 0) return 2;
            if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 3;
            clock_gettime(CLOCK_MONOTONIC, &b);
            t[c * n + i] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3;
        }
    for (int c = 0; c < k; c++) {
        qsort(t + c * n, n, sizeof(double), cmp);
        printf("%.1f\n", t[c * n + n / 2]);
    }
    return 0;
}
"""

# The least any step-down can cost: a static binary that only execs argv[1:].
TRAMPOLINE_S = """
.globl _start
_start:
    mov (%rsp), %rcx
    lea 16(%rsp), %rsi
    mov (%rsi), %rdi
    lea 16(%rsp,%rcx,8), %rdx
    mov $59, %eax
    syscall
    mov $60, %eax
    mov $127, %edi
    syscall
"""

def build_c(source, name):
    path = os.path.join(W, name)
    open(path + ".c", "w").write(source)
    sh("gcc", "-O2", "-o", path, path + ".c")
    return path

def build_asm(source, name):
    path = os.path.join(W, name)
    open(path + ".s", "w").write(source)
    sh("gcc", "-nostdlib", "-static", "-o", path, path + ".s")
    return path

def chart(rows):
    """Seconds against image size, one line per tool, as a small SVG."""
    w, h, m = 560, 320, 50
    xs = [r["mib"] for r in rows]
    series = {"cp (floor)": "cp", "cp + sync": "cp_sync", "harden": "harden", "harden --no-sync": "harden_no_sync",
              "skopeo + umoci": "skopeo_umoci"}
    ymax = max(r[k] for r in rows for k in series.values()) * 1.1
    X = lambda v: m + (w - 2 * m) * v / max(xs)
    Y = lambda v: h - m - (h - 2 * m) * v / ymax
    colors = ["#888", "#5a5", "#c03", "#e80", "#06c"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<line x1="{m}" y1="{h-m}" x2="{w-m}" y2="{h-m}" stroke="black"/><line x1="{m}" y1="{m}" x2="{m}" y2="{h-m}" stroke="black"/>',
           f'<text x="{w/2}" y="{h-12}" text-anchor="middle">image size (MiB), docker-archive to docker-archive</text>',
           f'<text x="14" y="{h/2}" transform="rotate(-90 14 {h/2})" text-anchor="middle">seconds (median)</text>']
    for x in xs:
        out.append(f'<text x="{X(x):.0f}" y="{h-m+16}" text-anchor="middle">{x}</text>')
    for i in range(5):
        v = ymax * i / 4
        out.append(f'<text x="{m-6}" y="{Y(v)+4:.0f}" text-anchor="end">{v:.1f}</text>')
    for k, ((label, key), color) in enumerate(zip(series.items(), colors)):
        pts = " ".join(f"{X(r['mib']):.1f},{Y(r[key]):.1f}" for r in rows)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{m+10}" y="{m+16*k}" fill="{color}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out)

if __name__ == "__main__":
    main()
