"""Errors the edge loop reports as one clear line (never a traceback)."""


class EdgeError(RuntimeError):
    """A problem with an input of the edge loop (camera, video, skeleton file, pose model, model/layout)."""


class SourceError(EdgeError):
    """A camera, video or skeleton file that cannot be opened or read."""


class PoseModelError(EdgeError):
    """The MediaPipe pose model cannot be found, fetched or verified; the message says where to put it."""
