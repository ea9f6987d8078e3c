"""Moved to experiments/bone_check.py (a study, not part of the installed toolkit): python -m experiments.bone_check."""
from benchmarks import moved_to_experiments

if __name__ == "__main__":
    moved_to_experiments("bone_check")
