"""Imports every table module so ``Base.metadata`` knows them all (migrations, tests)."""

from crmhost.db import models, platform, privacy, syncstate

__all__ = ["models", "platform", "privacy", "syncstate"]
