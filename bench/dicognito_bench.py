"""Times dicognito (the Python DICOM de-identifier pinned in
tests/interop/requirements.txt) on Part 10 files already in memory, in
process: no interpreter start, no file I/O. Stages are timed in CPU time of
the thread (time.thread_time), so other processes on a shared machine count
for little. For each file, repeated for
--seconds: pydicom reads the bytes, dicognito anonymizes the data set,
pydicom writes it back; each stage is timed on its own. The comparable figure
for wardgate's de-identifier (`wardgate-bench deid`, which reads bytes and
writes bytes) is read + anonymize + write; MB/s is over the same data set
bytes (the file without its preamble and file meta information).

    .venv/bin/python bench/dicognito_bench.py FILE... [--seconds 2] [--out table.md]
"""

import argparse
import io
import struct
import sys
import time

import dicognito
import pydicom
from dicognito.anonymizer import Anonymizer


def data_set_bytes(raw):
    """Bytes of the data set: the file less its preamble and file meta."""
    if raw[128:132] != b"DICM":
        return len(raw)
    (group_len,) = struct.unpack_from("<I", raw, 140)
    return len(raw) - (144 + group_len)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--out")
    a = ap.parse_args()
    anonymizer = Anonymizer()
    rows = [
        f"dicognito {dicognito.__version__}, pydicom {pydicom.__version__}, "
        f"Python {sys.version.split()[0]}; default Anonymizer (one for all objects)\n",
        "| object | data set bytes | read µs | anonymize µs | write µs | read + anonymize + write µs/object | MB/s | objects/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for path in a.files:
        raw = open(path, "rb").read()
        size = data_set_bytes(raw)
        # One untimed warm-up object.
        ds = pydicom.dcmread(io.BytesIO(raw))
        anonymizer.anonymize(ds)
        ds.save_as(io.BytesIO())
        t_read = t_anon = t_write = 0.0
        n = 0
        start = time.perf_counter()
        while n == 0 or time.perf_counter() - start < a.seconds:
            t0 = time.thread_time()
            ds = pydicom.dcmread(io.BytesIO(raw))
            t1 = time.thread_time()
            anonymizer.anonymize(ds)
            t2 = time.thread_time()
            out = io.BytesIO()
            ds.save_as(out)
            t3 = time.thread_time()
            t_read += t1 - t0
            t_anon += t2 - t1
            t_write += t3 - t2
            n += 1
        total = (t_read + t_anon + t_write) / n
        parts = path.split("/")
        name = "/".join(parts[-2:])
        rows.append(
            f"| {name} | {size} | {t_read / n * 1e6:.0f} | {t_anon / n * 1e6:.0f} | "
            f"{t_write / n * 1e6:.0f} | {total * 1e6:.0f} | {size / total / 1e6:.1f} | {1 / total:.0f} |"
        )
    text = "\n".join(rows) + "\n"
    print(text, end="")
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
