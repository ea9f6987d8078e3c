"""core.timing, and that every latency table of the toolkit goes through it."""
import numpy as np
import pytest

from core import timing


class FakeClock:
    """Each call of the timed function advances the clock by the next duration (seconds)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_summarize_percentiles_mean_std():
    s = timing.summarize(range(1, 101))
    assert (s.p50_ms, s.p90_ms, s.p99_ms) == pytest.approx((50.5, 90.1, 99.01))
    assert s.mean_ms == 50.5 and s.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s.count == 100 and s.min_ms == 1 and s.max_ms == 100 and len(s.samples_ms) == 100
    with pytest.raises(ValueError):
        timing.summarize([])


def test_interleaved_round_robin_warmup_and_min_seconds():
    clock = FakeClock()
    calls = []

    def make(name, ms):
        def fn():
            calls.append(name)
            clock.now += ms / 1e3
        return fn
    stats = timing.interleaved({"a": make("a", 2.0), "b": make("b", 5.0)}, warmup=2, runs=3, clock=clock)
    assert calls == ["a", "b"] * 5  # 2 warm-up rounds + 3 timed rounds, alternating
    assert stats["a"].count == 3 and stats["a"].p90_ms == pytest.approx(2.0)
    assert stats["b"].mean_ms == pytest.approx(5.0) and stats["b"].std_ms == pytest.approx(0.0)
    calls.clear()
    stats = timing.interleaved({"a": make("a", 10.0)}, warmup=0, runs=2, min_seconds=0.045, clock=clock)
    assert stats["a"].count == 5  # 2 runs of 10 ms are under 45 ms: more rounds until they are not
    assert timing.PRESETS["rapid"].runs < timing.PRESETS["quick"].runs < timing.PRESETS["normal"].runs


def test_every_latency_table_uses_core_timing():
    """The model table, the edge loop's meter and benchmarks (every format, and every device) share one code."""
    import benchmarks.measure
    import core.models.profile
    import edge.latency
    assert core.models.profile.time_callable is timing.time_callable
    assert edge.latency.summarize is timing.summarize
    assert benchmarks.measure.interleaved is timing.interleaved
    # and they agree with it on the same samples
    meter = edge.latency.LatencyMeter(stages=("pose",))
    samples = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    for v in samples:
        meter.add("pose", v)
    ref = timing.summarize(samples)
    got = meter.summary()["pose"]
    assert (got["p50_ms"], got["p90_ms"], got["p99_ms"]) == (ref.p50_ms, ref.p90_ms, ref.p99_ms)
