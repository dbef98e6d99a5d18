"""Imports every table module so ``Base.metadata`` knows them all (migrations, tests)."""

from crmhost.db import models, platform, syncstate

__all__ = ["models", "platform", "syncstate"]
