"""Constants shared by the CLI-level tests."""

# A smaller-than-tiny autoencoder and dataset, so training runs take seconds on CPU.
SMALL = ["--set", "ae.dim=32", "--set", "ae.depth=1", "--set", "ae.heads=2", "--set", "ae.proj_heads=2",
         "--set", "ae.proj_mlp_dim=64", "--set", "data.frames=8", "--set", "data.resolution=16",
         "--set", "data.synthetic_train=16", "--set", "data.synthetic_test=4"]
