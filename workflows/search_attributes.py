"""Search attributes that make Settle's workflows findable in the Temporal Web UI.

Registered on the dev server by `settle up` (from ALL_SEARCH_ATTRIBUTES).
"""

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

SETTLE_TENANT = SearchAttributeKey.for_keyword("SettleTenant")
SETTLE_KIND = SearchAttributeKey.for_keyword("SettleKind")
SETTLE_STATUS = SearchAttributeKey.for_keyword("SettleStatus")
SETTLE_WALLET = SearchAttributeKey.for_keyword("SettleWallet")
SETTLE_CHAIN = SearchAttributeKey.for_keyword("SettleChain")  # e.g. "evm:31337"
SETTLE_DEPOSIT_ADDRESS = SearchAttributeKey.for_keyword("SettleDepositAddress")  # lowercase 0x-hex
# All keyword attributes; `settle up` registers exactly these on the dev server.
ALL_SEARCH_ATTRIBUTES = (SETTLE_TENANT, SETTLE_KIND, SETTLE_STATUS, SETTLE_WALLET, SETTLE_CHAIN, SETTLE_DEPOSIT_ADDRESS)


def chain_attribute(chain_id: int) -> str:
    return f"evm:{chain_id}"


def search_attributes(
    *, kind: str, tenant: str | None = None, status: str | None = None, chain: str | None = None, deposit_address: str | None = None
) -> TypedSearchAttributes:
    pairs = [SearchAttributePair(SETTLE_KIND, kind)]
    for key, value in ((SETTLE_TENANT, tenant), (SETTLE_STATUS, status), (SETTLE_CHAIN, chain), (SETTLE_DEPOSIT_ADDRESS, deposit_address)):
        if value is not None:
            pairs.append(SearchAttributePair(key, value))
    return TypedSearchAttributes(pairs)
