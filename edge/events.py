"""Action events as JSON lines: one complete object per line, flushed at once, so the file stays valid
even when the loop stops on an error or is interrupted."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edge.smoothing import Decision


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


class EventWriter:
    """Writes events to a .jsonl file (or nowhere when path is None); also keeps them for the caller
    when `keep` is set (tests, the summary)."""

    def __init__(self, path: str | Path | None = None, keep: bool = False, echo: IO[str] | None = None):
        self.path = Path(path) if path else None
        self.keep = keep
        self.echo = echo
        self.events: list[dict[str, Any]] = []
        self.count = 0
        self._fh: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", encoding="utf-8")

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = _jsonable({"event": event, **fields})
        line = json.dumps(record, allow_nan=False, separators=(",", ":"))
        if self._fh is not None:
            self._fh.write(line + "\n")
            self._fh.flush()
        if self.echo is not None:
            print(line, file=self.echo)
        if self.keep:
            self.events.append(record)
        self.count += 1
        return record

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass(frozen=True)
class ActionEvent:
    """Something that happened to one person at one moment of stream time."""
    kind: str  # action_start | action_end | person_found | person_lost
    person_id: int
    time_s: float  # stream time (the model-rate sample the decision was made on)
    action: str | None = None
    confidence: float | None = None  # at the start (action_start, action_end)
    reason: str | None = None  # action_end: switch | low_confidence | no_person | partial_body | end_of_stream
    start_s: float | None = None  # action_end: when the action started
    peak_confidence: float | None = None  # action_end

    def to_dict(self) -> dict[str, Any]:
        """The JSON-lines record: {"event": kind, "person": id, "time": s, ...} without empty fields."""
        out: dict[str, Any] = {"event": self.kind, "person": self.person_id, "time": self.time_s}
        for key, value in (("action", self.action), ("confidence", self.confidence), ("start", self.start_s),
                           ("peak_confidence", self.peak_confidence), ("reason", self.reason)):
            if value is not None:
                out[key] = value
        if self.start_s is not None:
            out["duration"] = self.time_s - self.start_s
        return out


class ActionEvents:
    """Turns one person's decisions into action_start / action_end events (appended to `out`)."""

    def __init__(self, person_id: int) -> None:
        self.person_id = person_id
        self.active: dict | None = None

    def update(self, decision: "Decision", time_s: float, out: list[ActionEvent]) -> None:
        if self.active is not None and decision.label == self.active["action"]:
            self.active["peak"] = max(self.active["peak"], decision.confidence)
        if not decision.changed:
            return
        self.end(time_s, "switch" if decision.index is not None else "low_confidence", out)
        if decision.index is not None:
            self.active = {"action": decision.label, "start": time_s, "confidence": decision.confidence,
                           "peak": decision.confidence}
            out.append(ActionEvent("action_start", self.person_id, time_s, decision.label, decision.confidence))

    def end(self, time_s: float, reason: str, out: list[ActionEvent]) -> None:
        """Close the active action, if any."""
        if self.active is None:
            return
        a, self.active = self.active, None
        out.append(ActionEvent("action_end", self.person_id, time_s, a["action"], a["confidence"], reason,
                               a["start"], a["peak"]))


class PresenceEvents:
    """person_found / person_lost that pair: a person id is *present* from the frame it is detected until it has
    been unseen for longer than `hold_s` (or the tracker forgot it); `found` opens a presence, `lost` closes it.
    Every person_lost is followed by a person_found before any other event of that id, so replaying the events
    (found +1, lost -1) gives the number of people present at any time (`people_count`)."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.last_seen: dict[int, float] = {}  # present ids -> last time seen

    def found(self, seen_ids: list[int], time_s: float, out: list[ActionEvent]) -> None:
        """Call with the ids detected this frame, before their other events."""
        for pid in seen_ids:
            if pid not in self.last_seen:
                out.append(ActionEvent("person_found", pid, time_s))
            self.last_seen[pid] = time_s

    def lost(self, time_s: float, tracked_ids: set[int], out: list[ActionEvent]) -> None:
        """Call after this frame's other events: ids unseen for more than hold_s (or no longer tracked) are lost."""
        for pid, last in list(self.last_seen.items()):
            if time_s - last > self.hold_s or pid not in tracked_ids:
                out.append(ActionEvent("person_lost", pid, time_s))
                del self.last_seen[pid]


def people_count(events: list[dict[str, Any]]) -> list[tuple[float, int]]:
    """(time, people present) after each person_found / person_lost of an events stream (JSON-lines records)."""
    present: set[int] = set()
    out = []
    for e in events:
        if e.get("event") == "person_found":
            present.add(e["person"])
        elif e.get("event") == "person_lost":
            present.discard(e["person"])
        else:
            continue
        out.append((e["time"], len(present)))
    return out


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Parse a JSON-lines events file; raises ValueError naming the file and line on a bad line."""
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
    return out


if __name__ == "__main__":  # python -m edge.events FILE: validate and count an events file
    for p in sys.argv[1:]:
        evs = read_events(p)
        kinds: dict[str, int] = {}
        for e in evs:
            kinds[e.get("event", "?")] = kinds.get(e.get("event", "?"), 0) + 1
        print(f"{p}: {len(evs)} events {kinds}")
