"""The mixers-bench contract for control: muVLA's memory slot on the cue task. Slow (two short trainings, ~15 s
alone); the default run covers control's mixer_task through tests/test_mixer_slots.py."""
import math

import pytest


@pytest.mark.slow
def test_mixer_task_trains_two_mixers_and_streams():
    from ostinato.core import benchkit as kit
    from ostinato.core.mixer import is_causal, mixer_entries
    from ostinato.core.recipe import load
    from ostinato.control.bench import mixer_task

    task = mixer_task()
    assert {"lstm", "gru", "s5", "lru", "mingru", "mamba"} <= set(task["mixers"])
    assert all(is_causal(mixer_entries()[m], mixer_entries()[m].config()) for m in task["mixers"])
    for recipe in (task["recipe"], task["quick_recipe"]):
        assert load(recipe, task["overrides"]).model.mixer is None  # default cell: memory tokens
    for mixer in ("gru", "mingru"):
        seen = {}

        def probe(run):
            seen.update(name=run.model.memory.mixer.name, s=task["stream"](run.model, run.cfg))
            return {}

        row = kit.train(task["quick_recipe"], task["overrides"] + [f"{task['slot']}.name={mixer}",
                                                                   "trainer.max_steps=2"], probe=probe)
        assert seen["name"] == mixer and row["steps"] == 2
        assert math.isfinite(seen["s"]) and 0 < seen["s"] < 5
        for key in task["metrics"].values():
            v = kit.get(row, key)
            assert isinstance(v, float) and 0.0 <= v <= 1.0, (mixer, key)
