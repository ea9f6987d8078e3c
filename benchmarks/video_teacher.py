"""Moved to experiments/video_teacher.py (a study, not part of the installed toolkit): python -m experiments.video_teacher."""
from benchmarks import moved_to_experiments

if __name__ == "__main__":
    moved_to_experiments("video_teacher")
