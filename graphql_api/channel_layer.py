"""channels_redis' layer with a bounded pool of connections per event loop.

channels_redis makes one redis-py pool per event loop, unbounded: a burst of group joins (issue 9:
2,000 subscriptions) left hundreds of connections open. Here each loop's pool holds at most
`max_connections`, and a command waits up to `pool_timeout` seconds for a free one (then fails,
which the live subscriptions and hints treat like Redis being away).
"""

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class BoundedRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index):
        host = dict(self.hosts[index])
        address = host.pop("address")
        timeout = host.pop("pool_timeout", None)
        return BlockingConnectionPool.from_url(address, timeout=timeout, **host)
