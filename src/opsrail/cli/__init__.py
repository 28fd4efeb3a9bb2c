"""The ``opsrail`` command line."""

from opsrail.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
