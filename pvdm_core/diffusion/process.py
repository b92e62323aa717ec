"""Gaussian diffusion on triplane latents: the noise schedule, the forward process and PVDM's
joint training loss (the samplers are in `samplers.py`, the plane ops in `planes.py`).

Notation follows the papers: beta_t, alpha_t = 1 - beta_t, alpha_bar_t = prod_{s<=t} alpha_s
(Ho et al. 2020, "DDPM"); a timestep t is an integer in [0, T); alpha_bar_{-1} = 1 stands for
the clean data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import get_args

import torch
from torch import Tensor

from pvdm_core.base.config import DiffusionConfig, Prediction
from pvdm_core.base.errors import BadInputError
from pvdm_core.diffusion.planes import Planes, plane_map, plane_mse


# ---------------------------------------------------------------------------------------------
# Noise schedule
# ---------------------------------------------------------------------------------------------


def linear_schedule(timesteps: int = 1000, beta_start: float = 0.0015, beta_end: float = 0.0195) -> Tensor:
    """Latent diffusion's "linear" schedule: beta_t = linspace(sqrt(b0), sqrt(b1), T)^2.

    Computed in float64 and returned as float32, as the reference stores it.
    """
    if timesteps < 1 or not 0 < beta_start <= beta_end < 1:
        raise BadInputError(
            f"bad noise schedule: timesteps={timesteps}, beta_start={beta_start}, beta_end={beta_end}"
        )
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, timesteps, dtype=torch.float64) ** 2
    return betas.float()


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """Discrete-time variance-preserving schedule; tables are float64 on CPU, (T,) each."""

    betas: Tensor  # beta_t
    alphas: Tensor = field(init=False)  # alpha_t = 1 - beta_t
    alphas_cumprod: Tensor = field(init=False)  # alpha_bar_t = prod_{s<=t} alpha_s

    def __post_init__(self) -> None:
        betas = self.betas.detach().to("cpu", torch.float64)
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "alphas", 1.0 - betas)
        object.__setattr__(self, "alphas_cumprod", torch.cumprod(1.0 - betas, dim=0))

    @classmethod
    def linear(cls, timesteps: int = 1000, beta_start: float = 0.0015, beta_end: float = 0.0195) -> NoiseSchedule:
        return cls(linear_schedule(timesteps, beta_start, beta_end))

    @classmethod
    def from_config(cls, cfg: DiffusionConfig) -> NoiseSchedule:
        schedule = cls.linear(cfg.timesteps, cfg.beta_start, cfg.beta_end)
        # no shift leaves the reference's table bit for bit (sigmoid(logit(x)) would round it)
        return schedule.shifted(cfg.logsnr_shift) if cfg.logsnr_shift else schedule

    def shifted(self, shift: float) -> NoiseSchedule:
        """The schedule with every log-SNR raised by `shift` (natural log; see
        DiffusionConfig.logsnr_shift): alpha_bar'_t = sigmoid(logit(alpha_bar_t) + shift)."""
        alpha_bar = torch.sigmoid(torch.logit(self.alphas_cumprod) + shift)  # (T,), still decreasing in t
        previous = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
        return NoiseSchedule(1.0 - alpha_bar / previous)

    @property
    def num_timesteps(self) -> int:
        return self.betas.shape[0]

    def alpha_bar(self, t: int) -> float:
        """alpha_bar_t as a Python float (float64); alpha_bar_{-1} = 1 (clean data)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])


def _per_example(values: Tensor, like: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, ...) broadcastable against `like`, in like's dtype and device."""
    return values.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def _at(table: Tensor, t: Tensor) -> Tensor:
    return table.float().to(t.device)[t]


def _sqrt_alpha_bars(schedule: NoiseSchedule, t: Tensor) -> tuple[Tensor, Tensor]:
    """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) at timesteps t (B,): the coefficients of x_0 and eps."""
    return _at(schedule.alphas_cumprod.sqrt(), t), _at((1.0 - schedule.alphas_cumprod).sqrt(), t)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def q_sample(x0: Planes, t: Tensor, noise: Planes, schedule: NoiseSchedule) -> Planes:
    """Forward process q(x_t | x_0) (DDPM eq. 4): x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
    sqrt_ab, sqrt_1m_ab = _sqrt_alpha_bars(schedule, t)
    return plane_map(lambda x, n: _per_example(sqrt_ab, x) * x + _per_example(sqrt_1m_ab, x) * n, x0, noise)


def v_target(x0: Planes, t: Tensor, noise: Planes, schedule: NoiseSchedule) -> Planes:
    """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022, "v-prediction")."""
    sqrt_ab, sqrt_1m_ab = _sqrt_alpha_bars(schedule, t)
    return plane_map(lambda x, n: _per_example(sqrt_ab, x) * n - _per_example(sqrt_1m_ab, x) * x, x0, noise)


def eps_from_v(v: Planes, x_t: Planes, t: Tensor, schedule: NoiseSchedule) -> Planes:
    """eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) x_t, so v-models run in the eps samplers.

    Near t = T, x_0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) multiplies an eps error
    by up to 14x (alpha_bar_T = 0.0047); from v, x_0 = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v
    does not, which is why short runs sample better with v.
    """
    sqrt_ab, sqrt_1m_ab = _sqrt_alpha_bars(schedule, t)
    return plane_map(lambda a, x: _per_example(sqrt_ab, a) * a + _per_example(sqrt_1m_ab, x) * x, v, x_t)


PREDICTIONS = get_args(Prediction)  # ("eps", "v")


def draw_timesteps(batch: int, schedule: NoiseSchedule, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> Tensor:
    """t ~ Uniform{0, ..., T-1} (DDPM Algorithm 1)."""
    gdev = generator.device if generator is not None else device
    return torch.randint(0, schedule.num_timesteps, (batch,), generator=generator, device=gdev).to(device)


def draw_cond_mask(batch: int, cond_prob: float, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu", per_batch: bool = False) -> Tensor:
    """(B,) bool: True with probability lambda (= cond_prob) -> that example sees the previous clip.

    per_batch=True draws once for the whole batch, as the release does (`diffusion.cond_draw: batch`).
    """
    gdev = generator.device if generator is not None else device
    draws = torch.rand((1 if per_batch else batch,), generator=generator, device=gdev)
    return (draws < cond_prob).expand(batch).to(device)


def draw_label_drop(batch: int, dropout: float, generator: torch.Generator | None = None) -> Tensor:
    """(B,) bool: True with probability `dropout` -> that example trains the null label, the
    unconditional branch of classifier-free guidance (Ho & Salimans 2022, Algorithm 1)."""
    gdev = generator.device if generator is not None else "cpu"
    return torch.rand((batch,), generator=generator, device=gdev) < dropout


def diffusion_loss(
    model: Callable[..., Planes],
    z_next: Planes,
    z_prev: Planes | None,
    t: Tensor,
    noise: Planes,
    cond_mask: Tensor | None,
    schedule: NoiseSchedule,
    prediction: Prediction = "eps",
    label: Tensor | None = None,
    min_snr_gamma: float = 0.0,
    plane_weights: Sequence[float] | None = None,
) -> Tensor:
    """PVDM's joint objective for clips of any length (Yu et al. 2023, Sec. 3.3):

        lambda * ||eps - eps_theta(z2_t, z1_0, t)||^2 + (1 - lambda) * ||eps - eps_theta(z2_t, 0, t)||^2

    as a Monte-Carlo mean: example b is conditioned on its previous clip z_prev[b] where
    cond_mask[b] (drawn with probability lambda), and on zeros elsewhere. `model(x, t, cond)`
    predicts eps (or v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) z2_0 with prediction="v");
    `z_prev=None` or `cond_mask=None` means no example is conditioned. The squared error is
    averaged over every latent number of the three planes (DDPM eq. 14, "L_simple"). A
    class-conditional model also gets `label` (B,), -1 where label dropout chose the null label.
    `min_snr_gamma` > 0 weights each example by `min_snr_weights` instead of uniformly;
    `plane_weights` (content, then the two motion planes) weights each plane's squared errors.
    """
    # 1. diffuse the clean latents of the clip to predict: z2_t ~ q(z2_t | z2_0)
    x_t = q_sample(z_next, t, noise, schedule)
    # 2. condition: the previous clip's clean latents where cond_mask, zeros elsewhere
    cond = None
    if z_prev is not None and cond_mask is not None:
        cond = plane_map(
            lambda p: torch.where(cond_mask.reshape(-1, *([1] * (p.ndim - 1))).to(p.device), p, torch.zeros_like(p)),
            z_prev,
        )
    # 3. epsilon- (or v-) prediction MSE
    if prediction not in PREDICTIONS:
        raise BadInputError(f"unknown diffusion.prediction {prediction!r}: choose one of {', '.join(PREDICTIONS)}")
    target = noise if prediction == "eps" else v_target(z_next, t, noise, schedule)
    out = model(x_t, t, cond) if label is None else model(x_t, t, cond, label)
    weights = min_snr_weights(t, schedule, prediction, min_snr_gamma) if min_snr_gamma > 0 else None
    return plane_mse(out, target, weights, plane_weights)


def min_snr_weights(t: Tensor, schedule: NoiseSchedule, prediction: Prediction, gamma: float) -> Tensor:
    """(B,) Min-SNR-gamma weights (Hang et al. 2023, eq. 8 and its v form): the x_0 error's weight
    min(SNR_t, gamma) expressed for the eps target (divide by SNR_t) or the v target (by SNR_t + 1);
    SNR_t = alpha_bar_t / (1 - alpha_bar_t)."""
    ab = _at(schedule.alphas_cumprod, t)
    snr = ab / (1 - ab)
    return snr.clamp(max=gamma) / (snr if prediction == "eps" else snr + 1)
