"""The Redis channel layer's connections are bounded per event loop (issue 9: a burst of 2,000 live
subscriptions left ~450 connections open): past the cap, commands wait for a free connection."""

import asyncio
import time

from asgiref.sync import async_to_sync
from redis.exceptions import MaxConnectionsError

from config.settings import base
from graphql_api.channel_layer import BoundedRedisChannelLayer
from tests.frozen_redis import FrozenRedis

MAX_CONNECTIONS = 5


def test_a_burst_of_commands_opens_no_more_connections_than_the_cap():
    with FrozenRedis() as frozen:
        # given production's layer configuration, with a cap of 5, against a Redis that never answers
        [host] = base.redis_channel_layers(frozen.url)["default"]["CONFIG"]["hosts"]
        layer = BoundedRedisChannelLayer(hosts=[{**host, "max_connections": MAX_CONNECTIONS, "pool_timeout": 1}])

        async def fifty_hints_at_once() -> tuple[list, float]:
            started = time.monotonic()
            sends = [asyncio.wait_for(layer.group_send(f"payment.{n}", {"type": "hint"}), 1.5) for n in range(50)]
            outcomes = await asyncio.gather(*sends, return_exceptions=True)
            return outcomes, time.monotonic() - started

        # when 50 hints are sent at once
        outcomes, took = async_to_sync(fifty_hints_at_once)()

        # then 5 connections were opened; the other sends waited for one (no "Too many connections"),
        # and every send gave up within its bound
        assert len(frozen.connections) == MAX_CONNECTIONS
        assert {type(outcome).__name__ for outcome in outcomes} <= {"TimeoutError", "ConnectionError"}
        assert not [outcome for outcome in outcomes if isinstance(outcome, MaxConnectionsError)]
        assert took < 3
