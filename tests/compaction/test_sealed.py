"""The compaction key lives in the database: a second store (another replica) on the same database
opens what the first sealed; a tenant cannot open another tenant's item."""

from pathlib import Path

import pytest

from corral.protocol.errors import APIError
from corral.responses import sealed
from corral.storage import Store


async def test_replicas_share_the_key_and_tenants_are_bound(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'corral.db'}"
    one, two = await Store.open(url), await Store.open(url)
    try:
        token = sealed.seal(await sealed.cipher(one), "team-a", {"summary": "the plan"})
        item = {"type": "compaction", "id": "cmp_1", "encrypted_content": token}
        assert sealed.unseal(await sealed.cipher(two), "team-a", item, "input[0]")["summary"] == "the plan"
        with pytest.raises(APIError) as other_tenant:
            sealed.unseal(await sealed.cipher(two), "team-b", item, "input[0]")
        assert (other_tenant.value.code, other_tenant.value.param) == ("invalid_encrypted_content", "input[0]")
    finally:
        await one.close()
        await two.close()
