"""The demo's deterministic scenario: who exists where, which edits conflict, which events happen.

Everything the demo checks at the end is computed here from the same inputs (sizes and a
seed), never typed in as numbers: the union of contacts every side must end with, the value
each conflicting field must settle on under the integration's strategy, and the counters,
flags and activities the email events must produce.

Sets of contacts (by email, canonical field names):

- ``platform``: the platform's own contacts.
- ``overlap[crm]``: platform contacts the CRM also has, with conflicting edits. The first
  half was edited in the CRM *before* the platform's write (``old``: the platform is newer),
  the second half *after* it (``new``: the CRM is newer), so ``newest_wins`` goes both ways.
- ``shared``: contacts every CRM has and the platform does not, with identical values.
- ``only[crm]``: contacts only that CRM has.

After the initial two-way sync every side holds the union, with the values below.

Nothing here names a CRM: what differs between them comes from each plugin's ``CrmInfo``
(:meth:`CrmTraits.of`): the fields its default mapping syncs both ways decide which fields its
records carry and disagree on; its share of the CRM contacts is the caller's choice.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from crmhost.models import Capability, CrmInfo, FieldDirection, ObjectType
from crmhost.sync.conflicts import FIELD_LEVEL, field_strategy

__all__ = [
    "EVENT_KINDS",
    "STRATEGIES",
    "CrmPlan",
    "CrmTraits",
    "Event",
    "Person",
    "Scenario",
    "build",
    "winner",
]

#: the share of events of each kind (sent, opened, clicked, replied, bounced, unsubscribed)
EVENT_KINDS: tuple[tuple[str, float], ...] = (
    ("sent", 0.45),
    ("opened", 0.30),
    ("clicked", 0.15),
    ("replied", 0.05),
    ("bounced", 0.03),
    ("unsubscribed", 0.02),
)

#: the integration-level strategies the CRMs get in turn (in slug order): the roadmap's
#: field_level example (names crm_wins, company newest_wins) and plain newest_wins
STRATEGIES: tuple[str, ...] = (FIELD_LEVEL, "newest_wins")


@dataclass(frozen=True)
class CrmTraits:
    """What the scenario needs to know of one CRM.

    Attributes:
        slug: the plugin's slug.
        two_way: the scenario's person fields its default contact mapping syncs both ways.
        pushed: every canonical contact field its default mapping writes to the CRM.
        logs_activity: it logs email activity (``Capability.PUSH_ACTIVITY``).
        share: its weight in splitting the CRM contacts between the CRMs.
    """

    slug: str
    two_way: tuple[str, ...]
    pushed: frozenset[str] = frozenset()
    logs_activity: bool = True
    share: float = 1.0

    @classmethod
    def of(cls, info: CrmInfo, share: float = 1.0) -> CrmTraits:
        """The traits of the CRM ``info`` describes."""
        person = {f.name for f in fields(Person)}
        both = {
            m.local
            for m in info.default_mapping
            if m.object is ObjectType.CONTACT and m.direction is FieldDirection.BOTH and m.local in person
        }
        pushed = frozenset(
            m.local
            for m in info.default_mapping
            if m.object is ObjectType.CONTACT and m.direction in (FieldDirection.BOTH, FieldDirection.TO_CRM)
        )
        return cls(
            slug=info.slug,
            two_way=tuple(f.name for f in fields(Person) if f.name in both),
            pushed=pushed,
            logs_activity=Capability.PUSH_ACTIVITY in info.capabilities,
            share=share,
        )

    @property
    def conflict_fields(self) -> tuple[str, str]:
        """The two fields its overlapping records disagree on.

        The first name and the company, or the job title where its persons have no company.
        """
        return "first_name", "company" if "company" in self.two_way else "job_title"


@dataclass(frozen=True)
class Person:
    """A contact's canonical values (only the fields the scenario uses)."""

    email: str
    first_name: str
    last_name: str
    company: str | None = None
    job_title: str | None = None
    city: str | None = None
    phone: str | None = None

    def values(self) -> dict[str, Any]:
        """The canonical field values, ``None`` left out."""
        out = {
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "company": self.company,
            "job_title": self.job_title,
            "city": self.city,
            "phone": self.phone,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class Event:
    """One email event the platform reports."""

    id: str
    email: str
    kind: str
    occurred_at: datetime
    campaign_id: str
    campaign_name: str
    subject: str
    url: str | None = None

    def to_api(self) -> dict[str, Any]:
        """The event as ``POST /v1/events`` takes it."""
        body: dict[str, Any] = {
            "id": self.id,
            "email": self.email,
            "kind": self.kind,
            "occurred_at": self.occurred_at.isoformat(),
            "campaign_id": self.campaign_id,
            "campaign_name": self.campaign_name,
            "subject": self.subject,
        }
        if self.url is not None:
            body["url"] = self.url
        return body


@dataclass
class CrmPlan:
    """What one CRM holds before the sync."""

    slug: str
    strategy: str
    traits: CrmTraits
    old: list[Person] = field(default_factory=list)  # overlaps edited before the platform's write
    new: list[Person] = field(default_factory=list)  # overlaps edited after it
    shared: list[Person] = field(default_factory=list)
    only: list[Person] = field(default_factory=list)

    @property
    def overlap(self) -> list[Person]:
        """Records the platform also has."""
        return self.old + self.new

    @property
    def seeded_first(self) -> list[Person]:
        """Seeded before the platform's contacts arrive."""
        return self.old + self.shared + self.only

    @property
    def size(self) -> int:
        """Records seeded in this CRM."""
        return len(self.old) + len(self.new) + len(self.shared) + len(self.only)


@dataclass
class Scenario:
    """Inputs and expected outcomes of one demo run."""

    seed: int
    platform: list[Person]
    crms: dict[str, CrmPlan]
    events: list[Event]
    hot: list[str]  # contacts whose events push the lead score past the workflow threshold

    # ------------------------------------------------------------------ expected outcomes

    def expected_people(self) -> dict[str, dict[str, Any]]:
        """Email -> the canonical values every side must end with (two-way fields)."""
        out: dict[str, dict[str, Any]] = {p.email: p.values() for p in self.platform}
        by_email = {p.email: p for p in self.platform}
        for plan in self.crms.values():
            for person in plan.shared + plan.only:
                out.setdefault(person.email, person.values())
            for newer, group in (("platform", plan.old), ("crm", plan.new)):
                for person in group:
                    mine = by_email[person.email]
                    for name in plan.traits.conflict_fields:
                        strategy = field_strategy(plan.strategy, name, {})
                        out[person.email][name] = winner(
                            strategy, getattr(mine, name), getattr(person, name), newer=newer
                        )
        return out

    def union_size(self) -> int:
        """How many contacts every side holds after the sync."""
        return len(self.expected_people())

    def companies_written(self, slug: str, held: Collection[str] | None = None) -> tuple[int, int]:
        """Company names new to ``slug``'s CRM, and contacts linked to a company there.

        The initial syncs write every contact of the union that the CRM does not hold (and its
        overlaps edited before the platform's write); each one with a company is linked to it,
        and a company is created unless the CRM holds one of that name. Names compare trimmed and
        case-insensitively, as the CRMs compare them. ``held``: the names of the company records
        the CRM holds before the sync (its sandbox's ``GET /_sandbox/companies``); without it,
        the names its own records carry (a CRM whose records name their company as a record).
        ``(0, 0)`` for a CRM whose default mapping does not write the company.
        """
        plan = self.crms[slug]
        if "company" not in plan.traits.pushed:
            return 0, 0
        linked = self._linked_initially(slug, self.expected_people())
        return len({_name_key(name) for name in linked} - self._held(slug, held)), len(linked)

    def _held(self, slug: str, held: Collection[str] | None) -> set[str]:
        if held is not None:
            return {_name_key(name) for name in held}
        plan = self.crms[slug]
        return {_name_key(p.company) for p in plan.seeded_first + plan.new if p.company}

    def _linked_initially(self, slug: str, people: dict[str, dict[str, Any]]) -> list[str]:
        """The company of each contact the initial syncs write to ``slug``'s CRM (with one).

        ``people``: :meth:`expected_people`, which the callers need too.
        """
        plan = self.crms[slug]
        kept = {p.email for p in plan.new + plan.shared + plan.only}
        return [
            str(values["company"])
            for email, values in people.items()
            if email not in kept and values.get("company")
        ]

    def changed_by_events(self, events: Sequence[Event] | None = None) -> set[str]:
        """Emails of the contacts an event changes (any kind but ``sent``): each one is pushed.

        ``events``: a part of the scenario's events (all of them by default).
        """
        return {e.email for e in (self.events if events is None else events) if e.kind != "sent"}

    def linked_by_events(self, slug: str) -> int:
        """Contacts of ``slug``'s own that the events phase writes there first, with a company.

        The initial syncs never write a CRM's own records that the platform agrees with; an
        event that changes a contact (any kind but ``sent``) does, and links it to its company.
        """
        return sum(linked for linked, _ in self.companies_by_events(slug, [range(0, len(self.events))], 1))

    def companies_by_events(
        self, slug: str, windows: Sequence[range], chunk: int, held: Collection[str] | None = None
    ) -> list[tuple[int, int]]:
        """(contacts linked to a company, company names created) first due in each window.

        ``windows`` group the requests of ``chunk`` events (:func:`crmhost.demo.report.latency_windows`).
        A contact of ``slug``'s own is linked in the window of its first changing event; its
        company is created there unless the CRM holds that name by then: held before the sync
        (``held``, as for :meth:`companies_written`), written by the initial syncs, or created
        in an earlier window. All zeros for a CRM whose default mapping does not write the company.
        """
        plan = self.crms[slug]
        if "company" not in plan.traits.pushed:
            return [(0, 0)] * len(windows)
        people = self.expected_people()
        own = {p.email for p in plan.new + plan.shared + plan.only}
        have = self._held(slug, held) | {_name_key(name) for name in self._linked_initially(slug, people)}
        written: set[str] = set()
        out = []
        for window in windows:
            linked, created = 0, set()
            events = self.events[window.start * chunk : window.stop * chunk]
            for email in sorted(self.changed_by_events(events) & own - written):
                written.add(email)
                company = people.get(email, {}).get("company")
                if company:
                    linked += 1
                    created.add(_name_key(str(company)))
            created -= have
            have |= created
            out.append((linked, len(created)))
        return out

    def changed_later(self, slug: str) -> int:
        """Contacts in ``slug``'s CRM whose values the CRMs connected after it change.

        Their overlaps with the platform settle on the CRM's value where its strategy lets it
        win; those contacts are already in ``slug``'s CRM (pushed or linked by its own initial
        sync), so each is one more write there.
        """
        order = list(self.crms)
        mine = self.crms[slug]
        by_email = {p.email: p for p in self.platform}
        changed: set[str] = set()
        for later in order[order.index(slug) + 1 :]:
            plan = self.crms[later]
            for newer, group in (("platform", plan.old), ("crm", plan.new)):
                for person in group:
                    local = by_email[person.email]
                    for name in plan.traits.conflict_fields:
                        if name not in mine.traits.pushed:
                            continue
                        strategy = field_strategy(plan.strategy, name, {})
                        value = winner(strategy, getattr(local, name), getattr(person, name), newer=newer)
                        if value != getattr(local, name):
                            changed.add(person.email)
        return len(changed)

    def expected_conflicts(self, slug: str) -> Counter[str]:
        """Strategy -> number of field conflicts the CRM's overlaps cause."""
        plan = self.crms[slug]
        counts: Counter[str] = Counter()
        for name in plan.traits.conflict_fields:
            counts[field_strategy(plan.strategy, name, {})] += len(plan.overlap)
        return counts

    def expected_engagement(self) -> dict[str, dict[str, Any]]:
        """Email -> total_opens, total_clicks, unsubscribed, last_email_opened, sent (activities)."""
        out: dict[str, dict[str, Any]] = {}
        for event in self.events:
            e = out.setdefault(
                event.email,
                {
                    "total_opens": 0,
                    "total_clicks": 0,
                    "unsubscribed": False,
                    "last_email_opened": None,
                    "sent": 0,
                },
            )
            if event.kind == "opened":
                e["total_opens"] += 1
                if e["last_email_opened"] is None or event.occurred_at > e["last_email_opened"]:
                    e["last_email_opened"] = event.occurred_at
            elif event.kind == "clicked":
                e["total_clicks"] += 1
            elif event.kind == "unsubscribed":
                e["unsubscribed"] = True
            elif event.kind == "sent":
                e["sent"] += 1
        return out

    def expected_activities(self) -> int:
        """Activities each CRM must log: one per event, of every kind (the default rules)."""
        return len(self.events)

    def per_window(self, windows: Sequence[range], chunk: int) -> list[tuple[int, int]]:
        """(activities, contacts changed) for each window of upload requests of ``chunk`` events."""
        out = []
        for window in windows:
            events = self.events[window.start * chunk : window.stop * chunk]
            out.append((len(events), len(self.changed_by_events(events))))
        return out


def _name_key(name: str) -> str:
    """How the CRMs compare company names: trimmed, case-insensitively."""
    return name.strip().lower()


def winner(strategy: str, local: Any, remote: Any, *, newer: str) -> Any:
    """The value a conflict settles on; ``newer`` is ``platform`` or ``crm``."""
    if strategy == "crm_wins":
        return remote
    if strategy == "local_wins":
        return local
    if strategy == "fill_if_blank":
        return local if local not in (None, "") else remote
    if strategy == "newest_wins":
        return local if newer == "platform" else remote
    raise ValueError(f"the demo cannot predict strategy {strategy!r}")


def _person(email: str, i: int, rng: random.Random, *, who: str, company: bool = True) -> Person:
    cities = ("Lisbon", "Austin", "Osaka", "Nairobi", "Bergen", "Quito", "Perth", "Dublin")
    titles = ("Analyst", "Engineer", "Director", "Buyer", "Founder", "Designer")
    return Person(
        email=email,
        first_name=f"{who}{i}",
        last_name=f"Surname{i}",
        company=f"{who}Co {rng.randrange(1, 500)}" if company else None,
        job_title=rng.choice(titles),
        city=rng.choice(cities),
        phone=f"+1555{i:07d}" if who != "Pat" else None,
    )


def _conflicting(mine: Person, traits: CrmTraits) -> Person:
    """The CRM's version of a platform contact: the conflict fields differ."""
    changes: dict[str, Any] = {}
    for name in traits.conflict_fields:
        changes[name] = f"{getattr(mine, name) or ''} ({traits.slug} edit)".strip()
    return Person(**{**mine.__dict__, **changes})


def _sizes(crms: Sequence[CrmTraits], total: int) -> dict[str, int]:
    """``total`` split by share, the rounding left to the last CRM."""
    weight = sum(c.share for c in crms) or 1.0
    sizes = {c.slug: int(total * c.share / weight) for c in crms[:-1]}
    if crms:
        sizes[crms[-1].slug] = total - sum(sizes.values())
    return sizes


def build(
    crms: Sequence[CrmTraits],
    *,
    contacts: int = 10_000,
    crm_contacts: int = 10_000,
    events: int = 50_000,
    seed: int = 7,
) -> Scenario:
    """A scenario of ``contacts`` platform contacts, ``crm_contacts`` split between ``crms`` by share.

    A fifth of each CRM's records overlap the platform (disjoint sets, so each conflict has one
    deciding strategy), a tenth of the smallest CRM's share are held by every CRM, the rest are
    the CRM's alone. Events pick contacts from the union at random (seeded) over the last 30 days.

    Raises:
        ValueError: no CRMs, or a share below zero.
    """
    if not crms:
        raise ValueError("the scenario needs at least one CRM")
    if any(c.share < 0 for c in crms):
        raise ValueError(f"shares must not be negative: {[(c.slug, c.share) for c in crms]}")
    ordered = sorted(crms, key=lambda c: c.slug)
    rng = random.Random(seed)  # noqa: S311 (test data, reproducible on purpose)
    platform = [_person(f"p{i:06d}@platform.demo", i, rng, who="Pat") for i in range(contacts)]
    sizes = _sizes(ordered, crm_contacts)
    shared_n = min(sizes.values()) // 10
    # a company only where every CRM's persons have one, else they could not agree on it
    with_company = all("company" in c.two_way for c in ordered)
    shared = [
        _person(f"s{i:06d}@shared.demo", i, rng, who="Sam", company=with_company) for i in range(shared_n)
    ]
    plans: dict[str, CrmPlan] = {}
    start = 0
    for n, traits in enumerate(ordered):
        slug, size = traits.slug, sizes[traits.slug]
        plan = CrmPlan(
            slug=slug, strategy=STRATEGIES[n % len(STRATEGIES)], traits=traits, shared=list(shared)
        )
        overlap_n = min(size // 5, max(0, (contacts - start)))
        mine = platform[start : start + overlap_n]
        start += overlap_n
        half = overlap_n // 2
        plan.old = [_conflicting(p, traits) for p in mine[:half]]
        plan.new = [_conflicting(p, traits) for p in mine[half:]]
        only_n = max(0, size - overlap_n - shared_n)
        plan.only = [
            _person(
                f"{slug[0]}{i:06d}@{slug}.demo", i, rng, who=slug.title(), company="company" in traits.two_way
            )
            for i in range(only_n)
        ]
        plans[slug] = plan
    scenario = Scenario(seed=seed, platform=platform, crms=plans, events=[], hot=[])
    emails = sorted(scenario.expected_people())
    now = datetime.now(UTC).replace(microsecond=0)
    kinds = [k for k, _ in EVENT_KINDS]
    weights = [w for _, w in EVENT_KINDS]
    # one contact in 200 is hot: replies and clicks this week push its lead score past the
    # workflow threshold; everyone else gets the background mix
    hot = rng.sample(emails, max(1, len(emails) // 200)) if events >= 8 * max(1, len(emails) // 200) else []
    burst = [(email, kind) for email in hot for kind in ("replied",) * 3 + ("clicked",) * 5]
    scenario.hot = sorted(hot)
    for i in range(events):
        if i < len(burst):
            email, kind = burst[i]
            scenario.events.append(
                Event(
                    id=f"demo-{seed}-{i}",
                    email=email,
                    kind=kind,
                    occurred_at=now - timedelta(seconds=rng.randrange(0, 7 * 86_400)),
                    campaign_id="cmp-hot",
                    campaign_name="Spring launch",
                    subject="You are invited",
                    url="https://example.com/launch" if kind == "clicked" else None,
                )
            )
            continue
        kind = rng.choices(kinds, weights)[0]
        campaign = rng.randrange(1, 21)
        scenario.events.append(
            Event(
                id=f"demo-{seed}-{i}",
                email=rng.choice(emails),
                kind=kind,
                occurred_at=now - timedelta(seconds=rng.randrange(0, 30 * 86_400)),
                campaign_id=f"cmp-{campaign}",
                campaign_name=f"Campaign {campaign}",
                subject=f"News #{campaign}",
                url=f"https://example.com/c/{campaign}" if kind == "clicked" else None,
            )
        )
    return scenario
