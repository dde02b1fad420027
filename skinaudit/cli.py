"""Command-line interface (Typer). Thin: parse, call the library, print, exit.

The only module that prints or exits. A :class:`~skinaudit.errors.SkinauditError` becomes
one line on stderr and exit code 2; Ctrl-C exits 130 with nothing half-written.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import ConfigError, SkinauditError
from .skintone.params import DEFAULT_REFERENCE_B
from .learned import DEFAULT_ARTIFACTS, DEFAULT_SEGMENTER



class _Command(typer.core.TyperCommand):
    """A command whose bad-value messages read as sentences: typer validates values with
    pydantic, whose messages open with "Value error, " (or "Assertion failed, "); drop it."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except typer.BadParameter as exc:
            exc.message = re.sub(r"^(Value error|Assertion failed), ", "", str(exc.message))
            raise


# Plain (not rich) help: at 80 columns rich's option table cut option names and showed <bool>
# after every flag.
app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    help="Audit skin-lesion classifiers for fairness across skin tones (ITA) and explain their mistakes. "
         "A research and review tool, not a diagnostic device.")
command = functools.partial(app.command, cls=_Command)


def _print_version(value: bool):
    if value:
        from ._version import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the skinaudit version and exit.")] = False,
):
    pass


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
    "--allow-outside-root", help="Allow files outside their folder: manifest paths that leave the manifest's "
                                 "folder; isic / isic-archive images or masks that are symlinks to elsewhere.")]
CacheOpt = Annotated[Optional[Path], typer.Option(
    "--cache", help="Per-image result cache folder (default $SKINAUDIT_CACHE or ~/.cache/skinaudit).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the per-image cache.")]
LimitOpt = Annotated[Optional[int], typer.Option(
    "--limit", min=1, help="Audit only the first N images (a --scores CSV may score all of them).")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Replace an --out folder that holds files skinaudit did not write (they are deleted with it).")]


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
            from .output_folder import committed

            done = committed()
            _fail("interrupted; " + (f"the outputs in {', '.join(map(str, done))} were written completely before "
                                     "the interruption" if done else
                                     "nothing of this run was written (earlier outputs are untouched)"), 130)

    return wrapper


def _progress(quiet: bool = False):
    """A tqdm wrapper ``progress(iterable, total=, desc=)`` drawing bars on stderr, or None (no
    bars) with --quiet or when stderr is not a terminal (a log file, a pipe, CI)."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    try:
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:  # pragma: no cover - a tty without a size
        width = 0

    def wrap(iterable, total=None, desc=None):
        # a terminal that reports 0 columns (some pseudo-terminals) would get an empty bar
        return tqdm(iterable, total=total, desc=desc, unit="batch" if "scoring" in (desc or "") else "it",
                    file=sys.stderr, leave=False, ncols=None if width else 80)

    return wrap


#: Column names that often name an acquisition group (device, site) in dermoscopy metadata.
_ACQUISITION_COLUMNS = ("dataset", "site", "device", "attribution", "source", "center", "centre", "clinic")


def _cast_group_hint(ds, correction: str, cast_group) -> None:
    """Suggest --cast-group when the dataset has a column that looks like an acquisition group."""
    if correction != "dataset_reference" or cast_group is not None:
        return
    for col in _ACQUISITION_COLUMNS:
        if col in ds.table.columns and ds.table[col].nunique(dropna=True) > 1:
            typer.echo(f"note: column '{col}' has {ds.table[col].nunique()} values; if it names the acquisition "
                       f"device or site, pass --cast-group {col} so each gets its own colour-cast offset "
                       "(now the whole dataset is one group)", err=True)
            return


def _output(out, force, *inputs, cache=None, no_cache=True):
    """The output folder, opened (checked, locked, staged) before any long work; the run's
    inputs may not lie inside it."""
    from .cache import default_cache_dir
    from .output_folder import atomic_output_dir

    protect = [*inputs] + ([] if no_cache else [cache or default_cache_dir()])
    return atomic_output_dir(out, force=force, protect=protect)


def _cache(folder, disabled):
    from .cache import ResultCache, default_cache_dir

    # an unusable cache (a file, read-only, full) is an optimisation lost, not an error: it warns once
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
                            mask_pattern=mask_pattern, allow_outside_root=allow_outside_root,
                            **({"malignant": mal} if mal else {}))
    elif kind is DataKind.isic_archive:
        ds = data.load_isic_archive(need(metadata or labels, "--metadata CSV"), need(images, "--images DIR"),
                                    masks=masks, mask_pattern=mask_pattern, allow_outside_root=allow_outside_root,
                                    **({"malignant": mal} if mal else {}))
    else:
        ds = data.load_manifest(need(manifest, "--manifest CSV"), allow_outside_root=allow_outside_root)
    return ds.head(limit) if limit else ds


def _duplicates_note(result, out) -> None:
    dup = (result.dataset or {}).get("duplicates") or {}
    if dup.get("images"):
        typer.echo(f"note: {dup['images']} images are byte-identical copies ({dup['sets']} set(s)); each keeps its "
                   f"own row; see {out / 'duplicates.csv'}", err=True)


def _summary_line(result) -> str:
    o = result.overall

    def f(x):
        return "n/a" if x is None or x != x else f"{x:.4f}"

    return (f"n={o['n']}  AUC={f(o['auc'])}  recall={f(o['recall'])}  precision={f(o['precision'])}  "
            f"F1={f(o['f1'])}  FN={o['fn']}  FP={o['fp']}  (threshold {o['threshold']:g})")


ThresholdOpt = Annotated[Optional[float], typer.Option(
    "--threshold", help="Decision threshold: malignant if score >= T (default: model_info.json beside the model, "
                        "else 0.5).")]
SchemeOpt = Annotated[str, typer.Option(
    "--scheme", help="ITA grouping: binary (paper: light > 28 / dark <= 28), del_bino, kinyanjui, or cut points "
                     "such as '10,28,41'.")]
JobsOpt = Annotated[int, typer.Option("--jobs", min=1, help="Processes for image analysis (with --executor ray "
                                                            "and no --ray-address: the local cluster's CPUs).")]
ExecutorOpt = Annotated[str, typer.Option(
    "--executor", help="local (default): a process pool on this machine; ray: a Ray cluster (pip install "
                       "'skinaudit[ray]'; docs/scale.md). Same results either way.")]
RayAddressOpt = Annotated[Optional[str], typer.Option(
    "--ray-address", help="Ray cluster to join (e.g. ray://head:10001 or auto; default: a local cluster started "
                          "for this run).")]
CorrectionOpt = Annotated[str, typer.Option(
    "--ita-correction", help="dataset_reference (default): raise each acquisition group's median skin b* to "
                             "--reference-b when a blue cast puts it below; none: CIE ITA as measured.")]
CastGroupOpt = Annotated[Optional[str], typer.Option(
    "--cast-group", help="Dataset column naming acquisition groups (device or site, e.g. 'dataset' in the "
                         "HAM10000 metadata); default: the whole dataset is one group.")]
MarginOpt = Annotated[str, typer.Option(
    "--skin-margin", help="shrink (default): narrow the margin round a large lesion so enough skin remains; "
                          "full: keep it and report the image as unknown (less lesion in the skin sample).")]
ReferenceBOpt = Annotated[float, typer.Option(
    "--reference-b", help="Skin b* an acquisition group's median is raised to (light-to-intermediate skin).")]
SegOpt = Annotated[str, typer.Option("--segmenter", help="Lesion mask where the dataset gives none: auto (learned "
                                                           "when torch is installed), learned or classical.")]
ArtOpt = Annotated[str, typer.Option("--artifacts", help="Image-level artifact flags: auto (learned when torch is "
                                                         "installed), learned or classical.")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Seed of every random step.")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Stop at the first unreadable image instead of "
                                                          "flagging it.")]
ModelOpt = Annotated[Optional[Path], typer.Option(
    "--model", help="Model file: state dict (with --arch), TorchScript, torch.export (.pt2) or .onnx.")]
ArchOpt = Annotated[Optional[str], typer.Option(
    "--arch", help="torchvision architecture of a state-dict checkpoint, e.g. resnet50 (default: "
                   "model_info.json beside the model).")]
SizeOpt = Annotated[Optional[int], typer.Option(
    "--image-size", help="Model input size in px, square (default: model_info.json beside the model, else 299).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars (there are none either when "
                                                                "stderr is not a terminal).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1)]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")]
PosOpt = Annotated[int, typer.Option("--positive-index", help="Output column of the malignant class for "
                                                               "two-logit heads.")]
LayerOpt = Annotated[Optional[str], typer.Option(
    "--target-layer", help="Grad-CAM++ layer as a dotted path, e.g. layer4.-1 (default per architecture).")]
KeepOpt = Annotated[float, typer.Option("--keep-top", help="Share of the CAM kept when sharpening (paper: 0.25).")]
CasesOpt = Annotated[int, typer.Option("--cases-per-kind", min=0, help="TP/TN/FN/FP rows in the Fig. 8 triptychs.")]
CamSampleOpt = Annotated[int, typer.Option(
    "--cam-sample", min=0, help="Random images whose CAMs measure localisation by group.")]


def _data_kwargs(images, labels, metadata, manifest, masks, mask_pattern, malignant, allow_outside_root, limit):
    return dict(images=images, labels=labels, metadata=metadata, manifest=manifest, masks=masks,
                mask_pattern=mask_pattern, malignant=malignant, allow_outside_root=allow_outside_root, limit=limit)


#: Built-in defaults of the model options, used when neither the command line nor a
#: model_info.json beside the model gives a value.
_DEFAULT_THRESHOLD = 0.5
_DEFAULT_IMAGE_SIZE = 299


@dataclass(frozen=True)
class ModelSettings:
    """The model options of a run, resolved: explicit options, else model_info.json, else the
    built-in defaults. ``from_info`` names the settings taken from model_info.json."""

    arch: str | None
    threshold: float
    image_size: int
    info: object = None
    from_info: tuple = ()
    overridden: tuple = ()
    arch_given: bool = False


def resolve_model_settings(model, *, arch=None, threshold=None, image_size=None) -> ModelSettings:
    """Fill the options the user did not give (None) from the ``model_info.json`` beside
    ``model`` (when there is one), then from the built-in defaults; explicit options win."""
    from .models import read_model_info

    info = read_model_info(model) if model is not None else None
    from_info, overridden = [], []

    def pick(given, field, default):
        known = getattr(info, field, None)
        if given is not None:
            if known is not None and known != given:
                overridden.append((field, given, known))
            return given
        if known is not None:
            from_info.append(field)
            return known
        return default

    return ModelSettings(arch=pick(arch, "arch", None), threshold=pick(threshold, "threshold", _DEFAULT_THRESHOLD),
                         image_size=pick(image_size, "image_size", _DEFAULT_IMAGE_SIZE), info=info,
                         from_info=tuple(from_info), overridden=tuple(overridden), arch_given=arch is not None)


def _model_notes(settings: ModelSettings, scorer) -> None:
    """Say on the console what model_info.json set and what --arch did not."""
    from .models import OnnxModel

    kind = ("ONNX" if isinstance(scorer, OnnxModel) else
            "TorchScript" if getattr(scorer, "is_scripted", False) else None)
    if settings.from_info:
        shown = {"image_size": f"image size {settings.image_size}",
                 "threshold": f"threshold {settings.threshold:g}" + (
                     f" ({settings.info.threshold_source})" if settings.info.threshold_source else ""),
                 "arch": None if kind else f"arch {settings.arch}"}
        parts = [shown[f] for f in ("image_size", "threshold", "arch") if f in settings.from_info and shown[f]]
        if parts:
            typer.echo(f"using {settings.info.path.name} beside the model: {', '.join(parts)}", err=True)
    for field, given, known in settings.overridden:
        if field != "arch" or not kind:
            typer.echo(f"note: --{field.replace('_', '-')} {given} given; {settings.info.path.name} says {known}",
                       err=True)
    if settings.arch_given and kind:
        typer.echo(f"note: --arch {settings.arch} is ignored: the model is a {kind} file, which carries its own "
                   "architecture" + ("; Grad-CAM++ explanations are skipped for TorchScript (they need an "
                                     "eager model: a state dict with --arch)" if kind == "TorchScript" else ""),
                   err=True)


def _counterfactual_n(n, device, model) -> int:
    """``--counterfactual``: as given, else on (:data:`~skinaudit.counterfactual_stats.GPU_DEFAULT_N`
    images) for a model scored on a GPU and off on the CPU, where it costs minutes."""
    if n is not None or model is None:
        return int(n or 0)
    from .counterfactual_stats import GPU_DEFAULT_N

    on_gpu = device == "cuda"
    if device == "auto":
        import torch

        on_gpu = torch.cuda.is_available()
    return GPU_DEFAULT_N if on_gpu else 0


def _load_scorer(model, scores, settings: ModelSettings, positive_index, device):
    from .models import PrecomputedScores, load_model

    if (model is None) == (scores is None):
        raise ConfigError("give exactly one of --model FILE or --scores CSV")
    if scores is not None:
        return PrecomputedScores.from_csv(scores)
    scorer = load_model(model, arch=settings.arch, image_size=settings.image_size, positive_index=positive_index,
                        device=device)
    _model_notes(settings, scorer)
    return scorer


def _limited(ds, scorer, limit: int):
    """The first ``limit`` images, and a scores CSV cut to them: a CSV scoring the whole dataset
    serves ``--limit``, while an id the dataset does not have is still an error."""
    import pandas as pd

    from .data import preview
    from .errors import DataError
    from .models import PrecomputedScores

    if isinstance(scorer, PrecomputedScores):
        extra = scorer.scores.index.difference(pd.Index([str(i) for i in ds.ids]))
        if len(extra):
            raise DataError(f"{scorer.path or scorer.name}: {len(extra)} scored image id(s) are not in the dataset: "
                            f"{preview(sorted(extra))}")
        ds = ds.head(limit)
        keep = [str(i) for i in ds.ids if str(i) in scorer.scores.index]
        scorer = PrecomputedScores(scorer.scores.loc[keep], name=scorer.name, path=scorer.path)
        return ds, scorer
    return ds.head(limit), scorer


def _calibration_arg(value):
    if value is None:
        return None, None
    try:
        fraction = float(value)
    except ValueError:
        return None, Path(value)
    if not 0 < fraction < 1:
        raise ConfigError(f"--calibration must be a fraction in (0, 1) or a CSV file; got {value}")
    return fraction, None


@command()
@_friendly
def run(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder (created; files replaced atomically).")],
    model: ModelOpt = None,
    scores: Annotated[Optional[Path], typer.Option("--scores", help="CSV image_id,score of precomputed scores.")] = None,
    arch: ArchOpt = None, threshold: ThresholdOpt = None, image_size: SizeOpt = None, batch_size: BatchOpt = 16,
    device: DeviceOpt = "cpu", positive_index: PosOpt = 1, strict: StrictOpt = False, seed: SeedOpt = 0,
    scheme: SchemeOpt = "binary", jobs: JobsOpt = 2, executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None, ita_correction: CorrectionOpt = "dataset_reference",
    cast_group: CastGroupOpt = None, reference_b: ReferenceBOpt = DEFAULT_REFERENCE_B, skin_margin: MarginOpt = "shrink",
    segmenter: SegOpt = DEFAULT_SEGMENTER, artifacts: ArtOpt = DEFAULT_ARTIFACTS,
    alpha: Annotated[float, typer.Option("--alpha", help="Level of every test and interval (1 - alpha), in "
                                                         "(0, 0.5].")] = 0.05,
    n_boot: Annotated[int, typer.Option(
        "--n-boot", min=1, help="Bootstrap replicates and permutations: at least max(100, 10/alpha) (200 at "
                                "alpha 0.05); a warning below 1000.")] = 2000,
    min_positives: Annotated[int, typer.Option(
        "--min-positives", min=0, help="Below this many malignant cases a group's verdict is 'insufficient data'.")] = 10,
    reference: Annotated[Optional[str], typer.Option("--reference", help="Reference ITA group (default: the "
                                                                        "largest).")] = None,
    calibration: Annotated[Optional[str], typer.Option(
        "--calibration", help="Threshold-search calibration data: a fraction of the audited images (stratified, "
                              "seeded; default 0.3) or a CSV image_id,label,score[,group|ita] such as the "
                              "predictions.csv of a run on a validation set.")] = None,
    gamma: Annotated[float, typer.Option("--gamma", help="Recall target of the threshold searches.")] = 0.85,
    step: Annotated[float, typer.Option("--step", help="Threshold grid step.")] = 0.02,
    explain: Annotated[bool, typer.Option("--explain/--no-explain", help="Grad-CAM++ explanations and failure "
                                                                         "modes (eager PyTorch models).")] = True,
    target_layer: LayerOpt = None, keep_top: KeepOpt = 0.25, cases_per_kind: CasesOpt = 2, cam_sample: CamSampleOpt = 100,
    sensitivity_sample: Annotated[int, typer.Option(
        "--sensitivity-sample", min=0, help="Images re-analysed under every ITA estimator variant (0: off).")] = 200,
    counterfactual: Annotated[Optional[int], typer.Option(
        "--counterfactual", min=0, help="Counterfactual skin-tone test on a stratified sample of N images: their skin "
                                        "is recoloured to 5 ITA levels, the lesion kept, and each version re-scored "
                                        "(0: off; needs a model, not a scores CSV; default: 200 on a GPU, off on "
                                        "the CPU).")] = None,
    skin_tone: Annotated[bool, typer.Option("--skin-tone/--no-skin-tone", help="Estimate ITA from the images.")] = True,
    group_column: Annotated[Optional[str], typer.Option(
        "--group-column", help="Group the fairness analysis by a metadata column instead of ITA (e.g. fitspatrick, "
                               "gender, region; mst: Monk Skin Tone from the skin sample), or 'A,B' for their "
                               "intersection; missing values form the group 'unknown'. ITA is still estimated and "
                               "kept as ita / ita_group.")] = None,
    age_bins: Annotated[Optional[str], typer.Option(
        "--age-bins", help="Bin edges for an 'age' column among --group-column, e.g. 0,40,60,120 "
                           "(bins [a, b)).")] = None,
    repeat_column: Annotated[Optional[str], typer.Option(
        "--repeat-column", help="Column tying repeated images of one lesion or patient, for the test-retest "
                                "reliability of ITA (default: lesion_id, else patient_id, if present; "
                                "'none': off).")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html and report.pdf.")] = True,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Write report.pdf.")] = True,
    images: ImagesOpt = None, labels: LabelsOpt = None, metadata: MetadataOpt = None, manifest: ManifestOpt = None,
    masks: MasksOpt = None, mask_pattern: MaskPatternOpt = "{id}_segmentation.png", malignant: MalignantOpt = None,
    allow_outside_root: OutsideOpt = False, limit: LimitOpt = None, cache: CacheOpt = None,
    no_cache: NoCacheOpt = False, force: ForceOpt = False, quiet: QuietOpt = False,
):
    """Audit a model (or precomputed scores) on a dataset: predictions, skin tone, fairness statistics,
    recalibration, explanations and failure modes, report.html and report.pdf."""
    from .audit import AuditConfig, run_audit
    from .report import write_audit_into

    if (model is None) == (scores is None):
        raise ConfigError("give exactly one of --model FILE or --scores CSV")
    if report:
        from .report import report_date

        report_date()  # a malformed SOURCE_DATE_EPOCH fails here, not after the audit
    fraction, cal_file = _calibration_arg(calibration)
    settings = resolve_model_settings(model, arch=arch, threshold=threshold, image_size=image_size)
    config = AuditConfig(threshold=settings.threshold, batch_size=batch_size, strict=strict, seed=seed, scheme=scheme,
                         n_jobs=jobs, alpha=alpha, n_boot=n_boot, min_positives=min_positives, reference=reference,
                         calibration_fraction=fraction or 0.3, gamma=gamma, step=step,
                         explain="auto" if explain else "off", target_layer=target_layer, keep_top=keep_top,
                         cases_per_kind=cases_per_kind, cam_sample=cam_sample, skin_tone=skin_tone,
                         sensitivity_sample=sensitivity_sample, ita_correction=ita_correction,
                         counterfactual=_counterfactual_n(counterfactual, device, model), executor=executor,
                         ray_address=ray_address,
                         cast_group=cast_group, reference_b=reference_b, skin_margin=skin_margin,
                         segmenter=segmenter, artifacts=artifacts, group_column=group_column, age_bins=age_bins, repeat_column=repeat_column)
    with _output(out, force, images, labels, metadata, manifest, masks, model, scores, cal_file, cache=cache,
                 no_cache=no_cache) as tmp:
        ds = load_dataset(data, **_data_kwargs(images, labels, metadata, manifest, masks, mask_pattern, malignant,
                                               allow_outside_root, None))
        scorer = _load_scorer(model, scores, settings, positive_index, device)
        if limit:
            ds, scorer = _limited(ds, scorer, limit)
        if skin_tone:
            _cast_group_hint(ds, ita_correction, cast_group)
        result = run_audit(scorer, ds, config, progress=_progress(quiet), cache=_cache(cache, no_cache),
                           calibration=cal_file)
        write_audit_into(result, tmp, report=report, pdf=pdf and report)
    typer.echo(_summary_line(result))
    if len(result.skipped):
        typer.echo(f"{len(result.skipped)} image(s) skipped or excluded; see {out / 'skipped.csv'}", err=True)
    _duplicates_note(result, out)
    typer.echo(f"wrote {out}")


@command()
@_friendly
def inspect(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    scheme: SchemeOpt = "binary", jobs: JobsOpt = 2, executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None, strict: StrictOpt = False,
    ita_correction: CorrectionOpt = "dataset_reference", cast_group: CastGroupOpt = None,
    reference_b: ReferenceBOpt = DEFAULT_REFERENCE_B, skin_margin: MarginOpt = "shrink",
    segmenter: SegOpt = DEFAULT_SEGMENTER, artifacts: ArtOpt = DEFAULT_ARTIFACTS,
    save_masks: Annotated[Optional[Path], typer.Option(
        "--save-masks", help="Write the lesion mask used for each image to DIR/<id>.png (0/255).")] = None,
    sensitivity: Annotated[bool, typer.Option(
        "--sensitivity/--no-sensitivity", help="Also tabulate group sizes under every ITA estimator variant.")] = True,
    images: ImagesOpt = None, labels: LabelsOpt = None, metadata: MetadataOpt = None, manifest: ManifestOpt = None,
    masks: MasksOpt = None, mask_pattern: MaskPatternOpt = "{id}_segmentation.png", malignant: MalignantOpt = None,
    allow_outside_root: OutsideOpt = False, limit: LimitOpt = None, force: ForceOpt = False,
    quiet: QuietOpt = False,
):
    """Skin tone (ITA), lesion masks and artifacts per image, no model needed: inspect.csv and the group sizes
    under each ITA estimator variant (inspect_sensitivity.csv)."""
    from .config import AuditConfig
    from .outputs import write_csv
    from .skintone import cast_summary, get_scheme, inspect_dataset, inspect_with_sensitivity

    sch = get_scheme(scheme)
    from .executors import open_executor

    cfg = AuditConfig(ita_correction=ita_correction, cast_group=cast_group, reference_b=reference_b,
                      skin_margin=skin_margin, segmenter=segmenter, artifacts=artifacts, executor=executor,
                      ray_address=ray_address)
    params, lesion = cfg.ita_params(), dict(lesion_params=cfg.lesion_params(), artifact_params=cfg.artifact_params())
    with _output(out, force, images, labels, metadata, manifest, masks) as tmp, \
            open_executor(executor, n_jobs=jobs, address=ray_address) as ex:
        ds = load_dataset(data, **_data_kwargs(images, labels, metadata, manifest, masks, mask_pattern, malignant,
                                               allow_outside_root, limit))
        _cast_group_hint(ds, ita_correction, cast_group)
        # with the sensitivity table: one pass, each image read and analysed once for its row and its variants
        run = inspect_with_sensitivity if sensitivity else inspect_dataset
        res = run(ds, scheme=sch, params=params, n_jobs=jobs, progress=_progress(quiet), strict=strict,
                  executor=ex, save_masks=save_masks, **lesion)
        table, sens = res if sensitivity else (res, None)
        write_csv(table, tmp / "inspect.csv")
        if "b_offset" in table:
            write_csv(cast_summary(table), tmp / "inspect_cast.csv")
        if sens is not None:
            write_csv(sens, tmp / "inspect_sensitivity.csv")
        write_csv(sch.table(), tmp / "ita_bins.csv")
    counts = table["group"].value_counts()
    typer.echo("  ".join(f"{g}: {int(counts.get(g, 0))}" for g in (*reversed(sch.labels), "unknown")))
    typer.echo("lesion masks: " + ", ".join(f"{k} {v}" for k, v in table["segmenter"].value_counts().items())
               + "; artifact flags: " + ", ".join(f"{k} {v}" for k, v in table["artifact_detector"].value_counts().items()))
    if "b_offset" in table:
        for r in cast_summary(table).itertuples(index=False):
            typer.echo(f"cast reference, group {r.cast_group}: {r.n} images, median skin b* {r.median_b:.1f}, "
                       + (f"b* offset +{r.b_offset:.1f}" if r.estimated else "too few images: no offset"))
    typer.echo(f"wrote {out}")


@command()
@_friendly
def explain(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    model: ModelOpt = None, arch: ArchOpt = None, threshold: ThresholdOpt = None, image_size: SizeOpt = None,
    batch_size: BatchOpt = 8, device: DeviceOpt = "cpu", positive_index: PosOpt = 1, strict: StrictOpt = False,
    seed: SeedOpt = 0, scheme: SchemeOpt = "binary", jobs: JobsOpt = 2, executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None, target_layer: LayerOpt = None,
    keep_top: KeepOpt = 0.25, cases_per_kind: CasesOpt = 2, cam_sample: CamSampleOpt = 100,
    include_fp: Annotated[bool, typer.Option("--include-fp", help="Classify false positives too.")] = False,
    images: ImagesOpt = None, labels: LabelsOpt = None, metadata: MetadataOpt = None, manifest: ManifestOpt = None,
    masks: MasksOpt = None, mask_pattern: MaskPatternOpt = "{id}_segmentation.png", malignant: MalignantOpt = None,
    allow_outside_root: OutsideOpt = False, limit: LimitOpt = None, cache: CacheOpt = None,
    no_cache: NoCacheOpt = False, force: ForceOpt = False, quiet: QuietOpt = False,
):
    """Grad-CAM++ explanations and the false-negative failure-mode taxonomy: CAM PNGs (figures/), Fig. 8
    triptychs, localisation.csv and failure_modes.csv."""
    from .audit import AuditConfig, run_audit
    from .report import write_audit_into

    if model is None:
        raise ConfigError("skinaudit explain needs --model FILE (a state dict with --arch, for Grad-CAM++ hooks)")
    settings = resolve_model_settings(model, arch=arch, threshold=threshold, image_size=image_size)
    config = AuditConfig(threshold=settings.threshold, batch_size=batch_size, strict=strict, seed=seed, scheme=scheme,
                         n_jobs=jobs, target_layer=target_layer, keep_top=keep_top, cases_per_kind=cases_per_kind,
                         cam_sample=cam_sample, explain_fp=include_fp, sensitivity_sample=0, executor=executor,
                         ray_address=ray_address)
    with _output(out, force, images, labels, metadata, manifest, masks, model, cache=cache,
                 no_cache=no_cache) as tmp:
        ds = load_dataset(data, **_data_kwargs(images, labels, metadata, manifest, masks, mask_pattern, malignant,
                                               allow_outside_root, limit))
        scorer = _load_scorer(model, None, settings, positive_index, device)
        result = run_audit(scorer, ds, config, progress=_progress(quiet), cache=_cache(cache, no_cache),
                           stages=("skintone", "explain"))
        if not result.sections["explanations"].available:
            raise ConfigError(result.sections["explanations"].reason)
        write_audit_into(result, tmp, report=False)
    fm = result.sections["failure_modes"].to_dict()
    typer.echo(_summary_line(result))
    if fm.get("available") is not False:
        typer.echo("failure modes: " + ", ".join(f"{k} {v['count']}" for k, v in fm["summary"].items() if k != "n"))
    typer.echo(f"wrote {out}")


@command("counterfactual")
@_friendly
def counterfactual_cmd(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    model: ModelOpt = None, arch: ArchOpt = None, threshold: ThresholdOpt = None, image_size: SizeOpt = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Images in the stratified sample.")] = 200,
    batch_size: BatchOpt = 16, device: DeviceOpt = "cpu", positive_index: PosOpt = 1, seed: SeedOpt = 0,
    images: ImagesOpt = None, labels: LabelsOpt = None, metadata: MetadataOpt = None, manifest: ManifestOpt = None,
    masks: MasksOpt = None, mask_pattern: MaskPatternOpt = "{id}_segmentation.png", malignant: MalignantOpt = None,
    allow_outside_root: OutsideOpt = False, limit: LimitOpt = None, force: ForceOpt = False, quiet: QuietOpt = False,
):
    """Counterfactual skin-tone test alone: the skin around each lesion of a stratified sample recoloured to five
    ITA levels (the lesion kept) and re-scored; counterfactual.csv, metrics.json and the dose-response figure."""
    from .audit import AuditConfig, run_audit
    from .report import write_audit_into

    if model is None:
        raise ConfigError("skinaudit counterfactual needs --model FILE: a scores CSV cannot score recoloured images")
    settings = resolve_model_settings(model, arch=arch, threshold=threshold, image_size=image_size)
    config = AuditConfig(threshold=settings.threshold, batch_size=batch_size, seed=seed, counterfactual=n,
                         explain="off", sensitivity_sample=0)
    with _output(out, force, images, labels, metadata, manifest, masks, model) as tmp:
        ds = load_dataset(data, **_data_kwargs(images, labels, metadata, manifest, masks, mask_pattern, malignant,
                                               allow_outside_root, limit))
        scorer = _load_scorer(model, None, settings, positive_index, device)
        result = run_audit(scorer, ds, config, progress=_progress(quiet), stages=())
        write_audit_into(result, tmp, report=False)
    typer.echo("counterfactual: " + str(result.sections["counterfactual"].get("summary", "")))
    typer.echo(f"wrote {out}")


@command()
@_friendly
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-report"),
    n: Annotated[int, typer.Option("--n", min=20, help="Number of phantom images.")] = 120,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0, force: ForceOpt = False, quiet: QuietOpt = False,
):
    """Fully offline demo: phantom images with known truth, a small model fitted on them, an audit."""
    from .demo import run_demo
    from .report import report_date

    report_date()  # a malformed SOURCE_DATE_EPOCH fails before any work

    result = run_demo(out, n=n, seed=seed, progress=_progress(quiet), force=force)
    typer.echo(_summary_line(result))
    typer.echo(f"wrote {out}")


@command("report")
@_friendly
def report_cmd(
    source: Annotated[Path, typer.Option("--from", help="A saved audit: its audit.json or the folder holding it.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder for report.html and report.pdf.")],
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also write report.pdf.")] = True,
    force: ForceOpt = False,
):
    """Re-render the HTML and PDF report of a saved audit (e.g. with a newer template). With --out the
    audit's own folder, the report is replaced beside the audit's files."""
    from .output_folder import atomic_output_dir
    from .report import report_date, write_report
    from .result import AuditResult

    report_date()  # a malformed SOURCE_DATE_EPOCH fails before any work
    result = AuditResult.read(source)
    folder = source.parent if source.suffix == ".json" else source
    same = Path(os.path.abspath(folder)) == Path(os.path.abspath(out))
    with atomic_output_dir(out, force=force, keep=same, protect=() if same else [source]) as tmp:
        write_report(result, tmp, pdf=pdf)
    typer.echo(f"wrote {out / 'report.html'}" + (f" and {out / 'report.pdf'}" if pdf else ""))


@command()
def version():
    """Print the skinaudit version."""
    from ._version import __version__

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
