"""Webhooks merchants can trust: the rules, without I/O.

- Signing follows the Standard Webhooks specification (https://www.standardwebhooks.com): a secret
  `whsec_<base64>`, headers `webhook-id`, `webhook-timestamp`, `webhook-signature`. The HMAC itself
  is computed by the specification's own package in the activity; here are the secret's format,
  the envelope and its exact bytes.
- The envelope is stable and versioned: `id`, `object`, `type`, `api_version`, `created`, `tenant`,
  `data.object`. It is rebuilt from the stored event on every attempt and serialised canonically,
  so every retry sends the same bytes under the same `webhook-id` (the event id).
- Retry schedule (the specification's): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
  20 h, 24 h, each delay jittered and stretched to a receiver's `Retry-After`.
- Which answers are retried: 5xx, 408, 429 and network errors (timeouts included). Any 2xx is
  delivered. 410 disables the endpoint. Everything else (3xx: redirects are never followed; other
  4xx) fails at once.
- Which addresses a merchant-supplied URL may reach: public ones. Loopback, private, link-local,
  shared and reserved ranges only where the deployment allows them (local dev and tests); cloud
  metadata addresses never.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import socket
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Sequence
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookRuleError(ValueError):
    """A rule of this module was broken by the caller's input: the API answers 400."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "parameter_invalid") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


# ---------------------------------------------------------------------------- ids
ID_PREFIX_ENDPOINT = "we"
ID_PREFIX_ATTEMPT = "wha"
ID_PREFIX_SIGNING_SECRET = "whsk"
DELIVERY_ID_PREFIX = "whd"


def delivery_id_for(*, event_id: str, endpoint_id: str) -> str:
    """One delivery per (event, endpoint). The id is also the first run's workflow id, so a
    dispatcher that starts it twice (a retried activity, a second dispatcher) starts it once."""
    return f"{DELIVERY_ID_PREFIX}_{event_id}_{endpoint_id}"


def delivery_workflow_id(*, delivery_id: str, round_number: int) -> str:
    """Round 0 is the first delivery; each redelivery is a new round with its own workflow."""
    assert round_number >= 0
    return delivery_id if round_number == 0 else f"{delivery_id}_r{round_number}"


# ---------------------------------------------------------------------------- enums
class EndpointKind(StrEnum):
    # Registered by the merchant (POST /v1/webhook_endpoints).
    ENDPOINT = "endpoint"
    # Named by an object itself (a payment intent's `notify_url`): created on first use, signed
    # with the tenant's notify secret.
    NOTIFY_URL = "notify_url"


class EndpointStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class DisabledReason(StrEnum):
    MERCHANT = "merchant"
    # The receiver answered 410 Gone: it asked us to stop.
    GONE = "gone"


class EndpointHealth(StrEnum):
    HEALTHY = "healthy"
    # Every attempt has failed for `failing_after_s`; still delivered to, and the tenant was told.
    FAILING = "failing"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    # The endpoint was deleted or disabled, or the event is gone, before it could be delivered.
    CANCELLED = "cancelled"


DELIVERY_STATUSES_FINAL = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED})


class AttemptKind(StrEnum):
    """What one attempt tells the delivery workflow (`AttemptWebhookDeliveryResult.kind`)."""

    DELIVERED = "delivered"
    # Not this time: try again after `retry_in_s`.
    RETRY = "retry"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # The endpoint had no free slot: wait `retry_in_s`, then ask again (not an attempt).
    THROTTLED = "throttled"


class DeliveryRunStatus(StrEnum):
    """A delivery workflow's live status (its `state` query, its search attribute): a round's
    steps, then the delivery's final status."""

    PENDING = DeliveryStatus.PENDING.value
    ATTEMPTING = "attempting"
    WAITING_FOR_SLOT = "waiting_for_slot"
    RETRYING = "retrying"
    DELIVERED = DeliveryStatus.DELIVERED.value
    FAILED = DeliveryStatus.FAILED.value
    CANCELLED = DeliveryStatus.CANCELLED.value


class ErrorKind(StrEnum):
    """What went wrong when no HTTP status came back."""

    TIMEOUT = "timeout"
    NETWORK = "network"
    # The URL resolves to an address this deployment may not reach (SSRF guard).
    BLOCKED = "blocked"
    INVALID_URL = "invalid_url"
    # The endpoint had no free slot for too long (bounded concurrency per endpoint).
    THROTTLED = "throttled"


class Decision(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    # 410: the endpoint is disabled, the delivery fails.
    GONE = "gone"
    REJECTED = "rejected"


def decide(*, status_code: int | None, error_kind: ErrorKind | None) -> Decision:
    """What one attempt's answer means. Exactly one of `status_code` and `error_kind` is given."""
    assert (status_code is None) != (error_kind is None), (status_code, error_kind)
    if status_code is not None:
        assert 100 <= status_code <= 999, status_code
        if 200 <= status_code <= 299:
            return Decision.DELIVERED
        if status_code == 410:
            return Decision.GONE
        if status_code >= 500 or status_code in (408, 429):
            return Decision.RETRY
        return Decision.REJECTED
    if error_kind in (ErrorKind.TIMEOUT, ErrorKind.NETWORK, ErrorKind.THROTTLED):
        return Decision.RETRY
    return Decision.REJECTED


def status_class(status_code: int) -> str:
    """A metric label of bounded cardinality: 2xx, 3xx, 4xx, 5xx."""
    return f"{min(max(status_code // 100, 1), 5)}xx"


# ---------------------------------------------------------------------------- schedule
# Delays after each failed attempt; the first attempt is immediate: 10 attempts over about 3 days.
RETRY_DELAYS_S: tuple[float, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600)
# Each delay is spread over +-10%, so receivers that fail together are not retried together.
JITTER_FRACTION = 0.1
# A receiver's Retry-After can stretch a delay up to this, never further.
RETRY_AFTER_MAX_S = 24 * 3600.0
RETRY_DELAYS_COUNT_MAX = 20
# Waiting for a slot of a busy endpoint: growing, capped, jittered; this many waits per attempt at
# most, then the attempt counts as failed (ErrorKind.THROTTLED) and the schedule goes on.
THROTTLE_DELAY_S_MIN = 0.5
THROTTLE_DELAY_S_MAX = 30.0
THROTTLED_WAITS_PER_ATTEMPT_MAX = 200


def validate_retry_delays(delays_s: Sequence[float]) -> tuple[float, ...]:
    if len(delays_s) > RETRY_DELAYS_COUNT_MAX:
        raise WebhookRuleError(f"at most {RETRY_DELAYS_COUNT_MAX} retry delays", param="retry_delays_s")
    for delay_s in delays_s:
        if not 0 <= delay_s <= 7 * 24 * 3600:
            raise WebhookRuleError("each retry delay must be between 0 s and 7 days", param="retry_delays_s")
    return tuple(float(delay_s) for delay_s in delays_s)


def retry_delay_s(
    *,
    attempt_number: int,
    retry_delays_s: Sequence[float],
    jitter_fraction: float,
    jitter_unit: float,
    retry_after_s: float | None = None,
    retry_after_max_s: float = RETRY_AFTER_MAX_S,
) -> float | None:
    """The wait before the attempt after `attempt_number` (1-based), or None when that was the last.

    `jitter_unit` is a uniform draw in [0, 1) made by the caller (the workflow's deterministic
    random), so this stays a pure function."""
    assert attempt_number >= 1
    assert 0 <= jitter_fraction < 1 and 0 <= jitter_unit <= 1
    if attempt_number > len(retry_delays_s):
        return None
    base_s = float(retry_delays_s[attempt_number - 1])
    delay_s = base_s * (1 + jitter_fraction * (2 * jitter_unit - 1))
    if retry_after_s is not None:
        delay_s = max(delay_s, min(retry_after_s, retry_after_max_s))
    return max(delay_s, 0.0)


def throttle_delay_s(*, throttled_waits: int, jitter_unit: float) -> float:
    """The wait before asking a busy endpoint for a slot again: 0.5 s doubling to 30 s, +-50%."""
    assert throttled_waits >= 0 and 0 <= jitter_unit <= 1
    base_s = min(THROTTLE_DELAY_S_MIN * 2 ** min(throttled_waits, 16), THROTTLE_DELAY_S_MAX)
    return base_s * (0.5 + jitter_unit)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds from `now` a `Retry-After` header asks for (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 64:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max((moment - now).total_seconds(), 0.0)


# ---------------------------------------------------------------------------- secrets
SECRET_PREFIX = "whsec_"
# The specification asks for 24 to 64 random bytes.
SECRET_BYTES = 32
SECRET_BYTES_MIN = 24
SECRET_BYTES_MAX = 64
ROTATION_OVERLAP_S_DEFAULT = 24 * 3600
ROTATION_OVERLAP_S_MAX = 7 * 24 * 3600


def format_signing_secret(raw: bytes) -> str:
    assert SECRET_BYTES_MIN <= len(raw) <= SECRET_BYTES_MAX
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_signing_secret(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookRuleError(f"a signing secret starts with {SECRET_PREFIX}", param="secret")
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError) as error:
        raise WebhookRuleError("a signing secret is whsec_ followed by base64", param="secret") from error
    if not SECRET_BYTES_MIN <= len(raw) <= SECRET_BYTES_MAX:
        raise WebhookRuleError(f"a signing secret holds {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} bytes", param="secret")
    return raw


def validate_rotation_overlap_s(overlap_s: int) -> int:
    if isinstance(overlap_s, bool) or not isinstance(overlap_s, int):
        raise WebhookRuleError("overlap_s must be an integer number of seconds", param="overlap_s")
    if not 0 <= overlap_s <= ROTATION_OVERLAP_S_MAX:
        raise WebhookRuleError(f"overlap_s must be between 0 and {ROTATION_OVERLAP_S_MAX} (7 days)", param="overlap_s")
    return overlap_s


# ---------------------------------------------------------------------------- envelope
ENVELOPE_OBJECT = "event"


def build_envelope(
    *, event_id: str, event_type: str, created_at: datetime, tenant_id: str, api_version: str, data: dict[str, Any]
) -> dict[str, Any]:
    """The payload every receiver gets. `api_version` versions the shape of `data.object`; the
    envelope's own fields only ever grow."""
    assert created_at.tzinfo is not None
    return {
        "id": event_id,
        "object": ENVELOPE_OBJECT,
        "type": event_type,
        "api_version": api_version,
        "created": int(created_at.timestamp()),
        "tenant": tenant_id,
        "data": {"object": data},
    }


def envelope_body(envelope: dict[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8): the same event gives the same bytes."""
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------------------- endpoints
ENDPOINTS_PER_TENANT_MAX = 16
URL_LENGTH_MAX = 2048
DESCRIPTION_LENGTH_MAX = 500
ENABLED_EVENTS_COUNT_MAX = 100
EVENT_TYPE_LENGTH_MAX = 100
ALL_EVENTS = "*"
_EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# Kept in the delivery log and logs: enough to see what a receiver said, never a whole page.
RESPONSE_BODY_STORED_MAX = 1024
RESPONSE_BODY_LOGGED_MAX = 200
ERROR_STORED_MAX = 500


def validate_enabled_events(enabled_events: Sequence[str]) -> list[str]:
    """Event types (`payment_intent.succeeded`) or `*` for all of them; no repeats."""
    if not 1 <= len(enabled_events) <= ENABLED_EVENTS_COUNT_MAX:
        raise WebhookRuleError(
            f"enabled_events needs 1 to {ENABLED_EVENTS_COUNT_MAX} event types (or ['*'])", param="enabled_events"
        )
    seen: set[str] = set()
    for index, event_type in enumerate(enabled_events):
        if event_type != ALL_EVENTS and not (
            isinstance(event_type, str) and len(event_type) <= EVENT_TYPE_LENGTH_MAX and _EVENT_TYPE_PATTERN.match(event_type)
        ):
            raise WebhookRuleError(
                f"{event_type!r} is not an event type like payment_intent.succeeded", param=f"enabled_events[{index}]"
            )
        if event_type in seen:
            raise WebhookRuleError(f"enabled_events repeats {event_type}", param=f"enabled_events[{index}]")
        seen.add(event_type)
    if ALL_EVENTS in seen and len(seen) > 1:
        raise WebhookRuleError("'*' already means every event type; list nothing beside it", param="enabled_events")
    return list(enabled_events)


def event_matches(enabled_events: Sequence[str], event_type: str) -> bool:
    return ALL_EVENTS in enabled_events or event_type in enabled_events


def validate_description(description: str) -> str:
    if len(description) > DESCRIPTION_LENGTH_MAX:
        raise WebhookRuleError(f"description must be at most {DESCRIPTION_LENGTH_MAX} characters", param="description")
    for character in description:
        if unicodedata.category(character) in ("Cc", "Cs") and character not in "\n\t":
            raise WebhookRuleError("description must not contain control or invalid characters", param="description")
    return description


# ---------------------------------------------------------------------------- SSRF
@dataclass(frozen=True)
class UrlPolicy:
    """What a deployment lets merchant-supplied URLs reach. Local dev and tests allow private
    targets (their receivers run on 127.0.0.1) and plain http; production allows neither."""

    allow_private_targets: bool
    require_https: bool


# Cloud instance-metadata services: never a webhook receiver, refused even where private targets
# are allowed, because reaching them from a worker can leak its credentials.
METADATA_ADDRESSES: frozenset[IpAddress] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure wire server
        "fd00:ec2::254",  # AWS over IPv6
    )
)
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"})
_NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64, Teredo client), if any:
    `::ffff:127.0.0.1` is loopback however it is written."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]
    return None


def address_block_reason(address: IpAddress, *, allow_private_targets: bool) -> str | None:
    """Why a webhook may not be sent to `address`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = address_block_reason(embedded, allow_private_targets=allow_private_targets)
            return f"{reason} (embedded in {address})" if reason else None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_multicast:
        return "a multicast address"
    if allow_private_targets:
        return None
    if address.is_unspecified or address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a reserved address"
    return None


# A label that is a number (decimal, 0-led octal or 0x hex): a host whose last label is one is an
# IPv4 address to URL parsers (WHATWG's "ends in a number"), never a name.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


def numeric_ipv4_host(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host written in a legacy numeric form stands for, as inet_aton,
    getaddrinfo and URL parsers read it: `2852039166`, `0xa9fea9fe`, `0251.0376.0251.0376` and
    `169.254.43518` are all 169.254.169.254, and `0` is 0.0.0.0. None for a name. Raises
    ValueError for a host that ends in a number yet is no address (`1.2.3.4.5`, `example.0`)."""
    labels = host.lower().rstrip(".").split(".")
    if not _NUMERIC_LABEL.match(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMERIC_LABEL.match(label) for label in labels):
        raise ValueError(f"{host} is not an IPv4 address")
    try:
        # inet_aton takes every legacy form (1 to 4 parts, octal, hex) and checks each part's range.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        raise ValueError(f"{host} is not an IPv4 address") from None


@dataclass(frozen=True)
class TargetUrl:
    scheme: str
    host: str  # lower-case; an IP literal without brackets
    port: int
    address: IpAddress | None  # set when the host is an IP literal


def parse_target_url(url: str, *, policy: UrlPolicy, param: str = "url") -> TargetUrl:
    """Check a merchant-supplied URL before it is stored or used: http(s), no credentials, a host,
    and, when the host is an IP literal or a name that is always local, an address the policy
    allows. Names are resolved and checked again at send time (DNS can change)."""
    if not isinstance(url, str) or not url:
        raise WebhookRuleError("url is required", param=param, code="parameter_missing")
    if len(url) > URL_LENGTH_MAX:
        raise WebhookRuleError(f"url must be at most {URL_LENGTH_MAX} characters", param=param)
    if any(character.isspace() or unicodedata.category(character) in ("Cc", "Cs") for character in url):
        raise WebhookRuleError("url must not contain spaces or control characters", param=param)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise WebhookRuleError(f"url is not a valid URL: {error}", param=param) from error
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookRuleError("url must start with https://", param=param)
    if scheme == "http" and policy.require_https:
        raise WebhookRuleError("url must use https", param=param)
    if parts.username is not None or parts.password is not None:
        raise WebhookRuleError("url must not carry a user name or password", param=param)
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise WebhookRuleError("url must name a host", param=param)
    port = port if port is not None else (443 if scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise WebhookRuleError("url's port must be between 1 and 65535", param=param)
    address: IpAddress | None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        # Not the dotted-quad form, yet maybe an address all the same (`http://2852039166/`):
        # the resolver and the sender would read it as one, so it is checked as one.
        try:
            address = numeric_ipv4_host(host)
        except ValueError:
            raise WebhookRuleError("url's host ends in a number but is not a valid IPv4 address", param=param) from None
    if address is not None:
        reason = address_block_reason(address, allow_private_targets=policy.allow_private_targets)
        if reason:
            raise WebhookRuleError(f"url points at {reason}, which webhooks may not reach", param=param, code="url_not_allowed")
    elif host in METADATA_HOSTNAMES:
        raise WebhookRuleError("url points at a cloud metadata service", param=param, code="url_not_allowed")
    elif not policy.allow_private_targets and (host == "localhost" or host.endswith((".localhost", ".local", ".internal"))):
        raise WebhookRuleError("url points at a local host name, which webhooks may not reach", param=param, code="url_not_allowed")
    return TargetUrl(scheme=scheme, host=host, port=port, address=address)


def truncate_text(text: str, length_max: int) -> str:
    """At most `length_max` characters, saying how much was cut; NUL removed (PostgreSQL's TEXT
    cannot hold it)."""
    text = text.replace("\x00", "")
    if len(text) <= length_max:
        return text
    return f"{text[:length_max]}... [{len(text) - length_max} more characters]"
