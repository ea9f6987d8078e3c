"""Moved to experiments/peers_compare.py (a study, not part of the installed toolkit): python -m experiments.peers_compare."""
from benchmarks import moved_to_experiments

if __name__ == "__main__":
    moved_to_experiments("peers_compare")
