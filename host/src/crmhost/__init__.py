"""crmhost: a plugin host that syncs an email-marketing platform with its customers' CRMs.

A plugin needs only ``from crmhost import hookimpl``.
"""

from crmhost.markers import hookimpl

__all__ = ["HOOKSPEC_VERSION", "__version__", "hookimpl"]

__version__ = "0.1.0"
#: The contract version; plugins pin ``crmhost>=X,<X+1`` against the major part.
HOOKSPEC_VERSION = "1.0"
