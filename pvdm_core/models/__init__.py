"""The networks: the projected autoencoder (autoencoder), the triplane UNet (unet), the GAN
discriminator (discriminator) and I3D (i3d). One layer with pvdm_core.diffusion, on top of
pvdm_core.base only: a network reads no files (loading trained weights is pvdm_core.artifacts'
job, I3D's weight files pvdm_core.evaluation.metrics').
"""
