"""pvdm core library: PVDM (Yu et al., CVPR 2023) models, data, training, sampling and metrics."""

__version__ = "0.1.0"
