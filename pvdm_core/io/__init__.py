"""Files in and out: videos (video_io), contact sheets (contact_sheet), training-curve plots (plot),
downloaded weight files (weights), checkpoints and their one safe loader (checkpoint), run
folders and metrics logs (runs), TensorBoard (tensorboard_log). May import the layers below:
pvdm_core.base, and pvdm_core.models and pvdm_core.diffusion (which none of these needs).
"""
