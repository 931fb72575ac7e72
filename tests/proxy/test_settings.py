from pathlib import Path

import pytest

from proxy.settings import Address, ConfigError, Upstream, load


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "footfall.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    s = load(None, env={})
    assert s.listen == Address("127.0.0.1", 8080)
    assert s.admin_listen == Address("127.0.0.1", 9108)
    assert s.redis.url is None and s.redis.stream_key == "footfall:events"
    assert s.data_dir == Path("./footfall-data")


def test_flags_override_env_override_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, 'listen = "127.0.0.1:1111"\nworkers = 3\n[redis]\nurl = "redis://file:6379/0"\n')
    env = {"FOOTFALL_LISTEN": "127.0.0.1:2222", "FOOTFALL_REDIS_URL": "redis://env:6379/0"}
    s = load(cfg, {"listen": "127.0.0.1:3333"}, env=env)
    assert s.listen.port == 3333
    assert s.redis.url == "redis://env:6379/0"
    assert s.workers == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://10.0.0.5:8080", Upstream("", "http://10.0.0.5:8080")),
        ("Shop.Example=http://10.0.0.5:8080/", Upstream("shop.example", "http://10.0.0.5:8080")),
        ("*.example=https://u.internal", Upstream("*.example", "https://u.internal")),
        ("*=http://a", Upstream("", "http://a")),
    ],
)
def test_upstream_forms(value, expected) -> None:
    assert load(None, {"upstreams": [value]}, env={}).upstreams == (expected,)


def test_upstreams_from_env_are_space_or_comma_separated() -> None:
    s = load(None, env={"FOOTFALL_UPSTREAM": "a.example=http://a,http://b"})
    assert [u.host for u in s.upstreams] == ["a.example", ""]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[upstreams]]\nhost = "x"\nurl = "ftp://x"\n', "upstreams[0].url: not an http(s) URL"),
        ('upstreams = ["http://a", "http://b"]\n', "upstreams: host '(catch-all)' configured twice"),
        ('listen = "nowhere"\n', "listen: not HOST:PORT"),
        ("workers = 0\n", "workers: must be greater than 0"),
        ('workers = "many"\n', "workers: must be an integer"),
        ("[limits]\nmax_body_bytes = -1\n", "limits.max_body_bytes: must be greater than 0"),
        ("[limits]\nupstream_idle_seconds = 0\n", "limits.upstream_idle_seconds: must be greater than 0"),
        ("[limits]\nclient_body_idle_seconds = 0\n", "limits.client_body_idle_seconds: must be greater than 0"),
        ("[limits]\nclient_body_min_rate_bytes = -5\n", "limits.client_body_min_rate_bytes: must be 0"),
        ("[limits]\nmax_bodybytes = 1\n", "limits.max_bodybytes: unknown setting"),
        ('[identity]\nmode = "fingerprint"\n', "identity.mode: must be 'cookie' or 'cookieless'"),
        ('[redis]\nurl = "http://x"\n', "redis.url: must be redis://"),
        ('trusted_proxies = ["10.0.0.0/8", "nope"]\n', "trusted_proxies[1]: not an IP address or network"),
        ('routes = ["products/{id}"]\n', "routes[0]: must start with '/'"),
        ("[enrichment]\nbot_score_threshold = 0\n", "enrichment.bot_score_threshold: must be 1-99"),
        ("[enrichment]\nbot_score_actors = 0\n", "enrichment.bot_score_actors: must be greater than 0"),
        ("[enrichment]\nbeacon_grace_seconds = 0\n", "enrichment.beacon_grace_seconds: must be more than 0"),
        ('[enrichment]\nhoneypot_paths = ["trap"]\n', "enrichment.honeypot_paths[0]: must be a path"),
        ("colour = 1\n", "colour: unknown setting"),
        ("[identity\n", "not valid TOML"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), env={})
    assert any(message in e for e in info.value.errors), info.value.errors


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, 'workers = 0\nlisten = "x"\n'), env={})
    assert len(info.value.errors) == 2


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "absent.toml", env={})


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "footfall.example.toml"
    s = load(example, env={})
    assert s.upstreams


def test_bad_route_template_is_reported_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, 'routes = ["/ok/{id}", "/bad/{x...}/more"]\n'), env={})
    assert [e for e in info.value.errors if e.startswith("routes[1]: ")], info.value.errors


def test_cookie_secret_is_created_once_and_reused(tmp_path: Path) -> None:
    from proxy.edge.server import ensure_cookie_secret

    s = load(None, {"data_dir": str(tmp_path)}, env={})
    first = ensure_cookie_secret(s).identity.cookie_secret
    assert len(first) == 64
    assert ensure_cookie_secret(s).identity.cookie_secret == first
    assert (tmp_path / "cookie_secret").stat().st_mode & 0o777 == 0o600
    configured = load(None, {"data_dir": str(tmp_path)}, env={"FOOTFALL_COOKIE_SECRET": "abc"})
    assert ensure_cookie_secret(configured).identity.cookie_secret == "abc"


# --- sharded stream (issue 14) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "keys"),
    [
        ({}, ["footfall:events"]),
        ({"FOOTFALL_STREAM_SHARDS": "1", "FOOTFALL_REDIS_URL": "redis://h:1"}, ["footfall:events"]),
        ({"FOOTFALL_STREAM_SHARDS": "3"}, ["footfall:events:{s0.", "footfall:events:{s1.", "footfall:events:{s2."]),
        ({"FOOTFALL_REDIS_URL": "redis-cluster://h1:7000,h2:7001"}, ["footfall:events:{s0."]),
    ],
)
def test_stream_shards_and_cluster_urls(env: dict[str, str], keys: list[str]) -> None:
    s = load(env=env)
    assert len(s.redis.shard_keys) == len(keys)
    assert all(k.startswith(prefix) for k, prefix in zip(s.redis.shard_keys, keys, strict=True))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FOOTFALL_STREAM_SHARDS": "0"}, "redis.stream_shards: must be greater than 0"),
        ({"FOOTFALL_STREAM_SHARDS": "2000"}, "redis.stream_shards: at most 1024"),
        ({"FOOTFALL_STREAM_SHARDS": "x"}, "redis.stream_shards: must be an integer"),
        ({"FOOTFALL_REDIS_URL": "redis-cluster://h1"}, "redis.url: redis-cluster URL: not HOST:PORT"),
        ({"FOOTFALL_REDIS_URL": "memcache://h:1"}, "redis.url: must be redis://"),
    ],
)
def test_stream_shard_errors_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(env=env)
    assert any(e.startswith(message) for e in err.value.errors), err.value.errors
