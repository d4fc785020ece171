"""Run one measurement of the suite and print its result (with its peak RSS) as one JSON line:
python -m experiments.benchmarks.one NAME '{"quick": true}'"""

from __future__ import annotations

import json
import sys

from experiments.benchmarks.suite import MEASUREMENTS, data_preparation, peak_rss_mib

if __name__ == "__main__":
    name, kwargs = sys.argv[1], json.loads(sys.argv[2])
    fn = data_preparation if name == "data_preparation" else MEASUREMENTS[name]
    result = fn(**kwargs)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))
