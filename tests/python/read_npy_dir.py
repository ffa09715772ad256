#!/usr/bin/env python3
"""Reads every .npy file of a directory with numpy and prints them as JSON, for tests that check the files
Loom writes (e.g. pseudo-label provenance): {"<name>": {"dtype": "int64", "shape": [...], "values": [...]}}."""
import json
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    out = {}
    for file in sorted(Path(sys.argv[1]).glob("*.npy")):
        array = np.load(file, allow_pickle=False)
        out[file.stem] = {"dtype": str(array.dtype), "shape": list(array.shape), "values": array.tolist()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
