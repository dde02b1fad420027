"""Stage 1: scores. Any model adapter -> P(malignant) per image, the decision at the audit threshold."""
from __future__ import annotations

import pandas as pd

from ..errors import DataError
from ..models import score_dataset

__all__ = ["score_stage"]

def score_stage(model, dataset, config, *, progress=None, cache=None, executor=None):
    """Score every image once; returns ``(predictions, skipped)``: one row per scored image
    (``image_id, label, score, prediction`` with prediction = score >= threshold) and the images
    that could not be scored with the reason."""
    scored = score_dataset(model, dataset, batch_size=config.batch_size, strict=config.strict, progress=progress,
                           cache=cache, executor=executor)
    labels = dataset.table.set_index("image_id").loc[scored["image_id"], "label"].to_numpy(int)
    ok = scored["status"].eq("ok").to_numpy()
    skipped = pd.DataFrame({"image_id": scored["image_id"][~ok], "reason": scored["status"][~ok]})
    if not ok.any():
        raise DataError(f"no image of dataset '{dataset.name}' could be scored "
                        f"(e.g. {skipped['image_id'].iloc[0]}: {skipped['reason'].iloc[0]})")
    pred = pd.DataFrame({"image_id": scored["image_id"][ok], "label": labels[ok], "score": scored["score"][ok]})
    pred["prediction"] = (pred["score"] >= config.threshold).astype(int)
    return pred.reset_index(drop=True), skipped
