"""The application's own PostgreSQL role: it reads and writes Opsrail's tables but may only read and append to the
audit log, and it owns nothing, so it can neither change audit rows nor drop or disable the triggers guarding them.

Two roles take part. The *owner* owns the tables: it runs ``opsrail db upgrade`` and, right after it, the grant
here. The *application role* is what the running server and workers log in as. It gets exactly:

* CONNECT on the database, USAGE (never CREATE) on the schema holding the tables;
* SELECT, INSERT, UPDATE, DELETE on every application table, except ``audit_log`` (SELECT, INSERT: appending takes
  ``pg_advisory_xact_lock``, which PUBLIC may run, reads the last entry and inserts the next) and
  ``alembic_version`` (SELECT: the schema check and the no-op upgrade at start read it);
* USAGE, SELECT on the sequences behind the auto-numbered columns (``events.seq``, ``run_log.seq``), not UPDATE
  (``setval``).

Nothing in the application updates, deletes or truncates ``audit_log``: retention touches ``events``,
``dead_letters`` and ``decision_records`` only, and those are ordinary read-write tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from opsrail.model import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from opsrail.storage._tables import metadata

if TYPE_CHECKING:
    from psycopg import sql

__all__ = [
    "AUDIT_TABLE",
    "VERSION_TABLE",
    "application_role_report",
    "expected_privileges",
    "grant_application_role",
]

AUDIT_TABLE = "audit_log"
VERSION_TABLE = "alembic_version"
Privileges = tuple[str, ...]
TABLE_PRIVILEGES: Privileges = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
SEQUENCE_PRIVILEGES: Privileges = ("USAGE", "SELECT", "UPDATE")
READ_WRITE: Privileges = ("SELECT", "INSERT", "UPDATE", "DELETE")
APPEND_ONLY: Privileges = ("SELECT", "INSERT")
READ_ONLY: Privileges = ("SELECT",)
SEQUENCE_USE: Privileges = ("USAGE", "SELECT")
# What the audit log's appender needs beyond its table (PUBLIC may run it unless someone revoked that).
ADVISORY_LOCK = "pg_catalog.pg_advisory_xact_lock(bigint)"
MASK = "***"

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RESERVED = frozenset({"public", "none", "all", "current_user", "current_role", "session_user", "user"})
_NAME_HINT = "use lowercase letters, digits and underscores, starting with a letter or _, at most 63, e.g. opsrail_app"
_OWNER_HINT = (
    "run this as the owner of the Opsrail tables (the role that runs `opsrail db upgrade`); "
    "creating the role also needs CREATEROLE"
)
# Serialises concurrent grants (two at once can fail with "tuple concurrently updated").
_GRANT_LOCK = 0x6F70_7372_6772_6E74  # "opsrgrnt"

_RELATIONS = sa.text(
    """
    SELECT c.relname::text AS name, 'table' AS kind, pg_get_userbyid(c.relowner)::text AS owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname::text = ANY(:tables)
    UNION ALL
    SELECT s.relname::text, 'sequence', pg_get_userbyid(s.relowner)::text
    FROM pg_class s
    JOIN pg_namespace n ON n.oid = s.relnamespace
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    JOIN pg_class t ON t.oid = d.refobjid AND t.relnamespace = n.oid
    WHERE n.nspname = current_schema() AND s.relkind = 'S' AND t.relname::text = ANY(:tables)
    ORDER BY 1
    """
)
# Whoever owns these can drop or disable the audit log's triggers, or rewrite the function they run.
_GUARDIANS = sa.text(
    """
    SELECT 'schema ' || quote_ident(n.nspname) AS what, pg_get_userbyid(n.nspowner)::text AS owner
    FROM pg_namespace n WHERE n.nspname = current_schema()
    UNION ALL
    SELECT 'database ' || quote_ident(d.datname), pg_get_userbyid(d.datdba)::text
    FROM pg_database d WHERE d.datname = current_database()
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure::text, pg_get_userbyid(p.proowner)::text
    FROM pg_trigger t
    JOIN pg_proc p ON p.oid = t.tgfoid
    JOIN pg_class c ON c.oid = t.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relname = :audit AND NOT t.tgisinternal
    """
)
_ROLE = sa.text(
    "SELECT rolsuper, rolcreaterole, rolcreatedb, rolinherit, rolcanlogin, rolreplication, rolbypassrls "
    "FROM pg_roles WHERE rolname = :role"
)
_OWNED = sa.text(
    """
    SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS what
    FROM pg_shdepend d
    WHERE d.refclassid = 'pg_authid'::regclass
      AND d.refobjid = (SELECT oid FROM pg_roles WHERE rolname = :role)
      AND d.deptype = 'o'
      AND d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
    ORDER BY 1
    """
)
_MEMBER = sa.text("SELECT pg_has_role(:role, :owner, 'MEMBER')")
_TABLE_GRANTS = sa.text(
    """
    SELECT c.relname::text AS name, p.privilege
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN unnest(CAST(:privileges AS text[])) WITH ORDINALITY AS p(privilege, position)
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname::text = ANY(:names)
      AND has_table_privilege(:role, c.oid, p.privilege)
    ORDER BY c.relname, p.position
    """
)
_SEQUENCE_GRANTS = sa.text(
    """
    SELECT c.relname::text AS name, p.privilege
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN unnest(CAST(:privileges AS text[])) WITH ORDINALITY AS p(privilege, position)
    WHERE n.nspname = current_schema() AND c.relkind = 'S' AND c.relname::text = ANY(:names)
      AND has_sequence_privilege(:role, c.oid, p.privilege)
    ORDER BY c.relname, p.position
    """
)
_PLACE_GRANTS = sa.text(
    """
    SELECT has_database_privilege(:role, current_database(), 'CONNECT') AS connect,
           has_database_privilege(:role, current_database(), 'CREATE') AS create_schemas,
           has_database_privilege(:role, current_database(), 'TEMPORARY') AS temporary,
           has_schema_privilege(:role, current_schema(), 'USAGE') AS usage,
           has_schema_privilege(:role, current_schema(), 'CREATE') AS create_tables,
           has_function_privilege(:role, :lock, 'EXECUTE') AS advisory_lock
    """
)


def expected_privileges() -> dict[str, tuple[str, ...]]:
    """Every application table (``alembic_version`` included) and the privileges the application role needs on it."""
    tables = {table.name: READ_WRITE for table in metadata.sorted_tables}
    tables[AUDIT_TABLE] = APPEND_ONLY
    tables[VERSION_TABLE] = READ_ONLY
    return dict(sorted(tables.items()))


@dataclass
class _Place:
    """Where the tables live, as the connection sees it: database, schema, tables and sequences with their owners."""

    database: str
    schema: str
    tables: dict[str, str] = field(default_factory=dict)
    sequences: dict[str, str] = field(default_factory=dict)
    guardians: dict[str, str] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [name for name in expected_privileges() if name not in self.tables]

    @property
    def owners(self) -> dict[str, list[str]]:
        """Each owning role and what it owns (tables, sequences, schema, database, trigger functions)."""
        owned: dict[str, list[str]] = {}
        for kind, items in (("table", self.tables), ("sequence", self.sequences)):
            for name, owner in items.items():
                owned.setdefault(owner, []).append(f"{kind} {name}")
        for what, owner in self.guardians.items():
            owned.setdefault(owner, []).append(what)
        return owned


def _require_postgresql(engine: sa.Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise InvalidInput(
            f"database roles exist on PostgreSQL only; this database is {engine.dialect.name}",
            hint="SQLite has no roles: protect the database file with file permissions, "
            "or run on PostgreSQL (OPSRAIL_DATABASE_URL=postgresql+psycopg://owner@host/db)",
        )


def _check_name(role: str) -> None:
    if not _ROLE_NAME.fullmatch(role):
        raise InvalidInput(f"{role!r} is not a plain role name", hint=_NAME_HINT)
    if role in _RESERVED or role.startswith("pg_"):
        raise InvalidInput(f"{role!r} is reserved by PostgreSQL", hint=_NAME_HINT)


def _place(conn: sa.Connection) -> _Place:
    database, schema = conn.execute(sa.text("SELECT current_database(), current_schema()")).one()
    if schema is None:
        raise Unavailable(
            "no schema is selected: the search_path names no existing schema",
            hint="check the owner's search_path, then run `opsrail db upgrade`",
        )
    place = _Place(str(database), str(schema))
    for name, kind, owner in conn.execute(_RELATIONS, {"tables": list(expected_privileges())}):
        (place.tables if kind == "table" else place.sequences)[name] = owner
    place.guardians = {str(what): str(owner) for what, owner in conn.execute(_GUARDIANS, {"audit": AUDIT_TABLE})}
    return place


def _role_attributes(conn: sa.Connection, role: str) -> dict[str, bool] | None:
    row = conn.execute(_ROLE, {"role": role}).mappings().first()
    if row is None:
        return None
    names = {
        "rolsuper": "superuser",
        "rolcreaterole": "createrole",
        "rolcreatedb": "createdb",
        "rolinherit": "inherit",
        "rolcanlogin": "login",
        "rolreplication": "replication",
        "rolbypassrls": "bypassrls",
    }
    return {label: bool(row[column]) for column, label in names.items()}


def _owned(conn: sa.Connection, role: str) -> list[str]:
    return [str(what) for (what,) in conn.execute(_OWNED, {"role": role})]


def _acts_as_owner(conn: sa.Connection, role: str, place: _Place) -> dict[str, list[str]]:
    """The owners (of tables, sequences, schema, database, trigger functions) ``role`` is or may ``SET ROLE`` to."""
    return {
        owner: things
        for owner, things in sorted(place.owners.items())
        if conn.execute(_MEMBER, {"role": role, "owner": owner}).scalar()
    }


def _dangers(attributes: dict[str, bool], owned: list[str], acts_as: dict[str, list[str]]) -> list[str]:
    """What would let the role get round the audit log's guard, whatever it is granted."""
    problems = []
    if attributes["superuser"]:
        problems.append("it is a superuser")
    if attributes["createrole"]:
        problems.append("it has CREATEROLE (it could make itself a member of the owner)")
    if owned:
        problems.append(f"it owns {', '.join(owned)}")
    for owner, things in acts_as.items():
        problems.append(f"it is or may become {owner}, the owner of {', '.join(things)}")
    return problems


def _privileges(
    conn: sa.Connection, query: sa.TextClause, role: str, names: list[str], privileges: tuple[str, ...]
) -> dict[str, list[str]]:
    held: dict[str, list[str]] = {name: [] for name in sorted(names)}
    for name, privilege in conn.execute(query, {"role": role, "names": names, "privileges": list(privileges)}):
        held[name].append(str(privilege))
    return held


def _report(conn: sa.Connection, role: str) -> dict[str, Any]:
    place = _place(conn)
    expected = expected_privileges()
    report: dict[str, Any] = {"role": role, "database": place.database, "schema": place.schema}
    problems: list[str] = [f"table {name} is missing: run `opsrail db upgrade`" for name in place.missing]
    attributes = _role_attributes(conn, role)
    if attributes is None:
        return {**report, "exists": False, "ok": False, "problems": [f"role {role} does not exist", *problems]}
    owned = _owned(conn, role)
    acts_as = _acts_as_owner(conn, role, place)
    problems[:0] = _dangers(attributes, owned, acts_as)
    if not attributes["login"]:
        problems.append("it cannot log in (NOLOGIN)")
    grants = conn.execute(_PLACE_GRANTS, {"role": role, "lock": ADVISORY_LOCK}).mappings().one()
    if not grants["connect"]:
        problems.append(f"it lacks CONNECT on database {place.database}")
    if grants["create_schemas"]:
        problems.append(f"it may create schemas in database {place.database}")
    if not grants["usage"]:
        problems.append(f"it lacks USAGE on schema {place.schema}")
    if grants["create_tables"]:
        problems.append(f"it may create objects in schema {place.schema}")
    if not grants["advisory_lock"]:
        problems.append(f"it may not run {ADVISORY_LOCK}, which appending to the audit log takes")
    tables = _privileges(conn, _TABLE_GRANTS, role, list(place.tables), TABLE_PRIVILEGES)
    for name, held in tables.items():
        lacking = [p for p in expected[name] if p not in held]
        extra = [p for p in held if p not in expected[name]]
        if lacking:
            problems.append(f"it lacks {', '.join(lacking)} on {name}")
        if extra:
            problems.append(f"it holds {', '.join(extra)} on {name}, beyond {', '.join(expected[name])}")
    sequences = _privileges(conn, _SEQUENCE_GRANTS, role, list(place.sequences), SEQUENCE_PRIVILEGES)
    for name, held in sequences.items():
        lacking = [p for p in SEQUENCE_USE if p not in held]
        extra = [p for p in held if p not in SEQUENCE_USE]
        if lacking:
            problems.append(f"it lacks {', '.join(lacking)} on sequence {name}")
        if extra:
            problems.append(f"it holds {', '.join(extra)} on sequence {name}, beyond {', '.join(SEQUENCE_USE)}")
    return {
        **report,
        "exists": True,
        "ok": not problems,
        "problems": problems,
        "attributes": attributes,
        "owns": owned,
        "acts_as_owner": sorted(acts_as),
        "database_privileges": {
            "connect": bool(grants["connect"]),
            "create": bool(grants["create_schemas"]),
            "temporary": bool(grants["temporary"]),
        },
        "schema_privileges": {"usage": bool(grants["usage"]), "create": bool(grants["create_tables"])},
        "advisory_lock": bool(grants["advisory_lock"]),
        "tables": {name: {"holds": held, "expected": list(expected[name])} for name, held in tables.items()},
        "sequences": {name: {"holds": held, "expected": list(SEQUENCE_USE)} for name, held in sequences.items()},
    }


def application_role_report(engine: sa.Engine, role: str) -> dict[str, Any]:
    """What ``role`` may do with Opsrail's tables, compared with what the application role should hold.

    The report (plain JSON values) names the database and schema, the role's attributes, what it owns in this
    database (``owns``) and which owners it is or may become (``acts_as_owner``), its database and schema
    privileges, and for each table and sequence the privileges it ``holds`` (``has_table_privilege``, so grants to
    PUBLIC count) next to the ``expected`` ones. ``problems`` lists every difference; ``ok`` is true when there is
    none. Run it as the owner (or any role that may read the catalogs).
    """
    _require_postgresql(engine)
    _check_name(role)
    with engine.connect() as conn:
        return _report(conn, role)


def grant_application_role(
    engine: sa.Engine, role: str, *, password: str | None = None, create: bool = True
) -> list[str]:
    """Make ``role`` the application role: able to run Opsrail, unable to change or remove audit entries.

    Run it on the owner's connection (the role that owns the tables and runs ``opsrail db upgrade``). It creates the
    role when it is missing (``LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT``, with ``password`` when given;
    ``create=False`` refuses instead) and sets the password of an existing role when one is given. The password is
    sent only as the verifier libpq computes (SCRAM-SHA-256 by default), never in clear.

    An existing role is refused when it could get round the guard whatever it is granted: a superuser, a role with
    CREATEROLE, one that owns anything in this database, or one that is (or may ``SET ROLE`` to) an owner of the
    tables, their schema, the database or the audit trigger's function.

    The role's privileges are then replaced with exactly those listed in the module docstring, and UPDATE, DELETE,
    TRUNCATE, REFERENCES and TRIGGER on ``audit_log`` are revoked from the role and from PUBLIC; CREATE on the schema
    is revoked from PUBLIC too (PostgreSQL 15 and later do not grant it; older servers did). Everything happens in
    one transaction, which re-checks the result with :func:`application_role_report` before committing and rolls
    back, raising :class:`Conflict`, if anything differs; a running application never sees a half-made role.
    Running it again is harmless.

    ``ALTER DEFAULT PRIVILEGES`` is deliberately not used: migrations run as the owner, and after every upgrade the
    owner runs this grant again so the role can use new tables and sequences.

    Returns the statements executed that changed roles or privileges, as text, the password masked as ``***``.
    """
    _require_postgresql(engine)
    _check_name(role)
    if password is not None and (not password or "\x00" in password):
        raise InvalidInput("the password is empty or holds a NUL character", hint="put one line of text in the file")
    import psycopg
    from psycopg import sql

    executed: list[str] = []
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        if not isinstance(raw, psycopg.Connection):
            raise InvalidInput("granting needs the psycopg driver", hint="use a postgresql+psycopg:// URL")

        def run(statement: sql.Composed, shown: sql.Composed | None = None) -> None:
            text = (shown or statement).as_string(raw)
            try:
                raw.execute(statement)
            except psycopg.Error as exc:
                message = exc.diag.message_primary or str(exc)
                if exc.sqlstate == "42501":
                    raise Forbidden(f"not allowed: {text}: {message}", hint=_OWNER_HINT) from None
                raise Unavailable(f"{text} failed: {message}", hint=_OWNER_HINT) from None
            executed.append(text)

        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _GRANT_LOCK})
        place = _place(conn)
        if place.missing:
            raise Unavailable(
                f"the Opsrail tables are not all in schema {place.schema}: {', '.join(place.missing)} missing",
                hint="run `opsrail db upgrade` as the owner first, with the same search_path",
            )
        who = sql.Identifier(role)
        attributes = _role_attributes(conn, role)
        verifier = None
        if password is not None:
            verifier = raw.pgconn.encrypt_password(password.encode(), role.encode()).decode("ascii")
        if attributes is None:
            if not create:
                raise NotFound(f"role {role} does not exist", hint="let the grant create it, or create it first")
            make = sql.SQL("CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION")
            if verifier is None:
                run(make.format(who))
            else:
                with_password = sql.SQL("{} PASSWORD {}").format(make.format(who), sql.Literal(verifier))
                run(with_password, sql.SQL("{} PASSWORD {}").format(make.format(who), sql.Literal(MASK)))
        else:
            dangers = _dangers(attributes, _owned(conn, role), _acts_as_owner(conn, role, place))
            if dangers:
                raise InvalidInput(
                    f"role {role} cannot be the application role: {'; '.join(dangers)}",
                    hint="pick a new role name (it is created with nothing), or take these rights from the role first",
                )
            if verifier is not None:
                change = sql.SQL("ALTER ROLE {} WITH PASSWORD {}")
                run(change.format(who, sql.Literal(verifier)), change.format(who, sql.Literal(MASK)))

        database, schema = sql.Identifier(place.database), sql.Identifier(place.schema)
        run(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(database, who))
        run(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, who))
        run(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(schema))
        run(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(schema, who))
        run(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, who))

        def names(items: list[str]) -> sql.Composable:
            return sql.SQL(", ").join(sql.Identifier(place.schema, item) for item in items)

        expected = expected_privileges()
        run(sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(names(list(expected)), who))
        spelled = {
            READ_WRITE: sql.SQL("SELECT, INSERT, UPDATE, DELETE"),
            APPEND_ONLY: sql.SQL("SELECT, INSERT"),
            READ_ONLY: sql.SQL("SELECT"),
        }
        for rights, granted in spelled.items():
            tables = [name for name, wanted in expected.items() if wanted == rights]
            run(sql.SQL("GRANT {} ON TABLE {} TO {}").format(granted, names(tables), who))
        run(
            sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE {} FROM PUBLIC, {}").format(
                names([AUDIT_TABLE]), who
            )
        )
        if place.sequences:
            sequences = names(list(place.sequences))
            run(sql.SQL("REVOKE ALL ON SEQUENCE {} FROM {}").format(sequences, who))
            run(sql.SQL("GRANT USAGE, SELECT ON SEQUENCE {} TO {}").format(sequences, who))

        report = _report(conn, role)
        if not report["ok"]:
            raise Conflict(
                f"after granting, role {role} still differs from the application role: {'; '.join(report['problems'])}",
                hint="nothing was changed; fix these as the owner (see `opsrail db grant-app-role ROLE --check`)",
            )
    return executed
