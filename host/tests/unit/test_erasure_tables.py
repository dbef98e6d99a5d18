"""An erasure reaches every table that names a contact."""

from __future__ import annotations

import crmhost.db.tables  # noqa: F401  (registers every table on Base.metadata)
from crmhost.db.base import Base
from crmhost.services.privacy import CONTACT_TABLES


def test_every_table_naming_a_contact_is_erased_with_it() -> None:
    naming = {t.name for t in Base.metadata.sorted_tables if "contact_id" in t.columns}
    assert naming == {model.__tablename__ for model in CONTACT_TABLES}
