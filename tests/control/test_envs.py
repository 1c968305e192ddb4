"""ManiSkill3 / MIKASA-Robo on the CPU (after `ostinato control setup-render`), render set-up logic, vector envs."""
import json
import os

import numpy as np
import pytest

from ostinato.control.envs import EnvConfig, list_envs, make_env
from ostinato.control.envs import render
from ostinato.core.errors import EnvironmentMissing


def test_configure_render_uses_private_lavapipe_and_keeps_gpu(tmp_path, monkeypatch):
    prefix = tmp_path / "lvp"
    lib = prefix / "root/usr/lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "libvulkan_lvp.so").write_bytes(b"")
    (prefix / "lvp_icd.json").write_text(json.dumps({"ICD": {"library_path": str(lib / "libvulkan_lvp.so")}}))
    monkeypatch.setattr(render, "_ACTIVE", {})
    for k in ("VK_ICD_FILENAMES", "NODEVICE_SELECT", "OSTINATO_RENDER"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/x")
    monkeypatch.setattr(render, "has_nvidia", lambda: True)
    assert render.configure_render(prefix) == "gpu"
    assert "VK_ICD_FILENAMES" not in os.environ  # the NVIDIA driver is kept
    monkeypatch.setattr(render, "has_nvidia", lambda: False)
    assert render.configure_render(prefix) == "lavapipe"
    assert os.environ["VK_ICD_FILENAMES"] == str(prefix / "lvp_icd.json")
    assert os.environ["NODEVICE_SELECT"] == "1"
    assert os.environ["LD_LIBRARY_PATH"] == f"{lib}:/opt/x"
    with pytest.raises(EnvironmentMissing, match="ostinato control setup-render"):
        render.configure_render(tmp_path / "nothing")


def test_debian_mirror_takes_the_bookworm_source_and_ignores_others(tmp_path):
    """setup-render derives bookworm-backports from the source that serves `bookworm`, never from
    another vendor's source (nodesource, cloud-sdk) or from a file apt ignores (*.disabled)."""
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "a-nodesource.sources.disabled-by-farm").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n")
    (d / "b-nodesource.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n")
    (d / "cloud.list").write_text("deb [signed-by=/k.gpg] https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n")
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n")
    assert render.debian_mirror(tmp_path) == ("http://mirror.example/debian", False)

    # one-line format, with options; an existing backports line is reported
    (d / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"
        "deb http://one.example/debian bookworm-backports main\n")
    assert render.debian_mirror(tmp_path) == ("http://one.example/debian", True)
    # our own file is skipped, so a wrong one written by an older version gets rewritten
    assert render.debian_mirror(tmp_path, skip=tmp_path / "sources.list") == (None, False)


def test_lowpoly_panda_two_builders_at_once(tmp_path, monkeypatch):
    """Two collectors started together on a fresh machine each build the low-poly copy in their own
    folder; both get the finished copy and no build folder is left behind."""
    import shutil
    import threading

    pytest.importorskip("mani_skill")
    from ostinato.control.envs import lowpoly

    barrier = threading.Barrier(2)

    monkeypatch.setattr(lowpoly, "_decimate_file", lambda s, d, k: shutil.copyfile(s, d))  # no decimation
    done = []

    def build():
        done.append(lowpoly.lowpoly_panda_dir(0.1, cache=tmp_path))

    orig_copytree = shutil.copytree

    def copytree_then_wait(*a, **kw):
        r = orig_copytree(*a, **kw)
        barrier.wait(timeout=30)  # both have copied before either renames
        return r

    monkeypatch.setattr(lowpoly.shutil, "copytree", copytree_then_wait)
    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(done) == 2 and done[0] == done[1]
    assert (done[0] / ".done").exists() and (done[0] / "panda_v3.urdf").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [done[0].name]


def test_ls_envs_rows():
    rows = dict(list_envs())
    assert rows["cue_task"].startswith("ok")
    assert "RememberColor3-v0" in rows and "PushCube-v1" in rows
    assert not rows["ShellGamePick-v0"].startswith("ok") or "oracle" in rows["ShellGamePick-v0"]


def test_shellgame_without_ycb_is_one_line_error():
    from ostinato.control.envs.maniskill import import_env_modules, ycb_available

    try:
        import mikasa_robo_suite  # noqa: F401
    except ImportError:  # without MIKASA-Robo the refusal names the install command
        with pytest.raises(EnvironmentMissing, match="needs MIKASA-Robo: pip install --no-deps mikasa-robo-suite"):
            import_env_modules("ShellGameTouch-v0")
        return
    if ycb_available():  # the assets were downloaded on this machine: the env must then build
        import_env_modules("ShellGameTouch-v0")
        return
    with pytest.raises(EnvironmentMissing, match="needs the YCB assets"):
        import_env_modules("ShellGameTouch-v0")


def test_maniskill_state_env_steps_on_cpu_and_scripted_push_succeeds(renderer):
    from ostinato.control.envs.oracles import push_cube_action

    env = make_env(EnvConfig(env="PushCube-v1", obs_mode="state"))
    obs, info = env.reset(seed=0)
    assert obs["proprio"].ndim == 1 and "rgb" not in obs and isinstance(obs["instruction"], str)
    obs, r, term, trunc, info = env.step(env.action_space.sample())
    assert np.isfinite(obs["proprio"]).all() and isinstance(info["success"], bool)
    env.reset(seed=1)
    success = False
    for _ in range(60):
        _, _, term, trunc, info = env.step(push_cube_action(env.unwrapped_ms))
        success |= info["success"]
        if term or trunc:
            break
    assert success
    env.close()


def test_motion_planning_refusal_is_one_line():
    from ostinato.control.envs.oracles import motion_planning_solver, motion_planning_usable
    from ostinato.core.errors import ConfigError

    why = motion_planning_usable()
    if why:  # mplib 0.1.1 + NumPy 2: a clear refusal instead of a segfault
        with pytest.raises(ConfigError, match="cannot record 'PickCube-v1' demos by motion planning"):
            motion_planning_solver("PickCube-v1")
    else:
        assert callable(motion_planning_solver("PickCube-v1"))


def test_remember_color3_reveal_fix_and_oracle_succeed(mikasa, renderer):
    from ostinato.control.envs.oracles import remember_color_action

    env = make_env(EnvConfig(env="RememberColor3-v0", obs_mode="state"))
    env.reset(seed=7)
    ms = env.unwrapped_ms
    z, success = [], False
    for _ in range(40):
        _, _, term, trunc, info = env.step(remember_color_action(ms))
        z.append(float(ms.cubes[int(ms.true_color_indices[0])].pose.p[0, 2]))
        success |= info["success"]
        if term or trunc:
            break
    assert z[6] > 100  # hidden during the delay
    assert success and z[-1] < 0.1  # back on the table after the reveal, and touched
    env.close()
