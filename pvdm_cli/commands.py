"""Every `pvdm` command, registered on the app by importing its module: adding a command is one
line here. Command modules import `app` from pvdm_cli.app, never from here or pvdm_cli.main."""

from pvdm_cli.app import app
from pvdm_cli import cmd_presets  # noqa: F401  pvdm presets [show NAME]
from pvdm_cli import cmd_info  # noqa: F401  pvdm info
from pvdm_cli import cmd_plan  # noqa: F401  pvdm plan
from pvdm_cli import cmd_synth  # noqa: F401  pvdm synth
from pvdm_cli import cmd_train_ae  # noqa: F401  pvdm train-ae
from pvdm_cli import cmd_encode  # noqa: F401  pvdm encode
from pvdm_cli import cmd_train_diffusion  # noqa: F401  pvdm train-diffusion
from pvdm_cli import cmd_sample  # noqa: F401  pvdm sample
from pvdm_cli import cmd_extend  # noqa: F401  pvdm extend
from pvdm_cli import cmd_eval_fvd  # noqa: F401  pvdm eval-fvd
from pvdm_cli import cmd_convert  # noqa: F401  pvdm convert
from pvdm_cli import cmd_plot  # noqa: F401  pvdm plot
from pvdm_cli import cmd_demo  # noqa: F401  pvdm demo

__all__ = ["app"]
