"""The service layer's contract: keyword-only functions, and refusals that are not HTTP errors but
map to one status each at the edge."""

import inspect

import pytest

from api.errors import ApiError, service_error
from api.services import errors, payment_intents, refunds
from api.temporal import TemporalConnector


def _service_functions():
    for module in (payment_intents, refunds):
        for name, function in inspect.getmembers(module, inspect.iscoroutinefunction):
            if function.__module__ == module.__name__ and not name.startswith("_"):
                yield f"{module.__name__}.{name}", function


def test_service_functions_take_keyword_arguments_only():
    functions = dict(_service_functions())
    assert "api.services.payment_intents.create_payment_intent" in functions and "api.services.refunds.create_intent_refund" in functions
    positional = {
        name: [p.name for p in inspect.signature(function).parameters.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        for name, function in functions.items()
    }
    assert {name: params for name, params in positional.items() if params} == {}


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.InvalidInput("amount is not an integer", param="amount"), 400, "parameter_invalid"),
        (errors.Conflict("not served here", code="asset_unavailable"), 409, "asset_unavailable"),
        (errors.Unavailable("retry later"), 503, "temporal_unavailable"),
    ],
)
def test_service_errors_map_to_one_status_each(error, status, code):
    assert not isinstance(error, ApiError)
    mapped = service_error(error)
    assert (mapped.status_code, mapped.code, mapped.message, mapped.param) == (status, code, error.message, error.param)
    assert ("Retry-After" in mapped.headers) is (status == 503)


async def test_an_unreachable_workflow_engine_is_a_service_error():
    connector = TemporalConnector(settings=None)  # never started: no client will come
    with pytest.raises(errors.Unavailable):
        await connector.get()
