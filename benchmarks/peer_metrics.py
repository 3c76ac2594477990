"""Peer for `npm run bench -- metrics`: times scikit-image's adapted_rand_error and
variation_of_information and scikit-learn's confusion_matrix on the same .npy volumes.
argv: pred.npy truth.npy classes; prints one JSON line."""
import json
import sys
import time

import numpy as np
from skimage.metrics import adapted_rand_error, variation_of_information
from sklearn.metrics import confusion_matrix

pred = np.load(sys.argv[1]).astype(np.int64)
truth = np.load(sys.argv[2]).astype(np.int64)
classes = int(sys.argv[3])
start = time.perf_counter()
confusion_matrix(truth.ravel() % classes, pred.ravel() % classes, labels=list(range(classes)))
adapted_rand_error(truth, pred)
variation_of_information(truth, pred, ignore_labels=(0,))
print(json.dumps({"peer_ms": (time.perf_counter() - start) * 1000}))
