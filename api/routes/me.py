"""Who is calling: the principal behind a bearer token (the page shows it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import AUTH_RESPONSES, caller
from api.registry import Principal
from api.schemas import PrincipalOut

router = APIRouter(prefix="/v1", tags=["session"])


@router.get("/me", response_model=PrincipalOut, responses=AUTH_RESPONSES,
            summary="the principal of this token")
async def me(principal: Annotated[Principal, Depends(caller)]) -> dict:
    """Name, role, jurisdiction (and venue, for a device) of the calling token."""
    return principal.to_dict()
