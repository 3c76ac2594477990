"""Peer for `npm run bench -- data`: reads a TIFF stack with tifffile and a NIfTI
with nibabel, normalising each slice with numpy; prints one JSON line of ms."""
import json
import sys
import time

import nibabel as nib
import numpy as np
import tifffile


def normalise(v):
    v = v.astype(np.float32)
    m = v.mean(axis=(-2, -1), keepdims=True)
    s = v.std(axis=(-2, -1), keepdims=True)
    return (v - m) / np.where(s > 0, s, 1)


out = {}
for key, path in (("tiff", sys.argv[1]), ("nifti", sys.argv[2])):
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        data = tifffile.imread(path) if key == "tiff" else np.asarray(nib.load(path).dataobj).transpose(2, 1, 0)
        normalise(data)
        best = min(best, (time.perf_counter() - start) * 1000)
    out[key] = best
print(json.dumps(out))
