#!/usr/bin/env python3
"""Which cases of the evasion corpus (tests/evasion/corpus) wardgate and Suricata
each detect as an anomaly, and whether wardgate's verdict matches what the Linux
receiver read. Writes the Markdown tables to stdout (docs/evasion.md keeps them).

    scripts/evasion-compare.py --wardgate-bin target/release/wardgate > /tmp/evasion.md

Suricata (Debian bookworm-backports, 7.0) runs twice on each capture:
- "default": its default configuration as installed (no rule set: the default
  rule path holds none), counting any eve `anomaly` record or alert;
- "event rules": the same plus the stream and decoder event rules it ships
  (/etc/suricata/rules/stream-events.rules, decoder-events.rules), which turn its
  TCP and decoder anomalies into alerts.
wardgate: `wardgate analyze` with the site of tests/interop/test_evasion_corpus.py;
an anomaly is any WG-CAP rule; the verdict is right when every unsafe order the
host read is an observed violation (or an ambiguity rule says it cannot know) and
no order the host read as safe is one.
"""
import argparse
import collections
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "evasion" / "corpus"
sys.path.insert(0, str(ROOT / "tests" / "interop"))
from test_evasion_corpus import SITE, judge  # noqa: E402


def suricata(pcap, rules):
    with tempfile.TemporaryDirectory() as d:
        cmd = ["suricata", "-r", str(pcap), "-k", "none", "--runmode", "single", "-l", d]
        if rules:
            # One -S only (a second replaces the first): the two files joined.
            both = pathlib.Path(d) / "events.rules"
            both.write_text("".join(pathlib.Path("/etc/suricata/rules", f).read_text()
                                    for f in ("stream-events.rules", "decoder-events.rules")))
            cmd += ["-S", str(both)]
        subprocess.run(cmd, capture_output=True, timeout=120)
        eve = pathlib.Path(d) / "eve.json"
        names = set()
        if eve.exists():
            for line in eve.read_text().splitlines():
                e = json.loads(line)
                if e.get("event_type") == "alert":
                    names.add(e["alert"]["signature"].replace("SURICATA ", ""))
                elif e.get("event_type") == "anomaly":
                    a = e["anomaly"]
                    names.add(a.get("event") or a.get("type", "anomaly"))
        return sorted(names)


def wardgate(binary, site, pcap, meta):
    outcome, rules, _ = judge(binary, site, pcap, meta)
    verdict = {"correct": "right", "false-alarm": "false alarm"}.get(outcome, outcome)
    return [r for r in rules if r.startswith("WG-CAP")], verdict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wardgate-bin", default=str(ROOT / "target" / "release" / "wardgate"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        site = pathlib.Path(d) / "site.toml"
        site.write_text(SITE.format(data_dir=pathlib.Path(d) / "data"))
        rows, by_class = [], collections.defaultdict(collections.Counter)
        for j in sorted(CORPUS.glob("*.json")):
            meta = json.loads(j.read_text())
            pcap = j.with_suffix(".pcap")
            wg, verdict = wardgate(args.wardgate_bin, site, pcap, meta)
            s_default = suricata(pcap, False)
            s_rules = suricata(pcap, True)
            c = by_class[meta["class"]]
            c["cases"] += 1
            c["wardgate anomaly"] += bool(wg)
            c["wardgate verdict " + verdict] += 1
            c["suricata default"] += bool(s_default)
            c["suricata rules"] += bool(s_rules)
            rows.append((meta["name"], meta["class"], meta["summary"], verdict, ", ".join(wg) or "-",
                         ", ".join(s_default) or "-", ", ".join(s_rules) or "-"))
    print("| class | cases | wardgate: verdict right | wardgate: ambiguity named instead | wardgate: missed or false alarm | wardgate: anomaly reported | Suricata default: anomaly | Suricata + event rules: anomaly |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    tot = collections.Counter()
    for cls, c in sorted(by_class.items()):
        tot.update(c)
        print(f"| {cls} | {c['cases']} | {c['wardgate verdict right']} | {c['wardgate verdict flagged']} | "
              f"{c['wardgate verdict missed'] + c['wardgate verdict false alarm']} | {c['wardgate anomaly']} | "
              f"{c['suricata default']} | {c['suricata rules']} |")
    print(f"| **all** | {tot['cases']} | {tot['wardgate verdict right']} | {tot['wardgate verdict flagged']} | "
          f"{tot['wardgate verdict missed'] + tot['wardgate verdict false alarm']} | {tot['wardgate anomaly']} | "
          f"{tot['suricata default']} | {tot['suricata rules']} |")
    print()
    print("| case | class | the host read | wardgate verdict | wardgate anomalies | Suricata default | Suricata + event rules |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
