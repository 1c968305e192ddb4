import subprocess
import sys

HEAVY = ("timm", "skimage", "torchvision", "av", "PIL", "scipy", "h5py", "torch._dynamo")


def test_domain_import_stays_light():
    """`ostinato` loads every domain at start-up: importing the vision domain must not pull
    in timm (which imports torchvision and dynamo: ~4 s), scikit-image or the video I/O."""
    code = "import sys, ostinato.vision.domain; print(' '.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"imported at start-up: {r.stdout.strip()}"
