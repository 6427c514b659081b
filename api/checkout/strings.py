"""Every string the checkout page shows a person, by language: the templates, the status route and
checkout.js read them from here and nowhere else. To add a language, add a dict with the same
keys to `CATALOGS` (a test checks that every language has every key and the same placeholders).

Placeholders are `str.format` fields: `{merchant}`, `{amount}`, `{asset}`... The templates
escape what they insert; a string here is plain text, never HTML.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

DEFAULT_LANGUAGE = "en"

ENGLISH: dict[str, str] = {
    # page
    "page_title": "Pay {merchant}",
    "page_heading": "Pay {merchant}",
    "merchant_unknown": "the merchant",
    "amount_label": "Amount due",
    "amount_value": "{amount} {asset}",
    "network_label": "Network",
    "network_value": "{chain} (chain id {chain_id})",
    "asset_label": "Token",
    "token_contract_label": "Token contract",
    "description_label": "For",
    "expires_label": "Expires",
    "expires_at": "{time} UTC",
    "expires_in": "Expires in {time}",
    "expires_now": "Expiring now…",
    "noscript": "This page updates by itself when JavaScript is on. Without it, reload the page to see the payment's state.",
    "footer": "Payments are processed by Settle on behalf of {merchant}.",
    # paying
    "instructions": "Send exactly {amount} {asset} on {chain} to the address below, or scan the code with your wallet.",
    "instructions_remainder": "Send the remaining {amount} {asset} on {chain} to the same address, or scan the new code.",
    "only_this_token": "Send only {asset} on {chain} to this address. Other tokens or networks cannot be credited.",
    "deposit_address_label": "Deposit address",
    "copy_address": "Copy address",
    "copied": "Address copied",
    "copy_failed": "Could not copy. Select the address and copy it by hand.",
    "qr_label": "QR code of the payment request: {amount} {asset} to {address}",
    "qr_caption": "Scan with a wallet app",
    "wallet_button": "Pay with browser wallet",
    "wallet_connecting": "Asking your wallet for an account…",
    "wallet_switching": "Asking your wallet to switch to {chain}…",
    "wallet_confirm": "Confirm the transfer in your wallet…",
    "wallet_sent": "Transaction sent. This page updates when it is seen on chain.",
    "wallet_rejected": "The wallet did not send the payment: {reason}",
    "wallet_no_account": "The wallet shared no account.",
    "status_unavailable": "Cannot reach the server right now; retrying…",
    # states
    "state_waiting_title": "Waiting for your payment",
    "state_waiting_body": "This page updates as soon as your payment is seen on chain.",
    "state_confirming_title": "Payment seen: {count} of {required} confirmations",
    "state_confirming_title_unknown": "Payment seen: waiting for {required} confirmations",
    "state_confirming_body": "Your payment of {amount} {asset} is on chain. It is final after {required} confirmations; keep this page open or come back later.",
    "state_underpaid_title": "Partly paid: {remaining} {asset} still due",
    "state_underpaid_body": "We received {received} {asset} of {amount} {asset}. Send the remaining {remaining} {asset} to complete the payment.",
    "received_label": "Received",
    "remaining_label": "Still due",
    "state_paid_title": "Paid",
    "state_paid_body": "Thank you. {merchant} has received your payment of {amount} {asset}.",
    "state_overpaid_title": "Paid, with {excess} {asset} too much",
    "state_overpaid_body": "We received {received} {asset}, {excess} {asset} more than the {amount} {asset} due. Contact {merchant} to get the difference back.",
    "redirecting": "Taking you back to {merchant}…",
    "return_to_merchant": "Return to {merchant}",
    "state_expired_title": "This payment request expired",
    "state_expired_body": "It expired at {time} UTC. Do not send anything to its address any more.",
    "state_expired_received": "{received} {asset} arrived before it expired; contact {merchant} to get it back.",
    "state_canceled_title": "This payment request was canceled",
    "state_canceled_body": "{merchant} canceled it. Do not send anything to its address.",
    "back_to_merchant": "Back to {merchant}",
    # refusals
    "not_found_title": "Payment link not valid",
    "not_found_body": "This payment link is not valid. Check that you opened the whole link the merchant gave you.",
    "rate_limited_title": "Too many requests",
    "rate_limited_body": "Please wait {seconds} seconds, then reload this page.",
}

CATALOGS: dict[str, dict[str, str]] = {"en": ENGLISH}

# Chains by id: names a person recognises. Unknown ids show as "Chain <id>".
CHAIN_NAMES: dict[str, dict[int, str]] = {
    "en": {
        1: "Ethereum",
        10: "OP Mainnet",
        56: "BNB Smart Chain",
        137: "Polygon",
        8453: "Base",
        42161: "Arbitrum One",
        43114: "Avalanche C-Chain",
        11155111: "Sepolia",
        31337: "Anvil local test chain",
    }
}
CHAIN_UNKNOWN: dict[str, str] = {"en": "Chain {chain_id}"}

# The strings checkout.js needs, handed to it in a JSON data block (not a script).
SCRIPT_KEYS = (
    "expires_in",
    "expires_now",
    "copied",
    "copy_failed",
    "wallet_connecting",
    "wallet_switching",
    "wallet_confirm",
    "wallet_sent",
    "wallet_rejected",
    "wallet_no_account",
    "status_unavailable",
)


class Strings:
    """One language's strings: `strings("key", amount="1.00")` formats a string."""

    def __init__(self, language: str = DEFAULT_LANGUAGE) -> None:
        self.language = language if language in CATALOGS else DEFAULT_LANGUAGE
        self._catalog: Mapping[str, str] = CATALOGS[self.language]

    def __call__(self, key: str, /, **values: Any) -> str:
        return self._catalog[key].format(**values)

    def raw(self, key: str) -> str:
        return self._catalog[key]

    def chain_name(self, chain_id: int) -> str:
        name = CHAIN_NAMES.get(self.language, {}).get(chain_id)
        return name if name is not None else CHAIN_UNKNOWN[self.language].format(chain_id=chain_id)

    def for_script(self) -> dict[str, str]:
        return {key: self._catalog[key] for key in SCRIPT_KEYS}


def placeholders(text: str) -> frozenset[str]:
    return frozenset(field for _, field, _, _ in string.Formatter().parse(text) if field)
