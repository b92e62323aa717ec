"""`pvdm info`: the device chosen and why, versions, weight locations, a preset's model sizes."""

from __future__ import annotations

from pvdm_cli.app import app
from pvdm_cli.options import ConfigOpt, DeviceOpt, JsonOpt, OptPresetOpt, SetOpt, emit, guarded
from pvdm_core.base.config import load_config


@app.command()
@guarded
def info(preset: OptPresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
         device: DeviceOpt = None, as_json: JsonOpt = False) -> None:
    """Device chosen and why, versions, AMP dtype, weight locations; model sizes of a preset."""
    from pvdm_core.tools.info import environment_info, model_sizes

    result = environment_info(device)
    if preset is not None or config is not None:
        cfg = load_config(preset or "tiny", config, set_ or [])
        result.update(preset=cfg.preset, **model_sizes(cfg))
    emit(result, as_json)
