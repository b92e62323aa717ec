"""`python -m pvdm` runs the command line (the code lives in pvdm_cli and pvdm_core)."""
