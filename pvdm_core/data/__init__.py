"""Training data: clip datasets over video folders and the embedded synthetic set (datasets), the
moving-shapes generator (synthetic), class labels (labels). May import the layers below:
pvdm_core.base, pvdm_core.models and pvdm_core.diffusion, pvdm_core.io.
"""
