"""Run one measurement of the suite and print its result (with its peak RSS) as one JSON line:
python -m experiments.benchmarks.one NAME '{"quick": true}'"""

from __future__ import annotations

import json
import sys

from experiments.benchmarks.suite import measure

if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], json.loads(sys.argv[2]))))
