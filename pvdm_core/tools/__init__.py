"""Whole workflows over all the layers: `pvdm demo` (demo/) and `pvdm info` (info). The top layer:
no other pvdm_core module imports it; the front ends (pvdm_cli, pvdm) do.
"""
