"""The canonical data model: the only shapes plugins and the host exchange."""

from crmhost.models.activity import (
    Activity,
    ActivityResult,
    EmailActivity,
    EmailEventKind,
    WorkflowTrigger,
)
from crmhost.models.auth import (
    ApiKeyGrant,
    AuthKind,
    AuthorizationCodeGrant,
    Credentials,
    Grant,
    RefreshGrant,
)
from crmhost.models.changes import Change, ChangeOp, ChangePage
from crmhost.models.info import (
    Capability,
    CrmInfo,
    OAuthSpec,
    RateLimitPolicy,
    SettingSpec,
    WebhookRouting,
)
from crmhost.models.mapping import (
    FieldDirection,
    FieldMapping,
    MappingDirection,
    MappingType,
    RemoteField,
)
from crmhost.models.records import (
    CONTACT_FIELDS,
    EVENT_FIELDS,
    Company,
    Contact,
    ObjectType,
    Record,
    RecordBatch,
    RecordOp,
    RecordResult,
)
from crmhost.models.webhooks import WebhookReply, WebhookRequest, WebhookResult, WebhookSubscription

__all__ = [
    "CONTACT_FIELDS",
    "EVENT_FIELDS",
    "Activity",
    "ActivityResult",
    "ApiKeyGrant",
    "AuthKind",
    "AuthorizationCodeGrant",
    "Capability",
    "Change",
    "ChangeOp",
    "ChangePage",
    "Company",
    "Contact",
    "Credentials",
    "CrmInfo",
    "EmailActivity",
    "EmailEventKind",
    "FieldDirection",
    "FieldMapping",
    "Grant",
    "MappingDirection",
    "MappingType",
    "OAuthSpec",
    "ObjectType",
    "RateLimitPolicy",
    "Record",
    "RecordBatch",
    "RecordOp",
    "RecordResult",
    "RefreshGrant",
    "RemoteField",
    "SettingSpec",
    "WebhookReply",
    "WebhookRequest",
    "WebhookResult",
    "WebhookRouting",
    "WebhookSubscription",
    "WorkflowTrigger",
]
