#!/usr/bin/env python3
"""CPU per message, idle and steal share, per target, at one connection count.

Runs HAProxy (TCP mode, nbthread 2), the plain tokio relay and each wardgate
build named on the command line against one sink, round-robin, and prints per
round: msg/s, p99, CPU per message from /proc/PID/task/*/stat (utime+stime of
every thread; `~user` is utime alone), the host's idle (idle+iowait) and steal
share from /proc/stat, and context switches per message.

Usage (after `cargo build --release -p wardgate -p wardgate-bench`):
    CONNS=64 ROUNDS=6 python3 scripts/cpu-per-message.py NAME=PATH [NAME=PATH ...]
PATH is a wardgate binary or a wrapper script taking `serve --config FILE`.
Loopback only; each load run is 3 s plus 0.5 s warm-up.
"""
import subprocess, time, os, json, sys, socket, glob, tempfile, shutil
ROOT=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B=os.path.join(ROOT,'target/release/wardgate-bench')
T=tempfile.mkdtemp(prefix='wardgate-cpu-')
def port(ip):
    s=socket.socket(); s.bind((ip,0)); p=s.getsockname()[1]; s.close(); return p
def threads(pid):
    out={}
    for d in glob.glob(f'/proc/{pid}/task/*'):
        try:
            st=open(d+'/stat').read(); name=st[st.index('(')+1:st.rindex(')')]
            f=st[st.rindex(')')+2:].split()
            out.setdefault(name,0); out[name]+= (int(f[11])+int(f[12]))/os.sysconf('SC_CLK_TCK'); out.setdefault('~user',0); out['~user']+=int(f[11])/os.sysconf('SC_CLK_TCK')
            cs=open(d+'/status').read()
        except Exception: pass
    return out
def cpustat():
    f=open('/proc/stat').readline().split()[1:]
    f=list(map(int,f)); return f[3]+f[4], f[7] if len(f)>7 else 0, sum(f)
def ctx(pid):
    v=nv=0
    for d in glob.glob(f'/proc/{pid}/task/*'):
        try:
            for l in open(d+'/status'):
                if l.startswith('voluntary_ctxt_switches'): v+=int(l.split()[1])
                if l.startswith('nonvoluntary_ctxt_switches'): nv+=int(l.split()[1])
        except Exception: pass
    return v,nv
sp=port('127.0.0.3'); sink=subprocess.Popen([B,'sink','--listen',f'127.0.0.3:{sp}'])
targets={}
lp=port('127.0.0.1'); open(f'{T}/h.cfg','w').write(f"global\n  nbthread 2\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\nfrontend fe\n  bind 127.0.0.1:{lp}\n  default_backend be\nbackend be\n  server s1 127.0.0.3:{sp}\n")
targets['haproxy']=(subprocess.Popen(['haproxy','-f',f'{T}/h.cfg','-db'],stdout=subprocess.DEVNULL),lp)
lp=port('127.0.0.1'); targets['relay']=(subprocess.Popen([B,'relay','--listen',f'127.0.0.1:{lp}','--upstream',f'127.0.0.3:{sp}']),lp)
lim="max_connections_per_device = 4096\nnew_connections_per_sec = 100000\nnew_connections_burst = 100000\nmessages_per_sec = 10000000\nmessages_burst = 10000000\n"
for name,binp in [a.split('=') for a in sys.argv[1:]]:
    lp=port('127.0.0.1'); d=f'{T}/{name}'; subprocess.run(['rm','-rf',d]); os.makedirs(d)
    open(f'{d}/w.toml','w').write(f'[gateway]\ndata_dir = "{d}/data"\n\n[[device]]\nid = "ehr"\nkind = "ehr"\naddresses = ["127.0.0.2"]\n\n[device.limits]\n{lim}\n[[device]]\nid = "sink"\nkind = "ehr"\naddresses = ["127.0.0.3"]\n\n[[route]]\nid = "bench"\nprotocol = "hl7-mllp"\nlisten = "127.0.0.1:{lp}"\nupstream = "127.0.0.3:{sp}"\nsenders = ["ehr"]\nmessages = ["ORU^R01"]\n')
    targets[name]=(subprocess.Popen([binp,'serve','--config',f'{d}/w.toml'],env=dict(os.environ,WARDGATE_LOG='warn')),lp)
time.sleep(1.5)
res={k:[] for k in targets}
try:
  for rnd in range(int(os.environ.get('ROUNDS','4'))):
    for name,(p,lp) in targets.items():
        t0=threads(p.pid); s0=threads(sink.pid); c0=ctx(p.pid); k0=cpustat()
        out=subprocess.run([B,'load','--target',f'127.0.0.1:{lp}','--connections',os.environ.get('CONNS','4'),'--seconds','3','--warmup-seconds','0.5','--json'],capture_output=True,text=True).stdout
        t1=threads(p.pid); s1=threads(sink.pid); c1=ctx(p.pid); k1=cpustat(); idle=(k1[0]-k0[0])/(k1[2]-k0[2]); steal=(k1[1]-k0[1])/(k1[2]-k0[2])
        r=json.loads(out); n=r['rate']*3.5
        per={k:(t1.get(k,0)-t0.get(k,0))/n*1e6 for k in t1}
        res[name].append((r['rate'],r['p99_us'],sum(v for k,v in per.items() if k!='~user'),per,(c1[0]-c0[0])/n,(c1[1]-c0[1])/n))
        print(f"{rnd} {name:10} idle {idle:.3f} steal {steal:.3f} rate {r['rate']:.0f} p99 {r['p99_us']} cpu/msg {sum(v for k,v in per.items() if k!='~user'):.1f}us ctx/msg v {(c1[0]-c0[0])/n:.2f} nv {(c1[1]-c0[1])/n:.3f} "+' '.join(f'{k}:{v:.1f}' for k,v in per.items() if v>0.05), flush=True)
finally:
    for p,_ in targets.values(): p.terminate()
    sink.terminate()
    time.sleep(0.5)
    shutil.rmtree(T, ignore_errors=True)

# Medians over rounds; "paired" is the median of each round's ratio to HAProxy's run
# in the same round (the steadier figure on a shared host).
import statistics as st
h = res['haproxy']
for name, rows in res.items():
    if not rows:
        continue
    n = min(len(rows), len(h))
    pr = st.median(rows[i][0] / h[i][0] for i in range(n))
    pp = st.median(rows[i][1] / h[i][1] for i in range(n))
    print(f"{name:10} msg/s {st.median(r[0] for r in rows):.0f} p99 {st.median(r[1] for r in rows):.0f} us "
          f"cpu/msg {st.median(r[2] for r in rows):.1f} us  paired msg/s vs haproxy {pr:.2f} p99 {pp:.2f}")
