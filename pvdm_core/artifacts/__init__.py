"""Trained artifacts: checkpoint kinds, model factories and the loaders of a trained autoencoder and
diffusion model (load), and the public release's checkpoints turned into pvdm runs (convert). A
checkpoint's config builds its model, so later commands need only the checkpoint. May import the
layers below: pvdm_core.base, pvdm_core.models and pvdm_core.diffusion, pvdm_core.io,
pvdm_core.data.
"""
