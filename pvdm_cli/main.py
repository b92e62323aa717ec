"""`pvdm`: the command-line entry point. Each command parses, calls one core function, prints.

Importing this module builds the whole CLI (pvdm_cli/commands.py registers every command), so
`pvdm`, `python -m pvdm`, `python -m pvdm_cli` and `python -m pvdm_cli.main` are the same.
"""

from __future__ import annotations

from pvdm_cli.commands import app

__all__ = ["app", "main"]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
