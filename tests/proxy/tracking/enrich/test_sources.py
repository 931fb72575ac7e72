"""The compiled host → source index: Matomo's lists plus config/referrers.json."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.tracking.enrich import Enricher, data
from proxy.tracking.enrich.sources import SourceIndex, entry_key, host_forms


@pytest.fixture(scope="module")
def index() -> SourceIndex:
    return SourceIndex(data.load("matomo/matomo.json"), data.load("referrers.json"))


def _referrer(e: Enricher, referer: str) -> Any:
    return e.enrich(site="shop.example", path="/", query=[], user_agent="curl/8", referer=referer,
                    client_ip=None, country_header=None)["referrer"]  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("google.com", ("google.com", "")),
        ("www.abacho.de", ("abacho.de", "")),
        ("google.{}", ("google.*", "")),
        ("google.*", ("google.*", "")),
        ("{}.bing.com/images/search", ("*.bing.com", "/images/search")),
        ("apollo.lv/portal/search/", ("apollo.lv", "/portal/search")),
        ("images.{}.ask.com", ("images.*.ask.com", "")),
        ("android-app//com.google.android.googlequicksearchbox/https/www.google.com",
         ("com.google.android.googlequicksearchbox", "/https/www.google.com")),
        ("X.com/i/grok", ("x.com", "/i/grok")),
    ],
)
def test_entry_key(entry: str, key: tuple[str, str]) -> None:
    assert entry_key(entry) == key


@pytest.mark.parametrize(
    ("host", "forms"),
    [
        ("t.co", ["t.co", "t.*", "*.co"]),
        ("google.co.uk", ["google.co.uk", "google.co.*", "google.*", "*.co.uk", "google.*.uk"]),
        ("images.de.ask.com", ["images.de.ask.com", "images.de.ask.*", "*.de.ask.com", "images.*.ask.com",
                               "images.de.*.com"]),
    ],
)
def test_host_forms(host: str, forms: list[str]) -> None:
    assert list(host_forms(host.split("."))) == forms


# A sample of hosts per category: Matomo's three lists, then our own additions.
@pytest.mark.parametrize(
    ("host", "path", "name", "medium"),
    [
        # search engines (SearchEngines.yml)
        ("www.google.com", "/", "Google", "search"),
        ("www.google.com.br", "/", "Google", "search"),
        ("encrypted.google.com", "/", "Google", "search"),
        ("www.bing.com", "/search", "Bing", "search"),
        ("cn.bing.com", "/", "Bing", "search"),
        ("duckduckgo.com", "/", "DuckDuckGo", "search"),
        ("search.yahoo.com", "/", "Yahoo!", "search"),
        ("yandex.ru", "/search/", "Yandex", "search"),
        ("ya.ru", "/", "Yandex", "search"),
        ("www.baidu.com", "/s", "Baidu", "search"),
        ("www.ecosia.org", "/search", "Ecosia", "search"),
        ("www.qwant.com", "/", "Qwant", "search"),
        ("search.naver.com", "/", "Naver", "search"),
        ("search.seznam.cz", "/", "Seznam", "search"),
        ("search.aol.com", "/aol/search", "AOL", "search"),
        ("www.ask.com", "/web", "Ask", "search"),
        ("images.de.ask.com", "/", "Ask", "search"),
        ("go.mail.ru", "/search", "Mailru", "search"),
        ("search.ke.voila.fr", "/", "Voila", "search"),
        ("www.ixquick.com", "/do/search", "IxQuick", "search"),
        ("suche.t-online.de", "/", "T-Online", "search"),
        ("www.so.com", "/s", "360search", "search"),
        # social networks (Socials.yml)
        ("www.facebook.com", "/", "Facebook", "social"),
        ("l.facebook.com", "/l.php", "Facebook", "social"),
        ("m.facebook.com", "/", "Facebook", "social"),
        ("t.co", "/abc", "Twitter", "social"),
        ("x.com", "/someone", "Twitter", "social"),
        ("www.linkedin.com", "/feed/", "LinkedIn", "social"),
        ("www.reddit.com", "/r/python", "reddit", "social"),
        ("www.youtube.com", "/watch", "YouTube", "social"),
        ("www.instagram.com", "/", "Instagram", "social"),
        ("news.ycombinator.com", "/item", "Hacker News", "social"),
        ("github.com", "/footfall", "GitHub", "social"),
        ("bsky.app", "/profile/x", "Bluesky", "social"),
        # AI assistants (AIAssistants.yml); chatgpt.com and you.com are in the search list too
        ("chatgpt.com", "/", "ChatGPT", "chatbot"),
        ("chat.openai.com", "/", "ChatGPT", "chatbot"),
        ("you.com", "/search", "You", "chatbot"),
        ("www.perplexity.ai", "/search/x", "Perplexity", "chatbot"),
        ("claude.ai", "/chat/1", "Claude", "chatbot"),
        ("gemini.google.com", "/app", "Gemini", "chatbot"),
        ("copilot.microsoft.com", "/", "Copilot", "chatbot"),
        ("chat.deepseek.com", "/", "Deepseek", "chatbot"),
        ("x.com", "/i/grok", "Grok", "chatbot"),  # a path rule beats the host's own rule
        # webmail (ours): the European providers included
        ("mail.google.com", "/mail/u/0/", "Gmail", "email"),
        ("outlook.live.com", "/mail/0/", "Outlook.com", "email"),
        ("mail.yahoo.com", "/", "Yahoo! Mail", "email"),
        ("navigator.gmx.net", "/mail", "GMX Mail", "email"),
        ("www.gmx.de", "/", "GMX Mail", "email"),
        ("3c.web.de", "/mail/client", "WEB.DE Mail", "email"),
        ("messagerie.orange.fr", "/", "Orange Mail", "email"),
        ("www.orange.fr", "/webmail/inbox", "Orange Mail", "email"),
        ("email.t-online.de", "/em", "T-Online Mail", "email"),
        ("email.ionos.de", "/appsuite/", "IONOS Mail", "email"),
        ("email.ionos.co.uk", "/", "IONOS Mail", "email"),
        ("webmail.bluewin.ch", "/", "Bluewin Mail", "email"),
        ("mail.infomaniak.com", "/", "Infomaniak Mail", "email"),
        ("webmail.vodafone.de", "/", "Vodafone Mail", "email"),
        ("e.mail.ru", "/inbox/", "Mail.ru Mail", "email"),
        ("com.google.android.gm", "/", "Gmail", "email"),
        # ad networks (ours): click-through hosts are paid traffic
        ("googleads.g.doubleclick.net", "/pagead/ads", "Google Ads", "paid"),
        ("ad.doubleclick.net", "/ddm/clk/1", "Google Ads", "paid"),
        ("tpc.googlesyndication.com", "/safeframe/1", "Google Ads", "paid"),
        ("syndicatedsearch.goog", "/afs/ads", "Google Ads", "paid"),
        ("www.googleadservices.com", "/pagead/aclk", "Google Ads", "paid"),
        ("adservice.google.de", "/ddm/fls", "Google Ads", "paid"),
        ("trc.taboola.com", "/", "Taboola", "paid"),
        # our additions to Matomo's sources
        ("com.google.android.googlequicksearchbox", "/https/www.google.com", "Google", "search"),
        ("www.yahoo.com", "/", "Yahoo!", "search"),
        ("www.voila.fr", "/", "Voila", "search"),
        ("www.pricerunner.com", "/results", "PriceRunner", "search"),
        ("redd.it", "/x", "reddit", "social"),
        ("com.facebook.katana", "/", "Facebook", "social"),
    ],
)
def test_host_sample(index: SourceIndex, host: str, path: str, name: str, medium: str) -> None:
    source = index.by_host(host, path)
    assert source is not None, host
    assert (source.name, source.medium) == (name, medium)


@pytest.mark.parametrize(
    ("host", "path", "name"),
    [
        ("images.google.com", "/", "Google Images"),
        ("images.google.co.jp", "/search", "Google Images"),
        ("www.google.com", "/imgres", "Google Images"),
        ("www.google.de", "/imgres", "Google Images"),
        ("www.google.co.uk", "/imgres/x", "Google Images"),
        ("www.google.de", "/imgresx", "Google"),  # a path rule matches whole segments
        ("www.bing.com", "/images/search", "Bing Images"),
        ("de.bing.com", "/images/search", "Bing Images"),
        ("www.bing.com", "/search", "Bing"),
        ("images.search.yahoo.com", "/search/images", "Yahoo! Images"),
        ("de.images.search.yahoo.com", "/search/images", "Yahoo! Images"),
        ("fr.images.yahoo.com", "/", "Yahoo! Images"),
        ("images.yandex.ru", "/search", "Yandex Images"),
        ("images.yandex.com.tr", "/", "Yandex Images"),
        ("yandex.ru", "/search", "Yandex"),
        ("www.google.com", "/cse", "Google Custom Search"),
        ("www.google.fr", "/products", "Google Shopping"),
        ("news.google.com", "/", "Google News"),
        ("scholar.google.de", "/", "Google Scholar"),
    ],
)
def test_sub_property_names(index: SourceIndex, host: str, path: str, name: str) -> None:
    source = index.by_host(host, path)
    assert source is not None
    assert source.name == name


@pytest.mark.parametrize(
    ("referer", "term", "url"),
    [
        ("https://www.google.com/search?q=red+shoes&client=safari", "red shoes",
         "https://www.google.com/search?q=red+shoes"),
        ("https://www.bing.com/search?q=caf%C3%A9&form=QBLH", "café", "https://www.bing.com/search?q=caf%C3%A9"),
        ("https://www.bing.com/images/search?q=cats&FORM=HDRSC2", "cats",
         "https://www.bing.com/images/search?q=cats"),
        ("https://search.yahoo.com/search?p=boots&fr=yfp", "boots", "https://search.yahoo.com/search?p=boots"),
        ("https://yandex.ru/search/?text=%D0%BA%D0%BE%D1%82&lr=213", "кот",
         "https://yandex.ru/search/?text=%D0%BA%D0%BE%D1%82"),
        ("https://www.baidu.com/s?wd=%E9%9E%8B&rsv=1", "鞋", "https://www.baidu.com/s?wd=%E9%9E%8B"),
        ("https://search.naver.com/search.naver?query=shoes&where=nexearch", "shoes",
         "https://search.naver.com/search.naver?query=shoes"),
        ("https://search.aol.com/aol/search?q=hats", "hats", "https://search.aol.com/aol/search?q=hats"),
        ("https://www.ask.com/web?q=gloves&qsrc=0", "gloves", "https://www.ask.com/web?q=gloves"),
        ("https://duckduckgo.com/?q=socks&t=h_", "socks", "https://duckduckgo.com/?q=socks"),
        ("https://www.ecosia.org/search?method=index&q=trees", "trees", "https://www.ecosia.org/search?q=trees"),
        # A Matomo regex parameter: the term is in the path, which is kept as it is.
        ("https://1.cz/s/hledat?x=1", "hledat", "https://1.cz/s/hledat"),
        # Not a term: a redirect's destination.
        ("https://www.google.co.uk/url?q=https://shop.example/x&sa=t", None, "https://www.google.co.uk/url"),
    ],
)
def test_search_terms_from_list_params(enricher: Enricher, referer: str, term: str | None, url: str) -> None:
    ref = _referrer(enricher, referer)
    assert ref["medium"] == "search"
    assert ref.get("term") == term
    assert ref["url"] == url


def test_precedence_ours_then_exact_then_wildcard() -> None:
    matomo: dict[str, Any] = {
        "chatbot": {"Bot": ["ask.example"]},
        "social": {"Net": ["net.example", "{}.net.example"]},
        "search": {
            "Engine": [{"urls": ["engine.{}", "engine.de"], "params": ["q"]}],
            "Engine Images": [{"urls": ["engine.{}/img"], "params": ["q"]}],
            "Asker": [{"urls": ["ask.example"], "params": ["q"]}],
        },
    }
    ours = {"sources": [{"name": "Engine Mail", "medium": "email", "hosts": ["mail.engine.de", "engine.fr"]}]}
    index = SourceIndex(matomo, ours)
    found = {h: index.by_host(h, p) for h, p in [
        ("engine.de", "/"), ("engine.de", "/img/1"), ("engine.co.uk", "/"), ("mail.engine.de", "/"),
        ("engine.fr", "/"), ("ask.example", "/"), ("de.net.example", "/"), ("x.y.net.example", "/"),
    ]}  # fmt: skip
    names = {h: s.name if s else None for h, s in found.items()}
    assert names == {
        "engine.de": "Engine Images",  # last key wins in this dict: engine.de /img/1
        "engine.co.uk": "Engine",
        "mail.engine.de": "Engine Mail",
        "engine.fr": "Engine Mail",  # ours beat the lists' wildcard
        "ask.example": "Bot",  # AI assistant list before search list
        "de.net.example": "Net",
        "x.y.net.example": "Net",
    }
    assert index.by_host("engine.de", "/").name == "Engine"  # type: ignore[union-attr]
    assert index.by_name("engine mail") is not None
    assert index.by_name("net.example").name == "Net"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "X", "medium": "web", "hosts": ["x.example"]}, "sources[0].medium: unknown medium 'web'"),
        ({"name": "Engine", "medium": "email", "hosts": ["x.example"]}, "'Engine' is a search source upstream"),
    ],
)
def test_bad_entries_are_named(entry: dict[str, Any], message: str) -> None:
    matomo: dict[str, Any] = {"chatbot": {}, "social": {}, "search": {"Engine": [{"urls": ["e.example"]}]}}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SourceIndex(matomo, {"sources": [entry]})


@pytest.mark.parametrize(
    ("referer", "channel"),
    [
        ("https://googleads.g.doubleclick.net/pagead/ads?x=1", "Display"),
        ("https://navigator.gmx.net/mail", "Email"),
        ("https://www.google.de/imgres?imgurl=x", "Organic Search"),
        ("https://x.com/i/grok", "AI Assistant"),
    ],
)
def test_channel_of_list_sources(enricher: Enricher, referer: str, channel: str) -> None:
    out = enricher.enrich(site="shop.example", path="/", query=[], user_agent="curl/8", referer=referer,
                          client_ip=None, country_header=None)  # fmt: skip
    assert out["channel"] == channel
