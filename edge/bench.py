"""Moved: the edge loop is measured by `python -m benchmarks.edge` (same options, per-frame latency added)."""
import sys

if __name__ == "__main__":
    print("python -m edge.bench: error: moved; use python -m benchmarks.edge (the same options)", file=sys.stderr)
    sys.exit(2)
