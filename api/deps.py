"""The routes' dependencies, as Annotated aliases in one place.

    async def handler(device: DeviceCaller, service: ServiceDep): ...

Dependencies are `async def`: they never block (the registry answers from memory), and
FastAPI would otherwise run each in the thread pool, a hop that costs more than the check.

A caller presents `Authorization: Bearer <token>`. No token or an unknown one: 401 with
`WWW-Authenticate: Bearer`. A token of another role: 403. Tokens are looked up by their
sha256 (api.registry); revoked tokens stop working at once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.registry import Principal
from api.schemas import Problem
from api.service import Service

_bearer = HTTPBearer(auto_error=False, description="a device, official or admin token")


async def get_service(request: Request) -> Service:
    """The Service opened by the app's lifespan."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


async def caller(service: ServiceDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                 ) -> Principal:
    """The authenticated principal. Raises 401 without a valid bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "a bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal_of(service, credentials.credentials)


def principal_of(service: Service, token: str) -> Principal:
    """The live principal holding `token`. Raises 401 for an unknown, revoked or
    expired one."""
    found = service.registry.authenticate(token)
    if found is None:
        raise HTTPException(401, "unknown, revoked or expired token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return found


def bearer_principal(service: Service, authorization: str | None, role: str) -> Principal:
    """For raw routes: the principal of an `Authorization` header value, which must hold
    `role`. Raises 401 or 403 exactly as the dependencies do."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "a bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = principal_of(service, token.strip())
    if principal.role != role:
        raise HTTPException(403, _wrong_role((role,), principal.role))
    return principal


def _wrong_role(roles: tuple[str, ...], held: str) -> str:
    """'this needs an official or admin token, not a device token'."""
    def article(word: str) -> str:
        return f"an {word}" if word[0] in "aeiou" else f"a {word}"

    return f"this needs {article(' or '.join(roles))} token, not {article(held)} token"


def _role(*roles: str):
    async def check(principal: Annotated[Principal, Depends(caller)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, _wrong_role(roles, principal.role))
        return principal
    return check


DeviceCaller = Annotated[Principal, Depends(_role("device"))]
OfficialCaller = Annotated[Principal, Depends(_role("official"))]
ReaderCaller = Annotated[Principal, Depends(_role("official", "admin"))]
AdminCaller = Annotated[Principal, Depends(_role("admin"))]

# Responses every protected route may give, for the OpenAPI document.
AUTH_RESPONSES = {
    401: {"model": Problem, "description": "no bearer token, or an unknown or revoked one",
          "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"},
                                           "description": "Bearer"}}},
    403: {"model": Problem,
          "description": "the token's role (or jurisdiction) does not allow this"},
}
