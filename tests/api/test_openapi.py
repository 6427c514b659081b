"""The OpenAPI document says what the API does: every route, our error shape for every error,
the headers, the idempotency header on every POST, the list parameters on every list."""

from __future__ import annotations

import typing

from pydantic import BaseModel, ValidationError

from api.app import create_app
from api.routing import iter_api_routes
from api.schemas import Input
from contracts.deploy import TEST_TOKEN_NAMES
from db.settings import Settings
from tests.api.routes import ROUTES

DOCUMENT = create_app().openapi()
OPERATIONS = [(path, method, operation) for path, item in DOCUMENT["paths"].items() for method, operation in item.items()]


def _resolve(ref: str) -> dict:
    name = ref.rsplit("/", 1)[1]
    return DOCUMENT["components"]["schemas"][name]


async def test_served_at_openapi_json_and_docs(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200 and response.json() == DOCUMENT
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower() and "x-request-id" in docs.headers


def test_every_route_is_in_the_document():
    for route in iter_api_routes(create_app()):
        for method in route.methods - {"HEAD"}:
            assert method.lower() in DOCUMENT["paths"].get(route.path_format, {}), f"{method} {route.path_format}"
    for case in ROUTES:
        assert case.method.lower() in DOCUMENT["paths"][case.path]


def test_no_fastapi_validation_model_left():
    assert "HTTPValidationError" not in DOCUMENT["components"]["schemas"]
    for path, method, operation in OPERATIONS:
        assert "422" not in operation["responses"], (path, method)


def test_errors_are_documented_with_the_error_shape():
    error = DOCUMENT["components"]["schemas"]["ErrorResponse"]
    detail = _resolve(error["properties"]["error"]["$ref"])
    assert set(detail["required"]) == {"type", "code", "message", "param", "request_id"}
    for path, method, operation in OPERATIONS:
        responses = operation["responses"]
        expected = {"500"}
        if operation.get("security"):
            expected |= {"401", "403", "429"}
        if operation.get("parameters") or "requestBody" in operation:
            expected.add("400")
        if method in ("post", "put", "patch"):
            expected.add("413")
        if "{" in path:
            expected.add("404")
        if method == "post":
            expected.add("409")
        assert expected <= set(responses), (path, method, set(responses))
        for status, response in responses.items():
            assert "X-Request-Id" in response["headers"], (path, method, status)
            if status.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
            if operation.get("security"):
                assert "RateLimit-Remaining" in response["headers"]
        if operation.get("security"):
            assert "Retry-After" in responses["429"]["headers"]
            assert operation["x-rate-limit-tier"] in {"create", "write", "read"}


def test_every_post_takes_an_idempotency_key():
    for path, method, operation in OPERATIONS:
        if method == "post":
            names = {parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "header"}
            assert "Idempotency-Key" in names, path
            assert "Idempotent-Replayed" in operation["responses"][next(s for s in operation["responses"] if s.startswith("2"))]["headers"]


def test_every_list_has_bounded_cursor_parameters():
    for case in ROUTES:
        if not case.list_route:
            continue
        parameters = {p["name"]: p for p in DOCUMENT["paths"][case.path]["get"]["parameters"]}
        assert {"limit", "starting_after", "ending_before", "created_gte", "created_lte"} <= set(parameters)
        assert parameters["limit"]["schema"]["maximum"] == 100 and parameters["limit"]["schema"]["minimum"] == 1
        assert type(parameters["limit"]["schema"]["maximum"]) is int
        response = DOCUMENT["paths"][case.path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        listed = _resolve(response["$ref"])
        assert {"object", "data", "has_more", "url"} <= set(listed["properties"])


def test_bearer_auth_is_declared():
    scheme = DOCUMENT["components"]["securitySchemes"]["BearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert not DOCUMENT["paths"]["/healthz"]["get"].get("security")


def test_secrets_in_responses_are_documented_as_shown_once():
    created = DOCUMENT["components"]["schemas"]["ApiKeyCreated"]
    assert "shown in this response only" in created["properties"]["secret"]["description"]
    read = DOCUMENT["components"]["schemas"]["ApiKeyRead"]
    assert "secret" not in read["properties"]


def _request_models() -> set[type[BaseModel]]:
    """Every model a request body is made of: the bodies' own and those nested in them."""
    found: set[type[BaseModel]] = set()

    def visit(annotation: typing.Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.add(annotation)
                for field in annotation.model_fields.values():
                    visit(field.annotation)
        for argument in typing.get_args(annotation):
            visit(argument)

    for route in iter_api_routes(create_app()):
        if route.body_field is not None:
            visit(route.body_field.field_info.annotation)
    return found


def _allows_null(schema: dict) -> bool:
    return schema.get("type") == "null" or any(_allows_null(option) for option in schema.get("anyOf", []))


def test_a_field_is_nullable_in_the_document_exactly_when_the_api_takes_null():
    models = _request_models()
    assert {"TenantUpdate", "WebhookEndpointUpdate", "PaymentIntentCreate"} <= {model.__name__ for model in models}
    for model in models:
        assert issubclass(model, Input), model.__name__
        documented = DOCUMENT["components"]["schemas"][model.__name__]
        for name, field_schema in documented["properties"].items():
            try:
                model.model_validate({name: None})
                refused = False
            except ValidationError as error:
                refused = any(tuple(e["loc"])[:1] == (name,) for e in error.errors())
            nullable = _allows_null(field_schema)
            assert nullable != refused, f"{model.__name__}.{name}: the document says nullable={nullable}, the API refuses null={refused}"
            if not nullable:
                assert field_schema.get("default", "absent") is not None, f"{model.__name__}.{name}: default null on a non-nullable field"


def test_fields_left_out_but_never_null_are_not_nullable():
    for model, names in (("TenantUpdate", ("name", "payout_addresses", "approvers")), ("WebhookEndpointUpdate", ("url", "enabled_events", "description", "disabled"))):
        properties = DOCUMENT["components"]["schemas"][model]["properties"]
        for name in names:
            assert not _allows_null(properties[name]) and "default" not in properties[name], (model, name, properties[name])


def test_asset_is_an_enum_of_the_assets_the_api_knows():
    asset = DOCUMENT["components"]["schemas"]["PaymentIntentCreate"]["properties"]["asset"]
    every_token = Settings(env="test", contracts={name: "0x" + "1" * 40 for name in TEST_TOKEN_NAMES})
    assert asset["type"] == "string" and sorted(asset["enum"]) == sorted(every_token.assets())


def test_the_description_says_integers_are_json_integers():
    assert "an integer field takes a JSON integer" in DOCUMENT["info"]["description"]
    amount = DOCUMENT["components"]["schemas"]["PaymentIntentCreate"]["properties"]["amount"]
    assert {option["type"] for option in amount["anyOf"]} == {"integer", "string"} and "Never a float" in amount["description"]
