#!/usr/bin/env python3
"""Generates crates/wardgate-privacy/src/dicom/tables.rs, the two tables the
DICOM de-identifier needs, from data committed with it:

- the value representation of every public tag, for implicit VR little endian
  (which carries no VR): pydicom's data dictionary (`pydicom._dicom_dict`, itself
  generated from PS3.6) plus crates/wardgate-privacy/data/vr_supplement.tsv, the
  PS3.6 2024b attributes that dictionary lacks; repeating groups (50xx, 60xx,
  0028,04x0...) as (mask, value) pairs;
- PS3.15 Table E.1-1, every attribute with its Basic Profile action and the
  options that change it: crates/wardgate-privacy/data/confidentiality_profile_attributes.json.

Run with the project's virtualenv (it has the pinned pydicom):
    .venv/bin/python scripts/gen-dicom-tables.py
and commit the result; `--check` exits non-zero when the committed file differs.
"""
import json
import re
import sys
from pathlib import Path

from pydicom import __version__ as PYDICOM_VERSION
from pydicom._dicom_dict import DicomDictionary, RepeatersDictionary

ROOT = Path(__file__).resolve().parents[1]
CRATE = ROOT / "crates" / "wardgate-privacy"
OUT = CRATE / "src" / "dicom" / "tables.rs"

# Order of the Rust `Vr` enum (src/dicom/vr.rs); the table stores indices.
VRS = ["AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT",
       "OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST",
       "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"]
# An ambiguous VR is read as the one implicit VR little endian uses (PS3.5 A.1):
# US for "US or SS" (the value is kept as bytes either way), OW for the rest.
AMBIGUOUS = {"US or SS": "US", "OB or OW": "OW", "US or SS or OW": "OW", "US or OW": "OW"}

# Option columns of Table E.1-1 in the JSON, and their bit in `Options` (src/dicom/profile.rs).
OPTIONS = [
    ("rtnSafePrivOpt", "SAFE_PRIVATE"),
    ("rtnUIDsOpt", "UIDS"),
    ("rtnDevIdOpt", "DEVICE"),
    ("rtnInstIdOpt", "INSTITUTION"),
    ("rtnPatCharsOpt", "PATIENT_CHARS"),
    ("rtnLongFullDatesOpt", "FULL_DATES"),
    ("rtnLongModifDatesOpt", "MODIFIED_DATES"),
    ("cleanDescOpt", "CLEAN_DESCRIPTORS"),
    ("cleanStructContOpt", "CLEAN_STRUCTURED"),
    ("cleanGraphOpt", "CLEAN_GRAPHICS"),
]
BASIC = {"X": "X", "Z": "Z", "D": "D", "U": "U", "K": "K", "C": "C",
         "X/Z": "XZ", "X/D": "XD", "X/Z/D": "XZD", "Z/D": "ZD", "X/Z/U*": "XZU"}
# Rows that are not one tag; the de-identifier handles them in code.
SPECIAL_ROWS = {"(GGGG,EEEE) WHERE GGGG IS ODD"}
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def vr_index(vr):
    return VRS.index(AMBIGUOUS.get(vr, vr))


def dictionary():
    exact = {}
    for tag, entry in DicomDictionary.items():
        vr = entry[0]
        if vr == "NONE":  # item and delimiter tags
            continue
        exact[tag] = vr_index(vr)
    for line in (CRATE / "data" / "vr_supplement.tsv").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        tag, vr, _keyword = line.split("\t")
        exact.setdefault(int(tag, 16), vr_index(vr))
    repeaters = []
    for pattern, entry in RepeatersDictionary.items():
        mask = int("".join("0" if c in "xX" else "F" for c in pattern), 16)
        value = int("".join("0" if c in "xX" else c for c in pattern), 16)
        repeaters.append((mask, value, vr_index(entry[0])))
    repeaters.sort(key=lambda r: (r[1], r[0]))
    return exact, repeaters


def profile():
    rows = json.loads((CRATE / "data" / "confidentiality_profile_attributes.json").read_text())
    exact, repeating, seen_special = [], [], set()
    for row in rows:
        tag = row["tag"]
        if tag in SPECIAL_ROWS:
            seen_special.add(tag)
            continue
        m = re.fullmatch(r"\(([0-9A-FX]{4}),([0-9A-FX]{4})\)", tag.upper())
        if not m:
            sys.exit(f"unexpected tag in Table E.1-1: {tag}")
        keep = [name for key, name in OPTIONS if row.get(key) == "K"]
        clean = [name for key, name in OPTIONS if row.get(key) == "C"]
        other = [row[k] for k, _ in OPTIONS if k in row and row[k] not in ("K", "C")]
        if other or row["basicProfile"] not in BASIC:
            sys.exit(f"unexpected action in Table E.1-1: {row}")
        pattern = m.group(1) + m.group(2)
        name = " ".join(row["name"].split())
        entry = (BASIC[row["basicProfile"]], keep, clean, name)
        if "X" in pattern:
            mask = int("".join("0" if c == "X" else "F" for c in pattern), 16)
            value = int("".join("0" if c == "X" else c for c in pattern), 16)
            repeating.append((mask, value) + entry)
        else:
            exact.append((int(pattern, 16),) + entry)
    if seen_special != SPECIAL_ROWS:
        sys.exit(f"Table E.1-1 rows missing: {SPECIAL_ROWS - seen_special}")
    exact.sort()
    repeating.sort()
    return exact, repeating


def opts(names):
    return " | ".join(f"opt::{n}" for n in names) or "0"


def render():
    exact, repeaters = dictionary()
    rules, repeating = profile()
    tags = sorted(exact)
    out = []
    w = out.append
    w("// @generated by scripts/gen-dicom-tables.py: do not edit.")
    w(f"// VRs: pydicom {PYDICOM_VERSION} data dictionary + data/vr_supplement.tsv (PS3.6 2024b).")
    w("// Table E.1-1: data/confidentiality_profile_attributes.json (PS3.15 2024b).")
    w("")
    w("use super::profile::opt;")
    w("use super::table::Basic::{self, *};")
    w("")
    w(f"/// Public tags with a VR, ascending ({len(tags)}).")
    w(f"pub(super) static DICT_TAGS: [u32; {len(tags)}] = [")
    for i in range(0, len(tags), 8):
        w("    " + " ".join(f"0x{t:08X}," for t in tags[i:i + 8]))
    w("];")
    w("")
    w("/// The VR of each of `DICT_TAGS`: `Vr::ALL[ALPHABET.find(byte)]`, one byte per tag.")
    w(f"pub(super) static DICT_VRS: &[u8; {len(tags)}] = b\"\\")
    codes = "".join(ALPHABET[exact[t]] for t in tags)
    for i in range(0, len(codes), 96):
        w(codes[i:i + 96] + "\\")
    w("\";")
    w("")
    w("/// Repeating-group tags: (mask, value, VR index); `tag & mask == value`.")
    w(f"pub(super) static DICT_REPEATERS: [(u32, u32, u8); {len(repeaters)}] = [")
    for mask, value, vr in repeaters:
        w(f"    (0x{mask:08X}, 0x{value:08X}, {vr}), // {VRS[vr]}")
    w("];")
    w("")
    w(f"/// PS3.15 Table E.1-1: (tag, basic action, options that keep, options that clean), ascending ({len(rules)}).")
    w(f"pub(super) static RULES: [(u32, Basic, u16, u16); {len(rules)}] = [")
    for tag, basic, keep, clean, name in rules:
        w(f"    (0x{tag:08X}, {basic}, {opts(keep)}, {opts(clean)}), // {name}")
    w("];")
    w("")
    w("/// Table E.1-1 rows for repeating groups: (mask, value, basic, keep, clean).")
    w(f"pub(super) static REPEATING_RULES: [(u32, u32, Basic, u16, u16); {len(repeating)}] = [")
    for mask, value, basic, keep, clean, name in repeating:
        w(f"    (0x{mask:08X}, 0x{value:08X}, {basic}, {opts(keep)}, {opts(clean)}), // {name}")
    w("];")
    return "\n".join(out) + "\n"


def main():
    text = render()
    if "--check" in sys.argv:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} is stale: run scripts/gen-dicom-tables.py")
        return
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
