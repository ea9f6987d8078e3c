"""Moved to experiments/ (a study, not installed): python -m experiments.edge_e2e in a checkout."""
from benchmarks import moved_to_experiments

if __name__ == "__main__":
    moved_to_experiments("edge_e2e")
