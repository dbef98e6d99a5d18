"""``crmhost.sandbox``: what every CRM sandbox shares.

A sandbox is an in-memory ASGI app that behaves like its CRM on the wire, so plugins (and the
CRM's official SDK) can be run against it over real HTTP on 127.0.0.1. A CRM's sandbox subclasses
:class:`Sandbox`, adds its routes (:meth:`Sandbox.routes`) and decides its wire shapes by
overriding :meth:`~Sandbox.token_response`, :meth:`~Sandbox.oauth_error_response`,
:meth:`~Sandbox.rate_limited_response`, :meth:`~Sandbox.rate_limit_headers`,
:meth:`~Sandbox.server_error_response`, :meth:`~Sandbox.rate_tiers`, :meth:`~Sandbox.seed`,
:meth:`~Sandbox.wipe_data` and :meth:`~Sandbox.sign_webhook`.

Parts (each usable on its own):

- :class:`FaultSwitches` / :class:`FaultInjector`: shares of 429s, 5xx and held requests
  (timeouts), a revoked-token switch and added latency, drawn deterministically from a seed.
- :class:`ServerRateLimiter`: named :class:`RateTier` s of exact rolling :class:`Window` s,
  ``real`` (the CRM's default tier for our app kind) and ``off``; buckets may be exclusive of the
  default one (HubSpot search).
- :class:`CallStats`: API calls by ``"METHOD /route-template"`` since the last reset.
- :class:`OAuthServer`: authorization codes bound to client, redirect URI and PKCE S256
  challenge, single use and short-lived; access tokens that expire; refresh (optionally rotating);
  revocation; an HTML consent page with Allow and Deny that redirects back with ``code`` and
  ``state`` or ``error=access_denied``.
- :class:`WebhookSender`: delivers JSON or XML payloads to the configured URL, signed by the
  CRM's callback, retried with backoff on errors and non-2xx answers, every attempt recorded.
- :func:`running` / :func:`serve`: uvicorn on a free loopback port in a thread, or in the
  foreground; :func:`crmhost.sandbox.cli.run` finds a sandbox by its ``crmhost.sandboxes`` entry
  point, prints ``{"base_url", "client_id", "client_secret"}`` as one JSON line and serves it.

Admin endpoints, the same on every sandbox (never counted, faulted or rate limited):

- ``POST /_sandbox/seed/{object}``: a JSON list of records in the CRM's shape -> ``{"ids": [...]}``.
- ``POST /_sandbox/token``: ``{"scopes": [...], "expires_in": s}`` (both optional) -> a fresh
  access + refresh token in the CRM's token-response shape.
- ``POST /_sandbox/api-key`` -> ``{"api_key": ...}``: a fresh API key of the account, for CRMs
  that have them (:meth:`Sandbox.mint_api_key`; 501 elsewhere).
- ``POST /_sandbox/faults`` (``GET`` reads them): the :class:`FaultSwitches` fields to change.
- ``PUT /_sandbox/rate-limits`` (``GET`` reads it): ``{"tier": "real" | "<tier>" | "off"}``.
- ``GET /_sandbox/stats``: ``{"total", "rate_limited", "rate_limited_by", "errors", "by_status",
  "calls", "since"}``; ``rate_limited_by`` lists each 429's endpoint and the limit it hit.
- ``POST /_sandbox/reset``: stats, faults and rate-limit counts; ``?data=true`` also records.
- ``PUT /_sandbox/webhooks`` (``GET`` lists deliveries and attempts): ``{"url": ... | null}``.
- the inspector's ``/_sandbox/people``, ``/_sandbox/activities``, ``/_sandbox/enrollments``,
  ``/_sandbox/companies`` and ``/_sandbox/counts``: what a person sees and does in the CRM's UI,
  in canonical terms (:mod:`crmhost.sandbox.inspector`; each sandbox overrides ``inspect_*`` and
  ``user_*``).
"""

from crmhost.sandbox.app import Sandbox, SandboxInputError, WireResponse, json_response
from crmhost.sandbox.faults import Fault, FaultInjector, FaultSwitches
from crmhost.sandbox.inspector import ActivityView, PersonView
from crmhost.sandbox.limits import RateDecision, RateTier, ServerRateLimiter, Window
from crmhost.sandbox.oauth import AuthorizationCode, IssuedTokens, OAuthError, OAuthServer, pkce_challenge
from crmhost.sandbox.serve import running, serve
from crmhost.sandbox.stats import CallStats
from crmhost.sandbox.webhooks import Delivery, DeliveryAttempt, Signer, WebhookSender

__all__ = [
    "ActivityView",
    "AuthorizationCode",
    "CallStats",
    "Delivery",
    "DeliveryAttempt",
    "Fault",
    "FaultInjector",
    "FaultSwitches",
    "IssuedTokens",
    "OAuthError",
    "OAuthServer",
    "PersonView",
    "RateDecision",
    "RateTier",
    "Sandbox",
    "SandboxInputError",
    "ServerRateLimiter",
    "Signer",
    "WebhookSender",
    "Window",
    "WireResponse",
    "json_response",
    "pkce_challenge",
    "running",
    "serve",
]
