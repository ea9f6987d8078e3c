"""benchmarks: the one place that measures a model on a device profile and answers "which variant and format meet
the frame and size budget on my device, at what accuracy" (python -m benchmarks.run / compare / calibrate)."""
