"""PatchGAN discriminators for the autoencoder's GAN phase (spec §1).

A 2D one judges a single frame, a 3D one (Conv3d) the whole clip. Both follow pix2pix's
NLayerDiscriminator: kernel 4, `layers` stride-2 convs doubling the width (capped at 512), one
stride-1 conv, then a 1-channel stride-1 conv giving a grid of patch logits. Each returns the
logits and the intermediate block outputs for the feature-matching loss.

BatchNorm as in the reference; under DDP wrap with nn.SyncBatchNorm.convert_sync_batchnorm to
share statistics across devices.
"""

from __future__ import annotations

from torch import Tensor, nn


class _PatchGAN(nn.Module):
    def __init__(
        self, conv: type[nn.Module], norm: type[nn.Module], channels: int, layers: int, in_channels: int = 3
    ):
        super().__init__()
        # padding 2 with kernel 4: each stride-1 conv grows the grid by one, so even small
        # inputs (a 16-frame clip after 3 halvings) keep a non-empty logit grid
        k, pad = 4, 2
        widths = [min(channels * 2**i, 512) for i in range(layers + 1)]
        blocks = [nn.Sequential(conv(in_channels, widths[0], k, 2, pad), nn.LeakyReLU(0.2))]
        for i in range(1, layers + 1):
            stride = 2 if i < layers else 1  # pix2pix: the last block does not downsample
            blocks.append(
                nn.Sequential(conv(widths[i - 1], widths[i], k, stride, pad), norm(widths[i]), nn.LeakyReLU(0.2))
            )
        self.blocks = nn.ModuleList(blocks)
        self.to_logits = conv(widths[layers], 1, k, 1, pad)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return self.to_logits(x), features


class PatchDiscriminator2D(_PatchGAN):
    """Frames (B, 3, H, W) -> logits (B, 1, h', w') and features."""

    def __init__(self, channels: int = 64, layers: int = 3, in_channels: int = 3):
        super().__init__(nn.Conv2d, nn.BatchNorm2d, channels, layers, in_channels)


class PatchDiscriminator3D(_PatchGAN):
    """Clips (B, 3, T, H, W) -> logits (B, 1, t', h', w') and features."""

    def __init__(self, channels: int = 64, layers: int = 3, in_channels: int = 3):
        super().__init__(nn.Conv3d, nn.BatchNorm3d, channels, layers, in_channels)


def _init_weights(m: nn.Module) -> None:
    # DCGAN init, as pix2pix and the reference use
    if isinstance(m, (nn.Conv2d, nn.Conv3d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
