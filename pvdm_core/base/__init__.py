"""The base layer, under everything: pvdm's typed errors (errors), atomic file writes (atomic),
the config schema and its one loader (config), the process group under torchrun (distributed),
the device and precision choice (device), logging and progress bars (progress). It imports no
other pvdm_core package.
"""
