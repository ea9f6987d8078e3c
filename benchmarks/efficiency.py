"""Moved to experiments/efficiency.py (a study, not part of the installed toolkit): python -m experiments.efficiency."""
from benchmarks import moved_to_experiments

if __name__ == "__main__":
    moved_to_experiments("efficiency")
