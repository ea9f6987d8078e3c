"""The real-time edge loop: camera/video/skeletons -> MediaPipe pose -> window -> LAST -> smoothed actions."""
