#!/usr/bin/env python3
"""numpy's side of Loom's .npy tests (tests/test_npy.cpp, tests/test_cache.cpp).

    npy_interop.py roundtrip DIR
        For every loom_*.npy in DIR (written by Loom): numpy.load() it, check the header numpy sees
        (version, 64-byte aligned data, C order) and write the same array back with numpy as
        numpy_v1_<name> (format 1.0) and numpy_v2_<name> (format 2.0), for Loom to compare bit for bit.
        Also writes files Loom must refuse: numpy_fortran.npy, numpy_bigendian.npy, numpy_complex.npy,
        numpy_structured.npy, numpy_uint16.npy, and a format 3.0 file numpy_v3.npy (which Loom reads).
        Prints one JSON object: {name: {"dtype", "shape", "version", "offset"}} of the Loom files.

    npy_interop.py cache DIR
        Checks an npy cache directory with numpy and zlib alone: manifest.json's sizes and crc32s match
        the files, numpy.load(mmap_mode="r") gives the manifest's count, shape and store dtype, index.npy
        is 0..N-1. Prints {"count", "data_dtype", "data_shape", "labels_sum"} as JSON."""
import json
import sys
import zlib
from pathlib import Path

import numpy as np


def header_of(path):
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        return version, f.tell(), shape, fortran, dtype


def write_version(path, arr, version):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=version)


def roundtrip(d: Path) -> int:
    report = {}
    for path in sorted(d.glob("loom_*.npy")):
        version, offset, shape, fortran, dtype = header_of(path)
        assert not fortran, f"{path}: Loom wrote Fortran order"
        assert offset % 64 == 0, f"{path}: data starts at {offset}, not 64-byte aligned"
        arr = np.load(path)
        assert arr.shape == shape and arr.dtype == dtype
        write_version(d / ("numpy_v1_" + path.name[5:]), arr, (1, 0))
        write_version(d / ("numpy_v2_" + path.name[5:]), arr, (2, 0))
        report[path.name] = {"dtype": arr.dtype.str, "shape": list(arr.shape), "version": list(version), "offset": offset}

    grid = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(d / "numpy_fortran.npy", np.asfortranarray(grid))
    np.save(d / "numpy_bigendian.npy", grid.astype(">f4"))
    np.save(d / "numpy_complex.npy", grid.astype(np.complex64))
    np.save(d / "numpy_structured.npy", np.zeros(3, dtype=[("a", "<i4"), ("b", "<f4")]))
    np.save(d / "numpy_uint16.npy", grid.astype(np.uint16))
    write_version(d / "numpy_v3.npy", grid, (3, 0))
    print(json.dumps(report))
    return 0


def cache(d: Path) -> int:
    manifest = json.loads((d / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        data = (d / name).read_bytes()
        assert len(data) == entry["bytes"], f"{name}: {len(data)} bytes, manifest says {entry['bytes']}"
        assert zlib.crc32(data) == entry["crc32"], f"{name}: crc32 differs from the manifest"
    data = np.load(d / "data.npy", mmap_mode="r")
    labels = np.load(d / "labels.npy")
    index = np.load(d / "index.npy")
    n = manifest["count"]
    assert data.shape == tuple([n] + manifest["shape"]), (data.shape, manifest["shape"])
    assert data.dtype == np.dtype(manifest["store_dtype"]), (data.dtype, manifest["store_dtype"])
    assert labels.dtype == np.int64 and labels.shape == (n,)
    assert index.dtype == np.int64 and (index == np.arange(n)).all()
    print(json.dumps({"count": n, "data_dtype": str(data.dtype), "data_shape": list(data.shape),
                      "labels_sum": int(labels.sum())}))
    return 0


if __name__ == "__main__":
    mode, directory = sys.argv[1], Path(sys.argv[2])
    sys.exit(roundtrip(directory) if mode == "roundtrip" else cache(directory))
