"""A low-poly copy of ManiSkill's Panda assets, for about 3x faster CPU rendering.

Rendering cost on lavapipe is dominated by geometry: the Panda visual meshes have about 136k
triangles and the D415 wrist-camera mesh 425k. :func:`lowpoly_panda_dir` copies
``mani_skill/assets/robots/panda`` into the cache (``~/.cache/ostinato/control/lowpoly_panda``)
with every visual mesh (``franka_description/meshes/visual/*.glb`` and
``realsense2_description/meshes/d415.stl``) decimated to ``keep`` (default 10 %) of its faces
by quadric decimation (trimesh + fast-simplification). Collision meshes, URDF and SRDF files
are copied unchanged, so the physics is identical; only the pictures lose detail.
:func:`use_lowpoly_panda` points ``Panda.urdf_path`` / ``PandaWristCam.urdf_path`` at the
copy (the motion planner reads the same URDF/SRDF).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ostinato.core.errors import OstinatoError

_VISUAL = ("franka_description/meshes/visual", "realsense2_description/meshes")


def _decimate_file(src: Path, dst: Path, keep: float) -> None:
    import trimesh

    obj = trimesh.load(src, force=None)
    geoms = obj.geometry if isinstance(obj, trimesh.Scene) else {"mesh": obj}
    for name, g in list(geoms.items()):
        if not isinstance(g, trimesh.Trimesh) or len(g.faces) < 200:
            continue
        visual = g.visual
        h = g.simplify_quadric_decimation(percent=1.0 - keep)
        material = getattr(visual, "material", None)
        if material is not None:  # keep the PBR colour; the UVs do not survive decimation
            h.visual = trimesh.visual.TextureVisuals(material=material)
        geoms[name] = h
    out = obj if isinstance(obj, trimesh.Scene) else geoms["mesh"]
    out.export(dst)


def lowpoly_panda_dir(keep: float = 0.1, cache: Path | None = None) -> Path:
    """Generate (once) and return the folder holding the low-poly ``panda_v2/v3.urdf``."""
    try:
        import mani_skill
        import fast_simplification  # noqa: F401  (trimesh's decimation backend)
        import trimesh  # noqa: F401
    except ImportError as e:
        raise OstinatoError(f"low-poly Panda needs mani-skill, trimesh and fast-simplification ({e.name} missing)") from None
    from ostinato.core.data import CACHE_DIR

    src = Path(mani_skill.__file__).parent / "assets/robots/panda"
    dst = (cache or CACHE_DIR / "control") / f"lowpoly_panda_{int(round(keep * 100))}"
    if (dst / ".done").exists():
        return dst
    # a private build folder per process, renamed into place at the end: two collectors
    # started together on a fresh machine each build one, and the first rename wins
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dst.name + ".tmp", dir=dst.parent)) / "panda"
    try:
        shutil.copytree(src, tmp)
        for sub in _VISUAL:
            for f in sorted((src / sub).glob("*")):
                if f.suffix.lower() in (".glb", ".stl") and "collision" not in f.name:
                    _decimate_file(f, tmp / sub / f.name, keep)
        (tmp / ".done").write_text(f"keep={keep}\n")
        if not (dst / ".done").exists():
            shutil.rmtree(dst, ignore_errors=True)  # a half-written copy from an older version
            try:
                tmp.rename(dst)
            except OSError:
                if not (dst / ".done").exists():  # not another process's finished copy
                    raise
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    return dst


def use_lowpoly_panda(keep: float = 0.1) -> Path:
    """Point ManiSkill's Panda and PandaWristCam at the low-poly copy (this process)."""
    from mani_skill.agents.robots.panda.panda import Panda
    from mani_skill.agents.robots.panda.panda_wristcam import PandaWristCam

    d = lowpoly_panda_dir(keep)
    Panda.urdf_path = str(d / "panda_v2.urdf")
    PandaWristCam.urdf_path = str(d / "panda_v3.urdf")
    return d
