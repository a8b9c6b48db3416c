#!/usr/bin/python3
"""Writes the hostile HDF5 fixtures of test/security-h5.test.ts into a folder (default
test/fixtures/hostile). Needs h5py (Debian: apt-get install python3-h5py; run with /usr/bin/python3).

Each file is a Keras legacy weight file (attribute layer_names, one layer 'dense' with weight_names
['dense/kernel:0']) whose one dataset is hostile:

- h5-external-storage.h5: the dataset's raw values live in /etc/passwd (HDF5 external file list);
- h5-virtual.h5: a virtual dataset (VDS) whose values come from h5-virtual-source.h5;
- h5-shape-bomb.h5: a 100000 x 100000 float32 dataset (40 GB) that stores nothing (chunked, never
  written: HDF5 would hand back 40 GB of fill values);
- h5-shape-bomb-gzip.h5: the same, gzip-filtered, so the compression-ratio bound applies.

Usage: /usr/bin/python3 scripts/make-hostile-fixtures.py [OUT_DIR] [SECRET_FILE]
SECRET_FILE (default /etc/passwd) is the file the external-storage dataset points to.
"""
import os
import sys

import h5py
import numpy as np


def keras_layout(f):
    f.attrs["layer_names"] = np.array([b"dense"])
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = b"2.15.0"
    group = f.create_group("dense")
    group.attrs["weight_names"] = np.array([b"dense/kernel:0"])
    group.create_group("dense")
    return group


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("test", "fixtures", "hostile")
    secret = sys.argv[2] if len(sys.argv) > 2 else "/etc/passwd"
    os.makedirs(out, exist_ok=True)
    # Fixed-size, deterministic files: no timestamps on objects.
    kw = dict(track_order=False)

    with h5py.File(os.path.join(out, "h5-external-storage.h5"), "w", **kw) as f:
        keras_layout(f).create_dataset(
            "dense/kernel:0", shape=(2, 2), dtype="<f4", external=[(secret, 0, 16)]
        )

    with h5py.File(os.path.join(out, "h5-virtual-source.h5"), "w", **kw) as f:
        f.create_dataset("data", data=np.arange(4, dtype="<f4").reshape(2, 2))
    with h5py.File(os.path.join(out, "h5-virtual.h5"), "w", **kw) as f:
        layout = h5py.VirtualLayout(shape=(2, 2), dtype="<f4")
        layout[:] = h5py.VirtualSource("h5-virtual-source.h5", "data", shape=(2, 2))
        keras_layout(f).create_virtual_dataset("dense/kernel:0", layout)

    with h5py.File(os.path.join(out, "h5-shape-bomb.h5"), "w", **kw) as f:
        keras_layout(f).create_dataset(
            "dense/kernel:0", shape=(100000, 100000), dtype="<f4", chunks=(1000, 1000)
        )

    with h5py.File(os.path.join(out, "h5-shape-bomb-gzip.h5"), "w", **kw) as f:
        keras_layout(f).create_dataset(
            "dense/kernel:0",
            shape=(100000, 100000),
            dtype="<f4",
            chunks=(1000, 1000),
            compression="gzip",
        )


if __name__ == "__main__":
    main()
