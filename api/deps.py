"""The routes' dependencies, as Annotated aliases in one place.

    async def handler(device: DeviceCaller, service: ServiceDep): ...

A caller presents `Authorization: Bearer <token>`. No token or an unknown one: 401 with
`WWW-Authenticate: Bearer`. A token of another role: 403. Tokens are looked up by their
sha256 (api.registry); revoked tokens stop working at once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.registry import Principal
from api.service import Service

_bearer = HTTPBearer(auto_error=False, description="a device, official or admin token")


def get_service(request: Request) -> Service:
    """The Service opened by the app's lifespan."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def caller(service: ServiceDep,
           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
           ) -> Principal:
    """The authenticated principal. Raises 401 without a valid bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "a bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    found = service.registry.authenticate(credentials.credentials)
    if found is None:
        raise HTTPException(401, "unknown or revoked token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return found


def _role(*roles: str):
    def check(principal: Annotated[Principal, Depends(caller)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, f"this needs a {' or '.join(roles)} token, "
                                     f"not a {principal.role} token")
        return principal
    return check


DeviceCaller = Annotated[Principal, Depends(_role("device"))]
OfficialCaller = Annotated[Principal, Depends(_role("official"))]
ReaderCaller = Annotated[Principal, Depends(_role("official", "admin"))]
AdminCaller = Annotated[Principal, Depends(_role("admin"))]

# Responses every protected route may give, for the OpenAPI document.
AUTH_RESPONSES = {
    401: {"description": "no bearer token, or an unknown or revoked one"},
    403: {"description": "the token's role (or jurisdiction) does not allow this"},
}
