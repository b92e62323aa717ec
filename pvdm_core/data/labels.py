"""Class labels of videos, for class-conditional diffusion (`data.class_labels: true`).

The class of a video is the name of the folder that holds it (UCF-101's `<Class>/v_*.avi`, or
any folder dataset with one subfolder per class), and for the embedded synthetic set the kind
of its one shape (disc, square, triangle), which a viewer can check. The index map (label ->
name) is fixed by the kind of data, not by which classes a split happens to hold: UCF-101's
official 101 names in classInd order, the synthetic set's three shapes, else the folder names
found, sorted the same way. It is stored beside the latents and in every checkpoint.
"""

from __future__ import annotations

import re
from pathlib import Path

from pvdm_core.base.errors import BadInputError
from pvdm_core.data.synthetic import SHAPES, synthetic_main_shape

# UCF-101's classInd.txt, index 1..101 -> 0..100. Its order is case-insensitive alphabetical
# (Hammering before HammerThrow, JumpingJack before JumpRope), which plain sorted() is not.
UCF101_CLASSES = (
    "ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching", "BaseballPitch",
    "Basketball", "BasketballDunk", "BenchPress", "Biking", "Billiards", "BlowDryHair", "BlowingCandles",
    "BodyWeightSquats", "Bowling", "BoxingPunchingBag", "BoxingSpeedBag", "BreastStroke", "BrushingTeeth",
    "CleanAndJerk", "CliffDiving", "CricketBowling", "CricketShot", "CuttingInKitchen", "Diving", "Drumming",
    "Fencing", "FieldHockeyPenalty", "FloorGymnastics", "FrisbeeCatch", "FrontCrawl", "GolfSwing", "Haircut",
    "Hammering", "HammerThrow", "HandstandPushups", "HandstandWalking", "HeadMassage", "HighJump", "HorseRace",
    "HorseRiding", "HulaHoop", "IceDancing", "JavelinThrow", "JugglingBalls", "JumpingJack", "JumpRope", "Kayaking",
    "Knitting", "LongJump", "Lunges", "MilitaryParade", "Mixing", "MoppingFloor", "Nunchucks", "ParallelBars",
    "PizzaTossing", "PlayingCello", "PlayingDaf", "PlayingDhol", "PlayingFlute", "PlayingGuitar", "PlayingPiano",
    "PlayingSitar", "PlayingTabla", "PlayingViolin", "PoleVault", "PommelHorse", "PullUps", "Punch", "PushUps",
    "Rafting", "RockClimbingIndoor", "RopeClimbing", "Rowing", "SalsaSpin", "ShavingBeard", "Shotput",
    "SkateBoarding", "Skiing", "Skijet", "SkyDiving", "SoccerJuggling", "SoccerPenalty", "StillRings",
    "SumoWrestling", "Surfing", "Swing", "TableTennisShot", "TaiChi", "TennisSwing", "ThrowDiscus",
    "TrampolineJumping", "Typing", "UnevenBars", "VolleyballSpiking", "WalkingWithDog", "WallPushups",
    "WritingOnBoard", "YoYo",
)

_TRAILING_NUMBER = re.compile(r"(\d+)$")


def sort_classes(names: set[str] | list[str]) -> list[str]:
    """Class names in index order: case-insensitive alphabetical, as UCF-101's classInd."""
    return sorted(set(names), key=lambda n: (n.lower(), n))


def _is_synthetic(source: str) -> bool:
    """A synthetic set's dataset name (`synthetic/<seed>`) or `pvdm synth` file (`synthetic_<seed>.mp4`)."""
    return source.startswith("synthetic/") or Path(source).stem.startswith("synthetic_")


def class_of(source: str) -> str:
    """The class name of one video, from its source path or dataset name."""
    if _is_synthetic(source):
        seed = _TRAILING_NUMBER.search(Path(source).stem)
        if seed is None:
            raise BadInputError(f"{source}: a synthetic video's name must end in its seed")
        return synthetic_main_shape(int(seed.group(1)))
    parent = Path(source).parent.name
    if not parent:
        raise BadInputError(f"{source}: a class label needs a class folder (CLASS/video.mp4)")
    return parent


def default_class_names(sources: list[str], classes: list[str]) -> list[str]:
    """The index map for these videos: all three shapes for the synthetic set, the official 101
    names for UCF-101 (class folders of `v_*` videos, all of them UCF-101 names), else the
    classes found, sorted."""
    if all(_is_synthetic(s) for s in sources):
        return list(SHAPES)
    if set(classes) <= set(UCF101_CLASSES) and all(Path(s).name.startswith("v_") for s in sources):
        return list(UCF101_CLASSES)
    return sort_classes(classes)


def label_indices(sources: list[str], names: list[str] | None = None) -> tuple[list[int], list[str]]:
    """(label per source, class names by index); `names` fixes the map (e.g. a trained model's)."""
    if not sources:
        raise BadInputError("no videos to label")
    classes = [class_of(s) for s in sources]
    names = default_class_names(sources, classes) if names is None else list(names)
    unknown = sort_classes(set(classes) - set(names))
    if unknown:
        raise BadInputError(f"class {unknown[0]!r} is not one of the classes {', '.join(names)}")
    index = {n: i for i, n in enumerate(names)}
    return [index[c] for c in classes], names
