"""Hostile input for ActionRecognizer, tried by the hundred (Hypothesis): odd shapes and dtypes, NaN / inf / huge
landmarks, empty and None frames, timestamps that are equal, go backwards, jump by years or are not numbers. The
only outcomes allowed: an ActionResult, or one of the named input errors (edge.errors.InputError, an EdgeError);
never another exception, never a hang (each example has a 20 s deadline), and the recognizer still works afterwards.
Plus the sensible results: a NaN joint is a missing joint, not a missing person; an inf coordinate never creates a
second id; a LIVE_STREAM callback's exception reaches the caller.

Cases tried: `python -m pytest tests/test_edge_hostile.py --hypothesis-show-statistics`; LAST_HYPOTHESIS_EXAMPLES
scales the example counts (default 1)."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.synthetic import synthetic_clip
from edge.errors import CallbackError, EdgeError, FrameError, InputError, SkeletonInputError, TimestampError
from edge.recognizer import ActionRecognizer, ActionResult, RunningMode

SCALE = float(os.environ.get("LAST_HYPOTHESIS_EXAMPLES", "1"))
V = 33  # mediapipe33
PERSON = np.concatenate([synthetic_clip("wave", "mediapipe33", 1, seed=3)[0][0], np.ones((V, 1), np.float32)], 1)


def examples(n: int) -> int:
    return max(10, int(n * SCALE))


@pytest.fixture(scope="module")
def mp33_model(tmp_path_factory):
    """An untrained MediaPipe-33 last_nano with a short window: the classifier runs within a few calls."""
    import torch

    from core.checkpoint import save_checkpoint
    from core.models.last import create_model
    from core.spec import InputSpec
    torch.manual_seed(0)
    model = create_model("last_nano", num_classes=3, layout="mediapipe33")
    spec = InputSpec(layout="mediapipe33", frames=8, window_frames=8, fps=30.0)
    return save_checkpoint(tmp_path_factory.mktemp("hostile") / "nano_mp33.pt", model, spec, ["a", "b", "c"])


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    import torch
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# ---- strategies ---------------------------------------------------------------------------------------------
dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_,
                          np.complex64])


@st.composite
def skeleton_inputs(draw):
    """What a caller might pass as skeletons: valid shapes with hostile values, odd shapes / dtypes, junk."""
    kind = draw(st.sampled_from(["person_with_bad_joints", "valid_shape", "odd_array", "junk", "none"]))
    if kind == "person_with_bad_joints":
        people = np.stack([PERSON] * draw(st.integers(1, 3))).astype(np.float64)
        people[:, :, 0] += np.arange(len(people))[:, None] * 1.5  # side by side
        for _ in range(draw(st.integers(0, 8))):
            p, j, c = draw(st.integers(0, len(people) - 1)), draw(st.integers(0, V - 1)), draw(st.integers(0, 3))
            people[p, j, c] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e12, 0.0]))
        return people
    if kind == "valid_shape":
        return draw(hnp.arrays(dtypes, st.tuples(st.integers(0, 3), st.just(V), st.integers(3, 5))))
    if kind == "odd_array":
        return draw(hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=35)))
    if kind == "junk":
        return draw(st.one_of(st.text(max_size=5), st.integers(), st.lists(st.lists(st.floats(), max_size=3),
                                                                           max_size=3),
                              st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
                              st.just([PERSON, PERSON[:10]]), st.just(object())))
    return None


timestamp_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20), st.booleans(),
    st.text(max_size=3), st.none(), st.just(np.float32(1.0)), st.just(np.int64(5)), st.just([1.0]))


@st.composite
def timestamp_steps(draw):
    """The next timestamp relative to the last one: forward, equal, backwards, a huge gap, or garbage."""
    kind = draw(st.sampled_from(["forward", "forward", "forward", "equal", "backwards", "huge_gap", "raw"]))
    return kind, draw(st.floats(0.01, 200.0)) if kind != "raw" else draw(timestamp_values)


def _timestamp(step, last: float) -> object:
    kind, value = step
    return {"forward": lambda: last + value, "equal": lambda: last, "backwards": lambda: last - value,
            "huge_gap": lambda: last + 1e11, "raw": lambda: value}[kind]()


# ---- SKELETONS mode -----------------------------------------------------------------------------------------
@settings(max_examples=examples(300), deadline=20_000, suppress_health_check=[HealthCheck.too_slow,
                                                                              HealthCheck.data_too_large])
@given(calls=st.lists(st.tuples(skeleton_inputs(), timestamp_steps()), min_size=1, max_size=25))
def test_skeletons_mode_gives_a_result_or_a_named_error(mp33_model, calls):
    with ActionRecognizer.create_from_model_path(mp33_model, RunningMode.SKELETONS, max_persons=2,
                                                 stride_s=1 / 30) as rec:
        last = 0.0
        for skeletons, step in calls:
            t = _timestamp(step, last)
            try:
                result = rec.recognize_for_video(skeletons, t)
            except InputError:
                continue  # the named error; the call changed nothing
            assert isinstance(result, ActionResult)
            last = float(t)
            assert len({p.person_id for p in result.persons}) == len(result.persons) <= rec.tracker.max_tracks
            for p in result.persons:
                assert p.probabilities is None or np.isfinite(p.probabilities).all()
        # still usable afterwards
        assert isinstance(rec.recognize_for_video(PERSON[None], last + 40.0), ActionResult)


@settings(max_examples=examples(150), deadline=20_000)
@given(bad=st.lists(st.tuples(st.integers(0, V - 1), st.integers(0, 2),
                              st.sampled_from([np.nan, np.inf, -np.inf, 1e30])), min_size=1, max_size=12),
       frames=st.integers(3, 12))
def test_a_bad_joint_is_a_missing_joint_never_a_missing_or_second_person(mp33_model, bad, frames):
    """Frame after frame, one person with some joints NaN / inf / absurd: always exactly one person, id 0, seen
    (state never no_person), the bad joints zero in the landmarks handed back."""
    with ActionRecognizer.create_from_model_path(mp33_model, RunningMode.SKELETONS, max_persons=2) as rec:
        for t in range(frames):
            person = PERSON.copy()
            for j, c, value in bad[:1 + t % len(bad)]:
                person[j, c] = value
            result = rec.recognize_for_video(person[None], t * 1000 / 30)
            assert [p.person_id for p in result.persons] == [0]
            assert result.persons[0].state != "no_person" and result.persons[0].landmarks is not None
            assert np.isfinite(result.persons[0].landmarks).all()


@pytest.mark.parametrize("timestamp,match", [
    (float("nan"), "finite"), (float("inf"), "finite"), ("12", "number"), (True, "number"), (None, "number"),
    (1e20, "finite")])
def test_bad_timestamps_get_the_named_error_and_can_be_retried(mp33_model, timestamp, match):
    with ActionRecognizer.create_from_model_path(mp33_model, RunningMode.SKELETONS) as rec:
        rec.recognize_for_video(PERSON[None], 100.0)
        with pytest.raises(TimestampError, match=match):
            rec.recognize_for_video(PERSON[None], timestamp)
        with pytest.raises(TimestampError, match="must increase"):
            rec.recognize_for_video(PERSON[None], 100.0)  # equal
        with pytest.raises(ValueError, match="must increase"):  # still a ValueError for older callers
            rec.recognize_for_video(PERSON[None], 50.0)  # backwards
        assert rec.recognize_for_video(PERSON[None], 100.5).persons  # the failed calls left no trace
        assert rec.recognize_for_video(PERSON[None], 100.5 + 3.6e9).persons is not None  # 1000 hours later


def test_bad_skeletons_get_the_named_error(mp33_model):
    with ActionRecognizer.create_from_model_path(mp33_model, RunningMode.SKELETONS) as rec:
        for bad, match in ((np.zeros((1, 25, 3)), r"\(33, >=3\)"), (np.array(["a"] * 99).reshape(1, 33, 3), "dtype"),
                           ([PERSON, PERSON[:10]], "array of numbers"), (np.zeros((1, 33, 3), complex), "dtype")):
            with pytest.raises(SkeletonInputError, match=match):
                rec.recognize_for_video(bad, 1.0)
        assert rec.recognize_for_video(PERSON, 1.0).persons[0].person_id == 0  # one (V, C) skeleton: one person


def test_max_persons_caps_people_in_skeletons_mode_and_established_ids_survive(mp33_model):
    """Six people, max_persons=2: two ids, the same two, frame after frame (the issue: no id survived 10 frames
    with 6 people and 4 tracks)."""
    people = np.stack([PERSON + [[1.5 * k, 0, 0, 0]] for k in range(6)])
    with ActionRecognizer.create_from_model_path(mp33_model, RunningMode.SKELETONS, max_persons=2) as rec:
        seen = [sorted(p.person_id for p in rec.recognize_for_video(people[np.random.default_rng(t).permutation(6)],
                                                                    t * 1000 / 30).persons) for t in range(30)]
    assert all(ids == seen[0] for ids in seen) and len(seen[0]) == 2, seen


# ---- VIDEO mode (MediaPipe) ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def video_recognizer(shared_dir, mp33_model):
    pytest.importorskip("mediapipe", reason="mediapipe is not installed")
    pose_model = shared_dir / "models" / "pose_landmarker_full.task"
    if not pose_model.is_file():
        pytest.skip(f"pose model not found at {pose_model}")
    rec = ActionRecognizer.create_from_model_path(mp33_model, RunningMode.VIDEO, pose_model_path=pose_model)
    rec.clock = 0.0
    yield rec
    rec.close()


frame_inputs = st.one_of(
    hnp.arrays(st.sampled_from([np.uint8, np.float32, np.float64, np.uint16, np.int8, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=48)),
    hnp.arrays(np.uint8, st.tuples(st.integers(0, 64), st.integers(0, 64), st.sampled_from([1, 3, 4]))),
    st.none(), st.text(max_size=3), st.lists(st.integers(0, 255), max_size=4), st.just(object()))


@settings(max_examples=examples(150), deadline=20_000, suppress_health_check=[HealthCheck.too_slow,
                                                                               HealthCheck.function_scoped_fixture])
@given(frame=frame_inputs, step=timestamp_steps())
def test_video_mode_gives_a_result_or_a_named_error(video_recognizer, frame, step):
    rec = video_recognizer
    t = _timestamp(step, rec.clock)
    try:
        result = rec.recognize_for_video(frame, t)
    except InputError as exc:
        assert isinstance(exc, (FrameError, TimestampError)) and "\n" not in str(exc)
        return
    assert isinstance(result, ActionResult)
    rec.clock = float(t)


def test_video_frames_none_empty_float_get_the_named_error(video_recognizer):
    rec = video_recognizer
    for frame, match in ((None, "None"), (np.zeros((0, 0, 3), np.uint8), "empty"),
                         (np.zeros((48, 64, 3), np.float32), "float32"), (np.zeros((4, 4, 2), np.uint8), "shape")):
        with pytest.raises(FrameError, match=match):
            rec.recognize_for_video(frame, rec.clock + 10)
    for frame in (np.zeros((48, 64), np.uint8), np.zeros((48, 64, 4), np.uint8)):  # gray and BGRA: converted
        rec.clock += 10
        assert isinstance(rec.recognize_for_video(frame, rec.clock), ActionResult)


def test_live_stream_callback_errors_reach_the_caller(shared_dir, mp33_model):
    """An exception in result_callback (MediaPipe's thread) is raised in the caller's thread as CallbackError on
    the next call (flush() here: it waits for the frame), or on close(); its cause is the callback's exception."""
    pytest.importorskip("mediapipe", reason="mediapipe is not installed")
    import cv2
    pose_model = shared_dir / "models" / "pose_landmarker_full.task"
    cap = cv2.VideoCapture(str(shared_dir / "data" / "video" / "ta_chi.mp4"))
    frame = cap.read()[1]
    cap.release()
    calls = []

    def callback(result, image, timestamp_ms):
        calls.append(timestamp_ms)
        raise ValueError(f"boom at {timestamp_ms}")

    for ends_with in ("next_call", "close"):
        calls.clear()
        rec = ActionRecognizer.create_from_model_path(mp33_model, RunningMode.LIVE_STREAM, result_callback=callback,
                                                      pose_model_path=pose_model)
        try:
            rec.recognize_async(frame, 0)
            deadline = time.time() + 20
            while not calls and time.time() < deadline:
                time.sleep(0.01)
            assert calls, "the callback never ran"
            if ends_with == "next_call":
                with pytest.raises(CallbackError, match="result_callback raised ValueError: boom at 0") as info:
                    rec.flush()
                assert isinstance(info.value.__cause__, ValueError)
        finally:
            if ends_with == "close":
                with pytest.raises(CallbackError, match="boom"):
                    rec.close()
            else:
                rec.close()
    assert issubclass(CallbackError, EdgeError)


def test_body_check_rejects_close_ups_that_visibility_alone_passes(shared_dir):
    """Close-ups of real people (the upper middle of a frame, enlarged to the frame): MediaPipe still returns a
    whole skeleton whose hips it calls visible, and the geometric check calls it partial; the full frames of the
    same videos pass. (edge.body.BodyCheck)"""
    pytest.importorskip("mediapipe", reason="mediapipe is not installed")
    cv2 = pytest.importorskip("cv2", reason="opencv is not installed")
    from edge.body import BodyCheck
    from edge.pose import MediaPipePose
    pose_model = shared_dir / "models" / "pose_landmarker_full.task"
    videos = shared_dir / "data" / "video"
    if not pose_model.is_file() or not (videos / "clean_and_jerk.mp4").is_file():
        pytest.skip(f"pose model or videos not found under {shared_dir}")
    check = BodyCheck()
    hip_visibility = {"full": [], "close-up": []}
    verdicts = {"full": [], "close-up": []}
    for name in ("clean_and_jerk.mp4", "skateboarding.mp4"):
        cap = cv2.VideoCapture(str(videos / name))
        frames = [cap.read()[1] for _ in range(60)][::10]
        cap.release()
        for kind in ("full", "close-up"):
            pose = MediaPipePose(pose_model, mode="video", num_poses=1)
            try:
                for t, frame in enumerate(frames):
                    h, w = frame.shape[:2]
                    image = frame if kind == "full" else cv2.resize(frame[:h * 45 // 100, w // 4:3 * w // 4], (w, h))
                    for p in pose.detect(image, t * 100):
                        hip_visibility[kind].append(float(p.world[[23, 24], 3].min()))
                        verdicts[kind].append(check.whole_body(p.image, p.image_size))
            finally:
                pose.close()
    assert len(verdicts["full"]) >= 6 and all(verdicts["full"]), verdicts
    # the close-ups that visibility alone would pass (hips >= 0.5) are the point: there must be some
    fooled = [v for v, vis in zip(verdicts["close-up"], hip_visibility["close-up"]) if vis >= check.min_visibility]
    assert len(fooled) >= 3 and not any(fooled), (verdicts, hip_visibility)
