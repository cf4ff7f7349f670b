"""Rate limits counted in Redis are shared by every app instance (worker or machine)."""

from __future__ import annotations

import pytest

from geomap import create_app
from geomap.config import ConfigError, load_settings
from tests.conftest import app_config, sessions_on
from tests.members_helpers import add_member, sign_in


def _instance(connection, tmp_path, storage: str, name: str):  # noqa: ANN001, ANN202
    """One app instance, as a gunicorn worker would hold it."""
    return create_app(app_config(tmp_path / name, GEOMAP_SESSIONS=sessions_on(connection),
                                 WTF_CSRF_ENABLED=False,
                                 GEOMAP_NEARBY_RATE_LIMIT="3 per minute",
                                 GEOMAP_RATELIMIT_STORAGE_URL=storage))


def test_two_instances_share_one_limit_in_redis(connection, session, tmp_path,
                                                redis_url) -> None:
    account_id, _ = add_member(session, "shared-limit-heron", lat=53.55, lng=10.0)
    session.commit()
    first, second = (_instance(connection, tmp_path, redis_url, name).test_client()
                     for name in ("a", "b"))
    for client in (first, second):
        sign_in(client, account_id)
    statuses = [first.get("/api/v1/nearby?condition=all").status_code,
                second.get("/api/v1/nearby?condition=all").status_code,
                first.get("/api/v1/nearby?condition=all").status_code,
                second.get("/api/v1/nearby?condition=all").status_code]
    assert statuses == [200, 200, 200, 429]
    # Another member has a budget of their own.
    other_id, _ = add_member(session, "shared-limit-otter", lat=48.1, lng=11.6)
    session.commit()
    sign_in(second, other_id)
    assert second.get("/api/v1/nearby?condition=all").status_code == 200


def test_memory_storage_counts_per_instance(connection, session, tmp_path) -> None:
    account_id, _ = add_member(session, "memory-limit-heron", lat=53.55, lng=10.0)
    session.commit()
    first, second = (_instance(connection, tmp_path, "memory://", name).test_client()
                     for name in ("a", "b"))
    for client in (first, second):
        sign_in(client, account_id)
    statuses = [c.get("/api/v1/nearby?condition=all").status_code
                for c in (first, second, first, second)]
    assert statuses == [200, 200, 200, 200]  # why one process only should use memory://


def test_a_bad_storage_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        load_settings({"GEOMAP_RATELIMIT_STORAGE_URL": "mysql://x"})
