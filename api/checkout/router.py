"""The hosted checkout page: `GET /checkout/{intent_id}?client_secret=...` (the intent's
`checkout_url`), its live state `GET /checkout/{intent_id}/status?client_secret=...` (JSON, polled
by checkout.js) and its static files.

These are plain Starlette routes, not `/v1` API routes: they answer HTML (or the page's own JSON),
take no API key, and stay out of the OpenAPI document. The client secret is the only key; a
wrong or missing one gets the same "not valid" page as an unknown id, in the same time. Every
answer carries a strict Content-Security-Policy (no inline script: checkout.js is a static
file), `Referrer-Policy: no-referrer` (the URL holds the secret) and `Cache-Control: no-store`.
Nothing of the merchant's side (fee, net, metadata, tenant id) reaches the page.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup

from api.auth import check_ip_rate_limit
from api.checkout.strings import Strings
from api.checkout.view import CheckoutState, CheckoutView, checkout_view
from api.errors import ApiError, error_response, not_found
from api.services.payment_intents import authorized_intent, payment_confirmations
from db.payment_intents import StoredIntent
from db.settings import CheckoutSettings, Settings
from db.tenants import TenantNotFound, get_tenant
from domain.money import Asset
from domain.payment_intents import IntentStatus

logger = logging.getLogger("settle.api")

PACKAGE_DIR = Path(__file__).parent

STATIC_TYPES = {
    "checkout.js": "text/javascript; charset=utf-8",
    "checkout.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# Loaded once: a fixed set of files, never a path from the request.
STATIC_FILES: dict[str, bytes] = {name: (PACKAGE_DIR / "static" / name).read_bytes() for name in STATIC_TYPES}
STATIC_VERSIONS = {name: hashlib.sha256(body).hexdigest()[:12] for name, body in STATIC_FILES.items()}
STATIC_MAX_AGE_S = 3600

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(PACKAGE_DIR / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter()


# ---------------------------------------------------------------------------- headers
def security_headers(settings: CheckoutSettings) -> dict[str, str]:
    ancestors = settings.frame_ancestors or "'none'"
    policy = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            f"frame-ancestors {ancestors}",
        ]
    )
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }
    if not settings.frame_ancestors:
        headers["X-Frame-Options"] = "DENY"
    return headers


def _secured(response: Response, settings: CheckoutSettings) -> Response:
    response.headers.update(security_headers(settings))
    return response


# ---------------------------------------------------------------------------- rendering
def _static_url(request: Request, name: str) -> str:
    return f"{request.scope.get('root_path', '')}/checkout/static/{name}?v={STATIC_VERSIONS[name]}"


def _render(name: str, request: Request, strings: Strings, **context: Any) -> str:
    return templates.get_template(name).render(
        t=strings, lang=strings.language, static=lambda file: _static_url(request, file), State=CheckoutState, **context
    )


def _checkout_settings(request: Request) -> CheckoutSettings:
    settings: Settings = request.app.state.settings
    return settings.checkout


def _page(request: Request, name: str, *, status_code: int, strings: Strings, settings: CheckoutSettings, **context: Any) -> Response:
    response = HTMLResponse(_render(name, request, strings, **context), status_code=status_code)
    return _secured(response, settings)


def _not_valid_page(request: Request, strings: Strings, settings: CheckoutSettings) -> Response:
    return _page(
        request, "message.html", status_code=404, strings=strings, settings=settings,
        title=strings("not_found_title"), body=strings("not_found_body"),
    )


def announcement(view: CheckoutView, strings: Strings) -> str:
    """The state in one sentence, for the page's status region (read out by screen readers)."""
    values = _amounts(view)
    if view.state is CheckoutState.CONFIRMING:
        if view.confirmations_count is None:
            return strings("state_confirming_title_unknown", required=view.confirmations_required)
        return strings("state_confirming_title", count=view.confirmations_count, required=view.confirmations_required)
    key = {
        CheckoutState.WAITING: "state_waiting_title",
        CheckoutState.UNDERPAID: "state_underpaid_title",
        CheckoutState.PAID: "state_paid_title",
        CheckoutState.OVERPAID: "state_overpaid_title",
        CheckoutState.EXPIRED: "state_expired_title",
        CheckoutState.CANCELED: "state_canceled_title",
    }[view.state]
    return strings(key, **values)


def _amounts(view: CheckoutView) -> dict[str, str]:
    return {
        "merchant": view.merchant,
        "asset": view.asset_symbol,
        "amount": view.tokens(view.amount_base_units),
        "received": view.tokens(view.amount_received_base_units),
        "remaining": view.tokens(view.amount_remaining_base_units),
        "excess": view.tokens(view.amount_excess_base_units),
        "time": view.expires_at_utc,
    }


def _state_context(request: Request, view: CheckoutView, strings: Strings, settings: CheckoutSettings) -> dict[str, Any]:
    return {
        "view": view,
        "values": _amounts(view),
        "chain": strings.chain_name(view.chain_id),
        "qr": Markup(view.payment_request.qr_svg) if view.payment_request else None,
        "announcement": announcement(view, strings),
        "redirect_delay_ms": settings.redirect_delay_ms,
    }


def _state_html(request: Request, strings: Strings, context: dict[str, Any]) -> str:
    return _render("state.html", request, strings, **context)


def _version(html: str) -> str:
    return hashlib.sha256(html.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- reads
def _asset_of(settings: Settings, intent: StoredIntent) -> Asset | None:
    asset = settings.assets().get(intent.asset)
    if asset is None or asset.chain_id != intent.chain_id or (asset.token_address or "").lower() != intent.token_address.lower():
        return None
    return asset


async def _merchant_name(request: Request, intent: StoredIntent, strings: Strings) -> str:
    try:
        return (await get_tenant(request.app.state.pool, tenant_id=intent.tenant_id)).name
    except TenantNotFound:
        return strings("merchant_unknown")


async def _confirmations(request: Request, intent: StoredIntent, settings: CheckoutSettings) -> dict[str, int] | None:
    """Each payment's confirmations, from the intent's workflow; None when it cannot say now (the
    page then shows "waiting for m confirmations" without a count)."""
    if intent.status != IntentStatus.PROCESSING or not intent.payments:
        return None
    return await payment_confirmations(
        temporal=request.app.state.temporal, intent=intent, timeout_s=settings.confirmations_query_timeout_s
    )


async def _view(request: Request, intent: StoredIntent, strings: Strings, settings: CheckoutSettings) -> CheckoutView:
    merchant, confirmations = await asyncio.gather(
        _merchant_name(request, intent, strings), _confirmations(request, intent, settings)
    )
    return checkout_view(intent, merchant=merchant, asset=_asset_of(request.app.state.settings, intent), confirmations=confirmations)


def _rate_limited(request: Request) -> ApiError | None:
    try:
        check_ip_rate_limit(request)
    except ApiError as error:
        return error
    return None


def _client_secret(request: Request) -> str | None:
    return request.query_params.get("client_secret")


# ---------------------------------------------------------------------------- routes
async def checkout_page(request: Request) -> Response:
    settings = _checkout_settings(request)
    strings = Strings()
    limited = _rate_limited(request)
    if limited is not None:
        seconds = limited.headers.get("Retry-After", "60")
        response = _page(
            request, "message.html", status_code=429, strings=strings, settings=settings,
            title=strings("rate_limited_title"), body=strings("rate_limited_body", seconds=seconds),
        )
        response.headers.update(limited.headers)
        return response
    intent = await authorized_intent(
        pool=request.app.state.pool, intent_id=request.path_params["intent_id"], client_secret=_client_secret(request)
    )
    if intent is None:
        return _not_valid_page(request, strings, settings)
    view = await _view(request, intent, strings, settings)
    context = _state_context(request, view, strings, settings)
    state_html = _state_html(request, strings, context)
    root_path = request.scope.get("root_path", "")
    return _page(
        request,
        "page.html",
        status_code=200,
        strings=strings,
        settings=settings,
        state_html=Markup(state_html),
        version=_version(state_html),
        status_url=f"{root_path}/checkout/{view.intent_id}/status",
        poll_interval_ms=settings.poll_interval_ms,
        server_now=datetime.now(timezone.utc).isoformat(),
        script_strings=strings.for_script(),
        **context,
    )


async def checkout_status(request: Request) -> Response:
    """The page's live state: the state fragment, re-rendered, and what the script needs."""
    settings = _checkout_settings(request)
    strings = Strings()
    limited = _rate_limited(request)
    if limited is not None:
        return _secured(error_response(request, limited), settings)
    intent = await authorized_intent(
        pool=request.app.state.pool, intent_id=request.path_params["intent_id"], client_secret=_client_secret(request)
    )
    if intent is None:
        return _secured(error_response(request, not_found(f"No such payment intent: {request.path_params['intent_id']}", param="id")), settings)
    view = await _view(request, intent, strings, settings)
    context = _state_context(request, view, strings, settings)
    html = _state_html(request, strings, context)
    body = {
        "object": "checkout_state",
        "state": str(view.state),
        "terminal": view.terminal,
        "version": _version(html),
        "html": html,
        "announcement": context["announcement"],
        "redirect_url": view.redirect_url,
        "redirect_after_ms": settings.redirect_delay_ms,
        "poll_after_ms": settings.poll_interval_ms,
        "expires_at": view.expires_at.isoformat(),
    }
    return _secured(JSONResponse(body), settings)


async def checkout_static(request: Request) -> Response:
    settings = _checkout_settings(request)
    name = request.path_params["name"]
    if name not in STATIC_FILES:
        return _not_valid_page(request, Strings(), settings)
    response = Response(STATIC_FILES[name], media_type=STATIC_TYPES[name])
    _secured(response, settings)
    # The URL carries the file's hash: a new file is a new URL, so caching is safe.
    response.headers["Cache-Control"] = f"public, max-age={STATIC_MAX_AGE_S}"
    return response


# Static first: "static" is no intent id anyway (ids start with pi_), but order makes it plain.
router.add_route("/checkout/static/{name}", checkout_static, methods=["GET"], name="checkout_static", include_in_schema=False)
router.add_route("/checkout/{intent_id}", checkout_page, methods=["GET"], name="checkout_page", include_in_schema=False)
router.add_route("/checkout/{intent_id}/status", checkout_status, methods=["GET"], name="checkout_status", include_in_schema=False)
