"""DICOM TLS through wardgate with dcmtk on both sides: storescu `+tls` from the CT
scanner (its certificate, issued by wardgate's CA, names the device), wardgate
terminating and originating TLS, storescp `+tls` as the PACS requiring wardgate's
client certificate. The stored object arrives intact."""
import subprocess

from pydicom.data import get_testdata_file

from conftest import Gateway, free_port, require_tool, wait_port, wardgate_bin
from test_dicom import SITE

CT = get_testdata_file("CT_small.dcm")

TLS_DICOM_SITE = SITE.replace(
    '[[device]]\nid = "ct-1"',
    '[[device]]\nid = "wardgate-gw"\nkind = "gateway"\naddresses = ["127.0.0.99"]\n\n[[device]]\nid = "ct-1"',
    1,
) + """
[route.listen_tls]
cert = "{data_dir}/../certs/wardgate-gw.crt"
key = "{data_dir}/../certs/wardgate-gw.key"

[route.upstream_tls]
server_name = "pacs"
cert = "{data_dir}/../certs/wardgate-gw.crt"
key = "{data_dir}/../certs/wardgate-gw.key"
"""


def wg(cfg, *args):
    return subprocess.run([wardgate_bin(), *args, "--config", str(cfg)], capture_output=True, text=True,
                          timeout=60, check=True)


def test_dicom_tls_end_to_end_with_dcmtk(tmp_path):
    require_tool("storescu")
    cfg = tmp_path / "ca.toml"
    cfg.write_text(TLS_DICOM_SITE.format(data_dir=tmp_path / "data", listen_port=1, upstream_port=1))
    wg(cfg, "ca", "init")
    certs = tmp_path / "certs"
    for dev in ("wardgate-gw", "ct-1", "pacs"):
        wg(cfg, "device", "enroll", dev, "--out", str(certs))
    ca = str(tmp_path / "data" / "tls" / "ca.crt")
    out = tmp_path / "pacs"
    out.mkdir()
    port = free_port("0.0.0.0")
    scp = subprocess.Popen(["storescp", "-aet", "PACS", "-od", str(out), "+B",
                            "+tls", str(certs / "pacs.key"), str(certs / "pacs.crt"), "+cf", ca, "-rc", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    gw = None
    try:
        gw = Gateway(tmp_path, port, site=TLS_DICOM_SITE)
        r = subprocess.run(["storescu", "-aet", "CT01", "-aec", "PACS",
                            "+tls", str(certs / "ct-1.key"), str(certs / "ct-1.crt"), "+cf", ca,
                            "127.0.0.1", str(gw.listen_port), CT], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        stored = [p for p in out.iterdir() if p.is_file()]
        assert len(stored) == 1
        from pydicom import dcmread

        got, sent = dcmread(stored[0]), dcmread(CT)
        assert got.SOPInstanceUID == sent.SOPInstanceUID and got.PixelData == sent.PixelData
        events = gw.events()
        stores = [e for e in events if e.get("wardgate", {}).get("dicom", {}).get("operation") == "C-STORE"]
        assert stores and stores[0]["wardgate"]["source_device"] == "ct-1"
        # Without a client certificate, storescu is refused in the handshake.
        r = subprocess.run(["storescu", "-aet", "CT01", "-aec", "PACS", "+tla", "+cf", ca,
                            "127.0.0.1", str(gw.listen_port), CT], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        refused = [e for e in gw.events() if e.get("rule", {}).get("id") == "WG-TLS-001"]
        assert refused and "no certificate" in refused[-1]["event"]["reason"], refused
    finally:
        if gw:
            gw.stop()
        scp.terminate()
        scp.wait(10)
