"""pvdm core library: PVDM (Yu et al., CVPR 2023) models, data, training, sampling and metrics.

Its subpackages are layers, lowest first: base; models and diffusion; io; data; artifacts;
generate; evaluation; training; tools. A module imports only its own layer and those below it
(tests/test_imports.py holds the order and checks every import); each subpackage's docstring
says what it holds. This file holds the version only and imports nothing.
"""

__version__ = "0.1.0"
