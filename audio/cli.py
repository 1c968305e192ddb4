"""The audio domain's verbs: ``ostinato enhance`` (the library is ``enhance.py``) and
``ostinato bench audio``. Each verb imports what it runs only when it runs."""
from __future__ import annotations

from pathlib import Path

from ostinato.core.errors import ConfigError, DataError


def bench(quick: bool = False, out: Path | None = None) -> list[dict]:
    """``ostinato bench audio``: the rows of ``bench.run`` (written with ``ostinato.core.benchkit``)."""
    from .bench import run

    return run(quick=quick, out=out)


def cmd_enhance(args) -> int:
    import torch

    from ostinato.core.paths import check_out_dir
    from ostinato.core.train import load_run

    from .enhance import enhance_file

    if args.threads < 0:
        raise ConfigError(f"--threads {args.threads}: expected a positive number of threads (0: torch's choice)")
    if not args.chunk_seconds > 0:
        raise ConfigError(f"--chunk-seconds {args.chunk_seconds}: expected a positive number of seconds")
    outdir = check_out_dir(args.output, "a folder for the enhanced wavs", flag="-o")
    inputs = [Path(p) for p in args.inputs]
    for p in inputs:
        if not p.is_file():
            raise DataError(f"{p}: no such file; expected an audio file (wav/flac/ogg)")
        if (outdir / f"{p.stem}.wav").resolve() == p.resolve():
            raise ConfigError(f"{p}: the output would overwrite the input; choose another -o OUTDIR")
    if args.spectrogram:
        from ostinato.core.paths import check_out_file

        check_out_file(args.spectrogram, "a PNG file", flag="--spectrogram")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.official:
        from .models.frcrn import load_official

        model = load_official(args.checkpoint)
    else:
        model, _, _ = load_run(args.checkpoint, build_data_too=False, expect_domain="audio", verb="enhance")
    model.eval()
    if not hasattr(model, "stream") or not hasattr(model, "sample_rate"):
        raise ConfigError(f"{args.checkpoint}: not an audio enhancement model (got {type(model).__name__})")
    total_t, total_s = 0.0, 0.0
    for p in inputs:
        spec = None
        if args.spectrogram:
            s = Path(args.spectrogram)
            spec = s if len(inputs) == 1 else s.with_name(f"{s.stem}_{p.stem}{s.suffix or '.png'}")
        dst = outdir / f"{p.stem}.wav"
        r = enhance_file(model, p, dst, args.chunk_seconds, args.keep_rate, spec)
        total_t += r["rtf"] * r["seconds"]
        total_s += r["seconds"]
        print(f"{p} -> {dst}  {r['seconds']:.2f} s at {r['sample_rate']} Hz  RTF {r['rtf']:.3f}")
    print(f"enhanced {len(inputs)} file(s), {total_s:.2f} s of audio, real-time factor {total_t / total_s:.3f} "
          f"({torch.get_num_threads()} thread(s))")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("enhance", help="enhance noisy speech files with a trained model (audio)")
    p.add_argument("checkpoint", help="a run directory or .pt checkpoint written by `ostinato train`")
    p.add_argument("inputs", nargs="+", help="audio files (wav/flac/ogg, any rate, mono or multi-channel)")
    p.add_argument("-o", "--output", required=True, help="output folder: one 16-bit wav per input")
    p.add_argument("--chunk-seconds", type=float, default=4.0, help="window for non-causal models (default 4)")
    p.add_argument("--spectrogram", help="save noisy and enhanced spectrograms side by side to this PNG")
    p.add_argument("--keep-rate", action="store_true", help="write at the input's sample rate (default: the model's)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--official", action="store_true",
                   help="CHECKPOINT is a released ClearerVoice FRCRN_SE_16K checkpoint (loaded into frcrn_double)")
    p.set_defaults(func=cmd_enhance)
