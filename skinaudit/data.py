"""Datasets to audit and the loaders that build them.

An :class:`AuditDataset` is a table with one row per image::

    image_id    str, unique
    image_path  str, absolute path of the image file
    label       int, 1 = malignant, 0 = benign
    mask_path   str or None, absolute path of a binary lesion mask (True/255 = lesion)
    group       optional str, a skin-tone group given by the user (overrides estimation)
    ita         optional float, an ITA given by the user in degrees (overrides estimation)
    ...         any other column is kept as metadata

Three loaders build one, each a ``--data`` kind of the CLI:

* :func:`load_isic` (``isic``): ISIC 2018 Task 3 images plus its one-hot ground-truth CSV
  (``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``) or the HAM10000 metadata CSV
  (``image_id,lesion_id,dx,...``); optional Task 1 masks.
* :func:`load_isic_archive` (``isic-archive``): an ISIC Archive metadata CSV as exported by
  the archive and ``isic-cli`` (``isic_id,benign_malignant,diagnosis,...``); also reads
  tables keyed by ``image_id`` (PH2, PAD-UFES-20 and ISIC 2017 as laid out in
  ``shared/data``).
* :func:`load_manifest` (``manifest``): a generic CSV ``image_id,image_path,label``.

Rows that cannot be used (for example an archive image labelled "indeterminate") are not
silently dropped: they are listed in :attr:`AuditDataset.excluded` with the reason.
"""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError

__all__ = [
    "AuditDataset",
    "load_isic",
    "load_isic_archive",
    "load_manifest",
    "DEFAULT_MALIGNANT",
    "ISIC_CLASSES",
    "IMAGE_EXTENSIONS",
    "parse_label",
]

log = logging.getLogger(__name__)

#: The seven ISIC 2018 Task 3 classes, in the ground-truth CSV's column order.
ISIC_CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
#: Classes counted as malignant by default (the paper's reading); SCC covers PAD-UFES-20.
DEFAULT_MALIGNANT = ("MEL", "BCC", "AKIEC")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Diagnosis names (ISIC archive / HAM10000 / PAD-UFES-20 spellings) mapped to ISIC codes.
DIAGNOSIS_CODES = {
    "mel": "MEL", "melanoma": "MEL",
    "nv": "NV", "nevus": "NV", "nev": "NV",
    "bcc": "BCC", "basal cell carcinoma": "BCC",
    "akiec": "AKIEC", "actinic keratosis": "AKIEC", "ack": "AKIEC",
    "bkl": "BKL", "seborrheic keratosis": "BKL", "pigmented benign keratosis": "BKL",
    "solar lentigo": "BKL", "lichenoid keratosis": "BKL", "sek": "BKL",
    "df": "DF", "dermatofibroma": "DF",
    "vasc": "VASC", "vascular lesion": "VASC",
    "scc": "SCC", "squamous cell carcinoma": "SCC",
}
_REQUIRED = ("image_id", "image_path", "label")
#: Name of the row computed over every image in the per-group tables; not usable as a group.
RESERVED_GROUP = "all"
_BENIGN_WORDS = {"0", "benign", "false", "0.0"}
_MALIGNANT_WORDS = {"1", "malignant", "true", "1.0"}


def parse_label(value) -> int | None:
    """Map 0/1, ``benign``/``malignant`` (any case) to 0/1; anything else -> None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().lower()
    if text in _BENIGN_WORDS:
        return 0
    if text in _MALIGNANT_WORDS:
        return 1
    return None


@dataclass
class AuditDataset:
    """Images, binary labels, optional lesion masks and metadata, one row per image.

    Parameters
    ----------
    table : DataFrame
        Columns ``image_id, image_path, label`` (required), ``mask_path``, ``group``,
        ``ita`` (optional) and any metadata. Paths must be absolute.
    name : str
        A short name for reports (e.g. ``"ISIC 2018 Task 3 test"``).
    source : dict
        How the dataset was loaded (kind and the files given), for the report's cover.
    excluded : DataFrame
        ``image_id, reason`` for rows of the source that were left out.
    """

    table: pd.DataFrame
    name: str = "dataset"
    source: dict = field(default_factory=dict)
    excluded: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"image_id": pd.Series(dtype=str), "reason": pd.Series(dtype=str)}))

    def __post_init__(self) -> None:
        t = self.table
        missing = [c for c in _REQUIRED if c not in t.columns]
        if missing:
            raise DataError(f"dataset '{self.name}' lacks the column(s) {', '.join(missing)}")
        t = t.copy()
        t["image_id"] = t["image_id"].astype(str)
        dup = t["image_id"][t["image_id"].duplicated()].unique()
        if len(dup):
            raise DataError(
                f"dataset '{self.name}' has {len(dup)} duplicate image id(s): {preview(dup)}")
        labels = pd.to_numeric(t["label"], errors="coerce")
        bad = t["image_id"][~labels.isin([0, 1])]
        if len(bad):
            raise DataError(
                f"dataset '{self.name}': labels must be 0 (benign) or 1 (malignant); "
                f"{len(bad)} row(s) are not, e.g. {preview(bad)}")
        t["label"] = labels.astype(int)
        if "mask_path" not in t.columns:
            t["mask_path"] = None
        t["mask_path"] = t["mask_path"].astype(object).where(t["mask_path"].notna(), None)
        if "ita" in t.columns:
            t["ita"], bad = given_ita(t["ita"])
            if bad.any():
                raise DataError(f"dataset '{self.name}': the ita column must hold angles in [-90, 90] degrees or be "
                                f"empty; image(s) {preview(t['image_id'][bad])} are not")
        if "group" in t.columns:
            t["group"] = t["group"].astype(object).where(t["group"].notna(), None)
            reserved = t["image_id"][t["group"].astype(str).str.strip().eq(RESERVED_GROUP)]
            if len(reserved):
                raise DataError(f"dataset '{self.name}': the group name {RESERVED_GROUP!r} is reserved for the row of "
                                f"all images; rename the group of image(s) {preview(reserved)}")
        for col in ("image_path", "mask_path"):
            nul = t["image_id"][t[col].map(lambda v: isinstance(v, str) and "\0" in v)]
            if len(nul):
                raise DataError(f"dataset '{self.name}': the {col} of image(s) {preview(nul)} contains a NUL byte")
        self.table = t.reset_index(drop=True)
        if len(self.table) == 0:
            raise DataError(f"dataset '{self.name}' has no images")

    # -- accessors -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> np.ndarray:
        return self.table["image_id"].to_numpy(dtype=object)

    @property
    def labels(self) -> np.ndarray:
        return self.table["label"].to_numpy(dtype=int)

    @property
    def image_paths(self) -> list[str]:
        return self.table["image_path"].tolist()

    @property
    def mask_paths(self) -> list[str | None]:
        return self.table["mask_path"].tolist()

    @property
    def has_masks(self) -> bool:
        return bool(self.table["mask_path"].notna().any())

    def metadata_columns(self) -> list[str]:
        return [c for c in self.table.columns if c not in (*_REQUIRED, "mask_path")]

    def subset(self, ids: Iterable[str]) -> "AuditDataset":
        """A new dataset with only the given ids, in the given order."""
        ids = [str(i) for i in ids]
        idx = self.table.set_index("image_id")
        unknown = [i for i in ids if i not in idx.index]
        if unknown:
            raise DataError(f"dataset '{self.name}' has no image id(s) {preview(unknown)}")
        table = idx.loc[ids].reset_index()
        return AuditDataset(table, name=self.name, source=dict(self.source), excluded=self.excluded)

    def head(self, n: int) -> "AuditDataset":
        """The first ``n`` images (a quick look at a big dataset)."""
        return AuditDataset(self.table.head(int(n)).copy(), name=self.name, source=dict(self.source),
                            excluded=self.excluded)

    def manifest_hash(self) -> str:
        """SHA-256 over ``image_id, relative image path, label, mask name`` of every row.

        Identifies *which* images and labels were audited (not the pixel content; the
        per-image cache hashes pixels). Independent of row order and of where the data
        folder lives.
        """
        rows = sorted(
            f"{r.image_id}\t{Path(r.image_path).name}\t{r.label}\t{Path(r.mask_path).name if r.mask_path else ''}"
            for r in self.table.itertuples(index=False))
        return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()

    def to_manifest(self, path) -> Path:
        """Write the dataset as a ``manifest`` CSV (absolute paths) and return its path."""
        path = Path(path)
        self.table.to_csv(path, index=False)
        return path

    def summary(self) -> dict:
        n_pos = int(self.labels.sum())
        return {"name": self.name, "n": len(self), "malignant": n_pos, "benign": len(self) - n_pos,
                "with_mask": int(self.table["mask_path"].notna().sum()), "excluded": len(self.excluded),
                "manifest_sha256": self.manifest_hash(), "source": self.source}


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------

def preview(values: Sequence, k: int = 5) -> str:
    values = [str(v) for v in list(values)]
    head = ", ".join(repr(v) for v in values[:k])
    return head + (f" and {len(values) - k} more" if len(values) > k else "")


def read_table(path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=True, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: {what} is not UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: {what} is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: {what} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    if df.empty:
        raise DataError(f"{path}: {what} has a header but no rows")
    return df


def _blank(value) -> bool:
    """True for a missing cell: None, NaN, pandas NA or text that is only whitespace."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or bool(pd.isna(value))


def given_ita(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """A given ``ita`` column as floats (blank = NaN: estimate it) and the mask of cells that
    are filled but not an angle in [-90, 90] degrees (text such as "dark-ish", inf, 500)."""
    blank = values.map(_blank).to_numpy(dtype=bool)
    numeric = pd.to_numeric(values.where(~blank), errors="coerce")
    v = numeric.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        return numeric, ~blank & ~(np.isfinite(v) & (np.abs(v) <= 90))


def refuse_rows(path, ids: pd.Series, bad, problem) -> None:
    """Raise a DataError naming the first bad row (CSV line = data row + 2) and its image.

    ``bad`` is a boolean mask over the rows; ``problem(i)`` describes row ``i``.
    """
    where = np.flatnonzero(np.asarray(bad, dtype=bool))
    if len(where):
        i = int(where[0])
        more = f" ({len(where) - 1} more row(s) have the same problem)" if len(where) > 1 else ""
        raise DataError(f"{path}: row {i + 2} (image {ids.iloc[i]!r}): {problem(i)}{more}")


def id_column(df: pd.DataFrame, col: str, path) -> pd.Series:
    """The id column ``col`` as stripped text; an empty cell is refused with its row."""
    refuse_rows(path, df[col].fillna(""), df[col].map(_blank).to_numpy(dtype=bool),
                lambda i: f"the {col} cell is empty; every row needs an image id")
    return df[col].astype(str).str.strip()


def _path_problem(exc: Exception) -> str:
    """Why a path could not be used: the OS's words (e.g. "File name too long") or Python's."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _short(text, k: int = 80) -> str:
    text = repr(str(text))
    return text if len(text) <= k else f"{text[:k]}... ({len(str(text)):,} characters)"


def _inside(path: Path, root: Path, what: str, source, allow_outside_root: bool) -> None:
    """Refuse a resolved ``path`` outside ``root`` (a symlink out, ``..``) unless allowed."""
    if not allow_outside_root and not path.is_relative_to(root):
        raise DataError(f"{source}: {what} resolves to {path}, outside the folder {root}; pass "
                        "allow_outside_root=True (CLI: --allow-outside-root) if this is intended")


def _index_images(images_dir: Path) -> dict[str, Path]:
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: image folder not found")
    index: dict[str, Path] = {}
    for p in sorted(images_dir.iterdir()):
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
            index.setdefault(p.stem, p.resolve())
    if not index:
        raise DataError(f"{images_dir}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return index


def _attach_images(ids: Sequence[str], images_dir, labels_path, allow_outside_root: bool = False) -> list[str]:
    index = _index_images(Path(images_dir))
    missing = [i for i in ids if i not in index]
    if missing:
        raise DataError(
            f"{labels_path}: {len(missing)} image id(s) have no image file in {images_dir}: {preview(missing)}")
    root = Path(images_dir).resolve()
    for i in ids:
        _inside(index[i], root, f"the image file of {i!r}", labels_path, allow_outside_root)
    return [str(index[i]) for i in ids]


def check_mask_pattern(pattern) -> str:
    """Return ``pattern`` when it names a mask file with ``{id}`` and no other replacement
    field (braces balanced; a literal brace is written ``{{`` or ``}}``), else raise
    :class:`~skinaudit.errors.ConfigError`."""
    import string

    hint = "write the image id as {id}, e.g. '{id}_segmentation.png'"
    if not isinstance(pattern, str):
        raise ConfigError(f"the mask pattern must be text; got {pattern!r}")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"the mask pattern {pattern!r} is malformed ({exc}); {hint}") from None
    other = sorted({"{" + name + "}" for name, spec, conv in fields if name != "id" or spec or conv})
    if other:
        raise ConfigError(f"the mask pattern {pattern!r} has the field(s) {', '.join(other)}; {hint}")
    if not fields:
        raise ConfigError(f"the mask pattern must contain '{{id}}'; got {pattern!r}")
    return pattern


def _attach_masks(ids: Sequence[str], masks_dir, pattern: str, allow_outside_root: bool = False) -> list[str | None]:
    check_mask_pattern(pattern)
    if masks_dir is None:
        return [None] * len(ids)
    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise DataError(f"{masks_dir}: mask folder not found")
    root = masks_dir.resolve()
    out = []
    for i in ids:
        name = pattern.format(id=i)
        try:
            p = (masks_dir / name).resolve()
            found = p.is_file()
        except (OSError, ValueError) as exc:  # a name too long for the OS, a NUL byte
            raise DataError(f"{masks_dir}: the mask name {_short(name)} of image {i!r} is not a usable path "
                            f"({_path_problem(exc)})") from None
        if found:
            _inside(p, root, f"the mask of {i!r}", masks_dir, allow_outside_root)
        out.append(str(p) if found else None)
    if not any(out):
        raise DataError(
            f"{masks_dir}: no mask matches the pattern {pattern!r} for any image (e.g. {pattern.format(id=ids[0])})")
    return out


def _check_unique(df: pd.DataFrame, col: str, path) -> None:
    dup = df[col][df[col].duplicated()].unique()
    if len(dup):
        raise DataError(f"{path}: {len(dup)} duplicate image id(s) in column '{col}': {preview(dup)}")


def _malignant_set(malignant: Iterable[str]) -> set[str]:
    mal = {str(m).strip().upper() for m in malignant}
    if not mal:
        raise ConfigError("at least one malignant class must be given")
    return mal


def _excluded(ids, reasons) -> pd.DataFrame:
    return pd.DataFrame({"image_id": pd.Series(list(ids), dtype=str), "reason": pd.Series(list(reasons), dtype=str)})


# ----------------------------------------------------------------------------------------
# loaders
# ----------------------------------------------------------------------------------------

def load_isic(images, labels, *, masks=None, malignant: Iterable[str] = DEFAULT_MALIGNANT,
              mask_pattern: str = "{id}_segmentation.png", allow_outside_root: bool = False,
              name: str | None = None) -> AuditDataset:
    """Load the ISIC 2018 Task 3 layout (or HAM10000, the same images).

    Parameters
    ----------
    images : path
        Folder of ``<image id>.jpg`` files (ISIC2018_Task3_*_Input).
    labels : path
        Either the Task 3 ground truth, one-hot columns ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``
        (exactly one 1 per row), or the HAM10000 metadata (``image_id, dx, lesion_id, ...``;
        extra columns become metadata).
    masks : path, optional
        Folder of Task 1 style masks (``<id>_segmentation.png``, 255 = lesion).
    malignant : iterable of str
        Diagnosis codes counted as malignant (default MEL, BCC, AKIEC).
    mask_pattern : str
        File name of an image's mask, with ``{id}`` for the image id (and no other field).
    allow_outside_root : bool
        Accept an image (or mask) file that resolves outside its folder, e.g. a symlink
        pointing elsewhere; refused by default, as in :func:`load_manifest`.
    """
    labels = Path(labels)
    check_mask_pattern(mask_pattern)
    df = read_table(labels, "labels")
    mal = _malignant_set(malignant)
    unknown = mal - set(ISIC_CLASSES) - {"SCC"}
    if unknown:
        raise ConfigError(f"unknown malignant class(es) {sorted(unknown)}; choose from {', '.join(ISIC_CLASSES)}")
    if "image" in df.columns and all(c in df.columns for c in ISIC_CLASSES):
        df["image"] = id_column(df, "image", labels)
        onehot = df[list(ISIC_CLASSES)].apply(pd.to_numeric, errors="coerce")
        refuse_rows(labels, df["image"], onehot.isna().any(axis=1), lambda i: "non-numeric class value")
        values = onehot.to_numpy(dtype=float)
        not_onehot = ~np.isin(values, (0.0, 1.0)).all(axis=1) | ((values == 1.0).sum(axis=1) != 1)
        refuse_rows(labels, df["image"], not_onehot, lambda i: (
            "every class value must be 0 or 1, with exactly one class set to 1; got "
            + (", ".join(f"{c}={df[c].iloc[i].strip()}" for k, c in enumerate(ISIC_CLASSES) if values[i, k] != 0)
               or "0 for every class")))
        dx = onehot.idxmax(axis=1)
        table = pd.DataFrame({"image_id": df["image"], "diagnosis": dx})
        kind = "ISIC 2018 Task 3 ground truth"
    elif {"image_id", "dx"} <= set(df.columns):
        df["image_id"] = id_column(df, "image_id", labels)
        codes = df["dx"].str.strip().str.lower().map(DIAGNOSIS_CODES)
        refuse_rows(labels, df["image_id"], codes.isna(), lambda i: (
            f"unknown diagnosis {df['dx'].iloc[i]!r} in column 'dx' (known: {', '.join(sorted(DIAGNOSIS_CODES))})"))
        table = df.rename(columns={"dx": "dx_original"}).copy()
        table["diagnosis"] = codes
        kind = "HAM10000 metadata"
    else:
        raise DataError(
            f"{labels}: not an ISIC 2018 Task 3 ground truth (columns image,{','.join(ISIC_CLASSES)}) "
            f"nor HAM10000 metadata (columns image_id,dx); found columns {list(df.columns)[:10]}")
    _check_unique(table, "image_id", labels)
    ids = table["image_id"].tolist()
    table["label"] = table["diagnosis"].isin(mal).astype(int)
    table["image_path"] = _attach_images(ids, images, labels, allow_outside_root)
    table["mask_path"] = _attach_masks(ids, masks, mask_pattern, allow_outside_root)
    source = {"kind": "isic", "format": kind, "images": str(Path(images)), "labels": str(labels),
              "masks": str(masks) if masks else None, "malignant": sorted(mal)}
    return AuditDataset(table, name=name or labels.stem, source=source)


def load_isic_archive(metadata, images, *, masks=None, malignant: Iterable[str] = (*DEFAULT_MALIGNANT, "SCC"),
                      mask_pattern: str = "{id}_segmentation.png", allow_outside_root: bool = False,
                      name: str | None = None) -> AuditDataset:
    """Load an ISIC Archive metadata CSV (as the archive and ``isic-cli`` export it).

    The id column is ``isic_id`` (or ``image_id``). The label comes from
    ``benign_malignant`` (``benign`` / ``malignant``; rows marked ``indeterminate`` or empty
    are excluded and listed with the reason) or, when that column is absent, from
    ``diagnosis`` / ``diagnostic`` / ``dx`` mapped through ``malignant``. Every other column
    (age, sex, diagnosis, Fitzpatrick type, ...) is kept as metadata. ``masks``,
    ``mask_pattern`` and ``allow_outside_root`` are as in :func:`load_isic`.
    """
    metadata = Path(metadata)
    check_mask_pattern(mask_pattern)
    df = read_table(metadata, "metadata")
    id_col = "isic_id" if "isic_id" in df.columns else "image_id" if "image_id" in df.columns else None
    if id_col is None:
        raise DataError(f"{metadata}: no 'isic_id' (or 'image_id') column; found {list(df.columns)[:10]}")
    table = df.copy()
    if id_col == "isic_id" and "image_id" in table.columns:
        table = table.rename(columns={"image_id": "image_id_original"})
    table = table.rename(columns={id_col: "image_id"})
    table["image_id"] = id_column(table, "image_id", metadata)
    _check_unique(table, "image_id", metadata)
    mal = _malignant_set(malignant)
    unknown = mal - set(DIAGNOSIS_CODES.values())
    if unknown:
        raise ConfigError(f"unknown malignant class(es) {sorted(unknown)}; choose from "
                          f"{', '.join(sorted(set(DIAGNOSIS_CODES.values())))}")
    if "benign_malignant" in table.columns:
        labels = table["benign_malignant"].map(parse_label)
        reasons = "benign_malignant is " + table["benign_malignant"].fillna("empty").astype(str)
    else:
        dcol = next((c for c in ("diagnosis", "diagnostic", "dx", "diagnosis_1") if c in table.columns), None)
        if dcol is None:
            raise DataError(f"{metadata}: no 'benign_malignant' or 'diagnosis' column to label the images")
        codes = table[dcol].fillna("").str.strip().str.lower().map(DIAGNOSIS_CODES)
        labels = codes.map(lambda c: None if pd.isna(c) else int(c in mal))
        reasons = f"unknown diagnosis in '{dcol}': " + table[dcol].fillna("empty").astype(str)
    keep = labels.notna()
    excluded = _excluded(table["image_id"][~keep], reasons[~keep])
    if len(excluded):
        log.warning("%s: %d image(s) excluded (no benign/malignant label)", metadata, len(excluded))
    table = table[keep].copy()
    if table.empty:
        raise DataError(f"{metadata}: no row has a benign or malignant label")
    table["label"] = labels[keep].astype(int)
    ids = table["image_id"].tolist()
    table["image_path"] = _attach_images(ids, images, metadata, allow_outside_root)
    table["mask_path"] = _attach_masks(ids, masks, mask_pattern, allow_outside_root)
    source = {"kind": "isic-archive", "metadata": str(metadata), "images": str(Path(images)),
              "masks": str(masks) if masks else None}
    return AuditDataset(table, name=name or metadata.parent.name, source=source, excluded=excluded)


def load_manifest(manifest, *, allow_outside_root: bool = False, name: str | None = None) -> AuditDataset:
    """Load a generic manifest CSV.

    Columns: ``image_id, image_path, label`` (0/1 or benign/malignant), optional
    ``mask_path``, optional ``group`` (a skin-tone group) or ``ita`` (degrees) that override
    skin-tone estimation; any other column is kept as metadata. Relative paths resolve
    against the CSV's folder. A path that resolves outside that folder (``..``, an absolute
    path elsewhere, a symlink out) is refused unless ``allow_outside_root`` is True.
    """
    manifest = Path(manifest)
    df = read_table(manifest, "manifest")
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"{manifest}: missing required column(s) {', '.join(missing)}; "
                        f"a manifest needs image_id,image_path,label")
    df["image_id"] = id_column(df, "image_id", manifest)
    _check_unique(df, "image_id", manifest)
    labels = df["label"].map(parse_label)
    refuse_rows(manifest, df["image_id"], labels.isna(), lambda i: (
        f"the label must be 0/1 or benign/malignant; got {df['label'].iloc[i]!r}" if not _blank(df["label"].iloc[i])
        else "the label must be 0/1 or benign/malignant; the cell is empty"))
    df["label"] = labels.astype(int)
    if "ita" in df.columns:
        raw_ita = df["ita"].copy()
        df["ita"], bad = given_ita(raw_ita)
        refuse_rows(manifest, df["image_id"], bad, lambda i: (
            f"ita {raw_ita.iloc[i]!r} is not an angle in [-90, 90] degrees (leave the cell empty to estimate it)"))
    if "group" in df.columns:
        df["group"] = df["group"].map(lambda v: None if _blank(v) else str(v).strip())
        refuse_rows(manifest, df["image_id"], df["group"].eq(RESERVED_GROUP), lambda i: (
            f"the group name {RESERVED_GROUP!r} is reserved for the row of all images; use another name"))
    root = manifest.resolve().parent
    for col in ("image_path", "mask_path"):
        if col not in df.columns:
            continue
        resolved = []
        for row, (image_id, raw) in enumerate(zip(df["image_id"], df[col])):
            where = f"{manifest}: row {row + 2} (image {image_id!r})"
            if _blank(raw):
                if col == "image_path":
                    raise DataError(f"{where}: the image_path is empty")
                resolved.append(None)
                continue
            try:
                p = Path(str(raw).strip())
                p = (p if p.is_absolute() else root / p).resolve()
                found = p.is_file()
            except (OSError, ValueError) as exc:  # a NUL byte, a name or path too long for the OS
                problem = _path_problem(exc)
                raise DataError(f"{where}: the {col} {_short(raw)} is not a usable path ({problem})") from None
            if not allow_outside_root and not p.is_relative_to(root):
                raise DataError(
                    f"{where}: the {col} {_short(raw)} leaves the manifest's folder {root}; "
                    "pass allow_outside_root=True (CLI: --allow-outside-root) if this is intended")
            if not found:
                raise DataError(f"{where}: the {col} was not found: {p}")
            resolved.append(str(p))
        df[col] = resolved
    for col in df.columns:  # metadata columns that are wholly numeric become numbers
        if col in (*_REQUIRED, "mask_path", "group", "image_id") or not pd.api.types.is_string_dtype(df[col]):
            continue
        values = df[col].dropna()
        numeric = pd.to_numeric(values, errors="coerce")
        if len(values) and numeric.notna().all():
            df[col] = pd.to_numeric(df[col], errors="coerce")
    source = {"kind": "manifest", "manifest": str(manifest)}
    return AuditDataset(df, name=name or manifest.stem, source=source)
