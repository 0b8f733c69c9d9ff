"""The evasion corpus' ground truth stays checked against the real Linux kernel.

tests/evasion/corpus/<case>.json records what a Linux receiver application read
when the case's crafted TCP/IP traffic was sent at it (tests/evasion/gen_corpus.py).
This test re-runs every case live, in fresh network namespaces (cli -> Linux router
-> srv, tests/evasion/netlab.py), and asserts the receiver still reads exactly those
bytes. Needs root (namespaces, veth, raw sockets): skipped without it on a
developer's machine, a failure under CI=true.
"""
import base64
import json
import os
import sys
import time

import pytest

from conftest import CI, ROOT, require_module, require_tool

EVASION = ROOT / "tests" / "evasion"
CORPUS = EVASION / "corpus"
# The whole module, setup included: 160 s for 341 cases here (session 35), the
# ones that end idle waiting 6.5 s each; room for a slower host.
BUDGET_SECS = 260
MIN_CASES = 90


def corpus_names():
    return sorted(p.stem for p in CORPUS.glob("*.json"))


def _unavailable(reason):
    if CI:
        pytest.fail(f"evasion lab unavailable: {reason}")
    pytest.skip(f"evasion lab unavailable: {reason}")


@pytest.fixture(scope="module")
def evasion():
    """The case definitions and a running lab (torn down at the end of the module)."""
    started = time.monotonic()
    if os.geteuid() != 0:
        _unavailable("needs root (network namespaces, veth, raw sockets)")
    require_tool("ip")
    require_module("scapy")
    sys.path.insert(0, str(EVASION))
    import cases
    import gen_corpus
    import netlab

    try:
        lab = netlab.Lab()
        lab.__enter__()
    except (netlab.LabError, OSError) as e:
        _unavailable(str(e))
    try:
        yield {"cases": cases, "gen": gen_corpus, "netlab": netlab, "lab": lab,
               "deadline": started + BUDGET_SECS, "index": {c.name: i for i, c in enumerate(cases.CASES)}}
    finally:
        lab.teardown()


def test_corpus_and_cases_agree():
    sys.path.insert(0, str(EVASION))
    import cases

    names = corpus_names()
    assert len(names) >= MIN_CASES
    assert names == sorted(c.name for c in cases.CASES), "corpus and cases.py name different cases"
    index = (CORPUS / "INDEX.md").read_text()
    for name in names:
        rec = json.loads((CORPUS / f"{name}.json").read_text())
        assert rec["name"] == name and rec["target"] == "linux" and rec["live"] is True
        assert (CORPUS / f"{name}.pcap").stat().st_size > 24, f"{name}.pcap holds no packet"
        read = base64.b64decode(rec["host_read_b64"])
        assert rec["orders"] == cases.frames_read(read), f"{name}: orders do not match host_read"
        assert f"| {name} |" in index
    # A bound on what the repository carries: about 9 KB a case (4 MiB since
    # session 35's 49 FIN cases took 341 cases past 3 MiB).
    total = sum(p.stat().st_size for p in CORPUS.iterdir())
    assert total < 4 * 1024 * 1024, f"corpus is {total} bytes"


@pytest.mark.parametrize("name", corpus_names())
def test_linux_still_reads_what_the_corpus_says(evasion, name):
    if time.monotonic() > evasion["deadline"]:
        pytest.fail(f"time budget of {BUDGET_SECS}s for the live evasion cases exceeded")
    cases, netlab = evasion["cases"], evasion["netlab"]
    case = cases.by_name().get(name)
    assert case is not None, f"{name} is in the corpus but not in cases.py"
    rec = json.loads((CORPUS / f"{name}.json").read_text())
    want = base64.b64decode(rec["host_read_b64"])
    try:
        res = evasion["gen"].run_live(evasion["lab"], evasion["index"][name], case, None, log=lambda m: None)
    except netlab.CaseError as e:
        pytest.fail(f"could not run {name} live: {e}")
    got = res["host_read"]
    assert got == want, (
        f"{name}: the Linux receiver now reads {cases.summary(got)!r} ({len(got)} bytes, {res['host_end']}); "
        f"the corpus says {rec['summary']!r} ({len(want)} bytes, {rec['host_end']}). "
        f"Regenerate with tests/evasion/gen_corpus.py if the kernel's behaviour changed.")
