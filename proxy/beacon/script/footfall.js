// Footfall's first-party beacon. Plain JS, no build step: proxy/beacon/script.py
// bundles it after web-vitals (webVitals) inside one function. It sets no cookie
// and reads no fingerprinting API; the proxy's HttpOnly cookie rides along.
var me = document.currentScript;
if (me && !window.footfall) {
  var endpoint = me.src.replace(/[^/]*$/, "e");
  var ID = /^[0-9a-f]{32}$/;
  var pageId = me.getAttribute("data-ff-page");
  var navs = performance.getEntriesByType ? performance.getEntriesByType("navigation") : [];
  // The page view's id, from the proxy's Server-Timing (the tag names it too,
  // for pages where the browser hides serverTiming).
  ((navs[0] && navs[0].serverTiming) || []).forEach(function (t) {
    if (t.name === "ff" && ID.test(t.description)) pageId = t.description;
  });
  if (ID.test(pageId || "")) start(pageId);
}

function start(pageId) {
  var here = function () { return location.pathname + location.search; };
  var firstId = pageId, firstUrl = here(), url = firstUrl;
  var queue = [], timer = 0;
  var vitals = {}, sentVitals = {};
  var engaged = 0, last = 0, depth = 0, IDLE = 15000;
  var DOWNLOAD = /\.(pdf|zip|gz|tgz|rar|7z|dmg|exe|msi|pkg|deb|rpm|apk|csv|xlsx?|docx?|pptx?|odt|ods|txt|mp3|mp4|mov|avi|wav|epub)$/i;

  function send() {
    clearTimeout(timer);
    timer = 0;
    while (queue.length) {
      var body = JSON.stringify({ items: queue.splice(0, 20) });
      var sent = false;
      try { sent = navigator.sendBeacon(endpoint, body); } catch (e) { sent = false; }
      if (!sent && window.fetch) {
        fetch(endpoint, { method: "POST", body: body, keepalive: true, credentials: "same-origin",
                          headers: { "Content-Type": "text/plain" } }).catch(function () {});
      }
    }
  }

  function push(item, now) {
    item.page_id = item.page_id || pageId;
    item.url = item.url || url;
    queue.push(item);
    if (now || queue.length >= 20) send();
    else if (!timer) timer = setTimeout(send, 5000);
  }

  // Web Vitals belong to the page load (the first page id), reported when final.
  var wv = typeof webVitals === "object" ? webVitals : null;
  if (wv) {
    [wv.onLCP, wv.onINP, wv.onCLS, wv.onFCP, wv.onTTFB].forEach(function (on) {
      on(function (m) { vitals[m.name.toLowerCase()] = m.name === "CLS" ? m.value : Math.round(m.value); });
    });
  }
  function flushVitals() {
    var v = {}, any = false;
    for (var k in vitals) {
      if (vitals[k] !== sentVitals[k]) { v[k] = sentVitals[k] = vitals[k]; any = true; }
    }
    if (any) push({ kind: "vitals", vitals: v, page_id: firstId, url: firstUrl });
  }

  // Engaged time: visible, with an interaction in the last IDLE ms.
  function active() {
    var now = performance.now();
    if (document.visibilityState === "visible") {
      if (last) engaged += Math.min(now - last, IDLE);
      last = now;
    }
  }
  function scrolled() {
    var el = document.documentElement;
    var d = el.scrollHeight > 0 ? Math.round(100 * (window.scrollY + window.innerHeight) / el.scrollHeight) : 100;
    depth = Math.max(depth, Math.min(100, d));
  }
  function endPage() {
    // The stretch since the last interaction counts up to now (the page may already be hidden).
    if (last) engaged += Math.min(performance.now() - last, IDLE);
    last = 0;
    if (engaged > 0 || depth > 0) {
      push({ kind: "engagement", engaged_ms: Math.round(engaged), scroll_depth: depth });
      engaged = 0;
    }
  }
  ["pointerdown", "keydown", "scroll", "touchstart", "mousemove"].forEach(function (type) {
    addEventListener(type, active, { passive: true, capture: true });
  });
  addEventListener("scroll", scrolled, { passive: true });
  addEventListener("load", scrolled);

  // Bubbling listeners on window run after web-vitals' own, so its final values are in.
  function hidden(e) {
    if (e.type === "pagehide" || document.visibilityState === "hidden") {
      endPage();
      flushVitals();
      send();
    }
  }
  addEventListener("visibilitychange", hidden);
  addEventListener("pagehide", hidden);

  // SPA route changes: a page view of their own, sent by the beacon.
  function newId() {
    var r = new Uint8Array(10);
    crypto.getRandomValues(r);
    var hex = Date.now().toString(16).padStart(12, "0") + "7";
    for (var i = 0; i < r.length; i++) hex += (r[i] + 256).toString(16).slice(1);
    return hex.slice(0, 32);
  }
  function route() {
    var next = here();
    if (next === url) return;
    endPage();
    var from = location.origin + url;
    url = next;
    pageId = newId();
    depth = 0;
    push({ kind: "pageview", referrer: from });
    setTimeout(scrolled, 0);
  }
  ["pushState", "replaceState"].forEach(function (name) {
    var orig = history[name];
    history[name] = function () {
      var out = orig.apply(this, arguments);
      route();
      return out;
    };
  });
  addEventListener("popstate", route);

  function track(name, props) {
    if (typeof name !== "string" || !name) return;
    var p = {};
    for (var k in props || {}) p[k] = String(props[k]);
    push({ kind: "custom", name: name.slice(0, 64), props: p });
  }
  window.footfall = { track: track };

  addEventListener("click", function (e) {
    var t = e.target;
    if (!t || !t.closest) return;
    var marked = t.closest("[data-footfall-event]");
    if (marked) {
      var props = {};
      for (var k in marked.dataset) {
        if (k.indexOf("footfallProp") === 0 && k.length > 12) props[k.charAt(12).toLowerCase() + k.slice(13)] = marked.dataset[k];
      }
      track(marked.getAttribute("data-footfall-event"), props);
    }
    var a = t.closest("a[href]");
    if (!a || !/^https?:$/.test(a.protocol)) return;
    if (a.host !== location.host) push({ kind: "click", name: "outbound", props: { url: a.href } }, true);
    else if (a.hasAttribute("download") || DOWNLOAD.test(a.pathname)) push({ kind: "click", name: "download", props: { url: a.href } }, true);
  }, true);
}
