"""Every domain's mixer slot with every compatible core mixer (the tasks of `ostinato bench mixers`).

For each domain whose bench.py has ``mixer_task()``: the task meets the contract and its recipes
take every listed mixer through the slot key; and ONE training step of its quick recipe with
each listed mixer, through the bench's own cell, puts that mixer in the model's slot, lands the
task's metrics in the row and streams with a finite latency. The default run takes the two
mixers ``--quick`` would pick per domain; the exhaustive combination is marked ``slow``.
(Each domain's tests check that its streaming equals its forward pass.)
"""
import math

import pytest

from ostinato.core import bench_mixers as bm
from ostinato.core import recipe
from ostinato.core.domain import broken_domains
from ostinato.core.mixer import MixerSlot

TASKS, SKIPPED = bm.discover()
DOMAINS = sorted({t["domain"] for t in TASKS} | set(SKIPPED))


def _cells():
    out = []
    for task in TASKS:
        fast = bm.choose(task, None, quick=True)[1:]
        out += [pytest.param(task, m, marks=() if m in fast else pytest.mark.slow, id=f"{task['domain']}-{m}")
                for m in task["mixers"]]
    return out or [pytest.param(None, None, marks=pytest.mark.skip(reason="no domain has mixer_task() yet"), id="none")]


@pytest.mark.parametrize("domain", DOMAINS)
def test_mixer_task_meets_the_contract(domain):
    fn = getattr(bm.bench_module(domain), "mixer_task", None) if domain not in broken_domains() else None
    if fn is None:
        pytest.skip(f"{domain}: {SKIPPED.get(domain, 'no mixer_task()')}")
    task = bm.check_task(fn(), domain)  # raises the one-line reason the bench would print
    assert len(set(task["mixers"])) == len(task["mixers"])
    for m in task["mixers"]:  # the slot key reaches a slot in both recipes (config only, nothing built)
        for name, quick in ((task["recipe"], False), (task["quick_recipe"], True)):
            cfg = recipe.load(name, bm.cell_overrides(task, m, quick, 1.0))
            assert cfg.trainer.max_minutes == 1.0


@pytest.mark.parametrize("task, mixer", _cells())
def test_one_step_with_each_mixer_streams(task, mixer, monkeypatch):
    seen = []

    def stream(model, cfg):
        seen.append(model)
        return task["stream"](model, cfg)

    monkeypatch.setattr(bm, "QUICK_STEPS", 1)
    r = bm.train_cell({**task, "stream": stream if task["stream"] else None}, mixer, quick=True, budget_min=2.0)
    assert r["steps"] == 1 and r["params"] > 0 and r["mixer"] == mixer
    for label, value in r["metrics"].items():
        assert isinstance(value, (int, float)) and math.isfinite(value), (label, task["metrics"][label], r["test"])
    if task["stream"] is None:
        assert r["stream_ms"] is None and r["stream_note"] == "the host cannot stream"
        return
    assert r["stream_ms"] is not None and math.isfinite(r["stream_ms"]) and r["stream_ms"] > 0, r.get("stream_note")
    slots = [m for m in seen[0].modules() if isinstance(m, MixerSlot)]
    assert slots and all(s.name == mixer for s in slots)  # the override reached the slot: no attention left in it
