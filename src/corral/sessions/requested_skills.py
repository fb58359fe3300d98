"""The skills a request names (`environment.skills` of a hosted shell, `skills` of a new
container), resolved to bundles before any container is made: an unknown skill or a broken inline
bundle fails the request with nothing allocated."""

import asyncio
import base64
import binascii
import dataclasses
from collections.abc import Sequence
from typing import Any

from corral.protocol.errors import InvalidRequest
from corral.sessions.skill_bundle import SkillBundle, bundle_from_zip, check_skill_name
from corral.sessions.skills import SkillService


async def resolve_skills(
    service: SkillService | None, tenant: str, specs: Sequence[Any], param: str
) -> list[SkillBundle]:
    """Bundles for validated skill specs (`protocol.request.validate_skills`), in order."""
    bundles: dict[str, SkillBundle] = {}
    for index, spec in enumerate(specs):
        where = f"{param}[{index}]"
        if spec["type"] == "inline":
            bundle = await _inline(spec, where)
        else:
            if service is None:
                raise InvalidRequest("Skills are not enabled on this gateway.", param=where)
            bundle = await service.resolve(tenant, spec["skill_id"], spec.get("version"), param=where)
        if bundle.name in bundles and bundles[bundle.name].digest != bundle.digest:
            raise InvalidRequest(f"Two different skills are named '{bundle.name}'.", param=where)
        bundles[bundle.name] = bundle
    return list(bundles.values())


async def _inline(spec: dict[str, Any], where: str) -> SkillBundle:
    try:
        check_skill_name(spec["name"])
    except ValueError as exc:
        raise InvalidRequest(f"Invalid skill name: {exc}", param=f"{where}.name", code="invalid_value") from exc
    try:
        data = base64.b64decode(spec["source"]["data"], validate=True)
    except binascii.Error as exc:
        raise InvalidRequest("The skill's data is not valid base64.", param=f"{where}.source.data") from exc
    bundle = await asyncio.to_thread(bundle_from_zip, data, param=f"{where}.source.data")
    return dataclasses.replace(bundle, name=spec["name"], description=spec["description"])
