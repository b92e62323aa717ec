"""Judging videos: Fréchet Video Distance (fvd/) and the other measures (metrics/: I3D weights,
the shape judge, the clip-boundary jump). May import the layers below, up to pvdm_core.generate
(fvd.tracking samples the EMA model during diffusion training).
"""
