"""Helpers shared by the hostile-input tests: the CLI in-process and in a subprocess, the one-line check,
and small bad files."""
import os
import subprocess
import sys
from pathlib import Path
import numpy as np
import pandas as pd
import soundfile as sf


ROOT = Path(__file__).resolve().parents[2]
ETTH1 = ROOT / "timeseries" / "samples" / "timeseries" / "ETT" / "ETTh1.csv"


def run_cli(*args, timeout=120):
    """The real `ostinato ARGS` in a subprocess (as a user runs it)."""
    return subprocess.run([sys.executable, "-m", "ostinato.core.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def one_line(text: str, *names) -> str:
    """The stderr of a failed command: 1 line (at most 3), no traceback, naming ``names``."""
    lines = [x for x in text.strip().splitlines() if x.strip()]
    assert 1 <= len(lines) <= 3, text
    assert "Traceback" not in text, text
    for n in names:
        assert str(n) in text, (n, text)
    return lines[-1]


def cli_main(capsys, *args):
    """In-process `ostinato ARGS` -> (exit code, stdout, stderr)."""
    from ostinato.core.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _wav(path, x, sr=16000, subtype="FLOAT"):
    sf.write(str(path), np.asarray(x, np.float32), sr, subtype=subtype)
    return path


def _speech(n=8000, seed=0):
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


def _ett(tmp_path, name="look.csv", n=60, edit=None):
    df = pd.read_csv(ETTH1).iloc[-n:].reset_index(drop=True)
    if edit:
        edit(df)
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def _pairs_file(path, pairs):
    path.write_text("".join(f"{u} {i}\n" for u, i in pairs))
    return path


def cli_code(capsys, *args):
    """cli_main, but an argparse usage error (SystemExit) is an exit code too."""
    try:
        return cli_main(capsys, *args)
    except SystemExit as e:
        out = capsys.readouterr()
        return e.code, out.out, out.err


def _kept(f):
    assert f.read_text() == "keep me\n"
