"""Issue 16, parts 5 and 6: the whole configuration reloads without a restart
(devices, routes, drug libraries), atomically for new messages, an invalid file
leaves the running policy in force and says why, every decision names its
policy; drug libraries signed by the pharmacy's Ed25519 key, refused when
unsigned or tampered with. Against `wardgate serve`, the `hl7` MLLP client and a
recording `hl7` MLLP server."""
import json
import subprocess
import time

import conftest
from conftest import Gateway, wardgate_bin
from test_hl7_mllp import SourceBoundClient, events_until, heparin, msa, order, send, unframe


def reload(g):
    g.cli("reload")


def sighup(g):
    """SIGHUP straight to the process: what an operator's `kill -HUP` does, even
    with a file `wardgate reload` itself refuses to load."""
    import os
    import signal

    os.kill(g.proc.pid, signal.SIGHUP)


def applied_events(g):
    return [e for e in g.events() if e.get("wardgate", {}).get("policy_applied")]


def wait_applied(g, n, timeout=10):
    evs = events_until(g, lambda e: len([x for x in e if x.get("wardgate", {}).get("policy_applied")]) >= n, timeout)
    out = [e for e in evs if e.get("wardgate", {}).get("policy_applied")]
    assert len(out) >= n, [e["event"] for e in evs]
    assert all(e["event"]["action"] == "policy-applied" for e in out)
    return out


def test_a_lowered_hard_limit_applies_to_new_messages_without_a_restart(tmp_path, upstream):
    g = Gateway(tmp_path, upstream.port)
    try:
        start = wait_applied(g, 1)[0]
        assert start["wardgate"]["policy_applied"]["previous"] is None if "previous" in start["wardgate"]["policy_applied"] else True
        assert g.cli("check", "--running").returncode == 0
        # 30 mL/h at 50 U/mL = 1500 U/h: within the 2000 U/h hard limit.
        assert msa(send(g, order("RL-1", heparin(30))))[0] == "AA"
        # A connection open across the reload: its next message uses the new policy.
        with SourceBoundClient(*g.addr, "127.0.0.2") as open_conn:
            assert msa(unframe(open_conn.send_message(order("RL-2", heparin(30)))))[0] == "AA"
            g.config.write_text(g.config.read_text().replace("rate_hard_max = 2000", "rate_hard_max = 1000\nrate_hard_min = 10")
                                .replace("rate_soft_max = 1500", "rate_soft_max = 800"))
            assert g.cli("check", "--running", check=False).returncode == 1
            reload(g)
            second = wait_applied(g, 2)[-1]["wardgate"]
            pa = second["policy_applied"]
            assert pa["previous"] == start["wardgate"]["policy_applied"]["hash"]
            assert any("heparin" in c and "1000" in c for c in pa["changes"]), pa["changes"]
            assert g.cli("check", "--running").returncode == 0
            code, _, text = msa(unframe(open_conn.send_message(order("RL-3", heparin(30)))))
            assert code == "AR" and "WG-INF-010" in text, text
        code, _, _ = msa(send(g, order("RL-4", heparin(30))))
        assert code == "AR"
        evs = g.events()
        by_cid = {e["wardgate"]["hl7"]["control_id"]: e for e in evs
                  if e.get("wardgate", {}).get("hl7", {}).get("control_id", "").startswith("RL-")}
        new_short = pa["hash"][:16]
        old_short = start["wardgate"]["policy_applied"]["hash"][:16]
        assert by_cid["RL-1"]["wardgate"]["policy"] == old_short
        assert by_cid["RL-3"]["wardgate"]["policy"] == new_short
        assert by_cid["RL-4"]["wardgate"]["policy"] == new_short
        assert [m.decode().split("|")[9] for m in upstream.received] == ["RL-1", "RL-2"]
    finally:
        g.stop()


def test_an_invalid_file_leaves_the_running_policy_and_says_why(tmp_path, upstream):
    g = Gateway(tmp_path, upstream.port)
    try:
        wait_applied(g, 1)
        good = g.config.read_text()
        # The gateway's own file goes bad; the CLI reads events through a good copy.
        live = g.config
        g.config = tmp_path / "good.toml"
        g.config.write_text(good)
        live.write_text(good.replace('rate_unit = "U/h"', 'rate_unit = "furlongs"'))
        r = subprocess.run([wardgate_bin(), "reload", "--config", str(live)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "furlongs" in r.stderr, r.stderr
        sighup(g)
        evs = events_until(g, lambda e: any("reload refused" in x["event"]["reason"] for x in e))
        refused = [x for x in evs if "reload refused" in x["event"]["reason"]]
        assert refused and "furlongs" in refused[0]["event"]["reason"], refused
        assert subprocess.run([wardgate_bin(), "check", "--running", "--config", str(live)], capture_output=True, timeout=60).returncode == 2
        # Still the old policy: 41 mL/h (2050 U/h) blocked, 20 mL/h allowed.
        assert msa(send(g, order("INV-1", heparin(41))))[0] == "AR"
        assert msa(send(g, order("INV-2", heparin(20))))[0] == "AA"
        # [gateway] settings need a restart: refused, not half-applied.
        live.write_text(good.replace("frame_timeout_secs = 3", "frame_timeout_secs = 4"))
        sighup(g)
        events_until(g, lambda e: any("[gateway] settings" in x["event"]["reason"] for x in e))
        assert g.cli("check", "--running", check=False).returncode == 0, "the good copy is what runs"
        # Changing a listener needs a restart: refused too.
        live.write_text(good.replace(f"127.0.0.1:{g.listen_port}", f"127.0.0.1:{conftest.free_port()}"))
        sighup(g)
        events_until(g, lambda e: any("restart wardgate" in x["event"]["reason"] for x in e))
    finally:
        g.stop()


LIBRARY = """version = "2026.12-7"

[[drug]]
names = ["heparin", "HEP"]
rate_unit = "U/h"
rate_soft_max = 1500
rate_hard_max = 2000
"""

SIGNED_SITE = conftest.SITE.split("[[drug_library]]")[0] + """
[[drug_library]]
id = "adult-icu"
file = "adult-icu.toml"
require_signed = true

[[library_signer]]
id = "pharmacy"
public_key = "{public_key}"
"""


def run(*args):
    return subprocess.run([wardgate_bin(), *args], capture_output=True, text=True, timeout=60)


def test_a_signed_library_is_required_and_tampering_is_refused(tmp_path, upstream):
    key = tmp_path / "pharmacy.key"
    pub = run("library", "keygen", "--out", str(key))
    assert pub.returncode == 0, pub.stderr
    public_key = pub.stdout.strip()
    lib = tmp_path / "adult-icu.toml"
    lib.write_text(LIBRARY)
    # Unsigned: refused at start (check), naming the missing signature.
    site = SIGNED_SITE.replace("{public_key}", public_key)
    cfg = tmp_path / "unsigned.toml"
    cfg.write_text(site.format(data_dir=tmp_path / "d0", listen_port=0, upstream_port=upstream.port, max_frame=65536))
    r = run("check", "--config", str(cfg))
    assert r.returncode == 2 and "must be signed" in r.stderr, r.stderr
    # Signed: accepted, and decisions name the library's version and signer.
    assert run("library", "sign", "--key", str(key), "--signer", "pharmacy", str(lib)).returncode == 0
    assert run("library", "verify", "--public-key", public_key, "--signer", "pharmacy", str(lib)).returncode == 0
    g = Gateway(tmp_path, upstream.port, site=site)
    try:
        assert msa(send(g, order("SIG-1", heparin(41))))[0] == "AR"
        evs = events_until(g, lambda e: any(x.get("wardgate", {}).get("infusion") for x in e))
        inf = next(x for x in evs if x.get("wardgate", {}).get("infusion"))["wardgate"]["infusion"][0]
        assert inf["library_signer"].startswith("pharmacy (key sha256:") and inf["library_version"] == "2026.12-7", inf
        start = wait_applied(g, 1)[0]["wardgate"]["policy_applied"]
        assert any("signed by pharmacy" in x for x in start["libraries"]), start
        # The CLI reads events through a copy of the library as signed.
        (tmp_path / "good-lib.toml").write_bytes(lib.read_bytes())
        (tmp_path / "good-lib.toml.sig").write_bytes((tmp_path / "adult-icu.toml.sig").read_bytes())
        live = g.config
        g.config = tmp_path / "good.toml"
        g.config.write_text(live.read_text().replace('file = "adult-icu.toml"', 'file = "good-lib.toml"'))
        # Someone who can edit files on the gateway raises the hard limit, without the key.
        lib.write_text(LIBRARY.replace("rate_hard_max = 2000", "rate_hard_max = 200000"))
        sighup(g)
        evs = events_until(g, lambda e: any("reload refused" in x["event"]["reason"] for x in e))
        refused = [x for x in evs if "reload refused" in x["event"]["reason"]][0]
        assert "signature" in refused["event"]["reason"], refused["event"]["reason"]
        assert msa(send(g, order("SIG-2", heparin(41))))[0] == "AR", "the tampered limit must not apply"
        # The same check at start: a tampered file is refused.
        r = run("check", "--config", str(live))
        assert r.returncode == 2 and "does not match" in r.stderr, r.stderr
    finally:
        g.stop()
