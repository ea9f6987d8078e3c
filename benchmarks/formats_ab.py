"""Moved to experiments/formats_ab.py (a study, not part of the installed toolkit): python -m experiments.formats_ab."""
from benchmarks import moved_to_experiments

if __name__ == "__main__":
    moved_to_experiments("formats_ab")
