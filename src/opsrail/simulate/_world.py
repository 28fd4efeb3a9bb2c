"""A seeded world of SaaS customers, the operations events they cause, and how simulated people decide tasks.

Pure: no I/O and no clock. Everything follows from the seed (and, for event times, the ``start`` and ``interval_s``
the caller gives), so the same seed yields the same events with the same ids, which makes a repeated run against
the same server a stream of duplicates rather than of new events.

The world holds accounts with a tier (enterprise, mid_market, smb), a region (EU, US, APAC), a sales channel
(direct, partner, web), an ARR and a currency. Its stream interleaves stories that unfold over time:

- a new customer: ``account.created``, ``quote.submitted``, ``order.signed``, ``invoice.created``, then
  ``implementation_task.updated`` for each onboarding task (in progress, then done or blocked, and unblocked later);
- an incident: ``incident.opened`` (text and topic from a real help-desk ticket, Sev1 about 5%), sometimes an
  ``escalation.opened``, then ``incident.resolved`` for the same id;
- existing customers: expansion ``quote.submitted``, ``change_order.requested``, renewal ``invoice.created`` and,
  rarely, ``account.offboarded``.

A :class:`Drift` changes one segment: its Sev1 rate and credit amounts in the world, and how the simulated people
(:class:`Behaviour`) decide that segment's tasks, so that later analysis has something real to find.
"""

from __future__ import annotations

import functools
import heapq
import math
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from opsrail.model import InvalidInput
from opsrail.simulate._tickets import Ticket

# -- the shape of the customer base -------------------------------------------------------------------------

TIERS: dict[str, float] = {"enterprise": 0.15, "mid_market": 0.35, "smb": 0.50}
REGIONS: dict[str, float] = {"EU": 0.40, "US": 0.40, "APAC": 0.20}
CHANNELS: tuple[str, ...] = ("direct", "partner", "web")
CHANNELS_BY_TIER: dict[str, dict[str, float]] = {
    "enterprise": {"direct": 0.80, "partner": 0.20},
    "mid_market": {"direct": 0.45, "partner": 0.35, "web": 0.20},
    "smb": {"direct": 0.10, "partner": 0.30, "web": 0.60},
}
CURRENCIES: dict[str, dict[str, float]] = {
    "EU": {"EUR": 0.80, "GBP": 0.20},
    "US": {"USD": 1.0},
    "APAC": {"AUD": 0.40, "SGD": 0.30, "USD": 0.30},
}
LEGAL_ENTITIES: dict[str, str] = {"EU": "le-opsrail-eu", "US": "le-opsrail-us", "APAC": "le-opsrail-apac"}
ARR_MEDIAN: dict[str, float] = {"enterprise": 250_000, "mid_market": 60_000, "smb": 12_000}
PREMIUM_SUPPORT: dict[str, float] = {"enterprise": 1.0, "mid_market": 0.5, "smb": 0.0}
SEGMENT_VALUES: dict[str, tuple[str, ...]] = {"region": tuple(REGIONS), "tier": tuple(TIERS), "channel": CHANNELS}

SEV1_RATE = 0.05
SEVERITY_REST: dict[int, float] = {2: 0.15, 3: 0.45, 4: 0.35}  # the shares of Sev2-4 besides Sev1
CREDIT_MIN, CREDIT_MAX = 200.0, 9000.0

SOURCES: dict[str, str] = {
    "crm": "urn:opsrail:simulate:crm",
    "billing": "urn:opsrail:simulate:billing",
    "itsm": "urn:opsrail:simulate:itsm",
    "psa": "urn:opsrail:simulate:psa",
    "erp": "urn:opsrail:simulate:erp",
}
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

_FIRST = (
    "Blue", "North", "Bright", "Silver", "Red", "Iron", "Green", "Swift", "Clear", "Quantum",
    "Solar", "Cedar", "Harbor", "Summit", "Nimbus", "Atlas", "Vertex", "Lumen", "Copper", "Orbit",
)  # fmt: skip
_SECOND: dict[str, str] = {
    "Logistics": "logistics", "Health": "healthcare", "Retail": "retail", "Bank": "financial services",
    "Energy": "energy", "Media": "media", "Foods": "consumer goods", "Labs": "life sciences",
    "Systems": "software", "Freight": "logistics", "Insurance": "insurance", "Pharma": "life sciences",
    "Robotics": "manufacturing", "Travel": "travel", "Analytics": "software",
}  # fmt: skip
_SUFFIX: dict[str, tuple[str, ...]] = {
    "EU": ("GmbH", "SAS", "B.V.", "Ltd", "S.p.A.", "AB"),
    "US": ("Inc.", "LLC", "Corp."),
    "APAC": ("Pty Ltd", "Pte. Ltd.", "K.K."),
}
_STAFF = ("maria.lopez", "james.chen", "anna.schmidt", "tom.okafor", "yuki.tanaka", "sara.nilsson", "raj.patel")
_SPECIALISTS = ("priya (identity)", "marco (data)", "lea (integrations)", "ken (performance)")
_SERVICES = ("api", "web-app", "sso", "billing-portal", "data-sync", "mobile-app", "reporting")
_CLAUSES = (
    "uncapped liability for data breaches",
    "99.99% availability SLA with 25% credits",
    "non-standard SSO request (custom SAML attributes)",
    "termination for convenience after 6 months",
    "most-favoured-customer pricing",
    "customer data stored in-region only",
    "net-90 payment terms",
)
_ONBOARDING_TERMS = {
    "enterprise": ("white-glove onboarding with data migration and SSO", "dedicated onboarding manager, 10 sessions"),
    "mid_market": ("standard onboarding: 3 guided sessions and SSO setup", "standard onboarding with data import"),
    "smb": ("self-serve onboarding", "one kick-off call, self-serve setup"),
}
_BLOCKED_REASONS: dict[str, tuple[str, ...]] = {
    "Provision tenant": ("tenant region capacity is not available yet", "customer has not signed the DPA"),
    "Configure SSO": (
        "non-standard SSO request",
        "customer IdP metadata is missing",
        "waiting for the customer's IT security review",
    ),
    "Migrate data": ("customer data export is late", "source data fails validation", "non-standard data mapping"),
}
_MILESTONES = {"Provision tenant": "tenant-ready", "Configure SSO": "sso-live", "Migrate data": "data-migrated"}
_CHANGE_REQUESTS = (
    ("Additional SAML connector for a subsidiary", 16),
    ("Migrate 2M historical records from the legacy system", 60),
    ("Custom report pack for the finance team", 24),
    ("Second production tenant in another region", 40),
    ("Integration with the customer's ERP", 80),
)
_ESCALATION_REASONS = (
    "needs specialist help to find the root cause",
    "customer executive escalated",
    "workaround failed; engineering input needed",
)


# -- drift ---------------------------------------------------------------------------------------------------

DRIFT_KNOBS: dict[str, str] = {
    "credit_reject": "probability that a credit approval for the segment is rejected (0-1)",
    "reject": "probability that any other approval for the segment is rejected (0-1)",
    "sev1_rate": "share of the segment's incidents that are Sev1 (0-1)",
    "credit_scale": "factor on the segment's Sev1 credit amounts (above 0)",
    "delay_scale": "factor on how long people take to decide the segment's tasks (above 0)",
}
_DRIFT_HINT = "e.g. region=EU:credit_reject=0.6 or tier=smb:sev1_rate=0.2:credit_scale=2; knobs: " + ", ".join(
    DRIFT_KNOBS
)


@dataclass(frozen=True, slots=True)
class Drift:
    """One segment (``region=EU``) behaving differently from the rest, for analysis to find."""

    segment: str
    value: str
    credit_reject: float | None = None
    reject: float | None = None
    sev1_rate: float | None = None
    credit_scale: float = 1.0
    delay_scale: float = 1.0

    def applies(self, segment: Mapping[str, Any] | None) -> bool:
        """Whether an object's segment is the drifting one."""
        if not segment:
            return False
        value = segment.get(self.segment)
        return isinstance(value, str) and value.lower() == self.value.lower()

    @property
    def spec(self) -> str:
        """The drift as ``--drift`` takes it."""
        knobs = [
            f"{name}={value:g}"
            for name, value, unset in (
                ("credit_reject", self.credit_reject, None),
                ("reject", self.reject, None),
                ("sev1_rate", self.sev1_rate, None),
                ("credit_scale", self.credit_scale, 1.0),
                ("delay_scale", self.delay_scale, 1.0),
            )
            if value is not None and value != unset
        ]
        return ":".join([f"{self.segment}={self.value}", *knobs])


def parse_drift(spec: str) -> Drift:
    """``region=EU:credit_reject=0.6`` -> a :class:`Drift`; anything else is an :class:`InvalidInput`."""
    parts = [part.strip() for part in spec.split(":")]
    selector, _, value = parts[0].partition("=")
    selector, value = selector.strip().lower(), value.strip()
    if selector not in SEGMENT_VALUES or not value:
        raise InvalidInput(f"--drift {spec!r} does not start with a segment such as region=EU", hint=_DRIFT_HINT)
    known = {v.lower(): v for v in SEGMENT_VALUES[selector]}
    if value.lower() not in known:
        raise InvalidInput(
            f"--drift: no {selector} {value!r} in the simulated world",
            hint=f"{selector} is one of: {', '.join(SEGMENT_VALUES[selector])}",
        )
    knobs: dict[str, float] = {}
    for part in parts[1:]:
        name, _, text = part.partition("=")
        name = name.strip()
        if name not in DRIFT_KNOBS:
            raise InvalidInput(f"--drift: unknown knob {name!r}", hint=_DRIFT_HINT)
        try:
            number = float(text)
        except ValueError:
            raise InvalidInput(f"--drift: {name} needs a number, not {text!r}", hint=_DRIFT_HINT) from None
        if name.endswith("_scale"):
            if not 0 < number <= 100:
                raise InvalidInput(f"--drift: {name} is a factor above 0 and at most 100", hint=_DRIFT_HINT)
        elif not 0 <= number <= 1:
            raise InvalidInput(f"--drift: {name} is a probability from 0 to 1", hint=_DRIFT_HINT)
        knobs[name] = number
    if not knobs:
        raise InvalidInput(f"--drift {spec!r} changes nothing", hint=_DRIFT_HINT)
    return Drift(
        selector,
        known[value.lower()],
        credit_reject=knobs.get("credit_reject"),
        reject=knobs.get("reject"),
        sev1_rate=knobs.get("sev1_rate"),
        credit_scale=knobs.get("credit_scale", 1.0),
        delay_scale=knobs.get("delay_scale", 1.0),
    )


# -- rates and durations -------------------------------------------------------------------------------------

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$", re.IGNORECASE)
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}
MAX_RATE = 5000.0


def parse_rate(text: str) -> float:
    """Events per second from ``20/s``, ``5`` (per second) or ``300/m``."""
    match = _RATE.match(text)
    if match is None:
        raise InvalidInput(f"--rate {text!r} is not a rate", hint="e.g. 20/s, 5 (per second) or 300/m")
    per = _PER[(match.group(2) or "s")[0].lower()]
    rate = float(match.group(1)) / per
    if not 0 < rate <= MAX_RATE:
        raise InvalidInput(f"--rate must be above 0 and at most {MAX_RATE:g} events per second", hint="e.g. 20/s")
    return rate


def parse_duration(text: str) -> float:
    """Seconds from ``90s``, ``10m``, ``1h``, a bare number of seconds, or an ISO 8601 duration (``PT10M``)."""
    hint = "e.g. 90s, 10m, 1h or PT10M"
    match = _DURATION.match(text)
    if match is not None:
        seconds = float(match.group(1)) * _PER[(match.group(2) or "s").lower()]
    elif text.strip().upper().startswith("P"):
        try:
            seconds = TypeAdapter(timedelta).validate_python(text.strip().upper()).total_seconds()
        except ValidationError:
            raise InvalidInput(f"--duration {text!r} is not an ISO 8601 duration", hint=hint) from None
    else:
        raise InvalidInput(f"--duration {text!r} is not a duration", hint=hint)
    if seconds <= 0:
        raise InvalidInput("--duration must be above zero", hint=hint)
    return seconds


# -- the world -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class SimAccount:
    """A customer of the simulated SaaS company."""

    id: str
    name: str
    tier: str
    region: str
    channel: str
    arr: int
    currency: str
    industry: str
    premium_support: bool
    owner: str
    csm: str
    status: str = "prospect"
    project_id: str | None = None
    order_id: str | None = None
    invoice_ids: list[str] = field(default_factory=list)

    @property
    def entity(self) -> str:
        return LEGAL_ENTITIES[self.region]

    def segment(self) -> dict[str, str]:
        return {"region": self.region, "channel": self.channel, "tier": self.tier, "entity": self.entity}


Thunk = Callable[[], dict[str, Any] | None]

# How often each story starts, relative to the others.
STORIES: dict[str, float] = {
    "incident": 0.46,
    "onboarding": 0.07,
    "expansion_quote": 0.10,
    "change_order": 0.08,
    "renewal_invoice": 0.12,
    "specialist_escalation": 0.04,
    "offboarding": 0.006,
    "supplier_invoice": 0.05,
}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


class World:
    """A seeded customer base and the endless, deterministic stream of CloudEvents it produces.

    ``start`` and ``interval_s`` place the events in time: event ``n`` happens at ``start + n * interval_s``, and
    stories that unfold ("resolved 30 s later") are scheduled that many events ahead, so the stream itself does not
    depend on how fast it is sent.
    """

    def __init__(
        self,
        seed: int,
        *,
        tickets: Sequence[Ticket],
        drift: Drift | None = None,
        start: datetime = EPOCH,
        interval_s: float = 0.05,
        existing_accounts: int = 24,
    ) -> None:
        if not tickets:
            raise ValueError("the world needs at least one ticket to take incident texts from")
        if interval_s <= 0:
            raise ValueError("interval_s must be above zero")
        self.seed = seed
        self.drift = drift
        self.start = start
        self.interval_s = interval_s
        self.tickets = tuple(tickets)
        self.rng = random.Random(f"opsrail-simulate:{seed}")
        self.accounts: list[SimAccount] = []
        self._n = 0
        self._pending: list[tuple[int, int, Thunk]] = []
        self._scheduled = 0
        self._counters: dict[str, int] = {}
        self._names: set[str] = set()
        self._open_incidents: dict[str, dict[str, Any]] = {}
        self._bootstrap = [self._new_account(status="active") for _ in range(existing_accounts)]
        for account in self._bootstrap:
            account.project_id = self._id("psa", "PRJ", 5)
            account.order_id = self._id("crm", "ORD", 5)

    # -- the stream ------------------------------------------------------------------------------------------

    @property
    def produced(self) -> int:
        """How many events the world has produced so far."""
        return self._n

    def now(self) -> datetime:
        """The simulated time of the event being produced."""
        return self.start + timedelta(seconds=self._n * self.interval_s)

    def events(self) -> Iterator[dict[str, Any]]:
        """The stream, without end."""
        while True:
            yield self.next_event()

    def take(self, count: int) -> list[dict[str, Any]]:
        return [self.next_event() for _ in range(count)]

    def next_event(self) -> dict[str, Any]:
        while True:
            if self._bootstrap:
                return self._account_event(self._bootstrap.pop(0), "created")
            if self._pending and self._pending[0][0] <= self._n:
                _, _, thunk = heapq.heappop(self._pending)
                event = thunk()
            else:
                event = getattr(self, f"_story_{_pick(self.rng, STORIES)}")()
            if event is not None:
                return event

    def _event(self, kind: str, verb: str, system: str, data: dict[str, Any]) -> dict[str, Any]:
        event = {
            "specversion": "1.0",
            "id": f"sim-{self.seed}-{self._n + 1:08d}",
            "source": SOURCES[system],
            "type": f"com.opsrail.{kind}.{verb}",
            "time": _rfc3339(self.now()),
            "datacontenttype": "application/json",
            "data": data,
        }
        self._n += 1
        return event

    def _after(self, seconds: float, thunk: Thunk) -> None:
        """Run ``thunk`` (which makes an event, or None to drop it) about ``seconds`` of simulated time from now."""
        due = self._n + max(1, math.ceil(seconds / self.interval_s))
        self._scheduled += 1
        heapq.heappush(self._pending, (due, self._scheduled, thunk))

    # -- helpers ---------------------------------------------------------------------------------------------

    def _id(self, system: str, prefix: str, width: int) -> str:
        count = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = count
        return f"{system}:sim{self.seed}-{prefix}{count:0{width}d}"

    def _day(self, days: int = 0) -> str:
        return (self.now() + timedelta(days=days)).date().isoformat()

    def _money(self, value: float) -> float:
        return round(value, 2)

    def _drifting(self, account: SimAccount) -> Drift | None:
        return self.drift if self.drift is not None and self.drift.applies(account.segment()) else None

    def _new_account(self, status: str = "prospect") -> SimAccount:
        rng = self.rng
        tier, region = _pick(rng, TIERS), _pick(rng, REGIONS)
        while True:
            first, second = rng.choice(_FIRST), rng.choice(list(_SECOND))
            name = f"{first} {second} {rng.choice(_SUFFIX[region])}"
            if name not in self._names:
                break
            if len(self._names) > 1000:  # the combinations run out only in very long runs
                name = f"{name} {len(self._names)}"
                break
        self._names.add(name)
        arr = round(ARR_MEDIAN[tier] * rng.lognormvariate(0.0, 0.5), -2)
        account = SimAccount(
            id=self._id("crm", "ACC", 4),
            name=name,
            tier=tier,
            region=region,
            channel=_pick(rng, CHANNELS_BY_TIER[tier]),
            arr=int(max(arr, 1200)),
            currency=_pick(rng, CURRENCIES[region]),
            industry=_SECOND[second],
            premium_support=rng.random() < PREMIUM_SUPPORT[tier],
            owner=rng.choice(_STAFF),
            csm=rng.choice(_STAFF),
            status=status,
        )
        self.accounts.append(account)
        return account

    def _customer(self, *statuses: str) -> SimAccount | None:
        """A random account in one of ``statuses`` (default: a current customer)."""
        wanted = statuses or ("active", "onboarding")
        candidates = [a for a in self.accounts if a.status in wanted]
        return self.rng.choice(candidates) if candidates else None

    def _lines(self, account: SimAccount, expansion: bool = False) -> list[dict[str, Any]]:
        rng = self.rng
        seats = {"enterprise": (500, 5000), "mid_market": (50, 500), "smb": (5, 50)}[account.tier]
        quantity = rng.randint(*seats) // (4 if expansion else 1) or 1
        lines = [
            {
                "sku": "PLAT-SEAT",
                "description": "Platform seat, annual",
                "quantity": quantity,
                "unit_price": float(rng.choice((120, 180, 240, 360))),
            }
        ]
        if account.tier != "smb" and not expansion:
            lines.append({"sku": "SSO-ADDON", "description": "SSO and SCIM", "quantity": 1, "unit_price": 4800.0})
        if account.premium_support and not expansion:
            lines.append(
                {"sku": "PREM-SUPPORT", "description": "Premium support", "quantity": 1, "unit_price": 12000.0}
            )
        if not expansion and rng.random() < 0.6:
            price = {"enterprise": 25000.0, "mid_market": 8000.0, "smb": 1500.0}[account.tier]
            lines.append(
                {"sku": "IMPL-PKG", "description": "Implementation package", "quantity": 1, "unit_price": price}
            )
        return lines

    def _account_event(self, account: SimAccount, verb: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": account.id,
            "name": account.name,
            "status": account.status,
            "legal_entity_id": account.entity,
            "owner": account.owner,
            "csm": account.csm,
            "industry": account.industry,
            "arr": account.arr,
            "currency": account.currency,
            "segment": account.segment(),
            "external_ids": {"crm_id": account.id.split(":", 1)[1], "billing_id": f"cus_{account.id.split('-')[-1]}"},
            "attributes": {"premium_support": account.premium_support},
        }
        return self._event("account", verb, "crm", data)

    # -- stories ---------------------------------------------------------------------------------------------

    def _story_onboarding(self) -> dict[str, Any] | None:
        account = self._customer("prospect") or self._new_account()
        account.status = "onboarding"
        event = self._account_event(account, "created")
        self._after(self.rng.uniform(1, 4), lambda: self._new_business_quote(account))
        return event

    def _quote(self, account: SimAccount, expansion: bool) -> dict[str, Any]:
        rng = self.rng
        lines = self._lines(account, expansion)
        gross = sum(line["quantity"] * line["unit_price"] for line in lines)
        low, high = {"enterprise": (10, 30), "mid_market": (5, 20), "smb": (0, 10)}[account.tier]
        discount = rng.uniform(low, high) + (5 if account.channel == "partner" else 0)
        clause_chance = 0.35 if account.tier == "enterprise" else 0.15
        clauses = rng.sample(_CLAUSES, rng.randint(1, 2)) if rng.random() < clause_chance else []
        return {
            "id": self._id("crm", "Q", 5),
            "account_id": account.id,
            "status": "submitted",
            "lines": lines,
            "amount": self._money(gross * (1 - discount / 100)),
            "currency": account.currency,
            "discount_pct": round(discount, 1),
            "non_standard_clauses": clauses,
            "valid_until": self._day(30),
            "legal_entity_id": account.entity,
            "segment": account.segment(),
            "attributes": {"kind": "expansion" if expansion else "new_business", "owner": account.owner},
        }

    def _new_business_quote(self, account: SimAccount) -> dict[str, Any]:
        quote = self._quote(account, expansion=False)
        self._after(self.rng.uniform(3, 8), lambda: self._order(account, quote))
        return self._event("quote", "submitted", "crm", quote)

    def _order(self, account: SimAccount, quote: dict[str, Any]) -> dict[str, Any] | None:
        if account.status not in ("onboarding", "active"):
            return None
        rng = self.rng
        rule = rng.choices(("on_signature", "on_go_live", "on_date"), weights=(0.4, 0.45, 0.15))[0]
        account.order_id = self._id("crm", "ORD", 5)
        account.project_id = self._id("psa", "PRJ", 5)
        order: dict[str, Any] = {
            "id": account.order_id,
            "account_id": account.id,
            "quote_id": quote["id"],
            "status": "signed",
            "signed_at": _rfc3339(self.now()),
            "lines": quote["lines"],
            "total": quote["amount"],
            "currency": account.currency,
            "go_live_billing_rule": rule,
            "onboarding_terms": rng.choice(_ONBOARDING_TERMS[account.tier]),
            "segment": account.segment(),
            "attributes": {"project_id": account.project_id, "discount_pct": quote["discount_pct"]},
        }
        if rule == "on_date":
            order["billing_start_date"] = self._day(rng.choice((14, 30, 45)))
        self._after(rng.uniform(1, 3), lambda: self._first_invoice(account, order))
        return self._event("order", "signed", "crm", order)

    def _invoice(self, account: SimAccount, amount: float, *, draft: bool, billing_start: str | None) -> dict[str, Any]:
        invoice_id = self._id("billing", "INV", 6)
        account.invoice_ids.append(invoice_id)
        data: dict[str, Any] = {
            "id": invoice_id,
            "account_id": account.id,
            "number": f"INV-{self.seed}-{invoice_id.rsplit('INV', 1)[1]}",
            "status": "draft" if draft else "open",
            "amount_due": self._money(amount),
            "currency": account.currency,
            "due_date": self._day(30),
            "issued_at": _rfc3339(self.now()),
            "legal_entity_id": account.entity,
            "segment": account.segment(),
        }
        if billing_start:
            data["billing_start_date"] = billing_start
        return data

    def _first_invoice(self, account: SimAccount, order: dict[str, Any]) -> dict[str, Any] | None:
        if account.status not in ("onboarding", "active"):
            return None
        rng = self.rng
        invoice = self._invoice(
            account,
            float(order["total"]),
            draft=order["go_live_billing_rule"] != "on_signature",
            billing_start=order.get("billing_start_date"),
        )
        invoice["attributes"] = {"order_id": order["id"]}
        names = ["Provision tenant"]
        if account.tier != "smb" or rng.random() < 0.3:
            names.append("Configure SSO")
        if "migration" in str(order["onboarding_terms"]) or "import" in str(order["onboarding_terms"]):
            names.append("Migrate data")
        for name in names:
            self._after(
                rng.uniform(1, 5),
                functools.partial(self._task, account, order, invoice["id"], self._id("psa", "T", 6), name, "start"),
            )
        return self._event("invoice", "created", "billing", invoice)

    def _task(
        self, account: SimAccount, order: dict[str, Any], invoice_id: str, task_id: str, name: str, step: str
    ) -> dict[str, Any] | None:
        if account.status not in ("onboarding", "active"):
            return None
        rng = self.rng
        data: dict[str, Any] = {
            "id": task_id,
            "name": name,
            "account_id": account.id,
            "order_id": order["id"],
            "owner": rng.choice(_STAFF),
            "segment": account.segment(),
            "attributes": {"invoice_id": invoice_id},
        }
        if account.project_id is not None and rng.random() < 0.85:
            data["project_id"] = account.project_id
            data["milestone"] = _MILESTONES[name]
        block_chance = {"Provision tenant": 0.10, "Configure SSO": 0.25, "Migrate data": 0.30}[name]
        if account.tier == "enterprise":
            block_chance *= 1.4
        if step == "start":
            data["status"] = "in_progress"
            data["due_at"] = _rfc3339(self.now() + timedelta(days=rng.choice((5, 10, 15))))
            outcome = "blocked" if rng.random() < block_chance else "done"
            delay = 10 * rng.lognormvariate(0.0, 0.5)
            self._after(delay, lambda: self._task(account, order, invoice_id, task_id, name, outcome))
        elif step == "blocked":
            data["status"] = "blocked"
            data["blocked_reason"] = rng.choice(_BLOCKED_REASONS[name])
            self._after(rng.uniform(15, 45), lambda: self._task(account, order, invoice_id, task_id, name, "done"))
        else:
            data["status"] = "done"
            data["completed_at"] = _rfc3339(self.now())
            if name == "Provision tenant" and account.status == "onboarding":
                account.status = "active"
        return self._event("implementation_task", "updated", "psa", data)

    def severity(self, account: SimAccount) -> int:
        """A Sev1 about 5% of the time (the drift's ``sev1_rate`` for its segment), else Sev2-4."""
        drift = self._drifting(account)
        sev1 = drift.sev1_rate if drift is not None and drift.sev1_rate is not None else SEV1_RATE
        if self.rng.random() < sev1:
            return 1
        return int(_pick(self.rng, {str(k): v for k, v in SEVERITY_REST.items()}))

    def credit_amount(self, account: SimAccount) -> float:
        """The service credit a Sev1 exposes: 1-4% of ARR within 200-9,000, times the drift's ``credit_scale``."""
        base = min(max(account.arr * self.rng.uniform(0.01, 0.04), CREDIT_MIN), CREDIT_MAX)
        drift = self._drifting(account)
        return self._money(base * (drift.credit_scale if drift is not None else 1.0))

    def _story_incident(self) -> dict[str, Any] | None:
        account = self._customer()
        if account is None:
            return self._story_onboarding()
        rng = self.rng
        ticket = rng.choice(self.tickets)
        severity = self.severity(account)
        attributes: dict[str, Any] = {
            "premium_support": account.premium_support,
            "arr": account.arr,
            "currency": account.currency,
            "tier": account.tier,
        }
        if severity == 1:
            attributes["credit_amount"] = self.credit_amount(account)
        incident_id = self._id("itsm", "INC", 6)
        data: dict[str, Any] = {
            "id": incident_id,
            "title": ticket.title,
            "description": ticket.text,
            "severity": severity,
            "priority": f"P{severity}",
            "status": "open",
            "category": ticket.topic,
            "account_id": account.id,
            "service": rng.choice(_SERVICES),
            "assignment_group": "service-desk",
            "reporter": f"{account.owner.split('.')[0]}@{account.name.split()[0].lower()}.example",
            "opened_at": _rfc3339(self.now()),
            "labels": [account.tier, account.region],
            "segment": account.segment(),
            "external_ids": {"itsm_id": f"INC{incident_id.rsplit('INC', 1)[1]}"},
            "attributes": attributes,
        }
        self._open_incidents[incident_id] = data
        escalate = {1: 0.5, 2: 0.2, 3: 0.05, 4: 0.01}[severity]
        if rng.random() < escalate:
            self._after(rng.uniform(2, 8), lambda: self._escalation(account, data))
        median = {1: 20.0, 2: 30.0, 3: 45.0, 4: 60.0}[severity]
        self._after(median * rng.lognormvariate(0.0, 0.6), lambda: self._resolution(incident_id))
        return self._event("incident", "opened", "itsm", data)

    def _resolution(self, incident_id: str) -> dict[str, Any] | None:
        opened = self._open_incidents.pop(incident_id, None)
        if opened is None:
            return None
        data = {
            **opened,
            "status": "resolved",
            "resolved_at": _rfc3339(self.now()),
            "updated_at": _rfc3339(self.now()),
            "sla_met": self.rng.random() < (0.7 if opened["severity"] == 1 else 0.9),
        }
        return self._event("incident", "resolved", "itsm", data)

    def _escalation(self, account: SimAccount, incident: dict[str, Any] | None) -> dict[str, Any] | None:
        rng = self.rng
        if incident is not None and incident["id"] not in self._open_incidents:
            return None
        if incident is not None and incident["category"] == "Purchase":
            team = "billing"
        else:
            team = rng.choices(("specialists", "sre"), weights=(0.65, 0.35))[0]
        attributes: dict[str, Any] = {"specialist": rng.choice(_SPECIALISTS), "hours": rng.choice((1, 2, 3, 4, 6))}
        if account.project_id is not None:
            attributes["project_id"] = account.project_id
        reason = rng.choice(_ESCALATION_REASONS)
        data: dict[str, Any] = {
            "id": self._id("itsm", "ESC", 5),
            "account_id": account.id,
            "level": 2 if incident is not None and incident["severity"] == 1 and rng.random() < 0.5 else 1,
            "reason": f"Sev{incident['severity']} {reason}" if incident is not None else f"Onboarding {reason}",
            "target_team": team,
            "status": "open",
            "opened_at": _rfc3339(self.now()),
            "segment": account.segment(),
            "attributes": attributes,
        }
        if incident is not None:
            data["incident_id"] = incident["id"]
        return self._event("escalation", "opened", "itsm", data)

    def _story_specialist_escalation(self) -> dict[str, Any] | None:
        account = self._customer("onboarding") or self._customer()
        return self._escalation(account, None) if account is not None else None

    def _story_expansion_quote(self) -> dict[str, Any] | None:
        account = self._customer("active")
        if account is None:
            return None
        return self._event("quote", "submitted", "crm", self._quote(account, expansion=True))

    def _story_change_order(self) -> dict[str, Any] | None:
        account = self._customer()
        if account is None or account.order_id is None:
            return None
        rng = self.rng
        description, hours = rng.choice(_CHANGE_REQUESTS)
        effort = round(hours * rng.uniform(0.7, 1.5))
        data: dict[str, Any] = {
            "id": self._id("crm", "CO", 5),
            "account_id": account.id,
            "order_id": account.order_id,
            "project_id": account.project_id,
            "description": description,
            "amount": self._money(effort * rng.choice((150, 180, 220))),
            "currency": account.currency,
            "effort_hours": effort,
            "status": "draft",
            "segment": account.segment(),
            "attributes": {"requested_by_customer": rng.choice(_STAFF)},
        }
        return self._event("change_order", "requested", "crm", data)

    def _story_renewal_invoice(self) -> dict[str, Any] | None:
        account = self._customer("active")
        if account is None:
            return None
        periods = self.rng.choice((1, 4, 12))
        invoice = self._invoice(account, account.arr / periods, draft=False, billing_start=None)
        invoice["attributes"] = {"kind": "renewal", "periods_per_year": periods}
        return self._event("invoice", "created", "billing", invoice)

    def _story_supplier_invoice(self) -> dict[str, Any] | None:
        """A supplier's invoice to accounts payable: mostly matching its purchase order, sometimes not."""
        rng = self.rng
        amount = round(rng.lognormvariate(7.5, 1.0), 2)
        kind = rng.choices(("matched", "no_po", "over_po", "new_vendor", "duplicate"), weights=(70, 8, 10, 7, 5))[0]
        po_amount = 0.0 if kind == "no_po" else (round(amount / 1.2, 2) if kind == "over_po" else amount)
        invoice = {
            "id": self._id("ap", "SINV", 6),
            "status": "open",
            "amount_due": self._money(amount),
            "currency": "EUR",
            "due_date": self._day(30),
            "attributes": {
                "vendor": rng.choice(("Acme Supplies", "Northwind Hosting", "Contoso Print", "Globex Travel")),
                "po_amount": po_amount,
                "new_vendor": kind == "new_vendor",
                "duplicate_suspect": kind == "duplicate",
            },
        }
        return self._event("invoice", "received", "erp", invoice)

    def _story_offboarding(self) -> dict[str, Any] | None:
        active = [a for a in self.accounts if a.status == "active"]
        if len(active) < 12:
            return None
        account = self.rng.choice(active)
        account.status = "offboarding"
        event = self._account_event(account, "offboarded")
        account.status = "churned"
        return event


# -- simulated people ----------------------------------------------------------------------------------------

_APPROVE_COMMENTS = ("ok", "approved", "fine by me", "in line with the contract", "looks right")
_CREDIT_REJECTIONS = (
    "outage was inside the announced maintenance window",
    "incident was caused by the customer's own integration",
    "credit exceeds what the SLA grants",
    "duplicate of a credit already issued for this outage",
    "impact data does not support this amount",
)
_OTHER_REJECTIONS = (
    "scope not agreed with the customer",
    "price is below the floor for this tier",
    "needs legal review first",
    "missing the effort estimate",
)
CREDIT_REJECT: dict[str, float] = {"enterprise": 0.06, "mid_market": 0.12, "smb": 0.20}
OTHER_REJECT = 0.10
REVIEW_MISTAKES = 0.03


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a simulated person answers on a task."""

    approve: bool
    comment: str
    value: dict[str, Any] | None = None


def task_input(task: Mapping[str, Any]) -> dict[str, Any]:
    """The input of the run a task belongs to (for an event-started run, the event's data), or {}."""
    context = task.get("context")
    run = context.get("run") if isinstance(context, dict) else None
    found = run.get("input") if isinstance(run, dict) else None
    return found if isinstance(found, dict) else {}


def task_segment(task: Mapping[str, Any]) -> dict[str, Any]:
    segment = task_input(task).get("segment")
    return segment if isinstance(segment, dict) else {}


def is_credit_task(task: Mapping[str, Any]) -> bool:
    attributes = task_input(task).get("attributes")
    if isinstance(attributes, dict) and "credit_amount" in attributes:
        return True
    return "credit" in str(task.get("title", "")).lower()


class Behaviour:
    """How the simulated people decide: how long they take and what they answer, per task and role.

    Every draw is seeded by (seed, task id, role), so a task gets the same answer however the run is timed.
    Approvals take about 3-20 seconds (log-normal, median 8), reviews about half that. Credit approvals are
    rejected more often for smaller customers; the drift's knobs replace the rates (and scale the delays) for its
    segment. A review of a classification is approved when the recommended label is the ticket's real topic
    (bar a few mistakes) and otherwise rejected with the right label.
    """

    def __init__(self, seed: int, drift: Drift | None = None, *, delay_scale: float = 1.0) -> None:
        self.seed = seed
        self.drift = drift
        self.delay_scale = delay_scale

    def _rng(self, task: Mapping[str, Any], role: str, what: str) -> random.Random:
        return random.Random(f"opsrail-simulate:{self.seed}:{task.get('id')}:{role}:{what}")

    def _drifting(self, task: Mapping[str, Any]) -> Drift | None:
        return self.drift if self.drift is not None and self.drift.applies(task_segment(task)) else None

    def delay(self, task: Mapping[str, Any], role: str) -> float:
        """Seconds the person takes before answering."""
        median = 4.0 if task.get("kind") == "review" else 8.0
        seconds = min(max(median * self._rng(task, role, "delay").lognormvariate(0.0, 0.5), 1.0), 30.0)
        drift = self._drifting(task)
        return seconds * self.delay_scale * (drift.delay_scale if drift is not None else 1.0)

    def reject_probability(self, task: Mapping[str, Any]) -> float:
        """The chance this task is rejected (approval tasks; reviews follow the ticket's real topic)."""
        drift = self._drifting(task)
        if is_credit_task(task):
            if drift is not None and drift.credit_reject is not None:
                return drift.credit_reject
            tier = task_segment(task).get("tier")
            return CREDIT_REJECT.get(tier, OTHER_REJECT) if isinstance(tier, str) else OTHER_REJECT
        if drift is not None and drift.reject is not None:
            return drift.reject
        return OTHER_REJECT

    def verdict(self, task: Mapping[str, Any], role: str) -> Verdict:
        rng = self._rng(task, role, "verdict")
        if task.get("kind") == "review":
            return self._review(task, rng)
        if rng.random() < self.reject_probability(task):
            reasons = _CREDIT_REJECTIONS if is_credit_task(task) else _OTHER_REJECTIONS
            return Verdict(False, rng.choice(reasons))
        return Verdict(True, rng.choice(_APPROVE_COMMENTS))

    def _review(self, task: Mapping[str, Any], rng: random.Random) -> Verdict:
        context = task.get("context")
        recommendation = context.get("recommendation") if isinstance(context, dict) else None
        truth = task_input(task).get("category")
        if isinstance(recommendation, dict) and "label" in recommendation and isinstance(truth, str):
            if recommendation["label"] == truth or rng.random() < REVIEW_MISTAKES:
                return Verdict(True, "the topic is right")
            return Verdict(False, f"the ticket is about {truth}", {**recommendation, "label": truth})
        if rng.random() < OTHER_REJECT:
            return Verdict(False, rng.choice(_OTHER_REJECTIONS))
        return Verdict(True, rng.choice(_APPROVE_COMMENTS))
