"""Tenant isolation, enforced once for every ORM query and flush.

A session must say whose data it touches: ``scoped_session_info(tenant_id)`` for one tenant,
or ``ALL_TENANTS`` for system work (workers fanning out, key rotation). Every ``SELECT`` of a
:class:`TenantScoped` table then gets ``tenant_id = :tenant`` added, and every flush checks new
and changed rows carry that tenant. A session with no scope that touches tenant data raises,
so forgetting the scope fails loudly instead of leaking.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from crmhost.db.base import TenantScoped

__all__ = ["ALL_TENANTS", "TENANT_KEY", "TenantScopeError", "install_tenant_scoping", "tenant_info"]

TENANT_KEY: Final = "crmhost_tenant"
ALL_TENANTS: Final = "*"


class TenantScopeError(RuntimeError):
    """Tenant data was touched by a session with no tenant scope, or across tenants."""


def tenant_info(tenant_id: str) -> dict[str, Any]:
    """The ``Session.info`` that scopes a session to ``tenant_id`` (or ``ALL_TENANTS``)."""
    return {TENANT_KEY: tenant_id}


def _touches_tenant_data(state: ORMExecuteState) -> bool:
    for mapper in state.all_mappers:
        if issubclass(mapper.class_, TenantScoped):
            return True
    return False


def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return
    if not _touches_tenant_data(state):
        return
    tenant = state.session.info.get(TENANT_KEY)
    if tenant is None:
        raise TenantScopeError("query on tenant data from a session without a tenant scope")
    if tenant == ALL_TENANTS:
        return
    state.statement = state.statement.options(
        with_loader_criteria(TenantScoped, lambda cls: cls.tenant_id == tenant, include_aliases=True)
    )


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
