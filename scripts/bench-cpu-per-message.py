#!/usr/bin/env python3
"""CPU time per message of wardgate under the same load, interleaved: a base
build (--base, e.g. main's), this build with metrics off, and this build with
[gateway.admin] metrics on and scraped every second. CPU is the gateway
process's utime+stime from /proc/PID/task/*/stat around each load run: on a
shared host it is much steadier than throughput (BENCHMARKS.md).

    cargo build --release -p wardgate -p wardgate-bench
    scripts/bench-cpu-per-message.py --base /path/to/main/wardgate --rounds 8
"""
import argparse, json, os, socket, subprocess, threading, time, statistics, urllib.request, shutil, tempfile

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--base", help="another wardgate binary to compare with (optional)")
ap.add_argument("--rounds", type=int, default=8)
ap.add_argument("--seconds", type=float, default=3.0)
ap.add_argument("--connections", type=int, default=64)
args = ap.parse_args()
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BENCH = "target/release/wardgate-bench"
NEW = "target/release/wardgate"
ROUNDS, SECONDS, CONNS = args.rounds, args.seconds, args.connections
TCK = os.sysconf("SC_CLK_TCK")

def free(ip="127.0.0.1"):
    s = socket.socket(); s.bind((ip, 0)); p = s.getsockname()[1]; s.close(); return p

def wait(ip, port):
    for _ in range(200):
        try:
            socket.create_connection((ip, port), 0.2).close(); return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{ip}:{port} not listening")

tmp = tempfile.mkdtemp(prefix="wg-cpu-")
procs = []
sink = f"127.0.0.3:{free('127.0.0.3')}"
procs.append(subprocess.Popen([BENCH, "sink", "--listen", sink]))
wait("127.0.0.3", int(sink.split(":")[1]))

def gateway(name, binary, metrics):
    d = os.path.join(tmp, name); os.makedirs(d)
    port = free()
    admin = f'\n[gateway.admin]\nmetrics = "127.0.0.1:{metrics}"\n' if metrics else ""
    cfg = os.path.join(d, "site.toml")
    open(cfg, "w").write(f'''[gateway]
data_dir = "{d}/data"
{admin}
[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[device.limits]
messages_per_sec = 10000000
messages_burst = 10000000
new_connections_per_sec = 100000
new_connections_burst = 100000
max_connections_per_device = 4096

[[device]]
id = "sink"
kind = "ehr"
addresses = ["127.0.0.3"]

[[route]]
id = "bench"
protocol = "hl7-mllp"
listen = "127.0.0.1:{port}"
upstream = "{sink}"
senders = ["ehr"]
messages = ["ORU^R01"]
''')
    p = subprocess.Popen([binary, "serve", "--config", cfg], env={**os.environ, "WARDGATE_LOG": "warn"}, stderr=subprocess.DEVNULL)
    procs.append(p)
    wait("127.0.0.1", port)
    return (name, p.pid, port, metrics)

def cpu(pid):
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        f = open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
        total += int(f[11]) + int(f[12])
    return total / TCK

try:
    m = free()
    targets = [gateway("metrics-off", NEW, None), gateway("metrics-on", NEW, m)]
    if args.base:
        targets.insert(0, gateway("base", args.base, None))
    wait("127.0.0.1", m)
    res = {t[0]: [] for t in targets}
    for r in range(ROUNDS):
        for k in range(len(targets)):
            name, pid, port, metrics = targets[(k + r) % len(targets)]
            stop = threading.Event(); scrapes = [0]
            def scrape():
                while not stop.is_set():
                    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read()
                    assert b"wardgate_messages_total" in body
                    scrapes[0] += 1
                    stop.wait(1.0)
            th = threading.Thread(target=scrape) if metrics else None
            if th: th.start()
            c0 = cpu(pid)
            out = subprocess.run([BENCH, "load", "--target", f"127.0.0.1:{port}", "--connections", str(CONNS),
                                  "--seconds", str(SECONDS), "--warmup-seconds", "0", "--json"], capture_output=True, text=True, check=True).stdout
            c1 = cpu(pid)
            if th: stop.set(); th.join()
            j = json.loads(out.strip().splitlines()[-1])
            assert j["not_aa"] == 0 and j["errors"] == 0, j
            us = (c1 - c0) / j["messages"] * 1e6
            res[name].append((us, j["rate"]))
            print(f"round {r} {name:<12} {j['rate']:8.0f} msg/s  {us:6.2f} us CPU/msg" + (f"  scrapes {scrapes[0]}" if metrics else ""), flush=True)
    print()
    for name, v in res.items():
        print(f"{name:<12} CPU/msg median {statistics.median(x for x,_ in v):.2f} us (range {min(x for x,_ in v):.2f}-{max(x for x,_ in v):.2f}), msg/s median {statistics.median(y for _,y in v):.0f}")
    off, on = res["metrics-off"], res["metrics-on"]
    print("paired CPU/msg ratio metrics-on/metrics-off median %.3f" % statistics.median(x[0]/y[0] for x,y in zip(on,off)))
    if args.base:
        b = res["base"]
        print("paired CPU/msg ratio metrics-off/base median %.3f" % statistics.median(x[0]/y[0] for x,y in zip(off,b)))
        print("paired CPU/msg ratio metrics-on/base median %.3f" % statistics.median(x[0]/y[0] for x,y in zip(on,b)))
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try: p.wait(20)
        except Exception: p.kill()
    shutil.rmtree(tmp, ignore_errors=True)
