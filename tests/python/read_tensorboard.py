#!/usr/bin/env python3
"""Reads the TensorBoard event files of a directory with TensorBoard's own EventAccumulator, for tests that
check the files Loom's `tensorboard` metric sink writes by hand. Prints one JSON line last:
{"scalars": {"<tag>": [[step, value], ...]}, "file_version": 2.0} (the number of "brain.Event:2").
Exits 2 with a message naming scripts/setup.sh when the tensorboard package is missing."""
import json
import sys


def main() -> int:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError as e:
        print(f"read_tensorboard.py: cannot import tensorboard ({e}) for {sys.executable}; "
              "run scripts/setup.sh to install the pinned tensorboard", file=sys.stderr)
        return 2
    # size_guidance 0: keep every scalar (the default samples down to 10000 per tag).
    acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
    acc.Reload()
    scalars = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    print(json.dumps({"scalars": scalars, "file_version": acc.file_version}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
