"""Gaussian diffusion on triplane latents: the noise schedule, forward process and training loss
(process), the plane ops and noise drawing (planes), the samplers (samplers). One layer with
pvdm_core.models, on top of pvdm_core.base only.
"""
