// The page's only way to the data: POST /api/v2/batch of Stats API v2 queries (and a few GETs) on this listener.
// Same origin, so the login cookie rides along; a 401 sends the browser to the login page.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A 401 sends the browser to the login page (and back here after). */
function signInIfAsked(response) {
  if (response.status !== 401) return;
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
  throw new ApiError(401, "sign in required");
}

async function request(path, init) {
  const response = await fetch(path, { credentials: "same-origin", ...init });
  signInIfAsked(response);
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, (body && body.error) || response.statusText);
  return body;
}

export function getJSON(path) {
  return request(path, { headers: { Accept: "application/json" } });
}

export function postJSON(path, body) {
  return request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
}

/** One Stats API v2 query; resolves to the response ({results, meta, query}).
 *
 * The queries a page asks in one turn of the event loop go out together as one
 * POST /api/v2/batch: the store computes their shared segment once, not once per
 * question, and answers each as an NDJSON line as soon as it has it, so panels
 * still fill one by one. */
export function query(body) {
  return new Promise((resolve, reject) => {
    if (!pending.length) setTimeout(flush, 0);
    pending.push({ body, resolve, reject });
  });
}

let pending = [];
const MAX_BATCH = 40; // the server's limit per batch

function flush() {
  const asked = pending;
  pending = [];
  for (let i = 0; i < asked.length; i += MAX_BATCH) batch(asked.slice(i, i + MAX_BATCH));
}

async function batch(asked) {
  const settle = (i, status, body) => {
    const { resolve, reject } = asked[i];
    if (status >= 200 && status < 300) resolve(body);
    else reject(new ApiError(status, (body && body.error) || `HTTP ${status}`));
  };
  const done = new Set();
  try {
    const response = await fetch("/api/v2/batch", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/x-ndjson" },
      body: JSON.stringify({ queries: asked.map((a) => a.body) }),
    });
    signInIfAsked(response);
    if (!response.ok) {
      let error = null;
      try { error = (await response.json()).error; } catch { error = null; }
      throw new ApiError(response.status, error || response.statusText);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done: end } = await reader.read();
      if (value) buffered += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (!line) continue;
        const { index, status, body } = JSON.parse(line);
        done.add(index);
        settle(index, status, body);
      }
      if (end) break;
    }
    if (done.size < asked.length) throw new ApiError(502, "the answer ended early");
  } catch (error) {
    const failure = error instanceof ApiError ? error : new ApiError(0, String(error));
    asked.forEach((a, i) => { if (!done.has(i)) a.reject(failure); });
  }
}

/** The common part of every panel's query: site, period and the filter chips (ANDed). */
export function base(state) {
  const out = { site_id: state.site, date_range: state.range.date_range };
  if (state.filters.length) out.filters = state.filters.map(([op, dim, values]) => [op, dim, values]);
  return out;
}

/** A filter list without the filters on ``dimension`` (a panel may not want to filter itself away). */
export function without(filters, dimension) {
  return filters.filter((f) => f[1] !== dimension);
}
