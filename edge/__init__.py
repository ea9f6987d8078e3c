"""The edge loop as a library (ActionRecognizer, MediaPipe Tasks style) and its command-line tools: camera / video /
skeletons -> MediaPipe pose -> person ids -> time-based window -> LAST -> smoothed actions and events."""
from edge.events import ActionEvent
from edge.recognizer import (ActionRecognizer, ActionRecognizerOptions, ActionResult, BaseOptions, PersonOptions,
                             PersonResult, PoseOptions, RunningMode, SmoothingOptions)

__all__ = ["ActionEvent", "ActionRecognizer", "ActionRecognizerOptions", "ActionResult", "BaseOptions",
           "PersonOptions", "PersonResult", "PoseOptions", "RunningMode", "SmoothingOptions"]
