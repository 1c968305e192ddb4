"""``python -m ostinato.core.kernels``: build the fused kernels ahead of time (exit 1 if unavailable)."""
from . import _build_dir, _name, available

ok = available(build=True)
print(f"ostinato fused kernels: {'built in ' + str(_build_dir(_name())) if ok else 'unavailable'}")
raise SystemExit(0 if ok else 1)
