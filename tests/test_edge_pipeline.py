"""The pipelined loop (edge.pipeline + ActionRecognizer.recognize_async), the grouped options and the meter:
pipelined == synchronous on the same replay, a slow classifier drops classifications (never frames or order),
frames the pose stage has no time for are dropped newest-first, shutdown mid-stream leaves valid events, a call
that raised can be retried, and the previous release's flat option keywords still work (with a warning)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from core.runtime import load_runtime
from edge import (ActionRecognizer, ActionRecognizerOptions, BaseOptions, PersonOptions, PoseOptions, RunningMode,
                  SmoothingOptions)
from edge.capture import load_skeleton_sequence
from edge.errors import CallbackError
from edge.events import read_events
from edge.latency import LatencyMeter, busy_ms
from edge.pipeline import Pipeline
from test_edge import edge_ckpt, replay_file  # noqa: F401  (shared session fixtures)

REPO = Path(__file__).resolve().parents[1]


def replay_frames(path: Path) -> tuple[np.ndarray, float]:
    seq = load_skeleton_sequence(path)
    return seq.data, seq.fps or 30.0


def skeleton_options(runtime, callback=None, **kwargs) -> ActionRecognizerOptions:
    return ActionRecognizerOptions(base_options=BaseOptions(runtime=runtime), running_mode=RunningMode.SKELETONS,
                                   result_callback=callback, **kwargs)


class SlowRuntime:
    """The real runtime behind a fixed extra delay per inference: a classifier slower than the frames."""

    def __init__(self, runtime, delay_s: float):
        self.inner, self.delay_s = runtime, delay_s
        self.spec, self.class_names, self.path, self.name = runtime.spec, runtime.class_names, runtime.path, "slow"
        self.calls = 0

    def predict(self, x):
        self.calls += 1
        time.sleep(self.delay_s)
        return self.inner.predict(x)

    def close(self):
        pass


def run_sync(runtime, data, fps):
    out = []
    with ActionRecognizer(skeleton_options(runtime)) as rec:
        for t in range(data.shape[1]):
            res = rec.recognize_for_video([p for p in data[:, t] if np.abs(p).sum() > 0], t * 1000.0 / fps)
            out.append(res)
    return out


def test_pipelined_and_synchronous_give_the_same_results_on_the_same_replay(edge_ckpt, replay_file):
    data, fps = replay_frames(replay_file)
    runtime = load_runtime(edge_ckpt, threads=1)
    sync = run_sync(runtime, data, fps)
    got: list = []
    with ActionRecognizer(skeleton_options(runtime, lambda r, image, ts: got.append(r))) as rec:
        assert rec.pipelined
        for t in range(data.shape[1]):
            rec.recognize_async([p for p in data[:, t] if np.abs(p).sum() > 0], t * 1000.0 / fps, block=True)
        events_end = rec.finish()
    assert [r.timestamp_ms for r in got] == [r.timestamp_ms for r in sync]  # every frame, in order
    assert sum(r.classified for r in sync) > 50
    assert [r.classified for r in got] == [r.classified for r in sync]
    assert [r.labels for r in got] == [r.labels for r in sync]
    assert [[e.to_dict() for e in r.events] for r in got] == [[e.to_dict() for e in r.events] for r in sync]
    starts = [e.action for r in got for e in r.events if e.kind == "action_start"]
    assert {"wave", "squat"} <= set(starts)
    assert all(e.reason == "end_of_stream" for e in events_end)
    for a, b in zip(got, sync):
        for pa, pb in zip(a.persons, b.persons):
            if pa.probabilities is not None:
                np.testing.assert_array_equal(pa.probabilities, pb.probabilities)
    assert all({"submitted", "pose_done", "done"} <= set(r.times_s) for r in got)
    assert all(r.times_s["submitted"] <= r.times_s["pose_done"] <= r.times_s["done"] for r in got)


def test_a_slow_classifier_drops_classifications_never_frames_or_order(edge_ckpt, replay_file):
    data, fps = replay_frames(replay_file)
    frames = data[:, :120]
    slow = SlowRuntime(load_runtime(edge_ckpt, threads=1), delay_s=0.03)  # 30 ms a window, a frame every 5 ms
    got: list = []
    with ActionRecognizer(skeleton_options(slow, lambda r, image, ts: got.append(r))) as rec:
        slow.calls = 0  # the warm-up inference
        for t in range(frames.shape[1]):
            # the next frame once the pose stage took this one (never block=True: that would classify every window):
            # any frame lost now would be the classifier holding the pose stage up
            while rec._pipeline._inbox_full:
                time.sleep(0.001)
            rec.recognize_async([p for p in frames[:, t] if np.abs(p).sum() > 0], t * 1000.0 / fps)
            time.sleep(0.004)
        rec.flush()
        assert rec.dropped_frames == 0
    stamps = [r.timestamp_ms for r in got]
    assert stamps == [t * 1000.0 / fps for t in range(frames.shape[1])]  # every frame, in order
    ran = sum(r.classified for r in got)
    dropped = sum(r.classifications_dropped for r in got)
    assert ran == slow.calls and dropped > ran  # ~6 frames per classification: most windows are skipped
    assert ran >= 5  # yet the classifier keeps working on the newest window
    labels = [r.persons[0].label for r in got if r.classified]
    assert any(label != "unknown" for label in labels)


def test_frames_the_first_stage_has_no_time_for_are_dropped_newest_first():
    """The pipeline's inbox (the LIVE_STREAM hand-off): a stage slower than the frames sees only the newest."""
    emitted: list[int] = []
    pipe = Pipeline(lambda item: (time.sleep(0.02), item)[1], lambda plan, behind: emitted.append(plan))
    try:
        for i in range(50):  # 2 ms apart: ~10 frames per plan
            pipe.submit(i)
            time.sleep(0.002)
        assert pipe.drain(timeout=10)
    finally:
        pipe.close()
    assert emitted == sorted(emitted) and emitted[-1] == 49  # in order, and the last frame is never lost
    assert pipe.dropped == 50 - len(emitted) and pipe.dropped >= 25
    assert len(emitted) >= 3


def test_a_stage_error_reaches_the_caller_and_close_returns():
    pipe = Pipeline(lambda item: 1 / item, lambda plan, behind: None)
    pipe.submit(1)
    pipe.submit(0, block=True)
    with pytest.raises(ZeroDivisionError):
        pipe.drain(timeout=10)
    with pytest.raises(ZeroDivisionError):
        pipe.submit(2)
    pipe.close()  # already reported: close does not raise again


def test_the_callback_error_is_raised_by_the_next_call(edge_ckpt):
    def callback(result, image, ts):
        raise KeyError("from the app")
    rec = ActionRecognizer(skeleton_options(load_runtime(edge_ckpt, threads=1), callback))
    rec.recognize_async(None, 0.0)
    with pytest.raises(CallbackError, match="result_callback raised KeyError: 'from the app'") as info:
        rec.flush(timeout=10)
    assert isinstance(info.value.__cause__, KeyError)  # the app's own exception, kept
    with pytest.raises(CallbackError):
        rec.recognize_async(None, 40.0)
    rec.close()


def test_a_call_that_raised_can_be_retried_with_the_same_timestamp(edge_ckpt):
    with ActionRecognizer(skeleton_options(load_runtime(edge_ckpt, threads=1))) as rec:
        good = np.zeros((1, 33, 3), np.float32) + 0.1
        with pytest.raises(ValueError, match="must be"):
            rec.recognize_for_video(np.zeros((1, 7, 3), np.float32), 100.0)  # wrong joint count
        res = rec.recognize_for_video(good, 100.0)  # the same timestamp again: accepted
        assert res.timestamp_ms == 100.0
        with pytest.raises(ValueError, match="timestamps must increase"):
            rec.recognize_for_video(good, 100.0)


def test_options_grouped_and_the_flat_keywords_of_the_previous_release(edge_ckpt):
    runtime = load_runtime(edge_ckpt, threads=1)
    grouped = ActionRecognizerOptions(base_options=BaseOptions(runtime=runtime), running_mode=RunningMode.SKELETONS,
                                      pose_options=PoseOptions(min_body_visibility=0.0),
                                      person_options=PersonOptions(hold_s=0.3),
                                      smoothing_options=SmoothingOptions(alpha=0.7, margin=0.2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the grouped spelling warns about nothing
        ActionRecognizer(grouped).close()
    with pytest.warns(DeprecationWarning, match=r"hold_s -> person_options\.hold_s"):
        flat = ActionRecognizerOptions(runtime=runtime, running_mode=RunningMode.SKELETONS, min_body_visibility=0.0,
                                       hold_s=0.3, smoothing=0.7, margin=0.2)
    assert flat == grouped
    with pytest.warns(DeprecationWarning, match="model_path"):
        positional = ActionRecognizerOptions(str(edge_ckpt), RunningMode.SKELETONS)
    assert positional.base_options.model_path == str(edge_ckpt)
    with pytest.warns(DeprecationWarning):
        assert flat.hold_s == 0.3  # reading a flat name
    with pytest.warns(DeprecationWarning):
        flat.smoothing = 0.9  # and setting one
    assert flat.smoothing_options.alpha == 0.9
    with pytest.warns(DeprecationWarning):
        with ActionRecognizer.create_from_model_path(edge_ckpt, RunningMode.SKELETONS, hold_s=0.4) as rec:
            assert rec.policy.hold_frames == 12
    with pytest.raises(TypeError):
        ActionRecognizerOptions(no_such_option=1)


def test_meter_per_frame_latency_busy_time_and_drops():
    meter = LatencyMeter()
    t0 = 100.0
    for i in range(10):
        captured = t0 + i * 0.033
        times = {"submitted": captured + 0.001, "pose_done": captured + 0.021, "done": captured + 0.032}
        if i % 2 == 0:
            times["classified"] = captured + 0.030
        meter.frame(captured, times, {"capture": 1.0, "pose": 20.0, "classify": 9.0, "smoothing": 0.1},
                    pipelined=True, event_at=captured + 0.033, classifications_dropped=i % 2)
    meter.dropped = 2
    s = meter.stats()
    assert s["frames"] == 10 and s["captured"] == 12 and s["dropped_share"] == pytest.approx(2 / 12)
    assert s["latency_ms"]["pose_done"]["p50_ms"] == pytest.approx(21.0)
    assert s["latency_ms"]["classified"]["count"] == 5 and s["latency_ms"]["event"]["p90_ms"] == pytest.approx(33.0)
    assert s["classified_share"] == pytest.approx(0.5)
    assert s["busy_ms"]["p50_ms"] == pytest.approx(20.0)  # the pose thread is the busiest: max, not the sum
    assert s["fps"] == pytest.approx(1 / 0.033)
    assert busy_ms({"capture": 1.0, "pose": 20.0, "classify": 9.0}, pipelined=False) == pytest.approx(30.0)


def test_stats_file_and_shutdown_mid_stream_leave_valid_files(edge_ckpt, replay_file, tmp_path):
    """SIGINT (Ctrl-C) and SIGTERM in the middle of a long pipelined replay: the events file stays valid JSON lines,
    ends with run_end, and the exit status says interrupted."""
    procs = {}
    for sig in (signal.SIGINT, signal.SIGTERM):  # both at once: the start-up (imports) is the slow part
        events = tmp_path / f"events_{sig.name}.jsonl"
        procs[sig] = events, subprocess.Popen(
            [sys.executable, "-m", "edge.run", "--skeletons", str(replay_file), "--repeat", "500", "--model",
             str(edge_ckpt), "--headless", "--loop", "pipelined", "--realtime", "--speed", "4", "--events",
             str(events), "--no-progress"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # a shell's background job inherits SIGINT ignored; the child gets the default, as from a terminal
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for sig, (events, proc) in procs.items():
        deadline = time.time() + 180  # a loaded 2-core machine can take a minute to import torch and start
        while time.time() < deadline:  # wait until the loop is in its stream
            if events.exists() and sum(1 for _ in events.open()) >= 3:
                break
            time.sleep(0.2)
        proc.send_signal(sig)
    for sig, (events, proc) in procs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 130, err
        evs = read_events(events)  # every line parses
        assert evs[0]["event"] == "run_start" and evs[-1]["event"] == "run_end"
        assert evs[-2]["event"] == "error" and evs[-2]["message"] == "interrupted"
        assert 0 < evs[-1]["frames"] < 500 * 168
    stats = tmp_path / "stats.json"
    from edge.run import main
    assert main(["--skeletons", str(replay_file), "--model", str(edge_ckpt), "--headless", "--loop", "pipelined",
                 "--stats", str(stats), "--no-progress"]) == 0
    s = json.loads(stats.read_text())
    assert s["loop"] == "pipelined" and s["frames"] == 168 and s["dropped"] == 0
    assert s["classified_share"] == 1.0  # every window (block: a replay is processed frame by frame)
    for key in ("pose_done", "classified", "event"):
        assert s["latency_ms"][key]["p50_ms"] <= s["latency_ms"][key]["p90_ms"] <= s["latency_ms"][key]["p99_ms"]
    assert {"track", "preprocess", "classify", "smoothing"} <= set(s["stages_ms"])


def test_recognizer_threads_end_with_close(edge_ckpt):
    before = threading.active_count()
    rec = ActionRecognizer(skeleton_options(load_runtime(edge_ckpt, threads=1), lambda *a: None))
    assert threading.active_count() == before + 2
    rec.close()
    assert threading.active_count() == before


def test_decision_latency_and_flicker_are_scored_against_the_true_boundaries():
    from benchmarks.decision import GAP_S, _join, score
    clip = np.ones((30, 33, 3), np.float32)
    replay = _join([("a", clip), ("b", clip), ("a", clip)], "test", "mediapipe33")
    assert [(s[0], s[1]) for s in replay.segments] == [("a", 0.0), ("b", 1.0), ("a", 2.0 + GAP_S)]
    assert len(replay.frames) == 90 + int(GAP_S * 30)
    starts = [(0.8, "a"), (1.3, "a"), (1.6, "b"), (1.7, "a"), (1.8, "b")]  # b at 0.6 s, one flicker a->b
    s = score(replay, starts)
    assert s["detected"] == 2 and s["missed"] == 1  # the second "a" segment never starts
    assert s["latency_s"][:2] == [pytest.approx(0.8), pytest.approx(0.6)]
    assert s["extra_starts"] == 3 and s["wrong_starts"] == 2  # a at 1.3 and 1.7 are in b's segment
    assert s["flicker_per_min"] == pytest.approx(3 / (len(replay.frames) / 30 / 60))


def test_label_agreement_counts_the_frames_either_run_labels():
    from benchmarks.decision import label_agreement
    assert label_agreement(["", "wave", "wave", "squat"], ["", "wave", "squat", "squat"]) == 2 / 3
    assert label_agreement(["", ""], ["", ""]) is None  # nobody labelled anything: no agreement to report
    assert label_agreement(["wave", ""], ["", "wave"]) == 0.0  # a label shown one frame late is a disagreement
