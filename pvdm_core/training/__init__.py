"""Training: the toolbox both loops use (toolbox), the losses and the GAN phase (losses, gan), the
autoencoder and diffusion loops (train_ae, train_diffusion), the latent cache (encode), what a
run reports (reporting), and the planner's step cost and memory plan (step_cost, memory_plan).
May import every layer below, evaluation included (in-training FVD).
"""
