"""CPU rendering for SAPIEN 3 / ManiSkill3: a private Mesa 25 lavapipe, and how a process uses it.

Why: SAPIEN 3.0.3 needs a Vulkan device with ``descriptorBindingPartiallyBound`` (and more);
Debian bookworm's lavapipe (Mesa 22.3.6) lacks it, so ManiSkill fails with
``Failed to find a supported physical device "cpu"`` on a machine without a GPU, even for
state-only envs. Mesa 25.0.7 from bookworm-backports has it.

``ostinato control setup-render [PREFIX]`` (:func:`setup_render`) needs root and apt:

1. adds the ``bookworm-backports`` apt source (same mirror as the machine's main suite);
2. installs the Vulkan loader and the runtime libraries the backported driver links against
   (read from ``apt-cache depends``; LLVM 15, xcb, wayland-client, ...), with the stock
   packages (the system Mesa is not replaced);
3. downloads ``mesa-vulkan-drivers``, ``libdrm2`` and ``libdrm-amdgpu1`` from backports and
   unpacks them under ``PREFIX/root`` with ``dpkg -x``;
4. writes ``PREFIX/lvp_icd.json`` and ``PREFIX/env.sh`` (``VK_ICD_FILENAMES``,
   ``LD_LIBRARY_PATH``, ``NODEVICE_SELECT=1``) for shells.

Default PREFIX: ``$OSTINATO_LVP`` or ``~/.cache/ostinato/mesa-lvp25``.

In Python, :func:`configure_render` (called by every ManiSkill env constructor) activates it
*without a re-exec*: ``LD_LIBRARY_PATH`` is read by the dynamic loader only at process start,
so instead the private ``libdrm*.so`` are loaded by absolute path with ``RTLD_GLOBAL`` before
Vulkan loads the driver; the driver's ``DT_NEEDED`` entries then bind to those already-loaded
sonames. ``LD_LIBRARY_PATH`` is still exported in ``os.environ`` so that child processes
(``gym.vector.AsyncVectorEnv`` workers started with ``spawn``/``forkserver``, subprocesses)
get it from their start; forked workers inherit the loaded libraries. This must run before
the first SAPIEN render device is created in the process (importing ``mani_skill`` is fine).

On a machine with an NVIDIA driver (``/dev/nvidia0`` or an ``nvidia_icd.json``) nothing is
changed, so SAPIEN keeps the GPU; ``OSTINATO_RENDER=system`` also leaves Vulkan alone.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from pathlib import Path

from ostinato.core.errors import EnvironmentMissing, OstinatoError

_LIB_SUBDIR = "root/usr/lib/x86_64-linux-gnu"
_PRIVATE_LIBS = ("libdrm.so.2", "libdrm_amdgpu.so.1")
_DEBS = ("mesa-vulkan-drivers", "libdrm2", "libdrm-amdgpu1")
_SUITE = "bookworm-backports"
_ACTIVE: dict[str, str] = {}


def default_prefix() -> Path:
    env = os.environ.get("OSTINATO_LVP")
    if env:
        return Path(env).expanduser()
    from ostinato.core.data import CACHE_DIR

    return CACHE_DIR / "mesa-lvp25"


def has_nvidia() -> bool:
    """True when an NVIDIA Vulkan/driver is present: then the GPU renders, lavapipe is not used."""
    if os.path.exists("/dev/nvidia0"):
        return True
    icds = ("/usr/share/vulkan/icd.d/nvidia_icd.json", "/etc/vulkan/icd.d/nvidia_icd.json",
            "/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json")
    return any(os.path.exists(p) for p in icds)


def is_installed(prefix: str | Path | None = None) -> bool:
    p = Path(prefix) if prefix else default_prefix()
    return (p / "lvp_icd.json").exists() and (p / _LIB_SUBDIR / "libvulkan_lvp.so").exists()


def render_status(prefix: str | Path | None = None) -> str:
    """One word for listings: 'gpu', 'lavapipe' (private Mesa 25 found) or 'missing'."""
    if os.environ.get("OSTINATO_RENDER") == "system":
        return "system"
    if has_nvidia():
        return "gpu"
    return "lavapipe" if is_installed(prefix) else "missing"


def configure_render(prefix: str | Path | None = None, required: bool = True) -> str:
    """Make this process (and its children) use the private lavapipe unless a GPU is present.

    Returns the status word of :func:`render_status`. With ``required`` and no renderer,
    raises a one-line error naming the set-up command.
    """
    status = render_status(prefix)
    if status in ("gpu", "system"):
        return status
    if status == "missing":
        if required:
            raise EnvironmentMissing(
                f"no Vulkan renderer for ManiSkill on this CPU machine ({Path(prefix or default_prefix())} has no "
                "Mesa 25 lavapipe); run `ostinato control setup-render` once (root, apt)"
            )
        return status
    p = Path(prefix) if prefix else default_prefix()
    lib = str(p / _LIB_SUBDIR)
    if _ACTIVE.get("lib") == lib:
        return status
    os.environ["VK_ICD_FILENAMES"] = str(p / "lvp_icd.json")
    os.environ["NODEVICE_SELECT"] = "1"
    paths = [q for q in os.environ.get("LD_LIBRARY_PATH", "").split(":") if q]
    if lib not in paths:
        os.environ["LD_LIBRARY_PATH"] = ":".join([lib, *paths])
    for name in _PRIVATE_LIBS:  # bind the driver's DT_NEEDED to the private copies (see module doc)
        f = Path(lib) / name
        if f.exists():
            ctypes.CDLL(str(f), mode=ctypes.RTLD_GLOBAL)
    _ACTIVE["lib"] = lib
    return status


# ----------------------------------------------------------------------------- set-up (root)
def _run(cmd: list[str], log, **kw) -> subprocess.CompletedProcess:
    log("$ " + " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise OstinatoError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {tail[0]}")
    return r


_BASE_SUITE = _SUITE.split("-")[0]  # "bookworm"
_BACKPORTS_FILE = Path("/etc/apt/sources.list.d/bookworm-backports.sources")


def _apt_source_files(etc: Path) -> list[Path]:
    """The files apt itself reads: sources.list and sources.list.d/*.list|*.sources (others,
    e.g. `*.disabled`, are ignored by apt and so here), in apt's (sorted) order."""
    d = etc / "sources.list.d"
    files = [etc / "sources.list"] if (etc / "sources.list").is_file() else []
    if d.is_dir():
        files += sorted(f for f in d.iterdir() if f.suffix in (".list", ".sources") and f.is_file())
    return files


def debian_mirror(etc: Path = Path("/etc/apt"), skip: Path | None = None) -> tuple[str | None, bool]:
    """(URI of the source that serves the base suite `bookworm`, whether some source already
    serves bookworm-backports). Reads one-line (`deb [opts] URI SUITE COMPONENTS`) and deb822
    (`URIs:` / `Suites:` stanzas) files; a source for another suite (nodesource, cloud-sdk) is
    never taken as the Debian mirror."""
    uri, has_backports = None, False
    for f in _apt_source_files(etc):
        if skip is not None and f == skip:
            continue
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.lstrip().startswith("#"):
                        k, v = line.split(":", 1)
                        fields[k.strip().lower()] = v.split()
                if fields.get("enabled", ["yes"])[0].lower() == "no" or "deb" not in fields.get("types", []):
                    continue
                suites, uris = fields.get("suites", []), fields.get("uris", [])
                has_backports |= _SUITE in suites
                if uri is None and _BASE_SUITE in suites and uris:
                    uri = uris[0]
        else:
            for line in text.splitlines():
                s = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()  # drop [arch=... signed-by=...]
                if len(s) < 3 or s[0] != "deb":
                    continue
                s = s[1:]
                has_backports |= s[1] == _SUITE
                if uri is None and s[1] == _BASE_SUITE:
                    uri = s[0]
    return uri, has_backports


def _backports_source(log) -> None:
    uri, has_backports = debian_mirror(skip=_BACKPORTS_FILE)
    if has_backports:
        return
    if not uri:
        raise OstinatoError(f"no apt source for Debian `{_BASE_SUITE}` found in /etc/apt to derive the {_SUITE} source from")
    body = (
        f"Types: deb\nURIs: {uri}\nSuites: {_SUITE}\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    if _BACKPORTS_FILE.is_file() and _BACKPORTS_FILE.read_text() == body:
        return
    log(f"writing {_BACKPORTS_FILE} ({uri})")
    _BACKPORTS_FILE.write_text(body)


def _runtime_deps(log) -> list[str]:
    r = _run(["apt-cache", "depends", f"mesa-vulkan-drivers/{_SUITE}"], log)
    deps = []
    for line in r.stdout.splitlines():
        s = line.strip()
        if s.startswith("Depends:"):
            name = s.split()[1].strip("<>")
            if name not in ("libdrm2", "libdrm-amdgpu1") and name not in deps:
                deps.append(name)
    return deps


def setup_render(prefix: str | Path | None = None, log=print, force: bool = False) -> Path:
    """Install the private Mesa 25 lavapipe under ``prefix`` (see module doc); returns env.sh.

    Does nothing when it is already installed there (``force`` reinstalls).
    """
    p = (Path(prefix) if prefix else default_prefix()).expanduser().resolve()
    if is_installed(p) and (p / "env.sh").exists() and not force:
        log(f"already installed: {p} (ostinato's envs use it automatically; shells: source {p / 'env.sh'})")
        return p / "env.sh"
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise OstinatoError("setup-render needs a Debian system with apt-get and dpkg")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise OstinatoError("setup-render runs apt-get: run it as root (CI does)")
    _backports_source(log)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], log, env=env)
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "libvulkan1", *_runtime_deps(log)], log, env=env)
    debs, root = p / "debs", p / "root"
    debs.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(debs, 0o777)  # apt's sandbox user must be able to write the downloads
    _run(["apt-get", "download", "-qq", *[f"{d}/{_SUITE}" for d in _DEBS]], log, cwd=debs, env=env)
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(root)], log)
    lib = p / _LIB_SUBDIR
    if not (lib / "libvulkan_lvp.so").exists():
        raise OstinatoError(f"{lib / 'libvulkan_lvp.so'} missing after unpacking {', '.join(_DEBS)}")
    (p / "lvp_icd.json").write_text(
        '{ "file_format_version": "1.0.0",\n'
        f'  "ICD": {{ "api_version": "1.4.305", "library_path": "{lib}/libvulkan_lvp.so" }} }}\n'
    )
    env_sh = p / "env.sh"
    env_sh.write_text(
        f"export VK_ICD_FILENAMES={p}/lvp_icd.json\n"
        f"export LD_LIBRARY_PATH={lib}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\n"
        "export NODEVICE_SELECT=1\n"
    )
    log(f"done: ostinato's ManiSkill envs use it automatically; for other programs: source {env_sh}")
    return env_sh
