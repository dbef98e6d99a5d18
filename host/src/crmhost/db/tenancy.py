"""Tenant isolation, enforced once for every ORM query and flush.

A session must say whose data it touches: ``scoped_session_info(tenant_id)`` for one tenant,
or ``ALL_TENANTS`` for system work (workers fanning out, key rotation). Every ``SELECT`` of a
:class:`TenantScoped` table then gets ``tenant_id = :tenant`` added, and every flush checks new
and changed rows carry that tenant. A session with no scope that touches tenant data raises,
so forgetting the scope fails loudly instead of leaking.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import FromClause, event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql.util import find_tables

from crmhost.db.base import Base, TenantScoped

__all__ = ["ALL_TENANTS", "TENANT_KEY", "TenantScopeError", "install_tenant_scoping", "tenant_info"]

TENANT_KEY: Final = "crmhost_tenant"
ALL_TENANTS: Final = "*"


class TenantScopeError(RuntimeError):
    """Tenant data was touched by a session with no tenant scope, or across tenants."""


def tenant_info(tenant_id: str) -> dict[str, Any]:
    """The ``Session.info`` that scopes a session to ``tenant_id`` (or ``ALL_TENANTS``)."""
    return {TENANT_KEY: tenant_id}


def _tenant_tables() -> dict[str, FromClause]:
    tables: dict[str, FromClause] = {}
    for mapper in Base.registry.mappers:
        if issubclass(mapper.class_, TenantScoped):
            for table in mapper.tables:
                tables[table.name] = table
    return tables


#: a statement's shape (its SQLAlchemy cache key, bound values left out) -> its tenant tables
_FROMS: dict[Any, tuple[FromClause, ...]] = {}
#: shapes remembered at most; the host has a few hundred, so this only bounds odd callers
_FROMS_MAX = 4096


def _direct_tenant_tables(statement: Any) -> list[FromClause]:
    """Tenant tables named in the statement's own FROM (``select_from`` included).

    ``get_final_froms()`` compiles the statement (0.3 to 0.7 ms each, a fifth of the API
    process's time when it pushes to a CRM one record per call), and statements of one shape
    always have the same FROM list, so the answer is kept per shape. SQLAlchemy's cache key is
    what its own compiled cache uses to tell shapes apart; a statement without one (not
    cacheable) is looked at every time.
    """
    cache_key = statement._generate_cache_key()
    shape = cache_key.key if cache_key is not None else None
    if shape is not None and shape in _FROMS:
        return list(_FROMS[shape])
    tenant = _tenant_tables()
    found: list[FromClause] = []
    for from_ in statement.get_final_froms():
        for table in find_tables(from_, include_joins=False, include_aliases=False):
            canonical = tenant.get(getattr(table, "name", ""))
            if canonical is not None and canonical not in found:
                found.append(canonical)
    if shape is not None:
        if len(_FROMS) >= _FROMS_MAX:
            _FROMS.clear()
        _FROMS[shape] = tuple(found)
    return found


def _touches_tenant_data(state: ORMExecuteState, direct: list[FromClause]) -> bool:
    if direct:
        return True
    return any(issubclass(mapper.class_, TenantScoped) for mapper in state.all_mappers)


def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return
    direct = _direct_tenant_tables(state.statement) if state.is_select else []
    if not _touches_tenant_data(state, direct):
        return
    tenant = state.session.info.get(TENANT_KEY)
    if tenant is None:
        raise TenantScopeError("query on tenant data from a session without a tenant scope")
    if tenant == ALL_TENANTS:
        return
    statement: Any = state.statement.options(
        with_loader_criteria(TenantScoped, lambda cls: cls.tenant_id == tenant, include_aliases=True)
    )
    # loader criteria only reach ORM entities; a table named in select_from() (a count, a
    # core-style select) gets its filter here
    for table in direct:
        statement = statement.where(table.c.tenant_id == tenant)
    state.statement = statement


def _on_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    tenant = session.info.get(TENANT_KEY)
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        if not isinstance(obj, TenantScoped):
            continue
        if tenant is None:
            raise TenantScopeError(f"write of {type(obj).__name__} from a session without a tenant scope")
        if tenant != ALL_TENANTS and obj.tenant_id != tenant:
            raise TenantScopeError(f"write of {type(obj).__name__} for another tenant")


def install_tenant_scoping() -> None:
    """Install the listeners on every :class:`Session` (idempotent)."""
    if not event.contains(Session, "do_orm_execute", _on_execute):
        event.listen(Session, "do_orm_execute", _on_execute)
        event.listen(Session, "before_flush", _on_flush)
