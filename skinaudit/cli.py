"""Command-line interface (Typer). Thin: parse, call the library, print, exit.

The only module that prints or exits. A :class:`~skinaudit.errors.SkinauditError` becomes
one line on stderr and exit code 2; Ctrl-C exits 130 with nothing half-written.
"""
from __future__ import annotations

import functools
import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import ConfigError, SkinauditError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Audit skin-lesion classifiers for fairness across skin tones (ITA) and explain their mistakes. "
         "A research and review tool, not a diagnostic device.")


class DataKind(str, Enum):
    isic = "isic"
    isic_archive = "isic-archive"
    manifest = "manifest"


# -- shared options --------------------------------------------------------------------
DataOpt = Annotated[DataKind, typer.Option("--data", help="Dataset layout: isic, isic-archive or manifest.")]
ImagesOpt = Annotated[Optional[Path], typer.Option("--images", help="Image folder (isic, isic-archive).")]
LabelsOpt = Annotated[Optional[Path], typer.Option(
    "--labels", help="isic: ISIC 2018 Task 3 one-hot ground truth CSV or HAM10000 metadata CSV.")]
MetadataOpt = Annotated[Optional[Path], typer.Option("--metadata", help="isic-archive: ISIC Archive metadata CSV.")]
ManifestOpt = Annotated[Optional[Path], typer.Option(
    "--manifest", help="manifest: CSV with image_id,image_path,label[,mask_path,group,ita,...].")]
MasksOpt = Annotated[Optional[Path], typer.Option("--masks", help="Folder of binary lesion masks (optional).")]
MaskPatternOpt = Annotated[str, typer.Option(
    "--mask-pattern", help="Mask file name with {id} for the image id, e.g. '{id}_lesion.png' for PH2.")]
MalignantOpt = Annotated[Optional[str], typer.Option(
    "--malignant", help="Comma-separated diagnosis codes counted as malignant (default MEL,BCC,AKIEC; "
                        "SCC too for isic-archive).")]
OutsideOpt = Annotated[bool, typer.Option(
    "--allow-outside-root", help="manifest: allow paths that leave the manifest's folder.")]
CacheOpt = Annotated[Optional[Path], typer.Option(
    "--cache", help="Per-image result cache folder (default $SKINAUDIT_CACHE or ~/.cache/skinaudit).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the per-image cache.")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, help="Audit only the first N images.")]


def _fail(message: str, code: int = 2):
    typer.echo(f"skinaudit: error: {message}", err=True)
    raise typer.Exit(code)


def _friendly(fn):
    """Turn expected errors into one line and an exit code; never a traceback for them."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SkinauditError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted; outputs of this run were not written (earlier outputs are untouched)", 130)

    return wrapper


def _progress():
    from tqdm.auto import tqdm

    def wrap(iterable, total=None, desc=None):
        return tqdm(iterable, total=total, desc=desc, unit="batch" if "scoring" in (desc or "") else "it",
                    file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)

    return wrap


def _cache(folder, disabled):
    from .cache import ResultCache, default_cache_dir

    return None if disabled else ResultCache(folder or default_cache_dir())


def load_dataset(kind: DataKind, *, images=None, labels=None, metadata=None, manifest=None, masks=None,
                 mask_pattern="{id}_segmentation.png", malignant=None, allow_outside_root=False, limit=None):
    """Build the AuditDataset that the ``--data`` options describe."""
    from . import data

    def need(value, flag):
        if value is None:
            raise ConfigError(f"--data {kind.value} needs {flag}")
        return value

    mal = [m.strip() for m in malignant.split(",") if m.strip()] if malignant else None
    if kind is DataKind.isic:
        ds = data.load_isic(need(images, "--images DIR"), need(labels, "--labels CSV"), masks=masks,
                            mask_pattern=mask_pattern, **({"malignant": mal} if mal else {}))
    elif kind is DataKind.isic_archive:
        ds = data.load_isic_archive(need(metadata or labels, "--metadata CSV"), need(images, "--images DIR"),
                                    masks=masks, mask_pattern=mask_pattern, **({"malignant": mal} if mal else {}))
    else:
        ds = data.load_manifest(need(manifest, "--manifest CSV"), allow_outside_root=allow_outside_root)
    return ds.head(limit) if limit else ds


def _summary_line(result) -> str:
    o = result.overall

    def f(x):
        return "n/a" if x is None or x != x else f"{x:.4f}"

    return (f"n={o['n']}  AUC={f(o['auc'])}  recall={f(o['recall'])}  precision={f(o['precision'])}  "
            f"F1={f(o['f1'])}  FN={o['fn']}  FP={o['fp']}  (threshold {o['threshold']:g})")


@app.command()
@_friendly
def run(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder (created; files replaced atomically).")],
    model: Annotated[Optional[Path], typer.Option(
        "--model", help="Model file: TorchScript, state dict (with --arch) or .onnx.")] = None,
    scores: Annotated[Optional[Path], typer.Option("--scores", help="CSV image_id,score of precomputed scores.")] = None,
    arch: Annotated[Optional[str], typer.Option(
        "--arch", help="torchvision architecture of a state-dict checkpoint, e.g. resnet50.")] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Decision threshold: malignant if score >= T.")] = 0.5,
    image_size: Annotated[int, typer.Option("--image-size", help="Model input size in px (square).")] = 299,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "cpu",
    positive_index: Annotated[int, typer.Option(
        "--positive-index", help="Output column of the malignant class for two-logit heads.")] = 1,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first unreadable image.")] = False,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    images: ImagesOpt = None, labels: LabelsOpt = None, metadata: MetadataOpt = None, manifest: ManifestOpt = None,
    masks: MasksOpt = None, mask_pattern: MaskPatternOpt = "{id}_segmentation.png", malignant: MalignantOpt = None,
    allow_outside_root: OutsideOpt = False, limit: LimitOpt = None, cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
):
    """Audit a model (or precomputed scores) on a dataset; write predictions.csv and metrics.json."""
    from .audit import AuditConfig, run_audit
    from .models import PrecomputedScores, load_model

    if (model is None) == (scores is None):
        raise ConfigError("give exactly one of --model FILE or --scores CSV")
    config = AuditConfig(threshold=threshold, batch_size=batch_size, strict=strict, seed=seed)
    ds = load_dataset(data, images=images, labels=labels, metadata=metadata, manifest=manifest, masks=masks,
                      mask_pattern=mask_pattern, malignant=malignant, allow_outside_root=allow_outside_root,
                      limit=limit)
    scorer = (PrecomputedScores.from_csv(scores) if scores is not None else
              load_model(model, arch=arch, image_size=image_size, positive_index=positive_index, device=device))
    result = run_audit(scorer, ds, config, progress=_progress(), cache=_cache(cache, no_cache))
    result.write(out)
    typer.echo(_summary_line(result))
    if len(result.skipped):
        typer.echo(f"{len(result.skipped)} image(s) skipped or excluded; see {out / 'skipped.csv'}", err=True)
    typer.echo(f"wrote {out}")


@app.command()
@_friendly
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-report"),
    n: Annotated[int, typer.Option("--n", min=20, help="Number of phantom images.")] = 120,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
):
    """Fully offline demo: phantom images with known truth, a small model fitted on them, an audit."""
    from .demo import run_demo

    result = run_demo(out, n=n, seed=seed, progress=_progress())
    typer.echo(_summary_line(result))
    typer.echo(f"wrote {out}")


@app.command()
def version():
    """Print the skinaudit version."""
    from . import __version__

    typer.echo(__version__)


def _terminate(signum, frame):
    raise KeyboardInterrupt  # same clean path as Ctrl-C: staging folder removed, old outputs kept


def main():  # console-script entry point
    import signal

    logging.basicConfig(level=logging.WARNING, format="skinaudit: %(levelname)s: %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
