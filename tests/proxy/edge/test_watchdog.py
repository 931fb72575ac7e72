import asyncio

from proxy.edge.watchdog import Watchdog


async def test_overdue_exchange_is_cancelled_and_marked_expired() -> None:
    dog = Watchdog(header_timeout=10, upstream_timeout=0.2)
    marks = {}

    async def exchange(name: str, progress: bool) -> str:
        w = dog.watch()
        marks[name] = w
        try:
            for _ in range(10):
                await asyncio.sleep(0.05)
                if progress:
                    w.since = dog.now()  # a body chunk arrived
            return "done"
        except asyncio.CancelledError:
            return "expired" if w.expired else "cancelled"
        finally:
            dog.unwatch(w)

    stalled = asyncio.create_task(exchange("stalled", False))
    flowing = asyncio.create_task(exchange("flowing", True))
    for _ in range(12):
        await asyncio.sleep(0.05)
        dog.check()
    assert await stalled == "expired"
    assert await flowing == "done"
    assert not marks["flowing"].expired


def test_tick_is_a_fraction_of_the_shortest_deadline() -> None:
    async def make() -> Watchdog:
        return Watchdog(header_timeout=0.4, upstream_timeout=60)

    dog = asyncio.run(make())
    assert dog.tick == 0.1
