"""Videos from a trained model: `pvdm sample` and `pvdm extend`, clip by clip (sample). May import
the layers below, up to pvdm_core.artifacts; never training (the helpers both need, such as
base.device.compiled, live lower).
"""
