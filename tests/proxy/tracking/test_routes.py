from __future__ import annotations

import pytest

from proxy.tracking.routes import CACHE_SIZE, MAX_ROUTE_CHARS, RouteTemplates, classify, collapse

TEMPLATES = (
    "/products/{id}",
    "/products/new",
    "/blog/{slug}/comments",
    "/static/{path...}",
    "/static/special.css",
    "/",
    "/users/{user}/files/{rest...}",
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("/products/42", "/products/{id}"),
        ("/products/blue-shoe", "/products/{id}"),
        ("/products/42/", "/products/{id}"),
        ("/products/new", "/products/new"),  # literal beats {id} though listed later
        ("/blog/hello-world/comments", "/blog/{slug}/comments"),
        ("/static/css/site.css", "/static/{path...}"),
        ("/static/special.css", "/static/special.css"),
        ("/static/special.css/x", "/static/{path...}"),  # backtracks to the catch-all
        ("/users/7/files/a/b/c", "/users/{user}/files/{rest...}"),
        # no template: collapsed
        ("/static/", "/static/"),
        ("/products", "/products"),
        ("/products/42/reviews", "/products/{id}/reviews"),
        ("/blog/hello/comments/9", "/blog/hello/comments/{id}"),
        ("*", "{other}"),
    ],
)
def test_templates(path: str, expected: str) -> None:
    assert RouteTemplates(TEMPLATES).route(path) == expected


def test_first_of_equal_templates_wins() -> None:
    routes = RouteTemplates(("/a/{x}", "/a/{y}"))
    assert routes.route("/a/1") == "/a/{x}"


@pytest.mark.parametrize(
    "bad", ["products/{id}", "/static/{path...}/more", "/a/{}", "/a/{b", "/a/{...}"]
)
def test_bad_templates_raise(bad: str) -> None:
    with pytest.raises(ValueError, match="route template"):
        RouteTemplates((bad,))


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("", ""),
        ("products", "products"),
        ("12345", "{id}"),
        ("550e8400-e29b-41d4-a716-446655440000", "{uuid}"),
        ("550E8400-E29B-41D4-A716-446655440000", "{uuid}"),
        ("deadbeefcafebabe", "{hex}"),
        ("0123456789abcdef0123", "{hex}"),
        ("deadbeefcafe", "deadbeefcafe"),  # short hex: a word, not an id
        ("john@example.com", "{email}"),
        ("john%40example.com", "{email}"),
        ("[email]", "{email}"),
        ("aZ3kq9x8Lm2Pq7RtYw0b", "{token}"),
        ("k3j4h5k6j7h8g9f0d1s2a3", "{token}"),
        ("AbC-dEf_123456789xyzQ", "{token}"),
        ("my-trip-to-rome-in-2024", "my-trip-to-rome-in-2024"),
        ("a-very-long-article-slug-name", "a-very-long-article-slug-name"),
        ("abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz"),  # no digits
        ("index.html", "index.html"),
    ],
)
def test_classify(segment: str, expected: str) -> None:
    assert classify(segment) == expected


def test_collapse_caps_depth_and_length() -> None:
    assert collapse("/a/b/c/d/e/f/g/h/i/j") == "/a/b/c/d/e/f/g/h/{...}"
    long = collapse("/" + "/".join(["word" * 10] * 8))
    assert len(long) <= MAX_ROUTE_CHARS
    assert long.endswith("/{...}")
    assert collapse("/" + "x" * 1000) == "/{...}"


def test_cache_is_bounded_and_consistent() -> None:
    routes = RouteTemplates(())
    for i in range(CACHE_SIZE + 500):
        assert routes.route(f"/item/{i}/x{i}") == f"/item/{{id}}/x{i}"
    assert len(routes._cache) == CACHE_SIZE
    assert routes.route("/item/1/x1") == "/item/{id}/x1"
