"""What every CLI command shares: error handling, opening the store, the --json flag.

The storage stack (``opsrail.wiring``: SQLAlchemy, the services) is imported when a command opens the store or
meets an error, not when the CLI loads, so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import functools
import getpass
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from opsrail.cli._output import fail
from opsrail.model import OpsrailError
from opsrail.settings import Settings

if TYPE_CHECKING:
    from opsrail.wiring import Container

P = ParamSpec("P")
R = TypeVar("R")
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn Opsrail and configuration errors into one clear line and the error's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except OpsrailError as exc:
            fail(exc.detail, exc.hint)
            for error in exc.errors[:20]:
                fail(f"{error.path}: {error.message}")
            if "dead_letter_id" in exc.extra:
                fail(f"kept as dead letter {exc.extra['dead_letter_id']}")
            raise typer.Exit(exc.exit_code) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            name, *inside = [str(part) for part in first["loc"]] or ["?"]
            where = f"OPSRAIL_{name.upper()}" + (f" ({'.'.join(inside)})" if inside else "")
            message = str(first["msg"]).removeprefix("Value error, ")
            fail(f"invalid settings: {where}: {message}", "check OPSRAIL_* variables")
            raise typer.Exit(2) from None
        except SettingsError as exc:  # a list or map variable that is not JSON
            found = re.search(r'field "([^"]+)"', str(exc))
            where = f"OPSRAIL_{found.group(1).upper()}" if found else "an OPSRAIL_* variable"
            fail(
                f"invalid settings: {where} is not valid JSON",
                """lists and maps are written as JSON, e.g. OPSRAIL_RETENTION='{"events": "P365D"}'""",
            )
            raise typer.Exit(2) from None
        except Exception as exc:
            unavailable = database_unavailable(exc)
            if unavailable is None:
                raise
            fail(unavailable.detail, unavailable.hint)
            raise typer.Exit(unavailable.exit_code) from None

    return wrapper


def database_unavailable(exc: BaseException) -> OpsrailError | None:
    """The clear error for a database layer failure, or None when ``exc`` is something else.

    Only a command that loaded the storage stack can meet a database error, so nothing is imported for others.
    """
    if "opsrail.wiring" not in sys.modules:
        return None
    from opsrail.wiring import DatabaseError, translate_errors

    return translate_errors(exc) if isinstance(exc, DatabaseError) else None


@contextmanager
def opened(migrate: bool = False, *, action: str | None = None, actor: str | None = None) -> Iterator[Container]:
    """Open the store; with ``action``, first check the active policies allow it to ``actor`` (or the OS user).

    The CLI acts as a person: their roles come from the user directory (`opsrail users`); someone not in the
    directory acts as ``admin``, since whoever can run the CLI against the database could read it anyway.
    Actions whose answer depends on the resource (deciding a task) are checked by the service itself.
    """
    from opsrail.wiring import build, require_current_schema

    container = build(Settings(), migrate=migrate)
    try:
        if not migrate:
            require_current_schema(container)
        if action is not None:
            container.authorization.check(container.directory.local(actor or getpass.getuser()), action)
        yield container
    finally:
        container.close()
