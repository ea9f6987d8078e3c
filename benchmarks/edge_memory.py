"""Moved to experiments/edge_memory.py (a study, not part of the installed toolkit): python -m experiments.edge_memory."""
from benchmarks import moved_to_experiments

if __name__ == "__main__":
    moved_to_experiments("edge_memory")
