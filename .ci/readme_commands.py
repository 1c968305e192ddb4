"""Print the README's two set-up commands (the first line of its first two ```bash blocks),
one per line, for .ci/run to run exactly as written. Standard library only: it runs before
any install."""
import re
import sys
from pathlib import Path

blocks = re.findall(r"```bash\n(.*?)```", Path(sys.argv[1]).read_text(), flags=re.S)
cmds = [next(ln.strip() for ln in b.splitlines() if ln.strip() and not ln.startswith("#")) for b in blocks[:2]]
if len(cmds) != 2 or not all(c.startswith("pip install") for c in cmds):
    sys.exit(f"readme_commands: expected two `pip install ... && ...` set-up commands, found {cmds}")
print("\n".join(cmds))
