"""Registers the pipeline commands (train-ae, encode, train-diffusion, sample, extend, eval-fvd)."""
