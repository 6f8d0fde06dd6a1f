"""jaxlm's experiment configs, installed as the package `jaxlm.configs`.

Each file is one experiment with `get_config(arg=None)`; its docstring gives
the command and the measured result. `common.py` holds the shared defaults.
"""
