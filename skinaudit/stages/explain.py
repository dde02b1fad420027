"""Stage 5: explanations. Grad-CAM++ for the triptych cases, every false negative and a seeded sample;
localisation against the lesion by group; the failure mode of each false negative."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .._jsonsafe import json_safe
from ..outputs import safe_name
from ..per_image import cached_cams
from ..result import unavailable
from . import StageOutput

__all__ = ["explain_stage", "explainable", "dark_cut", "safe_name", "png_bytes"]

def explainable(model) -> str | None:
    """None when Grad-CAM++ can explain ``model``, else the reason it cannot."""
    from ..models import PrecomputedScores, TorchModel

    if not isinstance(model, TorchModel):
        kind = "precomputed scores" if isinstance(model, PrecomputedScores) else type(model).__name__
        return f"Grad-CAM++ needs an eager PyTorch model; this audit has {kind}"
    if getattr(model, "is_exported", False):
        return ("Grad-CAM++ needs the model's named layers, which a torch.export program (.pt2) flattens away; to "
                "get explanations, audit the same weights as a state dict with --arch")
    if model.is_scripted:
        return ("Grad-CAM++ needs Python hooks, which TorchScript modules do not run; to get explanations, audit "
                "the same weights as a state dict with --arch (or an nn.Module through the library API)")
    return None


def png_bytes(rgb: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 image as PNG bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def dark_cut(scheme) -> float:
    """The ITA (degrees) at or below which the failure rules call skin dark: the grouping
    scheme's cut point nearest to the paper's light/dark boundary (28; the binary scheme's only
    cut)."""
    from ..skintone import get_scheme

    cuts = [float(c) for c in get_scheme(scheme).cuts]
    return min(cuts, key=lambda c: (abs(c - 28.0), c)) if cuts else 28.0


def explain_stage(model, dataset, pred, config, *, progress=None, cache=None, executor=None) -> StageOutput:
    """CAMs for the triptych cases, every false negative (and false positive with
    ``explain_fp``) and a seeded random sample (localisation by group); failure modes.

    With a distributed ``executor`` (and a cache), the maps are computed first on its model
    actors, chunk by chunk as below, into the per-image cache, which this loop then reads."""
    import tempfile

    out = StageOutput()
    sections, tables, figures = out.sections, out.tables, out.figures
    reason = explainable(model) if config.explain == "auto" else "explanations switched off (explain='off')"
    if reason:
        for name in ("explanations", "localisation", "failure_modes"):
            sections[name] = unavailable(reason)
        return out
    from ..explain import MIN_CAM_GRID, cam_grid
    from ..localisation import (localisation_by_group, localisation_table, overlay, save_triptych, sharpen,
                                triptych_cases)
    from ..failures import classify_failures, failure_features, failure_summary, failure_table
    from ..imageio import read_image, read_mask
    from .. import learned
    from ..learned import resolve
    from ..lesion import detect_artifacts, masks_of_flagged, segment_lesion

    grid = cam_grid(model, config.target_layer)
    grid_text = f"{grid[0]}x{grid[1]} at {model.preprocess.size} px"
    coarse = (f"the CAM's native grid is {grid_text}, coarser than {MIN_CAM_GRID}x{MIN_CAM_GRID}: a map that coarse "
              "cannot show whether the model looked at the lesion, so localisation statistics and the "
              "localisation-based failure modes are withheld" if min(grid) < MIN_CAM_GRID else None)
    ids = pred["image_id"].tolist()
    dark_ita = dark_cut(config.scheme)
    y, yhat, s = pred["label"].to_numpy(), pred["prediction"].to_numpy(), pred["score"].to_numpy()
    trip = triptych_cases(y, yhat, s, per_kind=config.cases_per_kind, ids=ids)
    errors = pred.loc[(y == 1) & (yhat == 0), "image_id"].tolist()
    if config.explain_fp:
        errors += pred.loc[(y == 0) & (yhat == 1), "image_id"].tolist()
    rng = np.random.default_rng(config.seed)
    sample = sorted(rng.choice(ids, size=min(config.cam_sample, len(ids)), replace=False).tolist()) if ids else []
    wanted = list(dict.fromkeys([i for k in trip.values() for i in k] + errors + sample))
    table = dataset.table.set_index("image_id")
    group_of = dict(zip(pred["image_id"], pred["group"])) if "group" in pred else {}
    ita_of = dict(zip(pred["image_id"], pred["ita"])) if "ita" in pred else {}
    loc_rows, feat_rows, keep = [], [], {}
    trip_ids = {i for k in trip.values() for i in k}
    error_set = set(errors)
    chunks = [wanted[i:i + config.batch_size] for i in range(0, len(wanted), config.batch_size)]
    if executor is not None:
        path_of = table["image_path"]
        executor.warm_cams(model, [job for chunk in chunks for job in (
            ("malignant", [path_of[i] for i in chunk]),
            *([("predicted", [path_of[i] for i in chunk if i in error_set])] if error_set & set(chunk) else []))],
            config=config, cache=cache)
    it = chunks if progress is None else progress(chunks, total=len(chunks), desc="Grad-CAM++")
    for chunk in it:
        images, masks, sources = [], [], []
        for i in chunk:
            img = read_image(table.loc[i, "image_path"])
            mp = table.loc[i, "mask_path"]
            if mp:
                masks.append(read_mask(mp, shape=img.shape[:2]))
                sources.append("given")
            else:
                masks.append(segment_lesion(img, params=config.lesion_params()))
                sources.append("estimated")
            images.append(img)
        paths = [table.loc[i, "image_path"] for i in chunk]
        cams = cached_cams(model, images, paths, target="malignant", config=config, cache=cache)
        loc = localisation_table(cams, masks, ids=chunk, keep_top=config.keep_top)
        loc["mask_source"] = sources
        loc_rows.append(loc)
        err_idx = [k for k, i in enumerate(chunk) if i in error_set]
        if err_idx:
            # An error is explained by the evidence for what the model predicted (for a false
            # negative: the benign evidence); the malignant map answers "did it look at the
            # lesion" (localisation, triptychs). See docs/explanations.md.
            err_cams = cached_cams(model, [images[k] for k in err_idx], [paths[k] for k in err_idx],
                                    target="predicted", config=config, cache=cache)
            ap = config.artifact_params()
            arts = [detect_artifacts(images[k], lesion_mask=masks[k], params=config.lesion_params(),
                                     artifact_params=ap) for k in err_idx]
            if resolve(ap.detector, "artifacts") == "learned":  # the learned flags decide which masks count
                arts = [masks_of_flagged(a, learned.artifact_flags(images[k])) for a, k in zip(arts, err_idx)]
            feats = failure_features([chunk[k] for k in err_idx], [images[k] for k in err_idx],
                                     [masks[k] for k in err_idx], cams=None if coarse else err_cams,
                                     artifact_masks=arts, ita=[ita_of.get(chunk[k]) for k in err_idx],
                                     keep_top=config.keep_top)
            if coarse:
                feats["cam_reason"] = f"CAM grid {grid_text} too coarse (< {MIN_CAM_GRID}x{MIN_CAM_GRID})"
            feat_rows.append(feats)
            for k, cam in zip(err_idx, err_cams):
                figures[f"cams/{safe_name(chunk[k])}"] = png_bytes(
                    overlay(images[k], sharpen(cam, keep_top=config.keep_top), skip_zero=True))
        for k, i in enumerate(chunk):
            if i in trip_ids:
                keep[i] = (images[k], cams[k])
    loc = pd.concat(loc_rows, ignore_index=True) if loc_rows else pd.DataFrame()
    # localisation by group: the random sample only (errors would bias it)
    in_sample = loc[loc["image_id"].isin(set(sample))].reset_index(drop=True) if len(loc) else loc
    if coarse:
        sections["localisation"] = unavailable(coarse, cam_grid=grid_text)
    elif len(in_sample):
        groups = [group_of.get(i, "all") for i in in_sample["image_id"]]
        by_group = localisation_by_group(in_sample, groups, alpha=config.alpha, n_boot=min(config.n_boot, 1000),
                                         random_state=config.seed)
        sections["localisation"] = {
            "n_images": len(in_sample), "keep_top": config.keep_top,
            "groups": json_safe(by_group.to_dict(orient="records")),
            "notes": [f"Measured on a seeded random sample of {len(in_sample)} images (seed {config.seed}) against "
                      "the dataset's lesion masks where given, else the estimated ones; pointing game = the CAM's "
                      "maximum falls in the lesion (Wilson interval); relevance mass = share of CAM inside the "
                      "lesion; IoU of the top-25% region with the lesion (bootstrap intervals)."]}
        tables["localisation_by_group"] = by_group
    else:
        sections["localisation"] = unavailable("no image was explained")
    if len(loc) and not coarse:
        tables["localisation"] = loc
    # failure modes
    if feat_rows:
        feats = pd.concat(feat_rows, ignore_index=True)
        is_fn = pred.set_index("image_id").loc[feats["image_id"], "label"].to_numpy() == 1
        parts = []
        for case, sel in (("FN", is_fn), ("FP", ~is_fn)):
            if sel.any():
                m = classify_failures(feats[sel].reset_index(drop=True), case=case, dark_ita=dark_ita)
                m.insert(1, "case", case)
                parts.append(m)
        modes = pd.concat(parts, ignore_index=True)
        modes["cam_png"] = [f"figures/cams/{safe_name(i)}.png" for i in modes["image_id"]]
        # one image, two maps, both labelled: the rules read the predicted-class map (for a false
        # negative the benign evidence; cam_png); localisation.csv and the triptychs show the
        # malignant-class map, whose scores sit beside the mode here
        modes["rules_map"] = "predicted class (benign for a false negative)"
        modes["cam_rules"] = (f"withheld: CAM grid {grid_text} coarser than {MIN_CAM_GRID}x{MIN_CAM_GRID}" if coarse
                              else f"applied (CAM grid {grid_text})")
        if len(loc) and not coarse:
            mal = loc.set_index("image_id")[["relevance_mass", "pointing_game"]].add_prefix("malignant_map_")
            modes = modes.join(mal, on="image_id")
        fn_modes = modes[modes["case"] == "FN"]
        section = {"n_false_negatives": int(len(fn_modes)), "summary": failure_summary(fn_modes),
                   "tables": {"Table 6: false-negative failure modes":
                              json_safe(failure_table(fn_modes).to_dict(orient="records"))},
                   "notes": ["Each false negative gets exactly one mode by the documented rule order "
                             "(skinaudit.failures.FailureRules), with its evidence values in failure_modes.csv. "
                             "The rules read the map of the predicted class (for a false negative, the benign "
                             "evidence: figures/cams/); the triptychs and localisation.csv show the malignant-class "
                             "map, whose relevance mass and pointing game are the malignant_map_* columns of "
                             "failure_modes.csv, so an image can look well localised in one and not in the other."]
                             + ([coarse[0].upper() + coarse[1:] + "."] if coarse else [])}
        if config.explain_fp and (modes["case"] == "FP").any():
            fp_modes = modes[modes["case"] == "FP"]
            section["false_positives"] = failure_summary(fp_modes)
            section["tables"]["False-positive failure modes"] = json_safe(
                failure_table(fp_modes, case="FP").to_dict(orient="records"))
        if not len(fn_modes):
            section.update(available=False, reason="no false negative at this threshold")
        sections["failure_modes"] = section
        tables["failure_modes"] = modes
    else:
        sections["failure_modes"] = unavailable("no false negative at this threshold", n_false_negatives=0)
    # Fig. 8 triptychs
    fig_paths = {}
    mode_of = ({} if not feat_rows else dict(zip(modes["image_id"], modes["mode"])))
    with tempfile.TemporaryDirectory(prefix="skinaudit-cam-") as tmp:
        for kind, kids in trip.items():
            rows = [(f"{kind}  {i}  p={float(pred.loc[pred['image_id'] == i, 'score'].iloc[0]):.2f}"
                     + (f"  mode {mode_of[i]} (from the benign-class map)" if i in mode_of else ""),
                     *keep[i]) for i in kids if i in keep]
            if rows:
                path = save_triptych(rows, Path(tmp) / f"triptych_{kind}.png", keep_top=config.keep_top)
                figures[f"triptych_{kind}"] = path.read_bytes()
                fig_paths[f"triptych_{kind}"] = f"figures/triptych_{kind}.png"
    layer = config.target_layer
    if layer is None:
        from ..explain import default_target_layer

        layer = default_target_layer(model.module)
    sections["explanations"] = {"method": "Grad-CAM++ (pytorch-grad-cam)", "target_layer": layer,
                                "cam_grid": grid_text, "min_cam_grid": f"{MIN_CAM_GRID}x{MIN_CAM_GRID}",
                                "keep_top": config.keep_top, "cases": trip, "n_explained": len(wanted),
                                "figures": fig_paths,
                                "notes": [f"Native CAM grid {grid_text} (the target layer's map before it is "
                                          "upsampled to the image).",
                                          "Triptych columns: original, raw heatmap of the malignant class, sharpened "
                                          f"overlay (top {config.keep_top:.0%} of activations kept)."]
                                + ([coarse[0].upper() + coarse[1:] + "."] if coarse else [])}
    return out
