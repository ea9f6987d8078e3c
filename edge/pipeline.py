"""Two stages on their own threads with bounded hand-offs: the pipelined edge loop's machinery.

    submit(frame) -> [one-slot inbox] -> plan thread (pose, tracking, windows) -> [ordered queue of at most
    `depth` plans] -> emit thread (classifier, smoothing, events, the result callback)

While the emit thread classifies the window up to frame t, the plan thread already runs pose on frame t+1, so the
loop keeps up when max(pose, classifier) fits a frame, not only when their sum does. The inbox keeps the newest
frame: a frame the plan thread had no time for is replaced and counted in `dropped` (unless the caller asks to
wait instead). Plans leave in the order they entered; the emit thread sees the plans queued behind the one it
takes, so it can skip work a newer plan makes stale. Memory is fixed: one frame in the inbox, at most `depth`
plans, nothing kept after it is emitted. An exception in either stage stops the pipeline and is re-raised to the
caller on its next call."""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable


class PipelineError(RuntimeError):
    """Raised when the pipeline is used after close()."""


class Pipeline:
    """See the module docstring. `plan(item) -> plan` and `emit(plan, queued_behind)` run on two threads."""

    def __init__(self, plan: Callable[[Any], Any], emit: Callable[[Any, list[Any]], None], depth: int = 32,
                 name: str = "edge"):
        if depth < 1:
            raise ValueError(f"pipeline depth must be >= 1, got {depth}")
        self._plan, self._emit, self.depth = plan, emit, depth
        self._cond = threading.Condition()
        self._inbox: Any = None
        self._inbox_full = False
        self._queue: deque[Any] = deque()
        self._pending = 0  # submitted and not yet emitted (a replaced frame no longer counts)
        self.dropped = 0  # frames replaced in the inbox before the plan thread took them
        self.submitted = 0
        self.error: BaseException | None = None
        self._error_raised = False
        self._closed = False
        self._threads = [threading.Thread(target=self._run_plan, name=f"{name}-plan", daemon=True),
                         threading.Thread(target=self._run_emit, name=f"{name}-emit", daemon=True)]
        for thread in self._threads:
            thread.start()

    # ---- the caller's side ---------------------------------------------------------------------
    def submit(self, item: Any, block: bool = False) -> bool:
        """Hand a frame in. block=False: never waits; a frame still waiting in the inbox is replaced (dropped).
        block=True: waits until the plan thread has taken the previous frame (nothing dropped). Returns whether
        a frame was dropped."""
        with self._cond:
            self._raise_if_failed()
            if block:
                self._cond.wait_for(lambda: not self._inbox_full or self._stopped())
                self._raise_if_failed()
            replaced = self._inbox_full
            if replaced:
                self.dropped += 1
            else:
                self._pending += 1
            self._inbox, self._inbox_full = item, True
            self.submitted += 1
            self._cond.notify_all()
            return replaced

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every frame handed in has been emitted (or dropped); False on timeout."""
        with self._cond:
            done = self._cond.wait_for(lambda: self._pending == 0 or self._stopped(), timeout)
            self._raise_if_failed()
            return done

    def check(self) -> None:
        """Re-raise a stage's exception (on every call after it happened)."""
        with self._cond:
            self._raise_if_failed()

    def close(self, timeout: float = 5.0) -> None:
        """Stop both threads; frames and plans still in flight are discarded. A stage's exception that no call
        has reported yet is raised here."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        with self._cond:
            if self.error is not None and not self._error_raised:
                self._error_raised = True
                raise self.error

    @property
    def in_flight(self) -> int:
        return self._pending

    # ---- the threads ---------------------------------------------------------------------------
    def _stopped(self) -> bool:
        return self._closed or self.error is not None

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            self._error_raised = True
            raise self.error
        if self._closed:
            raise PipelineError("the pipeline is closed")

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self.error is None:
                self.error = exc
            self._cond.notify_all()

    def _run_plan(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._inbox_full or self._stopped())
                if self._stopped():
                    return
                item, self._inbox, self._inbox_full = self._inbox, None, False
                self._cond.notify_all()  # a blocked submit may go on
            try:
                plan = self._plan(item)
            except BaseException as exc:  # re-raised to the caller on its next call
                self._fail(exc)
                return
            with self._cond:
                self._cond.wait_for(lambda: len(self._queue) < self.depth or self._stopped())
                if self._stopped():
                    return
                self._queue.append(plan)
                self._cond.notify_all()

    def _run_emit(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._stopped())
                if self._stopped():
                    return
                plan = self._queue.popleft()
                behind = list(self._queue)
                self._cond.notify_all()  # the plan thread may queue again
            try:
                self._emit(plan, behind)
            except BaseException as exc:  # e.g. a backend failing mid-run, or the caller's callback
                self._fail(exc)
                return
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
