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


async def test_a_stall_while_waiting_for_the_clients_body_is_the_clients() -> None:
    dog = Watchdog(header_timeout=10, upstream_timeout=5, body_idle=1.0, body_min_rate=100)
    now = dog.now()

    async def parked() -> None:
        await asyncio.sleep(60)

    cases = {  # name: (reading, seconds since progress, body age in s, body bytes)
        "client_silent": (True, 1.5, 1.5, 10),
        "client_slow": (True, 0.1, 3.0, 150),  # 3 s > 1 s grace + 150 B / 100 B/s
        "client_steady": (True, 0.1, 3.0, 250),  # 3 s < 1 + 2.5 s
        "upstream_not_reading": (False, 1.5, 1.5, 10),  # the relay waits on the upstream, not the client
        "upstream_silent": (False, 6.0, 0.0, 0),
    }
    watches = {}
    for name, (reading, idle, age, nbytes) in cases.items():
        task = asyncio.ensure_future(parked())
        w = dog.watch()
        w.task = task
        w.reading, w.since, w.body_started, w.body_bytes = reading, now - idle, now - age, nbytes
        watches[name] = w
    dog.check()
    assert {name: w.expired for name, w in watches.items()} == {
        "client_silent": "client_timeout",
        "client_slow": "client_timeout",
        "client_steady": None,
        "upstream_not_reading": None,
        "upstream_silent": "upstream_timeout",
    }
    for w in watches.values():
        w.task.cancel()
    await asyncio.gather(*(w.task for w in watches.values()), return_exceptions=True)
