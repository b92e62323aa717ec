"""The one config loader: preset < --config FILE.yaml < --set a.b=value.

The schema is plain dataclasses with a comment per field. Every key a file or `--set` names
must exist in the schema (unknown keys are rejected with the closest valid name) and every
value must have the field's type (a fixed-choice field, a `Literal`, one of its choices), so
no setting is ever silently ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from pvdm_core.base.errors import BadInputError
from pvdm_core.base.schema import build_dataclass, closest_name

# The fixed choices, defined once: fields below use them, code that dispatches on them takes
# the tuples with typing.get_args.
Dataset = Literal["synthetic", "folder", "sky", "ucf"]
Amp = Literal["auto", "off", "bf16", "fp16"]
Prediction = Literal["eps", "v"]
CondDraw = Literal["example", "batch"]
Sampler = Literal["ddpm", "ddim", "dpm"]
NoiseLayout = Literal["per-video", "release"]
LRSchedule = Literal["constant", "cosine"]


@dataclass
class DataConfig:
    dataset: Dataset = "synthetic"
    root: str | None = None  # dataset root (not used by synthetic)
    resolution: int = 32  # frames are center-cropped and resized to resolution x resolution
    frames: int = 16  # T: frames per clip
    frame_stride: int = 1  # take every k-th frame of the source video
    test_fraction: float = 0.1  # folder datasets without an official split: share held out
    synthetic_train: int = 512  # synthetic dataset: number of training videos
    synthetic_test: int = 64  # synthetic dataset: number of held-out videos
    synthetic_seed: int = 0  # synthetic dataset: seed of video 0 (video i uses seed + i)
    num_workers: int = 0  # DataLoader worker processes
    # Class labels for a class-conditional model (unet.num_classes): the folder of each video
    # (UCF-101: its 101 official classes), or on the synthetic set the kind of its shape, each
    # video then holding one shape so that a viewer can check its class. A diffusion setting: the
    # autoencoder's own value is not adopted.
    class_labels: bool = False


@dataclass
class AEConfig:
    patch_size: int = 4  # p: non-overlapping p x p patches per frame
    dim: int = 64  # d: transformer width
    depth: int = 2  # encoder and decoder layers (each: time attention, space attention, GEGLU)
    heads: int = 4
    head_dim: int = 16
    ff_mult: int = 4  # GEGLU hidden width = ff_mult * dim
    proj_depth: int = 1  # layers of each axis-projection transformer
    proj_heads: int = 4
    proj_head_dim: int = 16
    proj_mlp_dim: int = 128
    latent_channels: int = 4  # C of each latent plane


@dataclass
class AETrainConfig:
    steps: int = 600  # optimizer steps
    batch_size: int = 8  # global batch per optimizer step (split over grad_accum micro-batches)
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1.0e-3
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    # constant (the reference) | cosine: linear warm-up over warmup_steps, then cosine decay to
    # min_lr_ratio * lr at `steps`; short runs reach a lower loss when the lr anneals.
    lr_schedule: LRSchedule = "constant"
    warmup_steps: int = 0  # linear warm-up from 0 (both schedules); lets a high lr start without diverging
    min_lr_ratio: float = 0.1  # cosine: final lr as a share of lr
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    grad_checkpoint: bool = False  # recompute transformer activations in backward (256 px fits in memory)
    # Std of Gaussian noise added to the latents before decoding, in training only (0: the
    # reference). The decoder learns to read a latent that is only roughly right, as a diffusion
    # model's samples are: without it, noise of 5% of a plane's std turns decoded shapes to blobs
    # (benchmarks/RESULTS.md, "Learning").
    latent_noise: float = 0.0
    ema_decay: float = 0.0  # 0 disables the EMA copy
    l1_weight: float = 4.0
    # squared pixel error: PSNR's own loss. L1 (the reference) is content to erase small moving shapes,
    # whose few pixels cost it little; the square of their large errors makes them worth learning first.
    mse_weight: float = 0.0
    perceptual_weight: float = 0.0  # LPIPS-VGG16 on one random frame; needs VGG16 weights
    disc_start: int = -1  # step at which the GAN phase starts; -1 = never
    disc_weight: float = 1.0  # generator adversarial loss weight
    feature_match_weight: float = 4.0  # L1 between discriminator features of real and fake
    disc_channels: int = 64
    disc_layers: int = 3
    disc_lr: float = 1.0e-4
    divergence_window: int = 200  # steps of held-out PSNR history checked for divergence
    divergence_tolerance_db: float = 2.0  # PSNR drop (dB) below the best that counts as divergence
    eval_every: int = 100  # held-out PSNR/SSIM and preview video
    eval_clips: int = 8  # held-out clips per evaluation
    ckpt_every: int = 200
    log_every: int = 10


@dataclass
class UNetConfig:
    base_channels: int = 32
    channel_mult: list[int] = field(default_factory=lambda: [1, 2])
    num_res_blocks: int = 1
    attn_levels: list[int] = field(default_factory=lambda: [0, 1])  # levels with joint attention
    heads: int = 4
    dropout: float = 0.0
    grad_checkpoint: bool = False  # recompute block activations in backward to save memory
    # Add a learned vector per plane (content, height, width) to the time embedding, as ADM adds a
    # class embedding, so the shared blocks can treat content and motion planes differently. Not
    # in the reference: its shared blocks learn that from data, which small, short runs do not
    # (they paint the motion planes' column structure into the content plane).
    plane_embedding: bool = False
    # Class-conditional model (not in the reference): a learned label embedding added to the time
    # embedding, plus a null label for classifier-free guidance. 0 = unconditional (the paper);
    # else the number of classes of the data (data.class_labels), checked at training start.
    num_classes: int = 0


@dataclass
class DiffusionConfig:
    timesteps: int = 1000
    beta_start: float = 0.0015  # betas = linspace(sqrt(beta_start), sqrt(beta_end), T)^2
    beta_end: float = 0.0195
    # Added to every timestep's log-SNR, log(alpha_bar / (1 - alpha_bar)): a positive shift keeps
    # more signal at each t. The same noise destroys a small latent (8 x 8 at the demo) sooner than
    # the 32-64 px latents the linear schedule was made for, so few timesteps train the detail that
    # tells shapes apart (Chen 2023; Hoogeboom et al. 2023 shift by 2 log(64 / resolution)).
    # 0 = the reference.
    logsnr_shift: float = 0.0
    cond_prob: float = 0.3  # lambda: share of training examples conditioned on the previous clip
    # Diffuse z / std(z), one std per plane measured on the training latents (LDM's scale_by_std).
    # The reference diffuses the raw tanh latents (std ~0.15-0.35), which wastes most noise levels.
    scale_latents: bool = False
    # What the UNet predicts: eps (the reference) or v (Salimans & Ho 2022), which samples better
    # after short training because x_0 near t = T no longer amplifies the network's error.
    prediction: Prediction = "eps"
    # Who shares one draw of "conditioned or not": each example (pvdm: a batch mixes both, lower
    # gradient variance) or the whole batch (the release: one Bernoulli(lambda) per iteration).
    cond_draw: CondDraw = "example"
    # Min-SNR-gamma loss weighting (Hang et al. 2023): example weight min(SNR_t, gamma) / SNR_t for
    # eps (/ (SNR_t + 1) for v), so the many low-noise timesteps stop dominating the gradient.
    # 0 = uniform weights (the reference).
    min_snr_gamma: float = 0.0
    # Std of Gaussian noise added, in training, to the previous clip's latents (in units of their
    # std) that condition a clip: at sampling time the condition is a decoded and re-encoded
    # generated clip, never a clean one (LVDM's remedy for drift across clips). 0 = the reference.
    cond_noise: float = 0.0
    # Loss weight of each plane's squared errors (content z_s, then the motion planes z_h, z_w),
    # a weighted mean. The reference averages every latent number alike, which gives the content
    # plane, the one a sample gets wrong (benchmarks/RESULTS.md, "Learning", 4), a fifth of the
    # loss at 16 frames (64 of 320 numbers at 32 px). [1, 1, 1] = the reference.
    plane_loss_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    # Class-conditional models: share of training examples whose label is replaced by the null
    # label, so that one model learns the unconditional branch classifier-free guidance needs
    # (Ho & Salimans 2022 use 0.1-0.2). Unused when unet.num_classes is 0.
    label_dropout: float = 0.1

    def __post_init__(self) -> None:
        # checked here, not at the first training step, which can come after hours of encoding
        w = self.plane_loss_weights
        if len(w) != 3 or min(w) < 0 or sum(w) <= 0:
            raise BadInputError(f"diffusion.plane_loss_weights must be 3 numbers >= 0, not all 0; got {w}")


@dataclass
class DiffusionTrainConfig:
    steps: int = 1500
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1.0e-3
    # as ae_train's: constant (the reference) | cosine (linear warm-up, then down to min_lr_ratio * lr)
    lr_schedule: LRSchedule = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    ema_every: int = 1  # EMA update interval in steps (the release: 25, warm-up counted in updates)
    sample_every: int = 500  # preview video
    ckpt_every: int = 500
    log_every: int = 10
    # FVD during training: at step 0, every fvd_every steps and after the last, rank 0 samples fvd_videos
    # videos with the EMA weights and scores them against fvd_stats, a real-statistics file from
    # `pvdm eval-fvd ... --save-stats-real` whose protocol (frames, stride, resize, detector) it
    # follows; logged as `fvd` (split test) to metrics.jsonl and TensorBoard. 0 = off. A few
    # videos give a noisy trend, not a number to compare with 2,048-video FVD.
    fvd_every: int = 0
    fvd_stats: str | None = None
    fvd_videos: int = 16  # as the PVDM release's in-training FVD


@dataclass
class SampleConfig:
    sampler: Sampler = "ddim"
    # Network evaluations (ddpm always uses all timesteps). 20: on the tiny model DDIM eta 1 keeps
    # its FVD from 10 to 100 steps (benchmarks/RESULTS.md, "Sampler steps against FVD"); the
    # reference presets set the paper's 100.
    steps: int = 20
    eta: float = 1.0  # DDIM noise: 1 = the reference's setting, 0 = deterministic
    # Layout of the sampling noise: "per-video" (video i draws from its own generator seeded
    # seed + i, so it does not depend on the batch) or "release" (one (B, C, h*w + 2*T*w) tensor
    # per step from one generator seeded `seed`, as the release draws it: reproduces its samples).
    noise: NoiseLayout = "per-video"
    # Classifier-free guidance weight w on the class label (class-conditional models):
    # out = (1 + w) out(z | y) - w out(z | null); 0 = the plain conditional model.
    guidance: float = 0.0
    # The same on the previous clip for clip k > 1 and `extend` (the release's `w`, 0 as it ships):
    # out = (1 + w) out(z | prev) - w out(z | 0).
    cond_guidance: float = 0.0
    # torch.compile (inductor) the UNet before sampling (`--compile`): minutes of compiling up front
    # (533 s for PVDM-S on one CPU thread), then a faster step (0.93x there; benchmarks/RESULTS.md,
    # "Speed levers"); worth it for long jobs such as FVD's thousands of videos.
    compile: bool = False


@dataclass
class RunConfig:
    seed: int = 0
    amp: Amp = "auto"  # auto: bf16 on CUDA GPUs that have it, else fp16 on CUDA; off on CPU and MPS
    # torch.compile backend for the training forward pass ("inductor" is the fast one; "" = eager).
    # Off by default: compiling costs minutes up front and pays only on long GPU runs.
    compile: str = ""
    # TensorBoard event files under <run>/tensorboard (rank 0): needs `pip install 'pvdm[tensorboard]'`.
    tensorboard: bool = False
    # Checkpoint retention: keep the newest N step-NNNNNNN.pt of a training run (0: keep all).
    # Never deleted: the one `latest` names, good.pt, files under any other name, and a
    # step-NNNNNNN.pt marked by a file next to it named step-NNNNNNN.pt.keep.
    keep_checkpoints: int = 0


@dataclass
class Config:
    preset: str = "tiny"
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    ae: AEConfig = field(default_factory=AEConfig)
    ae_train: AETrainConfig = field(default_factory=AETrainConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    diffusion_train: DiffusionTrainConfig = field(default_factory=DiffusionTrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def preset_dir() -> Path:
    return Path(str(resources.files("pvdm_presets")))


def preset_names() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BadInputError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise BadInputError(f"{path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInputError(f"{path} must hold a mapping of config keys, not {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_set(assignment: str) -> dict[str, Any]:
    """'a.b=value' -> {'a': {'b': value}} with value parsed as YAML ('1e-4' -> 0.0001)."""
    if "=" not in assignment:
        raise BadInputError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def config_from_dict(data: dict[str, Any]) -> Config:
    return build_dataclass(Config, data)


def load_config(
    preset: str | None = "tiny", config_file: Path | None = None, overrides: list[str] = ()
) -> Config:
    """Resolve preset < config file < --set overrides into a validated Config."""
    data: dict[str, Any] = {}
    if preset is not None:
        names = preset_names()
        if preset not in names:
            raise BadInputError(f"unknown preset {preset!r}{closest_name(preset, names).replace('key', 'preset')}")
        data = read_yaml(preset_dir() / f"{preset}.yaml")
        data["preset"] = preset
    return config_from_dict(_merge(data, _user_settings(config_file, overrides)))


def _user_settings(config_file: Path | None, overrides: list[str]) -> dict[str, Any]:
    """What the user wrote: the --config file, then --set assignments over it."""
    data = read_yaml(Path(config_file)) if config_file is not None else {}
    for assignment in overrides:
        data = _merge(data, parse_set(assignment))
    return data


def given_keys(config_file: Path | None, overrides: list[str], data: str | Path | None = None) -> set[str]:
    """The dotted keys the user set in --config, --set or (data.dataset, data.root) with --data:
    settings a command must honour or refuse, never replace (the preset's are defaults)."""
    def leaves(tree: dict[str, Any], prefix: str = "") -> set[str]:
        return set().union(*(leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
                             for k, v in tree.items()))

    return leaves(_user_settings(config_file, overrides)) | ({"data.dataset", "data.root"} if data is not None else set())


def override_config(cfg: Config, overrides: list[str], sections: tuple[str, ...]) -> Config:
    """cfg with --set overrides applied, each key inside one of `sections` or one of the keys
    named there (e.g. sampling options of a trained model, whose architecture is fixed by its
    checkpoint: ("sample", "run.amp"))."""
    data = cfg.to_dict()
    for assignment in overrides:
        key = assignment.split("=", 1)[0].strip()
        if key.split(".", 1)[0] not in sections and key not in sections:
            allowed = ", ".join(s if "." in s else s + ".*" for s in sections)
            raise BadInputError(f"--set {key}: only {allowed} keys can be set here")
        data = _merge(data, parse_set(assignment))
    return config_from_dict(data)


def config_hash(section: Any) -> str:
    """Short stable hash of a config section (e.g. the AE architecture) to match artifacts."""
    blob = json.dumps(dataclasses.asdict(section), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def resolve_config(preset: str | None, config_file: Path | None, overrides: list[str] | None,
                   data: str | Path | None = None, section: str | None = None, **fields: Any) -> Config:
    """load_config plus the CLI shortcuts: --data PATH and per-section options like --steps.

    `--data` on a synthetic preset switches it to a plain folder dataset.
    """
    sets = list(overrides or [])
    sets += [f"{section}.{k}={v}" for k, v in fields.items() if v is not None]
    cfg = load_config(preset, config_file, sets)
    if data is not None:
        if cfg.data.dataset == "synthetic":
            cfg.data.dataset = "folder"
        cfg.data.root = str(data)
    return cfg
