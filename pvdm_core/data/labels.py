"""Class labels of videos, for class-conditional diffusion (`data.class_labels: true`).

The class of a video is the name of the folder that holds it (UCF-101's `<Class>/v_*.avi`, or
any folder dataset with one subfolder per class), and for the embedded synthetic set the kind
of its main shape (disc, square, triangle), which a viewer can check. Class names are sorted,
so UCF-101's 101 names map to the usual indices 0..100; the map is stored beside the latents and
in every checkpoint.
"""

from __future__ import annotations

import re
from pathlib import Path

from pvdm_core.errors import BadInputError

_TRAILING_NUMBER = re.compile(r"(\d+)$")


def class_of(source: str) -> str:
    """The class name of one video, from its source path or dataset name."""
    stem = Path(source).stem
    if source.startswith("synthetic/") or stem.startswith("synthetic_"):  # dataset name or `pvdm synth` file
        from pvdm_core.data.synthetic import synthetic_main_shape

        return synthetic_main_shape(int(_TRAILING_NUMBER.search(stem).group(1)))
    parent = Path(source).parent.name
    if not parent:
        raise BadInputError(f"{source}: a class label needs a class folder (CLASS/video.mp4)")
    return parent


def label_indices(sources: list[str], names: list[str] | None = None) -> tuple[list[int], list[str]]:
    """(label per source, sorted class names); `names` fixes the map (e.g. the training set's)."""
    classes = [class_of(s) for s in sources]
    names = sorted(set(classes)) if names is None else names
    unknown = sorted(set(classes) - set(names))
    if unknown:
        raise BadInputError(f"class {unknown[0]!r} is not one of the model's classes: {', '.join(names)}")
    index = {n: i for i, n in enumerate(names)}
    return [index[c] for c in classes], names
